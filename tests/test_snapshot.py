"""``Machine.from_snapshot``: real dumps replayed at their addresses, and what cannot be replayed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.errors import ConfigError, FormatError, PageFault
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo

DATA = Path(__file__).parent / "data" / "vmallocinfo"
EXAMPLES = Path(__file__).parent.parent / "examples" / "vmallocinfo"
TRUSTED = sorted(p for p in DATA.glob("*.txt") if "hashed" not in p.name)
HASHED = DATA / "x86_64-rhel8-sosreport-hashed.txt"
GiB = 1 << 30

_MACHINES: dict[tuple[str, bool], pv.Machine] = {}


def _machine(path: Path, with_meminfo: bool = False) -> pv.Machine:
    """One machine per dump (booting is cheap, but the tests share them read-only)."""
    key = (path.name, with_meminfo)
    if key not in _MACHINES:
        mi = EXAMPLES / path.with_suffix(".meminfo").name
        _MACHINES[key] = pv.Machine.from_snapshot(
            path.read_text(), mi.read_text() if with_meminfo else None, source=str(path))
    return _MACHINES[key]


def _by_start(lines):
    """The order the kernel prints: busy areas by address, then those waiting for a purge."""
    return sorted(lines, key=lambda ln: ("unpurged vm_area" in ln.kinds, ln.start))


# ---- round trip and accounting ---------------------------------------------------------------
@pytest.mark.parametrize("path", TRUSTED, ids=lambda p: p.name)
def test_round_trip_gives_back_every_area(path: Path):
    m = _machine(path)
    original = parse_vmallocinfo(path.read_text(), "orig").lines
    again = parse_vmallocinfo(m.vmallocinfo(), "model").lines
    # Same areas: addresses, sizes, callers verbatim, pages=, phys=, flag and vendor words.
    assert again == _by_start(original)
    assert m.snapshot_report.without_pages == []


@pytest.mark.parametrize("path", TRUSTED, ids=lambda p: p.name)
def test_pages_are_real_mapped_frames(path: Path):
    m = _machine(path)
    lines = parse_vmallocinfo(path.read_text()).lines
    want = sum(ln.nr_pages or 0 for ln in lines)
    assert m.snapshot_report.pages == want
    assert len(m.phys.pfns_owned_by("vmalloc")) == want
    for area in m.areas():
        if area.nr_pages:
            mapped = m.pages_of(area.addr, area.nr_pages * m.PAGE_SIZE)
            assert np.array_equal(mapped, area.pages[: area.nr_pages])
    # Everything outside [VMALLOC_START, VMALLOC_END) and nothing else is a fixed range.
    outside = [ln for ln in lines if not (m.VMALLOC_START <= ln.start and ln.end <= m.VMALLOC_END)]
    assert sorted((f.start, f.end) for f in m.extra_vm_ranges) == sorted((ln.start, ln.end)
                                                                       for ln in outside)


@pytest.mark.parametrize("path", TRUSTED, ids=lambda p: p.name)
def test_check_passes_after_replay(path: Path):
    m = _machine(path)
    m.check()
    # vpages areas found their page arrays among the snapshot's lines (the tablet has one).
    assert m.snapshot_report.arrays_linked == (1 if "mediatek" in path.name else 0)


def test_replayed_area_reads_writes_and_guards():
    m = pv.Machine.from_snapshot((DATA / "arm32-zte-router-mt7615-4.1.25.txt").read_text())
    area = next(a for a in m.areas() if a.nr_pages >= 2 and a.size == (a.nr_pages + 1) * 4096)
    m.vwrite(area.addr + 100, b"snapshot")
    assert m.read(area.addr + 100, 8) == b"snapshot"
    with pytest.raises(PageFault):
        m.write(area.addr + area.size - 4096, b"x")  # the guard page
    free = m.phys.nr_free()
    m.vfree(area.addr)
    m.vm_unmap_aliases()
    assert m.phys.nr_free() >= free + area.nr_pages
    assert m.find_vm_area(area.addr) is None


@pytest.mark.parametrize("name, generation", [
    ("arm32-zte-router-mt7615-4.1.25", "vmap_area_list"),
    ("arm32-fullhan-fh8852-asecam-3.0.8", "vmlist"),
])
def test_meminfo_matches_the_published_figures(name: str, generation: str):
    m = _machine(DATA / f"{name}.txt", with_meminfo=True)
    published = parse_meminfo((EXAMPLES / f"{name}.meminfo").read_text())
    ours = parse_meminfo(m.meminfo(generation))
    assert {k: ours[k] for k in published} == published


def test_meminfo_of_the_tablet_equals_the_snapshot_analysis():
    # The tablet's published VmallocUsed was read at another moment (tests/test_analysis_summary);
    # the machine must agree with the snapshot's own figures and the published VmallocChunk.
    from pyvmalloc.analysis.summary import summarize

    path = DATA / "arm32-mediatek-goclever-i5-3.4.5.txt"
    m = _machine(path, with_meminfo=True)
    published = parse_meminfo((EXAMPLES / path.with_suffix(".meminfo").name).read_text())
    s = summarize(parse_vmallocinfo(path.read_text()), meminfo=published, kernel="3.4.5")
    ours = parse_meminfo(m.meminfo("vmlist"))
    assert ours["VmallocUsed"] == s.meminfo_figures["vmlist"].used_kb
    assert ours["VmallocChunk"] == published["VmallocChunk"]
    assert (m.VMALLOC_START, m.VMALLOC_END) == (0xDE000000, 0xFF000000)


def test_vendor_layouts_boot_with_the_device_vmalloc_end():
    m = _machine(DATA / "arm32-zte-router-mt7615-4.1.25.txt", with_meminfo=True)
    # VmallocTotal 647168 kB from 0xc8800000: the vendor's VMALLOC_END 0xf0000000; the static
    # iotable maps above it are fixed ranges.
    assert (m.VMALLOC_START, m.VMALLOC_END) == (0xC8800000, 0xF0000000)
    assert m.profile.vmalloc_end == 0xF0000000 and m.layout.ram_bytes == 128 << 20
    assert any("static map (iotable_init)" == f.why for f in m.extra_vm_ranges)
    assert any("module area" in f.why for f in m.extra_vm_ranges)
    qcom = _machine(DATA / "arm32-qcom-mdm9607-jmr540-3.18.20.txt")
    assert [f.why for f in qcom.extra_vm_ranges] == ["vendor map 'lowmem'"] * 2
    assert any("guessed" in line and "arch arm" in line for line in qcom.dmesg())


# ---- synthetic dumps: KASLR, unpurged, vm_map_ram, NUMA, small RAM ----------------------------
def _x86_line(start: int, size: int, rest: str) -> str:
    return f"0x{start:016x}-0x{start + size:016x} {size:7d} {rest}\n"


@settings(max_examples=20, deadline=None)
# arch/x86/mm/kaslr.c places the 32 TiB vmalloc region inside [__PAGE_OFFSET_BASE, CPU_ENTRY_AREA).
@given(gib=st.integers(min_value=0,
                       max_value=(0xFFFFFE0000000000 - (32 << 40) - 0xFFFF888000000000) // GiB),
       offset_pages=st.integers(min_value=0, max_value=(GiB >> 12) - 16))
def test_kaslr_base_is_inferred_from_the_lowest_area(gib: int, offset_pages: int):
    base = 0xFFFF888000000000 + gib * GiB
    if base <= 0xFFFFC90000000000 < base + GiB or base <= 0xFFFFC20000000000 < base + GiB:
        return  # the fixed layouts' bases: nothing to infer there
    first = base + (offset_pages << 12)
    text = (_x86_line(first, 8192, "acpi_os_map_iomem+0x1ad/0x1e0 phys=0x00000000fed00000 "
                                   "ioremap")
            + _x86_line(first + 8192, 20480, "alloc_large_system_hash+0x1/0x2 pages=4 vmalloc")
            + _x86_line(0xFFFFFFFFC0000000, 20480, "load_module+0x9f/0x100 [xfs] pages=4 vmalloc"))
    m = pv.Machine.from_snapshot(text, ram="256M")
    assert m.VMALLOC_START == base
    assert m.VMALLOC_END == base + (32 << 40) - 1
    assert m.layout.params["kaslr"] and m.layout.params["vmalloc_base"] == base
    assert any("KASLR" in line and f"{base:x}" in line for line in m.dmesg())
    a = m.vmalloc(1 << 20, caller="kaslr_test+0x1/0x10")
    assert a is not None and base <= a < base + (32 << 40)
    assert [f.why for f in m.extra_vm_ranges] == ["module area (MODULES_VADDR..MODULES_END)"]
    a_line = parse_vmallocinfo(m.vmallocinfo()).lines
    assert [ln for ln in a_line if ln.start != a] == _by_start(parse_vmallocinfo(text).lines)
    m.check()


def test_the_fixed_x86_64_layout_is_kept():
    text = _x86_line(0xFFFFC90000000000, 8192, "hpet_enable+0x1/0x2 phys=0xfed00000 ioremap")
    m = pv.Machine.from_snapshot(text, ram="256M")
    assert (m.VMALLOC_START, m.VMALLOC_END) == (0xFFFFC90000000000, 0xFFFFE8FFFFFFFFFF)
    assert not m.layout.params["kaslr"]


def test_unpurged_areas_wait_for_a_purge_and_vm_map_ram_blocks_stay_reserved():
    base = 0xFFFFB2A6C0000000
    text = (_x86_line(base, 8192, "vm_map_ram")
            + _x86_line(base + 8192, 1 << 20, "unpurged vm_area")
            + _x86_line(base + 8192 + (1 << 20), 8192, "x+0x1/0x2 pages=1 vmalloc"))
    m = pv.Machine.from_snapshot(text, ram="256M")
    assert [(a.addr, a.size) for a in m.lazy_areas()] == [(base + 8192, 1 << 20)]
    # Lines in address order with the unpurged one among the busy: a 4.13-5.3 kernel printed
    # this dump (78c72746f56b, dd3b8353bae7), and the machine restored for it prints the same.
    assert "4.13 to before 5.4" in " ".join(m.dmesg())
    assert [(ln.start, ln.kinds) for ln in parse_vmallocinfo(m.vmallocinfo()).lines] == [
        (ln.start, ln.kinds) for ln in parse_vmallocinfo(text).lines]
    six = pv.Machine.from_snapshot(text, ram="256M", kernel="6.1")   # 6.1 lists it last
    assert parse_vmallocinfo(six.vmallocinfo()).lines == _by_start(parse_vmallocinfo(text).lines)
    a = m.vmalloc(4096)
    assert a is not None and a >= base + 8192 * 2 + (1 << 20)  # both ranges still taken
    m.vm_unmap_aliases()
    assert m.lazy_areas() == [] and m.vmalloc(4096) == base + 8192  # the purged range is free


def test_unpurged_pages_beyond_one_cpu_mean_more_cpus():
    base = 0xFFFFB2A6C0000000
    text = (_x86_line(base, 100 << 20, "unpurged vm_area")
            + _x86_line(base + (100 << 20), 8192, "x+0x1/0x2 pages=1 vmalloc"))
    m = pv.Machine.from_snapshot(text, ram="256M")
    # 25600 lazily freed pages: fls(cpus) * 8192 >= 25600 needs fls 4, so 8 CPUs at least.
    assert m.nr_cpus == 8 and m.lazy_max_pages >= 25600
    m.check()


def test_check_accepts_vm_map_ram_blocks():
    base = 0xFFFFB2A6C0000000
    text = (_x86_line(base, 4 << 20, "vm_map_ram")
            + _x86_line(base + (4 << 20), 8192, "x+0x1/0x2 pages=1 vmalloc"))
    pv.Machine.from_snapshot(text, ram="256M").check()


def test_numa_counts_land_on_their_nodes():
    base = 0xFFFFC90000000000
    text = _x86_line(base, 6 * 4096, "f+0x1/0x2 pages=5 vmalloc N0=2 N1=3")
    m = pv.Machine.from_snapshot(text, ram="512M")
    assert len(m.phys.nodes) == 2
    assert parse_vmallocinfo(m.vmallocinfo()).lines == parse_vmallocinfo(text).lines
    m.check()


def test_too_little_ram_reserves_ranges_without_pages():
    text = ("0xbf000000-0xbf002000    8192 module_alloc+0x1/0x2 pages=1 vmalloc\n"
            "0xd0000000-0xd2001000 33558528 big+0x1/0x2 pages=8192 vmalloc\n")
    m = pv.Machine.from_snapshot(text, ram="16M")
    assert m.snapshot_report.without_pages == [2]
    assert any("RAM too small" in line for line in m.dmesg())
    area = m.find_vm_area(0xD0000000)
    assert area is not None and area.nr_pages == 0 and area.snapshot_pages == 8192
    assert m.vmalloc(4096) not in range(0xD0000000, 0xD2001000)
    m.check()


# ---- what cannot be replayed -----------------------------------------------------------------
ARM = "0xbf000000-0xbf002000    8192 module_alloc+0x1/0x2 pages=1 vmalloc\n"


@pytest.mark.parametrize("text, where, what", [
    (ARM + "0xd0000000-0xd0002000\n", ":2", "truncated line"),
    (ARM + "0xd00g0000-0xd0002000 8192 f+0x1/0x2 ioremap\n", ":2", "bad hex"),
    (ARM + "0xbf001000-0xbf003000    8192 f+0x1/0x2 ioremap\n", ":2", "overlaps line 1"),
    (ARM + "0xd0000800-0xd0002800    8192 f+0x1/0x2 ioremap\n", ":2", "not page aligned"),
    (ARM + "0xd0000000-0xd0002000    8192 f+0x1/0x2 pages=3 vmalloc\n", ":2", "do not fit"),
])
def test_malformed_input_names_file_and_line(text: str, where: str, what: str):
    with pytest.raises(FormatError) as exc:
        pv.Machine.from_snapshot(text, source="dump.txt")
    assert exc.value.where == f"dump.txt{where}"
    assert what in exc.value.what


def test_wrong_arch_is_refused():
    zte = (DATA / "arm32-zte-router-mt7615-4.1.25.txt").read_text()
    with pytest.raises(FormatError, match="below i386's kernel space"):
        pv.Machine.from_snapshot(zte, arch="i386", source="zte.txt")
    with pytest.raises(FormatError, match="not a kernel address on x86_64"):
        pv.Machine.from_snapshot(zte, arch="x86_64")
    x86 = _x86_line(0xFFFFC90000000000, 8192, "f+0x1/0x2 ioremap")
    with pytest.raises(FormatError, match="32-bit arch arm"):
        pv.Machine.from_snapshot(x86, arch="arm")


@pytest.mark.parametrize("text, arch, message", [
    (HASHED.read_text(), None, "hashed"),
    (ARM, "mips", "no machine profile for arch 'mips': give the arch (--arch"),
    ("0xd0000000-0xd0002000    8192 f+0x1/0x2 ioremap\n", None, "give the arch (--arch"),
    ("", None, "no areas"),
])
def test_what_cannot_be_placed_says_why(text: str, arch: str | None, message: str):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        pv.Machine.from_snapshot(text, arch=arch)


def test_a_vmap_line_with_pages_keeps_its_frames_accounted() -> None:
    # 5.8+ prints pages=N for vmap(VM_MAP_PUT_PAGES) areas: the restored area maps N frames of
    # its own, check() finds none leaked, and vfree gives them back (VM_MAP_PUT_PAGES).
    text = ("0xffffc90000000000-0xffffc90000005000   20480 irq_init_percpu_irqstack+0xf0/0x120 vmap\n"
            "0xffffc90000010000-0xffffc90000013000   12288 i915_gem_object_map_page+0x1d2/0x2c0 pages=2 vmap\n")
    m = pv.Machine.from_snapshot(text, arch="x86_64", kernel="6.1", ram="256M")
    m.check()
    area = m.find_vm_area(0xFFFFC90000010000)
    assert area is not None and area.nr_pages == 2 and area.flags & pv.VM_MAP
    free = m.phys.nr_free()
    m.vfree(0xFFFFC90000010000)
    m.run_workers()
    m.slab.kmem_cache_shrink()
    assert m.phys.nr_free() >= free + 2
    m.check()
