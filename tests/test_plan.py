"""``fits`` and ``plan``: answers checked against holes recomputed here and machines booted here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.analysis.plan import fits, parse_headroom, parse_sizes, plan
from pyvmalloc.arch import PROFILES
from pyvmalloc.errors import ConfigError
from pyvmalloc.snapshot.restore import replay_snapshot
from pyvmalloc.formats.vmallocinfo import VmallocinfoLine, parse_vmallocinfo

DATA = Path(__file__).parent / "data" / "vmallocinfo"
EXAMPLES = Path(__file__).parent.parent / "examples" / "vmallocinfo"
TRUSTED = sorted(p for p in DATA.glob("*.txt") if "hashed" not in p.name)
TABLET = "arm32-mediatek-goclever-i5-3.4.5"
MiB = 1 << 20
PAGE = 4096

_MACHINES: dict[str, pv.Machine] = {}


def _machine(path: Path) -> pv.Machine:
    if path.name not in _MACHINES:
        _MACHINES[path.name] = pv.Machine.from_snapshot(path.read_text())
    return _MACHINES[path.name]


# ---- an independent model of the address space: sorted intervals and first fit ---------------
def _holes(busy: list[tuple[int, int]], start: int, end: int) -> list[list[int]]:
    """Free ``[address, size]`` gaps of ``[start, end)`` between the ``(start, end)`` ranges."""
    out, cursor = [], start
    for s, e in sorted(busy):
        if e <= cursor:
            continue
        if s >= end:
            break
        if s > cursor:
            out.append([cursor, s - cursor])
        cursor = max(cursor, e)
    if cursor < end:
        out.append([cursor, end - cursor])
    return out


def _take(holes: list[list[int]], need: int) -> int | None:
    """Lowest-address first fit of ``need`` bytes at page alignment; carves the hole."""
    for hole in holes:
        if hole[1] >= need:
            addr = hole[0]
            hole[0] += need
            hole[1] -= need
            return addr
    return None


def _vmalloc_like(holes: list[list[int]], size: int, ptr: int) -> int | None:
    """The address space vmalloc(size) takes: the area, then a vmalloc'ed page array when
    ``pages * sizeof(void *)`` is over a page (mm/vmalloc.c __vmalloc_area_node)."""
    saved = [h[:] for h in holes]
    body = -(-size // PAGE) * PAGE
    addr = _take(holes, body + PAGE)
    if addr is not None and body // PAGE * ptr > PAGE:
        if _vmalloc_like(holes, body // PAGE * ptr, ptr) is None:
            addr = None
    if addr is None:
        holes[:] = saved
    return addr


def _busy(lines: list[VmallocinfoLine]) -> list[tuple[int, int]]:
    return [(ln.start, ln.end) for ln in lines]


# ---- fits ---------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(path=st.sampled_from(TRUSTED),
       sizes=st.lists(st.integers(min_value=1, max_value=700 * MiB), min_size=1, max_size=5))
def test_fits_agrees_with_first_fit_over_recomputed_holes(path: Path, sizes: list[int]):
    m = _machine(path)
    before = m.vmallocinfo()
    answers = fits(m, sizes)
    assert m.vmallocinfo() == before  # every reservation undone
    holes = _holes(_busy(parse_vmallocinfo(before).lines), m.VMALLOC_START, m.VMALLOC_END)
    for size, answer in zip(sizes, answers):
        need = -(-size // PAGE) * PAGE + PAGE
        total, largest = sum(h[1] for h in holes), max((h[1] for h in holes), default=0)
        assert (answer.total_free, answer.largest_hole) == (total, largest)
        want = _vmalloc_like(holes, size, m.vm.ptr_size)
        assert answer.ok == (want is not None) and answer.address == want
        assert answer.reserved == need
        if want is None and total < need:
            assert answer.reason.startswith("total free")
        elif want is None and largest < need:
            assert answer.reason.startswith("largest hole")


def test_fits_puts_back_lazily_freed_areas_a_failed_search_purged():
    text = ("0xbf000000-0xbf002000    8192 module_alloc+0x1/0x2 pages=1 vmalloc\n"
            "0xd0800000-0xd1000000 8388608 a+0x1/0x2 ioremap\n"
            "0xd1000000-0xd1800000 8388608 unpurged vm_area\n")
    m = pv.Machine.from_snapshot(text, "VmallocTotal:      16384 kB\n")
    assert (m.VMALLOC_START, m.VMALLOC_END) == (0xD0800000, 0xD1800000)
    before = m.vmallocinfo()
    (answer,) = fits(m, ["4M"])
    # No hole at all until the purge frees the unpurged range (alloc_vmap_area purges, retries).
    assert answer.ok and answer.address == 0xD1000000 and answer.total_free == 0
    assert m.vmallocinfo() == before
    assert [(a.addr, a.size) for a in m.lazy_areas()] == [(0xD1000000, 8 * MiB)]
    m.check()


def test_fits_of_other_kinds():
    m = pv.Machine.from_snapshot((DATA / "arm32-zte-router-mt7615-4.1.25.txt").read_text())
    (mod,) = fits(m, ["100k"], kind="module")
    assert mod.ok and m.layout.modules_start <= mod.address < m.layout.modules_end
    (io,) = fits(m, ["3M"], kind="ioremap")
    assert io.ok and io.address % (4 * MiB) == 0  # 1 << fls(3M): ioremap's alignment
    with pytest.raises(ConfigError, match="unknown kind"):
        fits(m, ["1M"], kind="dma")


def test_fits_says_when_ram_is_short_and_refuses_bad_sizes():
    m = _machine(DATA / "arm32-fullhan-fh8852-asecam-3.0.8.txt")  # 32 MiB of RAM
    answers = fits(m, ["16M", "16M"])
    assert answers[0].ok and answers[0].pages_ok
    assert answers[1].ok and not answers[1].pages_ok and "lack of pages" in answers[1].reason
    (zero,) = fits(m, [0])
    assert not zero.ok and "NULL" in zero.reason
    for bad in (["8Q"], ["-1"], [""]):
        with pytest.raises(ConfigError):
            fits(m, bad)


# ---- plan ---------------------------------------------------------------------------------------
def _keep(old: tuple[int, int], new: tuple[int, int]):
    """PLAN_RULES written out again: fixed places stay; the rest stays if still inside."""
    def keep(ln: VmallocinfoLine) -> bool:
        static = (ln.caller or "").find("+0x0/") > 0 or bool(set(ln.unknown_words) & set(ln.kinds))
        inside_old = old[0] <= ln.start and ln.end <= old[1]
        return not inside_old or static or (new[0] <= ln.start and ln.end <= new[1])
    return keep


def _boot_and_allocate(profile, ram: int, cmdline: str, text: str, old: tuple[int, int],
                       sizes: list[int], headroom: float,
                       kernel: str | None = None) -> tuple[bool, pv.Machine]:
    """Boot with ``cmdline``, replay, vmalloc (with pages) and measure the headroom, by hand."""
    m = pv.Machine(arch=profile, ram=ram, cmdline=cmdline, kernel=kernel)
    lines = parse_vmallocinfo(text).lines
    report = replay_snapshot(m, lines, keep=_keep(old, (m.VMALLOC_START, m.VMALLOC_END)))
    placed = not report.unplaced
    got = [m.vmalloc(size, caller="plan_test+0x1/0x10") for size in sizes]
    now = parse_vmallocinfo(m.vmallocinfo()).lines
    free = sum(h[1] for h in _holes(_busy(now), m.VMALLOC_START, m.VMALLOC_END))
    ok = placed and None not in got and free >= headroom * (m.VMALLOC_END - m.VMALLOC_START)
    return ok, m


def test_plan_for_the_tablet_is_verified_by_booting_it():
    text = (EXAMPLES / f"{TABLET}.txt").read_text()
    meminfo = (EXAMPLES / f"{TABLET}.meminfo").read_text()
    sizes = [64 * MiB, 128 * MiB]
    # The tablet runs Linux 3.4.5: vmalloc= there gives an area 8 MiB smaller than asked
    # (before "arm: make the size of vmalloc in cmdline and meminfo uniform", 5.15).
    answer = plan(text, ["64M", "128M"], "25%", meminfo=meminfo, kernel="3.4.5")
    assert answer.ok and answer.value is not None and answer.value % (8 * MiB) == 0
    assert answer.param == "vmalloc=600M" and answer.kernel == "3.4.5"
    assert answer.param == f"vmalloc={answer.value >> 20}M"
    # Today's layout (0xde000000-0xff000000, 528 MiB) cannot take the 128 MiB request.
    assert answer.current is not None and not answer.current.ok
    assert "128 MiB request" in answer.current.why
    # The device: VMALLOC_END 0xff000000 (VmallocTotal from 0xde000000), 472 MiB of lowmem.
    arm3x = dataclasses.replace(PROFILES["arm"], vmalloc_end=0xFF000000)
    old = (0xDE000000, 0xFF000000)
    ok, m = _boot_and_allocate(arm3x, 472 * MiB, f"vmalloc={answer.value >> 20}M", text, old,
                               sizes, 0.25, kernel="3.4.5")
    assert ok
    assert m.VMALLOC_START == answer.planned.vmalloc_start
    # ARM before 5.15: the area is vmalloc= less VMALLOC_OFFSET (8 MiB) for a multiple of 8 MiB
    assert m.VMALLOC_END - m.VMALLOC_START == answer.value - 8 * MiB
    m.check()
    smaller, _ = _boot_and_allocate(arm3x, 472 * MiB, f"vmalloc={(answer.value >> 20) - 8}M",
                                    text, old, sizes, 0.25, kernel="3.4.5")
    assert not smaller and answer.smaller is not None and not answer.smaller.ok


def test_plan_when_ram_already_leaves_a_large_area():
    text = (EXAMPLES / "arm32-zte-router-mt7615-4.1.25.txt").read_text()
    meminfo = (EXAMPLES / "arm32-zte-router-mt7615-4.1.25.meminfo").read_text()
    answer = plan(text, ["32M"], "20%", meminfo=meminfo, cmdline="mem=128M", kernel="4.1.25")
    # 128 MiB of RAM end lowmem long before vmalloc= would: the router's own layout already
    # holds it, so no vmalloc= is needed (not "the smallest value").
    assert answer.ok and not answer.needed and answer.value is None and answer.param is None
    assert answer.reason.startswith("no vmalloc= needed")
    assert (answer.current.vmalloc_start, answer.current.vmalloc_end) == (0xC8800000, 0xF0000000)
    # One more request than the layout holds: the smallest value works, lowmem bounded by RAM.
    more = plan(text, ["32M", "400M"], "0%", meminfo=meminfo, cmdline="mem=128M", kernel="4.1.25")
    assert not more.current.ok


I386 = "".join(f"0x{a:08x}-0x{a + s:08x} {s:7d} {c} ioremap\n" for a, s, c in [
    (0xF8800000, 0x201000, "ioremap_nocache+0x1/0x2"),
    (0xF8A01000, 0x2001000, "acpi_os_map_memory+0x1/0x2"),
    (0xFB000000, 0x4000000, "fb_probe+0x1/0x2"),
])


def test_plan_on_i386_takes_the_value_as_memparse_does():
    answer = plan(I386, ["64M"], "10%", arch="i386", ram="2G", kernel="2.6.22")
    assert answer.ok and answer.step == MiB and answer.value % MiB == 0
    assert answer.smaller is not None and answer.smaller.param == f"vmalloc={(answer.value >> 20) - 1}M"
    assert not answer.smaller.ok
    # The planned layout is what booting i386 2.6.22 with that vmalloc= gives.
    m = pv.Machine(arch="i386", ram="2G", cmdline=answer.param, kernel="2.6.22")
    assert (m.VMALLOC_START, m.VMALLOC_END) == (answer.planned.vmalloc_start,
                                                answer.planned.vmalloc_end)
    ok, _ = _boot_and_allocate("i386", 2 << 30, answer.param, I386,
                               (0xF8800000, 0xFF7FE000), [64 * MiB], 0.10, kernel="2.6.22")
    assert ok


def test_plan_says_what_it_cannot_do():
    x86 = "0xffffc90000000000-0xffffc90000002000    8192 hpet_enable+0x1/0x2 phys=0xfed00000 ioremap\n"
    answer = plan(x86, ["1G"], "10%")
    assert answer.value is None and "no vmalloc= boot parameter" in answer.reason
    assert answer.ok and answer.current is not None
    hashed = plan((DATA / "x86_64-rhel8-sosreport-hashed.txt").read_text(), ["8M"])
    assert not hashed.trusted and "cannot be trusted" in hashed.reason and hashed.value is None
    too_big = plan((EXAMPLES / "arm32-zte-router-mt7615-4.1.25.txt").read_text(), ["2G"])
    assert not too_big.ok and too_big.reason.startswith("even vmalloc=")
    with pytest.raises(ConfigError, match="--arch"):
        plan("0xd0000000-0xd0002000    8192 f+0x1/0x2 ioremap\n", ["8M"])


@given(st.integers(min_value=0, max_value=99))
def test_headroom_is_a_percentage_or_a_fraction(pct: int):
    assert parse_headroom(f"{pct}%") == pytest.approx(pct / 100)
    assert parse_headroom(pct / 100) == pytest.approx(pct / 100)


@pytest.mark.parametrize("bad", ["100%", "-1%", "x", "1.5", True])
def test_bad_headroom_is_refused(bad):
    with pytest.raises(ConfigError):
        parse_headroom(bad)


def test_sizes_parse_like_the_command_line():
    assert parse_sizes("16k,8M,1G") == [16 << 10, 8 << 20, 1 << 30]
    with pytest.raises(ConfigError, match="empty size"):
        parse_sizes("8M,,1G")


def test_areas_outside_a_smaller_range_are_placed_again_by_first_fit():
    text = (EXAMPLES / f"{TABLET}.txt").read_text()
    lines = parse_vmallocinfo(text).lines
    arm3x = dataclasses.replace(PROFILES["arm"], vmalloc_end=0xFF000000)
    m = pv.Machine(arch=arm3x, ram=1024 * MiB, cmdline="vmalloc=480M",  # lowmem 520M
                   allocator="list")  # strict first fit also for aligned requests
    new = (m.VMALLOC_START, m.VMALLOC_END)
    assert new == (0xE1000000, 0xFF000000)
    keep = _keep((0xDE000000, 0xFF000000), new)
    report = replay_snapshot(m, lines, keep=keep)
    moved = [ln for ln in lines if not keep(ln)]
    assert [line for line, _old, _new in report.relocated] == [ln.lineno for ln in moved]
    assert not report.unplaced
    # Replayed by hand: the kept areas first, then each moved one, in address order, at the
    # lowest hole that holds it (ioremap ones at the machine's kernel's alignment, 6.1's
    # 1 << get_count_order(size), up to 16 MiB: versions.ioremap_align).
    holes = _holes(_busy([ln for ln in lines if keep(ln)]), *new)
    for ln, (_line, old, got) in zip(moved, report.relocated):
        align = PAGE
        if "ioremap" in ln.kinds:
            align = 1 << min(max((ln.size - PAGE - 1).bit_length(), 12), 24)
        want = None
        for hole in holes:
            a = -(-hole[0] // align) * align
            if a + ln.size <= hole[0] + hole[1]:
                want = a
                holes.remove(hole)
                holes += [h for h in ([hole[0], a - hole[0]], [a + ln.size, hole[0] + hole[1] - a - ln.size]) if h[1]]
                holes.sort()
                break
        assert (old, got) == (ln.start, want)
    parse_vmallocinfo(m.vmallocinfo())  # no two areas overlap
    m.check()
