"""VM_FLUSH_RESET_PERMS (5.2, 868b104d7379) and set_memory_ro/rw/x/nx (vmalloc/reset_perms.py)."""

from __future__ import annotations

import pytest

import pyvmalloc as pv
from pyvmalloc.phys import gfp as G
from pyvmalloc.vmalloc.vm_struct import VM_FLUSH_RESET_PERMS, VM_IOREMAP, VM_MAP

PAGE = 4096


def _machine(kernel: str = "6.1", arch: str = "x86_64") -> pv.Machine:
    return pv.Machine(arch=arch, ram="256M", kernel=kernel)


def _area(m: pv.Machine, addr: int) -> pv.vm_struct:
    area = m.find_vm_area(addr)
    assert area is not None
    return area


def test_vfree_resets_the_direct_map_and_flushes_both_ranges_at_once() -> None:
    m = _machine()
    a = m.module_alloc(3 * PAGE)
    assert a is not None
    area = _area(m, a)
    assert area.flags & VM_FLUSH_RESET_PERMS
    pfns = area.pages[: area.nr_pages].tolist()
    assert m.set_memory_ro(a, 3) == 0 and m.set_memory_x(a, 3) == 0
    # x86: the PTEs lose RW and NX; the direct-map aliases are read-only too (cpa_process_alias).
    pte = m.walk(a)[-1]
    assert "RW" not in pte.flags and "NX" not in pte.flags
    assert m.direct_map_readonly() == sorted(pfns)
    with pytest.raises(pv.PageFault):
        m.write(a, b"x")
    m.check()
    other = m.vmalloc(PAGE)            # a lazily freed range waiting: the one flush covers it
    m.vfree(other)
    lazy_start = m.lazy_areas()[0].va_start
    before = m.stats()
    m.vfree(a)
    after = m.stats()
    diff = {k: after[k] - before[k] for k in after}
    # One flush_tlb_kernel_range over [direct map of the lowest page, end of the highest range).
    start = min(m.layout.page_offset + (min(pfns) << 12), lazy_start, a)
    end = max(a + 4 * PAGE, m.layout.page_offset + ((max(pfns) + 1) << 12))
    assert diff["tlb.flushes"] == 1 and diff["tlb.pages_flushed"] == (end - start) >> 12
    assert diff["tlb.full_flushes"] == 1      # over x86's 33-page ceiling
    assert diff["vm.reset_perms"] == 1 and diff["direct_map.pages_reset"] == 3
    assert diff["vm.purge_runs"] == 1 and diff["vm.purged_areas"] == 2
    assert m.lazy_areas() == [] and m.direct_map_readonly() == []
    m.check()


def test_without_the_flag_the_area_lingers_and_a_read_only_alias_is_a_bug() -> None:
    m = _machine()
    a = m.vmalloc(2 * PAGE)
    assert a is not None
    pfns = _area(m, a).pages.tolist()
    assert m.set_memory_ro(a, 2) == 0
    m.vfree(a)
    assert [va.va_start for va in m.lazy_areas()] == [a]       # waits for the lazy purge
    assert m.stats()["vm.reset_perms"] == 0
    assert set(pfns) == set(m.direct_map_readonly())
    with pytest.raises(pv.Inconsistency, match="read-only direct-map alias"):
        m.check()
    # What the module loader did before 5.2: writable again, then free.
    m2 = _machine()
    b = m2.vmalloc(2 * PAGE)
    assert b is not None
    assert m2.set_memory_ro(b, 2) == 0 and m2.set_memory_rw(b, 2) == 0
    m2.write(b, b"ok")
    m2.vfree(b)
    assert m2.direct_map_readonly() == []
    m2.check()


def test_before_5_2_the_bit_does_nothing() -> None:
    m = _machine("4.19")
    a = m.module_alloc(PAGE)
    assert a is not None and not _area(m, a).flags & VM_FLUSH_RESET_PERMS
    b = m.vmalloc_node_range_flags(PAGE, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL, None,
                                   VM_FLUSH_RESET_PERMS, -1)
    assert b is not None
    m.vfree(b)
    assert [va.va_start for va in m.lazy_areas()] == [b]
    assert m.stats()["vm.reset_perms"] == 0


def test_vunmap_flushes_the_aliases_until_6_3() -> None:
    m = _machine("5.10")
    page = m.alloc_page()
    a = m.vmap([page], 1, VM_MAP | VM_FLUSH_RESET_PERMS)
    assert a is not None
    c = m.vmalloc(PAGE)
    m.vfree(c)
    m.vunmap(a)                      # vm_unmap_aliases(): every lazy range purged
    assert m.lazy_areas() == []
    m.free_page(page)
    m.check()
    # 6.3+: only vfree resets; a VM_FLUSH_RESET_PERMS area unmapped with vunmap stays lazy.
    n = _machine("6.3")
    area = n.get_vm_area(PAGE, VM_MAP | VM_FLUSH_RESET_PERMS)
    assert area is not None
    page = n.alloc_page()
    assert n.map_vm_area(area, None, [page]) == 0
    n.vunmap(area.addr)
    assert [va.va_start for va in n.lazy_areas()] == [area.addr]
    n.free_page(page)
    n.check()


def test_arm_has_no_set_direct_map_but_still_flushes() -> None:
    m = _machine(arch="arm")
    a = m.module_alloc(2 * PAGE)
    assert a is not None and _area(m, a).flags & VM_FLUSH_RESET_PERMS
    assert m.set_memory_ro(a, 2) == 0
    assert m.direct_map_readonly() == []     # no alias processing on 32-bit ARM
    with pytest.raises(pv.PageFault):
        m.write(a, b"x")
    before = m.stats()["tlb.flushes"]
    m.vfree(a)
    assert m.stats()["tlb.flushes"] == before + 1 and m.lazy_areas() == []
    m.check()


def test_arm64_read_only_reaches_every_page_of_the_area() -> None:
    m = _machine(arch="arm64")
    a = m.module_alloc(4 * PAGE)
    assert a is not None
    pfns = _area(m, a).pages.tolist()
    assert m.set_memory_ro(a + PAGE, 1) == 0         # change_memory_common: the whole area's aliases
    assert m.direct_map_readonly() == sorted(pfns)
    m.write(a, b"still writable")                  # the PTE of the first page did not change
    assert m.set_memory_x(a, 4) == 0 and m.direct_map_readonly() == sorted(pfns)
    m.vfree(a)
    assert m.direct_map_readonly() == []
    m.check()


def test_set_memory_refuses_what_is_not_one_vmalloc_area() -> None:
    m = _machine()
    a = m.vmalloc(2 * PAGE)
    assert a is not None
    assert m.set_memory_ro(a + 1, 1) == -22                # not page aligned
    assert m.set_memory_ro(a, 3) == -22                    # past the area (into the guard)
    assert m.set_memory_ro(m.VMALLOC_END - PAGE, 1) == -22  # no area there
    assert m.set_memory_ro(a, 0) == 0
    io = m.get_vm_area(PAGE, VM_IOREMAP)
    assert io is not None and m.set_memory_ro(io.addr, 1) == -22   # not VM_ALLOC
    big = m.vmalloc_huge(4 << 20)
    assert big is not None and m.set_memory_ro(big, 1) == -22      # PMD leaves: not split here
    assert m.direct_map_readonly() == []
    m.vfree(a)
    m.vfree(big)
    m.free_vm_area(io)
    m.check()


def test_a_huge_area_counts_its_direct_map_per_pmd_page() -> None:
    m = pv.Machine(ram="256M", kernel="6.12")
    a = m.vmalloc_node_range_flags(2 << 20, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL, None,
                                   pv.vmalloc.vm_struct.VM_ALLOW_HUGE_VMAP | VM_FLUSH_RESET_PERMS, -1)
    assert a is not None
    area = _area(m, a)
    assert area.page_order == 9
    first = int(area.pages[0])
    before = m.stats()
    m.vfree(a)
    after = m.stats()
    # One entry per 1 << page_order pages: [page_address(pages[0]), + PMD_SIZE) with the area.
    start = m.layout.page_offset + (first << 12)
    assert after["tlb.pages_flushed"] - before["tlb.pages_flushed"] == (a + (2 << 20) + PAGE - start) >> 12
    assert after["direct_map.pages_reset"] - before["direct_map.pages_reset"] == 512
    assert m.lazy_areas() == []
    m.check()
