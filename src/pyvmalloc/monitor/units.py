"""Durations and moments as people type them, and signed byte figures and rates as reports print them."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from pyvmalloc.errors import ConfigError
from pyvmalloc.sizes import human_bytes

__all__ = ["format_duration", "format_moment", "parse_duration", "parse_moment", "signed_bytes",
           "signed_rate"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0,
          "w": 604800.0}
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*\Z")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``0.1s``, ``10m``, ``2h``, ``1d``; ConfigError naming the text."""
    match = _DURATION.match(text.lower())
    if not match or match.group(2) not in ("", *_UNITS):
        raise ConfigError(f"{text!r} is not a duration (e.g. 0.5s, 10m, 2h, 1d)")
    seconds = float(match.group(1)) * _UNITS.get(match.group(2), 1.0)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"duration {text!r} must be more than 0")
    return seconds


def parse_moment(text: str) -> float:
    """Seconds since the epoch in ``text``: a number, or an ISO 8601 date and time (UTC unless
    it names its zone); ConfigError naming the text."""
    try:
        value = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ConfigError(f"{text!r} is not a time: give seconds since the epoch or ISO "
                              f"8601 (2026-01-01T10:00, 2026-01-01 10:00+02:00)") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    if not math.isfinite(value):
        raise ConfigError(f"{text!r} is not a time")
    return value


def format_moment(t: float) -> str:
    """``2026-01-01 10:00:00`` in UTC, the way reports print a sample's time."""
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float) -> str:
    """``45s``, ``12.5 min``, ``3.2 h``, ``4.1 days``, ``2.3 years``: one unit, one decimal."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400.0), ("h", 3600.0),
                       ("min", 60.0)):
        if abs(seconds) >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f}s" if seconds % 1 else f"{seconds:.0f}s"


def signed_bytes(n: float) -> str:
    """``+12.0 KiB``, ``-3.0 MiB``, ``0 B``: a change in bytes with its sign."""
    if n == 0:
        return "0 B"
    return ("+" if n > 0 else "-") + human_bytes(round(abs(n)))


def signed_rate(bytes_per_hour: float) -> str:
    """``+216.0 KiB/h``: a growth rate."""
    return f"{signed_bytes(bytes_per_hour)}/h"
