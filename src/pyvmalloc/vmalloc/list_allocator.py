"""The 2.6.22 allocator of kernel virtual addresses: ``vmlist``, a sorted singly linked list.

mm/vmalloc.c (2.6.22) keeps every busy area in ``vmlist``, a singly linked list of
``vm_struct`` sorted by address, and finds room by walking it from the head (first fit,
``__get_vm_area_node``).  Lookup (``__find_vm_area``) and removal (``__remove_vm_area``) walk
it too: every operation is O(n) in the number of live areas, which is what the 2.6.28 rewrite
and the 5.2 KVA allocator (``kva_allocator``) were for.

Both allocators manage the same address space, ``[page_size, 2**64 - page_size)``: the kernel's
free space starts at 1 and stops short of ``ULONG_MAX`` (5.2+ ``vmap_init_free_space``); at
page granularity that leaves out the first and the last page.  Page 0 is NULL to every caller.
This module also holds the argument checks both allocators share.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

import numpy as np

from pyvmalloc.errors import ConfigError, Inconsistency

ULONG_LIMIT = 1 << 64  # one past ULONG_MAX on a 64-bit kernel


def space_bounds(page_size: int) -> tuple[int, int]:
    """``(low, high)``: the address space ``[low, high)`` every allocator hands out from."""
    if type(page_size) is not int or page_size <= 0 or page_size & (page_size - 1):
        raise ConfigError(f"page size must be a positive power of two, not {page_size!r}")
    return page_size, ULONG_LIMIT - page_size


def check_alloc_args(page_size: int, size: int, align: int, vstart: int, vend: int) -> None:
    """Raise ConfigError unless ``alloc(size, align, vstart, vend)`` is well formed.

    The kernel answers these with ``-EINVAL`` (5.2+ ``alloc_vmap_area``: size 0, size not
    page-aligned, align not a power of two) or ``BUG_ON`` (2.6.22); the model refuses them loudly.
    """
    check_size(page_size, size)
    if type(align) is not int or align <= 0 or align & (align - 1):
        raise ConfigError(f"align must be a positive power of two, not {align!r}")
    check_address(vstart, "vstart")
    check_address(vend, "vend")


def check_insert_args(page_size: int, addr: int, size: int) -> None:
    """Raise ConfigError unless ``insert(addr, size)`` is well formed."""
    check_size(page_size, size)
    check_address(addr, "addr")


def check_size(page_size: int, size: int) -> None:
    """Raise ConfigError unless ``size`` is a positive multiple of the page size."""
    if type(size) is not int or size <= 0 or size % page_size:
        raise ConfigError(f"size must be a positive multiple of the page size {page_size},"
                          f" not {size!r}")


def check_address(addr: int, what: str = "address") -> None:
    """Raise ConfigError unless ``addr`` is an int in ``[0, 2**64]`` (a ulong, or one past)."""
    if type(addr) is not int or not 0 <= addr <= ULONG_LIMIT:
        raise ConfigError(f"{what} must be an int in [0, 2**64], not {addr!r}")


class ListAllocator:
    """2.6.22's ``vmlist``: busy blocks in address order, first fit, O(n).

    The seed's singly linked list is kept as three parallel lists in address order (start, end,
    owner): a list index is a position in ``vmlist``, so "walked ``i + 1`` entries" is what the
    seed's walk costs.  :meth:`_walk` is the seed's loop, step for step; :meth:`_search` gives
    the same answer and the same count by bisection and one vectorised scan of the holes, for
    page-sized alignments on page-aligned areas (every area the vmalloc layer makes), so a list
    of 35,000 areas costs what it costs the kernel to walk it, counted, without walking it in
    Python (``tests/test_list_allocator.py`` holds the two to each other).
    """

    name = "list"
    scan_min = 32  # holes to look at before a numpy scan beats a Python loop

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._low, self._high = space_bounds(page_size)
        # vmlist in address order: starts, ends (start + size, guard page included), owners
        self._addr: list[int] = []
        self._end: list[int] = []
        self._owner: list[object] = []
        # The same starts and ends as uint64 arrays (first len(self._addr) slots used) for the
        # vectorised hole scan; addresses stay below 2**64, so uint64 holds every one.
        self._addr_a = np.zeros(16, dtype=np.uint64)
        self._end_a = np.zeros(16, dtype=np.uint64)
        self._page_aligned = True  # every start and end is a multiple of page_size
        self.visited = 0  # vmlist entries the searches walked

    def __len__(self) -> int:
        return len(self._addr)

    def __repr__(self) -> str:
        return f"ListAllocator(page_size={self.page_size}, busy={len(self._addr)})"

    # -- allocation --------------------------------------------------------------------------
    def alloc(self, size: int, align: int, vstart: int, vend: int, owner: object) -> int | None:
        """First fit by walking ``vmlist`` from the head, as 2.6.22 ``__get_vm_area_node``.

        ``size`` already includes the guard page (the vmalloc layer adds it, as the seed does
        at line 200).  Returns the address, or None when no hole of ``[vstart, vend)`` fits.
        """
        check_alloc_args(self.page_size, size, align, vstart, vend)
        # Outside [low, high) nothing is free (page 0 is NULL; the last page is ULONG_MAX's).
        if vstart < self._low:
            vstart = self._low
        if vend > self._high:
            vend = self._high
        if align == self.page_size and self._page_aligned:
            addr, index, walked = self._search(size, vstart, vend)
        else:
            addr, index, walked = self._walk(size, align - 1, vstart, vend)
        self.visited += walked
        # The seed returns addr unchecked when the walk ran off the end of the list (or was
        # pushed past end by an area below it), so an area could run past `end`; 2.6.28's
        # alloc_vmap_area checks `addr + size > vend` after the search.  We do the same.
        if addr is None or addr + size > vend:
            return None
        self._link(index, addr, addr + size, owner)  # seed 220-221
        return addr

    def _walk(self, size: int, mask: int, vstart: int, vend: int) -> tuple[int | None, int, int]:
        """The seed's walk (``__get_vm_area_node``, lines 188-218): ``(addr, index, walked)``,
        the address found (None if it passed ``vend``), the ``vmlist`` position it goes to and
        the entries looked at."""
        starts, ends = self._addr, self._end
        addr = (vstart + mask) & ~mask  # seed line 188: addr = ALIGN(start, align)
        for i, t in enumerate(starts):
            if t < addr:
                # seed 204-208: an area below addr that reaches it pushes addr past its end
                if ends[i] >= addr:
                    addr = (ends[i] + mask) & ~mask
                continue
            # seed 210: `size + addr < addr` is C's wrap-around; here vend <= 2**64 - page and
            # the end check refuses anything that would have wrapped.
            if addr + size <= t:  # seed 212: the hole before tmp fits
                return addr, i, i + 1
            addr = (ends[i] + mask) & ~mask  # seed 214
            if addr > vend - size:  # seed 215
                return None, i, i + 1
        return addr, len(starts), len(starts)

    def _search(self, size: int, vstart: int, vend: int) -> tuple[int | None, int, int]:
        """:meth:`_walk`'s answer for ``align == page_size`` over page-aligned areas, found by
        bisection and a scan of the holes instead of a walk.

        With ALIGN a no-op, the walk passes the areas below ``vstart`` (only the last of them
        can reach it and push ``addr`` to its end), then stops at the first area ``i`` whose
        hole fits (``end[i-1] + size <= start[i]``) or whose end passes ``vend - size``,
        whichever comes first; an area that does both stops it with a fit (seed 212 before 215).
        """
        starts, ends = self._addr, self._end
        n = len(starts)
        addr = (vstart + self.page_size - 1) & -self.page_size
        k = bisect_left(starts, addr)
        if k and ends[k - 1] >= addr:
            addr = ends[k - 1]
        if k == n:
            return addr, n, n
        if addr + size <= starts[k]:
            return addr, k, k + 1
        stop = bisect_right(ends, vend - size, k)  # the first area whose end fails seed 215
        if stop == k:
            return None, k, k + 1
        last = stop if stop < n else n - 1
        fit = self._first_hole(size, k + 1, last)
        if fit is not None:
            return ends[fit - 1], fit, fit + 1
        if stop < n:
            return None, stop, stop + 1
        return ends[n - 1], n, n

    def _first_hole(self, size: int, lo: int, hi: int) -> int | None:
        """The first ``i`` in ``[lo, hi]`` with ``start[i] - end[i-1] >= size``, or None."""
        if hi - lo < self.scan_min:  # a short stretch: a loop is cheaper than arrays
            starts, ends = self._addr, self._end
            for i in range(lo, hi + 1):
                if starts[i] - ends[i - 1] >= size:
                    return i
            return None
        holes = self._addr_a[lo:hi + 1] - self._end_a[lo - 1:hi]  # areas never overlap: no wrap
        hit = np.flatnonzero(holes >= size)
        return lo + int(hit[0]) if hit.size else None

    def insert(self, addr: int, size: int, owner: object) -> bool:
        """Link ``[addr, addr + size)`` at its sorted place; False if it overlaps a busy block
        or leaves the address space."""
        check_insert_args(self.page_size, addr, size)
        if addr < self._low or addr + size > self._high:
            return False
        i = bisect_left(self._addr, addr)
        if i and self._end[i - 1] > addr:
            return False
        if i < len(self._addr) and self._addr[i] < addr + size:
            return False
        self._link(i, addr, addr + size, owner)
        return True

    def insert_sorted(self, items: Iterable[tuple[int, int, object]]) -> int:
        """:meth:`insert` of each ``(addr, size, owner)`` in turn; how many went in: it stops
        at the first that :meth:`insert` refuses, which is left out.  In ascending address
        order (a sorted snapshot) each one lands at the end of the lists, so k ranges cost k
        bisections and appends, not k walks."""
        done = 0
        for addr, size, owner in items:
            if not self.insert(addr, size, owner):
                break
            done += 1
        return done

    def _link(self, i: int, addr: int, end: int, owner: object) -> None:
        """Put the area at ``vmlist`` position ``i`` (``area->next = *p; *p = area``)."""
        n = len(self._addr)
        self._addr.insert(i, addr)
        self._end.insert(i, end)
        self._owner.insert(i, owner)
        if n == len(self._addr_a):
            self._addr_a = np.concatenate([self._addr_a, np.zeros(n, dtype=np.uint64)])
            self._end_a = np.concatenate([self._end_a, np.zeros(n, dtype=np.uint64)])
        a, e = self._addr_a, self._end_a
        a[i + 1:n + 1] = a[i:n]  # numpy copies overlapping slices through a buffer
        e[i + 1:n + 1] = e[i:n]
        a[i] = addr
        e[i] = end
        if (addr | end) & (self.page_size - 1):
            self._page_aligned = False  # only insert() can do this: then the seed's walk

    def _index(self, addr: int) -> int | None:
        i = bisect_left(self._addr, addr)
        return i if i < len(self._addr) and self._addr[i] == addr else None

    def remove(self, addr: int) -> object | None:
        """Unlink the area starting at ``addr`` (``__remove_vm_area``: a walk from the head)."""
        i = self._index(addr)
        if i is None:
            return None
        n = len(self._addr)
        del self._addr[i], self._end[i]
        owner = self._owner.pop(i)
        self._addr_a[i:n - 1] = self._addr_a[i + 1:n]
        self._end_a[i:n - 1] = self._end_a[i + 1:n]
        return owner

    # -- lookup ------------------------------------------------------------------------------
    def find(self, addr: int) -> object | None:
        """Owner of the area starting at ``addr`` (``__find_vm_area``: a walk from the head)."""
        i = self._index(addr)
        return None if i is None else self._owner[i]

    def find_containing(self, addr: int) -> tuple[int, int, object] | None:
        """``(start, size, owner)`` of the area containing ``addr``, else None."""
        check_address(addr)
        i = bisect_right(self._addr, addr) - 1
        if i < 0 or addr >= self._end[i]:
            return None
        return self._addr[i], self._end[i] - self._addr[i], self._owner[i]

    def for_each_busy(self, start: int = 0) -> Iterator[tuple[int, int, object]]:
        """Busy areas that end after ``start``, in address order (do not change the allocator
        while iterating)."""
        check_address(start, "start")
        starts, ends, owners = self._addr, self._end, self._owner
        for i in range(bisect_right(ends, start), len(starts)):
            yield starts[i], ends[i] - starts[i], owners[i]

    def for_each_free(self, vstart: int, vend: int) -> Iterator[tuple[int, int]]:
        """The holes between busy areas, clipped to ``[vstart, vend)``, in address order."""
        check_address(vstart, "vstart")
        check_address(vend, "vend")
        lo = max(vstart, self._low)
        hi = min(vend, self._high)
        cursor = lo
        starts, ends = self._addr, self._end
        i = bisect_right(ends, cursor)  # areas ending at or before lo leave it where it is
        while i < len(starts) and cursor < hi:
            if starts[i] > cursor:
                yield cursor, min(starts[i], hi) - cursor
            if ends[i] > cursor:
                cursor = ends[i]
            i += 1
        if cursor < hi:
            yield cursor, hi - cursor

    def check(self) -> None:
        """Raise Inconsistency unless ``vmlist`` is sorted, disjoint, in the space, and its
        arrays and alignment flag say what the lists say."""
        last_end = self._low
        n = len(self._addr)
        if not len(self._end) == len(self._owner) == n:
            raise Inconsistency(f"vmlist: {n} starts, {len(self._end)} ends, {len(self._owner)} owners")
        for addr, end in zip(self._addr, self._end):
            if end <= addr or addr < last_end:
                raise Inconsistency(
                    f"vmlist: area {addr:#x}+{end - addr:#x} overlaps or is out of order")
            last_end = end
            if self._page_aligned and (addr | end) & (self.page_size - 1):
                raise Inconsistency(f"vmlist: area {addr:#x} is not page-aligned, unflagged")
        if last_end > self._high:
            raise Inconsistency(f"vmlist: an area ends at {last_end:#x}, past the address space")
        if (self._addr_a[:n].tolist() != self._addr) or (self._end_a[:n].tolist() != self._end):
            raise Inconsistency("vmlist: the search arrays differ from the list")
