"""Argument types and the error guard shared by the monitoring commands (diff, watch, metrics, history)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from pyvmalloc.analysis.plan import parse_sizes
from pyvmalloc.cli.common import one_line
from pyvmalloc.errors import ConfigError, FormatError, PyvmallocError
from pyvmalloc.monitor.units import parse_duration, parse_moment
from pyvmalloc.sizes import parse_size

__all__ = ["count", "duration", "guarded", "moment", "moments", "size", "sizes"]


def _typed(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a parser that raises PyvmallocError: argparse then names the
    option and exits 2 with one line."""
    def convert(text: str) -> object:
        try:
            return parse(text)
        except PyvmallocError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


duration = _typed(parse_duration)
moment = _typed(parse_moment)
moments = _typed(lambda text: [parse_moment(t) for t in text.split(",")])
size = _typed(parse_size)
sizes = _typed(parse_sizes)


def _whole(text: str) -> int:
    if not text.strip().isdigit():
        raise ConfigError(f"not a whole number of 0 or more: {text!r}")
    return int(text)


count = _typed(_whole)


def guarded(command: str, run: Callable[[argparse.Namespace], int]
            ) -> Callable[[argparse.Namespace], int]:
    """``run`` with every expected failure turned into one line on stderr and exit code 2:
    FormatError reads ``WHERE: what``; other errors name the command; OSError names the file."""
    def guard(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except FormatError as exc:
            print(one_line(str(exc)), file=sys.stderr)
        except PyvmallocError as exc:
            print(one_line(f"pyvmalloc {command}: {exc}"), file=sys.stderr)
        except BrokenPipeError:
            raise       # the reader closed stdout (`| head`): main() ends quietly
        except OSError as exc:
            where = os.fspath(exc.filename) if exc.filename is not None else f"pyvmalloc {command}"
            print(one_line(f"{where!s}: {exc.strerror or exc}"), file=sys.stderr)
        return 2
    return guard
