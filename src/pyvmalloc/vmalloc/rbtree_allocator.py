"""The 2.6.28 - 5.1 allocator of kernel virtual addresses: busy ``vmap_area``s in an rbtree and a list.

Nick Piggin's "mm: rewrite vmap layer" (db64fe02258f, Linux 2.6.28) replaced ``vmlist`` with
``vmap_area`` nodes kept twice, in an rbtree keyed by address (``vmap_area_root``) and in an
address-sorted list (``vmap_area_list``).  ``alloc_vmap_area`` descends the tree to the first busy
area that may block ``ALIGN(vstart, align)``, then walks the list from there, first fit.  Only busy
areas are stored: the holes are what lies between them.  Here a sorted list of starts searched
with ``bisect`` stands in for both the tree and the list (O(log n) lookups; inserting or erasing
moves list entries, which is fast at the model's sizes).

Two variants are registered:

``rbtree`` (``RbtreeAllocator``): 2.6.28 ``alloc_vmap_area`` as released.  Its walk steps over a
busy area with ``addr = ALIGN(first->va_end + PAGE_SIZE, align)``: it leaves one extra free page
after every busy area it skips, on top of the guard page that ``__get_vm_area_node`` already adds
to the size (``size += PAGE_SIZE``; the model's block sizes include that one).  So it does *not*
answer as 2.6.22's ``vmlist`` walk (``list``) does: it is first fit over busy areas that each
block one more page past their end, ``[va_start, va_end + PAGE_SIZE)``, with one quirk: a start
``ALIGN(vstart, align)`` that falls strictly inside that extra page (possible only for a vstart
that is not page-aligned and align below a page) is not blocked, since the descent only
considers areas with ``va_end >= addr``.  Areas placed by ``insert`` or at ``ALIGN(vstart)`` may
still touch the area *above* them (the fit test is ``addr + size <= first->va_start``).
The page after each area stayed until Johannes Weiner's "mm/vmalloc: remove guard page from
between vmap blocks" (248ac0e1943a, posted April 2011, after the cache below), which also turned
the loop test from ``>=`` (as the cache patch had it) back into ``>``.

The 2.6.28 descent (``if (tmp->va_end >= addr) { if (!first && tmp->va_start < addr + size)
first = tmp; ...``) does not always stop at the lowest area with ``va_end >= addr``: when it
takes a higher one, the space from ``addr`` to that area's start is shorter than ``size``, so the
walk gives the same address either way.  We start the walk at the lowest such area.

``rbtree-cache`` (``RbtreeCacheAllocator``): the same search plus Nick Piggin's
``free_vmap_cache`` ("mm: vmap area cache", 89699605fe7c, committed 22 March 2011, Linux 2.6.39),
in the form it kept from 248ac0e1943a until 5.1 (no extra page, loop test ``>``): the 3.x/4.x
``alloc_vmap_area`` and ``__free_vmap_area``.  State: ``free_vmap_cache`` (a busy area, or none),
``cached_hole_size``, ``cached_vstart``, ``cached_align``.

- alloc: the cache is dropped (and ``cached_hole_size`` zeroed) when there is none, or
  ``size < cached_hole_size``, or ``vstart < cached_vstart``, or ``align < cached_align``; then
  ``cached_vstart = vstart, cached_align = align``.  With a cache the search starts at
  ``ALIGN(cache->va_end, align)`` (if that is below ``vstart``: drop the cache, search from
  scratch); without one, at ``ALIGN(vstart, align)`` as above.  Every busy area the walk steps
  over records the hole before it: ``if (addr + cached_hole_size < first->va_start)
  cached_hole_size = first->va_start - addr``.  On success the new area becomes the cache.  On
  failure (``overflow``) nothing is undone: the cache stays, with ``cached_vstart``,
  ``cached_align`` and any ``cached_hole_size`` the failed walk recorded (the kernel then purges
  the lazy areas and retries from ``retry:``, which re-runs these tests; the caller does that
  here, ``api`` purges and calls ``alloc`` again).
- free (``remove`` = ``__free_vmap_area``): if there is a cache, ``va_end < cached_vstart`` drops
  it; else if ``va_start <= cache->va_start`` the cache becomes the area before ``va``
  (``rb_prev``, none if ``va`` was the lowest).  ``cached_hole_size`` and ``cached_align`` are
  not updated ("it won't go very wrong").
- ``insert`` (fixed areas, snapshots) is ``__insert_vmap_area`` as ``vmalloc_init`` does for the
  early ``vmlist`` and ``pcpu_get_vm_areas`` for per-cpu areas: it does not touch the cache.  An
  inserted area only shrinks holes, so the cache stays conservative.

When ``rbtree-cache`` differs from lowest fit: only when a search starts from the cache (none of
the reset conditions holds, and ``ALIGN(cache->va_end, align) >= vstart``) and a hole below the
cache can take the request.  Every hole below the cache and above ``cached_vstart`` was stepped
over by a walk since the last reset (a free below the cache moves the cache below the freed
hole, a free below ``cached_vstart`` drops it), with an alignment no larger than today's (a
smaller one resets), so its usable length is at most ``cached_hole_size``; the request is not
below ``cached_hole_size`` (else reset).  So the hole's usable length (from ``ALIGN(hole start,
align)``) equals ``size`` equals ``cached_hole_size``: a request of *exactly* the largest
recorded hole's size, at an alignment that still leaves it that long, is placed above the cache
instead of in the hole, or fails (-EBUSY) when nothing above the cache fits below ``vend``, even
though the hole would have taken it.  In every other case it answers as ``list`` does (strict
lowest fit); the tests check both statements.

Addresses: ``vstart`` and ``vend`` are clipped to the model's space ``[page_size, 2**64 -
page_size)`` first (``list_allocator``), and the cache compares the clipped ``vstart``.  The
kernel's unsigned wrap-around tests (``addr + size < addr``) cannot fire below ``vend`` here;
a result that would wrap fails, as its ``vend`` test would make it.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

from pyvmalloc.errors import Inconsistency
from pyvmalloc.vmalloc.list_allocator import (
    check_address,
    check_alloc_args,
    check_insert_args,
    space_bounds,
)


class RbtreeAllocator:
    """2.6.28 ``alloc_vmap_area``: first fit over busy areas, one extra page after each."""

    name = "rbtree"
    #: bytes the walk leaves after each busy area it steps over, in pages (2.6.28: one)
    _gap_pages = 1
    _cached = False

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._low, self._high = space_bounds(page_size)
        self._gap = self._gap_pages * page_size
        self._starts: list[int] = []  # vmap_area_list: starts, sorted
        self._ends: list[int] = []  # va_end of the same areas, sorted too (areas are disjoint)
        self._owner: dict[int, object] = {}  # va_start -> owner (the vm_struct, or a marker)
        # Work counter: the descent counts as the rbtree's depth (~log2 of the busy areas),
        # then each vmap_area_list entry the walk steps over.
        self.visited = 0
        # free_vmap_cache as the start of the cached area (None: no cache), and its companions
        self.free_vmap_cache: int | None = None
        self.cached_hole_size = 0
        self.cached_vstart = 0
        self.cached_align = 0

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(page_size={self.page_size}, busy={len(self._starts)})"

    # -- allocation --------------------------------------------------------------------------
    def alloc(self, size: int, align: int, vstart: int, vend: int, owner: object) -> int | None:
        """``alloc_vmap_area``'s search (see the module docstring); None where it would
        ``goto overflow``.  ``size`` already includes the vm_struct's guard page."""
        check_alloc_args(self.page_size, size, align, vstart, vend)
        vstart = max(vstart, self._low)
        vend = min(vend, self._high)
        mask = align - 1
        starts, ends = self._starts, self._ends
        n = len(starts)
        cached = self._cached
        first = -1
        addr = 0
        if cached:
            if (self.free_vmap_cache is None or size < self.cached_hole_size
                    or vstart < self.cached_vstart or align < self.cached_align):
                self.cached_hole_size = 0
                self.free_vmap_cache = None
            self.cached_vstart = vstart
            self.cached_align = align
            if self.free_vmap_cache is not None:
                first = bisect_left(starts, self.free_vmap_cache)
                addr = (ends[first] + mask) & ~mask
                if addr < vstart:  # goto nocache: drop the cache, search from scratch
                    self.cached_hole_size = 0
                    self.free_vmap_cache = None
                    first = -1
        if first < 0:
            addr = (vstart + mask) & ~mask
            # the first area with va_end >= addr (the descent; see the module docstring)
            first = bisect_left(ends, addr)
        self.visited += n.bit_length()
        if first < n:
            gap = self._gap
            hole = self.cached_hole_size
            end = addr + size
            while end > starts[first] and end <= vend:
                self.visited += 1
                if cached and addr + hole < starts[first]:
                    hole = starts[first] - addr
                addr = (ends[first] + gap + mask) & ~mask
                end = addr + size
                first += 1
                if first == n:  # list_is_last / no rb_next: goto found
                    break
            if cached:
                self.cached_hole_size = hole
        # found:
        if addr + size > vend:
            return None  # overflow: the cache state stays as the search left it
        i = bisect_left(starts, addr)
        starts.insert(i, addr)
        ends.insert(i, addr + size)
        self._owner[addr] = owner
        if cached:
            self.free_vmap_cache = addr
        return addr

    def insert(self, addr: int, size: int, owner: object) -> bool:
        """``__insert_vmap_area`` of exactly ``[addr, addr + size)``; False if it overlaps a busy
        area or leaves the address space.  The cache is left alone (module docstring)."""
        check_insert_args(self.page_size, addr, size)
        if addr < self._low or addr + size > self._high:
            return False
        i = bisect_right(self._starts, addr)
        if i > 0 and self._ends[i - 1] > addr:
            return False
        if i < len(self._starts) and self._starts[i] < addr + size:
            return False
        self._starts.insert(i, addr)
        self._ends.insert(i, addr + size)
        self._owner[addr] = owner
        return True

    def insert_sorted(self, items: Iterable[tuple[int, int, object]]) -> int:
        """:meth:`insert` of each ``(addr, size, owner)`` in turn; how many went in: it stops
        at the first that :meth:`insert` refuses, which is left out.  Ranges above every busy
        area (a sorted snapshot on a fresh machine) are appended to the sorted lists instead
        of inserted one by one: the same lists, dict and (untouched) cache."""
        starts, ends, owners = self._starts, self._ends, self._owner
        done = 0
        for addr, size, owner in items:
            if starts and addr < ends[-1]:
                if not self.insert(addr, size, owner):
                    break
                done += 1
                continue
            check_insert_args(self.page_size, addr, size)
            if addr < self._low or addr + size > self._high:
                break
            starts.append(addr)
            ends.append(addr + size)
            owners[addr] = owner
            done += 1
        return done

    def remove(self, addr: int) -> object | None:
        """``__free_vmap_area`` of the area starting at ``addr``; its owner, or None."""
        if type(addr) is not int or addr not in self._owner:
            return None
        i = bisect_left(self._starts, addr)
        if self._cached and self.free_vmap_cache is not None:
            if self._ends[i] < self.cached_vstart:
                self.free_vmap_cache = None
            elif addr <= self.free_vmap_cache:
                # rb_prev(&va->rb_node); cached_hole_size and cached_align not updated
                self.free_vmap_cache = self._starts[i - 1] if i > 0 else None
        del self._starts[i]
        del self._ends[i]
        return self._owner.pop(addr)

    # -- lookup ------------------------------------------------------------------------------
    def find(self, addr: int) -> object | None:
        """Owner of the area starting exactly at ``addr`` (2.6.28 ``__find_vmap_area``)."""
        if type(addr) is not int:
            return None
        return self._owner.get(addr)

    def find_containing(self, addr: int) -> tuple[int, int, object] | None:
        """``(start, size, owner)`` of the area containing ``addr`` (3.x ``__find_vmap_area``)."""
        check_address(addr)
        i = bisect_right(self._starts, addr) - 1
        if i < 0 or addr >= self._ends[i]:
            return None
        start = self._starts[i]
        return start, self._ends[i] - start, self._owner[start]

    def for_each_busy(self, start: int = 0) -> Iterator[tuple[int, int, object]]:
        """Busy areas that end after ``start``, in address order (do not change the allocator
        while iterating)."""
        check_address(start, "start")
        starts, ends, owner = self._starts, self._ends, self._owner
        for i in range(bisect_right(ends, start), len(starts)):
            s = starts[i]
            yield s, ends[i] - s, owner[s]

    def for_each_free(self, vstart: int, vend: int) -> Iterator[tuple[int, int]]:
        """The holes between busy areas, clipped to ``[vstart, vend)``, in address order.  The
        page 2.6.28 leaves after an area is free space here: no ``vmap_area`` covers it."""
        check_address(vstart, "vstart")
        check_address(vend, "vend")
        lo = max(vstart, self._low)
        hi = min(vend, self._high)
        starts, ends = self._starts, self._ends
        i = bisect_right(ends, lo)
        cursor = lo
        while cursor < hi and i < len(starts):
            s = starts[i]
            if s > cursor:
                top = min(hi, s)
                yield cursor, top - cursor
            cursor = max(cursor, ends[i])
            i += 1
        if cursor < hi:
            yield cursor, hi - cursor

    # -- checking ----------------------------------------------------------------------------
    def check(self) -> None:
        """Raise Inconsistency unless the areas are sorted, disjoint, inside the space, indexed
        consistently, and the cache (if any) names a busy area."""
        starts, ends = self._starts, self._ends
        if len(starts) != len(ends) or len(starts) != len(self._owner):
            raise Inconsistency(f"vmap_area_list: {len(starts)} starts, {len(ends)} ends,"
                                f" {len(self._owner)} owners")
        last_end = self._low
        for s, e in zip(starts, ends):
            if e <= s or s < last_end:
                raise Inconsistency(f"vmap_area_list: area {s:#x}-{e:#x} overlaps or is out of"
                                    " order")
            if s not in self._owner:
                raise Inconsistency(f"vmap_area_list: area {s:#x} has no owner entry")
            last_end = e
        if last_end > self._high:
            raise Inconsistency(f"vmap_area_list: an area ends at {last_end:#x}, past the space")
        cache = self.free_vmap_cache
        if cache is not None and (not self._cached or cache not in self._owner):
            raise Inconsistency(f"free_vmap_cache {cache:#x} is not a busy area")
        if self.cached_hole_size < 0:
            raise Inconsistency(f"cached_hole_size {self.cached_hole_size} is negative")


class RbtreeCacheAllocator(RbtreeAllocator):
    """3.x - 5.1 ``alloc_vmap_area``: the rbtree search started from ``free_vmap_cache``."""

    name = "rbtree-cache"
    _gap_pages = 0
    _cached = True
