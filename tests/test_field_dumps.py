"""Field data: Amlogic's dump_vmalloc lines, and 32-bit arch detection that never picks an arch
whose layout the dump contradicts (every real dump keeps its arch; moved addresses change it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvmalloc.analysis.summary import summarize
from pyvmalloc.errors import FormatError
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.dumps import FORMATS, read_dump
from pyvmalloc.formats.vmallocinfo import (
    VmallocinfoLine,
    VmallocinfoSnapshot,
    parse_vmallocinfo,
    render_vmallocinfo,
)
from pyvmalloc.versions import parse_version
from pyvmalloc.snapshot.layout import (
    guess_arch,
    infer_bounds,
    infer_kernel,
    is_static_area,
    layout_contradiction,
    module_range,
)

TESTS = Path(__file__).parent
AMLOGIC = TESTS / "data" / "dumps" / "amlogic-dump-vmalloc-s905x3.txt"
ZTE = TESTS / "data" / "vmallocinfo" / "arm32-zte-router-mt7615-4.1.25.txt"
RB1120 = TESTS / "data" / "dumps" / "ppc32-mikrotik-rb1120-3.3.5-oops.log"
G4 = str(TESTS / "data" / "dumps" / "ppc32-powermac-g4-6.14-rc4-kasan-{}.{}")
REAL = sorted([*(TESTS / "data" / "vmallocinfo").glob("*.txt"),
               *Path("/work/shared/data/vmallocinfo").glob("*.txt"),
               *(TESTS / "data" / "dumps").glob("*.txt")])
# The arch of each real (or real-lined) dump, as its source says (SOURCES, SOURCES.md).
ARCH_OF = {"crash-kmem-v.txt": "x86_64", "drgn-vmallocinfo.txt": "arm64",
           "x86_64-rhel8-sosreport-hashed.txt": None,
           # Amlogic S905X3 with a 32-bit ARM kernel: nothing in the addresses says ARM rather
           # than i386 or ppc32, so no arch is guessed (never a wrong one).
           "amlogic-dump-vmalloc-s905x3.txt": None,
           "ppc32-powermac-g4-6.14-rc4-kasan-outline.txt": "ppc32",
           "ppc32-powermac-g4-6.14-rc4-kasan-inline.txt": "ppc32"}
LAYOUTS = ("arm", "i386", "ppc32", "mips32")


def _expected(path: Path) -> str | None:
    return ARCH_OF.get(path.name, "arm")


def _snap(lines: list[VmallocinfoLine], source: str = "t") -> VmallocinfoSnapshot:
    return parse_vmallocinfo(render_vmallocinfo(lines, 32), source)


def _line(start: int, size: int, caller: str = "load_module+0x650/0x1aa0", *,
          kinds: tuple[str, ...] = ("vmalloc",), phys: int | None = None) -> VmallocinfoLine:
    pages = size // 4096 - 1 if "vmalloc" in kinds else None
    return VmallocinfoLine(start, start + size, size, caller=caller, nr_pages=pages, phys=phys,
                           kinds=kinds)


# ---- Amlogic dump_vmalloc ---------------------------------------------------------------------
def test_amlogic_dump_vmalloc_lines_are_read_from_the_real_log() -> None:
    snap, fmt = read_dump(AMLOGIC.read_text(), "s905x3")
    assert fmt == "amlogic-dump-vmalloc" and fmt in FORMATS
    assert len(snap.lines) == 42 and snap.addresses_trusted
    first, last = snap.lines[0], snap.lines[-1]
    assert (first.start, first.end, first.size) == (0xF114B000, 0xF114D000, 8192)
    assert first.caller == "devm_ioremap_nocache" and first.lineno == 4
    assert last.function == "kbase_mem_import" and last.module == "mali_kbase"
    # size:%08ld KB is (end - start) >> 10: the bytes are taken from the addresses.
    big = next(ln for ln in snap.lines if ln.function == "kernel_read_file")
    assert big.size == 0xF7D52000 - 0xF77ED000 and big.size >> 10 == 5524
    assert any("read as amlogic-dump-vmalloc (42 areas)" in w for w in snap.warnings)


def test_amlogic_line_whose_size_disagrees_with_its_range_is_named() -> None:
    text = ("[ 1.000000@0] dump_vmalloc, va:f1000000-f1002000, size:00000008 KB, alloc:of_iomap\n"
            "[ 1.000001@0] dump_vmalloc, va:f1002000-f1004000, size:00000012 KB, alloc:of_iomap\n")
    with pytest.raises(FormatError, match=r"log:2: dump_vmalloc size:00000012 KB"):
        read_dump(text, "log")


def test_amlogic_lines_under_syslog_prefixes_and_raw_callers() -> None:
    text = ("Nov  1 10:00:00 box kernel: [ 5.1@1] dump_vmalloc, va:c0a00000-c0a03000, "
            "size:00000012 KB, alloc:0xbf012345\r\n"
            "Nov  1 10:00:00 box kernel: vmap allocation for size 8192 failed\r\n")
    snap, fmt = read_dump(text, "syslog")
    assert fmt == "amlogic-dump-vmalloc" and len(snap.lines) == 1
    assert snap.lines[0].size == 12288 and snap.lines[0].caller is None


# ---- every real dump keeps its arch ------------------------------------------------------------
@pytest.mark.parametrize("path", REAL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_real_dumps_keep_their_arch_and_fit_its_layout(path: Path) -> None:
    snap, _ = read_dump(path.read_text(), path.name)
    arch, reason = guess_arch(snap)
    assert arch == _expected(path), reason
    if arch in LAYOUTS:
        assert layout_contradiction(snap, arch) is None
    if _expected(path) == "arm":
        # The ARM dumps' addresses: MIPS maps nothing below KSEG2 where their modules are, or
        # their callers are ARM's (vendor lowmem maps, iotable_init).
        assert arch == "arm"


@pytest.mark.parametrize(("kasan", "largest", "failed"), [("outline", 812 << 10, 839680),
                                                          ("inline", 900 << 10, 1196032)])
def test_the_real_powermac_g4_dumps_read_with_ppc32_rules(kasan: str, largest: int,
                                                          failed: int) -> None:
    # linuxppc-dev, 2025-02-27, 6.14-rc4 on a PowerMac G4 with KASAN: "vmalloc_node_range for
    # size N failed: Address range restricted to 0xf1000000 - 0xf5110000".
    snap, _ = read_dump(Path(G4.format(kasan, "txt")).read_text(), kasan)
    meminfo = parse_meminfo(Path(G4.format(kasan, "meminfo")).read_text())
    s = summarize(snap, meminfo=meminfo)
    assert s.arch == "ppc32" and "text_area_cpu_up" in s.arch_reason
    assert s.bounds is not None and s.bounds.exact
    assert (s.bounds.start, s.bounds.end) == (0xF1000000, 0xF5110000)
    assert s.hole_stats is not None and s.hole_stats.largest == largest < failed
    assert s.modules is not None and (s.modules.start, s.modules.end) == (0xB0000000, 0xC0000000)
    assert all(0xB0000000 <= ln.start < 0xC0000000 for ln in snap.lines if ln.start < 0xF1000000)
    assert not any("do not fit" in w for w in s.warnings)
    kernel, _ = infer_kernel(snap, meminfo, arch="ppc32")
    assert kernel.contains(parse_version("6.14"))


def test_the_g4_modules_below_arms_task_size_rule_arm_out_without_callers() -> None:
    # The outline-KASAN dump's modules start at 0xbea20000 (module_alloc near _etext - 32M,
    # 5.13+): below ARM's MODULES_VADDR 0xbf000000, so even with the PowerPC-only callers
    # renamed it is not read as ARM.
    snap, _ = read_dump(Path(G4.format("outline", "txt")).read_text(), "g4")
    renamed = _snap([dataclasses.replace(ln, caller="cpu_up_helper+0x20/0x190")
                     if ln.function == "text_area_cpu_up" else ln for ln in snap.lines])
    arch, reason = guess_arch(renamed)
    assert arch == "ppc32" and "not arm at PAGE_OFFSET 0xc0000000" in reason, reason


def test_the_inline_g4_dump_is_ppc32_by_its_vmalloc_total_without_callers() -> None:
    # Its modules all sit in 0xbf000000-0xc0000000, where ARM's would: only the PowerPC-only
    # caller or meminfo tells.  ARM's VMALLOC_END is 0xff800000 from 4.2 (the unpurged lines
    # date the dump 4.13+), so VmallocTotal 66624 kB would put ARM's VMALLOC_START at
    # 0xfb6f0000, above the areas from 0xf1000000.
    snap, _ = read_dump(Path(G4.format("inline", "txt")).read_text(), "g4")
    renamed = _snap([dataclasses.replace(ln, caller="cpu_up_helper+0x20/0x190")
                     if ln.function == "text_area_cpu_up" else ln for ln in snap.lines])
    assert guess_arch(renamed)[0] == "arm"     # the addresses alone fit ARM too
    total = parse_meminfo(Path(G4.format("inline", "meminfo")).read_text())["VmallocTotal"]
    arch, reason = guess_arch(renamed, total)
    assert arch == "ppc32" and "below ARM's VMALLOC_START 0xfb6f0000" in reason, reason


@pytest.mark.parametrize(("name", "total_kb"), [
    ("arm32-zte-router-mt7615-4.1.25.txt", 647168),
    ("arm32-zynq7000-innofirmware-4.4.0.txt", 770048),
    ("arm32-fullhan-fh8856v200-jieuno-4.9.129.txt", 999424),
    ("arm32-mediatek-goclever-i5-3.4.5.txt", 540672)])
def test_real_arm_dumps_with_their_published_vmalloc_total_stay_arm(name: str,
                                                                    total_kb: int) -> None:
    snap = parse_vmallocinfo((TESTS / "data" / "vmallocinfo" / name).read_text(), name)
    assert guess_arch(snap, total_kb)[0] == "arm"
    assert layout_contradiction(snap, "arm", vmalloc_total_kb=total_kb) is None


def test_no_module_area_is_invented_for_an_unknown_32bit_arch() -> None:
    snap, _ = read_dump(AMLOGIC.read_text(), "s905x3")
    assert guess_arch(snap)[0] is None and module_range(snap, None) is None
    zte = parse_vmallocinfo(ZTE.read_text(), "zte")
    arm = module_range(zte, "arm")
    assert arm is not None and (arm.start, arm.end) == (0xBF000000, 0xBFE00000)


# ---- moved addresses change (or withhold) the arch ----------------------------------------------
def _zte_lines() -> list[VmallocinfoLine]:
    """The ZTE router's areas with its ARM-only callers renamed (a ppc32 kernel has none of
    them; static maps stay static: the caller is still the function's own address)."""
    arm_only = {"iotable_init", "pmd_empty_section_gap", "pci_reserve_io"}
    return [dataclasses.replace(ln, caller="board_map_io" + ln.caller[len(ln.function):])
            if ln.caller and ln.function in arm_only else ln
            for ln in parse_vmallocinfo(ZTE.read_text(), "zte").lines]


def test_arm_modules_moved_into_the_ppc32_module_segment_are_not_arm() -> None:
    # book3s/32 5.10+ puts modules from MODULES_VADDR = PAGE_OFFSET - 256M: below ARM's
    # TASK_SIZE (PAGE_OFFSET - 16M), where an ARM kernel maps nothing.
    lines = [dataclasses.replace(ln, start=ln.start - (0xBF000000 - 0xB0000000),
                                 end=ln.end - (0xBF000000 - 0xB0000000))
             if ln.start < 0xC0000000 else ln for ln in _zte_lines()]
    snap = _snap(lines, "moved")
    arch, reason = guess_arch(snap)
    assert arch != "arm", reason
    assert layout_contradiction(snap, "arm", default_only=True) is not None
    assert layout_contradiction(snap, "ppc32") is None
    kernel, why = infer_kernel(snap, arch="ppc32")
    assert kernel.lo.series() >= (5, 10, 0) and "module segment" in why


def test_only_the_ppc32_layout_at_the_usual_page_offset_names_ppc32() -> None:
    # Modules at 0xb0000000 (book3s/32 STRICT_KERNEL_RWX), vmalloc from ALIGN(high_memory +
    # 16M, 16M) = 0xd1000000 for 256 MiB of lowmem: ARM fits only with a 2G/2G split.
    lines = [_line(0xB0000000, 0x5000), _line(0xB0006000, 0x9000),
             _line(0xD1000000, 0x2000, "of_iomap+0x34/0x50", kinds=("ioremap",), phys=0xE0000000),
             _line(0xD1002000, 0x4000, "alloc_large_system_hash+0x1a0/0x2c8")]
    snap = _snap(lines)
    arch, reason = guess_arch(snap)
    assert arch == "ppc32", reason
    assert layout_contradiction(snap, "arm") is None          # PAGE_OFFSET 0x80000000
    assert layout_contradiction(snap, "arm", default_only=True) is not None
    bounds = infer_bounds(snap, "ppc32")
    assert bounds is not None and bounds.start == 0xD1000000 and not bounds.exact
    mods = module_range(snap, "ppc32")
    assert mods is not None and (mods.start, mods.end) == (0xB0000000, 0xC0000000)


def test_areas_from_kseg2_base_are_mips32_not_arm() -> None:
    # MIPS32 VMALLOC_START is 0xc0000000 whatever the RAM; ARM, i386 and ppc32 keep at least
    # 8 (16) MiB between PAGE_OFFSET 0xc0000000 and VMALLOC_START.
    lines = [_line(0xC0000000, 0x2000, "r4k_cache_init+0x0/0x10", kinds=("vmalloc",)),
             _line(0xC0002000, 0x3000), _line(0xC0010000, 0x20000)]
    snap = _snap(lines)
    assert guess_arch(snap)[0] == "mips32"
    plain = _snap([dataclasses.replace(ln, caller="load_module+0x1/0x2") for ln in lines])
    arch, reason = guess_arch(plain)
    assert arch == "mips32" and "not ppc32" in reason, reason
    assert layout_contradiction(plain, "mips32") is None
    assert infer_bounds(plain, "mips32").start == 0xC0000000  # type: ignore[union-attr]


def test_arch_only_callers_never_override_the_addresses() -> None:
    # A PowerPC-only caller at an address below ppc32's lowest kernel address: not ppc32.
    low = _snap([_line(0x60000000, 0x2000, "mpic_alloc+0x10/0x20", kinds=("ioremap",),
                       phys=0xFE040000), _line(0xD1000000, 0x2000)])
    assert guess_arch(low)[0] != "ppc32"
    assert "below 0xb0000000" in (layout_contradiction(low, "ppc32") or "")
    # An ARM-only caller with a 32-bit MIPS layout (areas from 0xc0000000, ioremap there).
    mips = _snap([_line(0xC0000000, 0x2000, "iotable_init+0x10/0x20", kinds=("ioremap",),
                        phys=0x10000000), _line(0xC0002000, 0x2000)])
    assert layout_contradiction(mips, "arm", default_only=True) is not None


def test_ioremap_below_page_offset_is_neither_arm_nor_ppc32() -> None:
    # Both put only module_alloc below PAGE_OFFSET (ARM's module area, ppc32's segment).
    snap = _snap([_line(0xBF000000, 0x3000, "of_iomap+0x34/0x50", kinds=("ioremap",),
                        phys=0x1F000000), _line(0xC8800000, 0x2000)])
    assert "ioremap at 0xbf000000" in (layout_contradiction(snap, "ppc32", True) or "")
    assert layout_contradiction(snap, "arm", default_only=True) is not None
    assert guess_arch(snap)[0] not in ("arm", "ppc32")


def test_arm_without_highmem_may_load_modules_up_to_page_offset() -> None:
    # memory.h: MODULES_END = PAGE_OFFSET without HIGHMEM (PAGE_OFFSET - PMD_SIZE with it).
    snap = _snap([_line(0xBFF00000, 0x5000), _line(0xC8800000, 0x2000),
                  _line(0xC8802000, 0x3000, "iotable_init+0x0/0x8c", kinds=("ioremap",),
                        phys=0x1F000000)])
    assert guess_arch(snap)[0] == "arm"


def test_ioremap_caller_is_not_x86_only() -> None:
    # arch/powerpc/mm/pgtable_32.c has a __ioremap_caller as arch/x86/mm/ioremap.c does.
    snap = _snap([_line(0xF1000000, 0x2000, "__ioremap_caller+0x1c/0x30", kinds=("ioremap",),
                        phys=0xE0000000)])
    arch, reason = guess_arch(snap)
    assert arch is None and "arm or i386" in reason


def test_the_real_rb1120_ppc32_layout_is_a_ppc32_layout() -> None:
    # The MikroTik RB1120 oops (e500, 3.3.5): __get_vm_area_node(size, align, flags, start,
    # end, gfp) from __ioremap_caller with start = VMALLOC_START in GPR06 and end = ioremap_bot
    # in GPR07, kernel text at 0x80000000, modules loaded inside [start, end).
    log = RB1120.read_text()
    gpr00 = next(ln for ln in log.splitlines() if ln.startswith("GPR00: 800113ec"))
    start, end = (int(w, 16) for w in gpr00.split()[7:9])
    assert (start, end) == (0xE1000000, 0xEDFFC000)
    assert start % (16 << 20) == 0          # ALIGN(high_memory + VMALLOC_OFFSET 16M, 16M)
    modules = [int(m.split("@")[1].rstrip("]"), 16) for m in log.split()
               if m.endswith("]") and "@0x" in m]
    assert modules and all(start <= m < end for m in modules)
    # A dump laid out so, with PAGE_OFFSET 0x80000000 and a PowerPC-only caller: ppc32.
    snap = _snap([_line(start, 0x2000, "mpc85xx_setup_arch+0x1/0x2", kinds=("ioremap",),
                        phys=0xFFE00000),
                  *(_line(m, 0x3000) for m in sorted(set(modules)))])
    assert layout_contradiction(snap, "ppc32") is None
    assert guess_arch(snap)[0] == "ppc32"
    # With 256 MiB of lowmem the same kernel starts vmalloc at 0x91000000: still ppc32.
    small = _snap([_line(0x91000000, 0x2000, "mpic_alloc+0x1/0x2", kinds=("ioremap",),
                         phys=0xFFE40000), _line(0x7F000000, 0x5000)])
    assert guess_arch(small)[0] == "ppc32"
    assert layout_contradiction(small, "ppc32", default_only=True) is not None
    bounds = infer_bounds(small, "ppc32", vmalloc_total_kb=(0xEDFFC000 - 0xE1000000) >> 10)
    assert bounds is not None and (bounds.start, bounds.exact) == (0x91000000, True)
    mods = module_range(small, "ppc32")
    assert mods is not None and (mods.start, mods.end) == (0x70000000, 0x80000000)


def test_an_arch_given_against_the_addresses_is_kept_but_said() -> None:
    zte = parse_vmallocinfo(ZTE.read_text(), "zte")
    s = summarize(zte, "mips32")
    assert s.arch == "mips32"
    assert any("do not fit the mips32 layout" in w and "below KSEG2" in w for w in s.warnings)
    assert not any("do not fit" in w for w in summarize(zte, "arm").warnings)


# ---- the property: a guessed arch always fits the dump -----------------------------------------
_START = st.integers(0x40000, 0xFFF00).map(lambda page: page << 12)
_AREA = st.tuples(_START, st.integers(1, 64), st.sampled_from(
    ["load_module+0x10/0x20", "of_iomap+0x34/0x50", "mpic_alloc+0x1/0x2",
     "r4k_cache_init+0x1/0x2", "iotable_init+0x0/0x10", "acpi_os_map_memory+0x1/0x2",
     "__ioremap_caller+0x1/0x2"]), st.booleans())


@settings(max_examples=150, deadline=None)
@given(st.lists(_AREA, min_size=1, max_size=12))
def test_a_guessed_32bit_arch_is_never_contradicted(areas: list[tuple[int, int, str, bool]]) -> None:
    lines, taken = [], []
    for start, pages, caller, io in sorted(areas):
        end = start + (pages + 1) * 4096
        if end > 1 << 32 or any(s < end and start < e for s, e in taken):
            continue
        taken.append((start, end))
        lines.append(_line(start, end - start, caller, kinds=("ioremap",) if io else ("vmalloc",),
                           phys=0x10000000 if io else None))
    if not lines:
        return
    snap = _snap(lines)
    arch, reason = guess_arch(snap)
    if arch is not None:
        assert layout_contradiction(snap, arch) is None, reason
    dynamic = [ln for ln in snap.lines if not is_static_area(ln)]
    if dynamic and min(ln.start for ln in dynamic) < 0x70000000:
        assert arch != "ppc32"   # below PAGE_OFFSET - 256M for PAGE_OFFSET 0x80000000 too
    if dynamic and min(ln.start for ln in dynamic) < 0xC0000000:
        assert arch != "mips32"  # KSEG0/KSEG1: MIPS maps nothing there


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 0xEF))
def test_an_arm_dump_moved_below_arms_task_size_is_never_arm(shift_mib: int) -> None:
    # The ZTE module areas moved down by 1..239 MiB, some below 0xbf000000: user space on ARM
    # with the usual 3G/1G split (only a 2G/2G split, nothing else of the dump asks for, fits).
    lines = [dataclasses.replace(ln, start=ln.start - (shift_mib << 20),
                                 end=ln.end - (shift_mib << 20))
             if ln.start < 0xC0000000 else ln for ln in _zte_lines()]
    snap = _snap(lines)
    assert guess_arch(snap)[0] != "arm"
    assert layout_contradiction(snap, "arm", default_only=True) is not None
