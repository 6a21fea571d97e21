"""The watch store over time: per-caller series, their terminal sparklines and a PNG plot.

:func:`load_history` reads the stored samples into :class:`History` (times, total bytes, the
largest hole and a bytes series per caller, 0 where a caller had nothing);
:func:`format_history` prints one sparkline row per caller, :func:`plot_history` draws the same
on matplotlib's Agg canvas (no pyplot), and :func:`format_rows` prints what ``--sql`` returns.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.monitor.diff import least_squares
from pyvmalloc.monitor.sparkline import sparkline
from pyvmalloc.monitor.store import Store
from pyvmalloc.monitor.units import format_duration, format_moment, signed_bytes, signed_rate
from pyvmalloc.sizes import human_bytes

__all__ = ["History", "format_history", "format_rows", "load_history", "plot_history"]

SORTS = ("bytes", "growth")


@dataclass
class History:
    """Everything a store holds, as series: ``callers[name][i]`` is the bytes at ``times[i]``."""

    path: str
    times: list[float]
    total: list[int]
    largest_hole: list[int | None]
    module_hole: list[int | None]
    callers: dict[str, list[int]]

    def rate(self, caller: str) -> float | None:
        """Least-squares growth of a caller in bytes per hour; None without two distinct times."""
        if len(self.times) < 2 or self.times[0] == self.times[-1]:
            return None
        hours = [(t - self.times[0]) / 3600.0 for t in self.times]
        return least_squares(hours, self.callers[caller])[0]

    def ranked(self, sort: str = "bytes", match: Sequence[str] = ()) -> list[str]:
        """Caller names whose name contains one of ``match`` (all without), largest last value
        first (``bytes``) or fastest growth first (``growth``)."""
        if sort not in SORTS:
            raise ConfigError(f"sort by {sort!r}? by {' or '.join(SORTS)}")
        names = [n for n in self.callers if not match or any(m in n for m in match)]
        if sort == "growth":
            return sorted(names, key=lambda n: (-(self.rate(n) or 0.0), n))
        return sorted(names, key=lambda n: (-self.callers[n][-1], n))


def load_history(path: str, since: float | None = None, last: int | None = None) -> History:
    """The store's samples (those at ``since`` or later, the ``last`` N) as series."""
    with Store(path, readonly=True) as store:
        samples = store.samples(since=since, last=last)
    if not samples:
        raise FormatError(path, "no samples in the store"
                                + (" in that span" if since is not None or last else ""))
    names = {name for s in samples for name in s.callers}
    callers = {n: [s.callers[n].bytes if n in s.callers else 0 for s in samples] for n in names}
    return History(path=path, times=[s.t for s in samples], total=[s.bytes for s in samples],
                   largest_hole=[s.largest_hole for s in samples],
                   module_hole=[s.module_largest_hole for s in samples], callers=callers)


def format_history(h: History, top: int = 10, sort: str = "bytes", match: Sequence[str] = (),
                   width: int = 40) -> str:
    """One row per caller: last bytes, change, rate per hour and a sparkline of the series."""
    span = h.times[-1] - h.times[0]
    out = [f"{h.path}: {len(h.times)} samples, {format_moment(h.times[0])} to "
           f"{format_moment(h.times[-1])} UTC ({format_duration(span)})",
           f"  total {human_bytes(h.total[-1]):>10} {signed_bytes(h.total[-1] - h.total[0]):>11}"
           f"  {sparkline(h.total, width)}"]
    for name, values in (("vmalloc range", h.largest_hole), ("module area", h.module_hole)):
        holes = [v for v in values if v is not None]
        if len(holes) == len(values):
            out.append(f"  largest hole of the {name} {human_bytes(holes[-1])} (from "
                       f"{human_bytes(holes[0])})  {sparkline(holes, width)}")
    names = h.ranked(sort, match)
    if match and not names:
        raise ConfigError(f"no caller in {h.path} matches {', '.join(map(repr, match))}")
    shown = names[:top]
    wide = max([len(n) for n in shown] + [6])
    out += ["", f"  {'caller':<{wide}} {'now':>10} {'change':>11} {'per hour':>14}  "
                f"trend (last {min(width, len(h.times))} samples)"]
    for name in shown:
        series = h.callers[name]
        rate = h.rate(name)
        out.append(f"  {name:<{wide}} {human_bytes(series[-1]):>10} "
                   f"{signed_bytes(series[-1] - series[0]):>11} "
                   f"{'' if rate is None else signed_rate(rate):>14}  {sparkline(series, width)}")
    if len(names) > top:
        out.append(f"  ... {len(names) - top} more callers (--top, --caller)")
    return "\n".join(out) + "\n"


def plot_history(h: History, path: str, top: int = 8, sort: str = "bytes",
                 match: Sequence[str] = ()) -> None:
    """Draw the total and the chosen callers' bytes over time (and the largest hole where the
    addresses are real) into a PNG (or any format matplotlib writes, by the suffix)."""
    from datetime import UTC, datetime

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    suffix = os.path.splitext(path)[1][1:].lower()
    known = FigureCanvasAgg.get_supported_filetypes()
    if suffix not in known:
        # Said before drawing: matplotlib would say it only after the whole figure is laid out.
        raise FormatError(path, f"format {suffix!r} is not supported (supported formats: "
                                f"{', '.join(sorted(known))})")
    when = [datetime.fromtimestamp(t, tz=UTC) for t in h.times]
    holes = h.largest_hole if all(v is not None for v in h.largest_hole) else None
    fig = Figure(figsize=(11, 7 if holes else 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if holes else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    ax.plot(when, [b / 2**20 for b in h.total], color="black", linewidth=2, label="total")
    for name in h.ranked(sort, match)[:top]:
        ax.plot(when, [b / 2**20 for b in h.callers[name]], label=name)
    ax.set_ylabel("MiB (size column)")
    ax.set_title(f"vmalloc by caller: {os.path.basename(h.path)}, {len(h.times)} samples")
    ax.legend(fontsize="small", loc="upper left")
    ax.grid(alpha=0.3)
    if holes:
        axes[1].plot(when, [v / 2**20 for v in holes if v is not None], color="tab:red",
                     label="vmalloc range")
        if all(v is not None for v in h.module_hole):
            axes[1].plot(when, [v / 2**20 for v in h.module_hole if v is not None],
                         color="tab:purple", label="module area")
        axes[1].set_yscale("log")
        axes[1].set_ylabel("largest hole, MiB")
        axes[1].legend(fontsize="small", loc="lower left")
        axes[1].grid(alpha=0.3)
    axes[-1].set_xlabel("time (UTC)")
    fig.savefig(os.fspath(path))


def format_rows(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """An SQL result as aligned text: a header, then one line per row (NULL for None)."""
    cells = [[("NULL" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for r in cells:
        lines.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"
