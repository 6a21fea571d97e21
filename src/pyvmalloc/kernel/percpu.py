"""A minimal per-CPU allocator (mm/percpu.c, mm/percpu-vm.c): ``__alloc_percpu``/``free_percpu``
with chunks in the vmalloc space, as much of it as lib/test_vmalloc.c's ``pcpu_alloc_test`` uses.

What the model keeps of the kernel's (2.6.32+; the numbers are 6.x's):

- The geometry of the first chunk (``pcpu_build_alloc_info``): a unit per possible CPU, units of
  ``alloc_size / upa`` bytes where ``alloc_size`` rounds ``static + PERCPU_MODULE_RESERVE +
  PERCPU_DYNAMIC_RESERVE`` up to the atom (x86_64: PMD_SIZE, ``setup_per_cpu_areas``; other
  arches PAGE_SIZE) and ``upa`` is the largest units-per-allocation that divides it into whole
  pages wasting at most a third of the CPUs' units; one group per NUMA node (CPU ``c`` on node
  ``c % nodes``, the model's placement), each group ``roundup(its CPUs, upa)`` units.  The
  static size is the model's: :data:`MODEL_STATIC_SIZE` (a kernel's is that of its image's
  ``.data..percpu``).  With 2 CPUs on x86_64 a unit is 1 MiB and a chunk's area 2 MiB, as the
  6.12 captures show.
- The first chunk itself lives in the kernel image, outside the vmalloc space; the model starts
  where a booted kernel is, with its dynamic part used up by boot (the 6.12 captures already hold
  a dynamic chunk's area after boot), so every allocation here comes from a dynamic chunk.
- ``pcpu_create_chunk`` (percpu-vm.c): ``pcpu_get_vm_areas(group offsets, group sizes, groups,
  atom_size)``; the chunk's ``base_addr`` is the first area's address minus the first group's
  offset; CPU ``c``'s copy of an object at offset ``off`` is at ``base_addr + unit_off[c] + off``
  (``per_cpu_ptr``).
- ``pcpu_populate_chunk``: the pages an allocation spans are populated for every CPU on first use
  (``pcpu_alloc_pages``: ``alloc_pages_node(cpu_to_node(cpu), GFP_KERNEL | __GFP_HIGHMEM, 0)``,
  ``pcpu_map_pages``: ``vmap_pages_range_noflush`` PAGE_KERNEL, then ``flush_cache_vmap``).
- ``free_percpu``; a chunk left empty is destroyed (depopulated: unmapped, TLB flushed, pages
  freed; ``pcpu_free_vm_areas``) when another empty chunk remains, as ``pcpu_balance_free`` keeps
  one -- here at once, not in ``pcpu_balance_workfn``.

What it leaves out: the area bitmap and its blocks (``PCPU_MIN_ALLOC_SIZE`` granularity is kept,
first fit is over free extents), the chunk slots (chunks are tried in creation order), the
reserved chunk, memcg accounting, the populated-page reserve (``PCPU_EMPTY_POP_PAGES_LOW/HIGH``)
and the depopulation of partly used chunks.  ``__alloc_percpu`` of more than a unit, or an
alignment over PAGE_SIZE, is refused with the kernel's WARN (``illegal size``).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pyvmalloc.errors import KernelBug
from pyvmalloc.phys import gfp as G
from pyvmalloc.vmalloc.pcpu_areas import PcpuArea

if TYPE_CHECKING:
    from pyvmalloc.kernel.machine import Machine

PCPU_MIN_ALLOC_SIZE = 4            # mm/percpu-internal.h: the bitmap's unit (PCPU_MIN_ALLOC_SHIFT 2)
PCPU_MODULE_RESERVE = 8 << 10      # include/linux/percpu.h (CONFIG_MODULES)
PCPU_MIN_UNIT_SIZE = 32 << 10      # include/linux/percpu.h: PFN_ALIGN(32 << 10)
MODEL_STATIC_SIZE = 128 << 10      # the model's image: its static per-CPU data (an assumption)
_GFP_HIGHMEM = getattr(G, "__GFP_HIGHMEM")


def dynamic_reserve(bits: int) -> int:
    """``PERCPU_DYNAMIC_RESERVE`` (6.x: 28 KiB on 64-bit, 20 KiB on 32-bit)."""
    return (28 << 10) if bits == 64 else (20 << 10)


@dataclass
class Geometry:
    """The first chunk's layout that every dynamic chunk copies (``pcpu_alloc_info``)."""

    unit_size: int
    atom_size: int
    group_offsets: list[int]
    group_sizes: list[int]
    unit_off: list[int]  # per CPU: its unit's offset from the chunk's base


def build_geometry(nr_cpus: int, nr_nodes: int, page_size: int, atom_size: int, bits: int,
                   static_size: int = MODEL_STATIC_SIZE) -> Geometry:
    """``pcpu_build_alloc_info`` for ``nr_cpus`` CPUs on ``nr_nodes`` nodes (CPU ``c`` on node
    ``c % nr_nodes``)."""
    groups = min(nr_nodes, nr_cpus)
    group_cpus = [[c for c in range(nr_cpus) if c % groups == g] for g in range(groups)]
    size_sum = static_size + PCPU_MODULE_RESERVE + dynamic_reserve(bits)
    min_unit = max(-(-size_sum // page_size) * page_size, PCPU_MIN_UNIT_SIZE)
    alloc_size = -(-min_unit // atom_size) * atom_size
    upa = max(alloc_size // min_unit, 1)
    while alloc_size % upa or (alloc_size // upa) % page_size:
        upa -= 1
    best, last_allocs = 1, None
    for u in range(upa, 0, -1):
        if alloc_size % u or (alloc_size // u) % page_size:
            continue
        allocs = wasted = 0
        for cpus in group_cpus:
            this = -(-len(cpus) // u)
            allocs += this
            wasted += this * u - len(cpus)
        if wasted > nr_cpus // 3:
            continue
        if last_allocs is not None and allocs > last_allocs:
            break
        last_allocs, best = allocs, u
    unit_size = alloc_size // best
    offsets, sizes, unit_off = [], [], [0] * nr_cpus
    at = 0
    for cpus in group_cpus:
        units = -(-len(cpus) // best) * best
        offsets.append(at)
        sizes.append(units * unit_size)
        for k, c in enumerate(cpus):
            unit_off[c] = at + k * unit_size
        at = -(-(at + units * unit_size) // atom_size) * atom_size
    return Geometry(unit_size, atom_size, offsets, sizes, unit_off)


@dataclass(eq=False)
class Chunk:
    """One dynamic chunk: its areas, its free extents of a unit, its populated pages."""

    areas: list[PcpuArea]
    base_addr: int
    free: list[list[int]]                     # [start, end) offsets in a unit, address order
    populated: npt.NDArray[np.bool_]          # per page of a unit
    pages: dict[int, list[int]] = field(default_factory=dict)  # page index -> pfn per CPU
    used: dict[int, int] = field(default_factory=dict)         # object offset -> bytes
    hint: int | None = None  # the largest free extent (chunk->contig_bits), None: recount

    def contig_hint(self) -> int:
        if self.hint is None:
            self.hint = max((e - s for s, e in self.free), default=0)
        return self.hint


class PercpuAllocator:
    """``__alloc_percpu``/``free_percpu`` over chunks made by ``pcpu_get_vm_areas`` (see above)."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        prof = m.profile
        atom = (1 << prof.level("pmd").shift) if prof.name.startswith("x86_64") else prof.page_size
        self.geo = build_geometry(m.nr_cpus, len(m.phys.nodes), prof.page_size, atom, prof.bits)
        self.chunks: list[Chunk] = []
        self.stats = {"chunks_created": 0, "chunks_destroyed": 0, "pages_populated": 0,
                      "pages_depopulated": 0, "objects": 0}

    # ---- the kernel's entry points ------------------------------------------------------------
    def alloc(self, size: int, align: int) -> int | None:
        """``__alloc_percpu(size, align)``: the object's per-CPU pointer (CPU-independent: see
        :meth:`per_cpu_ptr`), or None."""
        ps = self.m.PAGE_SIZE
        if size <= 0 or size > self.geo.unit_size or align > ps or align <= 0 or align & (align - 1):
            self.m.WARN_ON(True, f"mm/percpu.c:pcpu_alloc() illegal size ({size}) or align ({align})")
            return None
        size = -(-size // PCPU_MIN_ALLOC_SIZE) * PCPU_MIN_ALLOC_SIZE
        align = max(align, PCPU_MIN_ALLOC_SIZE)
        for chunk in self.chunks:
            if chunk.contig_hint() >= size:
                off = self._area_alloc(chunk, size, align)
                if off is not None:
                    return self._finish(chunk, off, size)
        new = self._create_chunk()
        if new is None:
            return None
        off = self._area_alloc(new, size, align)
        assert off is not None  # a new chunk's unit holds any legal size
        return self._finish(new, off, size)

    def free(self, ptr: int | None) -> None:
        """``free_percpu(ptr)``: NULL does nothing; a pointer no chunk gave is the kernel's BUG."""
        if not ptr:
            return
        chunk = self._chunk_of(ptr)
        off = None if chunk is None else ptr - chunk.base_addr
        if chunk is None or off not in chunk.used:
            raise KernelBug(f"free_percpu: {ptr:#x} is not a per-CPU pointer the allocator gave")
        size = chunk.used.pop(off)
        self.stats["objects"] -= 1
        self._area_free(chunk, off, off + size)
        if not chunk.used and sum(1 for c in self.chunks if not c.used) > 1:
            self._destroy_chunk(chunk)  # pcpu_balance_free: one empty chunk is enough

    def per_cpu_ptr(self, ptr: int, cpu: int) -> int:
        """``per_cpu_ptr(ptr, cpu)``: the address of ``cpu``'s copy."""
        return ptr + self.geo.unit_off[cpu]

    # ---- chunks -----------------------------------------------------------------------------------
    def _create_chunk(self) -> Chunk | None:
        """``pcpu_create_chunk`` (percpu-vm.c): the chunk's areas from ``pcpu_get_vm_areas``."""
        g = self.geo
        vms = self.m.pcpu_get_vm_areas(g.group_offsets, g.group_sizes, g.atom_size)
        if vms is None:
            return None
        npages = g.unit_size // self.m.PAGE_SIZE
        chunk = Chunk(vms, vms[0].addr - g.group_offsets[0], [[0, g.unit_size]],
                      np.zeros(npages, dtype=bool))
        self.chunks.append(chunk)
        self.stats["chunks_created"] += 1
        return chunk

    def _destroy_chunk(self, chunk: Chunk) -> None:
        """``pcpu_destroy_chunk``: depopulate (unmap every CPU's pages, one TLB flush of the
        chunk, free the pages), then ``pcpu_free_vm_areas``."""
        m = self.m
        for page in sorted(chunk.pages):
            self._unmap_page(chunk, page)
        if chunk.pages:
            lo = min(a.addr for a in chunk.areas)
            m.flush_tlb_kernel_range(lo, max(a.end for a in chunk.areas))
            pfns = np.array([p for page in sorted(chunk.pages) for p in chunk.pages[page]], dtype=np.int64)
            m.vm.free_pages(pfns)
            self.stats["pages_depopulated"] += len(chunk.pages)
            chunk.pages.clear()
        m.pcpu_free_vm_areas(chunk.areas)
        self.chunks.remove(chunk)
        self.stats["chunks_destroyed"] += 1

    def _chunk_of(self, ptr: int) -> Chunk | None:
        for chunk in self.chunks:
            if chunk.base_addr <= ptr < chunk.base_addr + self.geo.unit_size:
                return chunk
        return None

    # ---- the unit's free extents (first fit) -----------------------------------------------------
    def _area_alloc(self, chunk: Chunk, size: int, align: int) -> int | None:
        mask = -align
        for i, (s, e) in enumerate(chunk.free):
            if e - s < size:
                continue
            off = (s + align - 1) & mask
            if off + size <= e:
                pieces = [p for p in ([s, off], [off + size, e]) if p[1] > p[0]]
                chunk.free[i:i + 1] = pieces
                chunk.hint = None
                return off
        return None

    def _area_free(self, chunk: Chunk, start: int, end: int) -> None:
        chunk.hint = None
        free = chunk.free
        i = bisect_right([s for s, _e in free], start)
        if i > 0 and free[i - 1][1] == start:
            i -= 1
            free[i][1] = end
        else:
            free.insert(i, [start, end])
        if i + 1 < len(free) and free[i + 1][0] == free[i][1]:
            free[i][1] = free[i + 1][1]
            del free[i + 1]

    # ---- population ------------------------------------------------------------------------------
    def _finish(self, chunk: Chunk, off: int, size: int) -> int | None:
        """``pcpu_populate_chunk`` of the pages ``[off, off + size)`` spans, then the pointer."""
        ps = self.m.PAGE_SIZE
        first, last = off // ps, (off + size - 1) // ps
        todo = [p for p in range(first, last + 1) if not chunk.populated[p]]
        if todo and not self._populate(chunk, todo):
            self._area_free(chunk, off, off + size)
            return None
        chunk.used[off] = size
        self.stats["objects"] += 1
        return chunk.base_addr + off

    def _populate(self, chunk: Chunk, pages: list[int]) -> bool:
        m = self.m
        ps = m.PAGE_SIZE
        nodes = len(m.phys.nodes)
        got: dict[int, list[int]] = {}
        for page in pages:
            pfns: list[int] = []
            for cpu in range(m.nr_cpus):  # pcpu_alloc_pages: every possible CPU, on its node
                one = m.vm.alloc_pages(G.GFP_KERNEL | _GFP_HIGHMEM, 1, cpu % nodes, owner="other")
                if not len(one):
                    m.vm.free_pages(np.array([p for ps_ in got.values() for p in ps_] + pfns, dtype=np.int64))
                    return False
                pfns.append(int(one[0]))
            got[page] = pfns
        prot = m.vm.pgprot("PAGE_KERNEL")
        with m.vm.pgtable_lock:  # pcpu_map_pages: vmap_pages_range_noflush per CPU's unit
            for page, pfns in got.items():
                for cpu, pfn in enumerate(pfns):
                    addr = chunk.base_addr + self.geo.unit_off[cpu] + page * ps
                    if m.init_mm.map_range(addr, np.array([pfn], dtype=np.int64), prot):
                        for q in got:
                            self._unmap_page_raw(chunk, q)
                        m.vm.free_pages(np.array([p for v in got.values() for p in v], dtype=np.int64))
                        return False
        m.vm_stats["cache_flushes"] += 1  # pcpu_post_map_flush: flush_cache_vmap
        for page, pfns in got.items():
            chunk.pages[page] = pfns
            chunk.populated[page] = True
        self.stats["pages_populated"] += len(got)
        return True

    def _unmap_page_raw(self, chunk: Chunk, page: int) -> None:
        ps = self.m.PAGE_SIZE
        for cpu in range(self.m.nr_cpus):
            addr = chunk.base_addr + self.geo.unit_off[cpu] + page * ps
            self.m.init_mm.unmap_range(addr, ps)

    def _unmap_page(self, chunk: Chunk, page: int) -> None:
        with self.m.vm.pgtable_lock:  # pcpu_unmap_pages: vunmap_range_noflush
            self._unmap_page_raw(chunk, page)
        chunk.populated[page] = False

    # ---- what check() asks ------------------------------------------------------------------------
    def check(self) -> list[str]:
        """What is wrong with the chunks (empty when all holds): every chunk's areas registered,
        every populated page mapped at each CPU's address, objects inside free-less extents."""
        m = self.m
        ps = m.PAGE_SIZE
        problems: list[str] = []
        for chunk in self.chunks:
            for a in chunk.areas:
                if m.find_vm_area_locked(a.addr) is not a:
                    problems.append(f"per-CPU chunk area {a!r} is not registered")
            for page, pfns in chunk.pages.items():
                for cpu, pfn in enumerate(pfns):
                    addr = chunk.base_addr + self.geo.unit_off[cpu] + page * ps
                    got = int(m.init_mm.lookup(addr, 1)[0])
                    if got != pfn:
                        problems.append(f"per-CPU page {page} of CPU {cpu} at {addr:#x} maps {got}, not {pfn:#x}")
            for off, size in chunk.used.items():
                i = bisect_right([s for s, _e in chunk.free], off) - 1
                if i >= 0 and chunk.free[i][1] > off:
                    problems.append(f"per-CPU object at offset {off:#x} (+{size}) lies in a free extent")
        return problems
