"""``Machine``: boots arch, phys and mmu for a profile and runs mm/vmalloc.c on them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt

from pyvmalloc.arch import PROFILES, ArchProfile, boot_layout, get_profile
from pyvmalloc.sizes import parse_size
from pyvmalloc.errors import ConfigError
from pyvmalloc.formats.trace import TraceEvent
from pyvmalloc.kernel import proc
from pyvmalloc.kernel.check import check_machine
from pyvmalloc.kernel.inject import FaultInjector
from pyvmalloc.kernel.log import KERN_INFO, KERN_WARNING, Clock, KernelLog
from pyvmalloc.kernel.trace import DEFAULT_BUFFER_SIZE, TraceBuffer
from pyvmalloc.mmu import Mmu, PageTables
from pyvmalloc.phys import Kmalloc, PhysMem
from pyvmalloc.phys import gfp as G
from pyvmalloc.vmalloc.allocator import ALLOCATORS, make_allocator
from pyvmalloc.versions import KernelVersion, allocator_for, has, meminfo_generation, resolve
from pyvmalloc.vmalloc.api import Vmalloc
from pyvmalloc.vmalloc.vm_struct import FixedRange


MAX_CPUS = 4096  # NR_CPUS of the largest distribution configs

_PGTABLE_GFP = G.GFP_KERNEL | getattr(G, "__GFP_ZERO")


class Machine(Vmalloc):
    """A simulated machine running Linux's vmalloc: ``pv.Machine(arch="x86_64", ram="2G")``.

    ``kernel`` is the Linux version the machine runs ("2.6.22", "3.4.5", "6.1"...; default
    ``versions.DEFAULT_KERNEL``): every rule that changed between releases follows it
    (``versions.py``: the vmalloc range, ioremap alignment, the allocator, lazy purge and its
    worker, vfree in interrupt context, messages, /proc formats).  ``allocator`` (``"list"``,
    ``"rbtree"``, ``"rbtree-cache"``, ``"kva-rbtree"``, ``"kva"``) and ``lazy_purge`` override
    the version's choice for experiments.  ``cmdline`` takes the boot parameters the model knows (``vmalloc=``,
    ``mem=``); ``kaslr_seed`` boots a randomised x86_64 layout.  Bad configuration raises
    ``pv.ConfigError`` with one sentence.
    """

    def __init__(
        self,
        arch: str | ArchProfile = "x86_64",
        ram: int | str = "1G",
        nodes: int = 1,
        cpus: int = 1,
        cmdline: str = "",
        allocator: str | None = None,
        lazy_purge: bool | None = None,
        kaslr_seed: int | None = None,
        kernel: str | KernelVersion | None = None,
    ) -> None:
        self.profile = get_profile(arch)
        self.kernel = resolve(kernel)
        if allocator is None:
            allocator = allocator_for(self.kernel)
        ram_bytes = parse_size(ram) if isinstance(ram, str) else int(ram)
        if not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
            raise ConfigError(f"cpus={cpus!r}: a machine has between 1 and {MAX_CPUS} CPUs")
        if not isinstance(nodes, int) or nodes < 1:
            raise ConfigError(f"nodes={nodes!r}: a machine has at least one NUMA node")
        if ram_bytes < self.profile.min_ram:
            raise ConfigError(
                f"ram={ram!r} is below the {self.profile.min_ram >> 20} MiB that {arch} needs to boot"
            )
        if ram_bytes > self.profile.max_ram:
            raise ConfigError(f"ram={ram!r} is above the {self.profile.max_ram >> 30} GiB that {arch} can address")
        if allocator not in ALLOCATORS:
            raise ConfigError(f"unknown allocator {allocator!r}: choose one of {', '.join(ALLOCATORS)}")
        if lazy_purge is not None and not isinstance(lazy_purge, bool):
            raise ConfigError(f"lazy_purge={lazy_purge!r}: True, False or None (the kernel's choice)")
        self.layout = boot_layout(self.profile, ram_bytes, cmdline, kaslr_seed, self.kernel)
        self.clock = Clock()
        self.log = KernelLog(self.clock)
        self.faults = FaultInjector(lambda text: self.log.printk(KERN_WARNING, text))
        self._irq = threading.local()
        self.allocator_name = allocator
        self._vmalloc_init(has(self.kernel, "lazy_purge") if lazy_purge is None else lazy_purge, cpus)
        self.phys = PhysMem(self.profile.page_size, self.layout.zones, nodes, fail_hook=self.faults.allow)
        self.slab = Kmalloc(self.phys)
        self.nr_cpus = cpus
        self.init_mm = PageTables(self.profile, self.phys.frames, self._alloc_pgtable_frame, self._free_pgtable_frame)
        self.mmu = Mmu(self.init_mm, self.phys.frames, cpus)
        self.vmap_allocator = make_allocator(allocator, self.profile.page_size)
        # Areas a restored snapshot holds outside the vmalloc and module ranges (static maps,
        # vendor maps): check() accepts them there.  Empty on a machine booted afresh.
        self.extra_vm_ranges: list[FixedRange] = []
        self._boot_messages(cmdline)

    # ---- booting ----------------------------------------------------------------------------
    @staticmethod
    def profiles() -> dict[str, str]:
        """The machine profiles: name -> one-line description."""
        return {name: p.description for name, p in PROFILES.items()}

    def _boot_messages(self, cmdline: str) -> None:
        lay = self.layout
        self.log.printk(KERN_INFO, f"Linux version {self.kernel}-pyvmalloc ({self.profile.name})")
        self.log.printk(KERN_INFO, f"Kernel command line: {cmdline}")
        for line in lay.messages:
            self.log.printk(KERN_WARNING, line)
        self.log.printk(
            KERN_INFO,
            f"Memory: {lay.ram_bytes >> 10}k total, {self.profile.bits}-bit, "
            f"{self.phys.nr_pages} pages, {len(self.phys.nodes)} node(s)",
        )
        vsize = (lay.vmalloc_end - lay.vmalloc_start) >> 20
        self.log.printk(
            KERN_INFO,
            f"    vmalloc : {lay.vmalloc_start:#x} - {lay.vmalloc_end:#x}   ({vsize} MB)",
        )

    # ---- kernel services used by the layers below -------------------------------------------
    def in_interrupt(self) -> bool:
        """Whether the calling thread is inside ``with m.interrupt():``."""
        return getattr(self._irq, "depth", 0) > 0

    @contextmanager
    def interrupt(self) -> Iterator[None]:
        """Run the block in interrupt context (where vfree/vunmap are a BUG in 2.6.22)."""
        self._irq.depth = getattr(self._irq, "depth", 0) + 1
        try:
            yield
        finally:
            self._irq.depth -= 1

    def printk(self, level: int, text: str) -> None:
        """Append a line to the kernel log."""
        self.log.printk(level, text)

    def printk_ratelimit(self) -> bool:
        """The kernel's printk rate limit (10 messages per 5 s of simulated time)."""
        return self.log.printk_ratelimit()

    def WARN_ON(self, condition: bool, where: str) -> bool:  # noqa: N802 - the kernel's name
        """Log ``WARNING: at where`` when ``condition`` holds."""
        if condition:
            self.log.warn_on(where)
        return bool(condition)

    def _fault_allow(self, point: str, n: int = 1) -> int:
        self.clock.tick()
        return self.faults.allow(point, n)

    def _alloc_pgtable_frame(self, order: int) -> int | None:
        """The page source of page tables: zeroed frames, counted as PageTables."""
        if self.faults.allow("pgtable_alloc") == 0:
            self._page_alloc_failure(_PGTABLE_GFP, order)
            return None
        with self._page_lock:
            pfn = self.phys.alloc_pages_node(-1, _PGTABLE_GFP, order, owner="pgtable")
        if pfn is None:
            self._page_alloc_failure(_PGTABLE_GFP, order)
        return pfn

    def _free_pgtable_frame(self, pfn: int, order: int) -> None:
        with self._page_lock:
            self.phys.free_pages(pfn, order)

    def _get_page(self, pfn: int) -> None:
        with self._page_lock:
            self.phys.get_page(pfn)

    # ---- tracing (ftrace's vmalloc events, 6.2+) ----------------------------------------------
    _trace_buffer: TraceBuffer | None = None

    def _trace(self, event: str, **fields: int) -> None:
        """Record a tracepoint hit on the current CPU (called only while tracing is on)."""
        if self._trace_buffer is not None:
            # The irq-info column: 'h' (hardirq) inside ``with m.interrupt():``.
            flags = "d.h.." if self.in_interrupt() else "....."
            self._trace_buffer.record(event, self.current_cpu, flags, fields)

    def trace_on(self, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Record the vmalloc tracepoints (``echo 1 > events/vmalloc/enable``) into per-CPU
        rings of ``buffer_size`` events; a full ring overwrites its oldest events, as ftrace
        does by default.  Turning tracing on again keeps what was recorded unless the size
        changes (a new size starts empty rings, as writing ``buffer_size_kb`` does)."""
        buf = self._trace_buffer
        if buf is None or buf.size != buffer_size:
            self._trace_buffer = TraceBuffer(self.nr_cpus, buffer_size, self.clock)
        self._tracing = True

    def trace_off(self) -> None:
        """Stop recording (``echo 0 > tracing_on``); what was recorded stays readable."""
        self._tracing = False

    def trace(self, header: bool = False) -> list[str]:
        """The recorded events as ftrace prints them (``cat trace``), one string per line;
        with ``header``, ftrace's comment lines first.  Empty when tracing never ran."""
        return [] if self._trace_buffer is None else self._trace_buffer.lines(header)

    def trace_events(self) -> list[TraceEvent]:
        """The recorded events as ``formats.trace.TraceEvent`` objects, in time order."""
        return [] if self._trace_buffer is None else self._trace_buffer.events()

    # ---- what a person sees -----------------------------------------------------------------
    def dmesg(self) -> list[str]:
        """The kernel log, one string per line."""
        return self.log.text()

    def inject(
        self,
        point: str,
        nth: int | None = None,
        every: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Fail calls at ``point`` ("page_alloc", "pgtable_alloc", "kmalloc", "vmap_area")."""
        self.faults.inject(point, nth=nth, every=every, probability=probability, seed=seed)

    def inject_clear(self, point: str | None = None) -> None:
        """Stop injecting failures (at ``point``, or everywhere)."""
        self.faults.clear(point)

    @property
    def current_cpu(self) -> int:
        """The CPU that ``read``/``write`` run on."""
        return int(self.mmu.current_cpu)

    @current_cpu.setter
    def current_cpu(self, cpu: int) -> None:
        if not 0 <= cpu < self.nr_cpus:
            raise ConfigError(f"cpu {cpu} does not exist: this machine has CPUs 0..{self.nr_cpus - 1}")
        self.mmu.current_cpu = cpu

    def read(self, addr: int, n: int) -> bytes:
        """A CPU load of ``n`` bytes at kernel ``addr`` on the current CPU (TLB, then walk)."""
        return self.mmu.read(addr, n)

    def write(self, addr: int, data: bytes | bytearray) -> None:
        """A CPU store at kernel ``addr``: ``pv.PageFault`` on the guard page or any hole."""
        self.mmu.write(addr, bytes(data))

    def walk(self, addr: int) -> list[Any]:
        """The page-table walk of kernel ``addr``: one step per level (index, entry, table)."""
        return self.init_mm.walk(addr)

    def translate(self, addr: int) -> int | None:
        """The physical address kernel ``addr`` maps to, or None."""
        return self.init_mm.translate(addr)

    def pages_of(self, addr: int, size: int) -> npt.NDArray[np.int64]:
        """Pfns mapped over ``[addr, addr + size)`` (-1 where nothing is mapped)."""
        ps = self.PAGE_SIZE
        first = addr // ps
        return self.init_mm.lookup(first * ps, (addr + size + ps - 1) // ps - first)

    def check(self) -> None:
        """The model's CONFIG_DEBUG_VM: raise ``pv.Inconsistency`` naming the first broken
        invariant; return None when everything holds (see ``kernel/check.py``)."""
        check_machine(self)

    def vmallocinfo(self) -> str:
        """``/proc/vmallocinfo``: one line per area, lazily freed ones last (``unpurged vm_area``)."""
        self.run_workers()
        return proc.vmallocinfo(self)

    def meminfo(self, generation: str | None = None) -> str:
        """``/proc/meminfo``; VmallocUsed/Chunk by ``generation`` (default: the machine's kernel's
        definition, ``versions.meminfo_generation``)."""
        self.run_workers()
        return proc.meminfo(self, generation or meminfo_generation(self.kernel))

    def stats(self) -> dict[str, int]:
        """Counters of every layer: vmalloc, TLB, page allocator, fault injection, the lock."""
        out: dict[str, int] = {}
        out.update({f"vm.{k}": int(v) for k, v in sorted(self.vm_stats.items())})
        out.update({f"tlb.{k}": int(v) for k, v in sorted(self.mmu.stats.items())})
        out.update({f"phys.{k}": int(v) for k, v in vars(self.phys.statistics()).items()})
        out.update({f"inject.{k}": int(v) for k, v in sorted(self.faults.injected.items())})
        out["inject.total"] = int(sum(self.faults.injected.values()))
        out["vmlist_lock.read"] = self.vmlist_lock.read_acquisitions
        out["vmlist_lock.write"] = self.vmlist_lock.write_acquisitions
        out["vmlist_lock.max_concurrent_readers"] = self.vmlist_lock.max_concurrent_readers
        out["lazy.pending_pages"] = self._nr_lazy_pages
        out["lazy.max_pages"] = self.lazy_max_pages
        out["printk.suppressed"] = self.log.suppressed
        if self.vmap_nodes is not None:  # 6.9+ vmap nodes: pools, searches, purge batches, locks
            out.update({f"vmap_node.{k}": int(v) for k, v in sorted(self.vmap_nodes.stats.items())})
            out.update({f"vmap_node.lock.{k}": v for k, v in self.vmap_nodes.lock_counts().items()})
            out["vmap_node.pooled_now"] = self.vmap_nodes.shrink_count()
        return out

    def __repr__(self) -> str:
        return (
            f"Machine(arch={self.profile.name!r}, kernel={str(self.kernel)!r}, "
            f"ram={self.layout.ram_bytes >> 20}M, "
            f"cpus={self.nr_cpus}, allocator={self.allocator_name!r}, lazy_purge={self.lazy_purge})"
        )
