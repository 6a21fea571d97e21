"""A picture of a vmallocinfo snapshot: the address space as a coloured strip, and hole sizes.

Drawn with matplotlib's Agg canvas directly (no pyplot, no screen, no global backend switch).
The strip shows ``[start, end)`` with every area coloured by its primary kind, its guard page in
black and the free holes hatched; below it a histogram of hole sizes on log-spaced bins.  With
hashed addresses there is no layout to draw: the figure then shows area sizes by kind instead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from pyvmalloc.errors import FormatError
from pyvmalloc.formats.vmallocinfo import VmallocinfoLine, VmallocinfoSnapshot

__all__ = ["KIND_COLOURS", "plot_snapshot"]

KIND_COLOURS: dict[str, str] = {
    "vmalloc": "#4c72b0", "ioremap": "#dd8452", "vmap": "#55a868", "user": "#8172b3",
    "vm_map_ram": "#c44e52", "unpurged": "#937860", "sparse": "#da8bc3",
    "dma-coherent": "#8c8c8c",
}
_OTHER_COLOUR = "#ccb974"
_HOLE_COLOUR = "#eeeeee"
_GUARD_COLOUR = "#000000"


def _gaps(lines: Sequence[VmallocinfoLine], start: int, end: int) -> list[tuple[int, int]]:
    """Free gaps of [start, end), for callers that did not pass the analysis' holes."""
    gaps, cursor = [], start
    for ln in sorted(lines, key=lambda x: x.start):
        if ln.start > cursor and cursor < end:
            gaps.append((cursor, min(ln.start, end) - cursor))
        cursor = max(cursor, ln.end)
    if cursor < end:
        gaps.append((cursor, end - cursor))
    return gaps


_ZOOM_PAGES = 256


def _busiest_window(lines: Sequence[VmallocinfoLine], lo: int, hi: int, width: int
                    ) -> tuple[int, int]:
    """The ``width``-byte window of [lo, hi) in which the most areas start."""
    if hi - lo <= width:
        return lo, hi
    starts = sorted(ln.start for ln in lines if lo <= ln.start < hi) or [lo]
    best, best_count, j = starts[0], 0, 0
    for i, a in enumerate(starts):
        while starts[j] < a - width:
            j += 1
        if i - j + 1 > best_count:
            best, best_count = starts[j], i - j + 1
    begin = min(max(lo, best), hi - width)
    return begin, begin + width


def _draw_strip(ax: Any, lines: Sequence[VmallocinfoLine], holes: Sequence[tuple[int, int]],
                lo: int, hi: int, colour: dict[str, str], page_size: int) -> None:
    """Areas of [lo, hi) as coloured bars over hatched holes, each guard page in black."""
    unit, name = (float(1 << 20), "MiB") if hi - lo > 64 << 20 else (1024.0, "KiB")

    def bar(a: int, b: int) -> tuple[float, float]:
        a, b = max(a, lo), min(b, hi)
        return (a - lo) / unit, max(0, b - a) / unit

    ax.broken_barh([bar(a, a + n) for a, n in holes if a < hi and a + n > lo], (0, 1),
                   facecolors=_HOLE_COLOUR, hatch="//", edgecolor="#bbbbbb", linewidth=0)
    for kind, col in colour.items():
        bodies, guards = [], []
        for ln in lines:
            if ln.primary_kind != kind or ln.end <= lo or ln.start >= hi:
                continue
            guard = page_size if ln.has_guard_page and ln.end - ln.start > page_size else 0
            bodies.append(bar(ln.start, ln.end - guard))
            if guard:
                guards.append(bar(ln.end - guard, ln.end))
        ax.broken_barh(bodies, (0, 1), facecolors=col, linewidth=0)
        ax.broken_barh(guards, (0, 1), facecolors=_GUARD_COLOUR, linewidth=0)
    ax.set_xlim(0, (hi - lo) / unit)
    ax.set_yticks([])
    ax.set_xlabel(f"{name} above 0x{lo:x} (end 0x{hi:x})", fontsize="small")


def _log_bins(values: Sequence[int], low: int) -> list[float]:
    """Powers of two from ``low`` (or the smallest positive value's) past the largest value."""
    positive = [v for v in values if v > 0] or [low]
    low = min(low, 1 << (min(positive).bit_length() - 1))
    top = max(max(positive), low * 2)
    bins = [float(low)]
    while bins[-1] < top:
        bins.append(bins[-1] * 2)
    return bins


def plot_snapshot(snapshot: VmallocinfoSnapshot | Sequence[VmallocinfoLine],
                  path: str | os.PathLike[str], bounds: tuple[int, int] | None = None,
                  holes: Sequence[tuple[int, int]] | None = None, page_size: int = 4096,
                  title: str | None = None) -> str:
    """Write the picture to ``path`` (format from its suffix, e.g. ``.png``); return the path.

    ``bounds`` is the range drawn (default: first start to last end); ``holes`` the free gaps as
    ``(address, size)`` (default: computed from the areas).  OSError if the file cannot be written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if isinstance(snapshot, VmallocinfoSnapshot):
        lines, trusted = list(snapshot.lines), snapshot.addresses_trusted
        title = title or snapshot.source
    else:
        lines, trusted = list(snapshot), True
    if page_size <= 0:
        raise FormatError("plot_snapshot", f"page_size must be positive, not {page_size}")
    fig = Figure(figsize=(12, 7), layout="constrained")
    FigureCanvasAgg(fig)
    whole, zoom, hist = fig.subplots(3, 1, height_ratios=(1, 1, 3))
    if title:
        fig.suptitle(title)
    kinds = sorted({ln.primary_kind for ln in lines})
    colour = {k: KIND_COLOURS.get(k, _OTHER_COLOUR) for k in kinds}
    handles = [Patch(color=colour[k], label=k) for k in kinds]

    if not trusted or not lines:
        whole.set_axis_off()
        zoom.set_axis_off()
        whole.text(0.5, 0.5, "addresses hashed (kptr_restrict): no layout to draw" if lines
                   else "no areas", ha="center", va="center", transform=whole.transAxes)
        if lines:
            hist.hist([[ln.size for ln in lines if ln.primary_kind == k] for k in kinds],
                      bins=_log_bins([ln.size for ln in lines], page_size), stacked=True,
                      color=[colour[k] for k in kinds])
            hist.set_xscale("log", base=2)
            hist.set_xlabel("area size (bytes, guard page included)")
            hist.set_ylabel("areas")
            hist.legend(handles=handles, loc="upper right")
        else:
            hist.set_axis_off()
        fig.savefig(os.fspath(path))
        return os.fspath(path)

    lo, hi = bounds if bounds is not None else (min(ln.start for ln in lines),
                                                max(ln.end for ln in lines))
    if hi <= lo:
        raise FormatError("plot_snapshot", f"empty range 0x{lo:x}-0x{hi:x}")
    if holes is None:
        holes = _gaps(lines, lo, hi)
    _draw_strip(whole, lines, holes, lo, hi, colour, page_size)
    z_lo, z_hi = _busiest_window(lines, lo, hi, _ZOOM_PAGES * page_size)
    _draw_strip(zoom, lines, holes, z_lo, z_hi, colour, page_size)
    zoom.set_title(f"the busiest {_ZOOM_PAGES} pages, guard pages in black", fontsize="small")
    handles += [Patch(color=_GUARD_COLOUR, label="guard page"),
                Patch(facecolor=_HOLE_COLOUR, hatch="//", edgecolor="#bbbbbb", label="hole")]
    whole.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0),
                 ncol=min(len(handles), 8), fontsize="small", frameon=False)

    sizes = [n for _, n in holes]
    if sizes:
        hist.hist(sizes, bins=_log_bins(sizes, page_size), color="#4c72b0")
        hist.set_xscale("log", base=2)
        hist.set_xlabel(f"hole size (bytes); {len(sizes)} holes, largest {max(sizes)}")
        hist.set_ylabel("holes")
    else:
        hist.set_axis_off()
        hist.text(0.5, 0.5, "no holes: the range is full", ha="center", va="center",
                  transform=hist.transAxes)
    fig.savefig(os.fspath(path))
    return os.fspath(path)
