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
from pyvmalloc.versions import DEFAULT_KERNEL
from pyvmalloc.vmalloc.allocator import ALLOCATORS

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``replay`` subcommand."""
    p = subparsers.add_parser(
        "replay", description=__doc__,
        help="replay a vmalloc ftrace capture on the kernels' address-space allocators",
        epilog="Capture: echo 1 > /sys/kernel/tracing/events/vmalloc/enable; ...; "
               "cat /sys/kernel/tracing/trace > TRACE.  Host times are of this run: compare "
               "the allocators, not hosts.",
    )
    p.add_argument("trace", metavar="TRACE", help="ftrace text with vmalloc events ('-': stdin)")
    p.add_argument("--arch", default="x86_64", help="machine profile to replay on (default x86_64)")
    p.add_argument("--allocator", choices=["all", "both", *ALLOCATORS], default="both",
                   help="which allocator replays the trace: both (list and kva, the default), "
                        "all, or one of them")
    p.add_argument("--kernel", default=None,
                   help=f"Linux version the machines run (default {DEFAULT_KERNEL})")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Replay the trace; print the report; returns the exit code."""
    source = "<stdin>" if args.trace == "-" else args.trace
    try:
        events = parse_trace(read_text(args.trace), source)
        allocators = {"both": ["list", "kva"], "all": list(ALLOCATORS)}.get(
            args.allocator, [args.allocator])
        report = replay(events, args.arch, allocators, source, kernel=args.kernel)
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
