"""``pyvmalloc history STORE``: per-caller series of a watch store, in the terminal, as a PNG, or by SQL."""

from __future__ import annotations

import argparse
from typing import Any

from pyvmalloc.cli.monitor_args import count, guarded, moment
from pyvmalloc.errors import ConfigError
from pyvmalloc.monitor.history import SORTS, format_history, format_rows, load_history, plot_history
from pyvmalloc.monitor.store import query

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``history`` subcommand."""
    p = subparsers.add_parser(
        "history", help="per-caller series of a watch store: terminal, PNG, SQL",
        description="Read a store written by `pyvmalloc watch`: one row per caller with its "
                    "change, growth per hour and a sparkline; --plot draws the series; --sql runs "
                    "a query on the store (opened read-only). Tables: samples, callers, names, "
                    "kinds; the view caller_series(sample, t, time, caller, areas, bytes).")
    p.add_argument("store", metavar="STORE", help="the SQLite store of a watch")
    p.add_argument("--caller", metavar="TEXT", action="append", default=[],
                   help="only callers whose name contains TEXT (may be repeated)")
    p.add_argument("--top", metavar="N", type=count, default=10, help="callers shown (10)")
    p.add_argument("--sort", choices=SORTS, default="bytes",
                   help="largest now first (bytes) or fastest growing first (growth)")
    p.add_argument("--since", metavar="TIME", type=moment,
                   help="samples from this time on (ISO 8601 or epoch seconds)")
    p.add_argument("--last", metavar="N", type=count, help="the last N samples")
    p.add_argument("--width", metavar="N", type=count, default=40,
                   help="samples per sparkline, the latest (40)")
    p.add_argument("--plot", metavar="FILE.png", help="also draw the series into FILE.png")
    p.add_argument("--sql", metavar="QUERY", help="run one SQL query on the store instead")
    p.set_defaults(func=guarded("history", run))


def run(args: argparse.Namespace) -> int:
    """Print (and draw) the history; 0, or 2 with one line on bad input."""
    if args.sql is not None:
        if args.plot or args.caller or args.since is not None or args.last is not None:
            raise ConfigError("--sql runs alone: put the filters in the query")
        columns, rows = query(args.store, args.sql)
        print(format_rows(columns, rows), end="")
        return 0
    if args.plot:
        from pyvmalloc.cli.cmd_analyze import _check_plot

        # A folder for --plot was matplotlib's "format '' is not supported".
        _check_plot(args.plot)
    h = load_history(args.store, args.since, args.last)
    text = format_history(h, args.top, args.sort, args.caller, args.width)
    if args.plot:
        plot_history(h, args.plot, args.top, args.sort, args.caller)
        text += f"plot written to {args.plot}\n"
    print(text, end="")
    return 0
