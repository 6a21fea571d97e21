"""The ``pyvmalloc`` command line: one subcommand per module ``cli/cmd_*.py``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pyvmalloc.cli.common import one_line
from pyvmalloc.errors import PyvmallocError

# Each module defines ``register(subparsers)``, which adds its parser and sets ``func`` to a
# callable taking the parsed namespace and returning the exit code.
COMMANDS: tuple[str, ...] = ("cmd_machine", "cmd_tour", "cmd_bench", "cmd_analyze", "cmd_replay",
                             "cmd_quiz", "cmd_map", "cmd_explain", "cmd_diff", "cmd_watch",
                             "cmd_metrics", "cmd_history", "cmd_sweep", "cmd_fleet")


class _Parser(argparse.ArgumentParser):
    """argparse that exits 2 with one line, never a usage dump followed by a traceback."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    parser = _Parser(prog="pyvmalloc", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"pyvmalloc.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PyvmallocError as exc:
        print(f"pyvmalloc: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader closed the pipe (``| head``): stop quietly, and keep Python's exit-time
        # flush of stdout from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
