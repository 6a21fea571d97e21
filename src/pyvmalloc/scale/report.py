"""The comparison a sweep's results show: a table per workload and configuration, and PNG plots.

A configuration is a kernel, an allocator and whichever parameters the sweep varied; each cell
is over the seeds (median, or mean for counts).  Plots: the final fragmentation and largest hole
per configuration (box plots over the seeds), allocation failures, the TLB flushes, and the
largest hole over the run (the median series).  matplotlib's Agg canvas, no pyplot.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyvmalloc.scale.spec import PARAMS
from pyvmalloc.sizes import human_bytes

__all__ = ["Group", "format_table", "group_runs", "plot_sweep"]


@dataclass
class Group:
    """The runs of one workload under one configuration."""

    workload: str
    config: str
    runs: list[dict[str, Any]]

    def values(self, column: str) -> list[Any]:
        """The non-null values of ``column`` over the group's runs that finished."""
        return [r[column] for r in self.runs if r["status"] == "ok" and r[column] is not None]

    def median(self, column: str) -> float | None:
        """The median of ``column`` (None when no run has it)."""
        v = self.values(column)
        return float(statistics.median(v)) if v else None

    def mean(self, column: str) -> float | None:
        """The mean of ``column`` (None when no run has it)."""
        v = self.values(column)
        return float(statistics.fmean(v)) if v else None


def group_runs(rows: Sequence[dict[str, Any]]) -> list[Group]:
    """Rows grouped by workload and configuration (kernel, allocator, the parameters that
    differ between rows and apply to the run), in a stable order."""
    varying = [p for p in PARAMS if len({repr(r[p]) for r in rows}) > 1]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        # A parameter that did not apply to the run (None) names no configuration.
        extra = " ".join(f"{p}={r[p]}" for p in varying if r[p] is not None)
        config = f"{r['kernel']} {r['allocator']}" + (f" {extra}" if extra else "")
        groups[(r["workload"], config)].append(r)
    return [Group(w, c, runs) for (w, c), runs in sorted(groups.items())]


def _cell(value: float | None, kind: str = "") -> str:
    if value is None:
        return "-"
    if kind == "bytes":
        return human_bytes(int(value))
    if kind == "ratio":
        return f"{value:.3f}"
    return f"{value:.1f}" if value != int(value) else str(int(value))


def format_table(groups: Sequence[Group]) -> str:
    """A fixed-width table: one line per workload and configuration."""
    head = ("workload", "configuration", "runs", "errors", "failures", "largest hole",
            "fragmentation", "tlb flushes", "purges")
    lines = [head]
    for g in groups:
        lines.append((
            g.workload, g.config, str(len(g.runs)),
            str(sum(r["status"] != "ok" for r in g.runs)),
            _cell(g.mean("failures")), _cell(g.median("largest_hole"), "bytes"),
            _cell(g.median("fragmentation"), "ratio"), _cell(g.mean("tlb_flushes")),
            _cell(g.mean("purge_runs")),
        ))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    out = []
    for n, row in enumerate(lines):
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"


def plot_sweep(groups: Sequence[Group], series: Sequence[dict[str, Any]], out_dir: str) -> list[str]:
    """Write the comparison plots as PNG files into ``out_dir``; their paths."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    os.makedirs(out_dir, exist_ok=True)
    workloads = sorted({g.workload for g in groups})
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for point in series:
        by_run[point["run_id"]].append(point)
    written = []
    panels = (("fragmentation", "final fragmentation (1 - largest/free)", "box"),
              ("largest_hole", "final largest hole (MiB)", "box"),
              ("failures", "failed allocations (mean)", "bar"),
              ("tlb_flushes", "TLB flushes (mean)", "bar"),
              ("largest_hole_series", "largest hole over the run (MiB, median)", "line"))
    for w in workloads:
        mine = [g for g in groups if g.workload == w]
        fig = Figure(figsize=(12, 3 * len(panels)))
        fig.subplots_adjust(hspace=0.6, top=0.97, bottom=0.05)
        FigureCanvasAgg(fig)
        for i, (col, title, kind) in enumerate(panels):
            ax = fig.add_subplot(len(panels), 1, i + 1)
            ax.set_title(f"{w}: {title}", fontsize=10)
            labels = [g.config for g in mine]
            if kind == "box":
                scale = 1 / (1 << 20) if col == "largest_hole" else 1.0
                # A configuration with no finished run draws no box: none of its values is 0.
                data = [[v * scale for v in g.values(col)] for g in mine]
                ax.boxplot(data)
                ax.set_xticks(range(1, len(labels) + 1), labels, rotation=10, fontsize=7)
            elif kind == "bar":
                means = [g.mean(col) for g in mine]
                ax.bar(range(len(mine)), [math.nan if v is None else v for v in means])
                ax.set_xticks(range(len(labels)), labels, rotation=10, fontsize=7)
            else:
                for g in mine:
                    steps: dict[int, list[float]] = defaultdict(list)
                    for r in g.runs:
                        for p in by_run.get(r["run_id"], []):
                            if p["largest_hole"] is not None:
                                steps[p["step"]].append(p["largest_hole"] / (1 << 20))
                    xs = sorted(steps)
                    ax.plot(xs, [statistics.median(steps[x]) for x in xs], label=g.config)
                ax.set_xlabel("step")
                ax.legend(fontsize=7, ncols=2)
        path = os.path.join(out_dir, f"{w.replace(':', '_').replace('/', '_')}.png")
        fig.savefig(path, dpi=80)
        written.append(path)
    return written
