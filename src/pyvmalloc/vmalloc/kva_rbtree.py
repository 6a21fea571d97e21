"""The 5.2+ allocator of kernel virtual addresses with the kernel's own augmented red-black tree.

``kva`` (``kva_allocator``) keeps the free blocks in a balanced tree with ``subtree_max_size``
but not in the kernel's exact tree, so an aligned request (``align`` above a page) can come out
elsewhere than on a real kernel: ``find_vmap_lowest_match`` returns the first node *on its
search path* that can hold the aligned request, and that path depends on the tree's shape.
This module rebuilds that shape step by step, as Linux 6.1 and 6.12 build it:

- ``lib/rbtree.c``: ``__rb_insert`` (insertion cases 1-3, recolouring and rotations) and
  ``__rb_erase_augmented`` / ``__rb_erase_color`` (erase cases 1-4), with the three augment
  callbacks of ``RB_DECLARE_CALLBACKS_MAX`` (``include/linux/rbtree_augmented.h``):
  ``propagate`` stops at the first node whose ``subtree_max_size`` does not change, ``copy``
  and ``rotate`` copy the old subtree root's value to the new one and recompute the old one.
- ``mm/vmalloc.c`` (6.1, 6.12): ``find_vmap_lowest_match`` (search length ``size + align - 1``
  when ``adjust_search_size``), ``is_within_this_va``, ``classify_va_fit_type`` / ``va_clip``
  (FL, LE, RE and NE fits; an NE fit shrinks the block from the left and inserts the remainder
  below it with ``insert_vmap_area_augment(lva, &va->rb_node, ...)``), ``find_va_links``,
  ``__link_va`` (``rb_insert_augmented`` then ``subtree_max_size = 0`` and a propagation),
  ``__merge_or_add_vmap_area`` (merge with the next block first, then the previous one, unlinking
  the next when both merge) and ``merge_or_add_vmap_area_augment``.
- ``vmap_init_free_space``: one free block over the whole space (``[1, ULONG_MAX)`` in the
  kernel, the model's ``space_bounds`` here: the tree's shape is the same).

Every write the kernel makes to a node's colour, links and ``subtree_max_size`` is made here in
the same order, so the tree after any sequence of calls is the kernel's tree node for node.
Busy blocks do not take part in placement; they sit in a dict and a sorted list of starts.

Beyond the allocator interface, :meth:`KvaRbtreeAllocator.release` and
:meth:`KvaRbtreeAllocator.reclaim` let a caller take a busy block out and give free space back
in its own order, as 6.12's purge does (``purge_vmap_node`` returns areas in descending address
order; ``decay_va_pool_node`` merges pooled areas among themselves first), and
:meth:`KvaRbtreeAllocator.hand_over` gives a busy block a new owner without touching the free
tree (a pool hit): ``vmalloc/vmap_node.py`` (``reclaim_list_global``, ``reclaim_decayed``,
``hand_over``) and ``tests/test_kva_rbtree.py``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from pyvmalloc.errors import Inconsistency
from pyvmalloc.vmalloc.kva_allocator import check_tiling
from pyvmalloc.vmalloc.list_allocator import (
    check_address,
    check_alloc_args,
    check_insert_args,
    ULONG_LIMIT,
    space_bounds,
)


class Va:
    """A free ``struct vmap_area``: its range, its ``rb_node`` (links and colour), its place on
    ``free_vmap_area_list`` and ``subtree_max_size``."""

    __slots__ = ("start", "end", "kid", "parent", "red", "max", "prev", "next")

    def __init__(self, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.kid: list[Va | None] = [None, None]  # rb_left, rb_right
        self.parent: Va | None = None
        self.red = False
        self.max = 0  # kmem_cache_zalloc
        self.prev: Va = self  # list_head: a lone node points at itself
        self.next: Va = self

    def __repr__(self) -> str:
        return f"Va({self.start:#x}, {self.end:#x}, {'red' if self.red else 'black'}, max={self.max:#x})"


# -- the augment callbacks (RB_DECLARE_CALLBACKS_MAX with va_size) -------------------------------
def _compute_max(node: Va, stop_if_same: bool) -> bool:
    """``free_vmap_area_rb_augment_cb_compute_max``: True (and no write) when ``exit`` is set
    and the stored value is already right."""
    m = node.end - node.start
    if node.kid[0] is not None and node.kid[0].max > m:
        m = node.kid[0].max
    if node.kid[1] is not None and node.kid[1].max > m:
        m = node.kid[1].max
    if stop_if_same and node.max == m:
        return True
    node.max = m
    return False


def _propagate(node: Va | None, stop: Va | None, early: bool = True) -> None:
    """``augment_tree_propagate_from``'s loop: ``_compute_max(node, True)`` upwards, written
    out (the hot loop of every clip and merge).  ``early=False`` recomputes every ancestor up to
    the root without stopping where nothing changes (KvaRbtreeAllocator.insert_sorted)."""
    while node is not stop and node is not None:
        m = node.end - node.start
        kid = node.kid[0]
        if kid is not None and kid.max > m:
            m = kid.max
        kid = node.kid[1]
        if kid is not None and kid.max > m:
            m = kid.max
        if early and node.max == m:
            break
        node.max = m
        node = node.parent


def _copy(old: Va, new: Va) -> None:
    new.max = old.max


def _rotate(old: Va, new: Va) -> None:
    new.max = old.max
    _compute_max(old, False)


class KvaRbtreeAllocator:
    """Free blocks in the kernel's augmented rbtree, node for node; busy blocks in a dict."""

    name = "kva-rbtree"

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self._low, self._high = space_bounds(page_size)
        self.root: Va | None = None  # free_vmap_area_root
        self.head = Va(0, 0)  # free_vmap_area_list (its sentinel)
        self._busy: dict[int, tuple[int, object]] = {}  # start -> (end, owner)
        self._starts: list[int] = []  # busy starts, sorted
        self.visited = 0  # work counter: free-tree nodes find_vmap_lowest_match looked at
        self._insert_augment(Va(self._low, self._high), None)  # vmap_init_free_space

    def __len__(self) -> int:
        return len(self._busy)

    def __repr__(self) -> str:
        return f"KvaRbtreeAllocator(page_size={self.page_size}, busy={len(self._busy)})"

    # -- lib/rbtree.c ----------------------------------------------------------------------------
    def _change_child(self, old: Va, new: Va | None, parent: Va | None) -> None:
        if parent is None:
            self.root = new
        elif parent.kid[0] is old:
            parent.kid[0] = new
        else:
            parent.kid[1] = new

    def _rotate_set_parents(self, old: Va, new: Va, red: bool) -> None:
        """``__rb_rotate_set_parents``: ``new`` takes ``old``'s parent and colour."""
        parent = old.parent
        new.parent, new.red = old.parent, old.red
        old.parent, old.red = new, red
        self._change_child(old, new, parent)

    def _insert_color(self, node: Va) -> None:
        """``__rb_insert`` with the augment ``rotate`` callback (``rb_insert_augmented``).

        The kernel writes the case ``parent == gparent->rb_left`` and its mirror image out in
        full; here ``d`` is the side of ``parent`` under ``gparent`` and ``e`` the other one."""
        parent = node.parent
        while True:
            if parent is None:
                node.parent, node.red = None, False
                break
            if not parent.red:
                break
            gparent = parent.parent
            assert gparent is not None  # a red node is never the root
            d = 0 if gparent.kid[1] is not parent else 1
            e = 1 - d
            tmp = gparent.kid[e]
            if tmp is not None and tmp.red:  # case 1: colour flips
                tmp.parent, tmp.red = gparent, False
                parent.parent, parent.red = gparent, False
                node = gparent
                parent = node.parent
                node.red = True
                continue
            tmp = parent.kid[e]
            if node is tmp:  # case 2: rotate at parent (left when d is 0)
                tmp = node.kid[d]
                parent.kid[e] = tmp
                node.kid[d] = parent
                if tmp is not None:
                    tmp.parent, tmp.red = parent, False
                parent.parent, parent.red = node, True
                _rotate(parent, node)
                parent = node
                tmp = node.kid[e]
            # case 3: rotate at gparent (right when d is 0)
            gparent.kid[d] = tmp
            parent.kid[e] = gparent
            if tmp is not None:
                tmp.parent, tmp.red = gparent, False
            self._rotate_set_parents(gparent, parent, True)
            _rotate(gparent, parent)
            break

    def _erase_color(self, parent: Va) -> None:
        """``__rb_erase_color``: restore the black heights after a black node went away.

        ``d`` is the side of ``node`` under ``parent`` (the kernel's first branch is ``d`` 0,
        its mirror image ``d`` 1), ``e`` the sibling's side."""
        node: Va | None = None
        while True:
            d = 1 if parent.kid[1] is node else 0
            e = 1 - d
            sibling = parent.kid[e]
            assert sibling is not None  # the other side is one black node higher
            if sibling.red:  # case 1: rotate at parent (left when d is 0)
                tmp1 = sibling.kid[d]
                assert tmp1 is not None
                parent.kid[e] = tmp1
                sibling.kid[d] = parent
                tmp1.parent, tmp1.red = parent, False
                self._rotate_set_parents(parent, sibling, True)
                _rotate(parent, sibling)
                sibling = tmp1
            tmp1 = sibling.kid[e]
            if tmp1 is None or not tmp1.red:
                tmp2 = sibling.kid[d]
                if tmp2 is None or not tmp2.red:  # case 2: sibling colour flip
                    sibling.parent, sibling.red = parent, True
                    if parent.red:
                        parent.red = False
                    else:
                        node = parent
                        up = node.parent
                        if up is not None:
                            parent = up
                            continue
                    break
                # case 3: rotate at sibling (right when d is 0)
                tmp1 = tmp2.kid[e]
                sibling.kid[d] = tmp1
                tmp2.kid[e] = sibling
                parent.kid[e] = tmp2
                if tmp1 is not None:
                    tmp1.parent, tmp1.red = sibling, False
                _rotate(sibling, tmp2)
                tmp1 = sibling
                sibling = tmp2
            # case 4: rotate at parent (left when d is 0), colour flips
            tmp2 = sibling.kid[d]
            parent.kid[e] = tmp2
            sibling.kid[d] = parent
            tmp1.parent, tmp1.red = sibling, False
            if tmp2 is not None:
                tmp2.parent = parent
            self._rotate_set_parents(parent, sibling, False)
            _rotate(parent, sibling)
            break

    def _erase(self, node: Va) -> None:
        """``__rb_erase_augmented`` then ``__rb_erase_color`` (``rb_erase_augmented``)."""
        child = node.kid[1]
        tmp = node.kid[0]
        rebalance: Va | None
        if tmp is None:  # case 1: at most one child, the right one
            parent = node.parent
            self._change_child(node, child, parent)
            if child is not None:
                child.parent, child.red = node.parent, node.red
                rebalance = None
            else:
                rebalance = parent if not node.red else None
            up = parent
        elif child is None:  # still case 1: the left child
            tmp.parent, tmp.red = node.parent, node.red
            parent = node.parent
            self._change_child(node, tmp, parent)
            rebalance = None
            up = parent
        else:
            successor = child
            tmp = child.kid[0]
            sparent = successor  # the successor's parent once it has moved
            if tmp is None:  # case 2: the successor is the right child
                child2 = successor.kid[1]
                _copy(node, successor)
            else:  # case 3: the successor is leftmost below the right child
                while tmp is not None:
                    sparent = successor
                    successor = tmp
                    tmp = tmp.kid[0]
                child2 = successor.kid[1]
                sparent.kid[0] = child2
                successor.kid[1] = child
                child.parent = successor
                _copy(node, successor)
                _propagate(sparent, successor)
            left = node.kid[0]
            assert left is not None
            successor.kid[0] = left
            left.parent = successor
            self._change_child(node, successor, node.parent)
            if child2 is not None:
                successor.parent, successor.red = node.parent, node.red
                child2.parent, child2.red = sparent, False
                rebalance = None
            else:
                was_red = successor.red
                successor.parent, successor.red = node.parent, node.red
                rebalance = sparent if not was_red else None
            up = successor
        _propagate(up, None)
        if rebalance is not None:
            self._erase_color(rebalance)
        node.kid[0] = node.kid[1] = node.parent = None

    # -- mm/vmalloc.c: linking and unlinking ----------------------------------------------------
    def _find_links(self, va: Va, start: Va | None) -> tuple[Va | None, bool] | None:
        """``find_va_links`` from the root (``start`` None) or from a node: ``(parent, is the
        link parent's right)``; None on an overlap (the kernel WARNs)."""
        node = self.root if start is None else start
        if node is None:
            return None, False
        while True:
            if va.end <= node.start:
                nxt, right = node.kid[0], False
            elif va.start >= node.end:
                nxt, right = node.kid[1], True
            else:
                return None
            if nxt is None:
                return node, right
            node = nxt

    def _link(self, va: Va, parent: Va | None, right: bool) -> None:
        """``__link_va`` with ``augment``: list position, ``rb_link_node``,
        ``rb_insert_augmented``, then ``subtree_max_size = 0``."""
        if parent is not None:
            head = parent if right else parent.prev
        else:
            head = self.head
        va.parent, va.red, va.kid[0], va.kid[1] = parent, True, None, None
        if parent is None:
            self.root = va
        elif right:
            parent.kid[1] = va
        else:
            parent.kid[0] = va
        self._insert_color(va)
        va.max = 0
        nxt = head.next  # list_add(&va->list, head)
        va.prev, va.next = head, nxt
        nxt.prev = va
        head.next = va

    def _unlink(self, va: Va) -> None:
        """``unlink_va_augment``: ``rb_erase_augmented`` and ``list_del_init``."""
        self._erase(va)
        va.prev.next = va.next
        va.next.prev = va.prev
        va.prev = va.next = va

    def _insert_augment(self, va: Va, start: Va | None) -> None:
        """``insert_vmap_area_augment`` (``start``: the ``from`` node, or None for the root)."""
        links = self._find_links(va, start)
        if links is None:
            raise Inconsistency(f"free block {va.start:#x}-{va.end:#x} overlaps the free tree")
        self._link(va, *links)
        _propagate(va, None)

    def _merge_or_add(self, va: Va) -> Va:
        """``merge_or_add_vmap_area_augment``: coalesce with the next block, then the previous
        one, else link ``va``; then propagate from the block that holds the range."""
        links = self._find_links(va, None)
        if links is None:
            raise Inconsistency(f"freed range {va.start:#x}-{va.end:#x} overlaps a free block")
        parent, right = links
        merged = False
        if parent is not None:  # get_va_next_sibling
            nxt = parent.next if right else parent
            if nxt is not self.head and nxt.start == va.end:
                nxt.start = va.start
                va = nxt
                merged = True
            prev = nxt.prev
            if prev is not self.head and prev.end == va.start:
                if merged:
                    self._unlink(va)
                prev.end = va.end
                va = prev
                merged = True
        if not merged:
            self._link(va, parent, right)
        _propagate(va, None)
        return va

    # -- mm/vmalloc.c: allocation ---------------------------------------------------------------
    def lowest_match(self, size: int, align: int, vstart: int, adjust: bool) -> Va | None:
        """``find_vmap_lowest_match``: the first block on the search path that holds ``size``
        bytes aligned to ``align`` at or above ``vstart``; the descent prunes subtrees whose
        largest block is under ``size + align - 1`` bytes when ``adjust``."""
        length = size + align - 1 if adjust else size
        mask = -align
        node = self.root
        while node is not None:
            self.visited += 1
            left = node.kid[0]
            if left is not None and left.max >= length and vstart < node.start:
                node = left
                continue
            # is_within_this_va(): the start at or above vstart, aligned, and the request inside
            nva = ((node.start if node.start > vstart else vstart) + align - 1) & mask
            if nva >= vstart and nva + size <= node.end:
                return node
            right = node.kid[1]
            if right is not None and right.max >= length:
                node = right
                continue
            up = node.parent
            while up is not None:
                self.visited += 1
                nva = ((up.start if up.start > vstart else vstart) + align - 1) & mask
                if nva >= vstart and nva + size <= up.end:
                    return up
                r = up.kid[1]
                if r is not None and r.max >= length and vstart <= up.start:
                    vstart = up.start + 1
                    break
                up = up.parent
            node = None if up is None else up.kid[1]
        return None

    def _clip(self, va: Va, nva: int, size: int) -> None:
        """``va_clip``: take ``[nva, nva + size)`` out of free block ``va``."""
        end = nva + size
        if va.start == nva:
            if va.end == end:  # FL_FIT_TYPE
                self._unlink(va)
                return
            va.start = end  # LE_FIT_TYPE
            lva = None
        elif va.end == end:
            va.end = nva  # RE_FIT_TYPE
            lva = None
        else:  # NE_FIT_TYPE
            lva = Va(va.start, nva)
            va.start = end
        _propagate(va, None)
        if lva is not None:
            self._insert_augment(lva, va)

    def _add_busy(self, addr: int, end: int, owner: object) -> None:
        self._busy[addr] = (end, owner)
        bisect.insort(self._starts, addr)

    def alloc(self, size: int, align: int, vstart: int, vend: int, owner: object) -> int | None:
        """``__alloc_vmap_area``: the block ``find_vmap_lowest_match`` picks, clipped; None when
        it finds none or the aligned address ends past ``vend`` (``-ERANGE``: no change)."""
        check_alloc_args(self.page_size, size, align, vstart, vend)
        adjust = not (align <= self.page_size or vend - vstart == size)
        va = self.lowest_match(size, align, vstart, adjust)
        if va is None:
            return None
        start = va.start if va.start > vstart else vstart
        nva = (start + align - 1) & -align
        if nva + size > vend:
            return None
        self._clip(va, nva, size)
        self._add_busy(nva, nva + size, owner)
        return nva

    def insert(self, addr: int, size: int, owner: object) -> bool:
        """Carve exactly ``[addr, addr + size)`` out of the free block that holds it
        (``pcpu_get_vm_areas``: ``pvm_find_va_enclose_addr`` then ``va_clip``); False, and no
        change, when it is not wholly free."""
        check_insert_args(self.page_size, addr, size)
        va = self._enclosing(addr)
        if va is None or addr + size > va.end:
            return False
        self._clip(va, addr, size)
        self._add_busy(addr, addr + size, owner)
        return True

    def insert_sorted(self, items: Iterable[tuple[int, int, object]]) -> int:
        """:meth:`insert` of each ``(addr, size, owner)`` in turn, for ranges in ascending
        address order (a sorted snapshot); how many went in: it stops at the first that
        :meth:`insert` refuses, which is left out.  The tree is the kernel's, node for node.

        Why it is the same tree.  Whether a range is an FL, LE, RE or NE fit, where a node is
        linked and how the tree is recoloured and rotated depend on addresses and colours
        only, never on ``subtree_max_size``; so the links, colours and the free list come out
        as with :meth:`insert` one by one, and so does each ``subtree_max_size`` if every one
        ends up right (the maximum block size in its subtree): the value that fits the shape
        is unique, and the kernel's propagations leave every node right after each call.
        Here, while ranges come out of one free block ``D`` (LE, RE and NE fits shrink it and
        link the NE remainder below it), the propagation from ``D`` is owed instead of made
        after each fit.  Only the nodes whose subtree holds ``D`` (its ancestors and ``D``)
        may then hold a wrong value: a value is only ever computed from a node's children, or
        copied from the node whose place (and subtree) it takes in a rotation, so a node whose
        subtree does not hold ``D`` is computed from right values, and the propagation after
        linking a remainder, stopping where a value does not change, leaves every node it
        does not reach as right as before (so that propagation may stop at ``D``, above
        which every node holds ``D``).  When the next range is not in ``D`` (or empties
        it: FL, whose erase is done as :meth:`insert` does it), every value from ``D`` to the
        root is recomputed from its children, bottom up: then all are right again.  The busy
        blocks are added in the same order.
        """
        dirty: Va | None = None  # the block whose ancestors may hold wrong subtree_max_size
        done = 0
        starts: list[int] = []
        busy = self._busy
        ps = self.page_size
        try:
            for addr, size, owner in items:
                if not (type(size) is int and type(addr) is int and size > 0
                        and not size % ps and 0 <= addr <= ULONG_LIMIT):
                    check_insert_args(ps, addr, size)  # raises the error insert() raises
                end = addr + size
                va = dirty
                if va is None or not ((va.start <= addr and end < va.end) or
                                      (va.start < addr and end == va.end)):
                    # Not an LE, RE or NE fit on the dirty block: settle it first.
                    if dirty is not None:
                        _propagate(dirty, None, early=False)
                        dirty = None
                    va = self._enclosing(addr)
                    if va is None or end > va.end:
                        break
                    if va.start == addr and va.end == end:
                        self._clip(va, addr, size)  # FL_FIT_TYPE: erased, as insert does
                        busy[addr] = (end, owner)
                        starts.append(addr)
                        done += 1
                        continue
                    dirty = va
                if va.start == addr:
                    va.start = end  # LE_FIT_TYPE
                elif va.end == end:
                    va.end = addr  # RE_FIT_TYPE
                else:
                    # NE_FIT_TYPE, as va_clip: shrink from the left, then insert the remainder
                    # below it (insert_vmap_area_augment(lva, &va->rb_node, ...)).
                    lva = Va(va.start, addr)
                    va.start = end
                    links = self._find_links(lva, va)
                    if links is None:
                        raise Inconsistency(f"free block {lva.start:#x}-{lva.end:#x} overlaps "
                                            f"the free tree")
                    self._link(lva, *links)
                    # The remainder is the dirty block's in-order predecessor: the dirty block
                    # is in its right subtree (then the remainder and all above it hold the
                    # dirty block: settled at the end) or is its ancestor (then the nodes
                    # below it on the way up hold the remainder but not the dirty block:
                    # propagate up to it, as _propagate would, stopping where nothing changes).
                    if lva.kid[1] is None:
                        node: Va | None = lva
                        while node is not None and node is not va:
                            if _compute_max(node, True):
                                break
                            node = node.parent
                busy[addr] = (end, owner)
                starts.append(addr)
                done += 1
        finally:
            if dirty is not None:
                _propagate(dirty, None, early=False)
            if starts:
                if ((not self._starts or self._starts[-1] < starts[0])
                        and all(a < b for a, b in zip(starts, starts[1:]))):
                    self._starts.extend(starts)
                else:
                    for a in starts:
                        bisect.insort(self._starts, a)
        return done

    def _enclosing(self, addr: int) -> Va | None:
        """``pvm_find_va_enclose_addr``: the free block with ``start <= addr < end``."""
        node = self.root
        while node is not None:
            if addr < node.start:
                node = node.kid[0]
            elif addr >= node.end:
                node = node.kid[1]
            else:
                return node
        return None

    # -- freeing ----------------------------------------------------------------------------------
    def release(self, addr: int) -> tuple[int, int, object] | None:
        """Take the busy block starting at ``addr`` out of the busy set *without* freeing its
        space: ``(start, size, owner)``; the caller gives the space back with :meth:`reclaim`
        (as a lazily freed area waits on a purge list or a pool).  None if no block starts there."""
        got = self._busy.pop(addr, None)
        if got is None:
            return None
        del self._starts[bisect.bisect_left(self._starts, addr)]
        end, owner = got
        return addr, end - addr, owner

    def reclaim(self, start: int, end: int) -> None:
        """Give ``[start, end)`` back to the free tree (``merge_or_add_vmap_area_augment``); it
        must be space taken out with :meth:`release`."""
        self._merge_or_add(Va(start, end))

    def hand_over(self, addr: int, owner: object) -> object | None:
        """Give the busy block starting at ``addr`` a new owner, the free tree untouched (6.9+
        ``node_alloc``: a pooled area is handed out as it is, it never went back to the free
        tree); the old owner, or None (no change) if no block starts there."""
        got = self._busy.get(addr)
        if got is None:
            return None
        self._busy[addr] = (got[0], owner)
        return got[1]

    def remove(self, addr: int) -> object | None:
        """Free the block starting at ``addr`` and merge it with its free neighbours
        (``free_vmap_area`` -> ``merge_or_add_vmap_area_augment``)."""
        got = self.release(addr)
        if got is None:
            return None
        start, size, owner = got
        self.reclaim(start, start + size)
        return owner

    # -- lookup -----------------------------------------------------------------------------------
    def find(self, addr: int) -> object | None:
        got = self._busy.get(addr)
        return None if got is None else got[1]

    def find_containing(self, addr: int) -> tuple[int, int, object] | None:
        check_address(addr)
        i = bisect.bisect_right(self._starts, addr) - 1
        if i < 0:
            return None
        start = self._starts[i]
        end, owner = self._busy[start]
        if addr >= end:
            return None
        return start, end - start, owner

    def for_each_busy(self, start: int = 0) -> Iterator[tuple[int, int, object]]:
        """Busy blocks that end after ``start``, in address order (do not change the allocator
        while iterating)."""
        check_address(start, "start")
        i = max(bisect.bisect_right(self._starts, start) - 1, 0)
        for s in self._starts[i:]:
            end, owner = self._busy[s]
            if end > start:
                yield s, end - s, owner

    def for_each_free(self, vstart: int, vend: int) -> Iterator[tuple[int, int]]:
        """Free blocks clipped to ``[vstart, vend)``, in address order (``free_vmap_area_list``)."""
        check_address(vstart, "vstart")
        check_address(vend, "vend")
        va = self.head.next
        while va is not self.head:
            if va.start >= vend:
                break
            lo = va.start if va.start > vstart else vstart
            hi = va.end if va.end < vend else vend
            if lo < hi:
                yield lo, hi - lo
            va = va.next

    # -- checking ---------------------------------------------------------------------------------
    def shape(self) -> tuple[object, ...] | None:
        """The free tree as nested ``(start, end, colour, left, right)`` tuples (tests)."""

        def walk(n: Va | None) -> tuple[object, ...] | None:
            if n is None:
                return None
            return (n.start, n.end, "r" if n.red else "b", walk(n.kid[0]), walk(n.kid[1]))

        return walk(self.root)

    def largest_free(self) -> int:
        """The root's ``subtree_max_size``: the largest free block, 0 when full."""
        return 0 if self.root is None else self.root.max

    def check(self) -> None:
        """Raise Inconsistency unless the free tree is a red-black tree (root black, no red
        child of a red node, one black height), ordered, with correct parent links and
        ``subtree_max_size``; the list is the tree in order; free blocks never touch; and busy
        plus free blocks tile the address space."""
        order: list[Va] = []

        def walk(n: Va | None, parent: Va | None) -> tuple[int, int]:
            """(black height, subtree max)"""
            if n is None:
                return 1, 0
            if n.parent is not parent:
                raise Inconsistency(f"free tree: {n.start:#x} has a wrong parent link")
            if n.start >= n.end:
                raise Inconsistency(f"free tree: empty block at {n.start:#x}")
            if n.red and parent is not None and parent.red:
                raise Inconsistency(f"free tree: red {n.start:#x} under a red node")
            lh, lm = walk(n.kid[0], n)
            order.append(n)
            rh, rm = walk(n.kid[1], n)
            if lh != rh:
                raise Inconsistency(f"free tree: black heights {lh} and {rh} below {n.start:#x}")
            m = max(n.end - n.start, lm, rm)
            if n.max != m:
                raise Inconsistency(f"free tree: {n.start:#x} has subtree_max_size {n.max:#x}, "
                                    f"not {m:#x}")
            return lh + (0 if n.red else 1), m

        if self.root is not None and self.root.red:
            raise Inconsistency("free tree: the root is red")
        walk(self.root, None)
        listed: list[Va] = []
        va = self.head.next
        while va is not self.head:
            if va.next.prev is not va:
                raise Inconsistency(f"free list: broken links at {va.start:#x}")
            listed.append(va)
            va = va.next
        if [id(v) for v in listed] != [id(v) for v in order]:
            raise Inconsistency("free list and free tree disagree")
        if len(self._starts) != len(self._busy) or sorted(self._busy) != self._starts:
            raise Inconsistency("busy index and busy dict disagree")
        blocks = [(s, self._busy[s][0], True) for s in self._starts]
        blocks += [(v.start, v.end, False) for v in order]
        check_tiling(blocks, self._low, self._high)
