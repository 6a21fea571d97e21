"""The mm/vmalloc.c API, 2.6.22's and every later version's, as methods over the machine's layers.

Each public method is the kernel function of the same name (``__``-names get the Python
spellings of ``KERNEL_NAMES``) with the seed's semantics: NULL is ``None``, ``-Exxx`` is the
negative errno, ``BUG()`` raises ``KernelBug``, ``printk``/``WARN_ON`` append to the log.

Locking model (2.6.22):

- ``vmlist_lock`` (an rwlock) protects the list of areas and every ``vm_struct`` field that
  other CPUs may read: taken for write to insert/remove an area and to set ``VM_USERMAP``,
  for read by ``vread``/``vwrite``, ``remap_vmalloc_range`` and the lookups.  As in the seed,
  ``__remove_vm_area`` unmaps and flushes the TLB with the lock held for write.
- The page allocator has its own lock (``zone->lock``): here ``page_lock``, held around every
  call into ``phys`` and the small-object allocator, never across a call that takes
  ``vmlist_lock`` (lock order: vmlist_lock, then page lock).
- ``init_mm.page_table_lock`` (``pgtable_lock``) serialises page-table allocation and
  PTE updates; TLB flushes take the MMU's own lock.
An area under construction (pages being allocated and mapped) is reachable from the list but
owned by the thread building it, exactly as in the kernel.

``Vmalloc`` is a component: ``kernel.Machine`` builds the kernel services it is handed
(``vmalloc.env.KernelServices``: physical memory and kmalloc, page tables and the MMU, the log
and the clock, fault injection, interrupt state, the trace buffer) and exposes its public
functions as a thin facade.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from contextlib import contextmanager
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from pyvmalloc.errno import E2BIG, EINVAL, ENOENT, ENOMEM, ERANGE
from pyvmalloc.errors import KernelBug, PageFault
from pyvmalloc.phys import gfp as G
from pyvmalloc.phys.frames import CHUNK_FRAMES, CHUNK_SHIFT
from pyvmalloc.phys.memory import NO_ZONE
from pyvmalloc.versions import (
    has,
    ioremap_align,
    vmalloc_failure_lines,
    vmap_failure_lines,
)
from pyvmalloc.vmalloc import _args, vmap_block
from pyvmalloc.vmalloc import execmem as _execmem
from pyvmalloc.vmalloc import kvmalloc as _kv
from pyvmalloc.vmalloc import reset_perms as _reset_perms
from pyvmalloc.vmalloc.allocator import VmapAllocator
from pyvmalloc.vmalloc.pcpu_areas import PcpuArea, find_base
from pyvmalloc.vmalloc.rwlock import RWLock
from pyvmalloc.vmalloc.user import UserMm, Vma, VM_RESERVED
from pyvmalloc.vmalloc.vmap_node import VN_ID_MASK, VmapNodes, boot_vmap_nodes, hand_over, reclaim_decayed, reclaim_list_global
from pyvmalloc.vmalloc.vm_struct import (
    VM_ALLOC,
    VM_ALLOW_HUGE_VMAP,
    VM_FLUSH_RESET_PERMS,
    VM_IOREMAP,
    VM_MAP,
    VM_MAP_PUT_PAGES,
    VM_NO_GUARD,
    VM_SPARSE,
    VM_USERMAP,
    VM_LAZY_FREE,
    VM_VM_AREA,
    VM_VPAGES,
    FixedRange,
    vm_struct,
    vmap_area,
)

if TYPE_CHECKING:
    from pyvmalloc.arch import BootLayout
    from pyvmalloc.phys import Page
    from pyvmalloc.vmalloc.env import KernelServices


# printk levels (include/linux/kernel.h); the kernel layer's log uses the same numbers.
KERN_ERR = 3
KERN_WARNING = 4

# Module-level spellings: inside a class body Python would mangle ``G.__GFP_ZERO``.
_GFP_ZERO = getattr(G, "__GFP_ZERO")
_GFP_HIGHMEM = getattr(G, "__GFP_HIGHMEM")
_GFP_NOWARN = getattr(G, "__GFP_NOWARN")

# Python spellings of the kernel's double-underscore names.  Inside a class body Python mangles
# ``__x`` to ``_Vmalloc__x``, so these names cannot be declared there: they are set on the class
# after it is built (end of this module), which static tools (mypy, IDEs) do not see; there
# only the Python spellings exist.  Each alias keeps the kernel function's contract, locking
# included: ``__find_vm_area``/``__remove_vm_area`` expect the caller to hold vmlist_lock.
# The README's table is built from this mapping.
KERNEL_NAMES: Final[Mapping[str, str]] = MappingProxyType({
    "__get_vm_area": "get_vm_area_range",
    "__get_vm_area_node": "get_vm_area_node_range",
    "__find_vm_area": "find_vm_area_locked",
    "__remove_vm_area": "remove_vm_area_locked",
    "__vunmap": "vunmap_area",
    "__vmalloc": "vmalloc_gfp",
    "__vmalloc_node": "vmalloc_node_gfp",
    "__vmalloc_area": "vmalloc_area",
    "__vmalloc_area_node": "vmalloc_area_node",
    "__free_page": "free_page",
})

PageLike = Any  # a pfn (int) or a phys.Page


# The counters of ``vm_stats`` (``Machine.stats()`` shows them as ``vm.<name>``).
VM_COUNTERS = (
    "vmalloc", "vfree", "vmap", "vunmap", "areas_allocated", "cache_flushes", "lazy_frees",
    "purge_runs", "purged_areas", "purged_pages", "vmalloc_sync_all", "reset_perms",
)


class Vmalloc:
    """mm/vmalloc.c, handed its kernel services (``vmalloc.env.KernelServices``): the machine's
    private core, behind ``kernel.Machine``'s facade (see the module docstring for the locking).

    Its methods without a leading underscore are of two kinds: the kernel's functions, which
    ``Machine`` forwards one by one, and the small internal API of the code beside mm/vmalloc.c
    (the section "internal API" below: snapshot restoring, planning, checking, replay, and the
    modules of this package that hold parts of mm/vmalloc.c).
    """

    def __init__(self, env: KernelServices, allocator: VmapAllocator, lazy_purge: bool, *,
                 nr_vmap_nodes: int | None = None, vmap_pool_max_pages: int | None = None) -> None:
        """State of mm/vmalloc.c itself: the lock, the lazy-purge list, counters."""
        self.env = env
        self.profile = env.profile
        self.kernel = env.kernel
        self.phys = env.phys
        self.slab = env.slab
        self.init_mm = env.init_mm
        self.mmu = env.mmu
        self.page_lock = env.page_lock
        self.pgtable_lock = env.pgtable_lock
        self.vmap_allocator = allocator
        cpus = env.nr_cpus
        self.PAGE_SIZE = self.profile.page_size
        self.PAGE_SHIFT = self.profile.page_shift
        self.VMALLOC_START = self.layout.vmalloc_start
        self.VMALLOC_END = self.layout.vmalloc_end
        self.vmlist_lock = RWLock()
        self.ptr_size = self.profile.bits // 8
        self.vm_struct_size = 7 * self.ptr_size  # next, addr, size, flags, pages, nr_pages, phys_addr
        self.lazy_purge = lazy_purge
        # 4.0+: VM_NO_GUARD areas have no guard page (before 4.0 the bit meant nothing).
        self._no_guard = has(self.kernel, "vm_no_guard")
        self._warned: set[str] = set()  # WARN_ON_ONCE sites that fired
        # mm/vmalloc.c, 2.6.28+: lazy_max_pages() = fls(num_online_cpus()) * (32 MiB / PAGE_SIZE).
        self.lazy_max_pages = cpus.bit_length() * ((32 << 20) >> self.PAGE_SHIFT)
        self.purge_list: list[vmap_area] = []
        self.nr_lazy_pages = 0
        # Work items (system_wq in the kernel): the lazy drain (drain_vmap_work, 5.19+) and
        # vfree()s deferred from interrupt context (3.10+).  They run at the next call outside
        # interrupt context, as a worker on another CPU usually does (run_workers()).
        self.drain_pending = False
        self._deferred_vfree: list[int] = []
        # State of the later subsystems, made on first use by their modules (declared here so
        # that no attribute appears after boot): vmap blocks of vm_map_ram (vmap_block.py), the
        # BPF JIT accounting of execmem.py, kvmalloc's slab objects.
        self.vmap_blocks: vmap_block.VmapBlocks | None = None
        self.execmem_state: _execmem.ExecmemState | None = None
        self.kv_slab: dict[int, int] = {}
        # The direct map's non-default permissions (vmalloc/reset_perms.py: set_memory_ro and
        # VM_FLUSH_RESET_PERMS) and kmemleak (the environment's; None unless booted with it).
        self.direct_map: _reset_perms.DirectMap | None = None
        self.kmemleak = env.kmemleak
        # kvfree_rcu() objects waiting for a grace period (freed by run_workers()).
        self._rcu_pending: list[int] = []
        self._purge_lock = threading.Lock()
        self.user_mms: list[UserMm] = []
        # Areas a restored snapshot holds outside the vmalloc and module ranges (static maps,
        # vendor maps): vm_ranges() and check() accept them there.  Empty on a machine booted afresh.
        self.extra_vm_ranges: list[FixedRange] = []
        self.vm_stats: Counter[str] = Counter(dict.fromkeys(VM_COUNTERS, 0))
        # Pages vfree() took off nr_vmalloc_pages that vmalloc never put on it (5.11-6.12,
        # VM_MAP_PUT_PAGES areas): VmallocUsed (5.3+) is the live vmalloc pages minus these.
        self.nr_vmalloc_pages_skew = 0
        # 6.9+: vmap nodes with their pools of freed areas (vmalloc/vmap_node.py); the two
        # experiment knobs (None: the kernel's nr_vmap_nodes and MAX_VA_SIZE_PAGES) are checked there.
        self.vmap_nodes: VmapNodes | None = boot_vmap_nodes(
            self.kernel, lazy_purge, cpus, self.profile.bits, self.PAGE_SIZE, self.VMALLOC_START,
            self.VMALLOC_END, nr_vmap_nodes, vmap_pool_max_pages)

    @property
    def layout(self) -> BootLayout:
        """Where the machine's ranges lie (the environment's; a restored snapshot may move the
        vmalloc range: :meth:`set_vmalloc_range`)."""
        return self.env.layout

    # ---- the kernel services, as mm/vmalloc.c calls them ----------------------------------------
    def in_interrupt(self) -> bool:
        """Whether the calling thread is in interrupt context."""
        return self.env.in_interrupt()

    def printk(self, level: int, text: str) -> None:
        """Log one kernel message."""
        self.env.printk(level, text)

    def printk_ratelimit(self) -> bool:
        """Whether a rate-limited message may print now."""
        return self.env.printk_ratelimit()

    def WARN_ON(self, condition: bool, where: str) -> bool:  # noqa: N802 - the kernel's name
        """Log ``WARNING: at where`` when ``condition`` holds; returns it (as the macro does)."""
        if condition:
            self.env.warn_on(where)
        return bool(condition)

    def _warn_on_once(self, condition: bool, where: str) -> bool:
        """``WARN_ON_ONCE``: the report the first time ``where`` fires; returns ``condition``."""
        if condition and where not in self._warned:
            self._warned.add(where)
            self.env.warn_on(where)
        return bool(condition)

    def _fault_allow(self, point: str, n: int = 1) -> int:
        """Fault-injection seam: how many of ``n`` calls at ``point`` may succeed."""
        return self.env.fault_allow(point, n)

    # Tracepoints (include/trace/events/vmalloc.h, 6.2+).  Like the kernel's static keys, a
    # disabled tracepoint costs one test of ``_tracing`` at the call site; the machine turns it
    # on with set_tracing() and the environment records the hits.
    _tracing = False

    def set_tracing(self, on: bool) -> None:
        """Turn the vmalloc tracepoints on or off (the environment's trace buffer records them)."""
        self._tracing = bool(on)

    def _trace(self, event: str, **fields: int) -> None:
        """Record one hit of tracepoint ``event`` with its TP_STRUCT fields."""
        self.env.trace(event, fields)

    def _trace_on(self, cpu: int, event: str, **fields: int) -> None:
        """As :meth:`_trace`, on ``cpu`` (a work item's worker) rather than the current CPU."""
        self.env.trace(event, fields, cpu)

    # ---- small helpers ----------------------------------------------------------------------
    def PAGE_ALIGN(self, size: int) -> int:  # noqa: N802 - the kernel's name
        """``size`` rounded up to a whole number of pages."""
        return (size + self.PAGE_SIZE - 1) & ~(self.PAGE_SIZE - 1)

    def guard_size(self, area: vm_struct) -> int:
        """Bytes of guard page at the end of ``area``: a page, none for a VM_NO_GUARD area (4.0+)."""
        return 0 if area.flags & VM_NO_GUARD and self._no_guard else self.PAGE_SIZE

    def get_vm_area_size(self, area: vm_struct) -> int:
        """``get_vm_area_size()``: the area's size without its guard page."""
        return area.size - self.guard_size(area)

    def bug_on(self, condition: bool, what: str) -> None:
        if condition:
            self.printk(0, f"kernel BUG at mm/vmalloc.c: {what}")
            raise KernelBug(what)

    def _alloc_args(self, fn: str, size: object, gfp: object, prot: object, node: object,
                    caller: object) -> tuple[int, int, int, int, str | None]:
        """The checked (size, gfp, prot, node, caller) of an allocating entry point (``_args``)."""
        return (_args.integer(fn, "size", size), _args.integer(fn, "gfp", gfp), _args.prot(fn, prot, self.profile),
                _args.node(fn, node, self.nr_nodes()), _args.caller(fn, caller))

    def vm_ranges(self) -> list[tuple[int, int, str]]:
        """``(start, end, name)`` of the ranges where areas may lie: the vmalloc area, the arch's
        module area when it has its own, its module fallback windows (arm64's PLT window
        4.15-6.4, its BPF JIT region 5.0-5.15) and the ranges a restored snapshot recorded (``extra_vm_ranges``).  The
        argument checks and ``check()`` both ask it."""
        lay = self.layout
        out = [(self.VMALLOC_START, self.VMALLOC_END, "vmalloc")]
        if lay.modules_end > lay.modules_start and (lay.modules_start, lay.modules_end) != (
                self.VMALLOC_START, self.VMALLOC_END):
            out.append((lay.modules_start, lay.modules_end, "modules"))
        out += _execmem.module_windows(self)
        for start, end, *name in self.extra_vm_ranges:
            out.append((int(start), int(end), str(name[0]) if name else "snapshot"))
        return out

    def nr_nodes(self) -> int:
        return len(self.phys.nodes)

    def pgprot(self, prot: int | str | None) -> int:
        if prot is None:
            return self.profile.pgprot("PAGE_KERNEL")
        if isinstance(prot, str):
            return self.profile.pgprot(prot)
        return int(prot)

    def fmt_ptr(self, addr: int) -> str:
        # lib/vsprintf.c, 2.6.22: %p is zero-padded hex of pointer width, without "0x".
        return f"{addr & ((1 << self.profile.bits) - 1):0{self.profile.bits // 4}x}"

    @property
    def num_physpages(self) -> int:
        """Pages of RAM (``num_physpages``)."""
        return int(self.phys.nr_pages)

    # ---- page tables: map and unmap ---------------------------------------------------------
    def unmap_kernel_range(self, addr: int, size: int) -> None:
        """Clear the kernel PTEs of ``[addr, addr + size)`` and flush every CPU's TLB.

        mm/vmalloc.c, 2.6.22: ``BUG_ON(addr >= end)``; ``flush_cache_vunmap`` first, the TLB
        flush of the whole range after; page-table frames stay allocated.
        """
        self.unmap_range(addr, size)
        self.flush_tlb_kernel_range(addr, addr + size)

    def unmap_range(self, addr: int, size: int) -> npt.NDArray[np.int64]:
        end = addr + size
        self.bug_on(addr >= end, "unmap_kernel_range: addr >= end")
        self.vm_stats["cache_flushes"] += 1  # flush_cache_vunmap(): a no-op on PIPT caches
        with self.pgtable_lock:
            return self.init_mm.unmap_range(addr, size)

    def flush_tlb_kernel_range(self, start: int, end: int) -> None:
        """Flush ``[start, end)`` from the TLB of every CPU (an IPI to each, in the kernel)."""
        self.mmu.flush_tlb_kernel_range(start, end)

    def map_vm_area(self, area: vm_struct, prot: int | str | None, pages: Sequence[PageLike] | npt.NDArray[np.int64]) -> int:
        """Map ``pages`` over ``area`` (guard page excluded); 0 or ``-ENOMEM``.

        mm/vmalloc.c, 2.6.22: a NULL page (here: a missing entry) stops the mapping with
        ``-ENOMEM``, as does a page-table frame that cannot be allocated; what was mapped
        before stays mapped for the caller to undo.
        """
        _args.area("map_vm_area", area)
        bits = _args.prot("map_vm_area", prot, self.profile)
        addr = area.addr
        end = addr + self.get_vm_area_size(area)
        self.bug_on(addr >= end, "map_vm_area: addr >= end")
        nr = (end - addr) >> self.PAGE_SHIFT
        pfns = _args.pages("map_vm_area", pages)[:nr]
        self.check_pages(pfns, "map_vm_area")
        bad = np.flatnonzero(pfns < 0)
        return self._map_pages(addr, nr, bits, pfns if not len(bad) else pfns[: int(bad[0])])

    def _map_pages(self, addr: int, nr: int, bits: int, valid: npt.NDArray[np.int64]) -> int:
        """map_vm_area after its checks: map the pages ``valid`` (no NULL among them) of an
        area of ``nr`` pages at ``addr``; -ENOMEM when fewer than ``nr`` or a table fails."""
        err = 0
        if len(valid):  # a NULL first page maps nothing: vmap_pte_range returns -ENOMEM at once
            with self.pgtable_lock:
                err = self.init_mm.map_range(addr, valid, bits)
        self.vm_stats["cache_flushes"] += 1  # flush_cache_vmap()
        if err:
            return err
        return 0 if len(valid) == nr else -ENOMEM

    def check_pages(self, pfns: npt.NDArray[np.int64], what: str) -> None:
        """BUG on a ``struct page *`` that is no page of this machine (the kernel would map
        garbage); NULL entries (-1) are the callers' business."""
        given = pfns[pfns >= 0]
        if len(given) and (int(given.max()) >= self.phys.nr_frames or np.any(self.phys.zone_ids(given) == NO_ZONE)):
            bad_pfn = next(int(p) for p in given if not self.phys.pfn_valid(int(p)))
            self.bug_on(True, f"{what}: pfn {bad_pfn:#x} is not a page of this machine")

    # ---- the area list ----------------------------------------------------------------------
    def get_vm_area_node_range(
        self,
        size: int,
        flags: int,
        start: int,
        end: int,
        node: int = -1,
        gfp: int = G.GFP_KERNEL,
        caller: str | None = None,
        align: int | None = None,
    ) -> vm_struct | None:
        """``__get_vm_area_node``: reserve ``size`` (+ a guard page) in ``[start, end)``; None if no hole.

        Placed by the machine's allocator.  VM_IOREMAP areas align by the kernel's rule
        (:meth:`ioremap_align`).  ``align`` (not in 2.6.22; later kernels'
        ``__get_vm_area_node`` takes one) overrides that.  On failure the kernel's rate-limited
        warning is logged, in the words of the machine's kernel (``versions.vmap_failure_lines``).
        """
        fn = "get_vm_area_node_range"
        size, flags, gfp = (_args.integer(fn, n, v) for n, v in (("size", size), ("flags", flags), ("gfp", gfp)))
        if not (type(start) is int and type(end) is int and start == self.VMALLOC_START
                and end == self.VMALLOC_END):
            # VMALLOC_START..END, what vmalloc() asks, is vm_ranges()'s first range: only other
            # ranges need the list built.
            start, end = _args.vrange(fn, start, end, self.PAGE_SIZE, self.vm_ranges())
        node = _args.node(fn, node, self.nr_nodes())
        caller = _args.caller(fn, caller)
        align = None if align is None else _args.integer(fn, "align", align)
        return self._get_vm_area_node_range(size, flags, start, end, node, gfp, caller, align)

    def _get_vm_area_node_range(self, size: int, flags: int, start: int, end: int, node: int,
                                gfp: int, caller: str | None, align: int | None) -> vm_struct | None:
        """get_vm_area_node_range after its argument checks (the callers inside this module
        pass values already checked)."""
        self.bug_on(self.in_interrupt(), "__get_vm_area_node() in interrupt context")
        self._run_workers()
        if size < 0:
            return None
        if align is None:
            align = 1
            if flags & VM_IOREMAP:
                align = self.ioremap_align(size)
        elif align <= 0 or align & (align - 1):
            self.bug_on(True, f"alloc_vmap_area: align {align} is not a power of two")
        size = self.PAGE_ALIGN(size)
        if not size:
            return None
        handle = self.kmalloc(self.vm_struct_size, gfp & G.GFP_LEVEL_MASK, node)
        if not handle:
            return None
        if flags & VM_SPARSE:
            _kv.require(self, "vm_sparse", "get_vm_area(VM_SPARSE)")
        if not (flags & VM_NO_GUARD and self._no_guard):
            size += self.PAGE_SIZE  # mm/vmalloc.c, 2.6.22: "We always allocate a guard page."
        area = vm_struct(addr=0, size=size, flags=flags, caller=caller or "get_vm_area", handle=handle)
        va = vmap_area(0, 0, VM_VM_AREA, area)
        with self.vmlist_lock.write():
            addr = self.alloc_vmap_range(size, max(align, self.PAGE_SIZE), start, end, va)
            if addr is not None:
                area.addr = va.va_start = addr
                va.va_end = addr + size
        if addr is None:
            self.kfree(handle)
            if not gfp & _GFP_NOWARN and self.printk_ratelimit():
                for line in vmap_failure_lines(self.kernel, size, start, end):
                    self.printk(KERN_WARNING, line)
            return None
        self.vm_stats["areas_allocated"] += 1
        return area

    def ioremap_align(self, size: int) -> int:
        """The alignment ``__get_vm_area_node`` gives a VM_IOREMAP request of ``size`` bytes on
        this machine's kernel and arch (``versions.ioremap_align``, IOREMAP_MAX_ORDER of the
        boot layout)."""
        return ioremap_align(self.kernel, size, self.PAGE_SHIFT, self.layout.ioremap_max_order)

    def alloc_vmap_range(self, size: int, align: int, start: int, end: int, va: vmap_area) -> int | None:
        """The address search; with lazy purge, one purge of the lazy areas and a second search."""
        if self._fault_allow("vmap_area") == 0:
            return None
        nodes = self.vmap_nodes
        if nodes is not None:
            # 6.9+ node_alloc: the requesting CPU's node pool first, for VMALLOC_START..END only.
            pooled, vn_bits = nodes.node_alloc(size, align, start, end, int(self.mmu.current_cpu))
            va.flags |= vn_bits
            if pooled is not None:
                # Handed out as it is: the free tree is not touched (vmap_node.hand_over).
                hand_over(self.vmap_allocator, pooled, va)
                if self._tracing:
                    self._trace("alloc_vmap_area", addr=pooled.va_start, size=size, align=align,
                                vstart=start, vend=end, failed=0)
                nodes.note_busy(pooled.va_start)  # insert_vmap_area under vn->busy.lock
                return pooled.va_start
        addr = self._search_vmap_range(size, align, start, end, va)
        if addr is None and (self.lazy_purge or self.purge_list):
            # mm/vmalloc.c, 2.6.28+: alloc_vmap_area purges the lazy areas once, then retries
            # (whether or not any were waiting: its ``purged`` flag, not the list, decides);
            # purge_vmap_area_lazy() frees the fragmented vmap blocks first (2.6.33+);
            # 6.9+ reclaim_and_purge_vmap_areas empties the pools too.
            vmap_block.purge_fragmented_blocks_allcpus(self)
            self._purge_vmap_area_lazy(full_decay=True)
            addr = self._search_vmap_range(size, align, start, end, va)
        if nodes is not None and addr is not None:
            # mm/vmalloc.c, 6.9+: alloc_vmap_area inserts the area in the busy tree of the node
            # its address hashes to, under that node's busy.lock.
            nodes.note_busy(addr)
        return addr

    def _search_vmap_range(self, size: int, align: int, start: int, end: int, va: vmap_area) -> int | None:
        """One search of the allocator, traced as ``alloc_vmap_area`` (6.2+: after each search)."""
        addr = self.vmap_allocator.alloc(size, align, start, end, va) if end - start >= size else None
        if self._tracing:
            # A failed search reports an error value as its address (-ENOENT; 6.2 until the
            # 2025 "return explicit error value" change reported ``vend``).
            shown = (-ENOENT if addr is None else addr) & ((1 << self.profile.bits) - 1)
            self._trace("alloc_vmap_area", addr=shown, size=size, align=align, vstart=start, vend=end,
                        failed=int(addr is None))
        return addr

    def get_vm_area_range(self, size: int, flags: int, start: int, end: int, caller: str | None = None) -> vm_struct | None:
        """``__get_vm_area(size, flags, start, end)``: an area inside ``[start, end)``."""
        _args.caller("get_vm_area_range", caller)
        return self.get_vm_area_node_range(size, flags, start, end, -1, G.GFP_KERNEL, caller or "__get_vm_area")

    def get_vm_area(self, size: int, flags: int, caller: str | None = None) -> vm_struct | None:
        """``get_vm_area``: reserve a contiguous kernel virtual area in VMALLOC_START..END."""
        _args.caller("get_vm_area", caller)
        return self.get_vm_area_node_range(
            size, flags, self.VMALLOC_START, self.VMALLOC_END, -1, G.GFP_KERNEL, caller or "get_vm_area"
        )

    def get_vm_area_node(self, size: int, flags: int, node: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> vm_struct | None:
        """``get_vm_area_node``: as get_vm_area, with the vm_struct allocated on ``node``."""
        _args.caller("get_vm_area_node", caller)
        return self.get_vm_area_node_range(
            size, flags, self.VMALLOC_START, self.VMALLOC_END, node, gfp, caller or "get_vm_area_node"
        )

    def find_vmap_area(self, addr: int) -> vmap_area | None:
        """``find_vmap_area``: the vmap_area that starts exactly at ``addr`` (busy, lazily
        freed or vm_map_ram), or None; the caller holds vmlist_lock."""
        va = self.vmap_allocator.find(addr)
        return va if isinstance(va, vmap_area) else None

    def for_each_vmap_area(self, start: int = 0) -> Iterator[vmap_area]:
        """Every vmap_area that ends after ``start``, in address order; the caller holds
        vmlist_lock (the walk ``/proc/vmallocinfo`` and the checker make)."""
        for _start, _size, va in self.vmap_allocator.for_each_busy(start):
            if isinstance(va, vmap_area):
                yield va

    def find_vm_area_locked(self, addr: int) -> vm_struct | None:
        """``__find_vm_area``: as ``find_vm_area``; the caller holds vmlist_lock (read or write)."""
        addr = _args.integer("find_vm_area", "addr", addr)
        va = self.find_vmap_area(addr)
        return va.vm if va is not None and va.flags & VM_VM_AREA else None

    def find_vm_area(self, addr: int) -> vm_struct | None:
        """The ``vm_struct *`` that starts exactly at ``addr``, or None (takes vmlist_lock)."""
        with self.vmlist_lock.read():
            return self.find_vm_area_locked(addr)

    def areas(self) -> Iterator[vm_struct]:
        """Every registered area in address order (``for (tmp = vmlist; tmp; tmp = tmp->next)``)."""
        with self.vmlist_lock.read():
            found = [va.vm for va in self.for_each_vmap_area() if va.vm is not None]
        yield from found

    def remove_vm_area_locked(self, addr: int) -> vm_struct | None:
        """``__remove_vm_area``: as ``remove_vm_area``; the caller holds vmlist_lock for write."""
        addr = _args.integer("remove_vm_area", "addr", addr)
        va = self.find_vmap_area(addr)
        if va is None or va.vm is None or not va.flags & VM_VM_AREA:
            return None
        # mm/vmalloc.c, 2.6.22 unmap_vm_area(): the whole area, guard included.
        self.unmap_range(va.vm.addr, va.vm.size)
        return self._unlink_vm_area(va)

    def remove_unmapped_vm_area_locked(self, addr: int) -> vm_struct | None:
        """``__remove_vm_area`` of an area whose range nothing ever mapped (a trace replay's:
        it reserves addresses and maps no page): as ``remove_vm_area_locked`` without the
        page-table walk, which would clear no entry.  The caller holds vmlist_lock for write."""
        va = self.find_vmap_area(addr)
        if va is None or va.vm is None or not va.flags & VM_VM_AREA:
            return None
        return self._unlink_vm_area(va)

    def _unlink_vm_area(self, va: vmap_area) -> vm_struct:
        """The rest of ``__remove_vm_area`` once the range is unmapped: the range waits for the
        lazy purge (2.6.28+) or goes back at once after its flush (2.6.22)."""
        area = va.vm
        assert area is not None
        if self.lazy_purge:
            self.free_vmap_area_noflush(va)
        else:
            self.flush_tlb_kernel_range(area.addr, area.addr + area.size)
            self.vmap_allocator.remove(area.addr)
            if self._tracing:
                # Not a kernel tracepoint: 2.6.22 frees at once and no kernel traces that, so
                # the model says it with its own event for replays to see the free.
                self._trace("vfree_area", va_start=area.addr, size=area.size)
        area.size -= self.guard_size(area)  # "Remove the guard page." (none: VM_NO_GUARD)
        return area

    def remove_vm_area(self, addr: int) -> vm_struct | None:
        """Unmap and unlink the area starting at ``addr``; it comes back without its guard page.

        Returns None when no area starts there.
        """
        with self.vmlist_lock.write():
            return self.remove_vm_area_locked(addr)

    # ---- lazy TLB purge (2.6.28+, Nick Piggin, db64fe02258f) ---------------------------------
    def free_vmap_area_noflush(self, va: vmap_area) -> None:
        """Keep the range reserved until a purge flushes it (free_vmap_area_noflush): the
        vmap_area loses its vm_struct and waits on the purge list."""
        va.flags, va.vm = VM_LAZY_FREE | (va.flags & VN_ID_MASK), None  # 6.9+: the node stays
        if self.vmap_nodes is not None:
            # 6.9+: every caller first unlinks the area from its node's busy tree under
            # busy.lock (find_unlink_vmap_area; free_vmap_block), then queues it lazily.
            self.vmap_nodes.note_busy(va.va_start)
            self.vmap_nodes.note_lazy(va)
        with self._purge_lock:
            self.purge_list.append(va)
            self.nr_lazy_pages += va.size >> self.PAGE_SHIFT
            nr_lazy = self.nr_lazy_pages
            over = nr_lazy > self.lazy_max_pages
        self.vm_stats["lazy_frees"] += 1
        if self._tracing:
            # 6.2+: nr_lazy counts this area's pages already; traced before the purge it may start.
            self._trace("free_vmap_area_noflush", va_start=va.va_start, nr_lazy=nr_lazy,
                        nr_lazy_max=self.lazy_max_pages)
        if over:
            if has(self.kernel, "drain_in_worker"):
                self.drain_pending = True   # schedule_work(&drain_vmap_work)
            else:
                self._purge_vmap_area_lazy()

    def run_workers(self) -> None:
        """Run the work items waiting on the system workqueue: the lazy drain that
        ``free_vmap_area_noflush`` scheduled (5.19+) and the ``vfree()``s deferred from
        interrupt context (3.10+).  The model runs them at the next vmalloc call outside
        interrupt context and before /proc is read, as a worker usually has by then."""
        if not self.in_interrupt():
            self._run_workers()

    def _run_workers(self) -> None:
        """run_workers for a caller that has just seen it is not in interrupt context."""
        while self._deferred_vfree:
            self.vunmap_area(self._deferred_vfree.pop(0), True, "vfree")
        self.rcu_barrier()
        if self.drain_pending:
            self.drain_pending = False
            with self.vmlist_lock.write():
                self._purge_vmap_area_lazy()

    def _purge_vmap_area_lazy(self, full_decay: bool = False, flush: tuple[int, int] | None = None) -> None:
        """One TLB flush over every lazily freed range, then give the ranges back (6.9+: first
        decay the vmap-node pools, fully after a failed search; areas go to their node's pool).
        ``flush`` is ``_vm_unmap_aliases``'s ``[start, end)`` (VM_FLUSH_RESET_PERMS's direct-map
        range): the one flush covers it too, or it alone is flushed when nothing is lazy."""
        nodes = self.vmap_nodes
        if nodes is not None:
            # decay_va_pool_node, node by node: each node's decayed areas merged, then given back.
            for decayed in nodes.decay_nodes(full_decay):
                reclaim_decayed(self.vmap_allocator, decayed)
        with self._purge_lock:
            purge, self.purge_list = self.purge_list, []
            npages, self.nr_lazy_pages = self.nr_lazy_pages, 0
        if not purge:
            if flush is not None:   # "if (!__purge_vmap_area_lazy(start, end) && flush)"
                self.flush_tlb_kernel_range(*flush)
            if self._tracing:
                # 6.2+ __purge_vmap_area_lazy(ULONG_MAX, 0) traces even an empty purge.
                self._trace("purge_vmap_area_lazy", start=(1 << self.profile.bits) - 1, end=0, npurged=0)
            return
        start = min(a.addr for a in purge)
        end = max(a.addr + a.size for a in purge)
        if flush is not None:
            start, end = min(start, flush[0]), max(end, flush[1])
        self.flush_tlb_kernel_range(start, end)
        # purge_vmap_node, node by node: each node's local_list in its order (descending).
        backs = [purge] if nodes is None else nodes.purge(purge, full_decay, npages, self.lazy_max_pages,
                                                           self.env.nr_cpus, int(self.mmu.current_cpu))
        for back in backs:
            reclaim_list_global(self.vmap_allocator, back)
        if nodes is not None and self._tracing:
            # 6.9+: the nodes purge_vmap_node helpers ran, on their workers' CPUs, as each ended
            # (the model's own event: the kernel has no tracepoint there).
            for work in nodes.last_purge:
                if work.cpu is not None:
                    self._trace_on(work.cpu, "purge_vmap_node", node=work.node, nr_purged=work.nr_purged)
        if self._tracing:
            self._trace("purge_vmap_area_lazy", start=start, end=end, npurged=len(purge))
        self.vm_stats["purge_runs"] += 1
        self.vm_stats["purged_areas"] += len(purge)
        self.vm_stats["purged_pages"] += npages

    def purge_vmap_area_lazy_range(self, flush: tuple[int, int] | None) -> None:
        """``__purge_vmap_area_lazy(start, end)`` for ``_vm_unmap_aliases`` (reset_perms.py);
        vmlist_lock held."""
        self._purge_vmap_area_lazy(flush=flush)

    def vm_unmap_aliases(self) -> None:
        """Purge every lazily freed area now, after flushing the vmap blocks' dirty ranges and
        freeing the fragmented blocks (mm/vmalloc.c, 2.6.28+: ``vmap_block.flush_dirty_blocks``)."""
        self.drain_pending = False
        with self.vmlist_lock.write():
            vmap_block.flush_dirty_blocks(self)
            self._purge_vmap_area_lazy()

    def vmap_node_shrink(self) -> int:
        """The 6.9+ ``vmap-node`` shrinker (``vmap_node_shrink_scan``) as memory pressure runs
        it: every pool fully decayed, its areas back in the free tree; how many (0 before 6.9)."""
        nodes = self.vmap_nodes
        if nodes is None:
            return 0
        with self.vmlist_lock.write():
            freed = nodes.shrink()
            for decayed in freed:
                reclaim_decayed(self.vmap_allocator, decayed)
        return sum(len(decayed) for decayed in freed)

    def pooled_areas(self) -> list[vmap_area]:
        """The areas the 6.9+ vmap-node pools hold, node by node, each pool head first."""
        return [] if self.vmap_nodes is None else list(self.vmap_nodes.pooled())

    def lazy_areas(self) -> list[vmap_area]:
        """The vmap_areas waiting for a lazy purge, oldest first."""
        with self._purge_lock:
            return list(self.purge_list)

    # ---- internal API -----------------------------------------------------------------------
    # What the code beside mm/vmalloc.c may use, and nothing else of this class that is not a
    # kernel function: snapshot restoring (reserve_vmap_area, set_vmalloc_range, alloc_pages,
    # free_pages, kmalloc, kfree, pgprot, unmap_range, store_page_array, ptr_size,
    # vm_struct_size), planning (lazy_areas_kept, kfree), checking (the locks, lazy_state,
    # user_mms, kv_slab, direct_map), replay (alloc_vmap_range, lazy_max_pages),
    # reset_perms.py (purge_vmap_area_lazy_range).
    def set_vmalloc_range(self, layout: BootLayout) -> None:
        """Boot with ``layout``'s VMALLOC_START/END instead (a restored snapshot's range, before
        any area exists): the environment's layout, the range and the 6.9+ pools' range."""
        self.env.layout = layout
        self.VMALLOC_START, self.VMALLOC_END = layout.vmalloc_start, layout.vmalloc_end
        if self.vmap_nodes is not None:  # 6.9+: the pools serve requests for exactly this range
            self.vmap_nodes.vstart, self.vmap_nodes.vend = layout.vmalloc_start, layout.vmalloc_end

    def lazy_state(self) -> tuple[int, bool]:
        """(pages the lazy counter says wait for a purge, whether a drain is scheduled)."""
        with self._purge_lock:
            return self.nr_lazy_pages, self.drain_pending

    def get_page(self, pfn: int) -> None:
        """Take a reference to page ``pfn`` (``get_page``, under the page lock)."""
        with self.page_lock:
            self.phys.get_page(pfn)

    # ---- the internal API of snapshot restoring and planning -----------------------------------
    def reserve_vmap_area(self, va: vmap_area) -> bool:
        """Put ``va`` in the address space at its own address (a restored snapshot's area, a
        vm_map_ram block, a lazily freed range: then it joins the purge list too); False, and
        nothing changed, when the range overlaps one already there.  vmlist_lock held."""
        if not self.vmap_allocator.insert(va.va_start, va.size, va):
            return False
        if va.flags & VM_LAZY_FREE:
            with self._purge_lock:
                self.purge_list.append(va)
                self.nr_lazy_pages += va.size >> self.PAGE_SHIFT
        return True

    @contextmanager
    def lazy_areas_kept(self) -> Iterator[None]:
        """Run a what-if (``analysis.plan.fits``) and put back afterwards every lazily freed
        range that a purge inside it gave back, with the purge list as it was."""
        with self._purge_lock:
            saved, saved_nr = list(self.purge_list), self.nr_lazy_pages
        try:
            yield
        finally:
            with self.vmlist_lock.write():
                for va in saved:
                    if self.vmap_allocator.find(va.va_start) is None:
                        self.vmap_allocator.insert(va.va_start, va.size, va)
            with self._purge_lock:
                self.purge_list, self.nr_lazy_pages = saved, saved_nr

    # ---- freeing ----------------------------------------------------------------------------
    def vunmap_area(self, addr: int | None, deallocate_pages: bool, caller: str = "vfree") -> None:
        """``__vunmap``: remove the area at ``addr``; free its pages and page array if asked."""
        addr = _args.address(caller, "addr", addr)
        if not addr:
            return
        self.run_workers()
        if addr & (self.PAGE_SIZE - 1):
            self.printk(KERN_ERR, f"Trying to {caller}() bad address ({self.fmt_ptr(addr)})")
            self.WARN_ON(True, f"mm/vmalloc.c:__vunmap() [{caller}]")
            return
        area = self.remove_vm_area(addr)
        if area is None:
            self.printk(KERN_ERR, f"Trying to {caller}() nonexistent vm area ({self.fmt_ptr(addr)})")
            self.WARN_ON(True, f"mm/vmalloc.c:__vunmap() [{caller}]")
            return
        if area.flags & VM_FLUSH_RESET_PERMS:   # 5.2+: vmalloc/reset_perms.py
            _reset_perms.vm_remove_mappings(self, area, deallocate_pages)
        if deallocate_pages:
            if area.flags & VM_MAP_PUT_PAGES and not has(self.kernel, "vmalloc_nr_pages_put_pages"):
                # 5.11-6.12: atomic_long_sub(area->nr_pages, &nr_vmalloc_pages) for pages that
                # vmap() never added (versions.CHANGES["vmalloc_nr_pages_put_pages"]).
                self.nr_vmalloc_pages_skew += area.nr_pages
            pages = area.pages[: area.nr_pages]
            # a Python min() for the common few pages: numpy's reduce costs more than the pair's search
            low = min(pages.tolist()) if 0 < len(pages) <= 16 else int(pages.min()) if len(pages) else 0
            self.bug_on(low < 0, "__vunmap: NULL page in area->pages")
            self.free_pages(pages)
            self._free_page_array(area)
        self.kfree(area.handle)

    def _free_page_array(self, area: vm_struct) -> None:
        if area.pages_array is None:
            return
        kind, where = area.pages_array
        area.pages_array = None
        if kind == "vmalloc":  # VM_VPAGES: the bounded recursion of __vmalloc_area_node
            self.vfree(where)
        else:
            self.kfree(where)

    def vfree(self, addr: int | None) -> None:
        """Release memory from vmalloc(): unmap, free the pages, the page array and the area.

        ``vfree(None)``/``vfree(0)`` does nothing; a bad or unknown address logs the seed's
        message and a WARN; in interrupt context it is a BUG in 2.6.22 and deferred to a work
        item from 3.10 (``vfree_deferred_in_interrupt``).
        """
        addr = _args.address("vfree", "addr", addr)
        if self.kmemleak is not None:   # kmemleak_free(addr), first (kernel/kmemleak.py)
            self.kmemleak.free(addr)
        irq = self.in_interrupt()
        if irq and has(self.kernel, "vfree_deferred_in_interrupt"):
            self.vm_stats["vfree"] += 1
            if addr:
                self._deferred_vfree.append(addr)
            return
        self.bug_on(irq, "vfree() in interrupt context")
        self.vm_stats["vfree"] += 1
        self.vunmap_area(addr, True, "vfree")

    def vunmap(self, addr: int | None) -> None:
        """Release a mapping made by vmap(); the pages stay allocated (BUG in interrupt context).

        The 2.6.22 messages say ``vfree()`` for both paths (``__vunmap`` is shared).
        """
        addr = _args.address("vunmap", "addr", addr)
        self.bug_on(self.in_interrupt(), "vunmap() in interrupt context")
        self.vm_stats["vunmap"] += 1
        self.vunmap_area(addr, False, "vfree")

    # ---- mapping given pages ----------------------------------------------------------------
    def vmap(self, pages: Sequence[PageLike] | npt.NDArray[np.int64], count: int, flags: int = VM_MAP,
             prot: int | str | None = None, caller: str | None = None) -> int | None:
        """Map ``count`` pages into contiguous kernel virtual space; the address or None.

        None when ``count > num_physpages``, when no area fits, or when mapping fails (the
        area is then unmapped and released: ``vunmap`` in the seed).

        ``flags`` go to the area.  VM_MAP_PUT_PAGES (5.10+) hands the pages over: the area
        keeps them (``area.pages``; ``nr_pages`` from 5.11, before which they leaked) and
        ``vfree`` drops one reference per entry.  VM_NO_GUARD is dropped with a WARN from 5.16;
        VM_FLUSH_RESET_PERMS is a WARN and NULL from 6.3.
        """
        fn = "vmap"
        count, flags = _args.integer(fn, "count", count), _args.integer(fn, "flags", flags)
        bits = _args.prot(fn, prot, self.profile)
        caller = _args.caller(fn, caller)
        if flags & VM_MAP_PUT_PAGES:
            _kv.require(self, "vm_map_put_pages", "vmap(VM_MAP_PUT_PAGES)")
        # ``unsigned int count``: a negative count is over num_physpages too (NULL).
        in_range = 0 <= count <= self.num_physpages
        pfns = _args.pages(fn, pages, count if in_range else 0)
        if has(self.kernel, "vmap_reset_perms_refused") and self._warn_on_once(
                bool(flags & VM_FLUSH_RESET_PERMS), "mm/vmalloc.c:vmap() VM_FLUSH_RESET_PERMS"):
            return None
        # 5.16+: "Your top guard is someone else's bottom guard."
        if has(self.kernel, "vmap_no_guard_refused") and self._warn_on_once(
                bool(flags & VM_NO_GUARD), "mm/vmalloc.c:vmap() VM_NO_GUARD"):
            flags &= ~VM_NO_GUARD
        if not in_range:
            return None
        self.check_pages(pfns, "vmap")
        area = self.get_vm_area_node_range(
            count << self.PAGE_SHIFT, flags, self.VMALLOC_START, self.VMALLOC_END, -1, G.GFP_KERNEL, caller or "vmap"
        )
        if area is None:
            return None
        area.mapped = pfns
        if self.map_vm_area(area, bits, pfns):
            self.vunmap(area.addr)
            return None
        if flags & VM_MAP_PUT_PAGES:
            area.pages = pfns
            if has(self.kernel, "vm_map_put_pages_nr_pages"):
                area.nr_pages = count
        self.vm_stats["vmap"] += 1
        return area.addr

    # ---- sparse areas (6.9+, the BPF arena) -----------------------------------------------------
    def _check_sparse_vm_area(self, area: vm_struct, start: int, end: int) -> int:
        """``check_sparse_vm_area``: 0, or the errno (a WARN for the flag cases)."""
        if self._warn_on_once(bool(area.flags & VM_FLUSH_RESET_PERMS), "mm/vmalloc.c:check_sparse_vm_area() VM_FLUSH_RESET_PERMS"):
            return -EINVAL
        if self._warn_on_once(bool(area.flags & VM_NO_GUARD), "mm/vmalloc.c:check_sparse_vm_area() VM_NO_GUARD"):
            return -EINVAL
        if self._warn_on_once(not area.flags & VM_SPARSE, "mm/vmalloc.c:check_sparse_vm_area() !VM_SPARSE"):
            return -EINVAL
        if ((end - start) & ((1 << self.profile.bits) - 1)) >> self.PAGE_SHIFT > self.num_physpages:
            return -E2BIG
        if start < area.addr or end > area.addr + self.get_vm_area_size(area):
            return -ERANGE
        return 0

    def vm_area_map_pages(self, area: vm_struct, start: int, end: int,
                          pages: Sequence[PageLike] | npt.NDArray[np.int64]) -> int:
        """``vm_area_map_pages(area, start, end, pages)`` (6.9, VM_SPARSE): map ``pages`` (one per
        page of ``[start, end)``) PAGE_KERNEL inside the sparse ``area``; 0 or a negative errno
        (``-EINVAL`` with a WARN unless the area is VM_SPARSE without VM_FLUSH_RESET_PERMS or
        VM_NO_GUARD, ``-E2BIG``, ``-ERANGE`` outside the area, ``-ENOMEM`` for a NULL page or a
        page table that cannot be had).  The pages stay the caller's."""
        fn = "vm_area_map_pages"
        _args.area(fn, area)
        start, end = _args.integer(fn, "start", start), _args.integer(fn, "end", end)
        _kv.require(self, "vm_sparse", fn)
        err = self._check_sparse_vm_area(area, start, end)
        if err:
            return err
        # vmap_pages_range -> vmap_small_pages_range_noflush: BUG_ON(addr >= end).  An unaligned
        # start is the model's BUG too (the kernel would map the page holding it).
        self.bug_on(start >= end, f"{fn}: addr >= end")
        self.bug_on(bool((start | end) & (self.PAGE_SIZE - 1)), f"{fn}: range not page aligned")
        nr = (end - start) >> self.PAGE_SHIFT
        pfns = _args.pages(fn, pages, nr)[:nr]
        self.check_pages(pfns, fn)
        bad = np.flatnonzero(pfns < 0)
        valid = pfns if not len(bad) else pfns[: int(bad[0])]
        err = 0
        if len(valid):  # vmap_pages_range: PAGE_KERNEL, PAGE_SHIFT; a NULL page is -ENOMEM
            with self.pgtable_lock:
                err = self.init_mm.map_range(start, valid, self.pgprot("PAGE_KERNEL"))
        self.vm_stats["cache_flushes"] += 1  # flush_cache_vmap()
        if err:
            return err
        return 0 if len(valid) == nr else -ENOMEM

    def vm_area_unmap_pages(self, area: vm_struct, start: int, end: int) -> None:
        """``vm_area_unmap_pages(area, start, end)`` (6.9, VM_SPARSE): unmap ``[start, end)`` of
        the sparse ``area`` and flush the TLB (``vunmap_range``); nothing (a WARN for the flag
        cases) when ``check_sparse_vm_area`` refuses.  The pages stay the caller's."""
        fn = "vm_area_unmap_pages"
        _args.area(fn, area)
        start, end = _args.integer(fn, "start", start), _args.integer(fn, "end", end)
        _kv.require(self, "vm_sparse", fn)
        if self._check_sparse_vm_area(area, start, end):
            return
        self.bug_on(bool((start | end) & (self.PAGE_SIZE - 1)), f"{fn}: range not page aligned")
        self.unmap_kernel_range(start, end - start)  # vunmap_range: BUG_ON(addr >= end) too

    def vm_map_ram(self, pages: Sequence[PageLike] | npt.NDArray[np.int64], count: int, node: int = -1) -> int | None:
        """Map ``count`` pages (PAGE_KERNEL) for a short while; the address or None (2.6.28+).

        Up to ``BITS_PER_LONG`` pages come from this CPU's vmap blocks, more take an area of
        their own without a guard page; see ``vmalloc.vmap_block``.
        """
        return vmap_block.vm_map_ram(self, pages, count, node)

    def vm_unmap_ram(self, addr: int, count: int) -> None:
        """Unmap what ``vm_map_ram(pages, count, ...)`` returned at ``addr`` (the same count)."""
        vmap_block.vm_unmap_ram(self, addr, count)

    # ---- allocating ---------------------------------------------------------------------------
    def vmalloc_area_node(self, area: vm_struct, gfp: int, prot: int | str | None, node: int) -> int | None:
        """``__vmalloc_area_node``: fill ``area`` with pages from ``node`` and map them.

        The page-pointer array comes from kmalloc when it fits in a page, otherwise from a
        (strictly bounded) recursive vmalloc, marked VM_VPAGES.  Every failure frees what was
        taken (pages so far, the array, the area); page-table frames stay, as in the kernel.
        """
        gfp, bits, node = self._alloc_args("vmalloc_area_node", 0, gfp, prot, node, None)[1:4]
        return self._vmalloc_area_node(area, gfp, bits, node)

    def _vmalloc_area_node(self, area: vm_struct, gfp: int, prot: int, node: int) -> int | None:
        """vmalloc_area_node after its argument checks (``prot`` already the pgprot bits)."""
        nr_pages = self.get_vm_area_size(area) >> self.PAGE_SHIFT
        if not self.alloc_page_array(area, nr_pages, gfp, node):
            return None
        pfns = self.alloc_pages(gfp, nr_pages, node)
        area.pages = pfns
        if len(pfns) < nr_pages:
            area.nr_pages = len(pfns)  # "Successfully allocated i pages, free them in __vunmap()"
            self.vfree(area.addr)
            return None
        if area.flags & VM_VPAGES:
            self.store_page_array(area)
        # map_vm_area without its argument checks: the area is ours and the pages come from
        # the page allocator (its checks would pass; only its BUG_ON can fire).
        self.bug_on(nr_pages <= 0, "map_vm_area: addr >= end")
        if self._map_pages(area.addr, nr_pages, prot, pfns):
            self.vfree(area.addr)
            return None
        if self.kmemleak is not None:   # kmemleak_vmalloc unless VM_DEFER_KMEMLEAK (kernel/kmemleak.py)
            self.kmemleak.vmalloc(area, self.get_vm_area_size(area))
        return area.addr

    def alloc_page_array(self, area: vm_struct, nr_pages: int, gfp: int, node: int) -> bool:
        """The page-pointer array of ``area`` (``nr_pages`` entries, zeroed): kmalloc when it
        fits in a page, else a recursive vmalloc (VM_VPAGES).  False, with the area removed
        and its vm_struct freed, when it cannot be had."""
        array_size = nr_pages * self.ptr_size
        area.nr_pages = nr_pages
        if array_size > self.PAGE_SIZE:
            where = self.vmalloc_node_gfp(array_size, gfp | _GFP_ZERO, "PAGE_KERNEL", node, caller=area.caller)
            area.flags |= VM_VPAGES
            if where is not None:
                area.pages_array = ("vmalloc", where)
        else:
            handle = self.kmalloc(array_size, (gfp & G.GFP_LEVEL_MASK) | _GFP_ZERO, node)
            if handle:
                area.pages_array = ("kmalloc", handle)
        if area.pages_array is None:
            self.remove_vm_area(area.addr)
            self.kfree(area.handle)
            return False
        return True

    def store_page_array(self, area: vm_struct) -> None:
        """Write the page array's contents (pfns, one pointer-sized word each) into its memory."""
        dtype = np.uint64 if self.ptr_size == 8 else np.uint32
        assert area.pages_array is not None
        self.kernel_write(area.pages_array[1], area.pages.astype(dtype).tobytes())

    def vmalloc_area(self, area: vm_struct, gfp: int, prot: int | str | None) -> int | None:
        """``__vmalloc_area``: ``__vmalloc_area_node`` on any node."""
        return self.vmalloc_area_node(area, gfp, prot, -1)

    def vmalloc_node_gfp(self, size: int, gfp: int, prot: int | str | None, node: int, caller: str | None = None) -> int | None:
        """``__vmalloc_node``: ``size`` bytes of pages from ``node`` (-1: any), mapped with ``prot``.

        None for size 0, for more pages than ``num_physpages``, or when anything fails.
        """
        size, gfp, bits, node, caller = self._alloc_args("vmalloc_node_gfp", size, gfp, prot, node, caller)
        return self._vmalloc_node_gfp(size, gfp, bits, node, caller)

    def _vmalloc_node_gfp(self, size: int, gfp: int, prot: int, node: int, caller: str | None) -> int | None:
        """vmalloc_node_gfp after its argument checks: the vmalloc() family's common path, one
        call per step (get_vm_area_node, then __vmalloc_area_node) without checking again."""
        real_size = size
        size = self.PAGE_ALIGN(max(size, 0))
        if not size or (size >> self.PAGE_SHIFT) > self.num_physpages:
            return None
        area = self._get_vm_area_node_range(size, VM_ALLOC, self.VMALLOC_START, self.VMALLOC_END, node,
                                            gfp, caller or "__vmalloc_node", None)
        if area is None:
            self.vmalloc_failure(real_size, gfp)
            return None
        area.requested_size = real_size  # 6.15 __get_vm_area_node(real_size, ...) (vrealloc reads it)
        return self._vmalloc_area_node(area, gfp, prot, node)

    def vmalloc_node_range(self, size: int, align: int, start: int, end: int, gfp: int,
                           prot: int | str | None, node: int, caller: str | None = None) -> int | None:
        """``__vmalloc_node_range`` (2.6.36+; not in 2.6.22): vmalloc inside ``[start, end)``
        at an address aligned to ``align`` (a power of two), as module_alloc and
        lib/test_vmalloc.c use it.  None when anything fails."""
        size, gfp, prot, node, caller = self._alloc_args("vmalloc_node_range", size, gfp, prot, node, caller)
        align = _args.integer("vmalloc_node_range", "align", align)
        start, end = _args.vrange("vmalloc_node_range", start, end, self.PAGE_SIZE, self.vm_ranges())
        self.vm_stats["vmalloc"] += 1
        real_size = size
        size = self.PAGE_ALIGN(max(size, 0))
        if not size or (size >> self.PAGE_SHIFT) > self.num_physpages:
            return None
        area = self.get_vm_area_node_range(size, VM_ALLOC, start, end, node, gfp,
                                           caller or "__vmalloc_node_range", align=align)
        if area is None:
            self.vmalloc_failure(real_size, gfp)
            return None
        return self.vmalloc_area_node(area, gfp, prot, node)

    def module_alloc(self, size: int, caller: str | None = None) -> int | None:
        """Memory for a module's code, as the machine's arch and kernel give it (vmalloc/execmem.py).

        x86_64: MODULES_VADDR..MODULES_END (NULL over MODULES_LEN); i386: the vmalloc area;
        ARM: the 16 MiB module area below PAGE_OFFSET, then (ARM_MODULE_PLTS, 3.19+) the vmalloc
        area; arm64: the release's module area (the 64 MiB below PAGE_OFFSET until 4.5), then
        (4.6+) its PLT fallback: the vmalloc area, 4.15+ a 4 GiB, 5.2+ a 2 GiB window (6.5+: the
        128 MiB below the kernel image, then the 2 GiB module area).  PAGE_KERNEL_EXEC (x86
        5.2+ and arm64 5.3+: PAGE_KERNEL); VM_FLUSH_RESET_PERMS from 5.2.  module_alloc() is
        gone from 6.10: there this is the module loader's ``execmem_alloc(EXECMEM_MODULE_TEXT,
        size)``.
        """
        size, _gfp, _prot, _node, caller = self._alloc_args("module_alloc", size, 0, None, -1, caller)
        return _execmem.module_alloc(self, size, caller or "module_alloc")

    def execmem_alloc(self, type: str, size: int, caller: str | None = None) -> int | None:
        """``execmem_alloc(type, size)`` (6.10, 12af2b83d0b1): ``type`` is one of
        ``EXECMEM_DEFAULT``, ``EXECMEM_MODULE_TEXT``, ``EXECMEM_KPROBES``, ``EXECMEM_FTRACE``,
        ``EXECMEM_BPF``, ``EXECMEM_MODULE_DATA``; the arch's range, then its fallback range
        (``vmalloc.execmem.execmem_ranges``).  An older kernel raises ConfigError."""
        size, _gfp, _prot, _node, caller = self._alloc_args("execmem_alloc", size, 0, None, -1, caller)
        if type not in _execmem.EXECMEM_TYPES:
            raise ValueError(f"execmem_alloc(): type {type!r} is not one of {', '.join(_execmem.EXECMEM_TYPES)}")
        return _execmem.execmem_alloc(self, type, size, caller or "execmem_alloc")

    def execmem_free(self, addr: int | None) -> None:
        """``execmem_free(addr)`` (6.10): vfree of memory execmem_alloc gave."""
        addr = _args.address("execmem_free", "addr", addr)
        _execmem.execmem_free(self, addr)

    def bpf_jit_alloc(self, proglen: int, privileged: bool = False, caller: str | None = None) -> int | None:
        """``bpf_jit_binary_alloc(proglen, ...)`` (3.18+): ``round_up(proglen + sizeof(hdr) +
        128, PAGE_SIZE)`` from bpf_jit_alloc_exec (module_alloc; arm64 5.0-5.15 its BPF JIT
        region, 5.16+ vmalloc; 6.10+
        EXECMEM_BPF), charged to bpf_jit_limit (4.20+): past it an unprivileged load (no
        CAP_SYS_ADMIN/CAP_BPF) is refused (-EPERM, None).  Returns the image address, a random
        start (the machine's own deterministic RNG) in the first page's hole; the header, and
        the area, start at ``addr & ~(PAGE_SIZE - 1)``."""
        proglen = _args.integer("bpf_jit_alloc", "proglen", proglen)
        caller = _args.caller("bpf_jit_alloc", caller)
        if not isinstance(privileged, bool):
            raise TypeError(f"bpf_jit_alloc(): privileged must be a bool, not {privileged!r}")
        return _execmem.bpf_jit_alloc(self, proglen, privileged, caller or "bpf_jit_binary_alloc")

    def bpf_jit_free(self, addr: int) -> None:
        """``bpf_jit_binary_free``: free the JIT image at ``addr`` and give its charge back."""
        addr = _args.integer("bpf_jit_free", "addr", addr)
        _execmem.bpf_jit_free(self, addr)

    def bpf_jit_limit(self, value: int | None = None) -> int:
        """The sysctl ``net.core.bpf_jit_limit`` in bytes (set it with ``value``); its default
        is ``versions`` rule ``bpf_jit_limit`` (``bpf_jit_limit_half`` from 6.3)."""
        st = _execmem.state(self)
        if value is not None:
            value = _args.integer("bpf_jit_limit", "value", value)
            if value <= 0:
                raise ValueError("bpf_jit_limit(): the sysctl takes a positive number of bytes")
            st.limit = value
        return st.limit

    def bpf_jit_current(self) -> int:
        """``bpf_jit_current``: the bytes of JIT images charged against bpf_jit_limit."""
        return _execmem.state(self).current

    def vmalloc_gfp(self, size: int, gfp: int, prot: int | str | None = None, caller: str | None = None) -> int | None:
        """``__vmalloc(size, gfp_mask, prot)``."""
        size, gfp, bits, _node, caller = self._alloc_args("vmalloc_gfp", size, gfp, prot, -1, caller)
        self.vm_stats["vmalloc"] += 1
        return self._vmalloc_node_gfp(size, gfp, bits, -1, caller or "__vmalloc")

    def vmalloc(self, size: int, caller: str | None = None) -> int | None:
        """Virtually contiguous memory from any pages, HIGHMEM first where the arch has it."""
        size, _gfp, bits, _node, caller = self._alloc_args("vmalloc", size, 0, "PAGE_KERNEL", -1, caller)
        self.vm_stats["vmalloc"] += 1  # vmalloc() is __vmalloc(size, GFP_KERNEL | __GFP_HIGHMEM, PAGE_KERNEL)
        return self._vmalloc_node_gfp(size, G.GFP_KERNEL | _GFP_HIGHMEM, bits, -1, caller or "vmalloc")

    def _set_usermap(self, addr: int | None) -> int | None:
        if addr is not None:
            with self.vmlist_lock.write():
                area = self.find_vm_area_locked(addr)
                assert area is not None
                area.flags |= VM_USERMAP
        return addr

    def vmalloc_user(self, size: int, caller: str | None = None) -> int | None:
        """Zeroed memory that may be mapped to user space (VM_USERMAP)."""
        size, _gfp, _prot, _node, caller = self._alloc_args("vmalloc_user", size, 0, None, -1, caller)
        ret = self.vmalloc_gfp(size, G.GFP_KERNEL | _GFP_HIGHMEM | _GFP_ZERO, "PAGE_KERNEL", caller or "vmalloc_user")
        return self._set_usermap(ret)

    def vmalloc_node(self, size: int, node: int, caller: str | None = None) -> int | None:
        """vmalloc with the pages taken from ``node`` first."""
        size, _gfp, _prot, node, caller = self._alloc_args("vmalloc_node", size, 0, None, node, caller)
        self.vm_stats["vmalloc"] += 1
        return self.vmalloc_node_gfp(size, G.GFP_KERNEL | _GFP_HIGHMEM, "PAGE_KERNEL", node, caller or "vmalloc_node")

    def vmalloc_exec(self, size: int, caller: str | None = None) -> int | None:
        """vmalloc mapped executable (PAGE_KERNEL_EXEC: NX clear where the arch has NX)."""
        size, _gfp, _prot, _node, caller = self._alloc_args("vmalloc_exec", size, 0, None, -1, caller)
        return self.vmalloc_gfp(size, G.GFP_KERNEL | _GFP_HIGHMEM, "PAGE_KERNEL_EXEC", caller or "vmalloc_exec")

    @property
    def GFP_VMALLOC32(self) -> int:  # noqa: N802 - the kernel's name
        """The seed's ``#if``: DMA32 on 64-bit with ZONE_DMA32, DMA on 64-bit with ZONE_DMA, else GFP_KERNEL."""
        choice = self.profile.gfp_vmalloc32
        if choice == "DMA32":
            return G.GFP_DMA32 | G.GFP_KERNEL
        if choice == "DMA":
            return G.GFP_DMA | G.GFP_KERNEL
        return G.GFP_KERNEL

    def vmalloc_32(self, size: int, caller: str | None = None) -> int | None:
        """vmalloc from pages a 32-bit device can address (GFP_VMALLOC32)."""
        size, _gfp, _prot, _node, caller = self._alloc_args("vmalloc_32", size, 0, None, -1, caller)
        return self.vmalloc_gfp(size, self.GFP_VMALLOC32, "PAGE_KERNEL", caller or "vmalloc_32")

    def vmalloc_32_user(self, size: int, caller: str | None = None) -> int | None:
        """Zeroed 32-bit addressable memory for user mapping (VM_USERMAP)."""
        size, _gfp, _prot, _node, caller = self._alloc_args("vmalloc_32_user", size, 0, None, -1, caller)
        ret = self.vmalloc_gfp(size, self.GFP_VMALLOC32 | _GFP_ZERO, "PAGE_KERNEL", caller or "vmalloc_32_user")
        return self._set_usermap(ret)

    # ---- vread / vwrite -----------------------------------------------------------------------
    # The copies go through init_mm's page tables one physical run at a time, in address order:
    # consecutive virtual pages that map consecutive frames (within one chunk of the frame store)
    # are one slice copy, so a page mapped twice (a vmap of [P, P], as BPF's ring buffer does, or
    # two areas over one page) sees the bytes of each range in turn, as the kernel's memcpy does.
    # From 2.6.32 (``versions: vread_holes``) unmapped pages of an area and VM_IOREMAP areas are
    # holes: zeros on read, not written; 2.6.22 touched every byte of every area and oopsed on an
    # unmapped page (here: PageFault, raised before anything of that area is copied).
    _VREAD_PIECE_PAGES = 1 << 15  # pages looked up at a time: bounded work per page-table lookup
    _VREAD_SMALL = 1 << 24        # vread counts up to this allocate without looking for the end

    def _clamp_count(self, addr: int, count: int) -> int:
        """``count`` cut at the top of the address space (``addr`` already masked)."""
        top = 1 << self.profile.bits
        if count < 0:
            count = 0
        if addr + count >= top:  # "Don't allow overflow": stop at the top of the address space
            count = max(top - addr, 0)
        return count

    def _vwalk(self, addr: int, count: int) -> Iterator[tuple[int, int, vm_struct | None]]:
        """(address, length, area or None for a hole) runs that vread/vwrite visit, as the seed
        walks vmlist; the walk ends after the last area."""
        # Callers hold vmlist_lock for read: the list cannot change under this walk.
        for va in self.for_each_vmap_area(addr):
            if count == 0:
                return
            owner = va.vm
            if owner is not None:
                guard = self.guard_size(owner)
            else:  # vm_map_ram space is read from 6.4 (vmap_block.vm_map_ram_view)
                owner, guard = vmap_block.vm_map_ram_view(self, va), 0
                if owner is None:
                    continue
            start, size = va.va_start, va.size
            area_end = start + size - guard
            if addr >= area_end:
                continue
            if addr < start:
                gap = min(start - addr, count)
                yield addr, gap, None
                addr += gap
                count -= gap
                if count == 0:
                    return
            n = min(area_end - addr, count)
            yield addr, n, owner
            addr += n
            count -= n

    def _vread_end(self, addr: int) -> int:
        """One past the last byte the walk from ``addr`` can reach: the end (guard page
        excluded) of the last area; ``addr`` when no area lies above it.  vmlist_lock held."""
        end = addr
        for va in self.for_each_vmap_area(addr):
            if va.vm is not None:
                end = max(end, va.va_end - self.guard_size(va.vm))
            elif vmap_block.vm_map_ram_view(self, va) is not None:
                end = max(end, va.va_end)
        return end

    def _is_vread_hole(self, area: vm_struct | None) -> bool:
        # 6.9+: "IOREMAP | SPARSE area is treated as memory hole" (VM_SPARSE exists from 6.9 only).
        return area is None or (bool(area.flags & (VM_IOREMAP | VM_SPARSE)) and has(self.kernel, "vread_holes"))

    def _vread_locked(self, addr: int, out: npt.NDArray[np.uint8], count: int) -> tuple[int, int]:
        """The kernel's vread into ``out[:count]``: (its return value, bytes up to the end of
        the last area the walk reached); vmlist_lock held for read."""
        runs: list[tuple[int, int, npt.NDArray[np.uint8] | None]] = []
        done = self._vread_runs(addr, count, runs)
        for off, n, src in runs:
            out[off:off + n] = 0 if src is None else src
        if not has(self.kernel, "vread_holes"):
            return done, done  # the seed: what was copied; the walk ends with the list
        if not done:
            return 0, 0  # no area ends above addr: "if (buf == buf_start) return 0;"
        out[done:count] = 0  # "zero-fill memory holes": the rest of the buffer
        return count, done

    def _vread_runs(self, addr: int, count: int, runs: list[tuple[int, int, npt.NDArray[np.uint8] | None]]) -> int:
        """What vread copies, as ``(offset, length, the frames' bytes or None for zeros)`` runs
        appended to ``runs`` in order; returns the bytes up to the end of the last area the
        walk reached.  2.6.22 oopses (PageFault) on an unmapped page of an area."""
        holes = has(self.kernel, "vread_holes")
        done = 0
        for a, n, area in self._vwalk(addr, count):
            if self._is_vread_hole(area):
                runs.append((a - addr, n, None))
            else:
                if not holes:
                    self._kernel_pfns(a, n, "read")
                runs.extend((a - addr + off, length, src) for off, length, src in self._frame_runs(a, n, False))
            done = a - addr + n
        return done

    def vread_into(self, addr: int, buffer: Any) -> int:
        """``vread(buf, addr, count)`` into the caller's writable ``buffer`` (bytearray,
        memoryview, numpy uint8 array...): ``count`` is its length in bytes; returns the kernel's
        count.

        2.6.22: areas and the holes between them are copied until the last area ends; the count
        is what was copied and the rest of ``buffer`` is left alone.  2.6.32+ (``vread_holes``):
        unmapped pages and VM_IOREMAP areas read as zeros too, the rest of the buffer is
        zero-filled and the count is ``len(buffer)``, or 0 when no area ends above ``addr``
        (the 2.6.32-6.3 rule; 6.4's vread_iter also returns 0 for a range wholly below an area).
        Nothing is allocated in proportion to the count.
        """
        try:
            view = memoryview(buffer).cast("B")
        except TypeError:
            raise TypeError(f"vread_into: buffer must be a writable C-contiguous bytes-like object, "
                            f"not {type(buffer).__name__}") from None
        if view.readonly:
            raise TypeError("vread_into: buffer is read-only")
        out = np.frombuffer(view, dtype=np.uint8)
        addr &= (1 << self.profile.bits) - 1  # a C pointer: -1 is the top byte
        count = self._clamp_count(addr, len(out))
        with self.vmlist_lock.read():
            return self._vread_locked(addr, out, count)[0]

    def vread(self, addr: int, count: int) -> bytes:
        """Read ``count`` bytes of the vmalloc space at ``addr`` as /dev/kmem does.

        Holes between areas (guard pages included) read as zeros, and from 2.6.32 so do
        unmapped pages and VM_IOREMAP areas (see :meth:`vread_into`).  The bytes end with the
        last area, so fewer than ``count`` may come back (the seed returns what it copied; later
        kernels zero-fill the rest of their buffer, which :meth:`vread_into` does).  ValueError
        when what is left after that cut is more than this host's free memory can hold.
        """
        addr, count = _args.integer("vread", "addr", addr), _args.integer("vread", "count", count)
        addr &= (1 << self.profile.bits) - 1  # a C pointer: -1 is the top byte
        count = self._clamp_count(addr, count)
        with self.vmlist_lock.read():
            if count > self._VREAD_SMALL:
                count = min(count, self._vread_end(addr) - addr)
                room = _host_free_bytes() // 2  # the buffer and the bytes made from it
                if count > room:
                    raise ValueError(
                        f"vread({addr:#x}, ...): the {count} bytes up to the end of the last area are "
                        f"more than this host can hold ({room} bytes); read in pieces or pass a "
                        "buffer of your own to vread_into()")
            # One copy: the bytes are joined straight from the frames' runs (a buffer filled
            # then turned into bytes would copy everything twice).
            runs: list[tuple[int, int, npt.NDArray[np.uint8] | None]] = []
            self._vread_runs(addr, count, runs)
            return b"".join(bytes(n) if src is None else src.data for _off, n, src in runs)

    def vwrite(self, addr: int, data: bytes | bytearray | memoryview) -> int:
        """Write ``data`` into the vmalloc space at ``addr``; returns the bytes consumed.

        Holes are skipped (their bytes of ``data`` are consumed, not written), as in the seed;
        from 2.6.32 unmapped pages and VM_IOREMAP areas are holes too, the count is
        ``len(data)``, or 0 when no area ends above ``addr``.  A page mapped at several addresses
        receives each range in address order (a memcpy through the mappings).
        """
        addr, data = _args.integer("vwrite", "addr", addr), _args.data("vwrite", data)
        src = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        addr &= (1 << self.profile.bits) - 1  # a C pointer: -1 is the top byte
        count = self._clamp_count(addr, len(src))
        holes = has(self.kernel, "vread_holes")
        done = 0
        with self.vmlist_lock.read():
            for a, n, area in self._vwalk(addr, count):
                if not self._is_vread_hole(area):
                    if not holes:  # 2.6.22 oopses on an unmapped page: earlier areas are written
                        self._kernel_pfns(a, n, "write")
                    self._vwrite_area(a, n, src[a - addr: a - addr + n])
                done = a - addr + n
        if holes and done:
            return count  # 2.6.32+: "return buflen" (0 when no area ends above addr)
        return done

    def _vwrite_area(self, addr: int, n: int, data: npt.NDArray[np.uint8]) -> None:
        """One area's part of a vwrite.  Before 2.6.32 (``vwrite_via_kmap``) the seed stores
        byte by byte through the area's own PTEs (``*addr = *buf``): the bytes before the
        first read-only page land, then the store faults (an oops in the kernel; PageFault
        here).  From 2.6.32 ``aligned_vwrite`` copies through ``kmap_atomic`` of each page, a
        writable mapping, so a PAGE_KERNEL_RO vmap is written like any other area."""
        if not has(self.kernel, "vwrite_via_kmap") and n:
            first = addr & ~(self.PAGE_SIZE - 1)
            npages = (addr + n - first + self.PAGE_SIZE - 1) >> self.PAGE_SHIFT
            entries = self.init_mm.lookup_entries(first, npages)
            pte = self.profile.pte
            ro = [i for i, e in enumerate(entries.tolist()) if pte.pte_present(e) and not pte.pte_write(e)]
            if ro:
                stop = max(first + (ro[0] << self.PAGE_SHIFT), addr)
                self._copy_runs(addr, stop - addr, data[: stop - addr], write=True)
                raise PageFault(stop, "write", "protection (kernel write to a read-only vmalloc page)")
        self._copy_runs(addr, n, data, write=True)

    def _copy_runs(self, addr: int, n: int, buf: npt.NDArray[np.uint8], write: bool) -> None:
        """Copy between ``buf`` and the ``n`` bytes at kernel ``addr``, one slice per run of
        consecutive frames, in address order; unmapped pages read as zeros and are not written."""
        for off, length, frames in self._frame_runs(addr, n, write):
            where = buf[off:off + length]
            if frames is None:
                if not write:
                    where[:] = 0
            elif write:
                frames[:] = where
            else:
                where[:] = frames

    def _frame_runs(self, addr: int, n: int, write: bool) -> Iterator[tuple[int, int, npt.NDArray[np.uint8] | None]]:
        """The ``n`` bytes at kernel ``addr`` as ``(offset, length, view)`` runs of consecutive
        frames in address order: ``view`` is the frames' own bytes (a slice of the frame store,
        created for ``write``), or None for an unmapped page or, when reading, a never-written
        one (zeros)."""
        ps, shift = self.PAGE_SIZE, self.PAGE_SHIFT
        frames = self.phys.frames
        pos = 0
        while pos < n:
            va = addr + pos
            first = va >> shift
            npages = min(((addr + n - 1) >> shift) - first + 1, self._VREAD_PIECE_PAGES)
            piece = min(n - pos, (npages << shift) - (va & (ps - 1)))
            pfns = self.init_mm.lookup(first << shift, npages)
            missing = pfns < 0
            brk = np.ones(npages, dtype=bool)
            brk[1:] = ((pfns[1:] != pfns[:-1] + 1) | ((pfns[1:] >> CHUNK_SHIFT) != (pfns[:-1] >> CHUNK_SHIFT))
                       | missing[1:] | missing[:-1])
            starts = np.flatnonzero(brk).tolist()
            ends = starts[1:] + [npages]
            vbase = va & (ps - 1)  # byte offset of ``va`` in its page: virtual bytes [vbase, vbase + piece)
            for s, e in zip(starts, ends):
                lo, hi = max(s * ps, vbase), min(e * ps, vbase + piece)
                if lo >= hi:
                    continue
                off = pos + lo - vbase
                pfn = int(pfns[s])
                if pfn < 0:
                    yield off, hi - lo, None
                    continue
                if pfn + (e - s) > frames.nr_frames:
                    raise IndexError("pfn outside physical memory")
                row = pfn & (CHUNK_FRAMES - 1)
                chunk = frames.chunk_of(pfn, create=write)  # slices of it are the frames' bytes
                if chunk is None:  # never written: zeros
                    yield off, hi - lo, None
                    continue
                yield off, hi - lo, chunk[row: row + e - s].reshape(-1)[lo - s * ps: hi - s * ps]
            pos += piece

    def _kernel_pfns(self, addr: int, n: int, access: str) -> tuple[npt.NDArray[np.int64], int]:
        first = addr >> self.PAGE_SHIFT
        last = (addr + n - 1) >> self.PAGE_SHIFT
        pfns = self.init_mm.lookup(first << self.PAGE_SHIFT, last - first + 1)
        missing = np.flatnonzero(pfns < 0)
        if len(missing):
            bad = max((first + int(missing[0])) << self.PAGE_SHIFT, addr)
            # A kernel access to an unmapped vmalloc address: "unable to handle kernel paging request".
            raise PageFault(bad, access, "not present (kernel paging request in vmalloc space)")
        return pfns, addr & (self.PAGE_SIZE - 1)

    def kernel_write(self, addr: int, data: bytes) -> None:
        """Store ``data`` at kernel virtual ``addr`` (PageFault on a hole, before any store)."""
        n = len(data)
        if n <= 0:
            return
        self._kernel_pfns(addr, n, "write")
        self._copy_runs(addr, n, np.frombuffer(data, dtype=np.uint8), write=True)

    # ---- user space -------------------------------------------------------------------------
    def user_mm(self) -> UserMm:
        """A new user address space whose kernel half is shared with init_mm (``pgd_alloc``)."""
        with self.page_lock:
            mm = UserMm(self)
        self.user_mms.append(mm)
        return mm

    def remap_vmalloc_range(self, vma: Vma, addr: int, pgoff: int = 0) -> int:
        """Map the pages of the VM_USERMAP area at ``addr`` (from page ``pgoff``) over ``vma``.

        ``-EINVAL`` for an unaligned address, an unknown area, an area without VM_USERMAP or a
        VMA larger than what is left of the area; otherwise 0, with VM_RESERVED set on ``vma``.
        """
        fn = "remap_vmalloc_range"
        if not isinstance(vma, Vma):
            raise TypeError(f"{fn}(): vma must be a Vma (UserMm.mmap), not {type(vma).__name__} {vma!r}")
        addr, pgoff = _args.integer(fn, "addr", addr), _args.integer(fn, "pgoff", pgoff)
        start, end = _args.integer(fn, "vma.start", vma.start), _args.integer(fn, "vma.end", vma.end)
        # ``unsigned long usize = vma->vm_end - vma->vm_start``: a VMA ending below its start
        # has a huge size, over any area (-EINVAL; 6.1: check_add_overflow, the same answer).
        usize = (end - start) & ((1 << self.profile.bits) - 1)
        if addr & (self.PAGE_SIZE - 1) or pgoff < 0:
            return -EINVAL
        with self.vmlist_lock.read():
            area = self.find_vm_area_locked(addr)
            if area is None or not area.flags & VM_USERMAP:
                return -EINVAL
            if usize + (pgoff << self.PAGE_SHIFT) > self.get_vm_area_size(area):
                return -EINVAL
        kaddr = addr + (pgoff << self.PAGE_SHIFT)
        uaddr = vma.start
        while usize > 0:
            page = self.vmalloc_to_page(kaddr)
            ret = vma.mm.vm_insert_page(vma, uaddr, page)
            if ret:
                return ret
            uaddr += self.PAGE_SIZE
            kaddr += self.PAGE_SIZE
            usize -= self.PAGE_SIZE
        vma.flags |= VM_RESERVED  # "Prevent things like memory migration"
        return 0

    def vmalloc_to_page(self, addr: int) -> Page | None:
        """The ``struct page *`` mapped at vmalloc address ``addr``, or None (mm/memory.c)."""
        pfn = self.vmalloc_to_pfn(addr)
        return None if pfn is None else self.phys.page(pfn)

    def vmalloc_to_pfn(self, addr: int) -> int | None:
        """The pfn mapped at vmalloc address ``addr``, or None when nothing is mapped there."""
        addr = _args.integer("vmalloc_to_pfn", "addr", addr)
        with self.pgtable_lock:
            pfn = int(self.init_mm.lookup(addr & ~(self.PAGE_SIZE - 1), 1)[0])
        return None if pfn < 0 else pfn

    def vmalloc_sync_all(self) -> None:
        """Copy init_mm's vmalloc-range top-level entries into every user page table.

        The seed's generic version is an empty weak stub; i386 and x86_64 of that era
        override it to do this, which is what makes alloc_vm_area's tables visible in every
        process.  The model does the arch version on every profile.
        """
        with self.pgtable_lock:
            for mm in self.user_mms:
                mm.page_tables.copy_kernel_entries(self.init_mm, self.VMALLOC_START, self.VMALLOC_END)
        self.vm_stats["vmalloc_sync_all"] += 1

    def alloc_vm_area(self, size: int, caller: str | None = None) -> vm_struct | None:
        """Reserve a VM_IOREMAP range and build its page tables down to empty PTE tables.

        Nothing is mapped; on a page-table allocation failure the area is released (None).
        """
        _args.caller("alloc_vm_area", caller)
        area = self.get_vm_area_node_range(
            size, VM_IOREMAP, self.VMALLOC_START, self.VMALLOC_END, -1, G.GFP_KERNEL, caller or "alloc_vm_area"
        )
        if area is None:
            return None
        with self.pgtable_lock:
            err = self.init_mm.populate_range(area.addr, area.size)
        if err:
            self.free_vm_area(area)
            return None
        self.vmalloc_sync_all()
        return area

    def free_vm_area(self, area: vm_struct) -> None:
        """Remove ``area``; BUG when the area registered at its address is another one."""
        _args.area("free_vm_area", area)
        ret = self.remove_vm_area(area.addr)
        self.bug_on(ret is not area, "free_vm_area: area is not the one registered")
        self.kfree(area.handle)

    # ---- the per-CPU allocator's areas (2.6.32+) --------------------------------------------------
    def pcpu_get_vm_areas(self, offsets: Sequence[int], sizes: Sequence[int], align: int) -> list[PcpuArea] | None:
        """``pcpu_get_vm_areas(offsets, sizes, nr_vms, align)`` (2.6.32, ca23e405e06d ≈): one area
        per group of a per-CPU chunk, ``sizes[i]`` bytes at ``base + offsets[i]`` for one base,
        as high in VMALLOC_START..VMALLOC_END as they all fit (``vmalloc.pcpu_areas.find_base``),
        each aligned to ``align``, without guard pages (``PcpuArea``, VM_ALLOC, caller
        ``pcpu_get_vm_areas``).  BUG on a misaligned or overlapping request; None (and a WARN
        when the span is wider than the whole range) when they do not fit after one purge of
        the lazily freed areas, or a vm_struct cannot be had."""
        fn = "pcpu_get_vm_areas"
        offs = [_args.integer(fn, "offsets[]", o) for o in offsets]
        lens = [_args.integer(fn, "sizes[]", s) for s in sizes]
        align = _args.integer(fn, "align", align)
        _kv.require(self, "pcpu_get_vm_areas", fn)
        nr = len(offs)
        if nr == 0 or nr != len(lens):
            raise ValueError(f"{fn}(): offsets and sizes must be two lists of the same, non-zero length")
        self.bug_on(align <= 0 or bool(align & (align - 1)) or bool(align & (self.PAGE_SIZE - 1)),
                    f"{fn}: align {align:#x} is not a power of two multiple of PAGE_SIZE")
        for i in range(nr):
            self.bug_on(bool(offs[i] % align or lens[i] % align) or offs[i] < 0 or lens[i] <= 0,
                        f"{fn}: area {i} is not aligned to {align:#x}")
            for j in range(i + 1, nr):
                self.bug_on(offs[j] < offs[i] + lens[i] and offs[i] < offs[j] + lens[j],
                            f"{fn}: areas {i} and {j} overlap")
        vstart = (self.VMALLOC_START + align - 1) & -align
        vend = self.VMALLOC_END & -align
        last = max(range(nr), key=lambda i: (offs[i], -i))
        if self.WARN_ON(vend - vstart < offs[last] + lens[last], "mm/vmalloc.c:pcpu_get_vm_areas() span"):
            return None
        handles = [self.kmalloc(self.vm_struct_size, G.GFP_KERNEL, -1) for _ in range(nr)]
        if not all(handles):
            for h in handles:
                self.kfree(h)
            return None
        self.run_workers()
        for purged in (False, True):
            if self._fault_allow("vmap_area") == 0:
                break
            with self.vmlist_lock.write():
                free = [(s, s + n) for s, n in self.vmap_allocator.for_each_free(self.VMALLOC_START, self.VMALLOC_END)]
                base = find_base(free, offs, lens, align, vstart, vend)
                if base is not None:
                    vms = []
                    for i in range(nr):
                        area = PcpuArea(addr=base + offs[i], size=lens[i], flags=VM_ALLOC,
                                        caller="pcpu_get_vm_areas", handle=handles[i])
                        ok = self.reserve_vmap_area(vmap_area(area.addr, area.end, VM_VM_AREA, area))
                        self.bug_on(not ok, f"{fn}: the area at {area.addr:#x} was not free")
                        vms.append(area)
                    self.vm_stats["areas_allocated"] += nr
                    return vms
                if not purged:  # reclaim_and_purge_vmap_areas(), then "goto retry"
                    vmap_block.purge_fragmented_blocks_allcpus(self)
                    self._purge_vmap_area_lazy(full_decay=True)
        for h in handles:
            self.kfree(h)
        return None

    def pcpu_free_vm_areas(self, vms: Sequence[vm_struct]) -> None:
        """``pcpu_free_vm_areas(vms, nr_vms)``: ``free_vm_area`` of each."""
        for area in vms:
            self.free_vm_area(area)

    # ---- pages, for drivers -------------------------------------------------------------------
    def alloc_page(self, gfp: int = G.GFP_KERNEL) -> Page | None:
        """One page from the buddy allocator (for vmap), or None."""
        gfp = _args.integer("alloc_page", "gfp", gfp)
        pfns = self.alloc_pages(gfp, 1, -1, owner="other")
        return self.phys.page(int(pfns[0])) if len(pfns) else None

    def free_page(self, page: PageLike) -> None:
        """``__free_page``: drop a reference to the page; it returns to the buddy at zero.

        A page, a pfn, or None (NULL: the kernel dereferences it, a BUG here); anything else is
        a TypeError/ValueError before anything changes."""
        if page is not None:
            _args.pages("free_page", [page], 1)
        self.free_pages(_as_pfns([page]))

    # ---- the page allocator and kmalloc, under the page lock ---------------------------------
    def alloc_pages(self, gfp: int, nr: int, node: int, owner: str = "vmalloc") -> npt.NDArray[np.int64]:
        with self.page_lock:
            pfns = self.phys.alloc_pages_bulk(gfp, nr, node, owner=owner)
        if len(pfns) < nr:
            self._page_alloc_failure(gfp, 0)
        return pfns

    def free_pages(self, pfns: npt.NDArray[np.int64]) -> None:
        if len(pfns):
            with self.page_lock:
                self.phys.free_pages_bulk(pfns)

    def vmalloc_failure(self, real_size: int, gfp: int) -> None:
        # __vmalloc_node_range's own warn_alloc lines when no area was had (2.6.38+).
        if gfp & _GFP_NOWARN:
            return
        bits = [name for name, bit in vars(G.GFPBIT).items() if name.isupper() and gfp & bit]
        nodes = len(self.phys.nodes)
        lines = vmalloc_failure_lines(self.kernel, real_size, bits, G.gfp_names(gfp),
                                      "0" if nodes == 1 else f"0-{nodes - 1}")
        if lines and self.printk_ratelimit():
            for line in lines:
                self.printk(KERN_WARNING, line)

    def _page_alloc_failure(self, gfp: int, order: int) -> None:
        # mm/page_alloc.c's warning: the page allocator's, so the environment's.
        self.env.page_alloc_failure(gfp, order)

    def kmalloc(self, size: int, gfp: int, node: int) -> int:
        with self.page_lock:
            handle = self.slab.kmalloc(size, gfp, node)
        return handle or 0

    def kfree(self, handle: int) -> None:
        if handle:
            with self.page_lock:
                self.slab.kfree(handle)

    # ---- today's API (2.6.37+ ... 6.15) ----
    # vmalloc/kvmalloc.py does the work; each method checks its arguments and its kernel
    # (versions.py block "today's API"; an older kernel raises ConfigError naming the release).
    def vzalloc(self, size: int, caller: str | None = None) -> int | None:
        """``vzalloc`` (2.6.37, e1ca7788dec6): vmalloc of zeroed pages."""
        size, _gfp, _prot, _node, caller = self._alloc_args("vzalloc", size, 0, None, -1, caller)
        _kv.require(self, "vzalloc", "vzalloc")
        return self.vmalloc_gfp(size, G.GFP_KERNEL | _GFP_HIGHMEM | _GFP_ZERO, "PAGE_KERNEL", caller or "vzalloc")

    def vzalloc_node(self, size: int, node: int, caller: str | None = None) -> int | None:
        """``vzalloc_node`` (2.6.37): vzalloc with the pages taken from ``node`` first."""
        size, _gfp, _prot, node, caller = self._alloc_args("vzalloc_node", size, 0, None, node, caller)
        _kv.require(self, "vzalloc", "vzalloc_node")
        self.vm_stats["vmalloc"] += 1
        return self.vmalloc_node_gfp(size, G.GFP_KERNEL | _GFP_HIGHMEM | _GFP_ZERO, "PAGE_KERNEL", node,
                                     caller or "vzalloc_node")

    def vmalloc_array(self, n: int, size: int, caller: str | None = None) -> int | None:
        """``vmalloc_array(n, size)`` (5.18, a8749a35c399): ``__vmalloc(n * size, GFP_KERNEL)``;
        None when the product overflows ``size_t``."""
        return self._vmalloc_array("vmalloc_array", n, size, G.GFP_KERNEL, caller)

    def vcalloc(self, n: int, size: int, caller: str | None = None) -> int | None:
        """``vcalloc(n, size)`` (5.18): as vmalloc_array, zeroed (``__GFP_ZERO``)."""
        return self._vmalloc_array("vcalloc", n, size, G.GFP_KERNEL | _GFP_ZERO, caller)

    def _vmalloc_array(self, fn: str, n: int, size: int, gfp: int, caller: str | None) -> int | None:
        n, size = _args.integer(fn, "n", n), _args.integer(fn, "size", size)
        caller = _args.caller(fn, caller)
        _kv.require(self, "vmalloc_array", fn)
        nbytes = _kv.array_bytes(self, n, size)
        if nbytes is None:
            return None
        return self.vmalloc_gfp(nbytes, gfp, "PAGE_KERNEL", caller or fn)

    def vmalloc_node_range_flags(self, size: int, align: int, start: int, end: int, gfp: int,
                                 prot: int | str | None, vm_flags: int, node: int,
                                 caller: str | None = None) -> int | None:
        """``__vmalloc_node_range`` with its ``vm_flags`` argument (4.0+): VM_USERMAP,
        VM_ALLOW_HUGE_VMAP (5.18+, huge mappings: see :meth:`vmalloc_huge`),
        VM_FLUSH_RESET_PERMS (5.2+: vfree resets the pages' direct-map permissions and flushes
        them with the lazily freed ranges at once, vmalloc/reset_perms.py), VM_DEFER_KMEMLEAK
        (5.16+: no kmemleak object until the caller registers one, kernel/kmemleak.py),
        VM_NO_GUARD (4.0+: no guard page; "***DANGEROUS***": the next area may start right
        after this one, as KASAN's shadow and the arch code that use it want).  Other bits are
        a ValueError."""
        fn = "vmalloc_node_range_flags"
        size, gfp, bits, node, caller = self._alloc_args(fn, size, gfp, prot, node, caller)
        align, vm_flags = _args.integer(fn, "align", align), _args.integer(fn, "vm_flags", vm_flags)
        start, end = _args.vrange(fn, start, end, self.PAGE_SIZE, self.vm_ranges())
        if vm_flags & ~_kv.VMALLOC_VM_FLAGS:
            raise ValueError(f"{fn}(): vm_flags {vm_flags:#x} has bits __vmalloc_node_range does not take")
        _kv.require(self, "vmalloc_vm_flags", fn)
        return _kv.vmalloc_node_range_flags(self, size, align, start, end, gfp, bits, vm_flags, node,
                                            caller or "__vmalloc_node_range")

    def vmalloc_huge(self, size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        """``vmalloc_huge(size, gfp)`` (5.18, 559089e0a93d): ``__vmalloc_node_range`` with
        VM_ALLOW_HUGE_VMAP.  On x86_64 (HAVE_ARCH_HUGE_VMALLOC) a request of PMD_SIZE (2 MiB)
        or more, per online node, is aligned to 2 MiB, rounded up to a multiple of it (the
        guard page comes after), backed by split order-9 blocks and mapped with PMD leaves;
        when no such area or block can be had it is retried with small pages and alignment.
        Smaller requests, and every request on the other arches, are plain vmallocs."""
        size, gfp, _prot, _node, caller = self._alloc_args("vmalloc_huge", size, gfp, None, -1, caller)
        _kv.require(self, "vmalloc_huge", "vmalloc_huge")
        return _kv.vmalloc_node_range_flags(self, size, 1, self.VMALLOC_START, self.VMALLOC_END, gfp,
                                            self.pgprot(None), VM_ALLOW_HUGE_VMAP, -1, caller or "vmalloc_huge")

    def vmap_pfn(self, pfns: Sequence[int] | npt.NDArray[np.int64], count: int,
                 prot: int | str | None = None, caller: str | None = None) -> int | None:
        """``vmap_pfn(pfns, count, prot)`` (5.10, 3e9a9e256b1e): map ``count`` pfns that are
        not RAM (device memory) in a VM_IOREMAP area; None when no area fits or a pfn is RAM
        (a WARN).  Free it with :meth:`vunmap`."""
        fn = "vmap_pfn"
        count = _args.integer(fn, "count", count)
        bits = _args.prot(fn, prot, self.profile)
        caller = _args.caller(fn, caller)
        _kv.require(self, "vmap_pfn", fn)
        arr = _args.pages(fn, pfns, max(count, 0))
        if count <= 0 or bool(np.any(arr < 0)):
            raise ValueError(f"{fn}(): count must be positive and every pfn given")
        return _kv.vmap_pfn(self, arr, count, bits, caller or fn)

    def vrealloc(self, p: int | None, size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        """``vrealloc(p, size, flags)`` (6.12, 3ddc2fefe6f3; 6.15 a0309faf1cb0): resize a
        vmalloc allocation; the address stays when the new size fits the area, otherwise a
        new area is allocated, the bytes copied and ``p`` freed (see kvmalloc.vrealloc)."""
        p = _args.address("vrealloc", "p", p)
        size, gfp, _prot, _node, caller = self._alloc_args("vrealloc", size, gfp, None, -1, caller)
        _kv.require(self, "vrealloc", "vrealloc")
        return _kv.vrealloc(self, p, _kv.size_t(self, size), gfp, caller or "vrealloc")

    def kvmalloc(self, size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        """``kvmalloc(size, gfp)`` (4.12, a7c3e901a46f): a kmalloc object (its direct-map
        address) when the slab can give one, else vmalloc for requests over a page."""
        return self.kvmalloc_node(size, gfp, -1, caller)

    def kvzalloc(self, size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        """``kvzalloc(size, gfp)``: kvmalloc with ``__GFP_ZERO``."""
        return self.kvmalloc_node(size, _args.integer("kvzalloc", "gfp", gfp) | _GFP_ZERO, -1, caller)

    def kvmalloc_node(self, size: int, gfp: int, node: int, caller: str | None = None) -> int | None:
        """``kvmalloc_node(size, gfp, node)`` (mm/util.c; see kvmalloc.kvmalloc_node)."""
        size, gfp, _prot, node, caller = self._alloc_args("kvmalloc_node", size, gfp, None, node, caller)
        _kv.require(self, "kvmalloc", "kvmalloc_node")
        return _kv.kvmalloc_node(self, size, gfp, node, caller or "kvmalloc_node")

    def kvfree(self, addr: int | None) -> None:
        """``kvfree(addr)``: vfree for a vmalloc address, kfree otherwise; NULL does nothing."""
        addr = _args.address("kvfree", "addr", addr)
        _kv.require(self, "kvmalloc", "kvfree")
        _kv.kvfree(self, addr)

    def kvfree_rcu(self, addr: int | None) -> None:
        """``kvfree_rcu(ptr)`` / ``kvfree_rcu_mightsleep(ptr)``: free a kvmalloc'ed or vmalloc'ed
        object after an RCU grace period (vmalloc memory from 5.9, ``kvfree_rcu_vmalloc``).

        The model has no RCU readers: a grace period ends when the work items run
        (:meth:`run_workers`, i.e. at the next call outside interrupt context, as
        kfree_rcu_monitor's batch usually has by then) or at :meth:`rcu_barrier`.  The object
        stays allocated until then.  NULL does nothing.
        """
        addr = _args.address("kvfree_rcu", "addr", addr)
        _kv.require(self, "kvfree_rcu_vmalloc", "kvfree_rcu")
        if addr:
            self._rcu_pending.append(addr)

    def rcu_barrier(self) -> None:
        """``rcu_barrier()``: wait for every kvfree_rcu() object queued so far and free it."""
        while self._rcu_pending:
            self.kvfree(self._rcu_pending.pop(0))

    def kvrealloc(self, p: int | None, size: int, gfp: int = G.GFP_KERNEL, oldsize: int | None = None,
                  caller: str | None = None) -> int | None:
        """``kvrealloc``: 6.12+ ``kvrealloc(p, size, flags)`` (vrealloc for vmalloc addresses,
        krealloc otherwise); 5.15-6.11 ``kvrealloc(p, oldsize, newsize, flags)`` (``oldsize=``
        required)."""
        p = _args.address("kvrealloc", "p", p)
        size, gfp, _prot, _node, caller = self._alloc_args("kvrealloc", size, gfp, None, -1, caller)
        old = None if oldsize is None else _args.integer("kvrealloc", "oldsize", oldsize)
        _kv.require(self, "kvrealloc_oldsize" if not has(self.kernel, "vrealloc") else "vrealloc", "kvrealloc")
        return _kv.kvrealloc(self, p, _kv.size_t(self, size), gfp, old, caller or "kvrealloc")


def _host_free_bytes() -> int:
    """Free memory of the host running the model (``sysconf``), or 4 GiB where it cannot say."""
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return 4 << 30


def _as_pfns(pages: Sequence[PageLike] | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Page handles, pfns or None (NULL, as -1) as an int64 array of pfns."""
    if isinstance(pages, np.ndarray):
        return pages.astype(np.int64, copy=False)
    return np.fromiter(
        (-1 if p is None else int(p if isinstance(p, (int, np.integer)) else p.pfn) for p in pages),
        dtype=np.int64,
        count=len(pages),
    )


for _kname, _pyname in KERNEL_NAMES.items():
    # ``getattr(m, "__vmalloc")`` works too, for readers who think in the kernel's names.
    setattr(Vmalloc, _kname, getattr(Vmalloc, _pyname))

__all__ = ["KERNEL_NAMES", "Vmalloc", "VM_ALLOC", "VM_IOREMAP", "VM_MAP", "VM_USERMAP", "VM_VPAGES"]
