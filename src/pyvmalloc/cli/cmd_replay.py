"""``pyvmalloc replay TRACE``: replay an ftrace capture of the vmalloc events on the list and kva allocators.

TRACE is the text of ``/sys/kernel/tracing/trace`` (or ``trace-cmd report``) with the 6.2+
``vmalloc`` events enabled, or what ``Machine.trace()`` wrote; ``-`` reads standard input.
Any error is one line ``FILE[:LINE]: what is wrong`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pyvmalloc.analysis.replay import format_report, replay, to_json
from pyvmalloc.cli.cmd_analyze import read_text
from pyvmalloc.cli.common import one_line
from pyvmalloc.errors import FormatError, PyvmallocError
from pyvmalloc.formats.trace import parse_trace

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``replay`` subcommand."""
    p = subparsers.add_parser(
        "replay", description=__doc__,
        help="replay a vmalloc ftrace capture on the 2.6.22 list and 5.2+ kva allocators",
        epilog="Capture: echo 1 > /sys/kernel/tracing/events/vmalloc/enable; ...; "
               "cat /sys/kernel/tracing/trace > TRACE.  Host times are of this run: compare "
               "the allocators, not hosts.",
    )
    p.add_argument("trace", metavar="TRACE", help="ftrace text with vmalloc events ('-': stdin)")
    p.add_argument("--arch", default="x86_64", help="machine profile to replay on (default x86_64)")
    p.add_argument("--allocator", choices=["both", "list", "kva"], default="both",
                   help="which allocator replays the trace (default both)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Replay the trace; print the report; returns the exit code."""
    source = "<stdin>" if args.trace == "-" else args.trace
    try:
        events = parse_trace(read_text(args.trace), source)
        allocators = ["list", "kva"] if args.allocator == "both" else [args.allocator]
        report = replay(events, args.arch, allocators, source)
    except PyvmallocError as exc:
        # FormatError already reads "FILE:LINE: what"; the others name no file.
        prefix = "" if isinstance(exc, FormatError) else "pyvmalloc replay: "
        print(one_line(f"{prefix}{exc}"), file=sys.stderr)
        return 2
    except OSError as exc:
        name = exc.filename if exc.filename is not None else args.trace
        print(one_line(f"{os.fspath(name)}: {exc.strerror or exc}"), file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(to_json(report), indent=2))
    else:
        sys.stdout.write(format_report(report))
    return 0
