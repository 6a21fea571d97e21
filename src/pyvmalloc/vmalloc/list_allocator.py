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

from collections.abc import Iterable, Iterator

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


class _VmArea:
    """One busy block in ``vmlist``: the allocator's part of a ``vm_struct``."""

    __slots__ = ("addr", "size", "owner", "next")

    def __init__(self, addr: int, size: int, owner: object, next: _VmArea | None) -> None:
        self.addr = addr
        self.size = size
        self.owner = owner
        self.next = next


class ListAllocator:
    """2.6.22's ``vmlist``: busy blocks in a sorted singly linked list, first fit, O(n)."""

    name = "list"

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._low, self._high = space_bounds(page_size)
        self._head: _VmArea | None = None  # vmlist
        self._count = 0
        self.visited = 0  # vmlist entries the searches walked

    def __len__(self) -> int:
        return self._count

    def __repr__(self) -> str:
        return f"ListAllocator(page_size={self.page_size}, busy={self._count})"

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
        mask = align - 1
        addr = (vstart + mask) & ~mask  # seed line 188: addr = ALIGN(start, align)
        prev: _VmArea | None = None
        tmp = self._head
        walked = 0
        while tmp is not None:
            walked += 1
            t = tmp.addr
            if t < addr:
                # seed 204-208: an area below addr that reaches it pushes addr past its end
                end = t + tmp.size
                if end >= addr:
                    addr = (end + mask) & ~mask
                prev = tmp
                tmp = tmp.next
                continue
            # seed 210: `size + addr < addr` is C's wrap-around; here vend <= 2**64 - page and
            # the end check below refuses anything that would have wrapped.
            if addr + size <= t:  # seed 212: the hole before tmp fits
                break
            addr = (t + tmp.size + mask) & ~mask  # seed 214
            if addr > vend - size:  # seed 215
                self.visited += walked
                return None
            prev = tmp
            tmp = tmp.next
        # The seed returns addr here unchecked when the walk ran off the end of the list (or
        # was pushed past end by an area below it), so an area could run past `end`; 2.6.28's
        # alloc_vmap_area checks `addr + size > vend` after the search.  We do the same.
        self.visited += walked
        if addr + size > vend:
            return None
        self._link(prev, _VmArea(addr, size, owner, tmp))  # seed 220-221
        return addr

    def insert(self, addr: int, size: int, owner: object) -> bool:
        """Link ``[addr, addr + size)`` at its sorted place; False if it overlaps a busy block
        or leaves the address space."""
        check_insert_args(self.page_size, addr, size)
        if addr < self._low or addr + size > self._high:
            return False
        prev: _VmArea | None = None
        tmp = self._head
        while tmp is not None and tmp.addr < addr:
            prev = tmp
            tmp = tmp.next
        if prev is not None and prev.addr + prev.size > addr:
            return False
        if tmp is not None and tmp.addr < addr + size:
            return False
        self._link(prev, _VmArea(addr, size, owner, tmp))
        return True

    def insert_sorted(self, items: Iterable[tuple[int, int, object]]) -> int:
        """:meth:`insert` of each ``(addr, size, owner)`` in turn; how many went in: it stops
        at the first that :meth:`insert` refuses, which is left out.  The list comes out as
        the inserts one by one leave it, but in ascending address order (a sorted snapshot)
        each walk goes on from where the last one linked, so k ranges cost one walk of
        ``vmlist``, not k."""
        prev: _VmArea | None = None
        tmp = self._head
        done = 0
        for addr, size, owner in items:
            check_insert_args(self.page_size, addr, size)
            if addr < self._low or addr + size > self._high:
                break
            if prev is not None and prev.addr >= addr:
                prev, tmp = None, self._head  # not ascending: walk from the head, as insert
            while tmp is not None and tmp.addr < addr:
                prev = tmp
                tmp = tmp.next
            if prev is not None and prev.addr + prev.size > addr:
                break
            if tmp is not None and tmp.addr < addr + size:
                break
            area = _VmArea(addr, size, owner, tmp)
            self._link(prev, area)
            prev = area
            done += 1
        return done

    def _link(self, prev: _VmArea | None, area: _VmArea) -> None:
        if prev is None:
            self._head = area
        else:
            prev.next = area
        self._count += 1

    def remove(self, addr: int) -> object | None:
        """Unlink the area starting at ``addr`` (``__remove_vm_area``: a walk from the head)."""
        prev: _VmArea | None = None
        tmp = self._head
        while tmp is not None:
            if tmp.addr == addr:
                if prev is None:
                    self._head = tmp.next
                else:
                    prev.next = tmp.next
                self._count -= 1
                tmp.next = None
                return tmp.owner
            prev = tmp
            tmp = tmp.next
        return None

    # -- lookup ------------------------------------------------------------------------------
    def find(self, addr: int) -> object | None:
        """Owner of the area starting at ``addr`` (``__find_vm_area``: a walk from the head)."""
        tmp = self._head
        while tmp is not None:
            if tmp.addr == addr:
                return tmp.owner
            tmp = tmp.next
        return None

    def find_containing(self, addr: int) -> tuple[int, int, object] | None:
        """``(start, size, owner)`` of the area containing ``addr``, else None."""
        check_address(addr)
        tmp = self._head
        while tmp is not None and tmp.addr <= addr:
            if addr < tmp.addr + tmp.size:
                return tmp.addr, tmp.size, tmp.owner
            tmp = tmp.next
        return None

    def for_each_busy(self, start: int = 0) -> Iterator[tuple[int, int, object]]:
        """Busy areas that end after ``start``, in address order (do not change the allocator
        while iterating)."""
        check_address(start, "start")
        tmp = self._head
        while tmp is not None:
            if tmp.addr + tmp.size > start:
                yield tmp.addr, tmp.size, tmp.owner
            tmp = tmp.next

    def for_each_free(self, vstart: int, vend: int) -> Iterator[tuple[int, int]]:
        """The holes between busy areas, clipped to ``[vstart, vend)``, in address order."""
        check_address(vstart, "vstart")
        check_address(vend, "vend")
        lo = max(vstart, self._low)
        hi = min(vend, self._high)
        cursor = lo
        tmp = self._head
        while tmp is not None and cursor < hi:
            if tmp.addr > cursor:
                top = min(tmp.addr, hi)
                yield cursor, top - cursor
            end = tmp.addr + tmp.size
            if end > cursor:
                cursor = end
            tmp = tmp.next
        if cursor < hi:
            yield cursor, hi - cursor

    def check(self) -> None:
        """Raise Inconsistency unless ``vmlist`` is sorted, disjoint, in the space and counted."""
        n = 0
        last_end = self._low
        tmp = self._head
        while tmp is not None:
            if tmp.size <= 0 or tmp.addr < last_end:
                raise Inconsistency(
                    f"vmlist: area {tmp.addr:#x}+{tmp.size:#x} overlaps or is out of order")
            last_end = tmp.addr + tmp.size
            n += 1
            tmp = tmp.next
        if last_end > self._high:
            raise Inconsistency(f"vmlist: an area ends at {last_end:#x}, past the address space")
        if n != self._count:
            raise Inconsistency(f"vmlist: {n} areas linked but {self._count} counted")
