"""Today's vm_flags, each from the release that brought it: VM_NO_GUARD (4.0), VM_MAP_PUT_PAGES
(5.10/5.11), vmap()'s refusals (5.16, 6.3), VM_SPARSE with vm_area_[un]map_pages (6.9)."""

from __future__ import annotations

import pytest

import pyvmalloc as pv
from pyvmalloc.errno import E2BIG, EINVAL, ERANGE
from pyvmalloc.phys import gfp as G
from pyvmalloc.vmalloc.vm_struct import (
    VM_FLUSH_RESET_PERMS,
    VM_MAP,
    VM_MAP_PUT_PAGES,
    VM_NO_GUARD,
    VM_SPARSE,
)

PAGE = 4096


def no_guard(m: pv.Machine, npages: int) -> int:
    a = m.vmalloc_node_range_flags(npages * PAGE, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL,
                                   None, VM_NO_GUARD, -1)
    assert a is not None
    return a


# ---- VM_NO_GUARD --------------------------------------------------------------------------------
def test_no_guard_area_is_its_pages_and_the_next_area_starts_right_after() -> None:
    m = pv.Machine(ram="64M", kernel="6.1")
    a = no_guard(m, 3)
    b = m.vmalloc(PAGE)
    area = m.find_vm_area(a)
    assert area is not None and area.size == 3 * PAGE and area.nr_pages == 3 and b == a + 3 * PAGE
    assert f"{a:#x}-{a + 3 * PAGE:#x}   12288 " in m.vmallocinfo()
    m.write(a + 3 * PAGE - 1, b"\x7f")  # the last byte: no guard page behind it...
    assert m.read(b, 1) == b"\x00"      # ...and the next byte is the next area's
    m.check()
    m.vfree(a)
    m.vm_unmap_aliases()
    assert no_guard(m, 3) == a  # exactly the hole it left: the lowest fit
    m.check()


def test_no_guard_means_nothing_before_4_0() -> None:
    m = pv.Machine(ram="64M", kernel="3.10")
    area = m.get_vm_area(PAGE, VM_NO_GUARD)
    assert area is not None and area.size == 2 * PAGE  # the bit did not exist: a guard page
    m.check()


def test_vmap_drops_no_guard_from_5_16_and_refuses_reset_perms_from_6_3() -> None:
    for kernel, guard in (("4.14", 0), ("5.16", PAGE)):
        m = pv.Machine(ram="64M", kernel=kernel)
        a = m.vmap([m.alloc_page()], 1, VM_MAP | VM_NO_GUARD)
        area = m.find_vm_area(a)
        assert area is not None and area.size == PAGE + guard
        assert any("vmap() VM_NO_GUARD" in ln for ln in m.dmesg()) == bool(guard)
        m.check()
    old = pv.Machine(ram="64M", kernel="6.1")
    assert old.vmap([old.alloc_page()], 1, VM_MAP | VM_FLUSH_RESET_PERMS) is not None
    new = pv.Machine(ram="64M", kernel="6.3")
    assert new.vmap([new.alloc_page()], 1, VM_MAP | VM_FLUSH_RESET_PERMS) is None
    assert sum("vmap() VM_FLUSH_RESET_PERMS" in ln for ln in new.dmesg()) == 1
    assert new.vmap([new.alloc_page()], 1, VM_MAP | VM_FLUSH_RESET_PERMS) is None
    assert sum("vmap() VM_FLUSH_RESET_PERMS" in ln for ln in new.dmesg()) == 1  # WARN_ON_ONCE


# ---- VM_MAP_PUT_PAGES -----------------------------------------------------------------------------
def test_vmap_put_pages_hands_the_pages_to_vfree() -> None:
    m = pv.Machine(ram="64M", kernel="6.1")
    pages = [m.alloc_page() for _ in range(3)]
    pfns = [p.pfn for p in pages]
    m.phys.get_page(pfns[0])  # someone else holds the first page too
    a = m.vmap(pages, 3, VM_MAP | VM_MAP_PUT_PAGES)
    area = m.find_vm_area(a)
    assert area is not None and area.nr_pages == 3 and list(area.pages) == pfns
    assert "pages=3 vmap" in m.vmallocinfo()
    m.check()
    m.vfree(a)
    assert [int(m.phys.refcount[p]) for p in pfns] == [1, 0, 0]  # one reference each dropped
    m.free_page(pfns[0])
    m.check()


def test_vmap_put_pages_leaked_them_in_5_10_and_is_not_in_5_9() -> None:
    m = pv.Machine(ram="64M", kernel="5.10")
    pages = [m.alloc_page() for _ in range(2)]
    a = m.vmap(pages, 2, VM_MAP | VM_MAP_PUT_PAGES)
    area = m.find_vm_area(a)
    assert area is not None and area.nr_pages == 0  # 5.10: nr_pages not set (fixed in 5.11)
    m.vfree(a)
    assert all(m.phys.refcount[p.pfn] == 1 for p in pages)  # never put: leaked
    with pytest.raises(pv.ConfigError, match=r"Linux 5\.10"):
        pv.Machine(ram="64M", kernel="5.9").vmap(pages, 2, VM_MAP | VM_MAP_PUT_PAGES)


def test_check_sees_a_put_pages_area_whose_page_went_away() -> None:
    m = pv.Machine(ram="64M", kernel="6.12")
    pages = [m.alloc_page() for _ in range(2)]
    m.vmap(pages, 2, VM_MAP | VM_MAP_PUT_PAGES)
    m.free_page(pages[1])  # the caller put a reference it had handed over
    with pytest.raises(pv.Inconsistency, match="VM_MAP_PUT_PAGES"):
        m.check()


# ---- VM_SPARSE ------------------------------------------------------------------------------------
def test_sparse_area_maps_and_unmaps_pages_inside_it() -> None:
    m = pv.Machine(ram="64M", kernel="6.12")
    area = m.get_vm_area(8 * PAGE, VM_SPARSE)
    assert area is not None and " sparse\n" in m.vmallocinfo()
    p = m.alloc_page()
    m.phys.frames.write(p.phys_addr, b"arena" * 10)
    s = area.addr + 2 * PAGE
    assert m.vm_area_map_pages(area, s, s + PAGE, [p]) == 0
    assert m.read(s, 5) == b"arena"
    assert m.vread(s, 5) == bytes(5)  # vread_iter: a sparse area is a hole
    with pytest.raises(pv.PageFault):
        m.read(area.addr, 1)           # nothing mapped there
    end = area.addr + 8 * PAGE
    assert m.vm_area_map_pages(area, end, end + PAGE, [p]) == -ERANGE  # the guard page
    assert m.vm_area_map_pages(area, s + PAGE, s, [p]) == -E2BIG         # end < start wraps
    m.check()
    m.vm_area_unmap_pages(area, s, s + PAGE)
    with pytest.raises(pv.PageFault):
        m.read(s, 1)
    assert m.vm_area_map_pages(area, s, s + PAGE, [p]) == 0
    m.free_vm_area(area)               # unmaps what is still mapped; the page stays ours
    assert m.translate(s) is None and m.phys.refcount[p.pfn] == 1
    m.free_page(p)
    m.check()


def test_map_pages_wants_a_sparse_area_and_a_kernel_that_has_them() -> None:
    m = pv.Machine(ram="64M", kernel="6.12")
    a = m.vmalloc(PAGE)
    area = m.find_vm_area(a)
    assert area is not None
    assert m.vm_area_map_pages(area, a, a + PAGE, [m.alloc_page()]) == -EINVAL
    assert any("check_sparse_vm_area() !VM_SPARSE" in ln for ln in m.dmesg())
    old = pv.Machine(ram="64M", kernel="6.6")
    with pytest.raises(pv.ConfigError, match=r"Linux 6\.9"):
        old.get_vm_area(PAGE, VM_SPARSE)
    with pytest.raises(pv.ConfigError, match=r"Linux 6\.9"):
        old.vm_area_map_pages(old.get_vm_area(PAGE, 0), 0, PAGE, [])  # type: ignore[arg-type]


def _vmalloc_used(m: pv.Machine) -> int:
    return next(int(line.split()[1]) for line in m.meminfo().splitlines()
                if line.startswith("VmallocUsed:"))


@pytest.mark.parametrize(("kernel", "underflows"),
                         [("5.10", False), ("5.11", True), ("6.12", True), ("6.13", False)])
def test_vfree_of_put_pages_area_and_vmalloc_used(kernel: str, underflows: bool) -> None:
    """5.11-6.12: vfree() of a VM_MAP_PUT_PAGES area takes its pages off nr_vmalloc_pages,
    which vmap() never added them to, so VmallocUsed drops below what vmalloc holds and wraps
    as an unsigned long (6.13's "vmalloc: fix accounting with i915").  5.10 gave the area no
    nr_pages, so nothing was taken (its pages leaked instead)."""
    m = pv.Machine(kernel=kernel)
    pfns = [m.phys.alloc_page(G.GFP_KERNEL) for _ in range(4)]
    a = m.vmap(pfns, 4, VM_MAP_PUT_PAGES)
    v = m.vmalloc(2 * PAGE)
    assert a is not None and v is not None
    assert _vmalloc_used(m) == 8  # the two vmalloc pages; vmap's four are not counted
    m.vfree(a)
    assert _vmalloc_used(m) == ((2**64 - 8) if underflows else 8)  # (2 - 4) pages, in kB
    m.vfree(v)
    assert _vmalloc_used(m) == ((2**64 - 16) if underflows else 0)
    m.check()
