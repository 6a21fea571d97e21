"""``pyvmalloc map``: the address space of a machine, a replay at a step or a dump, as one
self-contained HTML page (zoom, pan, hover; the page-table walk of one address)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pyvmalloc.cli.cmd_analyze import read_text
from pyvmalloc.course.mapping import DEMO_OPS, map_of_dump, map_of_ops, map_of_trace, ops_arg
from pyvmalloc.course.quiz import QuizConfig
from pyvmalloc.errors import ConfigError
from pyvmalloc.sizes import parse_size
from pyvmalloc.viz.html_map import render_page
from pyvmalloc.vmalloc.allocator import ALLOCATORS


def register(sub: Any) -> None:
    """Add the ``map`` subcommand."""
    p = sub.add_parser("map", help="draw the address space as a self-contained HTML page", description=__doc__)
    p.add_argument("-o", "--output", default="-", help="the HTML file to write (default: standard output)")
    p.add_argument("-A", "--ops", default=None,
                   help=f"operations to run first, as for `pyvmalloc quiz -A` (default {DEMO_OPS})")
    p.add_argument("--step", type=int, default=None,
                   help="stop the replay after this many operations (-A) or vmalloc events (--trace)")
    p.add_argument("--trace", default=None, help="replay an ftrace capture of events/vmalloc from boot instead")
    p.add_argument("--vmallocinfo", default=None, help="draw a real /proc/vmallocinfo dump instead")
    p.add_argument("--meminfo", default=None, help="the dump's /proc/meminfo (helps to place it)")
    p.add_argument("--walk", default=None, help="the address whose page-table walk is drawn, e.g. 0xffffc90000001000")
    p.add_argument("--arch", default=None, help="machine profile (default x86_64; a dump's own when it tells)")
    p.add_argument("--ram", default="128M", help="RAM size (default 128M)")
    p.add_argument("--kernel", default=None, help="Linux version (default 6.1)")
    p.add_argument("--allocator", default=None, choices=list(ALLOCATORS), help="override the allocator")
    p.set_defaults(func=run)


def _read(path: str) -> str:
    try:
        return read_text(path)
    except OSError as exc:
        raise ConfigError(f"{exc.filename}: {exc.strerror}") from None


def run(args: argparse.Namespace) -> int:
    """Write the page; returns the exit code."""
    walk = None
    if args.walk is not None:
        try:
            walk = int(args.walk, 0)
        except ValueError:
            raise ConfigError(f"--walk {args.walk!r}: an address such as 0xffffc90000001000") from None
    if args.vmallocinfo is not None and (args.ops is not None or args.step is not None or args.trace):
        raise ConfigError("--vmallocinfo draws a dump: -A, --trace and --step are for a replay")
    if args.trace is not None and args.ops is not None:
        raise ConfigError("--trace and -A are two replays: give one")
    if args.vmallocinfo is not None:
        meminfo = None if args.meminfo is None else _read(args.meminfo)
        data = map_of_dump(_read(args.vmallocinfo), meminfo, args.arch, args.kernel,
                           "<stdin>" if args.vmallocinfo == "-" else args.vmallocinfo, walk,
                           meminfo_source=args.meminfo or "<meminfo>")
    elif args.trace is not None:
        data = map_of_trace(_read(args.trace), Path(args.trace).name, args.step, args.arch or "x86_64",
                            args.kernel, walk)
    else:
        parse_size(args.ram)
        cfg = QuizConfig(arch=args.arch or "x86_64", ram=args.ram, kernel=args.kernel, allocator=args.allocator)
        data = map_of_ops(cfg, ops_arg(args.ops), args.step, walk)
    page = render_page(data)
    if args.output == "-":
        sys.stdout.write(page)
    else:
        try:
            Path(args.output).write_text(page)
        except OSError as exc:
            raise ConfigError(f"-o {args.output}: {exc.strerror}") from None
        print(f"wrote {args.output} ({len(page)} bytes): open it in a browser")
    return 0
