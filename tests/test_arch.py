"""Tests of the arch layer: sizes, profiles, PTE encodings."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.sizes import format_size, memparse, parse_size
from pyvmalloc.arch import (
    PGPROT_NAMES,
    PROFILES,
    get_profile,
)
from pyvmalloc.arch.pte import PERM_KW, PERM_KX, PERM_UR, PERM_UW

SUFFIX = {"": 0, "k": 10, "K": 10, "m": 20, "M": 20, "g": 30, "G": 30, "t": 40, "T": 40,
          "p": 50, "P": 50, "e": 60, "E": 60}
names = st.sampled_from(sorted(PROFILES))


# -- sizes ------------------------------------------------------------------------------------
@given(st.integers(0, 2**40), st.sampled_from(sorted(SUFFIX)), st.text("@$#xyz,", max_size=4))
def test_memparse_suffix_and_rest(n: int, suffix: str, rest: str) -> None:
    value, left = memparse(f"{n}{suffix}{rest}")
    assert value == (n << SUFFIX[suffix]) & (2**64 - 1)
    assert left == rest


def test_memparse_kernel_radix_rules() -> None:
    # lib/kstrtox.c: 0x -> hex, leading 0 -> octal; no digits -> 0 with nothing consumed.
    assert memparse("0x10k") == (16 << 10, "")
    assert memparse("010") == (8, "")
    assert memparse("0xg") == (0, "xg")
    assert memparse("abc") == (0, "abc")
    assert memparse("16E") == (0, "")          # 16 << 60 wraps at 64 bits


@given(st.integers(0, 2**44), st.sampled_from(sorted(SUFFIX)), st.sampled_from(["", "B", "iB"]))
def test_parse_size(n: int, suffix: str, unit: str) -> None:
    if unit and not suffix:
        unit = "B"
    assert parse_size(f"{n}{suffix}{unit}") == n << SUFFIX[suffix]
    if suffix not in ("e", "E"):   # after hex digits an E is a digit, as in memparse
        assert parse_size(f" 0x{n:x}{suffix} ") == n << SUFFIX[suffix]


@given(st.integers(0, 2**62))
def test_format_size_round_trip(n: int) -> None:
    assert parse_size(format_size(n)) == n


@pytest.mark.parametrize("bad", ["", "M", "12Q", "1.5G", "-4", "0x", "12 M", "4KK", None, 1.5,
                                 True, -1])
def test_parse_size_rejects(bad: object) -> None:
    with pytest.raises(pv.ConfigError, match="is not a size"):
        parse_size(bad)  # type: ignore[arg-type]


@given(st.text(alphabet="qwzQ!?~ ", min_size=1, max_size=6))
def test_parse_size_rejects_words(text: str) -> None:
    with pytest.raises(pv.ConfigError):
        parse_size("1" + text if text.strip() else "x")


def test_parse_size_examples() -> None:
    assert [parse_size(s) for s in ("16k", "512M", "64G", "1T", "4096", "0x1000")] == [
        16384, 512 << 20, 64 << 30, 1 << 40, 4096, 4096]


# -- profiles ---------------------------------------------------------------------------------
def test_get_profile_unknown_names_the_known() -> None:
    with pytest.raises(pv.ConfigError) as err:
        get_profile("sparc")
    for name in PROFILES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_levels_tile_the_address(name: str) -> None:
    p = get_profile(name)
    assert p.levels[-1].name == "pte" and p.levels[-1].shift == p.page_shift
    for upper, lower in zip(p.levels, p.levels[1:]):
        assert upper.shift == lower.shift + lower.bits
    assert p.levels[0].shift + p.levels[0].bits == p.va_bits
    assert p.page_size == 1 << p.page_shift
    assert all(lv.entry_size == p.pte.entry_size for lv in p.levels)
    for prot in PGPROT_NAMES:
        assert isinstance(p.pgprot(prot), int)
    with pytest.raises(pv.ConfigError, match="PAGE_KERNEL"):
        p.pgprot("PAGE_BOGUS")


def test_profile_constants() -> None:
    x = get_profile("x86_64")
    assert [lv.name for lv in x.levels] == ["pgd", "pud", "pmd", "pte"]
    assert (x.vmalloc_end - x.vmalloc_start) >> 10 == 34359738367
    assert x.ioremap_max_order == 30 and x.gfp_vmalloc32 == "DMA32"
    assert [lv.name for lv in get_profile("x86_64-la57").levels] == [
        "pgd", "p4d", "pud", "pmd", "pte"]
    i386, pae, arm = get_profile("i386"), get_profile("i386-pae"), get_profile("arm")
    assert [lv.bits for lv in i386.levels] == [10, 10] and i386.pte.entry_size == 4
    assert [lv.bits for lv in pae.levels] == [2, 9, 9] and pae.pte.entry_size == 8
    assert not i386.has_nx and pae.has_nx
    assert i386.gfp_vmalloc32 == "KERNEL" and i386.ioremap_max_order == 19
    assert [(lv.bits, lv.entry_size) for lv in arm.levels] == [(12, 4), (8, 4)]
    assert arm.ioremap_max_order == 24 and arm.vmalloc_end == 0  # by version: versions.py
    a64 = get_profile("arm64")
    assert a64.vmalloc_start == a64.modules_end
    assert a64.vmalloc_end == 0xFFFFFC0000000000 - (256 << 20)   # VMEMMAP_START - 256M


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_canonical(name: str) -> None:
    p = get_profile(name)
    assert p.canonical(0) and p.canonical(p.page_offset)
    assert not p.canonical(-1) and not p.canonical(1 << 64)
    if p.bits == 64:
        # Each half spans 2^(va_bits-1) (x86 sign extension) or 2^va_bits (arm64 TTBR0/1).
        half = 1 << (p.va_bits if p.split_roots else p.va_bits - 1)
        assert p.canonical(half - 1) and not p.canonical(half)
        assert p.canonical((1 << 64) - half) and not p.canonical((1 << 64) - half - 1)


# -- PTE formats -------------------------------------------------------------------------------
@settings(max_examples=60)
@given(names, st.data())
def test_pte_round_trip(name: str, data: st.DataObject) -> None:
    p = get_profile(name)
    fmt = p.pte
    pfn = data.draw(st.integers(0, fmt.max_pfn - 1))
    prot_name = data.draw(st.sampled_from(PGPROT_NAMES))
    prot = p.pgprot(prot_name)
    e = fmt.mk_pte(pfn, prot)
    assert fmt.pte_present(e) and not fmt.entry_none(e)
    assert fmt.pte_pfn(e) == pfn
    assert e >> (8 * fmt.entry_size) == 0
    flags = fmt.pte_flags(e)
    assert flags and flags == fmt.pte_flags(fmt.mk_pte(pfn ^ 1 if pfn ^ 1 < fmt.max_pfn else pfn,
                                                      prot))
    user = prot_name in ("PAGE_SHARED", "PAGE_READONLY")
    assert fmt.pte_user(e) == user
    writable = prot_name in ("PAGE_KERNEL", "PAGE_KERNEL_EXEC", "PAGE_KERNEL_NOCACHE",
                             "PAGE_SHARED")
    assert fmt.pte_write(e) == writable
    assert fmt.pte_exec(e) == (prot_name == "PAGE_KERNEL_EXEC" or not p.has_nx)
    perms = fmt.perms(e)
    assert bool(perms & PERM_KW) == writable
    assert bool(perms & PERM_UW) == (prot_name == "PAGE_SHARED")
    assert bool(perms & PERM_UR) == user
    # The vectorised form writes the same bits, in the entry's width.
    arr = fmt.mk_ptes(np.array([pfn, 0], dtype=np.int64), prot)
    assert arr.dtype.itemsize == fmt.entry_size
    assert int(arr[0]) == e and int(arr[1]) == fmt.mk_pte(0, prot)
    pfns = fmt.ptes_pfn(np.array([e, 0], dtype=fmt.dtype))
    assert pfns.tolist() == [pfn, -1]


@settings(max_examples=60)
@given(names, st.data())
def test_table_and_huge_entries_round_trip(name: str, data: st.DataObject) -> None:
    p = get_profile(name)
    fmt = p.pte
    for level in range(len(p.levels) - 1):
        align = 1024 if name == "arm" else p.page_size
        phys = data.draw(st.integers(0, (fmt.max_pfn << p.page_shift) // align - 1)) * align
        t = fmt.mk_table(phys, level)
        assert fmt.pte_present(t) and not fmt.is_leaf(t, level)
        assert fmt.table_phys(t, level) == phys
        assert fmt.pte_flags(t, level)
    for level in fmt.huge_levels:
        span = 1 << (p.levels[level].shift - p.page_shift)
        pfn = data.draw(st.integers(0, fmt.max_pfn // span - 1)) * span
        h = fmt.mk_huge(pfn, level, p.pgprot("PAGE_KERNEL"))
        assert fmt.pte_present(h) and fmt.is_leaf(h, level)
        assert fmt.leaf_phys(h, level) == pfn << p.page_shift
        assert fmt.perms(h, level) == fmt.perms(fmt.mk_pte(pfn, p.pgprot("PAGE_KERNEL")))
        with pytest.raises(pv.ConfigError):
            fmt.mk_huge(pfn + 1, level, p.pgprot("PAGE_KERNEL"))


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_pte_bad_input(name: str) -> None:
    p = get_profile(name)
    fmt = p.pte
    prot = p.pgprot("PAGE_KERNEL")
    for pfn in (-1, fmt.max_pfn):
        with pytest.raises(pv.ConfigError):
            fmt.mk_pte(pfn, prot)
    with pytest.raises(pv.ConfigError):
        fmt.mk_ptes(np.array([1, fmt.max_pfn]), prot)
    with pytest.raises(pv.ConfigError, match="overlaps"):
        fmt.mk_pte(1, prot | (1 << p.page_shift))
    with pytest.raises(pv.ConfigError):
        fmt.mk_pte(1, -5)


def test_x86_bits() -> None:
    x = get_profile("x86_64")
    e = x.pte.mk_pte(0x1234, x.pgprot("PAGE_KERNEL"))
    assert e == 0x8000000001234163          # P RW A D G NX
    assert x.pte.pte_flags(e) == ["P", "RW", "A", "D", "G", "NX"]
    assert x.pte.mk_table(0x5000, 2) == 0x5067   # _PAGE_TABLE
    pae = get_profile("i386-pae")
    assert pae.pte.mk_table(0x5000, 0) == 0x5001  # PDPT entries carry only P
    i386 = get_profile("i386")
    assert i386.pte.mk_pte(0xFFFFF, i386.pgprot("PAGE_KERNEL")) == 0xFFFFF163
    assert x.pte.perms(e) & PERM_KX == 0


def test_arm_bits() -> None:
    arm = get_profile("arm")
    fmt = arm.pte
    e = fmt.mk_pte(0x1234, arm.pgprot("PAGE_KERNEL"))
    assert e & 3 == 3                          # small page with XN
    assert (e >> 4) & 3 == 1 and not e & (1 << 9)   # AP=01 (kernel RW), APX clear
    ro = fmt.mk_pte(1, arm.pgprot("PAGE_READONLY"))
    assert (ro >> 4) & 3 == 3 and ro & (1 << 9)     # AP=11 with APX: read-only for both
    t = fmt.mk_table(0x12345400, 0)
    assert t & 3 == 1 and fmt.table_phys(t, 0) == 0x12345400
    sect = fmt.mk_huge(0x300, 0, arm.pgprot("PAGE_KERNEL"))
    assert sect & 3 == 2 and sect & (1 << 10) and sect & (1 << 4)   # AP_WRITE, XN
    with pytest.raises(pv.ConfigError):
        fmt.mk_table(0x12345600, 0)           # not 1 KiB aligned
