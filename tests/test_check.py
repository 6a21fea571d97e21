"""Machine.check(): passes on every state the API can reach, and names each corruption.

Every invariant of ``kernel/check.py`` is broken on purpose here, one at a time, to prove the
checker can fail and says what failed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.arch import PROFILES
from pyvmalloc.kernel import check as check_mod
from pyvmalloc.phys import gfp as G
from pyvmalloc.formats.vmallocinfo import VmallocinfoLine
from pyvmalloc.vmalloc.vm_struct import VM_LAZY_FREE, VM_VM_AREA, FixedRange, vmap_area

PAGE = 4096


def machine(**kw: object) -> pv.Machine:
    kw.setdefault("arch", "x86_64")
    kw.setdefault("ram", "64M")
    kw.setdefault("allocator", "list")
    return pv.Machine(**kw)  # type: ignore[arg-type]


def prot(m: pv.Machine) -> int:
    return m.profile.pgprot("PAGE_KERNEL")


def busy_machine(**kw: object) -> pv.Machine:
    """A machine holding one area of every kind, a lazily freed one and a user mapping."""
    m = machine(**kw)
    a = m.vmalloc(3 * PAGE)
    m.vwrite(a, b"a" * 3 * PAGE)
    m.vfree(m.vmalloc(2 * PAGE))
    m.vmalloc(600 * PAGE)  # VM_VPAGES
    u = m.vmalloc_user(2 * PAGE)
    pages = [m.alloc_page() for _ in range(2)]
    m.vmap(pages, 2)
    m.alloc_vm_area(3 * PAGE)
    m.module_alloc(5 * PAGE)
    mm = m.user_mm()
    assert m.remap_vmalloc_range(mm.mmap(2 * PAGE), u) == 0
    return m


def area_at(m: pv.Machine, addr: int) -> pv.vm_struct:
    area = m.find_vm_area(addr)
    assert area is not None
    return area


# ---- what the API reaches passes ---------------------------------------------------------------
@pytest.mark.parametrize("arch", sorted(PROFILES))
@pytest.mark.parametrize("allocator", ["list", "kva"])
def test_every_kind_of_area_passes_on_every_profile(arch: str, allocator: str) -> None:
    m = busy_machine(arch=arch, ram="256M", allocator=allocator, cpus=2)
    m.check()
    for area in list(m.areas()):
        if m.find_vm_area(area.addr) is not area:
            continue  # a VM_VPAGES page array, freed with its owner
        if area.flags & pv.VM_IOREMAP:
            m.free_vm_area(area)
        elif area.flags & pv.VM_MAP:
            m.vunmap(area.addr)
        else:
            m.vfree(area.addr)
        m.check()
    m.vm_unmap_aliases()
    m.check()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["vmalloc", "vmap", "ioremap", "free", "read"]),
                          st.integers(1, 40), st.integers(0, 10**6)), max_size=20),
       st.sampled_from(["list", "kva"]))
def test_random_api_use_always_passes_and_any_flipped_pte_is_named(
        ops: list[tuple[str, int, int]], allocator: str) -> None:
    m = machine(allocator=allocator, cpus=2)
    live: list[int] = []
    for op, n, r in ops:
        if op == "vmalloc":
            a = m.vmalloc(n * PAGE - r % PAGE)
            assert a is not None
            live.append(a)
        elif op == "vmap":
            a = m.vmap([m.alloc_page() for _ in range(min(n, 8))], min(n, 8))
            assert a is not None
            live.append(a)
        elif op == "ioremap":
            area = m.alloc_vm_area(n * PAGE)
            assert area is not None
        elif op == "read" and live:
            m.current_cpu = r % 2
            m.read(live[r % len(live)], 1)
        elif op == "free" and live:
            a = live.pop(r % len(live))
            if area_at(m, a).flags & pv.VM_ALLOC:
                m.vfree(a)
            else:
                m.vunmap(a)
        m.check()
    if not live:
        return
    a = live[len(ops) % len(live)]
    area = area_at(m, a)
    i = len(ops) % ((area.size // PAGE) - 1)
    stranger = m.alloc_page()
    m.init_mm.map_range(a + i * PAGE, np.array([stranger.pfn]), prot(m))
    with pytest.raises(pv.Inconsistency, match=rf"pte at {a + i * PAGE:#x} in area .* maps pfn {stranger.pfn:#x}, not its page {i}"):
        m.check()


def test_the_scan_finds_a_stray_pte_anywhere_in_the_vmalloc_and_module_ranges() -> None:
    for arch in ("x86_64", "x86_64-la57", "arm64"):
        m = machine(arch=arch)
        m.vmalloc(PAGE)
        pfn = m.alloc_page().pfn
        lay = m.layout
        for where in (m.VMALLOC_END - (m.VMALLOC_END % PAGE) - PAGE, lay.modules_start + 7 * PAGE):
            m.init_mm.map_range(where, np.array([pfn]), prot(m))
            with pytest.raises(pv.Inconsistency, match=rf"pte at {where:#x} maps pfn {pfn:#x} outside every area"):
                m.check()
            m.unmap_kernel_range(where, PAGE)
            m.check()


# ---- page tables ---------------------------------------------------------------------------------
def test_a_cleared_pte_of_a_vmalloc_area_is_named() -> None:
    m = machine()
    a = m.vmalloc(3 * PAGE)
    m.unmap_kernel_range(a + PAGE, PAGE)
    with pytest.raises(pv.Inconsistency, match=rf"maps 2 of its 3 pages \(nothing at {a + PAGE:#x}\)"):
        m.check()


def test_a_mapped_guard_page_is_named() -> None:
    m = machine()
    a = m.vmalloc(2 * PAGE)
    m.init_mm.map_range(a + 2 * PAGE, np.array([m.alloc_page().pfn]), prot(m))
    with pytest.raises(pv.Inconsistency, match=rf"guard page {a + 2 * PAGE:#x} of area"):
        m.check()


def test_a_pte_left_in_a_lazily_freed_range_is_named() -> None:
    m = machine(allocator="kva", lazy_purge=True)
    a = m.vmalloc(2 * PAGE)
    m.vfree(a)
    m.check()
    m.init_mm.map_range(a, np.array([m.alloc_page().pfn]), prot(m))
    with pytest.raises(pv.Inconsistency, match="inside the lazily freed range"):
        m.check()


def test_a_garbage_pte_is_named() -> None:
    m = machine()
    a = m.vmalloc(2 * PAGE)
    m.unmap_kernel_range(a + PAGE, PAGE)
    step = m.walk(a + PAGE)[-1]
    m.phys.frames.write(step.entry_phys, (0x1000).to_bytes(8, "little"))  # frame bits, no P bit
    with pytest.raises(pv.Inconsistency, match=rf"pte at {a + PAGE:#x} is 0x1000: not none and not present"):
        m.check()


def test_a_vmap_page_freed_while_mapped_is_named() -> None:
    m = machine()
    page = m.alloc_page()
    m.vmap([page], 1)
    m.free_page(page)
    with pytest.raises(pv.Inconsistency, match=rf"maps pfn {page.pfn:#x}, a free frame"):
        m.check()


# ---- frames ----------------------------------------------------------------------------------------
def test_a_leaked_vmalloc_page_is_named() -> None:
    m = machine()
    m.vmalloc(PAGE)
    pfn = m.phys.alloc_pages_node(-1, G.GFP_KERNEL, 0, owner="vmalloc")
    with pytest.raises(pv.Inconsistency, match=rf"pfn {pfn:#x} is owned by vmalloc but no area holds it"):
        m.check()


def test_an_area_lost_from_the_allocator_leaks_its_pages() -> None:
    m = machine(allocator="kva")
    a = m.vmalloc(2 * PAGE)
    m.vmap_allocator.remove(a)
    with pytest.raises(pv.Inconsistency, match=r"owned by vmalloc but no area holds it \(a leak of 2 page"):
        m.check()


def test_one_page_in_two_areas_is_named() -> None:
    m = machine()
    a, b = m.vmalloc(PAGE), m.vmalloc(PAGE)
    area_at(m, b).pages[0] = area_at(m, a).pages[0]
    with pytest.raises(pv.Inconsistency, match=rf"is in two areas: {a:#x} and {b:#x}"):
        m.check()


def test_a_page_freed_under_its_area_is_named() -> None:
    m = machine()
    a = m.vmalloc(2 * PAGE)
    pfn = int(area_at(m, a).pages[1])
    m.phys.free_pages(pfn, 0)
    with pytest.raises(pv.Inconsistency, match=rf"pfn {pfn:#x} of area {a:#x} is owned by free, not vmalloc"):
        m.check()


def test_a_page_table_frame_nobody_has_is_named() -> None:
    m = machine()
    pfn = m.phys.alloc_pages_node(-1, G.GFP_KERNEL, 0, owner="pgtable")
    with pytest.raises(pv.Inconsistency, match=rf"pfn {pfn:#x} is owned by pgtable but is no address space's table"):
        m.check()


def test_a_freed_vm_struct_is_named() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    m.slab.kfree(area_at(m, a).handle)
    with pytest.raises(pv.Inconsistency, match=r"vm_struct of area .* is not a live kmalloc object"):
        m.check()


def test_a_corrupted_vpages_array_is_named() -> None:
    m = machine()
    a = m.vmalloc(600 * PAGE)
    where = area_at(m, a).pages_array[1]
    m.vwrite(where + 8 * 5, (0xDEAD).to_bytes(8, "little"))
    with pytest.raises(pv.Inconsistency, match=r"VM_VPAGES page array .* holds pfn 0xdead at index 5"):
        m.check()


def test_the_page_allocator_is_checked_first() -> None:
    m = machine()
    m.phys._zones[0].nr_free += 1
    with pytest.raises(pv.Inconsistency, match=r"^page allocator: "):
        m.check()


# ---- areas and the allocators -----------------------------------------------------------------------
def test_overlapping_areas_in_vmlist_are_named() -> None:
    m = machine(allocator="list")
    m.vmalloc(PAGE)
    m.vmalloc(PAGE)
    m.vmap_allocator._end[0] += 2 * PAGE  # the first area now covers the second
    with pytest.raises(pv.Inconsistency, match=r"vmap allocator \(list\): vmlist: area .* overlaps"):
        m.check()


def test_an_area_grown_past_its_block_is_named() -> None:
    m = machine(allocator="kva")
    a = m.vmalloc(PAGE)
    m.vmalloc(PAGE)
    area_at(m, a).size += 2 * PAGE
    with pytest.raises(pv.Inconsistency, match=rf"disagrees with its vmap_area {a:#x}\+0x2000"):
        m.check()


def test_an_area_outside_the_allowed_ranges_is_named_unless_a_snapshot_recorded_it() -> None:
    m = machine(allocator="kva")
    addr = m.VMALLOC_START - 64 * PAGE
    area = pv.vm_struct(addr, 2 * PAGE, pv.VM_IOREMAP)
    assert m.reserve_vmap_area(vmap_area(addr, addr + 2 * PAGE, VM_VM_AREA, area))
    with pytest.raises(pv.Inconsistency, match="outside every allowed range"):
        m.check()
    m.extra_vm_ranges[:] = [FixedRange(addr, m.VMALLOC_START, "snapshot")]
    m.check()


def test_a_purge_list_that_disagrees_with_the_allocator_is_named() -> None:
    m = machine(allocator="kva")
    m.vfree(m.vmalloc(PAGE))
    m.check()
    m.vm.nr_lazy_pages += 1
    with pytest.raises(pv.Inconsistency, match="the purge list holds 2 pages, the lazy counter says 3"):
        m.check()
    m.vm.nr_lazy_pages -= 1
    top = m.VMALLOC_END & ~(PAGE - 1)
    m.vm.purge_list.append(vmap_area(top - 16 * PAGE, top - 14 * PAGE, VM_LAZY_FREE))
    with pytest.raises(pv.Inconsistency, match="on the purge list is not reserved in the allocator"):
        m.check()


# ---- TLBs ------------------------------------------------------------------------------------------
def test_a_stale_tlb_entry_outside_lazy_ranges_is_named() -> None:
    m = machine(lazy_purge=False, cpus=2)
    area = m.alloc_vm_area(2 * PAGE)
    pfn = m.alloc_page().pfn
    m.init_mm.map_range(area.addr, np.array([pfn]), prot(m))
    m.current_cpu = 1
    m.read(area.addr, 1)
    m.check()
    m.init_mm.unmap_range(area.addr, PAGE)  # no flush: the TLB of CPU 1 keeps the translation
    with pytest.raises(pv.Inconsistency, match=rf"CPU 1's TLB maps {area.addr:#x} of init_mm to pfn {pfn:#x}, "
                                              "the page tables to nothing"):
        m.check()
    m.flush_tlb_kernel_range(area.addr, area.addr + PAGE)
    m.check()


def test_stale_tlb_entries_of_a_range_waiting_for_the_lazy_purge_pass() -> None:
    m = machine(allocator="kva", lazy_purge=True)
    a = m.vmalloc(2 * PAGE)
    m.read(a, 2 * PAGE)
    m.vfree(a)
    assert m.mmu.stale_entries()  # deferred on purpose
    m.check()
    m.vm_unmap_aliases()
    assert not m.mmu.stale_entries()
    m.check()


# ---- counters --------------------------------------------------------------------------------------
def test_a_wrong_meminfo_counter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    m = machine()
    m.vmalloc(5 * PAGE)
    text = check_mod.proc.meminfo(m, "vmlist")
    free = next(line for line in text.splitlines() if line.startswith("MemFree:"))
    kb = int(free.split()[1])
    monkeypatch.setattr(check_mod.proc, "meminfo",
                        lambda _m, _g: text.replace(free, f"MemFree: {kb + 4} kB"))
    with pytest.raises(pv.Inconsistency, match=rf"/proc/meminfo shows MemFree {kb + 4} kB, a recount gives {kb} kB"):
        m.check()


def test_a_wrong_vmallocinfo_page_count_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    m = machine(nodes=2)
    m.vmalloc(5 * PAGE)
    real = check_mod.proc.vmallocinfo_records

    def off_by_one(mach: pv.Machine) -> list[VmallocinfoLine]:
        recs = real(mach)
        r = recs[0]
        return [VmallocinfoLine(r.start, r.end, r.size, r.caller, (r.nr_pages or 0) + 1, r.phys, r.kinds, r.numa)]

    monkeypatch.setattr(check_mod.proc, "vmallocinfo_records", off_by_one)
    with pytest.raises(pv.Inconsistency, match="/proc/vmallocinfo shows pages=6"):
        m.check()


def test_numa_page_counts_of_vmallocinfo_are_recounted() -> None:
    m = machine(nodes=2, ram="128M")
    for node in (0, 1, 0):
        m.vmalloc_node(7 * PAGE, node)
    m.check()


# ---- machines rebuilt from real /proc/vmallocinfo snapshots -------------------------------------------
DUMPS = sorted((Path(__file__).parent / "data" / "vmallocinfo").glob("*.txt"))


@pytest.mark.parametrize("dump", [d for d in DUMPS if "hashed" not in d.name], ids=lambda d: d.stem)
def test_machines_rebuilt_from_real_snapshots_pass(dump: Path) -> None:
    m = pv.Machine.from_snapshot(dump.read_text())
    m.check()
    area = next(a for a in m.areas() if a.flags & pv.VM_ALLOC and a.nr_pages)
    stranger = m.alloc_page()
    m.init_mm.map_range(area.addr, np.array([stranger.pfn]), prot(m))
    with pytest.raises(pv.Inconsistency, match=rf"maps pfn {stranger.pfn:#x}, not its page 0"):
        m.check()


@pytest.mark.parametrize("arch", ["x86_64", "arm", "i386", "arm64"])
def test_a_machine_rebuilt_from_its_own_vmallocinfo_passes(arch: str) -> None:
    text = busy_machine(arch=arch, ram="256M", allocator="kva").vmallocinfo()
    pv.Machine.from_snapshot(text, arch=arch).check()


def test_snapshot_areas_without_guard_pages_and_vm_map_ram_blocks_pass() -> None:
    text = ("0xffffc90000000000-0xffffc90000004000   16384 no_guard+0x1/0x10 pages=4 vmalloc\n"
            "0xffffc90000004000-0xffffc90000006000    8192 vm_map_ram\n"
            "0xffffc90000006000-0xffffc90000009000   12288 bar+0x1/0x10 pages=2 vmalloc\n"
            "0xffffc90000010000-0xffffc90000012000    8192 unpurged vm_area\n")
    m = pv.Machine.from_snapshot(text, arch="x86_64")
    m.check()
    # The vm_map_ram block maps pages the model does not track; a guard page still may not.
    m.init_mm.map_range(0xFFFFC90000004000, np.array([m.alloc_page().pfn]), prot(m))
    m.check()
    m.init_mm.map_range(0xFFFFC90000008000, np.array([m.alloc_page().pfn]), prot(m))
    with pytest.raises(pv.Inconsistency, match="guard page 0xffffc90000008000 of area"):
        m.check()


def test_get_vm_area_of_vm_alloc_then_map_vm_area_is_a_drivers_right() -> None:
    """A driver may reserve with get_vm_area(VM_ALLOC) and map its own pages (the attack state
    machine found check() calling that inconsistent)."""
    m = machine(allocator="kva")
    area = m.get_vm_area(2 * PAGE, pv.VM_ALLOC)
    pages = [m.alloc_page(), m.alloc_page()]
    assert area is not None and m.map_vm_area(area, None, pages) == 0
    m.check()
