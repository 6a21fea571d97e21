"""One sweep run, start to end: boot the machine, run the workload, return its row and series.

This is the function Dask ships to the workers.  It is pure: the row depends only on the
``RunSpec`` (and a trace's text), never on the host, so a run re-executed after a worker died
gives the same row, and a cluster gives the rows a laptop gives.  The one host-dependent column,
``host_seconds``, is kept apart (``HOST_COLUMNS``) and left out of every comparison.
"""

from __future__ import annotations

import time
from typing import Any

from pyvmalloc.analysis.replay import replay
from pyvmalloc.analysis.summary import summarize
from pyvmalloc.facade import Machine
from pyvmalloc.formats.trace import parse_trace
from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo
from pyvmalloc.scale.counters import COUNTERS, work_counters
from pyvmalloc.scale.spec import PARAMS, RunSpec
from pyvmalloc.scale.workloads import WORKLOADS, Recorder, run_scenario, run_workload
from pyvmalloc.versions import allocator_for, resolve

__all__ = ["HOST_COLUMNS", "RUN_COLUMNS", "SERIES_COLUMNS", "execute"]

# The columns of the runs table, in order; every row has each (None where it does not apply).
RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "kernel", "allocator", "workload", "seed", *PARAMS, "status", "error",
    "calls", "failures", "areas", "used_bytes", "free_bytes", "largest_hole", "holes",
    "fragmentation", "lazy_pages", "top_caller", *COUNTERS, "node_locks", "host_seconds",
)
HOST_COLUMNS: tuple[str, ...] = ("host_seconds",)
SERIES_COLUMNS: tuple[str, ...] = ("run_id", "step", "calls", "failures", "free_bytes",
                                   "largest_hole", "holes", "fragmentation", "lazy_pages")


def _boot(run: RunSpec) -> Machine:
    p = dict(run.params)
    allocator = None if run.allocator == "default" else run.allocator
    m = Machine(arch=p["arch"], ram=p["ram"], cpus=p["cpus"], cmdline=p.get("cmdline", ""),
                allocator=allocator, lazy_purge=p.get("lazy_purge"), kernel=run.kernel,
                nr_vmap_nodes=p.get("nr_vmap_nodes"), vmap_pool_max_pages=p.get("vmap_pool_max_pages"))
    if "lazy_max_pages" in p and m.lazy_purge:
        m.lazy_max_pages = p["lazy_max_pages"]   # the knob: lazy_max_pages() as a parameter
    return m


def _final(m: Machine, row: dict[str, Any]) -> None:
    """The final state as ``pyvmalloc analyze`` would summarise the machine's vmallocinfo."""
    snap = parse_vmallocinfo(m.vmallocinfo(), "<run>")
    s = summarize(snap, m.profile.name, bounds=(m.VMALLOC_START, m.VMALLOC_END),
                  kernel=str(m.kernel), top=1)
    row.update(areas=s.areas, used_bytes=s.bytes,
               top_caller=s.top_callers[0].caller if s.top_callers else None)
    if s.hole_stats is not None:
        row.update(free_bytes=s.hole_stats.total, largest_hole=s.hole_stats.largest,
                   holes=s.hole_stats.count, fragmentation=s.fragmentation)
    row["lazy_pages"] = int(m.stats()["lazy.pending_pages"])
    row.update(work_counters(m))


def _trace_run(run: RunSpec, text: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """A trace replayed on the run's allocator (``analysis.replay``: its own machine)."""
    p = dict(run.params)
    name = run.allocator if run.allocator != "default" else allocator_for(resolve(run.kernel))
    report = replay(parse_trace(text, run.workload), p["arch"], [name], run.workload,
                    kernel=run.kernel)
    res = report.results[name]
    row.update(calls=res.allocs, failures=res.failures, tlb_flushes=res.tlb_flushes,
               purge_runs=res.purges, purged_areas=res.purged_areas)
    if res.holes is not None:
        row.update(free_bytes=res.holes.total, largest_hole=res.holes.largest,
                   holes=res.holes.count, fragmentation=res.fragmentation)
    return [{"step": len(report.results[name].addresses) - 1, "calls": res.allocs,
             "failures": res.failures, "free_bytes": row["free_bytes"],
             "largest_hole": row["largest_hole"], "holes": row["holes"],
             "fragmentation": row["fragmentation"], "lazy_pages": None}]


def execute(run: RunSpec, trace_text: str | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run ``run``; return its row (``RUN_COLUMNS``) and its series rows (``SERIES_COLUMNS``).

    A run the model refuses (a call its kernel does not have, a configuration it cannot boot)
    is a row with ``status="error"`` and the reason, not an exception: a sweep goes on.
    """
    t0 = time.perf_counter()
    row: dict[str, Any] = dict.fromkeys(RUN_COLUMNS)
    p = dict(run.params)
    row.update(run_id=run.run_id, kernel=run.kernel, allocator=run.allocator,
               workload=run.workload, seed=run.seed, status="ok")
    row.update({k: p.get(k) for k in PARAMS})
    series: list[dict[str, Any]] = []
    try:
        kind, _, arg = run.workload.partition(":")
        if kind == "trace":
            series = _trace_run(run, trace_text or "", row)
        else:
            m = _boot(run)
            row["allocator"] = m.allocator_name if run.allocator == "default" else run.allocator
            if not m.lazy_purge:
                # No lazy purge (2.6.22, or lazy_purge = false): the knob turned nothing, and a
                # row that names a value would read as a configuration of its own.
                row["lazy_max_pages"] = None
            rec = Recorder(p["steps"], run.samples)
            if kind == "test_vmalloc":
                run_scenario(arg, m, run.seed, rec)
            else:
                run_workload(run.workload if run.workload in WORKLOADS else "", m, run.seed, rec)
            row.update(calls=rec.calls, failures=rec.failures)
            _final(m, row)
            series = rec.series
    except Exception as exc:  # any refusal (ConfigError, ValueError, a BUG) is the run's result
        row.update(status="error", error=f"{type(exc).__name__}: {exc}")
    row["host_seconds"] = round(time.perf_counter() - t0, 6)
    for point in series:
        point["run_id"] = run.run_id
    return row, [{k: point.get(k) for k in SERIES_COLUMNS} for point in series]
