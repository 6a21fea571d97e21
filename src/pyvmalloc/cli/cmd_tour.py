"""``pyvmalloc tour``: a guided walk through vmalloc on a simulated machine, for newcomers."""

from __future__ import annotations

import argparse
from typing import Any

from pyvmalloc.cli.common import add_machine_args, boot_from_args
from pyvmalloc.course.tour import tour


def register(sub: Any) -> None:
    """Add the ``tour`` subcommand."""
    p = sub.add_parser("tour", help="a guided tour of vmalloc on a simulated machine",
                       description=__doc__)
    add_machine_args(p, default_arch="x86_64", default_ram="512M")
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed: same seed, same tour (default 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the tour; returns the exit code."""
    m = boot_from_args(args)
    # The flags the reader chose, passed on to the commands the tour suggests at its end.
    options = f"--arch {args.arch}" + (f" --kernel {args.kernel}" if args.kernel else "") + (
        f" --allocator {args.allocator}" if args.allocator else "")
    print(tour(m, args.seed, args.ram, options).text(), end="")
    return 0
