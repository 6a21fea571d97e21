"""The monitoring commands: diff, watch (live /proc, a folder, Ctrl-C), metrics (text and a served endpoint), history."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from pyvmalloc.cli.main import main
from pyvmalloc.monitor.metrics import serve
from pyvmalloc.monitor.sample import read_sample
from pyvmalloc.monitor.simulate import bpf_leak_series

ROOT = Path(__file__).resolve().parent.parent
HASHED = ROOT / "examples" / "vmallocinfo" / "x86_64-rhel8-sosreport-hashed.txt"
PROC = "/proc/vmallocinfo"
live = pytest.mark.skipif(not os.access(PROC, os.R_OK), reason="no readable /proc/vmallocinfo")
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


@pytest.fixture(scope="module")
def leak(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("leak")
    bpf_leak_series(str(folder))
    return folder


def _dumps(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*.txt"))


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> {labels: value}, through prometheus_client's own parser."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_diff_names_the_leak_and_its_rate(leak: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "diff", *_dumps(leak), "--size", "64M")
    assert code == 0 and err == ""
    assert "leak suspects (callers that only grew):\n  bpf_jit_alloc_exec: +216.0 KiB/h" in out
    assert "high confidence" in out
    assert "largest hole of the module area" in out and "a 64.0 MiB request: stops fitting in" in out
    code, out, _ = _run(capsys, "diff", *_dumps(leak), "--json")
    data = json.loads(out)
    assert data["suspects"] == ["bpf_jit_alloc_exec"]
    assert data["trends"][0]["bytes_per_hour"] > 0


def test_diff_takes_times_or_an_interval(leak: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, last = _dumps(leak)[0], _dumps(leak)[-1]
    # One hour apart by the files' times; two hours by --times: half the rate.
    code, out, _ = _run(capsys, "diff", first, last, "--times",
                        "2026-01-01T00:00,2026-01-01T02:00", "--json")
    assert code == 0
    rate = json.loads(out)["trends"][0]["bytes_per_hour"]
    code, out, _ = _run(capsys, "diff", first, last, "--interval", "2h", "--json")
    assert json.loads(out)["trends"][0]["bytes_per_hour"] == rate
    code, out, _ = _run(capsys, "diff", first, last, "--steps")
    assert out.count(" apart\n") == 2


def test_diff_of_a_real_hashed_dump_with_itself(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "diff", str(HASHED), str(HASHED), "--interval", "1h")
    assert code == 0
    assert "nothing changed" in out and "leak suspects (callers that only grew):\n  none" in out
    assert "largest hole and fragmentation: not known (addresses hashed" in out


@pytest.mark.parametrize("argv, message", [
    (["diff", "x"], "pyvmalloc diff: give at least two dumps"),
    (["diff", "/nonexistent/a", "/nonexistent/b"], "/nonexistent/a: No such file or directory"),
    (["diff", str(HASHED), str(ROOT / "pyproject.toml")], "pyproject.toml:1: start address '[build' does not begin with 0x"),
    (["diff", str(HASHED), str(HASHED), "--times", "1,2,3"], "--times gives 3 times for 2 dumps"),
    (["diff", str(HASHED), str(HASHED), "--interval", "fast"], "argument --interval: 'fast' is not a duration"),
    (["diff", "--store", str(HASHED)], "x86_64-rhel8-sosreport-hashed.txt: not a pyvmalloc watch store"),
    (["metrics", str(ROOT / "pyproject.toml")], "pyproject.toml:1: start address '[build' does not begin with 0x"),
    (["metrics", "--top", "-1"], "argument --top: not a whole number of 0 or more"),
    (["watch", "/nonexistent", "--store", "/nonexistent/s.db"], "/nonexistent: No such file or directory"),
    (["watch", str(HASHED), "--store", "/nonexistent/s.db"], "/nonexistent/s.db: cannot open the store: unable to open database file"),
    (["history", "/nonexistent.db"], "/nonexistent.db: no such store"),
])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:            # argparse's own refusal of an option
        code = int(str(exc.code))
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@live
def test_metrics_of_this_host_parse_with_the_reference_parser(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "metrics", "--top", "5")
    assert code == 0
    m = _metrics(out)
    assert m["vmalloc_read_ok"] == {(): 1.0}
    callers = m["vmalloc_caller_bytes"]
    assert len(callers) <= 6 and (("caller", "other"),) in callers
    # Top callers and "other" add up to every byte, as the kinds do.
    assert sum(callers.values()) == sum(m["vmalloc_kind_bytes"].values())
    assert m["vmalloc_meminfo_total_bytes"][()] > 0          # /proc/meminfo read alongside
    hashed = m["vmalloc_addresses_hashed"][()] == 1.0
    assert ("vmalloc_largest_hole_bytes" in m) != hashed


def test_metrics_of_a_dump_and_openmetrics(leak: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    dump = _dumps(leak)[-1]
    code, out, _ = _run(capsys, "metrics", dump, "--top", "2")
    m = _metrics(out)
    assert m["vmalloc_caller_areas"][(("caller", "alloc_large_system_hash"),)] == 1.0
    assert set(m["vmalloc_largest_hole_bytes"]) == {(("range", "vmalloc"),), (("range", "modules"),)}
    assert m["vmalloc_addresses_hashed"][()] == 0.0
    assert m["vmalloc_meminfo_used_bytes"][()] == read_sample(dump).vmalloc_used
    prom = tmp_path / "vmalloc.prom"
    code, out, _ = _run(capsys, "metrics", dump, "--openmetrics", "-o", str(prom))
    assert code == 0 and out == ""
    text = prom.read_text()
    assert text.endswith("# EOF\n") and not list(tmp_path.glob(".vmalloc-*"))
    names = {f.name for f in om_families(text)}
    assert {"vmalloc_kind_bytes", "vmalloc_fragmentation_ratio", "vmalloc_unpurged_bytes"} <= names


def test_the_endpoint_answers_on_loopback(leak: Path) -> None:
    dumps = _dumps(leak)
    reads = iter(dumps)
    server = serve(lambda: read_sample(next(reads)), 0, "127.0.0.1", top=10)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        first = _metrics(urllib.request.urlopen(url, timeout=30).read().decode())
        second = _metrics(urllib.request.urlopen(url, timeout=30).read().decode())
    finally:
        server.shutdown()
        server.server_close()
    key = (("caller", "bpf_jit_alloc_exec"),)
    # Each scrape reads afresh: the second saw the next dump of the leak.
    assert second["vmalloc_caller_areas"][key] == first["vmalloc_caller_areas"][key] + 3


@live
def test_metrics_serve_then_ctrl_c(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "pyvmalloc", "metrics", "--serve", "0"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split()[1]
        body = urllib.request.urlopen(url, timeout=30).read().decode()
        assert _metrics(body)["vmalloc_read_ok"] == {(): 1.0}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)   # generous: CI hosts may be loaded
    assert proc.returncode == 0 and "Traceback" not in err


def test_watch_over_a_folder_alerts_and_runs_the_command(
        leak: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, log = tmp_path / "w.db", tmp_path / "alerts.txt"
    code, out, err = _run(capsys, "watch", str(leak), "--store", str(store), "--grow-alert", "3",
                          "--exec", f'echo "$PYVMALLOC_ALERT_KIND $PYVMALLOC_ALERT" >> {log}')
    assert code == 1                                   # an alert was raised
    assert len(out.splitlines()) == 7
    assert "ALERT 2026-01-01 00:30:00 growth: bpf_jit_alloc_exec grew at each of the last 3 " \
           "samples" in err
    assert "stopped (no new dump in the folder): 7 samples" in err
    assert log.read_text().startswith("growth bpf_jit_alloc_exec grew")
    # diff and history read the store back.
    code, out, _ = _run(capsys, "diff", "--store", str(store))
    assert code == 0 and "bpf_jit_alloc_exec: +216.0 KiB/h" in out
    code, out, _ = _run(capsys, "history", str(store), "--caller", "bpf_jit")
    assert code == 0 and "bpf_jit_alloc_exec" in out and "+216.0 KiB/h" in out
    code, out, _ = _run(capsys, "history", str(store), "--sql",
                        "SELECT count(*) AS n FROM samples")
    assert out == "n\n7\n(1 row)\n"
    # A hole alert, and --exit-on-alert: the module area (1.5 GiB) is under 2G at once.
    code, out, err = _run(capsys, "watch", str(leak), "--store", str(tmp_path / "h.db"),
                          "--min-hole", "2G", "--exit-on-alert")
    assert code == 1 and len(out.splitlines()) == 1
    assert "hole: largest hole of the module area is 1.5 GiB, under 2.0 GiB" in err


@live
def test_watch_samples_this_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "live.db"
    code, out, err = _run(capsys, "watch", "--store", str(store), "--interval", "0.1",
                          "--count", "3", "--grow-alert", "50")
    assert code == 0 and len(out.splitlines()) == 3
    assert "stopped (3 samples taken): 3 samples" in err
    rows = sqlite3.connect(store).execute(
        "SELECT t, areas, addresses_trusted, vmalloc_total FROM samples").fetchall()
    assert len(rows) == 3 and all(r[1] > 0 and r[3] > 0 for r in rows)
    assert rows[2][0] - rows[0][0] >= 0.15             # the interval was kept
    hashed = read_sample(PROC).addresses_trusted is False
    assert all(bool(r[2]) != hashed for r in rows)


@live
def test_watch_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    store = tmp_path / "c.db"
    proc = subprocess.Popen([sys.executable, "-m", "pyvmalloc", "watch", "--store", str(store),
                             "--interval", "0.1"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        for _ in range(2):               # two samples printed, so two stored
            assert proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)   # generous: CI hosts may be loaded
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped (interrupted)" in err
    printed = 2 + len(out.splitlines())
    stored = sqlite3.connect(store).execute("SELECT count(*) FROM samples").fetchone()[0]
    assert stored == printed and f"{stored} samples added" in err
    assert sqlite3.connect(store).execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_the_readme_shows_what_diff_prints_today(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "README.md").read_text()
    command = "pyvmalloc diff leak/*.txt --size 64M --top 5\n```\n\n```text\n"
    shown = text.split(command, 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    bpf_leak_series("leak")                         # what `python3 -m ...simulate leak` writes
    dumps = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "leak").glob("*.txt"))
    code, out, _ = _run(capsys, "diff", *dumps, "--size", "64M", "--top", "5")
    assert code == 0 and out == shown
