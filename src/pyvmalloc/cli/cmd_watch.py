"""``pyvmalloc watch [SOURCE]``: sample /proc/vmallocinfo (or a folder of dumps) into a store, live summary and alerts."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from rich.console import Console
from rich.live import Live

from pyvmalloc.cli.monitor_args import count, duration, guarded, size
from pyvmalloc.errors import ConfigError
from pyvmalloc.monitor.live import panel, plain_line
from pyvmalloc.monitor.sample import Sample
from pyvmalloc.monitor.store import Store
from pyvmalloc.monitor.watch import Alert, WatchConfig, Watcher

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``watch`` subcommand."""
    p = subparsers.add_parser(
        "watch", help="sample /proc/vmallocinfo into a store, with a live summary and alerts",
        description="Sample /proc/vmallocinfo (or a saved dump, read afresh each time) at an "
                    "interval, or each dump of a folder oldest first, into an SQLite store that "
                    "`diff --store` and `history` read; show a live summary; alert when the "
                    "largest hole falls under --min-hole or a caller grows at each of the last "
                    "--grow-alert samples. Exit code 1 when an alert was raised, 0 otherwise; "
                    "Ctrl-C (or SIGTERM) stops with every sample saved.")
    p.add_argument("source", metavar="SOURCE", nargs="?", default="/proc/vmallocinfo",
                   help="a vmallocinfo file (default /proc/vmallocinfo) or a folder of dumps")
    p.add_argument("--store", metavar="FILE", default="vmalloc-watch.db",
                   help="the SQLite store to append to (default vmalloc-watch.db)")
    p.add_argument("--meminfo", metavar="FILE",
                   help="the meminfo to read with each sample (default: /proc/meminfo beside "
                        "/proc/vmallocinfo, NAME.meminfo beside NAME.txt)")
    p.add_argument("--interval", metavar="DURATION", type=duration, default=10.0,
                   help="time between samples (10s; 0.5s, 5m, 1h)")
    p.add_argument("--count", metavar="N", type=count, help="stop after N samples")
    p.add_argument("--follow", action="store_true",
                   help="with a folder: keep looking for new dumps at the interval")
    p.add_argument("--min-hole", metavar="SIZE", type=size,
                   help="alert when the largest hole of the vmalloc range or module area "
                        "falls under SIZE (needs real addresses)")
    p.add_argument("--grow-alert", metavar="N", type=count,
                   help="alert when a caller grew at each of the last N samples")
    p.add_argument("--exec", metavar="CMD", dest="command",
                   help="run CMD (a shell command line) at each alert, with $PYVMALLOC_ALERT "
                        "and $PYVMALLOC_ALERT_KIND set")
    p.add_argument("--exit-on-alert", action="store_true", help="stop at the first alert")
    p.add_argument("--top", metavar="N", type=count, default=10, help="callers shown (10)")
    p.add_argument("--plain", action="store_true",
                   help="one line per sample, even on a terminal (the default elsewhere)")
    p.set_defaults(func=guarded("watch", run))


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGINT and SIGTERM (systemd, docker stop, kill) stop the watch as Ctrl-C does.  SIGINT is
    set too because a shell starts a background job with SIGINT ignored, and Python keeps an
    ignored SIGINT ignored: ``kill -INT`` would then do nothing."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(args: argparse.Namespace) -> int:
    """Watch until stopped; 1 if an alert was raised, 0 if not, 2 with one line on bad input."""
    if args.count == 0:
        args.count = None
    if args.source == "-":
        raise ConfigError("watch reads SOURCE again at every interval: give a file or a folder, "
                          "not '-' (for one dump from standard input: `pyvmalloc metrics -`)")
    cfg = WatchConfig(source=args.source, meminfo=args.meminfo, interval=args.interval,
                      count=args.count, follow=args.follow, min_hole=args.min_hole,
                      grow_steps=args.grow_alert or None, command=args.command,
                      exit_on_alert=args.exit_on_alert)
    os.stat(args.source)   # a missing source is said before the store is made
    console = Console(highlight=False)
    live_mode = console.is_terminal and not args.plain
    seen: list[Alert] = []
    with Store(args.store) as store, _signals_stop():
        live = Live(console=console, refresh_per_second=4, transient=False) if live_mode else None

        def on_sample(s: Sample, recent: list[Sample], alerts: list[Alert]) -> None:
            seen.extend(alerts)
            if live is not None:
                live.update(panel(s, recent, seen, args.store, args.top))
            else:
                print(plain_line(s, recent), flush=True)

        def on_alert(alert: Alert) -> None:
            # The live panel shows alerts itself (a line on stderr would tear its redraw);
            # they go to stderr when it closes, to stay in the terminal's scrollback.
            if live is None:
                print(alert.line, file=sys.stderr, flush=True)

        watcher = Watcher(cfg, store, on_sample, on_alert)
        if live is not None:
            with live:
                result = watcher.run()
            for alert in result.alerts:
                print(alert.line, file=sys.stderr)
        else:
            result = watcher.run()
        total = len(store)
    print(f"pyvmalloc watch: stopped ({result.stopped}): {result.samples} samples added to "
          f"{args.store} ({total} in all), {len(result.alerts)} alert{'' if len(result.alerts) == 1 else 's'}",
          file=sys.stderr)
    return 1 if result.alerts else 0
