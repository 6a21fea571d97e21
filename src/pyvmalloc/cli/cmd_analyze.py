"""``pyvmalloc analyze SNAPSHOT``: where did the vmalloc space go, read from /proc/vmallocinfo.

Any error is one line ``FILE[:LINE]: what is wrong`` on stderr and exit code 2.  An empty
snapshot is not an error: it parses to no areas (as the model's freshly booted machine prints),
and the report warns that a real kernel always has some.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pyvmalloc.analysis.summary import format_summary, summarize, to_json
from pyvmalloc.procfs.vmalloc_meminfo import parse_kernel_version
from pyvmalloc.errors import FormatError, PyvmallocError
from pyvmalloc.procfs.meminfo import parse_meminfo
from pyvmalloc.procfs.vmallocinfo import parse_vmallocinfo

__all__ = ["read_text", "register", "run"]


def read_text(path: str) -> str:
    """The text of ``path`` (``-``: standard input); FormatError naming the line of a NUL byte or
    of bytes that are not UTF-8; OSError for files that cannot be read."""
    if path == "-":
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        with open(path, "rb") as f:
            data = f.read()
        name = path
    nul = data.find(b"\x00")
    if nul >= 0:
        lineno = data.count(b"\n", 0, nul) + 1
        raise FormatError(f"{name}:{lineno}", "binary data (NUL byte), not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
        raise FormatError(f"{name}:{lineno}", "bytes that are not UTF-8 text") from None


def _top(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _kernel(text: str) -> str:
    try:
        parse_kernel_version(text)
    except PyvmallocError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    p = subparsers.add_parser(
        "analyze", help="summarize a /proc/vmallocinfo snapshot",
        description="Summarize a /proc/vmallocinfo snapshot: bytes by kind, top callers, pages "
                    "per node, free holes, fragmentation and VmallocUsed/VmallocChunk.")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="a /proc/vmallocinfo dump ('-': stdin)")
    p.add_argument("--meminfo", metavar="FILE",
                   help="the /proc/meminfo of the same machine (VmallocTotal gives VMALLOC_END)")
    p.add_argument("--arch", metavar="A",
                   help="x86_64, x86_64-la57, i386, i386-pae, arm or arm64 (default: guessed)")
    p.add_argument("--kernel", metavar="VERSION", type=_kernel,
                   help="kernel version, e.g. 3.4.5: whose VmallocUsed/VmallocChunk rules apply")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="draw the address space and hole sizes")
    p.add_argument("--top", metavar="N", type=_top, default=10, help="callers listed (10)")
    # The machine-model questions (--fits, --plan with --headroom, --cmdline for vmalloc=) attach
    # here once Machine.from_snapshot exists: they take the parsed snapshot and the summary.
    p.set_defaults(func=run)


def _analyze(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.snapshot == "-" else args.snapshot
    snapshot = parse_vmallocinfo(read_text(args.snapshot), source)
    meminfo = None
    if args.meminfo is not None:
        meminfo = parse_meminfo(read_text(args.meminfo), args.meminfo)
    summary = summarize(snapshot, args.arch, meminfo=meminfo, kernel=args.kernel, top=args.top)
    if args.plot:
        from pyvmalloc.viz.plot import plot_snapshot

        bounds = (summary.bounds.start, summary.bounds.end) if summary.bounds else None
        plot_snapshot(snapshot, args.plot, bounds, summary.holes, summary.page_size)
    if args.json:
        print(json.dumps(to_json(summary), indent=2))
    else:
        sys.stdout.write(format_summary(summary))
    if args.plot:
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``analyze``; every failure is one line on stderr and exit code 2."""
    try:
        return _analyze(args)
    except PyvmallocError as exc:
        # FormatError already reads "FILE:LINE: what"; the others name no file.
        prefix = "" if isinstance(exc, FormatError) else "pyvmalloc analyze: "
        print(f"{prefix}{exc}", file=sys.stderr)
    except BrokenPipeError:
        # The reader closed the pipe (``| head``): stop quietly, and keep Python's exit-time
        # flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        name = exc.filename if exc.filename is not None else args.snapshot
        print(f"{os.fspath(name)}: {exc.strerror or exc}", file=sys.stderr)
    except ValueError as exc:
        # matplotlib refuses a --plot suffix it cannot write ("Format 'xyz' is not supported").
        print(f"{args.plot or args.snapshot}: {exc}", file=sys.stderr)
    return 2
