"""The kernel services mm/vmalloc.c is handed: the seam between it and the machine around it.

Like the kernel's userspace harness for the VMA code (``tools/testing/vma``), which compiles
mm/vma.c against stubs of the rest of the kernel, the model's mm/vmalloc.c (``api.Vmalloc``)
does not know what machine it runs on: it is given one object that provides

- the boot facts: ``profile`` (the arch), ``layout`` (where the ranges lie; a restored snapshot
  may replace it), ``kernel`` (the version), ``nr_cpus``;
- physical memory and kmalloc: ``phys``, ``slab`` and the page allocator's lock
  (``page_lock``, zone->lock; lock order: vmlist_lock, then the page lock);
- the page tables and the MMU: ``init_mm``, ``mmu``, init_mm's ``pgtable_lock``
  (``page_table_lock``), and the frames page tables are made of (``alloc_pgtable_frame``,
  ``free_pgtable_frame``: user page tables take them too);
- the clock and the log: ``printk``, ``printk_ratelimit``, ``warn_on`` and the page
  allocator's failure warning (``page_alloc_failure``, mm/page_alloc.c's);
- fault injection (``fault_allow``, which also advances the clock by one jiffy: every search
  for address space is one);
- ``in_interrupt``;
- the trace buffer (``trace``: one tracepoint hit; called only while tracing is on, which the
  machine tells the component with ``Vmalloc.set_tracing``);
- kmemleak (``kmemleak``: :class:`KmemleakHooks`, or None when the machine was not booted with
  ``kmemleak=on``; ``kernel.kmemleak.Kmemleak`` is the machine's).

``kernel.env.KernelEnv`` is the machine's implementation; ``kernel.Machine`` builds it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pyvmalloc.arch import ArchProfile, BootLayout
    from pyvmalloc.vmalloc.vm_struct import vm_struct
    from pyvmalloc.mmu import Mmu, PageTables
    from pyvmalloc.phys import Kmalloc, PhysMem
    from pyvmalloc.versions import KernelVersion


class KmemleakHooks(Protocol):
    """The two kmemleak calls mm/vmalloc.c makes (mm/kmemleak.c)."""

    def vmalloc(self, area: vm_struct, size: int) -> None:
        """``kmemleak_vmalloc(area, size, gfp)`` as ``__vmalloc_node_range`` calls it: register
        the block unless the area carries VM_DEFER_KMEMLEAK (5.16+)."""
        ...

    def free(self, addr: int | None) -> None:
        """``kmemleak_free(addr)``: unregister the object at ``addr`` (nothing if none)."""
        ...


class KernelServices(Protocol):
    """What mm/vmalloc.c needs from the rest of the kernel (see the module docstring)."""

    profile: ArchProfile
    layout: BootLayout
    kernel: KernelVersion
    nr_cpus: int
    phys: PhysMem
    slab: Kmalloc
    page_lock: threading.RLock
    init_mm: PageTables
    mmu: Mmu
    pgtable_lock: threading.RLock

    @property
    def kmemleak(self) -> KmemleakHooks | None:
        """kmemleak's hooks, or None (not booted with ``kmemleak=on``)."""
        ...

    def alloc_pgtable_frame(self, order: int) -> int | None:
        """A zeroed frame for a page table (None when none can be had; the warning is logged)."""
        ...

    def free_pgtable_frame(self, pfn: int, order: int) -> None:
        """Give back a page-table frame."""
        ...

    def in_interrupt(self) -> bool:
        """Whether the calling thread is in interrupt context."""
        ...

    def printk(self, level: int, text: str) -> None:
        """Log one kernel message."""
        ...

    def printk_ratelimit(self) -> bool:
        """Whether a rate-limited message may print now."""
        ...

    def warn_on(self, where: str) -> None:
        """Log ``WARNING: at where`` (the WARN_ON macro's report)."""
        ...

    def page_alloc_failure(self, gfp: int, order: int) -> None:
        """The page allocator's rate-limited failure warning (none under __GFP_NOWARN)."""
        ...

    def fault_allow(self, point: str, n: int = 1) -> int:
        """How many of ``n`` calls at ``point`` may succeed (fault injection); one jiffy passes."""
        ...

    def trace(self, event: str, fields: dict[str, int], cpu: int | None = None) -> None:
        """Record one hit of tracepoint ``event`` with its TP_STRUCT fields, on ``cpu`` (None:
        the current CPU)."""
        ...
