"""Tests of boot_layout(): command line, lowmem/highmem, zones, vmalloc bounds, KASLR."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.versions import has
from pyvmalloc.arch import PROFILES, boot_layout, get_profile

MiB, GiB = 1 << 20, 1 << 30
names = st.sampled_from(sorted(PROFILES))


@st.composite
def machines(draw: st.DrawFn, name: str | None = None) -> tuple[str, int]:
    name = name or draw(names)
    p = get_profile(name)
    ram = draw(st.integers(p.min_ram, min(p.max_ram, 128 * GiB)))
    return name, ram


def check_invariants(lay: pv.arch.BootLayout) -> None:  # type: ignore[name-defined]
    p = lay.profile
    assert lay.vmalloc_start < lay.vmalloc_end
    assert lay.ram_bytes % p.page_size == 0
    assert lay.lowmem_bytes + lay.highmem_bytes == lay.ram_bytes
    # Zones cover [0, ram_pages) in order, without overlap or gap.
    pos = 0
    for name, start, end in lay.zones:
        assert name in p.zone_names
        assert start == pos and end >= start
        pos = end
    assert pos == lay.ram_pages
    if not p.has_highmem:
        assert lay.highmem_bytes == 0
    else:
        assert lay.zone("HIGHMEM") == (lay.lowmem_bytes >> p.page_shift, lay.ram_pages)
        # The guard hole after lowmem: [8M, 16M) on i386 with 2.6.22's rounding, exactly 8M on
        # later i386 (x86_32_vmalloc_start_unrounded), (0, 8M] on ARM.
        gap = lay.vmalloc_start - lay.high_memory
        if p.name.startswith("i386") and has(lay.kernel, "x86_32_vmalloc_start_unrounded"):
            assert gap == 8 * MiB
        elif p.name.startswith("i386"):
            assert 8 * MiB <= gap < 16 * MiB and lay.vmalloc_start % p.vmalloc_offset == 0
        else:
            assert 0 < gap <= 8 * MiB and lay.vmalloc_start % p.vmalloc_offset == 0
    assert lay.modules_start < lay.modules_end
    assert lay.messages[0].startswith("Kernel command line:")


@settings(max_examples=80)
@given(machines())
def test_layout_invariants(machine: tuple[str, int]) -> None:
    name, ram = machine
    check_invariants(boot_layout(name, ram))


@settings(max_examples=80)
@given(st.sampled_from(["i386", "i386-pae", "arm"]), st.data())
def test_vmalloc_param_moves_the_boundary(name: str, data: st.DataObject) -> None:
    p = get_profile(name)
    ram = data.draw(st.integers(1 * GiB, p.max_ram))
    # i386's reserve also holds pkmap/fixmap and the 8-16 MiB hole: below ~32M nothing is left.
    low = 16 if name == "arm" else 32
    a = data.draw(st.integers(low, 400)) * MiB
    b = data.draw(st.integers(low, 400)) * MiB
    assume(a < b)
    la = boot_layout(name, ram, f"vmalloc={a >> 20}M")
    lb = boot_layout(name, ram, f"vmalloc={b >> 20}M")
    check_invariants(la)
    check_invariants(lb)
    # With RAM above the boundary, every extra byte of vmalloc space is a byte less lowmem.
    assert la.lowmem_bytes - lb.lowmem_bytes == b - a
    assert lb.highmem_bytes - la.highmem_bytes == b - a
    assert lb.vmalloc_start <= la.vmalloc_start and la.vmalloc_end == lb.vmalloc_end
    if b - a >= 8 * MiB:       # VMALLOC_START moves in 8 MiB steps
        assert lb.vmalloc_start < la.vmalloc_start
    for lay, size in ((la, a), (lb, b)):
        area = lay.vmalloc_end - lay.vmalloc_start
        if name == "arm":      # early_vmalloc(): the area is the size, rounded up to 8 MiB
            assert size <= area < size + 8 * MiB
        else:                  # 6.1: __VMALLOC_RESERVE = size + VMALLOC_OFFSET, MAXMEM below
            assert area == size  # VMALLOC_END (x86_32_vmalloc_param_adds_offset)


def test_i386_default_layout_of_2_6_22() -> None:
    lay = boot_layout("i386", 2 * GiB, kernel="2.6.22")
    assert lay.lowmem_bytes == 896 * MiB and lay.highmem_bytes == 1152 * MiB
    assert (lay.vmalloc_start, lay.vmalloc_end) == (0xF8800000, 0xFF7FE000)
    assert "896MB LOWMEM available." in lay.messages
    assert "    vmalloc : 0xf8800000 - 0xff7fe000   ( 111 MB)" in lay.messages
    small = boot_layout("i386", 256 * MiB, kernel="2.6.22")
    assert small.highmem_bytes == 0 and small.vmalloc_start == 0xC0000000 + 256 * MiB + 8 * MiB


def test_i386_pae_layout_of_6_1_is_the_real_guests() -> None:
    """A Debian 6.1 686-pae guest with 1 GiB (shared/data/oracle): f77fe000-feffe000, VmallocTotal
    122880 kB: VMALLOC_START = high_memory + VMALLOC_OFFSET unrounded, MAXMEM below VMALLOC_END
    (x86_32_vmalloc_start_unrounded), VMALLOC_END = PKMAP_BASE - 2 pages under the
    cpu_entry_area (92a0f81d8957, x86_32_pkmap_below_cpu_entry_area)."""
    lay = boot_layout("i386-pae", 1 * GiB, kernel="6.1")
    assert (lay.vmalloc_start, lay.vmalloc_end) == (0xF77FE000, 0xFEFFE000)
    assert lay.vmalloc_total_kb == 122880
    assert lay.ioremap_max_order == 21        # PMD_SHIFT with PAE (x86_ioremap_max_order_pmd, 4.1)
    old = boot_layout("i386-pae", 1 * GiB, kernel="2.6.22")
    assert (old.vmalloc_start, old.vmalloc_end, old.ioremap_max_order) == (0xF8800000, 0xFF7FE000, 19)
    # vmalloc=SIZE is the area's size from 2.6.25 (x86_32_vmalloc_param_adds_offset)...
    sized = boot_layout("i386-pae", 1 * GiB, "vmalloc=256M", kernel="6.1")
    assert sized.vmalloc_end - sized.vmalloc_start == 256 * MiB
    # ...and SIZE less the hole and what lies above VMALLOC_END in 2.6.22.
    sized = boot_layout("i386-pae", 1 * GiB, "vmalloc=256M", kernel="2.6.22")
    assert sized.vmalloc_end - sized.vmalloc_start == 0xFF7FE000 - 0xF0800000


def test_i386_vmalloc_too_big_or_small_is_config_error() -> None:
    with pytest.raises(pv.ConfigError, match="lowmem"):
        boot_layout("i386", 2 * GiB, "vmalloc=1020M")
    with pytest.raises(pv.ConfigError, match="no vmalloc space"):
        boot_layout("i386", 2 * GiB, "vmalloc=1M", kernel="2.6.22")
    # With little RAM the same small reserve boots: lowmem never reaches MAXMEM.
    assert boot_layout("i386", 64 * MiB, "vmalloc=1M", kernel="2.6.22").lowmem_bytes == 64 * MiB
    # Later kernels add VMALLOC_OFFSET to the value: vmalloc=1M is a 1 MiB area.
    lay = boot_layout("i386", 2 * GiB, "vmalloc=1M", kernel="6.1")
    assert lay.vmalloc_end - lay.vmalloc_start == 1 * MiB


def test_arm_default_and_clamps() -> None:
    lay = boot_layout("arm", 1 * GiB)
    assert lay.lowmem_bytes == 768 * MiB and lay.vmalloc_start == 0xF0800000
    assert lay.vmalloc_end - lay.vmalloc_start == 240 * MiB
    small = boot_layout("arm", 1 * GiB, "vmalloc=4M")
    assert "vmalloc area is too small, limiting to 16MiB" in small.messages
    assert small.vmalloc_end - small.vmalloc_start == 16 * MiB
    big = boot_layout("arm", 1 * GiB, "vmalloc=3G")
    assert "vmalloc area is too big, limiting to 976MiB" in big.messages
    assert big.lowmem_bytes == 32 * MiB
    check_invariants(small)
    check_invariants(big)


@settings(max_examples=40)
@given(st.sampled_from(["x86_64", "x86_64-la57", "arm64"]), st.integers(1, 4096))
def test_vmalloc_param_ignored_on_64bit(name: str, mib: int) -> None:
    plain = boot_layout(name, 4 * GiB)
    lay = boot_layout(name, 4 * GiB, f"vmalloc={mib}M")
    assert (lay.vmalloc_start, lay.vmalloc_end) == (plain.vmalloc_start, plain.vmalloc_end)
    assert (f'Unknown kernel command line parameters "vmalloc={mib}M", will be passed to user '
            "space.") in lay.messages


@settings(max_examples=60)
@given(machines(), st.data())
def test_mem_limits_ram(machine: tuple[str, int], data: st.DataObject) -> None:
    name, ram = machine
    p = get_profile(name)
    mem = data.draw(st.integers(p.min_ram, 2 * ram))
    lay = boot_layout(name, ram, f"mem={mem}")
    assert lay.ram_bytes == min(ram, mem) // p.page_size * p.page_size
    assert lay.params["mem"] == mem
    check_invariants(lay)


@pytest.mark.parametrize("cmdline,word", [("quiet", "quiet"), ("foo=bar", "foo=bar"),
                                          ("mem=1G highmem=512M", "highmem=512M"),
                                          ("nokaslr", "nokaslr")])
def test_unknown_parameters(cmdline: str, word: str) -> None:
    with pytest.raises(pv.ConfigError, match=word):
        boot_layout("i386", 1 * GiB, cmdline)


@pytest.mark.parametrize("cmdline", ["mem=", "mem=lots", "mem=12Q", "vmalloc=big", "mem=0",
                                     "vmalloc"])
def test_bad_sizes(cmdline: str) -> None:
    with pytest.raises(pv.ConfigError):
        boot_layout("arm", 1 * GiB, cmdline)


@pytest.mark.parametrize("ram", [1 * MiB, 5 * (1 << 40), -4, "2G", 1.5])
def test_bad_ram(ram: object) -> None:
    with pytest.raises(pv.ConfigError):
        boot_layout("x86_64", ram)  # type: ignore[arg-type]


def test_mem_below_minimum() -> None:
    with pytest.raises(pv.ConfigError, match="at least"):
        boot_layout("x86_64", 1 * GiB, "mem=1M")


def test_x86_64_zones() -> None:
    lay = boot_layout("x86_64", 8 * GiB)
    assert lay.zones == (("DMA", 0, 4096), ("DMA32", 4096, 1 << 20), ("NORMAL", 1 << 20, 2 << 20))
    assert "  Normal   [mem 0x0000000100000000-0x00000001ffffffff]" in lay.messages
    assert lay.vmalloc_total_kb == 34359738367


@settings(max_examples=60)
@given(st.sampled_from(["x86_64", "x86_64-la57"]), st.integers(0, 2**64 - 1),
       st.integers(64 * MiB, 1 << 40))
def test_kaslr(name: str, seed: int, ram: int) -> None:
    p = get_profile(name)
    lay = boot_layout(name, ram, kaslr_seed=seed)
    assert lay.params["kaslr"]
    check_invariants(lay)
    # arch/x86/mm/kaslr.c: PUD-aligned bases, regions in order, inside the randomised range.
    assert lay.vmalloc_start % GiB == 0 and lay.page_offset % GiB == 0
    assert p.page_offset <= lay.page_offset
    assert lay.page_offset + lay.ram_bytes <= lay.vmalloc_start
    assert lay.vmalloc_end == lay.vmalloc_start + p.vmalloc_default - 1
    assert lay.vmalloc_end < lay.params["vmemmap_base"] < 0xFFFFFE0000000000
    again = boot_layout(name, ram, kaslr_seed=seed)
    assert (again.vmalloc_start, again.page_offset) == (lay.vmalloc_start, lay.page_offset)
    fixed = boot_layout(name, ram, "nokaslr", kaslr_seed=seed)
    assert fixed.vmalloc_start == p.vmalloc_start and not fixed.params["kaslr"]


def test_kaslr_seeds_differ() -> None:
    starts = {boot_layout("x86_64", 4 * GiB, kaslr_seed=s).vmalloc_start for s in range(20)}
    assert len(starts) > 10
    assert boot_layout("x86_64", 4 * GiB).vmalloc_start == 0xFFFFC90000000000
    assert not boot_layout("arm", 1 * GiB, kaslr_seed=3).params["kaslr"]
