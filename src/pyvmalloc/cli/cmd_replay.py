"""``pyvmalloc replay TRACE``: replay an ftrace capture of the vmalloc events on the list and kva allocators.

TRACE is the text of ``/sys/kernel/tracing/trace`` (or ``trace-cmd report``) with the 6.2+
``vmalloc`` events enabled, or what ``Machine.trace()`` wrote; ``-`` reads standard input.
With ``--exact`` the whole trace (from boot) replays on one machine of ``--kernel`` through the
model's own allocator and vmap nodes, and one line says how many traced addresses came out the
same (aligned requests apart; those between the oracle probe's script marks apart too).
Any error is one line ``FILE[:LINE]: what is wrong`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pyvmalloc.analysis.replay import (
    exact_to_json,
    format_exact,
    format_report,
    mark_windows,
    replay,
    replay_exact,
    to_json,
)
from pyvmalloc.cli.cmd_analyze import read_text
from pyvmalloc.cli.common import one_line
from pyvmalloc.errors import FormatError, PyvmallocError
from pyvmalloc.formats.trace import parse_trace
from pyvmalloc.sizes import parse_size
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
    p.add_argument("--exact", action="store_true",
                   help="replay the whole trace through the model on one machine of --kernel "
                        "(vmap nodes on the events' CPUs, lazy frees and purges as traced) and "
                        "count the traced addresses it reproduces")
    p.add_argument("--cpus", type=int, default=None,
                   help="with --exact: CPUs of the machine (default: the trace's highest CPU + 1)")
    p.add_argument("--percpu", default=None, metavar="SIZE",
                   help="with --exact: place the first percpu chunk's area of SIZE (e.g. 2M) as "
                        "pcpu_get_vm_areas does, after the chunk's obj_exts allocation")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Replay the trace; print the report; returns the exit code."""
    source = "<stdin>" if args.trace == "-" else args.trace
    try:
        text = read_text(args.trace)
        events = parse_trace(text, source)
        if args.exact:
            percpu = None if args.percpu is None else parse_size(args.percpu)
            exact = replay_exact(events, args.kernel, args.arch, args.cpus, percpu,
                                 mark_windows(text), source)
            if args.json:
                print(json.dumps(exact_to_json(exact), indent=2))
            else:
                sys.stdout.write(format_exact(exact))
            return 0
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
