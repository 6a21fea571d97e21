"""An AVL tree of disjoint address ranges, optionally augmented with the largest range per subtree.

The kernel keeps ``vmap_area`` nodes in red-black trees (lib/rbtree.c, the free one augmented
through ``RB_DECLARE_CALLBACKS_MAX`` with ``subtree_max_size``).  We use AVL instead: it is
shorter to write iteratively in Python, keeps the height below 1.44 log2(n) and is just as
deterministic.  Nodes carry parent pointers, as ``rb_node`` does, so the search can climb back
(``find_vmap_lowest_match``) and a node can be unlinked or re-augmented in place without a
search.  Node objects are never copied: a caller may keep a reference (the busy dict does) and
move a node from one tree to another, as the kernel moves a ``vmap_area``.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyvmalloc.errors import Inconsistency


class Node:
    """One range ``[start, end)``: a ``vmap_area``."""

    __slots__ = ("start", "end", "owner", "left", "right", "parent", "height", "max")

    def __init__(self, start: int, end: int, owner: object = None) -> None:
        self.start = start
        self.end = end
        self.owner = owner
        self.left: Node | None = None
        self.right: Node | None = None
        self.parent: Node | None = None
        self.height = 1
        self.max = end - start  # subtree_max_size: largest end - start in this subtree

    def __repr__(self) -> str:
        return f"Node({self.start:#x}, {self.end:#x})"


def successor(n: Node) -> Node | None:
    """The next node in address order (``rb_next``)."""
    r = n.right
    if r is not None:
        while r.left is not None:
            r = r.left
        return r
    p = n.parent
    while p is not None and n is p.right:
        n = p
        p = p.parent
    return p


def _make_leaf(node: Node) -> None:
    node.left = node.right = None
    node.height = 1
    node.max = node.end - node.start


class AugTree:
    """Disjoint ranges keyed by ``start``; with ``augment`` each node keeps ``max``.

    Without ``augment`` (the busy tree) ``max`` is left stale: keeping it would make every
    insert of a larger area climb to the root.
    """

    __slots__ = ("root", "augment", "visited")

    def __init__(self, augment: bool) -> None:
        self.root: Node | None = None
        self.augment = augment
        self.visited = 0  # work counter: nodes lowest_match() has looked at

    # -- queries -----------------------------------------------------------------------------
    def first(self) -> Node | None:
        """The lowest node."""
        n = self.root
        if n is not None:
            while n.left is not None:
                n = n.left
        return n

    def floor(self, key: int) -> Node | None:
        """The node with the largest ``start <= key``."""
        n = self.root
        best = None
        while n is not None:
            if key < n.start:
                n = n.left
            else:
                best = n
                if key == n.start:
                    break
                n = n.right
        return best

    def neighbours(self, key: int) -> tuple[Node | None, Node | None]:
        """``(floor, ceiling)`` of a ``key`` that starts no node: one descent gives both, as
        ``find_va_links`` plus the list sibling does in ``__merge_or_add_vmap_area``."""
        n = self.root
        prev = nxt = None
        while n is not None:
            if key < n.start:
                nxt = n
                n = n.left
            else:
                prev = n
                n = n.right
        return prev, nxt

    def iter_from(self, n: Node | None) -> Iterator[Node]:
        """``n`` and every node after it, in address order."""
        while n is not None:
            yield n
            n = successor(n)

    def lowest_match(self, size: int, align: int, vstart: int, length: int) -> Node | None:
        """The lowest node of at least ``length`` in which an ``align``-aligned ``size`` fits
        at or after ``vstart`` (mm/vmalloc.c 5.2+: ``find_vmap_lowest_match``).

        The walk is the kernel's: go left while the left subtree holds a block of ``length``
        and may lie after ``vstart``, else try this node, else go right if that subtree holds
        one, else climb to the first ancestor entered from the left and try it and its right.
        Two deliberate differences: a node is tried only if it is itself at least ``length``
        long (the kernel also accepts a shorter node that happens to lie on its path, so its
        answer depends on the red-black shape; ours depends only on the free blocks), and the
        climb skips ancestors entered from the right (the kernel bumps ``vstart`` past them
        instead, which gives the same answer after a second look).
        """
        mask = align - 1
        n = self.root
        while n is not None:
            self.visited += 1
            left = n.left
            if left is not None and left.max >= length and vstart < n.start:
                n = left
                continue
            while True:
                # is_within_this_va(), for a node long enough
                self.visited += 1
                s = n.start
                if n.end - s >= length:
                    if s < vstart:
                        s = vstart
                    if ((s + mask) & ~mask) + size <= n.end:
                        return n
                right = n.right
                if right is not None and right.max >= length:
                    n = right
                    break
                # climb to the first ancestor whose left subtree we came from
                child = n
                n = n.parent
                while n is not None and child is n.right:
                    self.visited += 1
                    child = n
                    n = n.parent
                if n is None:
                    return None
        return None

    # -- updates -----------------------------------------------------------------------------
    def insert(self, node: Node) -> None:
        """Link ``node`` (not in any tree) at its place by ``start``."""
        _make_leaf(node)
        p = self.root
        if p is None:
            node.parent = None
            self.root = node
            return
        key = node.start
        while True:
            if key < p.start:
                c = p.left
                if c is None:
                    p.left = node
                    break
            else:
                c = p.right
                if c is None:
                    p.right = node
                    break
            p = c
        node.parent = p
        self._retrace(p, None)

    def insert_before(self, node: Node, succ: Node) -> None:
        """Link ``node`` as the in-order predecessor of ``succ`` without comparing keys
        (``insert_vmap_area_augment(lva, &va->rb_node, ...)`` starts the search at ``va``)."""
        _make_leaf(node)
        p = succ.left
        if p is None:
            succ.left = node
            p = succ
        else:
            while p.right is not None:
                p = p.right
            p.right = node
        node.parent = p
        self._retrace(p, None)

    def delete(self, z: Node) -> None:
        """Unlink ``z``; its fields other than start/end/owner are garbage afterwards."""
        left, right = z.left, z.right
        if left is None or right is None:
            child = left if left is not None else right
            p = z.parent
            self._replace(z, child)
            if p is not None:
                self._retrace(p, None)
            return
        # Two children: the successor y takes z's place.
        y = right
        while y.left is not None:
            y = y.left
        if y.parent is z:
            low = None
        else:
            low = y.parent
            self._replace(y, y.right)
            y.right = right
            right.parent = y
        self._replace(z, y)
        y.left = left
        left.parent = y
        # What z's ancestors last saw; the retrace compares against it to stop early.
        y.height = z.height
        y.max = z.max
        if low is not None:
            self._retrace(low, y)  # the nodes between y's old place and its new one
        self._retrace(y, None)

    def propagate(self, n: Node | None) -> None:
        """Recompute ``max`` from ``n`` upwards after its size changed
        (``augment_tree_propagate_from``); stops where nothing changes."""
        while n is not None:
            m = n.end - n.start
            c = n.left
            if c is not None and c.max > m:
                m = c.max
            c = n.right
            if c is not None and c.max > m:
                m = c.max
            if m == n.max:
                return
            n.max = m
            n = n.parent

    # -- AVL machinery -----------------------------------------------------------------------
    def _replace(self, old: Node, new: Node | None) -> None:
        """Put ``new`` where ``old`` hangs from its parent."""
        p = old.parent
        if new is not None:
            new.parent = p
        if p is None:
            self.root = new
        elif p.left is old:
            p.left = new
        else:
            p.right = new

    def _fix(self, n: Node) -> None:
        left, right = n.left, n.right
        hl = left.height if left is not None else 0
        hr = right.height if right is not None else 0
        n.height = (hl if hl > hr else hr) + 1
        if self.augment:
            m = n.end - n.start
            if left is not None and left.max > m:
                m = left.max
            if right is not None and right.max > m:
                m = right.max
            n.max = m

    def _rotate(self, x: Node, up: Node) -> Node:
        """Rotate child ``up`` of ``x`` into ``x``'s place; ``x`` becomes its child."""
        if up is x.right:
            b = up.left
            x.right = b
            up.left = x
        else:
            b = up.right
            x.left = b
            up.right = x
        if b is not None:
            b.parent = x
        self._replace(x, up)
        x.parent = up
        self._fix(x)
        self._fix(up)
        return up

    def _retrace(self, n: Node | None, stop: Node | None) -> None:
        """Rebalance and re-augment from ``n`` up to (not including) ``stop``; stop early once
        a subtree's height and ``max`` are what its parent already saw."""
        while n is not None and n is not stop:
            old_h = n.height
            old_m = n.max
            left, right = n.left, n.right
            hl = left.height if left is not None else 0
            hr = right.height if right is not None else 0
            if hl > hr + 1 or hr > hl + 1:
                # the taller child comes up; if its inner grandchild is the taller one, that
                # grandchild comes up first (the double rotation)
                heavy = left if hl > hr else right
                assert heavy is not None
                if heavy is left:
                    inner, outer = heavy.right, heavy.left
                else:
                    inner, outer = heavy.left, heavy.right
                if inner is not None and inner.height > (outer.height if outer is not None else 0):
                    heavy = self._rotate(heavy, inner)
                n = self._rotate(n, heavy)
            else:
                self._fix(n)
            if n.height == old_h and n.max == old_m:
                return
            n = n.parent

    # -- checking ----------------------------------------------------------------------------
    def check(self, what: str) -> int:
        """Raise Inconsistency unless links, order, balance and ``max`` hold; the node count."""
        last_end = None
        if self.root is not None and self.root.parent is not None:
            raise Inconsistency(f"{what}: the root has a parent")
        # in-order walk with an explicit stack: deep trees must not hit the recursion limit
        stack: list[Node] = []
        order: list[Node] = []
        n = self.root
        while stack or n is not None:
            while n is not None:
                stack.append(n)
                n = n.left
            n = stack.pop()
            order.append(n)
            n = n.right
        for node in order:
            if node.end <= node.start:
                raise Inconsistency(f"{what}: empty range {node!r}")
            if last_end is not None and node.start < last_end:
                raise Inconsistency(f"{what}: {node!r} overlaps or is out of order")
            last_end = node.end
            for c in (node.left, node.right):
                if c is not None and c.parent is not node:
                    raise Inconsistency(f"{what}: broken parent link below {node!r}")
            hl = node.left.height if node.left is not None else 0
            hr = node.right.height if node.right is not None else 0
            if node.height != max(hl, hr) + 1 or abs(hl - hr) > 1:
                raise Inconsistency(f"{what}: {node!r} height {node.height} vs {hl}/{hr}")
            if self.augment:
                m = max(node.end - node.start,
                        node.left.max if node.left is not None else 0,
                        node.right.max if node.right is not None else 0)
                if node.max != m:
                    raise Inconsistency(f"{what}: {node!r} subtree_max_size {node.max} != {m}")
        return len(order)

    def height(self) -> int:
        """Height of the tree (0 when empty)."""
        return self.root.height if self.root is not None else 0
