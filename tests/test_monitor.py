"""The monitor layer: samples, diffs and series (leak suspects, rates, hole trends), the store, history."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.formats.vmallocinfo import VmallocinfoSnapshot, parse_vmallocinfo
from pyvmalloc.monitor.diff import Diff, diff, format_series, least_squares, series, series_to_json
from pyvmalloc.monitor.history import format_history, format_rows, load_history, plot_history
from pyvmalloc.monitor.sample import Sample, read_sample, sample_from_snapshot
from pyvmalloc.monitor.simulate import BPF_CALLER, STACK_CALLER, bpf_leak_series
from pyvmalloc.monitor.sparkline import sparkline
from pyvmalloc.monitor.store import Store, query
from pyvmalloc.monitor.units import parse_duration, parse_moment

# Real dumps with their meminfo (examples/vmallocinfo/SOURCES.md says where each comes from).
REAL = Path(__file__).resolve().parent.parent / "examples" / "vmallocinfo"
HASHED = REAL / "x86_64-rhel8-sosreport-hashed.txt"
TABLET = REAL / "arm32-mediatek-goclever-i5-3.4.5.txt"
PROC = Path("/proc/vmallocinfo")
live = pytest.mark.skipif(not os.access(PROC, os.R_OK), reason="no readable /proc/vmallocinfo")

BPF = BPF_CALLER.split("+")[0]
# Each leaked image: round_up(6000 + 8 + 128, 4096) = 2 pages, plus the guard page; three every
# ten minutes.
LEAK_PER_HOUR = 3 * 3 * 4096 * 6


@pytest.fixture(scope="module")
def leak(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return bpf_leak_series(str(tmp_path_factory.mktemp("leak")))


@pytest.fixture(scope="module")
def leak_hashed(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return bpf_leak_series(str(tmp_path_factory.mktemp("hashed")), hashed=True)


def test_a_bpf_jit_leak_is_named_with_its_rate(leak: list[str]) -> None:
    samples = [read_sample(p) for p in leak]
    assert [s.t - samples[0].t for s in samples] == [600.0 * i for i in range(7)]
    s = series(samples, [64 << 20])
    suspect = s.suspects[0]
    assert suspect.caller == BPF
    assert suspect.bytes_per_hour == pytest.approx(LEAK_PER_HOUR)
    assert suspect.areas_per_hour == pytest.approx(18.0)
    assert (suspect.grew, suspect.shrank, suspect.steps) == (6, 0, 6)
    assert suspect.sureness == "high"
    # The thread stacks come and go; lazily freed areas are nobody's leak.
    assert [t.caller for t in s.suspects] == [BPF]
    stacks = next(t for t in s.trends if t.caller == STACK_CALLER.split("+")[0])
    assert stacks.shrank > 0 and stacks.confidence == 0
    report = format_series(s)
    assert f"{BPF}: +216.0 KiB/h (+18.0 areas/h), grew in 6 of 6 steps" in report
    # x86_64 puts JIT images in the module area: its largest hole shrinks by the leak at least.
    modules = next(h for h in s.holes if h.name == "module area")
    assert modules.values[0] - modules.values[-1] >= 18 * 12288
    assert modules.runs_out[64 << 20] is not None and modules.runs_out[64 << 20] > 0
    assert series_to_json(s)["suspects"] == [BPF]


def test_hashed_dumps_give_the_same_callers_rates_and_moves(leak: list[str],
                                                            leak_hashed: list[str]) -> None:
    clear = series([read_sample(p) for p in leak])
    hashed = series([read_sample(p) for p in leak_hashed])
    assert not hashed.samples[0].addresses_trusted and hashed.holes == []
    assert any("hashed" in n for n in hashed.notes)
    assert hashed.suspects[0].caller == BPF
    assert hashed.suspects[0].bytes_per_hour == pytest.approx(LEAK_PER_HOUR)
    # The %pK key is the same for the whole boot: areas are still matched one by one.
    assert hashed.overall.exact
    assert hashed.overall.callers == clear.overall.callers
    assert hashed.overall.appeared == clear.overall.appeared
    assert hashed.overall.disappeared == clear.overall.disappeared


def test_an_i386_leak_says_when_a_request_stops_fitting(tmp_path: Path) -> None:
    paths = bpf_leak_series(str(tmp_path), steps=4, arch="i386", ram="1G", prog_size=2 << 20,
                            leak_per_step=4)
    s = series([read_sample(p) for p in paths], [8 << 20, 1 << 30])
    hole = s.holes[0]
    assert hole.name == "vmalloc range" and hole.values[-1] < hole.values[0]
    assert hole.bytes_per_hour < 0
    hours = hole.runs_out[8 << 20]
    assert hours is not None
    # the request needs its size and a guard page free (__get_vm_area_node)
    need = (8 << 20) + 4096
    assert hours == pytest.approx((hole.values[-1] - need) / -hole.bytes_per_hour * 3600)
    assert hole.runs_out[1 << 30] == 0.0          # larger than the whole range: does not fit now
    assert "stops fitting in" in format_series(s) and "does not fit now" in format_series(s)


def test_a_hole_of_exactly_the_request_size_lacks_the_guard_page() -> None:
    # vmalloc(8M) reserves 8M + a guard page: a hole of 8M does not hold it, 8M + 4K does.
    def at(t: float, hole: int) -> Sample:
        return Sample(t=t, source=f"t{t}", areas=0, bytes=0, kinds={}, callers={},
                      unpurged_bytes=0, addresses_trusted=True, largest_hole=hole)

    size = 8 << 20
    shrinking = series([at(0.0, size + 4096 + 3600), at(3600.0, size + 4096)], [size])
    assert shrinking.holes[0].runs_out[size] == 0.0   # it fits now, with nothing to spare
    full = series([at(0.0, size + 3 * 4096), at(3600.0, size)], [size, size - 4096])
    assert full.holes[0].runs_out == {size: 0.0, size - 4096: 0.0}
    roomy = series([at(0.0, size + 2 * 4096), at(3600.0, size + 4096)], [size - 4096])
    assert roomy.holes[0].runs_out[size - 4096] == pytest.approx(3600.0)


def test_a_real_hashed_dump_against_itself_is_empty() -> None:
    a = read_sample(str(HASHED), t=0.0)
    b = read_sample(str(HASHED), t=3600.0)
    d = diff(a, b)
    assert d.empty and d.exact and d.callers == [] and d.kinds == []
    assert not a.addresses_trusted and a.largest_hole is None
    assert a.vmalloc_total == 34359738367 * 1024          # its .meminfo, read with it
    assert sum(t.bytes for t in a.callers.values()) == a.bytes
    assert a.kinds["unpurged"].areas == 42
    s = series([a, b])
    assert s.suspects == [] and all(t.bytes_per_hour == 0 for t in s.trends)


@live
def test_this_hosts_live_dump_twice() -> None:
    a = read_sample(str(PROC))
    b = read_sample(str(PROC))
    assert b.t >= a.t
    d = diff(a, b)
    assert d.exact
    assert d.appeared is not None and d.disappeared is not None
    # Whatever moved in between, the moves explain the net change caller by caller.
    for c in d.callers:
        assert c.appeared is not None and c.disappeared is not None
        assert c.appeared.bytes - c.disappeared.bytes == c.bytes
    if not a.addresses_trusted:
        # Hashed pointers stay the same within the boot: most areas are in both dumps.
        assert sum((a.keys & b.keys).values()) > a.areas // 2


# The tablet's first 60 areas: enough callers (pvrsrvkm's, ioremaps, static maps) to vary.
_TABLET_LINES = parse_vmallocinfo(TABLET.read_text(), str(TABLET)).lines[:60]


def _subset(picks: list[bool], t: float) -> Sample:
    lines = [ln for ln, keep in zip(_TABLET_LINES, picks) if keep]
    snap = VmallocinfoSnapshot(source=f"t{t}", lines=lines, addresses_trusted=True,
                               address_reason="subset", address_bits=32)
    return sample_from_snapshot(snap, t)


_picks = st.lists(st.booleans(), min_size=len(_TABLET_LINES), max_size=len(_TABLET_LINES))


@settings(max_examples=20, deadline=None)
@given(_picks, _picks, _picks)
def test_diffs_compose_and_a_dump_against_itself_is_empty(pa: list[bool], pb: list[bool],
                                                          pc: list[bool]) -> None:
    a, b, c = _subset(pa, 0.0), _subset(pb, 1.0), _subset(pc, 2.0)
    assert diff(a, a).empty
    ab, bc, ac = diff(a, b), diff(b, c), diff(a, c)

    def net(d: Diff) -> dict[str, int]:
        return {ch.name: ch.bytes for ch in d.callers}

    names = set(net(ab)) | set(net(bc)) | set(net(ac))
    for name in names:
        assert net(ab).get(name, 0) + net(bc).get(name, 0) == net(ac).get(name, 0)
    for d in (ab, bc, ac):
        assert d.appeared is not None and d.disappeared is not None
        assert d.appeared.bytes - d.disappeared.bytes == d.total.bytes
        for ch in d.callers:
            assert ch.appeared is not None and ch.disappeared is not None
            assert ch.appeared.areas - ch.disappeared.areas == ch.areas


def test_least_squares_and_its_refusals() -> None:
    slope, r2 = least_squares([0.0, 1.0, 2.0], [1.0, 3.0, 5.0])
    assert slope == pytest.approx(2.0) and r2 == pytest.approx(1.0)
    assert least_squares([0.0, 1.0], [4.0, 4.0]) == (0.0, None)
    with pytest.raises(ConfigError, match="same time"):
        least_squares([5.0, 5.0], [1.0, 2.0])
    with pytest.raises(ConfigError, match="two samples"):
        series([read_sample(str(HASHED))])


def test_the_store_gives_back_what_was_put(leak: list[str], tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    samples = [read_sample(p) for p in leak]
    with Store(db) as store:
        for s in samples:
            store.add(s)
        assert len(store) == len(samples)
    with Store(db, readonly=True) as store:
        back = store.samples()
        assert [x.t for x in store.samples(last=2)] == [s.t for s in samples[-2:]]
        assert len(store.samples(since=samples[3].t)) == 4
    for orig, got in zip(samples, back):
        assert (got.t, got.source, got.areas, got.bytes) == (orig.t, orig.source, orig.areas,
                                                             orig.bytes)
        assert got.callers == orig.callers and got.kinds == orig.kinds
        assert (got.largest_hole, got.module_largest_hole, got.fragmentation,
                got.vmalloc_used) == (orig.largest_hole, orig.module_largest_hole,
                                      orig.fragmentation, orig.vmalloc_used)
    # Net changes and rates survive the store; which areas moved does not.
    stored = series(back)
    assert stored.suspects[0].caller == BPF
    assert stored.suspects[0].bytes_per_hour == pytest.approx(LEAK_PER_HOUR)
    assert not stored.overall.exact and stored.overall.appeared is None
    columns, rows = query(db, "SELECT caller, max(bytes) FROM caller_series "
                              "WHERE caller = 'bpf_jit_alloc_exec'")
    assert columns == ["caller", "max(bytes)"] and rows == [(BPF, 8192 + 18 * 12288)]
    with pytest.raises(FormatError, match="readonly"):
        query(db, "DELETE FROM samples")


def test_what_is_not_a_store_is_said(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="not a pyvmalloc watch store"):
        Store(str(HASHED), readonly=True)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t(x)").connection.commit()
    with pytest.raises(FormatError, match=r"SQLite file but not a pyvmalloc watch store \(tables: t\)"):
        Store(str(other))
    with pytest.raises(FormatError, match="no such store"):
        Store(str(tmp_path / "missing.db"), readonly=True)


def test_history_reads_the_store_and_draws_it(leak: list[str], tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    with Store(db) as store:
        for p in leak:
            store.add(read_sample(p))
    h = load_history(db)
    # The leak grows fastest.  No lazily freed area is left to grow: each step's bpf_jit_free
    # frees a VM_FLUSH_RESET_PERMS area, whose vfree purges every lazy range at once (5.2+).
    assert h.ranked("growth")[0] == BPF and "(no caller: unpurged)" not in h.callers
    assert h.ranked("bytes", ["bpf"]) == [BPF, "bpf_prog_alloc_no_stats"]
    assert h.callers[BPF] == [8192 + 3 * 12288 * n for n in range(7)]
    text = format_history(h, top=3, sort="growth")
    row = next(line for line in text.splitlines() if line.strip().startswith(BPF))
    assert "+216.0 KiB/h" in row and row.endswith("▁▂▃▅▆▇█")
    png = tmp_path / "h.png"
    plot_history(h, str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(FormatError, match="not supported"):
        plot_history(h, str(tmp_path / "h.nope"))
    with pytest.raises(FormatError, match="no samples"):
        load_history(db, since=1e12)
    assert format_rows(["a", "b"], [(1, None)]) == "a  b\n1  NULL\n(1 row)\n"


def test_sparkline_durations_and_moments() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([5, 5, 5]) == "▁▁▁" and sparkline([]) == ""
    assert sparkline(range(100), width=2) == "▁█"
    assert parse_duration("0.1s") == pytest.approx(0.1)
    assert (parse_duration("10m"), parse_duration("2h"), parse_duration("90")) == (600, 7200, 90)
    for bad in ("", "5x", "-1s", "0", "nan"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    assert parse_moment("2026-01-01T00:00") == 1_767_225_600.0
    assert parse_moment("2026-01-01T02:00+02:00") == 1_767_225_600.0
    with pytest.raises(ConfigError, match="not a time"):
        parse_moment("yesterday")


def test_the_live_panel_and_the_plain_line(leak: list[str]) -> None:
    from rich.console import Console

    from pyvmalloc.monitor.live import panel, plain_line, streak
    from pyvmalloc.monitor.watch import Alert

    samples = [read_sample(p) for p in leak]
    assert streak(samples, BPF) == 6 and streak(samples, "load_module") == 0
    console = Console(width=100, record=True, color_system=None)
    alert = Alert(samples[3].t, "growth", BPF, f"{BPF} grew at each of the last 3 samples")
    console.print(panel(samples[-1], samples, [alert], "w.db", top=10))
    text = console.export_text()
    row = next(line for line in text.splitlines() if BPF in line)
    assert "+216.0 KiB/h" in row and "▁▂▃▅▆▇█" in row
    assert "ALERT 2026-01-01 00:30:00 growth: bpf_jit_alloc_exec grew" in text
    line = plain_line(samples[-1], samples)
    assert line.startswith("2026-01-01 01:00:00  ") and "module area 1.5 GiB" in line


def test_dumps_of_two_boots_are_said_to_be(leak_hashed: list[str]) -> None:
    d = diff(read_sample(str(HASHED), t=0.0), read_sample(leak_hashed[0], t=60.0))
    assert any("another boot" in n for n in d.notes)


def test_a_followed_folder_takes_new_dumps_until_interrupted(leak: list[str],
                                                             tmp_path: Path) -> None:
    import shutil

    from pyvmalloc.monitor.watch import WatchConfig, Watcher

    folder = tmp_path / "dumps"
    folder.mkdir()
    pending = list(leak)
    seen: list[Sample] = []

    def sleep(_seconds: float) -> None:
        # Each wait brings the next dump, as a cron job saving /proc/vmallocinfo would.
        if not pending:
            raise KeyboardInterrupt
        path = pending.pop(0)
        shutil.copy2(path, folder)
        shutil.copy2(path.replace(".txt", ".meminfo"), folder)

    with Store(str(tmp_path / "f.db")) as store:
        watcher = Watcher(WatchConfig(source=str(folder), interval=60.0, follow=True,
                                      grow_steps=4, command="exit 3"), store,
                          on_sample=lambda s, recent, alerts: seen.append(s), sleep=sleep)
        result = watcher.run()
        assert len(store) == len(leak)
    assert result.stopped == "interrupted" and result.samples == len(leak)
    assert [s.source for s in seen] == [str(folder / Path(p).name) for p in leak]
    # A failing alert command does not stop the watch; the alert is raised once per streak.
    assert [(a.kind, a.subject) for a in result.alerts] == [("growth", BPF)]
