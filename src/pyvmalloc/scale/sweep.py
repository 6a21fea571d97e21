"""A sweep on Dask: every run of a spec not yet in the results, written to Parquet as they finish.

Each run is one task (keyed by its ``run_id`` and the sweep's token).  A worker that dies mid-run loses nothing: the
scheduler gives its task to another worker, and the run, being deterministic, gives the same row
there; the driver takes each task's result once (``as_completed``) and the tables keep one row
per ``run_id``, so nothing is duplicated either.  Results are appended in parts every few
seconds, so a sweep stopped at any point is restarted by running it again: finished runs are
skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
import uuid
from dataclasses import dataclass, field
from typing import Any

from pyvmalloc.scale.runner import RUN_COLUMNS, SERIES_COLUMNS, execute
from pyvmalloc.scale.spec import RunSpec, SweepSpec
from pyvmalloc.scale.store import Table, schema

__all__ = ["SweepOutcome", "run_sweep", "runs_table", "series_table"]



def runs_table(out: str) -> Table:
    """The runs table (one row per run) of the results in folder ``out``."""
    return Table(out, "runs", schema(RUN_COLUMNS))


def series_table(out: str) -> Table:
    """The series table (one row per sample of each run) of the results in folder ``out``."""
    return Table(out, "series", schema(SERIES_COLUMNS), key=("run_id", "step"))


@dataclass
class SweepOutcome:
    """What a sweep did: runs in the spec, skipped as already done, run now, refused by the
    model (rows with status "error"), lost (tasks Dask gave up on), host seconds."""

    total: int
    skipped: int
    ran: int
    errors: int
    lost: int
    seconds: float
    lost_why: list[str] = field(default_factory=list)   # each lost task's status and error

    @property
    def runs_per_second(self) -> float:
        """Runs finished per host second in this sweep."""
        return self.ran / self.seconds if self.seconds else 0.0


# How often one run whose result died with its worker is awaited again before it counts as lost.
_LOST_RETRIES = 3


def run_sweep(spec: SweepSpec, out: str, client: Any, progress: bool = False,
              on_result: Callable[[int], None] | None = None, flush_rows: int = 50,
              flush_seconds: float = 2.0) -> SweepOutcome:
    """Run every run of ``spec`` not already in ``out`` on ``client``'s cluster.

    ``progress`` shows a progress bar (rich) on the terminal; ``on_result(n)`` is called after
    the n-th result arrives (tests use it to kill a worker, or stop the sweep, mid-sweep).
    Results are written every ``flush_rows`` runs or ``flush_seconds``, whichever comes first.
    """
    from dask.distributed import as_completed

    t0 = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    runs_t, series_t = runs_table(out), series_table(out)
    done = runs_t.keys()
    todo: dict[str, RunSpec] = {}
    for run in spec.runs:
        if run.run_id not in done:
            todo.setdefault(run.run_id, run)
    skipped = len({r.run_id for r in spec.runs}) - len(todo)
    # Each trace travels to the workers once, not once per run, and to every worker, so that
    # a worker that dies does not take the only copy with it.
    used = {r.workload for r in todo.values()}
    traces = {name: client.scatter(text, broadcast=True) for name, text in spec.traces.items()
              if name in used}
    # Keys name the run and this sweep: a task of an earlier sweep that is still being
    # cancelled (its driver died) cannot be taken for this one's.
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(execute, run, traces.get(run.workload), key=f"run-{rid}-{token}",
                             pure=False) for rid, run in todo.items()]

    rows: list[dict[str, Any]] = []
    points: list[dict[str, Any]] = []
    ran = errors = lost = 0
    lost_why: list[str] = []
    last = time.monotonic()

    def flush() -> None:
        nonlocal rows, points, last
        # Series first: a run is finished once its row is written, never before its series.
        series_t.append(points)
        runs_t.append(rows)
        rows, points, last = [], [], time.monotonic()

    bar = _bar(len(futures), spec.name) if progress else None
    retried: dict[str, int] = {}
    try:
        pending = as_completed(futures)  # type: ignore[no-untyped-call]
        for fut in pending:
            if fut.status == "lost" and retried.get(fut.key, 0) < _LOST_RETRIES:
                # The run finished, but the worker holding its row died before the row was
                # fetched: the scheduler computes it again while this future wants it, so wait
                # for it once more rather than count a run that Dask still brings back.
                retried[fut.key] = retried.get(fut.key, 0) + 1
                pending.add(fut)  # type: ignore[no-untyped-call]
                continue
            if fut.status != "finished":
                lost += 1          # KilledWorker after repeated deaths: the restart retries it
                lost_why.append(f"{fut.key}: {fut.status} {fut.exception() if fut.status == 'error' else ''}".strip())
            else:
                row, series = fut.result()
                rows.append(row)
                points.extend(series)
                ran += 1
                errors += row["status"] != "ok"
            fut.release()
            if bar is not None:
                bar[0].advance(bar[1])
            if len(rows) >= flush_rows or time.monotonic() - last > flush_seconds:
                flush()
            if on_result is not None:
                on_result(ran + lost)
        flush()
    finally:
        if bar is not None:
            bar[0].stop()
        client.cancel([f for f in futures if not f.done()])   # the driver stops: so do its tasks
    runs_t.compact(sort_by=("run_id",))
    series_t.compact(sort_by=("run_id", "step"))
    return SweepOutcome(len(spec.runs), skipped, ran, errors, lost, time.perf_counter() - t0,
                        lost_why)


def _bar(total: int, name: str) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    # On stderr: stdout carries the summary line, which scripts read.
    p = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                 TimeRemainingColumn(), console=Console(stderr=True))
    task = p.add_task(f"sweep {name}", total=total)
    p.start()
    return p, task
