"""A series of numbers as one line of block characters, for terminals."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["BLOCKS", "sparkline"]

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 40) -> str:
    """``values`` scaled between their minimum and maximum, one block each; a longer series is
    cut to its last ``width`` values (the recent past is what a watcher reads).  A flat series
    is a flat line of the lowest block."""
    if width < 1:
        return ""
    tail = list(values)[-width:]
    if not tail:
        return ""
    lo, hi = min(tail), max(tail)
    if hi == lo:
        return BLOCKS[0] * len(tail)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((v - lo) / (hi - lo) * top)] for v in tail)
