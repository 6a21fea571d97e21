"""The scale layer's inputs without a cluster: sweep specs, fleet paths, bug reports, bad input."""

from __future__ import annotations

import io
import os
import re
import sys
import tarfile
from typing import Any

import pytest

from pyvmalloc.cli.main import main
from pyvmalloc.errors import ConfigError
from pyvmalloc.scale.fleet import analyse_batch, rank
from pyvmalloc.scale.fleet_input import collect, split_bugreport
from pyvmalloc.scale.runner import execute
from pyvmalloc.scale.spec import parse_spec
from pyvmalloc.versions import parse_version, vmap_stack

DATA = os.path.join(os.path.dirname(__file__), "..", "examples", "vmallocinfo")
ZTE = os.path.join(DATA, "arm32-zte-router-mt7615-4.1.25.txt")


def test_spec_cross_product_and_stable_ids() -> None:
    spec = parse_spec("""
[sweep]
steps = 10
[axes]
kernels = ["4.19", "6.12"]
allocators = ["default", "list"]
workloads = ["bpf_jit"]
seeds = 3
[axes.params]
lazy_max_pages = [32, 64]
""")
    assert len(spec.runs) == 2 * 2 * 1 * 3 * 2
    assert len({r.run_id for r in spec.runs}) == 24
    again = parse_spec("[axes]\nkernels=['6.12']\nallocators=['list']\nworkloads=['bpf_jit']\n"
                       "seeds=[2]\n[axes.params]\nlazy_max_pages=[64]\n[sweep]\nsteps=10\n")
    assert again.runs[0].run_id in {r.run_id for r in spec.runs}


@pytest.mark.parametrize("text, says", [
    ("[axes]\nworkloads = ['nope']", "axes.workloads: unknown workload 'nope'"),
    ("[axes]\nworkloads = ['module_churn']\nkernels = ['9.9']", "axes.kernels"),
    ("[axes]\nworkloads = ['module_churn']\nallocators = ['slab']", "unknown allocator 'slab'"),
    ("[axes]\nworkloads = ['module_churn']\n[axes.params]\nlazy = [1]", "axes.params.lazy: unknown"),
    ("[axes]\nworkloads = ['module_churn']\n[axes.params]\ncpus = [0]", "axes.params.cpus"),
    ("[axes]\nworkloads = ['module_churn']\nseeds = true", "axes.seeds"),
    ("[axes]\nworkloads = ['test_vmalloc:nope']", "no such scenario"),
    ("[axes]\nworkloads = ['trace:missing.trace']", "cannot read"),
    ("[sweep]\nsteps = 'x'\n[axes]\nworkloads = ['module_churn']", "sweep.steps"),
    ("[sweep]\nsteps = 100000000000\n[axes]\nworkloads = ['module_churn']", "at most"),
    ("[axes]\nworkloads = ['module_churn']\nseeds = 2000000", "axes.seeds"),
    ("[axes\n", "not valid TOML"),
    ("[sweep]\n", "missing: a spec needs an [axes] table"),
])
def test_spec_errors_name_file_and_key(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"^my\.toml: ") as info:
        parse_spec(text, "my.toml")
    assert says in str(info.value)


def test_run_refused_by_kernel_is_a_row_not_an_exception() -> None:
    run = parse_spec("[sweep]\nsteps=5\n[axes]\nkernels=['2.6.22']\nworkloads=['bpf_jit']").runs[0]
    row, _ = execute(run)
    assert row["status"] == "error" and "Linux 3.18" in row["error"]
    # The same run twice: the same row (host time aside).
    row2, _ = execute(run)
    assert {**row, "host_seconds": 0} == {**row2, "host_seconds": 0}


@pytest.mark.parametrize(("arch", "kernel", "vmapped"), [
    ("i386", "6.12", False), ("x86_64", "4.8", False), ("x86_64", "4.9", True),
    ("arm64", "4.13", False), ("arm64", "4.14", True), ("arm", "5.17", False), ("arm", "5.18", True),
])
def test_thread_stacks_only_where_stacks_are_vmalloc_areas(arch: str, kernel: str,
                                                          vmapped: bool) -> None:
    # CONFIG_VMAP_STACK: x86_64 4.9, arm64 4.14, ARM 5.18, never i386 (versions.vmap_stack).
    assert vmap_stack(parse_version(kernel), arch) is vmapped
    spec = (f"[sweep]\nsteps=20\narch='{arch}'\nram='256M'\n[axes]\nkernels=['{kernel}']\n"
            "workloads=['thread_stacks', 'server_day']")
    stacks, day = (execute(r)[0] for r in parse_spec(spec).runs)
    if vmapped:
        assert stacks["status"] == "ok" and stacks["calls"] > 0
    else:
        assert stacks["status"] == "error" and "CONFIG_VMAP_STACK" in stacks["error"]
    assert day["status"] == "ok"          # the mixed day goes on, without stacks where they are pages


def test_trace_workload_replays(tmp_path: Any) -> None:
    trace = os.path.join(os.path.dirname(__file__), "..", "examples", "trace", "i386-kva.trace")
    spec = tmp_path / "t.toml"
    spec.write_text(f"[sweep]\narch='i386'\n[axes]\nworkloads=['trace:{os.path.abspath(trace)}']\n"
                    f"allocators=['list', 'kva']\n")
    from pyvmalloc.scale.spec import load_spec

    s = load_spec(str(spec))
    rows = [execute(r, s.traces[r.workload])[0] for r in s.runs]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(r["calls"] > 0 and r["largest_hole"] for r in rows)


def _bugreport(name: str, version: str, body: str) -> str:
    return (f"== dumpstate: {name}\nKernel: Linux version {version} (gcc) #1\n"
            f"------ MEMORY INFO (/proc/meminfo) ------\nMemTotal: 94412 kB\nVmallocTotal: 647168 kB\n"
            f"------ VMALLOC INFO (/proc/vmallocinfo) ------\n{body}"
            f"------ 0.01s was the duration of 'VMALLOC INFO' ------\n")


def test_fleet_inputs_files_folders_globs_tars(tmp_path: Any) -> None:
    with open(ZTE, encoding="utf-8") as f:
        body = f.read()
    reports = tmp_path / "reports"
    reports.mkdir()
    for when in range(3):   # a series: dev1@00, dev1@01, dev1@02
        (reports / f"dev1@{when:02d}.txt").write_text(_bugreport("dev1", "4.1.25", body))
    (reports / "README").write_text("not a dump\n")
    (reports / "broken.txt").write_text(body.replace("\n0x", "\n0xZZ", 1))   # a bad line 2
    with tarfile.open(tmp_path / "sos.tar.gz", "w:gz") as tar:   # a sosreport's layout
        for member, text in (("sosreport-host9/proc/vmallocinfo", body),
                             ("sosreport-host9/proc/meminfo", "VmallocTotal: 647168 kB\n"),
                             ("sosreport-host9/proc/version", "Linux version 4.1.25 (x)\n")):
            data = text.encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    found = collect([str(reports), str(tmp_path / "*.tar.gz"), ZTE])
    assert sorted((d.device, d.taken) for d in found.dumps) == [
        ("arm32-zte-router-mt7615-4.1.25", ""), ("broken", ""), ("dev1", "00"), ("dev1", "01"),
        ("dev1", "02"), ("sosreport-host9", "")]
    assert found.skipped == [str(reports / "README")]
    sos = next(d for d in found.dumps if d.device == "sosreport-host9")
    assert sos.version and sos.version.startswith("4.1.25") and sos.meminfo
    rows = rank(analyse_batch(found.dumps))
    broken = next(r for r in rows if r["device"] == "broken")
    assert broken["status"] == "error" and f"{reports / 'broken.txt'}:2:" in broken["error"]
    assert broken["rank"] is None
    groups = {r["device"]: r["group"] for r in rows if r["status"] == "ok"}
    assert groups["dev1"] == groups["sosreport-host9"] == "Linux 4.1 arm"
    assert "4.1" not in groups["arm32-zte-router-mt7615-4.1.25"]   # no version: inferred range


def test_fleet_reads_every_dump_format_analyze_reads(tmp_path: Any) -> None:
    # The samples of the other tools' formats (tests/data/dumps, SOURCES says which are real):
    # each is a device of the fleet, summarised like its plain /proc/vmallocinfo would be.
    data = os.path.join(os.path.dirname(__file__), "data", "dumps")
    names = ["crash-kmem-v.txt", "drgn-vmallocinfo.txt", "gdb-lx-vmallocinfo.txt",
             "ramdump-parser-vmalloc.txt", "amlogic-dump-vmalloc-s905x3.txt"]
    for name in names:
        with open(os.path.join(data, name), "rb") as src:
            (tmp_path / name).write_bytes(src.read())
    (tmp_path / "notes.txt").write_text("a kernel log with no dump in it\nLinux version 6.1.0\n")
    found = collect([str(tmp_path)])
    assert sorted(d.device for d in found.dumps) == sorted(n[:-4] for n in names)
    assert found.skipped == [str(tmp_path / "notes.txt")]
    rows = analyse_batch(found.dumps)
    assert all(r["status"] in ("ok", "no range") for r in rows), [r["error"] for r in rows]
    assert all(r["areas"] and r["areas"] > 0 for r in rows)


def test_split_bugreport() -> None:
    vm, mem, ver = split_bugreport(_bugreport("d", "5.10.43-android12", "0xc0-0xc1 1 x\n"))
    assert vm == "0xc0-0xc1 1 x\n" and mem is not None and "VmallocTotal" in mem
    assert ver == "5.10.43-android12"


@pytest.mark.parametrize("argv, says", [
    (["fleet", "/nonexistent/dumps"], "/nonexistent/dumps: no such file or folder"),
    (["fleet", "/nonexistent/*.txt"], "the pattern matches no file"),
    (["fleet", ZTE, "--scheduler", "localhost"], "--scheduler 'localhost'"),
    (["sweep", "/nonexistent.toml"], "/nonexistent.toml: cannot read the spec"),
    (["sweep-report", "/nonexistent"], "no sweep results here"),
])
def test_cli_bad_input_is_one_line_exit_2(argv: list[str], says: str, capsys: Any) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_tar_named(tmp_path: Any, capsys: Any) -> None:
    bad = tmp_path / "broken.tar.gz"
    bad.write_bytes(b"\x1f\x8b not really gzip")
    assert main(["fleet", str(bad)]) == 2
    assert f"{bad}: not a readable tar archive" in capsys.readouterr().err


def test_missing_dask_says_what_to_install(monkeypatch: Any, capsys: Any, tmp_path: Any) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)   # import fails as when not installed
    spec = tmp_path / "s.toml"
    spec.write_text("[axes]\nworkloads=['module_churn']\n")
    assert main(["sweep", str(spec)]) == 2
    assert "install pyvmalloc[scale]" in capsys.readouterr().err
    assert main(["fleet", ZTE]) == 2
    assert "install pyvmalloc[scale]" in capsys.readouterr().err


def test_plots_draw_nothing_for_a_configuration_without_a_finished_run(
        tmp_path: Any, monkeypatch: Any) -> None:
    # One configuration ran, the other only errored: its bar and box are absent, not zero.
    from matplotlib.figure import Figure

    from pyvmalloc.scale.report import group_runs, plot_sweep

    spec = parse_spec('[sweep]\nname = "p"\narch = "i386"\nsteps = 10\nsamples = 2\n'
                      '[axes]\nkernels = ["2.6.22", "6.12"]\nworkloads = ["module_churn"]\n'
                      'seeds = 1\n')
    rows, series = [], []
    for run in spec.runs:
        row, points = execute(run)
        rows.append(row)
        series += points
    assert all(r["status"] == "ok" for r in rows)
    rows[1] = dict(rows[1], status="error", failures=None, fragmentation=None)
    figures: list[Any] = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig",
                        lambda self, *a, **k: (figures.append(self), real(self, *a, **k))[1])
    plot_sweep(group_runs(rows), series, str(tmp_path))
    frag, _hole, failures = figures[0].axes[:3]
    heights = [p.get_height() for p in failures.patches]
    assert heights[0] == rows[0]["failures"] and heights[1] != heights[1]   # NaN: no bar
    at = [(float(x), float(y)) for ln in frag.lines for x, y in zip(ln.get_xdata(), ln.get_ydata())]
    # the box at position 1 drawn, the one at position 2 all NaN (matplotlib's empty box)
    assert any(x < 1.5 and y == y for x, y in at) and all(y != y for x, y in at if x > 1.5)


def test_a_full_range_has_no_fragmentation_figure_rather_than_zero() -> None:
    # fragmentation_index is None when nothing is free: the ranking says "-", not 0.000 (one hole).
    from pyvmalloc.scale.fleet import DEVICE_COLUMNS
    from pyvmalloc.scale.fleet_report import format_ranking

    row: dict[str, Any] = dict.fromkeys(DEVICE_COLUMNS)
    row.update(device="full", taken=None, status="ok", group="Linux 4.9 arm", largest_hole=0,
               typical_request=8192, headroom=0.0, at_risk=True, rank=1, fragmentation=None)
    line = format_ranking([row]).splitlines()[2]
    assert re.search(r" 0\.00\s+-\s+largest hole < typical request$", line), line
    row["fragmentation"] = 0.0
    line = format_ranking([row]).splitlines()[2]
    assert re.search(r" 0\.00\s+0\.000\s+largest hole < typical request$", line), line


def test_lazy_max_pages_on_a_kernel_without_lazy_purge_is_no_configuration() -> None:
    # 2.6.22 frees at once: its runs at 64 and 4096 are one configuration, not two alike.
    from pyvmalloc.scale.report import group_runs

    spec = parse_spec('[sweep]\nname = "l"\narch = "i386"\nsteps = 30\nsamples = 2\n'
                      '[axes]\nkernels = ["2.6.22", "6.1"]\nworkloads = ["ioremap_churn"]\n'
                      'seeds = 1\n[axes.params]\nlazy_max_pages = [64, 4096]\n')
    rows = [execute(run)[0] for run in spec.runs]
    assert sorted((r["kernel"], r["lazy_max_pages"]) for r in rows) == [
        ("2.6.22", None), ("2.6.22", None), ("6.1", 64), ("6.1", 4096)]
    configs = {g.config: len(g.runs) for g in group_runs(rows)}
    assert configs == {"2.6.22 list": 2, "6.1 kva-rbtree lazy_max_pages=64": 1,
                       "6.1 kva-rbtree lazy_max_pages=4096": 1}
