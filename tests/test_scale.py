"""Sweeps and fleets on a real Dask cluster: two worker processes on loopback, shared by the module.

The rows a cluster gives are the rows the runs give in this process; a restarted sweep skips
what it has; a worker killed mid-sweep neither loses nor duplicates a run.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("distributed")
pytest.importorskip("pyarrow")

from pyvmalloc.cli.main import main
from pyvmalloc.scale.engine import local_cluster, worker_code
from pyvmalloc.scale.runner import HOST_COLUMNS, execute
from pyvmalloc.scale.spec import parse_spec
from pyvmalloc.scale.sweep import run_sweep, runs_table, series_table

SPEC = """
[sweep]
name = "tiny"
arch = "i386"
steps = 20
samples = 3
[axes]
kernels = ["2.6.22", "6.12"]
workloads = ["module_churn", "ioremap_churn", "test_vmalloc:fix_size_alloc_test"]
seeds = 2
[axes.params]
lazy_max_pages = [64, 4096]
"""


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import dask
    from dask.distributed import Client

    # The worker-kill test leaves a dead address behind; a peer or the client that still tries
    # it should give up in seconds, not after the default 30 s connect timeout.
    with dask.config.set({"distributed.comm.timeouts.connect": "5s"}), \
            local_cluster(2) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def expected() -> dict[str, dict[str, Any]]:
    """Every run of SPEC executed in this process: the rows a local run gives."""
    rows = {}
    for run in parse_spec(SPEC).runs:
        row, _ = execute(run)
        rows[row["run_id"]] = _deterministic(row)
    return rows


def _deterministic(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in HOST_COLUMNS}


def _rows(out: str) -> list[dict[str, Any]]:
    return [_deterministic(r) for r in runs_table(out).read().to_pylist()]


def test_workers_run_this_checkout(client: Any) -> None:
    import pyvmalloc

    here = os.path.abspath(pyvmalloc.__file__)
    assert set(worker_code(client).values()) == {here}


def test_cluster_rows_equal_local_rows(client: Any, expected: dict[str, dict[str, Any]],
                                       tmp_path: Any) -> None:
    spec = parse_spec(SPEC)
    done = run_sweep(spec, str(tmp_path), client)
    assert (done.total, done.ran, done.lost) == (24, 24, 0)
    rows = _rows(str(tmp_path))
    assert {r["run_id"]: r for r in rows} == expected
    assert len(rows) == 24
    # The series: one row per sample and run (the start, then `samples` points).
    series = series_table(str(tmp_path)).read().to_pylist()
    assert {p["run_id"] for p in series} == set(expected)
    assert all(r["status"] == "ok" for r in rows)
    assert any(r["tlb_flushes"] for r in rows) and any(r["purge_runs"] for r in rows)


class Stop(Exception):
    """The driver dies mid-sweep."""


def test_restart_skips_finished_runs(client: Any, expected: dict[str, dict[str, Any]],
                                     tmp_path: Any) -> None:
    spec = parse_spec(SPEC)

    def die(n: int) -> None:
        if n == 10:
            raise Stop

    with pytest.raises(Stop):    # written every 4 runs: 8 rows are on disk when it dies
        run_sweep(spec, str(tmp_path), client, on_result=die, flush_rows=4, flush_seconds=60)
    assert len(_rows(str(tmp_path))) == 8
    again = run_sweep(spec, str(tmp_path), client)
    assert (again.skipped, again.ran) == (8, 16)
    assert run_sweep(spec, str(tmp_path), client).ran == 0
    rows = _rows(str(tmp_path))
    assert len(rows) == 24 and {r["run_id"]: r for r in rows} == expected


def test_worker_killed_mid_sweep(client: Any, expected: dict[str, dict[str, Any]],
                                 tmp_path: Any) -> None:
    spec = parse_spec(SPEC)
    pids = client.run(os.getpid)
    killed: list[int] = []

    def kill_one(n: int) -> None:
        if n == 3 and not killed:
            info = client.processing()   # worker -> the tasks it holds now
            busy = [w for w, tasks in info.items() if tasks] or list(pids)
            killed.append(pids[busy[0]])
            os.kill(pids[busy[0]], signal.SIGKILL)

    done = run_sweep(spec, str(tmp_path), client, on_result=kill_one)
    assert killed, "no worker was killed"
    assert (done.ran, done.lost, done.lost_why) == (24, 0, [])
    rows = _rows(str(tmp_path))
    assert len(rows) == len({r["run_id"] for r in rows}) == 24
    assert {r["run_id"]: r for r in rows} == expected
    client.wait_for_workers(2, timeout=30)   # the nanny brings the worker back for the others
    assert killed[0] not in client.run(os.getpid).values()


def test_cli_sweep_on_scheduler_and_report(client: Any, tmp_path: Any, capsys: Any) -> None:
    spec = tmp_path / "small.toml"
    trace = os.path.join(os.path.dirname(__file__), "..", "examples", "trace", "i386-kva.trace")
    spec.write_text(SPEC.replace('seeds = 2', 'seeds = 1').replace(
        '"module_churn", "ioremap_churn"', f'"trace:{os.path.abspath(trace)}"').replace(
        '"2.6.22", ', '"2.6.22", "6.1", '))
    out = tmp_path / "out"
    addr = client.scheduler.address
    assert main(["sweep", str(spec), "--out", str(out), "--scheduler", addr, "--no-progress"]) == 0
    said = capsys.readouterr().out
    assert "12 runs, 0 already done, 12 run now" in said and "on 2 workers" in said
    assert main(["sweep-report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "test_vmalloc:fix_size_alloc_test" in table and "6.12 kva-rbtree" in table
    assert (out / "plots" / "test_vmalloc_fix_size_alloc_test.png").stat().st_size > 10_000


def test_fleet_ranks_injected_devices_on_top(client: Any, tmp_path: Any, capsys: Any) -> None:
    from pyvmalloc.scale.fleet_gen import fleet_plan, load_bases, write_fleet

    examples = os.path.join(os.path.dirname(__file__), "..", "examples", "vmallocinfo")
    plan = fleet_plan(load_bases(examples), devices=24, at_risk=3, leaks=1, seed=7)
    fleet = tmp_path / "fleet"
    assert write_fleet(plan, str(fleet), client, per_archive=8) == 24 + 3   # a leak leaves 4
    injected = {d.name for d in plan if d.kind != "healthy"}
    out = tmp_path / "report"
    addr = client.scheduler.address
    assert main(["fleet", str(fleet / "reports"), str(fleet / "*.tar.gz"), "--out", str(out),
                 "--scheduler", addr, "--no-progress", "--top", "6"]) == 0
    table = capsys.readouterr().out
    top = [line.split()[1].split("@")[0] for line in table.splitlines()[2:6]]
    assert set(top) == injected
    assert "leak suspect: leaky_stats_grow" in table and "27 dumps" in table
    import pyarrow.parquet as pq

    devices = pq.read_table(str(out / "devices")).to_pylist()   # the folder read as one table
    assert len(devices) == 27
    ranked = sorted((r for r in devices if r["rank"]), key=lambda r: r["rank"])
    assert {r["device"] for r in ranked[:4]} == injected
    assert (out / "fleet.html").read_text().count("data:image/png;base64,") == 2
