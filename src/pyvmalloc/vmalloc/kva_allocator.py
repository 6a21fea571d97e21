"""The Linux 5.2+ allocator of kernel virtual addresses: free blocks in an augmented tree.

Uladzislau Rezki's "mm/vmalloc.c: keep track of free blocks for vmap allocation"
(68ad4a330433, Linux 5.2) keeps the *free* space as ``vmap_area`` blocks in a balanced tree
sorted by address, each node augmented with ``subtree_max_size``, the largest free block
below it.  An allocation descends to the lowest-address block that fits in O(log n)
(``find_vmap_lowest_match``) and carves the request out of it (``adjust_va_to_fit_type``:
FL, LE, RE or NE fit); a free merges the block with its free neighbours
(``merge_or_add_vmap_area``).  Busy blocks live in a second tree (``vmap_area_root``), where
``vfree`` finds its block by address as ``__find_vmap_area`` does (a dict beside it cost more
than the descent at a million areas: its inserts miss the cache).

At start the free space is one block covering the whole address space, as the kernel's
``vmap_init_free_space`` covers ``[1, ULONG_MAX)`` (see ``list_allocator`` for our bounds).
"""

from __future__ import annotations

from collections.abc import Iterator

from pyvmalloc.errors import Inconsistency
from pyvmalloc.vmalloc.augtree import AugTree, Node, successor
from pyvmalloc.vmalloc.list_allocator import (
    check_address,
    check_alloc_args,
    check_insert_args,
    space_bounds,
)


class KvaAllocator:
    """Free blocks in an AVL tree augmented with ``subtree_max_size``; O(log n) everything."""

    name = "kva"

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._low, self._high = space_bounds(page_size)
        self._free = AugTree(augment=True)  # free_vmap_area_root
        self._free.insert(Node(self._low, self._high))
        self._busy_tree = AugTree(augment=False)  # vmap_area_root
        self._nbusy = 0  # nodes in the busy tree

    def __len__(self) -> int:
        return self._nbusy

    @property
    def visited(self) -> int:
        """Work counter: free-tree nodes the searches have looked at."""
        return self._free.visited

    def __repr__(self) -> str:
        return f"KvaAllocator(page_size={self.page_size}, busy={self._nbusy})"

    # -- allocation --------------------------------------------------------------------------
    def alloc(self, size: int, align: int, vstart: int, vend: int, owner: object) -> int | None:
        """Lowest-address fit from the free tree (``__alloc_vmap_area``); None when nothing fits.

        For ``align`` above a page the search looks for a block of ``size + align - 1`` bytes,
        which always has room whatever its alignment, unless ``[vstart, vend)`` is exactly
        ``size`` long (5.2+ ``__alloc_vmap_area``, ``adjust_search_size``).  So the answer can
        lie above a lower block that would have fitted after all, and is None when every block
        of ``size + align - 1`` is unusable, even if a shorter one would have done.
        """
        check_alloc_args(self.page_size, size, align, vstart, vend)
        if align > self.page_size and vend - vstart != size:
            length = size + align - 1
        else:
            length = size
        va = self._free.lowest_match(size, align, vstart, length)
        if va is None:
            return None
        start = va.start if va.start > vstart else vstart
        nva = (start + align - 1) & -align
        end = nva + size
        if end > vend:  # the lowest fit is past the window: so is every other
            return None
        self._clip(va, nva, end, owner)
        return nva

    def insert(self, addr: int, size: int, owner: object) -> bool:
        """Carve exactly ``[addr, addr + size)`` out of one free block (``va_clip``, as the
        kernel reserves early ``vmlist`` areas in ``vmap_init_free_space``); False if it is
        not wholly free."""
        check_insert_args(self.page_size, addr, size)
        va = self._free.floor(addr)
        end = addr + size
        if va is None or end > va.end:
            return False
        self._clip(va, addr, end, owner)
        return True

    def _clip(self, va: Node, nva: int, end: int, owner: object) -> None:
        """Move ``[nva, end)`` of free block ``va`` to the busy set (``adjust_va_to_fit_type``)."""
        free = self._free
        if va.start == nva:
            if va.end == end:
                # FL_FIT_TYPE: the block goes whole; its node becomes the busy one
                free.delete(va)
                node = va
                node.owner = owner
                self._nbusy += 1
                self._busy_tree.insert(node)
                return
            va.start = end  # LE_FIT_TYPE: shrink from the left
            free.propagate(va)
        elif va.end == end:
            va.end = nva  # RE_FIT_TYPE: shrink from the right
            free.propagate(va)
        else:
            # NE_FIT_TYPE: split in two; the left part is the new node (the kernel's lva)
            lva = Node(va.start, nva)
            va.start = end
            free.propagate(va)
            free.insert_before(lva, va)
        node = Node(nva, end, owner)
        self._nbusy += 1
        self._busy_tree.insert(node)

    def remove(self, addr: int) -> object | None:
        """Free the block starting at ``addr`` and merge it with its free neighbours
        (``free_vmap_area`` -> ``merge_or_add_vmap_area_augment``)."""
        node = self._busy_node(addr)
        if node is None:
            return None
        self._nbusy -= 1
        self._busy_tree.delete(node)
        owner = node.owner
        node.owner = None
        free = self._free
        start, end = node.start, node.end
        prev, nxt = free.neighbours(start)
        if nxt is not None and nxt.start == end:
            if prev is not None and prev.end == start:
                # both neighbours: prev swallows the block and nxt
                prev.end = nxt.end
                free.propagate(prev)
                free.delete(nxt)
            else:
                nxt.start = start
                free.propagate(nxt)
        elif prev is not None and prev.end == start:
            prev.end = end
            free.propagate(prev)
        else:
            # no neighbour: the busy node itself moves to the free tree, as the kernel's va does
            free.insert(node)
        return owner

    # -- lookup ------------------------------------------------------------------------------
    def _busy_node(self, addr: int) -> Node | None:
        """The busy block starting exactly at ``addr`` (``__find_vmap_area``, then the kernel's
        ``va->va_start == addr`` check); None for anything else, a non-int included."""
        if type(addr) is not int:
            return None
        node = self._busy_tree.floor(addr)
        return node if node is not None and node.start == addr else None

    def find(self, addr: int) -> object | None:
        """Owner of the busy block starting exactly at ``addr``."""
        node = self._busy_node(addr)
        return None if node is None else node.owner

    def find_containing(self, addr: int) -> tuple[int, int, object] | None:
        """``(start, size, owner)`` of the busy block containing ``addr`` (``__find_vmap_area``)."""
        check_address(addr)
        node = self._busy_tree.floor(addr)
        if node is None or addr >= node.end:
            return None
        return node.start, node.end - node.start, node.owner

    def for_each_busy(self, start: int = 0) -> Iterator[tuple[int, int, object]]:
        """Busy blocks that end after ``start``, in address order (do not change the allocator
        while iterating)."""
        check_address(start, "start")
        n = self._busy_tree.floor(start)
        if n is None:
            n = self._busy_tree.first()
        elif n.end <= start:
            n = successor(n)
        for node in self._busy_tree.iter_from(n):
            yield node.start, node.end - node.start, node.owner

    def for_each_free(self, vstart: int, vend: int) -> Iterator[tuple[int, int]]:
        """Free blocks clipped to ``[vstart, vend)``, in address order."""
        check_address(vstart, "vstart")
        check_address(vend, "vend")
        n = self._free.floor(vstart)
        if n is None:
            n = self._free.first()
        for node in self._free.iter_from(n):
            if node.start >= vend:
                break
            lo = node.start if node.start > vstart else vstart
            hi = node.end if node.end < vend else vend
            if lo < hi:
                yield lo, hi - lo

    # -- checking ----------------------------------------------------------------------------
    def largest_free(self) -> int:
        """Size of the largest free block (the root's ``subtree_max_size``), 0 when full."""
        root = self._free.root
        return 0 if root is None else root.max

    def tree_heights(self) -> tuple[int, int]:
        """``(free tree height, busy tree height)``: both stay O(log n)."""
        return self._free.height(), self._busy_tree.height()

    def check(self) -> None:
        """Raise Inconsistency unless both trees are sound, the count matches the busy tree, free
        blocks never touch, and busy plus free blocks tile the address space exactly."""
        self._free.check("free tree")
        nbusy = self._busy_tree.check("busy tree")
        if nbusy != self._nbusy:
            raise Inconsistency(f"busy tree holds {nbusy} blocks, the count says {self._nbusy}")
        busy_tree = self._busy_tree
        blocks = [(n.start, n.end, True) for n in busy_tree.iter_from(busy_tree.first())]
        blocks += [(n.start, n.end, False) for n in self._free.iter_from(self._free.first())]
        check_tiling(blocks, self._low, self._high)


def check_tiling(blocks: list[tuple[int, int, bool]], low: int, high: int) -> None:
    """Raise Inconsistency unless the ``(start, end, busy)`` blocks tile ``[low, high)`` exactly
    and no two free blocks touch (a free path that forgot to merge)."""
    blocks.sort()
    cursor = low
    last_free = False
    for start, end, busy in blocks:
        if start != cursor:
            what = "overlap" if start < cursor else "a hole neither busy nor free"
            raise Inconsistency(f"at {min(start, cursor):#x}: {what}")
        if not busy and last_free:
            raise Inconsistency(f"free blocks touch at {start:#x} and were not merged")
        last_free = not busy
        cursor = end
    if cursor != high:
        raise Inconsistency(f"blocks stop at {cursor:#x}, not at {high:#x}")
