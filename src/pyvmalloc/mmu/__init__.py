"""Layer mmu: page tables in real frames, walk/translate, per-CPU TLBs and flushes.

``PageTables`` (pagetable.py) is one address space's tables in the arch's real entry format;
``Mmu`` and ``Tlb`` (tlb.py) are the CPUs: accesses through the TLB, then the walk, with
page faults and flushes.
"""

from pyvmalloc.mmu.pagetable import (
    PageTables,
    TableFrames,
    WalkStep,
    access_fault_reason,
)
from pyvmalloc.mmu.tlb import Mmu, Tlb, TlbEntry

__all__ = ["Mmu", "PageTables", "TableFrames", "Tlb", "TlbEntry", "WalkStep",
           "access_fault_reason"]
