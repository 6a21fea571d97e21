"""``pyvmalloc sweep SPEC`` and ``pyvmalloc sweep-report OUT``: allocator sweeps on Dask.

``sweep`` runs the cross product a TOML spec asks for (kernels x allocators x workloads x seeds
x parameters) on every local core, or on the cluster of ``--scheduler tcp://HOST:8786``, and
writes ``OUT/runs`` (one row per run) and ``OUT/series`` (fragmentation over each run) as
Parquet; run again, it skips the runs already there.  ``sweep-report`` prints the comparison
table and writes one PNG per workload.  Errors are one line and exit code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from pyvmalloc.cli.common import one_line
from pyvmalloc.errors import PyvmallocError
from pyvmalloc.scale.engine import add_engine_args

__all__ = ["fail", "register", "run_report", "run_sweep_cmd"]

SPEC_EXAMPLE = """\
[sweep]
name = "lazy"          # default: the spec's file name
arch = "i386"          # machine profile (default x86_64); also ram, cpus, steps, samples
steps = 2000
[axes]
kernels = ["2.6.22", "4.19", "6.1", "6.12"]
allocators = ["default", "list"]
workloads = ["module_churn", "thread_stacks", "bpf_jit", "ioremap_churn", "server_day",
             "test_vmalloc:random_size_alloc_test", "trace:boot.trace"]
seeds = 5              # or a list
[axes.params]
lazy_max_pages = [512, 8192]
"""


def register(sub: Any) -> None:
    """Add the ``sweep`` and ``sweep-report`` subcommands."""
    p = sub.add_parser("sweep", description=__doc__, help="run an allocator sweep on Dask",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="A spec:\n\n" + SPEC_EXAMPLE)
    p.add_argument("spec", metavar="SPEC", help="the sweep's TOML file")
    p.add_argument("--out", default=None, help="result folder (default: SPEC's name + .sweep)")
    add_engine_args(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="list how many runs, run nothing")
    p.set_defaults(func=run_sweep_cmd)
    r = sub.add_parser("sweep-report", help="compare a sweep's runs: a table and PNG plots",
                       description="The comparison table of a sweep's results (medians over "
                                   "seeds) and one PNG per workload.")
    r.add_argument("out", metavar="OUT", help="the sweep's result folder")
    r.add_argument("--plots", default=None, metavar="DIR",
                   help="where the PNGs go (default OUT/plots); 'none' for no plots")
    r.set_defaults(func=run_report)


def fail(cmd: str, text: str) -> int:
    """Print ``pyvmalloc CMD: text`` as one line on stderr; exit code 2."""
    print(one_line(f"pyvmalloc {cmd}: {text}"), file=sys.stderr)
    return 2


def run_sweep_cmd(args: argparse.Namespace) -> int:
    """Run the sweep; print what it did and the comparison; the exit code."""
    from pyvmalloc.scale.engine import check_options, require
    from pyvmalloc.scale.spec import load_spec

    try:
        require()
        check_options(args.scheduler, args.workers)
        spec = load_spec(args.spec)
        out = args.out or os.path.splitext(args.spec)[0] + ".sweep"
        if args.dry_run:
            print(f"{spec.name}: {len(spec.runs)} runs -> {out}")
            return 0
        from pyvmalloc.scale.engine import open_client
        from pyvmalloc.scale.sweep import run_sweep

        with open_client(args.scheduler, args.workers) as client:
            nworkers = len(client.scheduler_info().get("workers", {}))
            progress = not args.no_progress and sys.stderr.isatty()
            done = run_sweep(spec, out, client, progress=progress)
    except PyvmallocError as exc:
        return fail("sweep", str(exc))
    except OSError as exc:
        return fail("sweep", f"{exc.filename or args.spec}: {exc.strerror or exc}")
    print(f"{spec.name}: {done.total} runs, {done.skipped} already done, {done.ran} run now "
          f"({done.errors} refused by the model, {done.lost} lost) in {done.seconds:.1f} s "
          f"on {nworkers} workers: {done.runs_per_second:.1f} runs/s -> {out}")
    if done.errors:
        # A count alone leaves the user guessing (a trace that is not one, a kernel without
        # that arch): say why, once per distinct reason.
        from pyvmalloc.scale.sweep import runs_table

        reasons = sorted({f"{r['workload']}: {r['error']}" for r in runs_table(out).read().to_pylist()
                          if r["status"] != "ok"})
        print(f"{done.errors} runs refused by the model:", file=sys.stderr)
        for line in reasons[:5]:
            print(one_line(f"  {line}"), file=sys.stderr)
        if len(reasons) > 5:
            print(f"  ... {len(reasons) - 5} more reasons (the runs table's error column)",
                  file=sys.stderr)
    if done.lost:
        print(f"{done.lost} runs were lost (workers died repeatedly): run the sweep again to "
              f"finish them", file=sys.stderr)
        for why in done.lost_why[:5]:
            print(one_line(f"  {why}"), file=sys.stderr)
        return 1
    return 0


def run_report(args: argparse.Namespace) -> int:
    """Print the comparison table and write the plots; the exit code."""
    from pyvmalloc.scale.engine import require

    try:
        require()
        from pyvmalloc.scale.report import format_table, group_runs, plot_sweep
        from pyvmalloc.scale.sweep import runs_table, series_table

        if not os.path.isdir(os.path.join(args.out, "runs")):
            return fail("sweep-report", f"{args.out}: no sweep results here (no runs folder)")
        plots_dir = args.plots or os.path.join(args.out, "plots")
        if args.plots != "none" and os.path.exists(plots_dir) and not os.path.isdir(plots_dir):
            # Said before the table, not as "File exists" after it.
            return fail("sweep-report", f"--plots {plots_dir}: exists and is not a folder (the "
                                        f"PNGs go in a folder; 'none' for no plots)")
        rows = runs_table(args.out).read().to_pylist()
        groups = group_runs(rows)
        sys.stdout.write(format_table(groups))
        if args.plots != "none":
            series = series_table(args.out).read().to_pylist()
            plots = plot_sweep(groups, series, plots_dir)
            print(f"{len(plots)} plots: {', '.join(plots)}")
    except PyvmallocError as exc:
        return fail("sweep-report", str(exc))
    except OSError as exc:
        return fail("sweep-report", f"{exc.filename or args.out}: {exc.strerror or exc}")
    return 0
