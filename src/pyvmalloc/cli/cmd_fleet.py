"""``pyvmalloc fleet PATHS...``: the devices at risk among many ``/proc/vmallocinfo`` dumps, on Dask.

PATHS are files, folders, globs and tar archives of dumps or bug reports (``scale.fleet_input``
says what is read).  Every dump is summarised in parallel (locally on every core, or on the
cluster of ``--scheduler tcp://HOST:8786``), devices are grouped by kernel and arch and ranked by
the headroom of their largest hole against the requests typical for their group (leak suspects
where a device left a series).  Output: a table in the terminal, ``OUT/fleet.html`` with plots,
and ``OUT/devices`` (Parquet, one row per dump).  Errors are one line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from pyvmalloc.cli.cmd_sweep import fail
from pyvmalloc.errors import PyvmallocError
from pyvmalloc.scale.engine import add_engine_args

__all__ = ["register", "run"]



def register(sub: Any) -> None:
    """Add the ``fleet`` subcommand."""
    p = sub.add_parser("fleet", description=__doc__,
                       help="rank the devices at risk among many vmallocinfo dumps, on Dask")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="dump, bug report, folder, glob or tar archive")
    p.add_argument("--out", default="fleet-report", help="result folder (default fleet-report)")
    add_engine_args(p)
    p.add_argument("--top", type=int, default=20, help="devices shown in the terminal (default 20)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _fail(text: str) -> int:
    return fail("fleet", text)


def run(args: argparse.Namespace) -> int:
    """Analyse and rank the fleet; print the table; write the page and the Parquet table."""
    from pyvmalloc.scale.engine import check_options, require

    try:
        require()
        check_options(args.scheduler, args.workers)
        if not 0 <= args.top <= 100_000:
            return _fail(f"--top {args.top}: from 0 to 100000")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            return _fail(f"--out {args.out}: exists and is not a folder")
        from pyvmalloc.scale.engine import open_client
        from pyvmalloc.scale.fleet import DEVICE_COLUMNS, analyse_fleet
        from pyvmalloc.scale.fleet_input import collect
        from pyvmalloc.scale.fleet_report import format_ranking, write_html
        from pyvmalloc.scale.store import Table, schema

        t0 = time.perf_counter()
        found = collect(args.paths)
        if not found.dumps:
            return _fail(f"no vmallocinfo dump or bug report in {', '.join(args.paths)} "
                         f"({len(found.skipped)} other files)")
        with open_client(args.scheduler, args.workers) as client:
            nworkers = len(client.scheduler_info().get("workers", {}))
            bar = _bar(len(found.dumps)) if not args.no_progress and sys.stderr.isatty() else None
            try:
                rows = analyse_fleet(found.dumps, client,
                                     progress=None if bar is None else lambda n: bar[0].update(bar[1], completed=n))
            finally:
                if bar is not None:
                    bar[0].stop()
        seconds = time.perf_counter() - t0
        os.makedirs(args.out, exist_ok=True)
        table = Table(args.out, "devices", schema(DEVICE_COLUMNS), key=("device", "taken", "source"))
        table.clear()   # a new analysis replaces the last one's table
        table.append(rows)
        page = os.path.join(args.out, "fleet.html")
        write_html(rows, page, f"vmalloc fleet report: {len(found.dumps)} dumps")
    except PyvmallocError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or args.out}: {exc.strerror or exc}")
    sys.stdout.write(format_ranking(rows, args.top))
    ranked = sum(r["rank"] is not None for r in rows)
    at_risk = sum(bool(r["at_risk"]) or bool(r["leak_suspect"]) for r in rows if r["rank"])
    print(f"{len(rows)} dumps ({len(found.skipped)} other files skipped), {ranked} devices ranked, "
          f"{at_risk} at risk, in {seconds:.1f} s on {nworkers} workers "
          f"({len(rows) / seconds:.0f} dumps/s) -> {page}, {table.path}")
    return 0


def _bar(total: int) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    p = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                 console=Console(stderr=True))
    task = p.add_task("fleet", total=total)
    p.start()
    return p, task
