"""``pyvmalloc map``: the address space as one self-contained HTML page."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the ``map`` subcommand."""
    p = sub.add_parser("map", help="draw the address space as an HTML page", description=__doc__)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the page; returns the exit code."""
    return 0
