"""The interface every kernel-virtual-address-space allocator implements, and the factory.

An allocator owns busy blocks ``[addr, addr + size)`` (sizes include the guard page, as
``vm_struct.size`` does) and the holes between them.  It knows nothing of pages, page tables or
flags: the vmalloc layer above decides what a block means, and attaches an ``owner`` object
(a ``vm_struct``, or a marker for an area waiting for a lazy purge).

Two implementations answer the same questions:

- ``list`` (mm/vmalloc.c, 2.6.22: ``vmlist``): a singly linked list of busy areas sorted by
  address, first fit by walking it; O(n) per allocation, free and lookup.
- ``kva`` (mm/vmalloc.c, 5.2+, 68ad4a330433): free blocks in a balanced tree keyed by address,
  each node augmented with the largest free block in its subtree; lowest-address fit in
  O(log n); busy blocks in a structure with O(log n) lookup.
- ``rbtree`` and ``rbtree-cache`` (mm/vmalloc.c, 2.6.28 - 5.1, db64fe02258f and 89699605fe7c):
  busy ``vmap_area``s in an rbtree and a sorted list, first fit by a descent and a walk;
  2.6.28 leaves an extra page after each busy area, and the 2.6.39+ ``free_vmap_cache`` starts
  the walk at the last allocation (``rbtree_allocator`` says exactly when that answers higher).
- ``kva-rbtree`` (mm/vmalloc.c 6.1/6.12 with lib/rbtree.c): ``kva`` with the kernel's own
  augmented red-black tree, node for node, so that aligned requests take the block the kernel's
  ``find_vmap_lowest_match`` descent takes (``kva_rbtree``).

For requests aligned to at most a page, both return the same addresses for the same sequence
of calls.  For larger alignments ``kva`` follows the kernel's pruning rule (search length
``size + align - 1``) and may answer higher than strict first fit, never lower.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable


@runtime_checkable
class VmapAllocator(Protocol):
    """Busy and free blocks of one kernel virtual address space."""

    name: str

    @property
    def visited(self) -> int:
        """Work counter: tree nodes or list entries the address searches have visited since
        creation (deterministic, unlike host time: what ``bench`` and ``replay`` compare)."""
        ...

    def alloc(self, size: int, align: int, vstart: int, vend: int, owner: object) -> int | None:
        """Lowest address ``a`` with ``a % align == 0`` and ``[a, a + size)`` free inside
        ``[vstart, vend)`` (the kva rule for ``align > page``); marks it busy; None when no hole fits.

        ``size`` and ``align`` are positive, ``size`` page-aligned, ``align`` a power of two.
        """
        ...

    def insert(self, addr: int, size: int, owner: object) -> bool:
        """Mark exactly ``[addr, addr + size)`` busy (snapshots, fixed mappings); False, and no
        change, when it overlaps a busy block."""
        ...

    def remove(self, addr: int) -> object | None:
        """Free the busy block that starts exactly at ``addr``; its owner, or None if none starts there."""
        ...

    def find(self, addr: int) -> object | None:
        """Owner of the busy block that starts exactly at ``addr`` (``__find_vm_area``), else None."""
        ...

    def find_containing(self, addr: int) -> tuple[int, int, object] | None:
        """``(start, size, owner)`` of the busy block containing ``addr``, else None."""
        ...

    def for_each_busy(self, start: int = 0) -> Iterator[tuple[int, int, object]]:
        """``(start, size, owner)`` of busy blocks that end after ``start``, in address order."""
        ...

    def for_each_free(self, vstart: int, vend: int) -> Iterator[tuple[int, int]]:
        """``(start, size)`` of the holes inside ``[vstart, vend)``, in address order."""
        ...

    def __len__(self) -> int:
        """Number of busy blocks."""
        ...

    def check(self) -> None:
        """Raise Inconsistency unless the allocator's own invariants hold (the checker's step 1)."""
        ...


ALLOCATORS = ("list", "kva", "rbtree", "rbtree-cache", "kva-rbtree")


def make_allocator(name: str, page_size: int) -> VmapAllocator:
    """A new, empty allocator called ``name`` (one of ``ALLOCATORS``)."""
    if name == "list":
        from pyvmalloc.vmalloc.list_allocator import ListAllocator

        return ListAllocator(page_size)
    if name == "kva":
        from pyvmalloc.vmalloc.kva_allocator import KvaAllocator

        return KvaAllocator(page_size)
    if name == "kva-rbtree":
        from pyvmalloc.vmalloc.kva_rbtree import KvaRbtreeAllocator

        return KvaRbtreeAllocator(page_size)
    if name == "rbtree":
        from pyvmalloc.vmalloc.rbtree_allocator import RbtreeAllocator

        return RbtreeAllocator(page_size)
    if name == "rbtree-cache":
        from pyvmalloc.vmalloc.rbtree_allocator import RbtreeCacheAllocator

        return RbtreeCacheAllocator(page_size)
    from pyvmalloc.errors import ConfigError

    raise ConfigError(f"unknown allocator {name!r}: choose one of {', '.join(ALLOCATORS)}")
