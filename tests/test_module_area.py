"""The module area and executable memory: module_alloc per arch and version, the ARM and arm64
fallbacks, BPF JIT images against bpf_jit_limit, 6.10's execmem (versions.py block "the module
area and executable memory"; vmalloc/execmem.py)."""

from __future__ import annotations

import pytest

import pyvmalloc as pv
from pyvmalloc.errors import ConfigError
from pyvmalloc.phys import gfp as G
from pyvmalloc.vmalloc.vm_struct import VM_FLUSH_RESET_PERMS

PAGE = 4096
MiB, GiB = 1 << 20, 1 << 30


def _area(m: pv.Machine, addr: int) -> pv.vm_struct:
    area = m.find_vm_area(addr & ~(PAGE - 1))
    assert area is not None
    return area


@pytest.mark.parametrize("kernel", ["2.6.22", "4.19", "6.1", "6.9", "6.12"])
def test_x86_64_modules_range(kernel: str) -> None:
    m = pv.Machine(arch="x86_64", kernel=kernel)
    addr = m.module_alloc(5 * PAGE)
    assert addr == 0xFFFFFFFFA0000000                     # MODULES_VADDR, nokaslr
    area = _area(m, addr)
    assert bool(area.flags & VM_FLUSH_RESET_PERMS) == (kernel != "2.6.22" and kernel != "4.19")
    # MODULES_LEN: a request larger than the module area is NULL without a search.
    assert m.module_alloc(0xFFFFFFFFFF000000 - 0xFFFFFFFFA0000000 + PAGE) is None
    m.check()


@pytest.mark.parametrize("arch", ["i386", "i386-pae"])
@pytest.mark.parametrize("kernel", ["2.6.22", "6.1", "6.12"])
def test_i386_modules_come_from_the_vmalloc_area(arch: str, kernel: str) -> None:
    m = pv.Machine(arch=arch, kernel=kernel)
    addr = m.module_alloc(3 * PAGE)
    assert addr is not None and m.VMALLOC_START <= addr < m.VMALLOC_END
    assert addr == m.VMALLOC_START
    m.check()


@pytest.mark.parametrize("kernel", ["3.18", "4.19", "6.1", "6.12"])
def test_arm_module_area_and_plt_fallback(kernel: str) -> None:
    m = pv.Machine(arch="arm", kernel=kernel, ram=256 * MiB)
    first = m.module_alloc(PAGE)
    assert first == 0xBF000000                            # PAGE_OFFSET - 16M
    # Fill the rest of the 14 MiB module area (its pages + guard pages), then one more.
    big = m.module_alloc(0xBFE00000 - 0xBF002000 - PAGE)
    assert big is not None and big < 0xBFE00000
    before = len(m.dmesg())
    spill = m.module_alloc(2 * PAGE)
    if kernel == "3.18":                                  # no ARM_MODULE_PLTS: NULL
        assert spill is None
        assert any("vmap allocation for size" in line for line in m.dmesg())
    else:                                                 # into the vmalloc area, silently
        assert spill is not None and m.VMALLOC_START <= spill < m.VMALLOC_END
        assert m.dmesg()[before:] == []
    m.check()


@pytest.mark.parametrize("kernel", ["6.1", "6.6"])
def test_arm64_module_area_and_its_2g_fallback(kernel: str) -> None:
    m = pv.Machine(arch="arm64", kernel=kernel, ram=256 * MiB)
    mstart, mend = m.layout.modules_start, m.layout.modules_end
    assert mstart == 0xFFFF800000000000
    if kernel == "6.1":
        assert mend == mstart + 128 * MiB == m.VMALLOC_START
        assert m.module_alloc(PAGE) == mstart
        # Fill the 128 MiB area with address space only (a VM_ALLOC reservation), then spill.
        assert m.get_vm_area_range(mend - mstart - 3 * PAGE, 0x2, mstart, mend) is not None
        spill = m.module_alloc(4 * PAGE)
        assert spill is not None and mend <= spill < mstart + 2 * GiB   # the PLT window
    else:
        assert mend == mstart + 2 * GiB == m.VMALLOC_START                # MODULES_VSIZE 2G
        first = m.module_alloc(PAGE)
        assert first == mend - 128 * MiB                                # direct-branch window
        assert m.get_vm_area_range(128 * MiB - 3 * PAGE, 0x2, mend - 128 * MiB, mend) is not None
        spill = m.module_alloc(4 * PAGE)
        assert spill is not None and mend - 2 * GiB <= spill < mend - 128 * MiB
    m.check()


def test_bpf_jit_limit_refuses_and_free_gives_it_back() -> None:
    m = pv.Machine(arch="x86_64", kernel="6.1")
    # 4.20+: round_up((MODULES_END - MODULES_VADDR) >> 2, PAGE_SIZE) (>> 1 from 6.3).
    assert m.bpf_jit_limit() == (0xFFFFFFFFFF000000 - 0xFFFFFFFFA0000000) >> 2
    assert pv.Machine(arch="x86_64", kernel="6.6").bpf_jit_limit() == (0xFFFFFFFFFF000000 - 0xFFFFFFFFA0000000) >> 1
    m.bpf_jit_limit(3 * PAGE)
    a = m.bpf_jit_alloc(100)                   # round_up(100 + 8 + 128) = one page
    b = m.bpf_jit_alloc(PAGE)                  # two pages
    assert a is not None and b is not None and m.bpf_jit_current() == 3 * PAGE
    area = _area(m, a)
    assert 0xFFFFFFFFA0000000 <= area.addr < 0xFFFFFFFFFF000000 and area.flags & VM_FLUSH_RESET_PERMS
    assert 8 <= a - area.addr < PAGE           # the image at a random start after the header
    assert m.bpf_jit_alloc(1) is None          # -EPERM
    assert m.bpf_jit_current() == 3 * PAGE
    c = m.bpf_jit_alloc(1, privileged=True)    # CAP_BPF/CAP_SYS_ADMIN go past the limit
    assert c is not None and m.bpf_jit_current() == 4 * PAGE
    m.bpf_jit_free(c)
    m.bpf_jit_free(b)
    assert m.bpf_jit_current() == PAGE
    d = m.bpf_jit_alloc(1)
    assert d is not None
    # The freed images' ranges came back at once (VM_FLUSH_RESET_PERMS purges on vfree, 5.2+),
    # so the new image may sit where b or c was: free the one it did not take, twice.
    stale = next(x for x in (b, c) if x & -PAGE != d & -PAGE)
    with pytest.raises(ValueError):
        m.bpf_jit_free(stale)
    m.check()


def test_bpf_jit_before_its_limit_and_before_it_existed() -> None:
    m = pv.Machine(arch="x86_64", kernel="4.14")
    m.bpf_jit_limit(PAGE)
    assert m.bpf_jit_alloc(1) is not None and m.bpf_jit_alloc(1) is not None   # no charge yet
    assert m.bpf_jit_current() == 0
    with pytest.raises(ConfigError, match=r"3\.18"):
        pv.Machine(arch="x86_64", kernel="3.10").bpf_jit_alloc(1)
    m.check()


def test_arm64_bpf_images_are_vmalloced() -> None:
    m = pv.Machine(arch="arm64", kernel="6.1", ram=256 * MiB)
    assert m.bpf_jit_limit() == (m.VMALLOC_END - m.VMALLOC_START) >> 2
    a = m.bpf_jit_alloc(64)
    assert a is not None and m.VMALLOC_START <= a < m.VMALLOC_END and (a - 8) % 4 == 0
    m.check()


@pytest.mark.parametrize("arch", ["x86_64", "i386", "arm", "arm64"])
def test_execmem_ranges_on_6_10(arch: str) -> None:
    m = pv.Machine(arch=arch, kernel="6.12", ram=256 * MiB)
    lay = m.layout
    text = m.execmem_alloc("EXECMEM_MODULE_TEXT", 2 * PAGE)
    bpf = m.execmem_alloc("EXECMEM_BPF", PAGE)
    assert text is not None and bpf is not None
    assert lay.modules_start <= text < lay.modules_end
    if arch == "arm64":
        assert text == lay.modules_end - 128 * MiB and m.VMALLOC_START <= bpf < m.VMALLOC_END
    else:
        assert lay.modules_start <= bpf < lay.modules_end
    assert _area(m, text).flags & VM_FLUSH_RESET_PERMS
    # module_alloc() is gone in 6.10: the model's module_alloc is EXECMEM_MODULE_TEXT.
    mod = m.module_alloc(PAGE)
    assert mod is not None and lay.modules_start <= mod < lay.modules_end
    m.execmem_free(bpf)
    m.check()


def test_execmem_before_6_10_names_the_release_and_commit() -> None:
    m = pv.Machine(arch="x86_64", kernel="6.9")
    with pytest.raises(ConfigError, match=r"6\.10.*12af2b83d0b1"):
        m.execmem_alloc("EXECMEM_BPF", PAGE)
    with pytest.raises(ValueError):
        pv.Machine(arch="x86_64", kernel="6.12").execmem_alloc("EXECMEM_NOPE", PAGE)


MOD_START, MOD_END = 0xFFFFFFFFA0000000, 0xFFFFFFFFFF000000


def _full_module_area(kernel: str) -> pv.Machine:
    """An x86_64 machine whose module area is all reserved (address space only) but a page."""
    m = pv.Machine(arch="x86_64", kernel=kernel, ram=256 * MiB)
    assert m.get_vm_area_range(MOD_END - MOD_START - 2 * PAGE, 0x2, MOD_START, MOD_END) is not None
    return m


def test_failure_lines_name_the_module_range() -> None:
    # 6.1 module_alloc: GFP_KERNEL without __GFP_NOWARN, the old words.
    m = _full_module_area("6.1")
    assert m.module_alloc(4 * PAGE) is None
    assert any("vmap allocation for size 20480 failed" in line for line in m.dmesg())
    # 6.11+: a restricted range is named (a caller without __GFP_NOWARN)...
    m = _full_module_area("6.12")
    assert m.vmalloc_node_range(4 * PAGE, 1, MOD_START, MOD_END, G.GFP_KERNEL, "PAGE_KERNEL", -1) is None
    assert any("vmalloc_node_range for size 20480 failed: Address range restricted to "
               "0xffffffffa0000000 - 0xffffffffff000000" in line for line in m.dmesg())
    # ... while execmem (the module loader's path from 6.10) asks with __GFP_NOWARN and logs
    # only its own line.
    m = _full_module_area("6.12")
    before = len(m.dmesg())
    assert m.module_alloc(4 * PAGE) is None
    assert m.dmesg()[before:] and all("execmem: unable to allocate memory" in line
                                       for line in m.dmesg()[before:])
    m.check()
