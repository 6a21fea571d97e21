"""kmemleak's objects for vmalloc'ed blocks and VM_DEFER_KMEMLEAK (5.16, 60115fa54ad7)."""

from __future__ import annotations

import pytest

import pyvmalloc as pv
from pyvmalloc.phys import gfp as G
from pyvmalloc.vmalloc.vm_struct import VM_DEFER_KMEMLEAK, VM_FLUSH_RESET_PERMS

PAGE = 4096


def _flags(m: pv.Machine, size: int, vm_flags: int) -> int:
    a = m.vmalloc_node_range_flags(size, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL, None,
                                   vm_flags, -1, caller="test")
    assert a is not None
    return a


def test_kmemleak_is_a_boot_parameter() -> None:
    m = pv.Machine(ram="64M")
    with pytest.raises(pv.ConfigError, match="kmemleak=on"):
        m.kmemleak_objects()
    assert "kmemleak.objects" not in m.stats()
    with pytest.raises(pv.ConfigError, match="kmemleak"):
        pv.Machine(ram="64M", kernel="2.6.28", cmdline="kmemleak=on")   # before 2.6.31
    with pytest.raises(pv.ConfigError, match="on or off"):
        pv.Machine(ram="64M", cmdline="kmemleak=maybe")
    assert pv.Machine(ram="64M", cmdline="kmemleak=off").env.kmemleak is None


def test_vmalloc_registers_and_vfree_unregisters() -> None:
    m = pv.Machine(ram="64M", cmdline="kmemleak=on")
    a = m.vmalloc(PAGE + 5, caller="drv")
    assert a is not None
    (obj,) = m.kmemleak_objects()
    assert (obj.pointer, obj.size, obj.min_count, obj.caller) == (a, 2 * PAGE, 2, "drv")
    page = m.alloc_page()
    v = m.vmap([page], 1)                      # vmap areas are not kmemleak objects
    assert v is not None and len(m.kmemleak_objects()) == 1
    m.check()
    m.vfree(a)
    m.vunmap(v)
    m.free_page(page)
    assert m.kmemleak_objects() == []
    assert m.stats()["kmemleak.created"] == m.stats()["kmemleak.freed"] == 1
    m.check()


def test_a_huge_vmalloc_and_its_vmalloced_page_array_are_objects() -> None:
    m = pv.Machine(ram="256M", cmdline="kmemleak=on")
    a = m.vmalloc_huge(4 << 20)
    b = m.vmalloc(600 * PAGE)                  # its page array (4800 bytes) is vmalloc'ed too
    assert a is not None and b is not None
    area, huge = m.find_vm_area(b), m.find_vm_area(a)
    assert area is not None and area.pages_array is not None
    assert huge is not None and huge.pages_array is not None    # 1024 pointers: 8 KiB
    ptrs = {o.pointer: o.size for o in m.kmemleak_objects()}
    assert ptrs == {a: 4 << 20, b: 600 * PAGE, area.pages_array[1]: 2 * PAGE,
                    huge.pages_array[1]: 2 * PAGE}
    m.vfree(b)
    m.vfree(a)
    assert m.kmemleak_objects() == []
    m.check()


def test_defer_kmemleak_leaves_the_registration_to_the_caller() -> None:
    m = pv.Machine(ram="64M", kernel="5.16", cmdline="kmemleak=on")
    a = _flags(m, 3 * PAGE, VM_DEFER_KMEMLEAK | VM_FLUSH_RESET_PERMS)
    assert m.kmemleak_objects() == [] and m.stats()["kmemleak.deferred"] == 1
    m.check()
    area = m.find_vm_area(a)
    assert area is not None
    m.kmemleak_vmalloc(area)                    # kasan_alloc_module_shadow's kmemleak_vmalloc
    assert [(o.pointer, o.size) for o in m.kmemleak_objects()] == [(a, 3 * PAGE)]
    m.kmemleak_vmalloc(area)                    # twice: the kernel's error, the object kept
    assert any("overlaps existing" in ln for ln in m.dmesg())
    assert len(m.kmemleak_objects()) == 1
    m.vfree(a)
    assert m.kmemleak_objects() == []
    # A deferred block never registered: vfree's kmemleak_free finds nothing, silently.
    b = _flags(m, PAGE, VM_DEFER_KMEMLEAK)
    m.vfree(b)
    assert m.kmemleak_objects() == []
    m.check()


def test_before_5_16_the_flag_defers_nothing() -> None:
    m = pv.Machine(ram="64M", kernel="5.15", cmdline="kmemleak=on")
    a = _flags(m, PAGE, VM_DEFER_KMEMLEAK)
    assert [o.pointer for o in m.kmemleak_objects()] == [a]
    m.vfree(a)


def test_module_alloc_registers_at_once_without_kasan() -> None:
    # VM_DEFER_KMEMLEAK is 0 unless KASAN without KASAN_VMALLOC: the model's module_alloc
    # (no KASAN) passes none, so its blocks are objects from the start.
    m = pv.Machine(ram="64M", kernel="6.12", cmdline="kmemleak=on")
    a = m.module_alloc(2 * PAGE)
    assert a is not None and [o.pointer for o in m.kmemleak_objects()] == [a]
    m.vfree(a)


def test_check_finds_an_object_that_outlived_its_block() -> None:
    m = pv.Machine(ram="64M", cmdline="kmemleak=on")
    a = m.vmalloc(PAGE)
    assert a is not None
    m.vm.vunmap_area(a, True)                   # __vunmap without vfree's kmemleak_free
    with pytest.raises(pv.Inconsistency, match="kmemleak object"):
        m.check()
