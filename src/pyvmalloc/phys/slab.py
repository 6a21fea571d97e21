"""kmalloc/kfree: a small slab allocator whose objects live as real bytes in frames of ``PhysMem``.

Model of the parts of mm/slab.c (2.6.22) that mm/vmalloc.c uses: ``kmalloc_node`` for
``struct vm_struct`` and for page-pointer arrays up to PAGE_SIZE, and ``kfree``.

- Size classes are the powers of two from 32 bytes to PAGE_SIZE (2.6.22 also had 96 and 192
  byte caches; the model keeps powers of two).  A slab is one page of objects of one class on
  one node; ``GFP_DMA`` requests use separate slabs from ZONE_DMA, as the kmalloc-dma caches do.
  Larger requests get a block of pages of their own (up to MAX_ORDER).
- ``kmalloc(0)`` gets a smallest object (ZERO_SIZE_PTR came with 2.6.23).
- A handle is ``page_offset + physical address`` of the object, so its bytes are in the frame
  (``__GFP_ZERO`` zeroes them; without it they keep whatever the last user left).  Handles are
  never 0 (NULL): with ``page_offset`` 0, frame 0 is taken once and never used for objects.
- An emptied slab is kept for the next kmalloc of its class, up to ``min_partial`` empty slabs
  per (class, node, DMA) cache; past that its page goes back to the buddy allocator.  Both kernel
  allocators keep empty slabs for exactly this reason (a free/alloc pair of one object must not
  cost a page allocation each time): mm/slab.c's ``free_block()`` frees a slab only while the
  node holds more than ``free_limit`` free objects, mm/slub.c's ``__slab_free()`` discards an
  empty slab only when ``n->nr_partial >= s->min_partial``.  The model follows SLUB's rule
  (``set_min_partial(s, ilog2(s->size) / 2)`` clamped to MIN_PARTIAL..MAX_PARTIAL, 5..10).
  ``kmem_cache_shrink()`` gives every kept empty slab back, as the kernel's does.  Kept slabs are
  slab pages: meminfo's Slab line counts them, as the kernel's NR_SLAB_* counters do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pyvmalloc.errors import KernelBug
from pyvmalloc.phys.gfp import GFP_DMA, GFP_LEVEL_MASK, GFPBIT
from pyvmalloc.phys.memory import OWNER_SLAB, PhysMem

MIN_OBJECT = 32
# mm/slub.c (6.1): MIN_PARTIAL 5, MAX_PARTIAL 10, min_partial = ilog2(size) / 2 clamped to them.
MIN_PARTIAL = 5
MAX_PARTIAL = 10


def _size_class(size: int) -> int:
    """The next power of two from MIN_OBJECT up (kmalloc_index(), as a bit length)."""
    return MIN_OBJECT if size <= MIN_OBJECT else 1 << (size - 1).bit_length()


def min_partial(size: int) -> int:
    """How many empty slabs a cache of ``size``-byte objects keeps (mm/slub.c set_min_partial)."""
    return min(max((size.bit_length() - 1) // 2, MIN_PARTIAL), MAX_PARTIAL)

# mm/slab.c (2.6.22) cache_grow(): "Be lazy and only check for valid flags here", i.e. only
# when a new slab is needed: a zone modifier other than GFP_DMA (say __GFP_HIGHMEM) is a BUG.
# That is why mm/vmalloc.c masks kmalloc_node()'s flags with GFP_LEVEL_MASK.
_SLAB_GFP_OK = GFP_DMA | GFPBIT.ZERO | GFP_LEVEL_MASK


def _check_grow_flags(gfp: int) -> None:
    if gfp & ~_SLAB_GFP_OK:
        raise KernelBug(f"kernel BUG at mm/slab.c: cache_grow() with gfp {gfp:#x} "
                        "(zone modifiers other than GFP_DMA are not allowed)")


@dataclass(frozen=True)
class KmallocStats:
    """What kmalloc holds: live objects, their bytes, and the pages behind them."""

    objects: int
    bytes_requested: int
    bytes_allocated: int  # rounded up to the size class (what ``ksize`` reports)
    slab_pages: int
    slab_bytes: int  # meminfo "Slab:"
    failures: int
    injected_failures: int


class _Slab:
    """One page of objects of one size class."""

    __slots__ = ("pfn", "size", "key", "free", "used")

    def __init__(self, pfn: int, size: int, key: tuple[int, int, bool], count: int) -> None:
        self.pfn = pfn
        self.size = size
        self.key = key
        self.free = list(range(count - 1, -1, -1))  # pop() hands out objects in address order
        self.used: dict[int, int] = {}  # object index -> requested size


class Kmalloc:
    """kmalloc_node/kfree/ksize over the pages of ``mem`` (owner kind ``"slab"``, PG_slab)."""

    def __init__(self, mem: PhysMem, page_offset: int = 0) -> None:
        self.mem = mem
        self.page_offset = int(page_offset)
        self.page_size = mem.page_size
        self.max_size = mem.page_size << (mem.max_order - 1)
        self._slabs: dict[int, _Slab] = {}  # pfn -> slab
        self._partial: dict[tuple[int, int, bool], dict[int, _Slab]] = {}  # (class, node, dma)
        # The empty slabs among the partial ones, per cache: what kmem_cache_shrink() frees.
        self._empty: dict[tuple[int, int, bool], dict[int, _Slab]] = {}
        self._large: dict[int, tuple[int, int]] = {}  # pfn -> (order, requested size)
        self._pinned: list[tuple[int, int]] = []  # (pfn, order) kept so no handle is 0
        self._objects = self._requested = self._allocated = self._pages = 0
        self._failures = self._injected = 0

    # -- allocation ----------------------------------------------------------------------------
    def size_class(self, size: int) -> int:
        """The object size kmalloc(``size``) uses (a block of pages above PAGE_SIZE)."""
        return _size_class(size)

    def kmalloc(self, size: int, gfp: int, node: int = -1) -> int | None:
        """An object of at least ``size`` bytes near ``node`` (-1: local), or None (NULL).

        Fails when ``fail_hook("kmalloc", 1)`` says so (not with __GFP_NOFAIL), when ``size``
        is larger than the largest block, or when no page can be had.  Raises KernelBug when a
        new slab is needed and ``gfp`` carries a zone modifier other than GFP_DMA.
        """
        if not isinstance(size, (int, np.integer)) or size < 0 or size > self.max_size:
            # A negative size_t is huge: the kernel finds no cache and returns NULL.
            self._failures += 1
            return None
        hook = self.mem.fail_hook
        if hook is not None and not gfp & GFPBIT.NOFAIL and int(hook("kmalloc", 1)) < 1:
            self._failures += 1
            self._injected += 1
            return None
        size = int(size)
        cls = _size_class(max(size, 1))
        if cls > self.page_size:
            handle = self._kmalloc_large(size, cls, gfp, node)
        else:
            handle = self._kmalloc_small(size, cls, gfp, node)
        if handle is None:
            self._failures += 1
            return None
        self._objects += 1
        self._requested += size
        self._allocated += cls
        if gfp & GFPBIT.ZERO:
            self._zero(handle - self.page_offset, cls)
        return handle

    def kmalloc_run(self, sizes: list[int], gfps: list[int], node: int = -1) -> list[int | None]:
        """``kmalloc(sizes[i], gfps[i], node)`` for i = 0, 1, ... while a partial slab holds the
        object: what the calls return (None where ``fail_hook`` failed one, as kmalloc), with
        the same state, counters and hook calls after them.

        Stops before the first call that would take a page (a new slab or a large block) or
        that kmalloc refuses for its size; that call and the rest are the caller's (it makes
        the call with :meth:`kmalloc`, which takes the page, and goes on).  A run of small
        objects thus costs no page allocator call and no call of this module per object
        (``snapshot/restore.py`` makes a dump's kmallocs so, between the pages it takes).
        """
        out: list[int | None] = []
        hook = self.mem.fail_hook
        pref = 0 if node < 0 else node
        ps = self.page_size
        base = self.page_offset
        max_size = self.max_size
        partial = self._partial
        empty = self._empty
        # The slab _partial_slab would pick, per (class, dma): the newest partial one, which
        # stays the same until it fills up (only this loop changes the lists meanwhile).
        current: dict[int, _Slab | None] = {}  # by class << 1 | dma
        # Frame views for zeroing: peek() of a frame does not change while objects are zeroed
        # (a never-written frame reads as zeros and stays unwritten).
        views: dict[int, npt.NDArray[np.uint8] | None] = {}
        frames = self.mem.frames
        objects = requested = allocated = 0
        try:
            for size, gfp in zip(sizes, gfps):
                if type(size) is not int:
                    if not isinstance(size, (int, np.integer)):
                        break
                    size = int(size)
                if size < 0 or size > max_size:
                    break
                cls = MIN_OBJECT if size <= MIN_OBJECT else 1 << (size - 1).bit_length()
                if cls > ps:
                    break
                dma = gfp & GFP_DMA
                ck = cls << 1 | (1 if dma else 0)
                if ck in current:
                    slab = current[ck]
                else:
                    slab = current[ck] = self._partial_slab(cls, pref, bool(dma))
                if slab is None:
                    break
                # kmalloc asks the hook after the size checks, before it looks for a slab:
                # the same one question per call here (the partial list is only looked at).
                if hook is not None and not gfp & GFPBIT.NOFAIL and int(hook("kmalloc", 1)) < 1:
                    self._failures += 1
                    self._injected += 1
                    out.append(None)
                    continue
                idx = slab.free.pop()
                used = slab.used
                if not used:
                    empty[slab.key].pop(slab.pfn, None)
                used[idx] = size
                if not slab.free:
                    del partial[slab.key][slab.pfn]
                    del current[ck]
                off = idx * cls
                objects += 1
                requested += size
                allocated += cls
                if gfp & GFPBIT.ZERO:
                    pfn = slab.pfn
                    if pfn in views:
                        view = views[pfn]
                    else:
                        view = views[pfn] = frames.peek(pfn)
                    if view is not None:
                        view[off:off + cls] = 0
                out.append(base + slab.pfn * ps + off)
        finally:
            self._objects += objects
            self._requested += requested
            self._allocated += allocated
        return out

    def _kmalloc_small(self, size: int, cls: int, gfp: int, node: int) -> int | None:
        dma = bool(gfp & GFP_DMA)
        pref = 0 if node < 0 else node
        slab = self._partial_slab(cls, pref, dma)
        if slab is None:
            nodes = [(pref + i) % len(self.mem.nodes) for i in range(len(self.mem.nodes))]
            # cache_grow(cachep, flags | GFP_THISNODE, nodeid) first, then fallback_alloc():
            # partial slabs of the other nodes, then a page from wherever the zonelist gives.
            slab = self._grow(cls, pref, dma, gfp, this_node=True)
            for other in nodes[1:]:
                if slab is None:
                    slab = self._partial_slab(cls, other, dma)
            if slab is None:
                slab = self._grow(cls, pref, dma, gfp, this_node=False)
            if slab is None:
                return None
        idx = slab.free.pop()
        if not slab.used:
            self._empty[slab.key].pop(slab.pfn, None)
        slab.used[idx] = size
        if not slab.free:
            del self._partial[slab.key][slab.pfn]
        return self.page_offset + slab.pfn * self.page_size + idx * cls

    def _partial_slab(self, cls: int, node: int, dma: bool) -> _Slab | None:
        slabs = self._partial.get((cls, node, dma))
        if not slabs:
            return None
        return slabs[next(reversed(slabs))]

    def _grow(self, cls: int, node: int, dma: bool, gfp: int, this_node: bool) -> _Slab | None:
        _check_grow_flags(gfp)
        page_gfp = (gfp & GFP_LEVEL_MASK) | (GFP_DMA if dma else 0)
        if this_node:
            page_gfp |= GFPBIT.THISNODE
        pfn = self._get_pages(node, page_gfp, 0)
        if pfn is None:
            return None
        key = (cls, self.mem.node_of(pfn), dma)
        slab = _Slab(pfn, cls, key, self.page_size // cls)
        self._slabs[pfn] = slab
        self._partial.setdefault(key, {})[pfn] = slab
        self._empty.setdefault(key, {})[pfn] = slab
        return slab

    def _kmalloc_large(self, size: int, cls: int, gfp: int, node: int) -> int | None:
        _check_grow_flags(gfp)
        order = (cls // self.page_size).bit_length() - 1
        pfn = self._get_pages(node, gfp & (GFP_LEVEL_MASK | GFP_DMA), order)
        if pfn is None:
            return None
        self._large[pfn] = (order, size)
        return self.page_offset + pfn * self.page_size

    def _get_pages(self, node: int, gfp: int, order: int) -> int | None:
        """A block for slabs, never the one whose handle would be 0 (NULL)."""
        pfn = self.mem.alloc_pages_node(node, gfp, order, owner=OWNER_SLAB)
        if pfn == 0 and self.page_offset == 0:
            self._pinned.append((pfn, order))
            self._pages += 1 << order
            pfn = self.mem.alloc_pages_node(node, gfp, order, owner=OWNER_SLAB)
        if pfn is not None:
            self._pages += 1 << order
        return pfn

    def _zero(self, phys: int, n: int) -> None:
        pfn, off = divmod(phys, self.page_size)
        while n > 0:
            take = min(n, self.page_size - off)
            view = self.mem.frames.peek(pfn)
            if view is not None:  # a never-written frame reads as zeros already
                view[off:off + take] = 0
            n -= take
            pfn, off = pfn + 1, 0

    # -- free ----------------------------------------------------------------------------------
    def _lookup(self, handle: int, what: str) -> tuple[_Slab | None, int]:
        """(slab, object index) or (None, pfn of a large block) for ``handle``; KernelBug if none."""
        if not isinstance(handle, (int, np.integer)):
            raise KernelBug(f"{what}: {handle!r} is not an address")
        pfn, off = divmod(int(handle) - self.page_offset, self.page_size)
        slab = self._slabs.get(pfn)
        if slab is not None and off % slab.size == 0:
            return slab, off // slab.size
        if slab is None and off == 0 and pfn in self._large:
            return None, pfn
        # virt_to_cache() of a page that is not a slab page: BUG_ON(!PageSlab(page)).
        raise KernelBug(f"{what}: {handle:#x} is not an object kmalloc handed out")

    def kfree(self, handle: int) -> None:
        """Give back the object at ``handle``; kfree(0) does nothing; a double free is a BUG."""
        if handle == 0:
            return
        slab, idx = self._lookup(handle, "kfree")
        if slab is None:
            order, size = self._large.pop(idx)
            self.mem.free_pages(idx, order)
            self._pages -= 1 << order
            self._objects -= 1
            self._requested -= size
            self._allocated -= self.page_size << order
            return
        requested = slab.used.pop(idx, None)
        if requested is None:
            raise KernelBug(f"kfree: double free of {handle:#x}")
        slab.free.append(idx)
        self._objects -= 1
        self._requested -= requested
        self._allocated -= slab.size
        partial = self._partial.setdefault(slab.key, {})
        if not slab.used:
            empty = self._empty.setdefault(slab.key, {})
            if len(empty) >= min_partial(slab.size):
                partial.pop(slab.pfn, None)
                self._discard(slab)
                return
            empty[slab.pfn] = slab
        partial[slab.pfn] = slab

    def _discard(self, slab: _Slab) -> None:
        """discard_slab(): an empty slab's page back to the buddy allocator."""
        del self._slabs[slab.pfn]
        self.mem.free_pages(slab.pfn, 0)
        self._pages -= 1

    def kmem_cache_shrink(self, size: int | None = None) -> int:
        """Give back every empty slab kept (of the class ``size`` falls in, or of every class);
        returns the number of pages freed (mm/slub.c ``kmem_cache_shrink``/``__kmem_cache_shrink``)."""
        cls = None if size is None else self.size_class(max(int(size), 1))
        freed = 0
        for key, empty in self._empty.items():
            if cls is not None and key[0] != cls:
                continue
            partial = self._partial[key]
            for pfn, slab in list(empty.items()):
                del partial[pfn]
                self._discard(slab)
                freed += 1
            empty.clear()
        return freed

    def live_objects(self) -> dict[int, int]:
        """Every live object: handle -> the size it was requested with (a walk of the slabs,
        for checkers; not a hot path)."""
        out: dict[int, int] = {}
        base, ps = self.page_offset, self.page_size
        for pfn, sl in self._slabs.items():
            for idx, size in sl.used.items():
                out[base + pfn * ps + idx * sl.size] = size
        for pfn, (_order, size) in self._large.items():
            out[base + pfn * ps] = size
        return out

    def ksize(self, handle: int) -> int:
        """Usable size of the object at ``handle`` (its size class); 0 for NULL."""
        if handle == 0:
            return 0
        slab, idx = self._lookup(handle, "ksize")
        if slab is None:
            return self.page_size << self._large[idx][0]
        if idx not in slab.used:
            raise KernelBug(f"ksize: {handle:#x} is free")
        return slab.size

    def phys_of(self, handle: int) -> int:
        """Physical address of the object at ``handle`` (where its bytes live in ``mem.frames``)."""
        return handle - self.page_offset

    def empty_slabs(self) -> int:
        """Empty slabs kept for reuse (pages kmem_cache_shrink() would free)."""
        return sum(len(e) for e in self._empty.values())

    def statistics(self) -> KmallocStats:
        """Live objects and bytes, slab pages (kept empty slabs included), failures."""
        return KmallocStats(self._objects, self._requested, self._allocated, self._pages,
                            self._pages * self.page_size, self._failures, self._injected)
