"""Deterministic work counters of a machine: what a run did, counted, not timed.

Host time on a shared machine varies by a quarter between runs; these counts do not, so a
comparison of allocators (``pyvmalloc bench``, ``pyvmalloc replay``) can say how much work each
did as well as how long it took.  Each counter reads ``Machine.stats()``, where the layers'
own counters are gathered (``work.*`` are the allocator's and init_mm's):

``visited``
    tree nodes or list entries the address searches looked at (the allocator's ``visited``:
    vmlist entries for ``list``, the rbtree descent plus the list walk for ``rbtree``, free-tree
    nodes for ``kva`` and ``kva-rbtree``);
``pages``
    frames allocated plus frames freed by the page allocator;
``ptes``
    leaf entries of init_mm written by mapping plus cleared by unmapping;
``locks``
    ``vmlist_lock`` (``vmap_area_lock``) acquisitions, readers and writers;
``tlb_flushes``
    TLB flush calls (a range or the whole TLB, of every CPU).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvmalloc.kernel.machine import Machine

FIELDS = ("visited", "pages", "ptes", "locks", "tlb_flushes")


@dataclass(frozen=True)
class WorkCounters:
    """A reading of the counters (see the module docstring); subtract two for a run's work."""

    visited: int = 0
    pages: int = 0
    ptes: int = 0
    locks: int = 0
    tlb_flushes: int = 0

    def __sub__(self, other: WorkCounters) -> WorkCounters:
        return WorkCounters(*(getattr(self, f) - getattr(other, f) for f in FIELDS))

    def __add__(self, other: WorkCounters) -> WorkCounters:
        return WorkCounters(*(getattr(self, f) + getattr(other, f) for f in FIELDS))

    def as_dict(self) -> dict[str, int]:
        """The counters by name."""
        return asdict(self)

    def per_op(self, ops: int) -> dict[str, float]:
        """Each counter divided by ``ops`` (0 when there were none)."""
        return {f: (getattr(self, f) / ops if ops else 0.0) for f in FIELDS}


def work_counters(m: Machine) -> WorkCounters:
    """The machine's counters now."""
    st = m.stats()
    return WorkCounters(
        visited=st["work.nodes_visited"],
        pages=st["phys.pages_allocated"] + st["phys.pages_freed"],
        ptes=st["work.ptes_touched"],
        locks=st["vmlist_lock.read"] + st["vmlist_lock.write"],
        tlb_flushes=st["tlb.flushes"],  # full flushes are counted there too
    )
