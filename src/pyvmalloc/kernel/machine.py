"""``Machine``: boots arch, phys and mmu for a profile and runs mm/vmalloc.c on them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import numpy.typing as npt

from pyvmalloc.arch import PROFILES, ArchProfile, BootLayout, boot_layout, get_profile
from pyvmalloc.sizes import parse_size
from pyvmalloc.errors import ConfigError
from pyvmalloc.formats.trace import TraceEvent
from pyvmalloc.kernel import proc
from pyvmalloc.kernel.check import check_machine
from pyvmalloc.kernel.env import KernelEnv
from pyvmalloc.kernel.kmemleak import Kmemleak, KmemleakObject
from pyvmalloc.kernel.log import KERN_INFO, KERN_WARNING
from pyvmalloc.kernel.percpu import PercpuAllocator
from pyvmalloc.kernel.trace import DEFAULT_BUFFER_SIZE, TraceBuffer
from pyvmalloc.mmu import Mmu, PageTables
from pyvmalloc.phys import Kmalloc, PhysMem
from pyvmalloc.phys import gfp as G
from pyvmalloc.phys import Page
from pyvmalloc.vmalloc.allocator import ALLOCATORS, make_allocator
from pyvmalloc.versions import CHANGES, KernelVersion, allocator_for, has, meminfo_generation, resolve
from pyvmalloc.vmalloc import _args
from pyvmalloc.vmalloc import kvmalloc as _kv
from pyvmalloc.vmalloc import reset_perms as _reset_perms
from pyvmalloc.vmalloc.api import KERNEL_NAMES, PageLike, Vmalloc
from pyvmalloc.vmalloc.pcpu_areas import PcpuArea
from pyvmalloc.vmalloc.user import UserMm, Vma
from pyvmalloc.vmalloc.vm_struct import VM_MAP, FixedRange, vm_struct, vmap_area


MAX_CPUS = 4096  # NR_CPUS of the largest distribution configs


class Machine:
    """A simulated machine running Linux's vmalloc: ``pv.Machine(arch="x86_64", ram="2G")``.

    ``kernel`` is the Linux version the machine runs ("2.6.22", "3.4.5", "6.1"...; default
    ``versions.DEFAULT_KERNEL``): every rule that changed between releases follows it
    (``versions.py``: the vmalloc range, ioremap alignment, the allocator, lazy purge and its
    worker, vfree in interrupt context, messages, /proc formats).  ``allocator`` (``"list"``,
    ``"rbtree"``, ``"rbtree-cache"``, ``"kva-rbtree"``, ``"kva"``) and ``lazy_purge`` override
    the version's choice for experiments.  ``cmdline`` takes the boot parameters the model knows (``vmalloc=``,
    ``mem=``, ``kmemleak=on``: kernel/kmemleak.py); ``kaslr_seed`` boots a randomised x86_64 layout.  ``nr_vmap_nodes`` and
    ``vmap_pool_max_pages`` (6.9+, keyword only) are what-if knobs, not kernel tunables: the
    number of vmap nodes (the kernel's follows the CPU count) and the largest area, in pages with
    its guard, that the nodes' pools keep (the kernel's MAX_VA_SIZE_PAGES, 256; 0: none); see
    ``vmalloc/vmap_node.py``.  Bad configuration raises ``pv.ConfigError`` with one sentence.
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
        *,
        nr_vmap_nodes: int | None = None,
        vmap_pool_max_pages: int | None = None,
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
        layout = boot_layout(self.profile, ram_bytes, cmdline, kaslr_seed, self.kernel)
        # The kernel services mm/vmalloc.c is handed (vmalloc.env.KernelServices).
        env = self.env = KernelEnv(self.profile, layout, self.kernel, cpus)
        if layout.params.get("kmemleak"):   # kmemleak=on (kernel/kmemleak.py)
            env.kmemleak = Kmemleak(self.kernel, env.log)
        self.clock = env.clock
        self.log = env.log
        self.faults = env.faults
        self.allocator_name = allocator
        self.phys = env.phys = PhysMem(self.profile.page_size, layout.zones, nodes, fail_hook=self.faults.allow)
        self.slab = env.slab = Kmalloc(self.phys)
        self.nr_cpus = cpus
        self.init_mm = env.init_mm = PageTables(self.profile, self.phys.frames, env.alloc_pgtable_frame,
                                                env.free_pgtable_frame)
        self.mmu = env.mmu = Mmu(self.init_mm, self.phys.frames, cpus)
        # mm/vmalloc.c, the private core behind this facade.
        vm = self.vm = Vmalloc(env, make_allocator(allocator, self.profile.page_size),
                               has(self.kernel, "lazy_purge") if lazy_purge is None else lazy_purge,
                               nr_vmap_nodes=nr_vmap_nodes, vmap_pool_max_pages=vmap_pool_max_pages)
        # Its state that never changes identity, shared: the same objects as the core's.
        self.PAGE_SIZE = vm.PAGE_SIZE
        self.PAGE_SHIFT = vm.PAGE_SHIFT
        self.vmap_allocator = vm.vmap_allocator
        self.vmlist_lock = vm.vmlist_lock
        self.vm_stats = vm.vm_stats
        self.vmap_nodes = vm.vmap_nodes
        self.lazy_purge = vm.lazy_purge
        # Areas a restored snapshot holds outside the vmalloc and module ranges (static maps,
        # vendor maps): check() accepts them there.  Empty on a machine booted afresh.
        self.extra_vm_ranges: list[FixedRange] = vm.extra_vm_ranges
        # mm/percpu.c's dynamic chunks, in the vmalloc space (kernel/percpu.py).
        self.percpu = PercpuAllocator(self)
        self._boot_messages(cmdline)

    # ---- the core's state that may change -------------------------------------------------------
    @property
    def layout(self) -> BootLayout:
        """The boot layout (a restored snapshot may have moved its vmalloc range)."""
        return self.env.layout

    @property
    def VMALLOC_START(self) -> int:  # noqa: N802 - the kernel's name
        """The start of the vmalloc range."""
        return self.vm.VMALLOC_START

    @property
    def VMALLOC_END(self) -> int:  # noqa: N802 - the kernel's name
        """The end of the vmalloc range."""
        return self.vm.VMALLOC_END

    @property
    def lazy_max_pages(self) -> int:
        """``lazy_max_pages()``: lazily freed pages that start a purge."""
        return self.vm.lazy_max_pages

    @lazy_max_pages.setter
    def lazy_max_pages(self, pages: int) -> None:
        # An experiment's knob (sweeps, replaying a traced kernel's nr_lazy_max): the kernel
        # computes lazy_max_pages() from the CPU count and has no tunable for it.
        if isinstance(pages, bool) or not isinstance(pages, int) or pages < 1:
            raise ConfigError(f"lazy_max_pages must be a positive number of pages, got {pages!r}")
        self.vm.lazy_max_pages = pages

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
            if line.startswith("Kernel command line:"):
                continue  # the layout's own record of it, printed just above
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

    # ---- kernel services -----------------------------------------------------------------------
    def in_interrupt(self) -> bool:
        """Whether the calling thread is inside ``with m.interrupt():``."""
        return self.env.in_interrupt()

    def interrupt(self) -> AbstractContextManager[None]:
        """Run the block in interrupt context (where vfree/vunmap are a BUG in 2.6.22)."""
        return self.env.interrupt()

    def printk(self, level: int, text: str) -> None:
        """Append a line to the kernel log."""
        self.env.printk(level, text)

    def printk_ratelimit(self) -> bool:
        """The kernel's printk rate limit (10 messages per 5 s of simulated time)."""
        return self.env.printk_ratelimit()

    def WARN_ON(self, condition: bool, where: str) -> bool:  # noqa: N802 - the kernel's name
        """Log ``WARNING: at where`` when ``condition`` holds."""
        return self.vm.WARN_ON(condition, where)

    # ---- tracing (ftrace's vmalloc events, 6.2+) ----------------------------------------------
    def trace_on(self, buffer_size: int = DEFAULT_BUFFER_SIZE) -> None:
        """Record the vmalloc tracepoints (``echo 1 > events/vmalloc/enable``) into per-CPU
        rings of ``buffer_size`` events; a full ring overwrites its oldest events, as ftrace
        does by default.  Turning tracing on again keeps what was recorded unless the size
        changes (a new size starts empty rings, as writing ``buffer_size_kb`` does).  Before
        Linux 6.2 the kernel has none of these tracepoints: see :meth:`trace`."""
        buf = self.env.trace_buffer
        if buf is None or buf.size != buffer_size:
            self.env.trace_buffer = TraceBuffer(self.nr_cpus, buffer_size, self.clock)
        self.vm.set_tracing(True)

    def trace_off(self) -> None:
        """Stop recording (``echo 0 > tracing_on``); what was recorded stays readable."""
        self.vm.set_tracing(False)

    def trace(self, header: bool = False) -> list[str]:
        """The recorded events as ftrace prints them (``cat trace``), one string per line;
        with ``header``, ftrace's comment lines first.  Empty when tracing never ran.

        The vmalloc tracepoints came with Linux 6.2 (``versions.CHANGES["vmalloc_tracepoints"]``).
        On an older kernel the model records them all the same, as its own instrumentation
        (the quiz and the tour read them), and the header says so in a comment line, which
        readers of ftrace text skip."""
        buf = self.env.trace_buffer
        if buf is None:
            return []
        lines = buf.lines(header)
        if header and not has(self.kernel, "vmalloc_tracepoints"):
            since = CHANGES["vmalloc_tracepoints"].since
            lines.insert(1, f"# Linux {self.kernel} has no vmalloc tracepoints (they came with "
                            f"{since}): these events are the model's instrumentation")
        return lines

    def trace_events(self) -> list[TraceEvent]:
        """The recorded events as ``formats.trace.TraceEvent`` objects, in time order."""
        buf = self.env.trace_buffer
        return [] if buf is None else buf.events()

    # ---- what a person sees -----------------------------------------------------------------
    # ---- the per-CPU allocator (mm/percpu.c over pcpu_get_vm_areas; kernel/percpu.py) ----------
    def alloc_percpu(self, size: int, align: int) -> int | None:
        """``__alloc_percpu(size, align)`` (2.6.32+ chunks in the vmalloc space): a per-CPU
        pointer (:meth:`per_cpu_ptr` gives each CPU's copy), or None."""
        size, align = _args.integer("alloc_percpu", "size", size), _args.integer("alloc_percpu", "align", align)
        _kv.require(self.vm, "pcpu_get_vm_areas", "__alloc_percpu")
        return self.percpu.alloc(size, align)

    def free_percpu(self, ptr: int | None) -> None:
        """``free_percpu(ptr)``: NULL does nothing."""
        self.percpu.free(_args.address("free_percpu", "ptr", ptr))

    def per_cpu_ptr(self, ptr: int, cpu: int) -> int:
        """``per_cpu_ptr(ptr, cpu)``: the kernel address of ``cpu``'s copy of the object."""
        ptr = _args.integer("per_cpu_ptr", "ptr", ptr)
        if not isinstance(cpu, int) or not 0 <= cpu < self.nr_cpus:
            raise ConfigError(f"cpu {cpu!r} does not exist: this machine has CPUs 0..{self.nr_cpus - 1}")
        return self.percpu.per_cpu_ptr(ptr, cpu)

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
        # Work counters of the search and the page tables (kernel/work.py reads them here).
        out["work.nodes_visited"] = int(self.vmap_allocator.visited)
        out["work.ptes_touched"] = int(self.init_mm.ptes_touched)
        out["vmlist_lock.read"] = self.vmlist_lock.read_acquisitions
        out["vmlist_lock.write"] = self.vmlist_lock.write_acquisitions
        out["vmlist_lock.max_concurrent_readers"] = self.vmlist_lock.max_concurrent_readers
        out["lazy.pending_pages"] = self.vm.nr_lazy_pages
        out["lazy.max_pages"] = self.lazy_max_pages
        out["printk.suppressed"] = self.log.suppressed
        dm = self.vm.direct_map   # vmalloc/reset_perms.py (made at the first set_memory_*/reset)
        out["direct_map.readonly_pages"] = 0 if dm is None else len(dm.readonly)
        out["direct_map.resets"] = 0 if dm is None else dm.resets
        out["direct_map.pages_reset"] = 0 if dm is None else dm.pages_reset
        if self.env.kmemleak is not None:
            out.update({f"kmemleak.{k}": v for k, v in self.env.kmemleak.stats.items()})
            out["kmemleak.objects"] = len(self.env.kmemleak.objects)
        out.update({f"percpu.{k}": int(v) for k, v in self.percpu.stats.items()})
        if self.vmap_nodes is not None:  # 6.9+ vmap nodes: pools, searches, purge batches, locks
            out.update({f"vmap_node.{k}": int(v) for k, v in sorted(self.vmap_nodes.stats.items())})
            out.update({f"vmap_node.lock.{k}": v for k, v in self.vmap_nodes.lock_counts().items()})
            out["vmap_node.pooled_now"] = self.vmap_nodes.shrink_count()
        return out

    # ---- mm/vmalloc.c: the facade ------------------------------------------------------------
    # The kernel's functions, each a typed one-line forward to the core (``self.vm``); their
    # docstrings are the core's (set below the class).
    def PAGE_ALIGN(self, size: int) -> int:  # noqa: N802 - the kernel's name
        return self.vm.PAGE_ALIGN(size)

    def vm_ranges(self) -> list[tuple[int, int, str]]:
        return self.vm.vm_ranges()

    @property
    def num_physpages(self) -> int:
        return self.vm.num_physpages

    def unmap_kernel_range(self, addr: int, size: int) -> None:
        return self.vm.unmap_kernel_range(addr, size)

    def flush_tlb_kernel_range(self, start: int, end: int) -> None:
        return self.vm.flush_tlb_kernel_range(start, end)

    def map_vm_area(self, area: vm_struct, prot: int | str | None, pages: Sequence[PageLike] | npt.NDArray[np.int64]) -> int:
        return self.vm.map_vm_area(area, prot, pages)

    def get_vm_area_node_range(self, size: int, flags: int, start: int, end: int, node: int = -1, gfp: int = G.GFP_KERNEL, caller: str | None = None, align: int | None = None) -> vm_struct | None:
        return self.vm.get_vm_area_node_range(size, flags, start, end, node, gfp, caller, align)

    def ioremap_align(self, size: int) -> int:
        return self.vm.ioremap_align(size)

    def get_vm_area_range(self, size: int, flags: int, start: int, end: int, caller: str | None = None) -> vm_struct | None:
        return self.vm.get_vm_area_range(size, flags, start, end, caller)

    def get_vm_area(self, size: int, flags: int, caller: str | None = None) -> vm_struct | None:
        return self.vm.get_vm_area(size, flags, caller)

    def get_vm_area_node(self, size: int, flags: int, node: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> vm_struct | None:
        return self.vm.get_vm_area_node(size, flags, node, gfp, caller)

    def find_vmap_area(self, addr: int) -> vmap_area | None:
        return self.vm.find_vmap_area(addr)

    def for_each_vmap_area(self, start: int = 0) -> Iterator[vmap_area]:
        return self.vm.for_each_vmap_area(start)

    def find_vm_area_locked(self, addr: int) -> vm_struct | None:
        return self.vm.find_vm_area_locked(addr)

    def find_vm_area(self, addr: int) -> vm_struct | None:
        return self.vm.find_vm_area(addr)

    def areas(self) -> Iterator[vm_struct]:
        return self.vm.areas()

    def remove_vm_area_locked(self, addr: int) -> vm_struct | None:
        return self.vm.remove_vm_area_locked(addr)

    def remove_vm_area(self, addr: int) -> vm_struct | None:
        return self.vm.remove_vm_area(addr)

    def run_workers(self) -> None:
        return self.vm.run_workers()

    def vm_unmap_aliases(self) -> None:
        return self.vm.vm_unmap_aliases()

    def vmap_node_shrink(self) -> int:
        return self.vm.vmap_node_shrink()

    def pooled_areas(self) -> list[vmap_area]:
        return self.vm.pooled_areas()

    def lazy_areas(self) -> list[vmap_area]:
        return self.vm.lazy_areas()

    def reserve_vmap_area(self, va: vmap_area) -> bool:
        return self.vm.reserve_vmap_area(va)

    def lazy_areas_kept(self) -> AbstractContextManager[None]:
        return self.vm.lazy_areas_kept()

    def vunmap_area(self, addr: int | None, deallocate_pages: bool, caller: str = 'vfree') -> None:
        return self.vm.vunmap_area(addr, deallocate_pages, caller)

    def vfree(self, addr: int | None) -> None:
        return self.vm.vfree(addr)

    def vunmap(self, addr: int | None) -> None:
        return self.vm.vunmap(addr)

    def vmap(self, pages: Sequence[PageLike] | npt.NDArray[np.int64], count: int, flags: int = VM_MAP, prot: int | str | None = None, caller: str | None = None) -> int | None:
        return self.vm.vmap(pages, count, flags, prot, caller)

    def pcpu_get_vm_areas(self, offsets: Sequence[int], sizes: Sequence[int], align: int) -> list[PcpuArea] | None:
        return self.vm.pcpu_get_vm_areas(offsets, sizes, align)

    def pcpu_free_vm_areas(self, vms: Sequence[vm_struct]) -> None:
        return self.vm.pcpu_free_vm_areas(vms)

    def vm_area_map_pages(self, area: vm_struct, start: int, end: int, pages: Sequence[PageLike] | npt.NDArray[np.int64]) -> int:
        return self.vm.vm_area_map_pages(area, start, end, pages)

    def vm_area_unmap_pages(self, area: vm_struct, start: int, end: int) -> None:
        return self.vm.vm_area_unmap_pages(area, start, end)

    def vm_map_ram(self, pages: Sequence[PageLike] | npt.NDArray[np.int64], count: int, node: int = -1) -> int | None:
        return self.vm.vm_map_ram(pages, count, node)

    def vm_unmap_ram(self, addr: int, count: int) -> None:
        return self.vm.vm_unmap_ram(addr, count)

    def vmalloc_area_node(self, area: vm_struct, gfp: int, prot: int | str | None, node: int) -> int | None:
        return self.vm.vmalloc_area_node(area, gfp, prot, node)

    def vmalloc_area(self, area: vm_struct, gfp: int, prot: int | str | None) -> int | None:
        return self.vm.vmalloc_area(area, gfp, prot)

    def vmalloc_node_gfp(self, size: int, gfp: int, prot: int | str | None, node: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_node_gfp(size, gfp, prot, node, caller)

    def vmalloc_node_range(self, size: int, align: int, start: int, end: int, gfp: int, prot: int | str | None, node: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_node_range(size, align, start, end, gfp, prot, node, caller)

    def module_alloc(self, size: int, caller: str | None = None) -> int | None:
        return self.vm.module_alloc(size, caller)

    def execmem_alloc(self, type: str, size: int, caller: str | None = None) -> int | None:
        return self.vm.execmem_alloc(type, size, caller)

    def execmem_free(self, addr: int | None) -> None:
        return self.vm.execmem_free(addr)

    def bpf_jit_alloc(self, proglen: int, privileged: bool = False, caller: str | None = None) -> int | None:
        return self.vm.bpf_jit_alloc(proglen, privileged, caller)

    def bpf_jit_free(self, addr: int) -> None:
        return self.vm.bpf_jit_free(addr)

    def bpf_jit_limit(self, value: int | None = None) -> int:
        return self.vm.bpf_jit_limit(value)

    def bpf_jit_current(self) -> int:
        return self.vm.bpf_jit_current()

    def vmalloc_gfp(self, size: int, gfp: int, prot: int | str | None = None, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_gfp(size, gfp, prot, caller)

    def vmalloc(self, size: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc(size, caller)

    def vmalloc_user(self, size: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_user(size, caller)

    def vmalloc_node(self, size: int, node: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_node(size, node, caller)

    def vmalloc_exec(self, size: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_exec(size, caller)

    @property
    def GFP_VMALLOC32(self) -> int:  # noqa: N802 - the kernel's name
        return self.vm.GFP_VMALLOC32

    def vmalloc_32(self, size: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_32(size, caller)

    def vmalloc_32_user(self, size: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_32_user(size, caller)

    def vread_into(self, addr: int, buffer: Any) -> int:
        return self.vm.vread_into(addr, buffer)

    def vread(self, addr: int, count: int) -> bytes:
        return self.vm.vread(addr, count)

    def vwrite(self, addr: int, data: bytes | bytearray | memoryview) -> int:
        return self.vm.vwrite(addr, data)

    def user_mm(self) -> UserMm:
        return self.vm.user_mm()

    def remap_vmalloc_range(self, vma: Vma, addr: int, pgoff: int = 0) -> int:
        return self.vm.remap_vmalloc_range(vma, addr, pgoff)

    def vmalloc_to_page(self, addr: int) -> Page | None:
        return self.vm.vmalloc_to_page(addr)

    def vmalloc_to_pfn(self, addr: int) -> int | None:
        return self.vm.vmalloc_to_pfn(addr)

    def vmalloc_sync_all(self) -> None:
        return self.vm.vmalloc_sync_all()

    def alloc_vm_area(self, size: int, caller: str | None = None) -> vm_struct | None:
        return self.vm.alloc_vm_area(size, caller)

    def free_vm_area(self, area: vm_struct) -> None:
        return self.vm.free_vm_area(area)

    def alloc_page(self, gfp: int = G.GFP_KERNEL) -> Page | None:
        return self.vm.alloc_page(gfp)

    def free_page(self, page: PageLike) -> None:
        return self.vm.free_page(page)

    def vzalloc(self, size: int, caller: str | None = None) -> int | None:
        return self.vm.vzalloc(size, caller)

    def vzalloc_node(self, size: int, node: int, caller: str | None = None) -> int | None:
        return self.vm.vzalloc_node(size, node, caller)

    def vmalloc_array(self, n: int, size: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_array(n, size, caller)

    def vcalloc(self, n: int, size: int, caller: str | None = None) -> int | None:
        return self.vm.vcalloc(n, size, caller)

    def vmalloc_node_range_flags(self, size: int, align: int, start: int, end: int, gfp: int, prot: int | str | None, vm_flags: int, node: int, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_node_range_flags(size, align, start, end, gfp, prot, vm_flags, node, caller)

    def vmalloc_huge(self, size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        return self.vm.vmalloc_huge(size, gfp, caller)

    def vmap_pfn(self, pfns: Sequence[int] | npt.NDArray[np.int64], count: int, prot: int | str | None = None, caller: str | None = None) -> int | None:
        return self.vm.vmap_pfn(pfns, count, prot, caller)

    def vrealloc(self, p: int | None, size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        return self.vm.vrealloc(p, size, gfp, caller)

    def kvmalloc(self, size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        return self.vm.kvmalloc(size, gfp, caller)

    def kvzalloc(self, size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        return self.vm.kvzalloc(size, gfp, caller)

    def kvmalloc_node(self, size: int, gfp: int, node: int, caller: str | None = None) -> int | None:
        return self.vm.kvmalloc_node(size, gfp, node, caller)

    def kvfree(self, addr: int | None) -> None:
        return self.vm.kvfree(addr)

    def kvfree_rcu(self, addr: int | None) -> None:
        return self.vm.kvfree_rcu(addr)

    def rcu_barrier(self) -> None:
        return self.vm.rcu_barrier()

    def kvrealloc(self, p: int | None, size: int, gfp: int = G.GFP_KERNEL, oldsize: int | None = None, caller: str | None = None) -> int | None:
        return self.vm.kvrealloc(p, size, gfp, oldsize, caller)

    # ---- direct-map permissions and kmemleak (vmalloc/reset_perms.py, kernel/kmemleak.py) ----
    def set_memory_ro(self, addr: int, numpages: int) -> int:
        """``set_memory_ro(addr, numpages)``: make vmalloc'ed pages read-only (their direct-map
        aliases too on x86 and arm64); 0 or -EINVAL (see ``vmalloc.reset_perms.set_memory``)."""
        return _reset_perms.set_memory(self.vm, "set_memory_ro", addr, numpages)

    def set_memory_rw(self, addr: int, numpages: int) -> int:
        """``set_memory_rw(addr, numpages)``: writable again, direct-map aliases included."""
        return _reset_perms.set_memory(self.vm, "set_memory_rw", addr, numpages)

    def set_memory_x(self, addr: int, numpages: int) -> int:
        """``set_memory_x(addr, numpages)``: executable (the area's PTEs only)."""
        return _reset_perms.set_memory(self.vm, "set_memory_x", addr, numpages)

    def set_memory_nx(self, addr: int, numpages: int) -> int:
        """``set_memory_nx(addr, numpages)``: not executable (the area's PTEs only)."""
        return _reset_perms.set_memory(self.vm, "set_memory_nx", addr, numpages)

    def direct_map_readonly(self) -> list[int]:
        """The pfns whose direct-map alias is read-only now (set_memory_ro of a vmalloc'ed page
        whose area has not been freed with VM_FLUSH_RESET_PERMS nor made writable again)."""
        dm = self.vm.direct_map
        return [] if dm is None else sorted(dm.readonly)

    def kmemleak_objects(self) -> list[KmemleakObject]:
        """kmemleak's objects in address order (ConfigError unless booted with kmemleak=on)."""
        return self._kmemleak().list()

    def kmemleak_vmalloc(self, area: vm_struct, size: int | None = None) -> None:
        """``kmemleak_vmalloc(area, size, gfp)``: register a block vmalloc'ed with
        VM_DEFER_KMEMLEAK, as its caller does once it may be scanned (``size``: the area's,
        guard page excluded)."""
        _args.area("kmemleak_vmalloc", area)
        size = self.vm.get_vm_area_size(area) if size is None else _args.integer("kmemleak_vmalloc", "size", size)
        self._kmemleak().register(area, size)

    def _kmemleak(self) -> Kmemleak:
        if self.env.kmemleak is None:
            raise ConfigError("kmemleak is off on this machine: boot it with cmdline='kmemleak=on' "
                              "(Linux 2.6.31 or later)")
        return self.env.kmemleak

    def __repr__(self) -> str:
        return (
            f"Machine(arch={self.profile.name!r}, kernel={str(self.kernel)!r}, "
            f"ram={self.layout.ram_bytes >> 20}M, "
            f"cpus={self.nr_cpus}, allocator={self.allocator_name!r}, lazy_purge={self.lazy_purge})"
        )


# The facade's forwards carry the core's docstrings; the kernel's ``__``-names are aliases of
# their Python spellings here too (``getattr(m, "__vmalloc")``, as on ``Vmalloc``).
for _name, _member in list(vars(Machine).items()):
    _core = getattr(Vmalloc, _name, None)
    if not _name.startswith("_") and _core is not None and getattr(_member, "__doc__", None) is None:
        _member.__doc__ = _core.__doc__
for _kname, _pyname in KERNEL_NAMES.items():
    setattr(Machine, _kname, vars(Machine)[_pyname])
