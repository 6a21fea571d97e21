"""The work counters a sweep records per run, read from a machine in one place.

Deterministic counts only (never host time), so that a run gives the same row on any host.
They come from ``Machine.stats()``: free-tree nodes or list entries the address searches
visited, init_mm leaf entries written and cleared, TLB flushes and the pages they covered, lazy
purges, ``vmlist_lock`` acquisitions, buddy-allocator work and, on 6.9+, the vmap nodes' pool
hits and lock acquisitions.  ``work_counters`` is what every workload and the Parquet schema
use; a counter a sweep should record is added here.  ``kernel/work.py`` reads the same
``stats()`` for ``bench`` and ``replay`` as five sums per operation (visited, pages, PTEs, locks,
TLB flushes); this keeps the raw counters one column each, so the schema says what was counted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyvmalloc.facade import Machine

__all__ = ["COUNTERS", "work_counters"]

# Column name -> the ``Machine.stats()`` key it reads (a missing key, as the vmap-node counters
# before 6.9, reads 0 so every run has the same columns).
COUNTERS: dict[str, str] = {
    "nodes_visited": "work.nodes_visited",
    "ptes_touched": "work.ptes_touched",
    "tlb_flushes": "tlb.flushes",
    "tlb_full_flushes": "tlb.full_flushes",
    "tlb_pages_flushed": "tlb.pages_flushed",
    "purge_runs": "vm.purge_runs",
    "purged_areas": "vm.purged_areas",
    "lazy_frees": "vm.lazy_frees",
    "lock_writes": "vmlist_lock.write",
    "lock_reads": "vmlist_lock.read",
    "page_allocs": "phys.allocs",
    "buddy_splits": "phys.splits",
    "buddy_merges": "phys.merges",
    "pool_hits": "vmap_node.pool_hits",
    "pool_misses": "vmap_node.pool_misses",
}


def work_counters(m: Machine) -> dict[str, int]:
    """The run's work so far: every ``COUNTERS`` column, plus ``node_locks``, the vmap nodes'
    lock acquisitions summed over nodes (their keys name each node, so they are not columns)."""
    stats = m.stats()
    out = {col: int(stats.get(key, 0)) for col, key in COUNTERS.items()}
    out["node_locks"] = sum(int(v) for k, v in stats.items() if k.startswith("vmap_node.lock."))
    return out
