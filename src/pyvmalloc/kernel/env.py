"""``KernelEnv``: the kernel services the machine hands mm/vmalloc.c (``vmalloc.env.KernelServices``).

It boots nothing itself: ``kernel.Machine`` makes the layers (arch layout, phys, slab, page
tables, MMU, clock, log, fault injection, trace buffer) and puts them here, with the
interrupt state and the two locks below mm/vmalloc.c (the page allocator's, init_mm's page
table lock).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from pyvmalloc.arch import ArchProfile, BootLayout
from pyvmalloc.kernel.inject import FaultInjector
from pyvmalloc.kernel.kmemleak import Kmemleak
from pyvmalloc.kernel.log import KERN_WARNING, Clock, KernelLog
from pyvmalloc.kernel.trace import TraceBuffer
from pyvmalloc.mmu import Mmu, PageTables
from pyvmalloc.phys import Kmalloc, PhysMem
from pyvmalloc.phys import gfp as G
from pyvmalloc.versions import KernelVersion

_PGTABLE_GFP = G.GFP_KERNEL | getattr(G, "__GFP_ZERO")
_GFP_NOWARN = getattr(G, "__GFP_NOWARN")


class KernelEnv:
    """The machine's side of the seam (``vmalloc.env.KernelServices``); see the module docstring.

    ``phys``, ``slab``, ``init_mm`` and ``mmu`` are attached by ``Machine`` as it boots them
    (page tables take their frames from this object, so it exists first).
    """

    phys: PhysMem
    slab: Kmalloc
    init_mm: PageTables
    mmu: Mmu

    def __init__(self, profile: ArchProfile, layout: BootLayout, kernel: KernelVersion, nr_cpus: int) -> None:
        self.profile = profile
        self.layout = layout
        self.kernel = kernel
        self.nr_cpus = nr_cpus
        self.clock = Clock()
        self.log = KernelLog(self.clock)
        self.faults = FaultInjector(lambda text: self.log.printk(KERN_WARNING, text))
        self.page_lock = threading.RLock()
        self.pgtable_lock = threading.RLock()
        self.trace_buffer: TraceBuffer | None = None
        # kmemleak (kernel/kmemleak.py), when the machine boots with kmemleak=on.
        self.kmemleak: Kmemleak | None = None
        self._irq = threading.local()
        self._irq_blocks = 0  # interrupt() blocks open in any thread: none is the common case
        self._irq_count_lock = threading.Lock()

    # ---- interrupt context ------------------------------------------------------------------
    def in_interrupt(self) -> bool:
        """Whether the calling thread is inside ``with interrupt():``."""
        # With no block open anywhere no thread can be in one: one test instead of reading
        # the thread-local (vmalloc and vfree ask three times per call).
        return self._irq_blocks > 0 and getattr(self._irq, "depth", 0) > 0

    @contextmanager
    def interrupt(self) -> Iterator[None]:
        """Run the block in interrupt context (this thread only)."""
        with self._irq_count_lock:  # the count is shared between threads
            self._irq_blocks += 1
        self._irq.depth = getattr(self._irq, "depth", 0) + 1
        try:
            yield
        finally:
            self._irq.depth -= 1
            with self._irq_count_lock:
                self._irq_blocks -= 1

    # ---- the log ------------------------------------------------------------------------------
    def printk(self, level: int, text: str) -> None:
        """Append a line to the kernel log."""
        self.log.printk(level, text)

    def printk_ratelimit(self) -> bool:
        """The kernel's printk rate limit (10 messages per 5 s of simulated time)."""
        return self.log.printk_ratelimit()

    def warn_on(self, where: str) -> None:
        """``WARNING: at where`` and its report."""
        self.log.warn_on(where)

    def page_alloc_failure(self, gfp: int, order: int) -> None:
        """mm/page_alloc.c, 2.6.22: ``__alloc_pages()`` warns unless __GFP_NOWARN (rate limited)."""
        if not gfp & _GFP_NOWARN and self.printk_ratelimit():
            self.printk(KERN_WARNING, f"vmalloc: page allocation failure. order:{order}, mode:{gfp:#x}")

    # ---- fault injection and the clock --------------------------------------------------------
    def fault_allow(self, point: str, n: int = 1) -> int:
        """One jiffy passes; how many of ``n`` calls at ``point`` may succeed."""
        self.clock.tick()
        return self.faults.allow(point, n)

    # ---- page-table frames ----------------------------------------------------------------------
    def alloc_pgtable_frame(self, order: int) -> int | None:
        """The page source of page tables: zeroed frames, counted as PageTables."""
        if self.faults.allow("pgtable_alloc") == 0:
            self.page_alloc_failure(_PGTABLE_GFP, order)
            return None
        with self.page_lock:
            pfn = self.phys.alloc_pages_node(-1, _PGTABLE_GFP, order, owner="pgtable")
        if pfn is None:
            self.page_alloc_failure(_PGTABLE_GFP, order)
        return pfn

    def free_pgtable_frame(self, pfn: int, order: int) -> None:
        """Give a page-table frame back to the buddy allocator."""
        with self.page_lock:
            self.phys.free_pages(pfn, order)

    # ---- tracing ------------------------------------------------------------------------------
    def trace(self, event: str, fields: dict[str, int], cpu: int | None = None) -> None:
        """Record a tracepoint hit on ``cpu`` (None: the current CPU), when a trace buffer exists."""
        buf = self.trace_buffer
        if buf is not None:
            # The irq-info column: 'h' (hardirq) inside ``with interrupt():`` (a work item on
            # another CPU runs in process context).
            flags = "d.h.." if cpu is None and self.in_interrupt() else "....."
            buf.record(event, int(self.mmu.current_cpu) if cpu is None else cpu, flags, fields)
