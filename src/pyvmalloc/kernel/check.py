"""The model's CONFIG_DEBUG_VM: ``check_machine(m)`` verifies every invariant of a machine.

``Machine.check()`` calls it.  It raises ``pv.Inconsistency`` naming the first broken
invariant, in this order:

1. the page allocator (``PhysMem.check``: buddy lists, flags, free + used = present per
   zone and node) and the address-space allocator (``check()`` of list or kva);
2. the allocator's busy blocks are exactly the registered areas plus the areas waiting for
   a lazy purge (and the vm_map_ram blocks a snapshot reserved), with the same bounds; the
   lazy page count matches and stays under ``lazy_max_pages`` (unless the drain worker is
   scheduled and has not run yet, 5.19+);
3. every area is page aligned, has room for its guard page (snapshot areas the kernel made
   without one excepted: early static maps, VM_NO_GUARD), lies inside an allowed range
   (the vmalloc area, the arch's module area, or ``m.extra_vm_ranges`` if a snapshot
   recorded some) and owns live kmalloc objects for its ``vm_struct`` and page array; a
   VM_VPAGES array holds the area's pfns in its memory; every caller is a str;
4. every frame has exactly one owner: frames owned "vmalloc" are the pages of the VM_ALLOC
   areas (plus those a user mapping still pins after the area went), no page is in two
   areas; frames owned "pgtable" are the tables of init_mm and the user mms; the slab
   pages are what kmalloc counts, and every live kmalloc object is a vm_struct or page array
   of an area or an object kvmalloc handed out (no leak);
5. every PTE mapped in those ranges lies in an area (never in a guard page nor in a lazily
   freed range) and maps that area's page i (``pages`` for VM_ALLOC, ``mapped`` for vmap),
   and every page of a finished VM_ALLOC or vmap area is mapped;
6. no CPU's TLB holds a translation the page tables no longer have, except inside ranges
   waiting for a lazy purge;
7. the direct map (vmalloc/reset_perms.py): every frame whose alias is read-only is a page of a
   live VM_ALLOC area (a freed page keeping one is what VM_FLUSH_RESET_PERMS, 5.2+, prevents),
   and no alias is left invalid; kmemleak (kernel/kmemleak.py, ``kmemleak=on``): every object is
   a live VM_ALLOC area's block, at its address and no larger, so no freed block keeps one;
8. the counters of ``/proc/meminfo`` (rendered with 2.6.22's ``vmlist`` walk for VmallocUsed and
   VmallocChunk, the definition the recount repeats, whatever the machine's kernel prints) and
   the lines of ``/proc/vmallocinfo`` (as the machine's kernel prints them) equal a recount.

The PTE scan reads only the page tables that exist (whole PTE tables at a time), so checking
the 32 TiB x86_64 vmalloc area costs what its tables cost, not what its size is.

Call it on a quiescent machine: an area that another thread is still filling is reachable
from the list before its pages are mapped (as in the kernel), and would be reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pyvmalloc.errors import Inconsistency, KernelBug
from pyvmalloc.kernel import proc
from pyvmalloc.phys.memory import NO_ZONE, OWNERS, ZoneInfo
from pyvmalloc.versions import has
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.vmallocinfo import UNPURGED, VM_MAP_RAM, VmallocinfoLine
from pyvmalloc.vmalloc.kvmalloc import kv_objects
from pyvmalloc.vmalloc.pcpu_areas import PcpuArea
from pyvmalloc.vmalloc.vmap_node import check_pools
from pyvmalloc.vmalloc import vmap_block
from pyvmalloc.vmalloc.vm_struct import (
    VA_POOLED,
    VM_ALLOC,
    VM_LAZY_FREE,
    VM_MAP_PUT_PAGES,
    VM_VM_AREA,
    VM_VPAGES,
    VMAP_BLOCK,
    VMAP_RAM,
    SnapshotArea,
    vm_struct,
    vmap_area,
)

if TYPE_CHECKING:
    from pyvmalloc.kernel.machine import Machine
    from pyvmalloc.mmu.pagetable import PageTables

__all__ = ["allowed_ranges", "check_machine"]

_FREE = OWNERS.index("free")
_PGTABLE = OWNERS.index("pgtable")
_VMALLOC = OWNERS.index("vmalloc")
_SLAB = OWNERS.index("slab")

_I64 = np.int64


def allowed_ranges(m: Machine) -> list[tuple[int, int, str]]:
    """``(start, end, name)`` of the ranges where areas may lie (``Vmalloc.vm_ranges``)."""
    return m.vm_ranges()


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(start, size)`` ranges with touching ones joined, in address order."""
    out: list[tuple[int, int]] = []
    for start, size in sorted(ranges):
        if out and out[-1][0] + out[-1][1] == start:
            out[-1] = (out[-1][0], out[-1][1] + size)
        else:
            out.append((start, size))
    return out


def check_machine(m: Machine) -> None:
    """Raise ``Inconsistency`` naming the first broken invariant of ``m``; return None if all hold."""
    # A caller that is not a str would break the /proc renderers below: look at it first.
    for area in m.areas():
        if not isinstance(area.caller, str):
            raise Inconsistency(f"area at {area.addr:#x} has caller {area.caller!r} "
                                f"({type(area.caller).__name__}), not a str")
    # The /proc renderers take vmlist_lock themselves and it is not recursive: read them first.
    meminfo_text = proc.meminfo(m, "vmlist")  # the walk the recount below repeats
    records = proc.vmallocinfo_records(m)
    # Lock order of the model: vmlist_lock, then the page-table lock, then the page lock.
    with m.vmlist_lock.write(), m.vm.pgtable_lock, m.vm.page_lock:
        _Checker(m).run(meminfo_text, records)


def _first(mask: npt.NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


class _Checker:
    """One pass over a machine; each ``_check_*`` raises on the first violation it sees."""

    def __init__(self, m: Machine) -> None:
        self.m = m
        self.ps = m.PAGE_SIZE
        self.shift = m.PAGE_SHIFT
        self.areas: list[vm_struct] = []
        self.lazy: list[vmap_area] = []
        self.map_ram: list[vmap_area] = []  # vm_map_ram space (VMAP_RAM/VMAP_BLOCK)
        self.guard: dict[int, int] = {}  # id(area) -> pages of guard at its end (0 or 1)
        self.handles: dict[int, str] = {}  # kmalloc object -> the area that holds it
        self.vb_dirty: list[tuple[int, int]] = []  # vmap blocks' unflushed dirty ranges
        # The used frames by owner code: one scan of the owner array (PhysMem.used_pfns), made
        # on first use, then read by the frame and the meminfo checks.
        self._owned: dict[int, npt.NDArray[np.int64]] | None = None

    def owned(self, code: int) -> npt.NDArray[np.int64]:
        """The frames whose owner code is ``code`` (not "free"), ascending."""
        if self._owned is None:
            pfns, codes = self.m.phys.used_pfns()
            self._owned = {c: pfns[codes == c] for c in np.unique(codes).tolist()}
        return self._owned.get(code, np.zeros(0, _I64))

    def run(self, meminfo_text: str, records: list[VmallocinfoLine]) -> None:
        m = self.m
        try:
            m.phys.check()
        except Inconsistency as exc:
            raise Inconsistency(f"page allocator: {exc}") from None
        try:
            m.vmap_allocator.check()
        except Inconsistency as exc:
            raise Inconsistency(f"vmap allocator ({m.vmap_allocator.name}): {exc}") from None
        self._check_busy_set()
        self._check_areas()
        self._check_vmap_blocks()
        for problem in m.percpu.check():  # mm/percpu.c's chunks (kernel/percpu.py)
            raise Inconsistency(problem)
        self._check_frames()
        self._check_ptes()
        self._check_tlb()
        self._check_direct_map()
        self._check_kmemleak()
        self._check_meminfo(meminfo_text)
        self._check_vmallocinfo(records)

    # ---- 7. the direct map and kmemleak ----------------------------------------------------------
    def _check_direct_map(self) -> None:
        dm = self.m.vm.direct_map
        if dm is None:
            return
        if dm.invalid:
            raise Inconsistency(f"the direct-map alias of pfn {min(dm.invalid):#x} was left invalid "
                                "(vm_reset_perms sets it back to the default)")
        if not dm.readonly:
            return
        live: set[int] = set()
        for area in self.areas:
            if area.flags & VM_ALLOC and area.nr_pages:
                live.update(area.pages[: area.nr_pages].tolist())
        stray = sorted(dm.readonly - live)
        if stray:
            raise Inconsistency(
                f"pfn {stray[0]:#x} has a read-only direct-map alias but is no page of a live "
                f"vmalloc area ({OWNERS[int(self.m.phys.owner[stray[0]])]}): freed after "
                "set_memory_ro without VM_FLUSH_RESET_PERMS (5.2+) or set_memory_rw")

    def _check_kmemleak(self) -> None:
        km = self.m.env.kmemleak
        if km is None or not km.objects:
            return
        by_addr = {area.addr: area for area in self.areas if area.flags & VM_ALLOC}
        for obj in km.list():
            area = by_addr.get(obj.pointer)
            if area is None:
                raise Inconsistency(f"kmemleak object {obj.pointer:#x} ({obj.caller}) is no live "
                                    "vmalloc'ed block: vfree did not unregister it")
            if obj.size > self.m.vm.get_vm_area_size(area):
                raise Inconsistency(f"kmemleak object {obj.pointer:#x} is {obj.size} bytes, more "
                                    f"than its area's {self.m.vm.get_vm_area_size(area)}")

    # ---- 2. busy blocks = areas + lazy areas -------------------------------------------------
    def _check_busy_set(self) -> None:
        m = self.m
        pending = m.lazy_areas()
        pending_ids = {id(x) for x in pending}
        seen_lazy: set[int] = set()
        seen_pooled: set[int] = set()
        for start, size, va in m.vmap_allocator.for_each_busy(0):
            if not isinstance(va, vmap_area):
                raise Inconsistency(f"allocator block {start:#x}+{size:#x} belongs to {va!r}, "
                                    "not a vmap_area")
            if (va.va_start, va.size) != (start, size):
                raise Inconsistency(f"{va!r} disagrees with its allocator block {start:#x}+{size:#x}")
            kinds = va.flags & (VM_VM_AREA | VM_LAZY_FREE | VMAP_RAM | VMAP_BLOCK | VA_POOLED)
            if kinds == VM_VM_AREA and va.vm is not None:
                if va.vm.addr != start or va.vm.size != size:
                    raise Inconsistency(
                        f"area {va.vm!r} disagrees with its vmap_area {start:#x}+{size:#x}")
                self.areas.append(va.vm)
            elif kinds in (VMAP_RAM, VMAP_BLOCK, VMAP_RAM | VMAP_BLOCK) and va.vm is None:
                self.map_ram.append(va)
            elif kinds == VM_LAZY_FREE and va.vm is None:
                if id(va) not in pending_ids:
                    raise Inconsistency(f"lazily freed block {start:#x}+{size:#x} is not on the purge list")
                seen_lazy.add(id(va))
                self.lazy.append(va)
            elif kinds == VA_POOLED and va.vm is None:
                seen_pooled.add(id(va))  # 6.9+: held by a vmap-node pool (check_pools)
            else:
                raise Inconsistency(f"{va!r}: its flags say neither an area with its vm_struct, "
                                    "a vm_map_ram range, a lazily freed one nor a pooled one")
        check_pools(m.vmap_nodes, seen_pooled)
        for lazy in pending:
            if id(lazy) not in seen_lazy:
                raise Inconsistency(f"lazy area {lazy.addr:#x}+{lazy.size:#x} on the purge list is "
                                    "not reserved in the allocator")
        if pending and not m.lazy_purge:
            raise Inconsistency(f"{len(pending)} areas wait for a lazy purge with lazy purge off")
        npages = sum(x.size >> self.shift for x in pending)
        counted, drain_pending = m.vm.lazy_state()
        if npages != counted:
            raise Inconsistency(f"the purge list holds {npages} pages, the lazy counter says {counted}")
        if npages > m.lazy_max_pages and not drain_pending:
            raise Inconsistency(f"{npages} lazily freed pages exceed lazy_max_pages {m.lazy_max_pages} "
                                "without a purge")

    # ---- 3. areas ----------------------------------------------------------------------------
    def _check_areas(self) -> None:
        ranges = allowed_ranges(self.m)
        handles: dict[int, str] = {}
        for area in self.areas:
            if area.addr % self.ps or area.size % self.ps:
                raise Inconsistency(f"area {area!r} is not page aligned")
            guard = self._guard_pages(area)
            self.guard[id(area)] = guard
            if area.size < (1 + guard) * self.ps:
                raise Inconsistency(f"area {area!r} has no room for a page and its guard page")
            if not any(s <= area.addr and area.end <= e for s, e, _ in ranges):
                names = ", ".join(f"{n} [{s:#x}, {e:#x})" for s, e, n in ranges)
                raise Inconsistency(f"area {area!r} lies outside every allowed range ({names})")
            for what, handle in self._kmalloc_objects(area):
                if handle in handles:
                    raise Inconsistency(f"{what} of area {area.addr:#x} is the kmalloc object "
                                        f"{handle:#x} that {handles[handle]} uses too")
                handles[handle] = f"area {area.addr:#x}"
            if area.flags & VM_ALLOC and area.nr_pages:
                self._check_vm_alloc_area(area)
        for handle in kv_objects(self.m.vm):  # kvmalloc()'s kmalloc objects (vmalloc/kvmalloc.py)
            handles[handle] = "kvmalloc"
        self.handles = handles

    def _check_slab_objects(self, handles: dict[int, str]) -> None:
        """Every live kmalloc object is a vm_struct or a page array of a registered area.

        The count is compared first (one number); only when it differs are kmalloc's slabs
        listed (objects, not frames) to name the leaked one.
        """
        slab = self.m.slab
        live = slab.statistics().objects
        if live == len(handles):
            return
        objects = slab.live_objects()  # handle -> requested size
        leaked = sorted(set(objects) - set(handles))
        if leaked:
            h = leaked[0]
            raise Inconsistency(f"kmalloc object {h:#x} ({objects[h]} bytes) is live but no area's "
                                f"vm_struct or page array holds it (a leak of {len(leaked)} object(s))")
        raise Inconsistency(f"kmalloc counts {live} live objects, the areas hold {len(handles)}")

    def _guard_pages(self, area: vm_struct) -> int:
        """1: the area ends with a guard page (every area the API makes, but VM_NO_GUARD ones
        from 4.0: ``Vmalloc.guard_size``).  Areas a snapshot
        rebuilt may have none: early static maps (vm_area_add_early sizes them exactly) and
        areas whose pages fill them (VM_NO_GUARD in later kernels)."""
        if isinstance(area, SnapshotArea) and (area.static or area.nr_pages * self.ps >= area.size):
            return 0
        if isinstance(area, PcpuArea):  # pcpu_get_vm_areas: exactly the group's size
            return 0
        return self.m.vm.guard_size(area) // self.ps  # 4.0+ VM_NO_GUARD: none

    def _kmalloc_objects(self, area: vm_struct) -> list[tuple[str, int]]:
        """The live kmalloc objects ``area`` holds (its vm_struct, a kmalloc'ed page array)."""
        out = []
        want = [("vm_struct", area.handle, self.m.vm.vm_struct_size)]
        if area.pages_array is not None and area.pages_array[0] == "kmalloc":
            want.append(("page array", area.pages_array[1], area.nr_pages * self.m.vm.ptr_size))
        for what, handle, need in want:
            if not handle:
                continue  # areas a snapshot inserted have no kmalloc'ed vm_struct
            try:
                got = self.m.slab.ksize(handle)
            except KernelBug:
                raise Inconsistency(f"the {what} of area {area!r} at {handle:#x} is not a live "
                                    "kmalloc object (freed while in use)") from None
            if got < need:
                raise Inconsistency(f"the {what} of area {area!r} is a {got}-byte object, "
                                    f"{need} bytes are needed")
            out.append((what, handle))
        return out

    def _check_vm_alloc_area(self, area: vm_struct) -> None:
        usable = (area.size >> self.shift) - self.guard[id(area)]
        # __vmalloc_area_node fills the whole area; a snapshot line may print fewer pages.
        if area.nr_pages > usable or (area.nr_pages != usable and not isinstance(area, SnapshotArea)):
            raise Inconsistency(f"VM_ALLOC area {area!r} counts {area.nr_pages} pages for {usable} usable")
        if len(area.pages) < area.nr_pages or area.pages_array is None:
            raise Inconsistency(f"VM_ALLOC area {area!r} is still under construction "
                                "(page array or pages missing; check() wants a quiescent machine)")
        kind, where = area.pages_array
        if bool(area.flags & VM_VPAGES) != (kind == "vmalloc"):
            raise Inconsistency(f"area {area!r}: VM_VPAGES flag and a {kind} page array disagree")
        if kind != "vmalloc":
            return
        holder = self.m.find_vm_area_locked(where)
        if holder is None or not holder.flags & VM_ALLOC:
            raise Inconsistency(f"the page array of area {area!r} at {where:#x} is not a vmalloc area")
        nbytes = area.nr_pages * self.m.vm.ptr_size
        if nbytes > holder.nr_pages * self.ps or len(holder.pages) < holder.nr_pages:
            raise Inconsistency(f"the page array of area {area!r} does not fit its area {holder!r}")
        # The array's bytes are in the array area's frames: read them from the frames directly.
        nframes = -(-nbytes // self.ps)
        raw = self.m.phys.frames.gather(holder.pages[:nframes]).reshape(-1)[:nbytes]
        stored = raw.view(np.uint64 if self.m.vm.ptr_size == 8 else np.uint32).astype(_I64)
        bad = stored != area.pages[: area.nr_pages]
        if bad.any():
            i = _first(bad)
            raise Inconsistency(f"the VM_VPAGES page array of area {area.addr:#x} holds pfn "
                                f"{int(stored[i]):#x} at index {i}, the area has {int(area.pages[i]):#x}")

    def _check_vmap_blocks(self) -> None:
        """vm_map_ram space the model made: blocks and large areas (``vmap_block.check_vm_map_ram``);
        the blocks' structs are kmalloc objects of their own."""
        handles, self.vb_dirty = vmap_block.check_vm_map_ram(self.m.vm, self.map_ram)
        for h in handles:
            if h in self.handles:
                raise Inconsistency(f"kmalloc object {h:#x} is a vmap block and {self.handles[h]}")
            self.handles[h] = "a vmap block"

    # ---- 4. frames -------------------------------------------------------------------------
    def _check_frames(self) -> None:
        m = self.m
        phys = m.phys
        owner = phys.owner
        nframes = phys.nr_frames
        # Pages of VM_ALLOC areas: owned "vmalloc", each in one area only.
        parts, tags = [], []
        for k, area in enumerate(self.areas):
            if area.flags & VM_ALLOC and area.nr_pages:
                pages = area.pages[: area.nr_pages].astype(_I64, copy=False)
                parts.append(pages)
                tags.append(np.full(len(pages), k, dtype=_I64))
        pages = np.concatenate(parts) if parts else np.zeros(0, _I64)
        where = np.concatenate(tags) if tags else np.zeros(0, _I64)
        if len(pages):
            bad = (pages < 0) | (pages >= nframes)
            if bad.any():
                i = _first(bad)
                raise Inconsistency(f"area {self.areas[int(where[i])].addr:#x} holds pfn "
                                    f"{int(pages[i])}, outside physical memory")
            order = np.argsort(pages, kind="stable")
            sp, sw = pages[order], where[order]
            dup = np.flatnonzero(sp[1:] == sp[:-1])
            if len(dup):
                i = int(dup[0])
                a, b = self.areas[int(sw[i])], self.areas[int(sw[i + 1])]
                same = "twice in area" if a is b else f"in two areas: {a.addr:#x} and"
                raise Inconsistency(f"pfn {int(sp[i]):#x} is {same} {b.addr:#x}")
            codes = owner[pages]
            bad = codes != _VMALLOC
            if bad.any():
                i = _first(bad)
                raise Inconsistency(f"pfn {int(pages[i]):#x} of area {self.areas[int(where[i])].addr:#x} "
                                    f"is owned by {OWNERS[int(codes[i])]}, not vmalloc")
            low = phys.refcount[pages] < 1
            if low.any():
                i = _first(low)
                raise Inconsistency(f"pfn {int(pages[i]):#x} of area {self.areas[int(where[i])].addr:#x} "
                                    f"has page_count {int(phys.refcount[pages[i]])}")
        # 5.10+ vmap(VM_MAP_PUT_PAGES): the area holds one reference per entry of its pages (the
        # pages it maps, in order), which vfree() will drop; no page of it may be free.
        for area in self.areas:
            if area.flags & VM_MAP_PUT_PAGES and area.nr_pages:
                held = area.pages[: area.nr_pages].astype(_I64, copy=False)
                if area.mapped is None or not np.array_equal(held, area.mapped[: area.nr_pages]):
                    raise Inconsistency(f"VM_MAP_PUT_PAGES area {area!r} holds pages it does not map")
                uniq, counts = np.unique(held, return_counts=True)
                short = (owner[uniq] == _FREE) | (phys.refcount[uniq] < counts)
                if short.any():
                    i = _first(short)
                    raise Inconsistency(f"pfn {int(uniq[i]):#x} of VM_MAP_PUT_PAGES area {area.addr:#x} is held "
                                        f"{int(counts[i])} times but has page_count {int(phys.refcount[uniq[i]])}")
        # Pages a user mapping still pins (vm_insert_page took a reference).
        pinned_parts = [np.asarray(mm.inserted, dtype=_I64) for mm in m.vm.user_mms if mm.inserted]
        pinned = np.concatenate(pinned_parts) if pinned_parts else np.zeros(0, _I64)
        if len(pinned):
            uniq, counts = np.unique(pinned, return_counts=True)
            bad = (owner[uniq] == _FREE) | (phys.refcount[uniq] < counts)
            if bad.any():
                i = _first(bad)
                raise Inconsistency(f"pfn {int(uniq[i]):#x} is mapped into user space {int(counts[i])} "
                                    f"times but has page_count {int(phys.refcount[uniq[i]])}, owner "
                                    f"{OWNERS[int(owner[uniq[i]])]}")
        owned = self.owned(_VMALLOC)
        extra = np.setdiff1d(owned, np.concatenate([pages, pinned]), assume_unique=False)
        if len(extra):
            raise Inconsistency(f"pfn {int(extra[0]):#x} is owned by vmalloc but no area holds it "
                                f"(a leak of {len(extra)} page(s))")
        # Page-table frames: exactly the tables of init_mm and of every user mm.
        spaces: list[tuple[str, PageTables]] = [("init_mm", m.init_mm)]
        spaces += [(f"user mm {i}", mm.page_tables) for i, mm in enumerate(m.vm.user_mms)]
        tparts = [np.asarray(pt.table_pfns(), dtype=_I64) for _, pt in spaces]
        tables = np.concatenate(tparts) if tparts else np.zeros(0, _I64)
        st = np.sort(tables)
        dup = np.flatnonzero(st[1:] == st[:-1])
        if len(dup):
            raise Inconsistency(f"pfn {int(st[dup[0]]):#x} is a page table of two address spaces")
        if len(st):
            codes = owner[st]
            bad = codes != _PGTABLE
            if bad.any():
                i = _first(bad)
                name = next(n for n, p in zip((n for n, _ in spaces), tparts) if int(st[i]) in p)
                raise Inconsistency(f"pfn {int(st[i]):#x}, a page table of {name}, is owned by "
                                    f"{OWNERS[int(codes[i])]}")
        extra = np.setdiff1d(self.owned(_PGTABLE), st)
        if len(extra):
            raise Inconsistency(f"pfn {int(extra[0]):#x} is owned by pgtable but is no address "
                                f"space's table (a leak of {len(extra)} frame(s))")
        nslab = len(self.owned(_SLAB))
        counted = m.slab.statistics().slab_pages
        if nslab != counted:
            raise Inconsistency(f"{nslab} frames are owned by slab, kmalloc counts {counted} slab pages")
        self._check_slab_objects(self.handles)

    # ---- 5. page-table entries ------------------------------------------------------------------
    def _check_ptes(self) -> None:
        m = self.m
        shift = self.shift
        # Merge the allowed ranges (on i386 the module area is the vmalloc area).
        allowed: list[list[int]] = []
        for s, e, _ in sorted(allowed_ranges(m)):
            if allowed and s <= allowed[-1][1]:
                allowed[-1][1] = max(allowed[-1][1], e)
            else:
                allowed.append([s, e])
        vparts, pparts = [], []
        for s, e in allowed:
            v, p = m.init_mm.present_pages(s, e)
            vparts.append(v)
            pparts.append(p)
        vpns = np.concatenate(vparts)
        pfns = np.concatenate(pparts)
        # Every range a PTE may be in: the areas, and the vm_map_ram blocks of a snapshot
        # (which map pages the model does not track).
        spans: list[tuple[int, int, int, npt.NDArray[np.int64] | None,
                          vm_struct | vmap_area]] = []
        for area in self.areas:
            guard = self.guard[id(area)]
            usable = (area.size >> shift) - guard
            # What the area must map: its pfns in order, nothing after them.  Areas without a
            # record of their pages (ioremap, get_vm_area + map_vm_area) may map anything.
            want_pfns = None
            if area.mapped is not None:
                want_pfns = area.mapped[:usable].astype(_I64, copy=False)
            elif area.flags & VM_ALLOC and (area.nr_pages or area.pages_array is not None):
                # vmalloc's own areas; a bare get_vm_area(VM_ALLOC) + map_vm_area (drivers do
                # that) has no page array and may map what its caller chose.
                want_pfns = area.pages[: area.nr_pages].astype(_I64, copy=False)
            spans.append((area.addr >> shift, area.size >> shift, guard, want_pfns, area))
        for block in self.map_ram:
            spans.append((block.addr >> shift, block.size >> shift, 0, None, block))
        spans.sort(key=lambda x: x[0])
        if not spans:
            if len(vpns):
                self._stray(int(vpns[0]), int(pfns[0]))
            return
        areas = [x[4] for x in spans]
        a_start = np.array([x[0] for x in spans], dtype=_I64)
        a_pages = np.array([x[1] for x in spans], dtype=_I64)  # guard page included
        a_guard = np.array([x[2] for x in spans], dtype=_I64)
        has_expect = np.array([x[3] is not None for x in spans], dtype=bool)
        expect_parts = [np.zeros(0, _I64) if x[3] is None else x[3] for x in spans]
        lengths = np.array([len(x) for x in expect_parts], dtype=_I64)
        offsets = np.concatenate([np.zeros(1, _I64), np.cumsum(lengths)])
        expect = np.concatenate(expect_parts)

        k = np.searchsorted(a_start, vpns, side="right") - 1
        kk = np.maximum(k, 0)
        inside = (k >= 0) & (vpns < a_start[kk] + a_pages[kk])
        if not inside.all():
            i = _first(~inside)
            self._stray(int(vpns[i]), int(pfns[i]))
        off = vpns - a_start[k]
        guard = (a_guard[k] == 1) & (off == a_pages[k] - 1)
        if guard.any():
            i = _first(guard)
            raise Inconsistency(f"guard page {int(vpns[i]) << shift:#x} of area {areas[int(k[i])]!r} "
                                f"is mapped (pfn {int(pfns[i]):#x})")
        checked = has_expect[k]
        beyond = checked & (off >= lengths[k])
        want = np.full(len(vpns), -1, dtype=_I64)
        ok = checked & ~beyond
        want[ok] = expect[offsets[k[ok]] + off[ok]]
        wrong = beyond | (ok & (want != pfns))
        if wrong.any():
            i = _first(wrong)
            culprit = areas[int(k[i])]
            exp = "nothing" if beyond[i] else f"its page {int(off[i])}, pfn {int(want[i]):#x}"
            raise Inconsistency(f"pte at {int(vpns[i]) << shift:#x} in area {culprit!r} maps pfn "
                                f"{int(pfns[i]):#x}, not {exp}")
        # Every page of a finished VM_ALLOC or vmap area is mapped (no hole, no NULL page).
        counts = np.bincount(k[checked], minlength=len(areas))
        for j in np.flatnonzero(has_expect & (counts != lengths)):
            culprit = areas[int(j)]
            mapped = vpns[k == j] - a_start[j]
            missing = np.setdiff1d(np.arange(int(lengths[j]), dtype=_I64), mapped)
            at = culprit.addr + (int(missing[0]) << shift) if len(missing) else culprit.addr
            raise Inconsistency(f"area {culprit!r} maps {int(counts[j])} of its {int(lengths[j])} pages "
                                f"(nothing at {at:#x})")
        # Frames a vmap area maps must be alive.
        phys = m.phys
        for area in self.areas:
            if area.mapped is None or not len(area.mapped):
                continue
            mp = area.mapped.astype(_I64, copy=False)
            valid = (mp >= 0) & (mp < phys.nr_frames)
            ram = mp[valid]
            dead = (phys.owner[ram] == _FREE) & (phys.zone_ids(ram) != NO_ZONE)
            if dead.any():
                raise Inconsistency(f"vmap area {area!r} maps pfn {int(ram[_first(dead)]):#x}, a free frame "
                                    "(freed while mapped)")

    def _stray(self, vpn: int, pfn: int) -> None:
        va = vpn << self.shift
        lazy = next((x for x in self.lazy if x.addr <= va < x.addr + x.size), None)
        where = (f"inside the lazily freed range {lazy.addr:#x}+{lazy.size:#x} (unmapped when freed)"
                 if lazy is not None else "outside every area")
        raise Inconsistency(f"init_mm: pte at {va:#x} maps pfn {pfn:#x} {where}")

    # ---- 6. TLBs ----------------------------------------------------------------------------
    def _check_tlb(self) -> None:
        m = self.m
        stale = m.mmu.stale_entries()
        if not stale:
            return
        kernel_asid = m.init_mm.asid
        for cpu, asid, vaddr, cached, now in stale:
            if asid == kernel_asid and any(x.addr <= vaddr < x.addr + x.size for x in self.lazy):
                continue  # waiting for the lazy purge: the flush is deferred on purpose
            if asid == kernel_asid and any(s <= vaddr < e for s, e in self.vb_dirty):
                continue  # a vmap block's dirty range: flushed by vm_unmap_aliases()
            space = "init_mm" if asid == kernel_asid else f"address space {asid}"
            now_s = "nothing" if now is None else f"pfn {now:#x}"
            raise Inconsistency(f"CPU {cpu}'s TLB maps {vaddr:#x} of {space} to pfn {cached:#x}, "
                                f"the page tables to {now_s}, outside any range waiting for a lazy purge")

    # ---- 7. counters -------------------------------------------------------------------------
    def _check_meminfo(self, text: str) -> None:
        m = self.m
        phys = m.phys
        kb = self.ps >> 10
        shown = parse_meminfo(text, "/proc/meminfo")
        owner = phys.owner
        recount: dict[str, int] = {}
        # RAM is the zones' frames (holes are in none); a free frame is owner code 0, so a
        # zone's free frames are its size less its nonzero owner entries (no temporary array).
        zones = phys.zone_info()

        def free_in(z: ZoneInfo) -> int:
            return z.end_pfn - z.start_pfn - int(np.count_nonzero(owner[z.start_pfn:z.end_pfn]))

        recount["MemTotal"] = sum(z.end_pfn - z.start_pfn for z in zones) * kb
        recount["MemFree"] = sum(free_in(z) for z in zones) * kb
        if "HighTotal" in shown:
            high = [z for z in zones if z.zone == "HIGHMEM"]
            recount["HighTotal"] = sum(z.end_pfn - z.start_pfn for z in high) * kb
            recount["HighFree"] = sum(free_in(z) for z in high) * kb
            recount["LowTotal"] = recount["MemTotal"] - recount["HighTotal"]
            recount["LowFree"] = recount["MemFree"] - recount["HighFree"]
        recount["Slab"] = len(self.owned(_SLAB)) * self.ps >> 10
        recount["PageTables"] = len(self.owned(_PGTABLE)) * kb
        # fs/proc/mmu.c (2.6.22) get_vmalloc_info(): areas below VMALLOC_START are skipped,
        # the walk stops at VMALLOC_END; sizes include guard pages; the chunk is the largest gap.
        start, end = m.VMALLOC_START, m.VMALLOC_END
        recount["VmallocTotal"] = (end - start) >> 10
        inside = [a for a in self.areas if start <= a.addr < end]
        used, chunk, prev = 0, 0, start
        for a in inside:
            used += a.size
            chunk = max(chunk, a.addr - prev)
            prev = a.addr + a.size
        chunk = max(chunk, end - prev)
        recount["VmallocUsed"] = used >> 10
        recount["VmallocChunk"] = chunk >> 10
        for name, value in recount.items():
            if shown.get(name) != value:
                raise Inconsistency(f"/proc/meminfo shows {name} {shown.get(name)} kB, a recount gives {value} kB")

    def _check_vmallocinfo(self, records: list[VmallocinfoLine]) -> None:
        m = self.m
        busy = [r for r in records if UNPURGED not in r.kinds and VM_MAP_RAM not in r.kinds]
        busy.sort(key=lambda r: r.start)  # before 5.4 unpurged lines sit among the busy ones
        lazy = [r for r in records if UNPURGED in r.kinds]
        map_ram = [r for r in records if VM_MAP_RAM in r.kinds]
        # 5.11-6.8 print touching lazily freed areas as one merged range (versions.py).
        have_lazy = sorted((x.addr, x.size) for x in self.lazy)
        if not has(m.kernel, "vmallocinfo_lazy_lines"):
            have_lazy = []              # kernels before 4.13 do not print them
        elif has(m.kernel, "purge_tree_merges"):
            have_lazy = _merged(have_lazy)
        if (len(busy), len(lazy), len(map_ram)) != (len(self.areas), len(have_lazy), len(self.map_ram)):
            raise Inconsistency(f"/proc/vmallocinfo shows {len(busy)} areas, {len(lazy)} unpurged ones and "
                                f"{len(map_ram)} vm_map_ram blocks, the allocator holds {len(self.areas)}, "
                                f"{len(have_lazy)} and {len(self.map_ram)}")
        # 6.9+ prints each vmap node's busy list in turn (vmallocinfo_node_order): sorted here,
        # as the busy lines are.
        shown_blocks = sorted((r.start, r.size) for r in map_ram)
        if shown_blocks != [(b.addr, b.size) for b in self.map_ram]:
            raise Inconsistency(f"/proc/vmallocinfo shows vm_map_ram blocks {shown_blocks}, the allocator "
                                f"has {[(b.addr, b.size) for b in self.map_ram]}")
        numa = len(m.phys.nodes) > 1
        node_starts = np.array([s for s, _ in m.phys.node_spans], dtype=_I64)
        for rec, area in zip(busy, self.areas):
            if (rec.start, rec.end, rec.size) != (area.addr, area.end, area.size):
                raise Inconsistency(f"/proc/vmallocinfo shows {rec.start:#x}-{rec.end:#x} {rec.size} "
                                    f"where the allocator has {area!r}")
            if (rec.nr_pages or 0) != area.nr_pages:
                raise Inconsistency(f"/proc/vmallocinfo shows pages={rec.nr_pages} for {area!r}")
            if numa and area.nr_pages:
                nodes = np.searchsorted(node_starts, area.pages[: area.nr_pages], side="right") - 1
                counts = np.bincount(nodes, minlength=len(node_starts))
                want = {int(n): int(c) for n, c in enumerate(counts) if c}
                if rec.numa != want:
                    raise Inconsistency(f"/proc/vmallocinfo shows {rec.numa} pages per node for "
                                        f"{area!r}, a recount gives {want}")
        shown = sorted((r.start, r.size) for r in lazy)
        have = have_lazy
        if shown != have:
            raise Inconsistency(f"/proc/vmallocinfo shows unpurged areas {shown}, the purge list has {have}")
