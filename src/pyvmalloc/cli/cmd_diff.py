"""``pyvmalloc diff OLD NEW [NEWER...]``: what appeared, disappeared and grew between dumps, rates and leak suspects."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pyvmalloc.cli.monitor_args import count, duration, guarded, moment, moments, sizes
from pyvmalloc.errors import ConfigError
from pyvmalloc.monitor.diff import format_diff, format_series, series, series_to_json
from pyvmalloc.monitor.sample import Sample, read_sample
from pyvmalloc.monitor.store import Store

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``diff`` subcommand."""
    p = subparsers.add_parser(
        "diff", help="compare /proc/vmallocinfo dumps over time: changes, rates, leak suspects",
        description="Compare two or more /proc/vmallocinfo dumps (or a watch store): what "
                    "appeared, disappeared and grew by caller and kind, growth per hour, leak "
                    "suspects (callers that only grow), and the trend of the largest hole. "
                    "A FILE.meminfo next to a dump is read with it. Hashed addresses work: "
                    "areas are matched by their hashed pair within one boot.")
    p.add_argument("dumps", metavar="DUMP", nargs="*",
                   help="dumps in time order (a saved /proc/vmallocinfo, or the live file)")
    p.add_argument("--store", metavar="FILE", help="read the samples of a watch store instead")
    p.add_argument("--since", metavar="TIME", type=moment,
                   help="with --store: samples from this time on (ISO 8601 or epoch seconds)")
    p.add_argument("--last", metavar="N", type=count, help="with --store: the last N samples")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--times", metavar="T,T,...", type=moments,
                      help="the dumps' times, one each (default: the files' modification times)")
    when.add_argument("--interval", metavar="DURATION", type=duration,
                      help="the dumps were taken this far apart (10m, 1h), the first at its "
                           "file's time")
    p.add_argument("--size", metavar="SIZE[,SIZE...]", type=sizes, default=[],
                   help="request sizes (4M, 64M): when would each stop fitting in the largest "
                        "hole at this rate")
    p.add_argument("--top", metavar="N", type=count, default=10, help="callers listed (10)")
    p.add_argument("--steps", action="store_true", help="also show each dump against the next")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=guarded("diff", run))


def load(args: argparse.Namespace) -> list[Sample]:
    """The samples the arguments name, with their times."""
    if args.store:
        if args.dumps or args.times or args.interval:
            raise ConfigError("give dumps or --store, not both (--times/--interval are for dumps)")
        since = args.since
        with Store(args.store, readonly=True) as store:
            found = store.samples(since=since, last=args.last)
        if len(found) < 2:
            raise ConfigError(f"{args.store}: {len(found)} sample(s) there"
                              f"{' in that span' if since or args.last else ''}; a diff needs two")
        return found
    if args.since or args.last is not None:
        raise ConfigError("--since and --last read a --store")
    if len(args.dumps) < 2:
        raise ConfigError("give at least two dumps (OLD NEW [NEWER...]) or --store FILE")
    if args.dumps.count("-") > 1:
        raise ConfigError("standard input ('-') holds one dump: give it once")
    if args.times is not None and len(args.times) != len(args.dumps):
        raise ConfigError(f"--times gives {len(args.times)} times for {len(args.dumps)} dumps")
    if args.times is not None and any(b <= a for a, b in zip(args.times, args.times[1:])):
        # Times the user gives are the dumps' order: a step back in time gives negative rates.
        raise ConfigError("--times must increase, one time per dump in the order the dumps are given")
    out: list[Sample] = []
    for i, path in enumerate(args.dumps):
        t = args.times[i] if args.times is not None else None
        s = read_sample(path, t)
        if args.interval is not None and out:
            s.t = out[0].t + i * args.interval
        out.append(s)
    return out


def run(args: argparse.Namespace) -> int:
    """Print the comparison; 0, or 2 with one line on bad input."""
    found = load(args)
    s = series(found, args.size)
    if args.json:
        print(json.dumps(series_to_json(s), indent=1))
        return 0
    print(format_series(s, args.top), end="")
    if args.steps:
        for d in s.steps:
            print()
            print(format_diff(d, args.top), end="")
    return 0
