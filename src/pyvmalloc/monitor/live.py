"""What ``pyvmalloc watch`` shows after each sample: a rich panel in a terminal, one plain line otherwise."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from pyvmalloc.errors import ConfigError
from pyvmalloc.monitor.diff import NOT_SUSPECT_PREFIX, least_squares
from pyvmalloc.monitor.sample import ZERO_TOTAL, Sample
from pyvmalloc.monitor.sparkline import sparkline
from pyvmalloc.monitor.units import format_moment, signed_bytes, signed_rate
from pyvmalloc.monitor.watch import Alert
from pyvmalloc.sizes import human_bytes

__all__ = ["panel", "plain_line", "rate_per_hour", "streak"]


def rate_per_hour(recent: Sequence[Sample], caller: str | None = None) -> float | None:
    """Growth in bytes per hour over ``recent`` (least squares), of one caller or of the total;
    None with fewer than two samples or no time between them."""
    if len(recent) < 2 or recent[-1].t == recent[0].t:
        return None
    hours = [(s.t - recent[0].t) / 3600.0 for s in recent]
    values = [s.bytes if caller is None else s.callers.get(caller, ZERO_TOTAL).bytes
              for s in recent]
    try:
        return least_squares(hours, values)[0]
    except ConfigError:
        return None


def streak(recent: Sequence[Sample], caller: str) -> int:
    """How many samples in a row, up to the last, the caller grew."""
    values = [s.callers.get(caller, ZERO_TOTAL).bytes for s in recent]
    n = 0
    for a, b in zip(reversed(values[:-1]), reversed(values[1:])):
        if b <= a:
            break
        n += 1
    return n


def _hole(s: Sample) -> str:
    if s.largest_hole is None:
        return "largest hole: ? (addresses hashed)"
    frag = "" if s.fragmentation is None else f", fragmentation {s.fragmentation:.3f}"
    mod = "" if s.module_largest_hole is None else \
        f", module area {human_bytes(s.module_largest_hole)}"
    return f"largest hole {human_bytes(s.largest_hole)}{frag}{mod}"


def plain_line(s: Sample, recent: Sequence[Sample]) -> str:
    """One line per sample for logs and pipes: the change is since the previous sample (a rate
    from seconds apart would only magnify the churn of thread stacks)."""
    top = next(iter(s.callers.items()), None)
    change = ""
    if len(recent) >= 2:
        prev = recent[-2]
        change = f"({s.areas - prev.areas:+d}, {signed_bytes(s.bytes - prev.bytes)})"
    parts = [format_moment(s.t), f"{s.areas} areas", human_bytes(s.bytes), change, _hole(s)]
    if top is not None:
        parts.append(f"top {top[0]} {human_bytes(top[1].bytes)}")
    return "  ".join(p for p in parts if p)


def panel(s: Sample, recent: Sequence[Sample], alerts: Sequence[Alert], store: str,
          top: int = 10) -> RenderableType:
    """The live summary: totals, the top callers with their trend, the last alerts."""
    first = recent[0]
    rate = rate_per_hour(recent)
    head = Text.assemble(
        (f"{s.areas} areas, {human_bytes(s.bytes)}", "bold"),
        f" ({signed_bytes(s.bytes - first.bytes)} over {len(recent)} samples"
        f"{'' if rate is None else ', ' + signed_rate(rate)})   unpurged "
        f"{human_bytes(s.unpurged_bytes)}   {_hole(s)}")
    if s.vmalloc_used is not None:
        head.append(f"   VmallocUsed {human_bytes(s.vmalloc_used)}")
    table = Table(expand=True, show_edge=False, pad_edge=False)
    # The numbers keep their width; the caller's name takes what is left of the terminal.
    table.add_column("caller", ratio=1, no_wrap=True, overflow="ellipsis")
    for name, width in (("areas", 6), ("bytes", 10), ("per hour", 13), ("grew", 4)):
        table.add_column(name, justify="right", no_wrap=True, min_width=width)
    table.add_column("trend", no_wrap=True, min_width=12)
    for caller, t in list(s.callers.items())[:top]:
        run = streak(recent, caller)
        r = rate_per_hour(recent, caller)
        style = "red" if run >= 3 and not caller.startswith(NOT_SUSPECT_PREFIX) else ""
        table.add_row(caller, str(t.areas), human_bytes(t.bytes),
                      "" if r is None else signed_rate(r), str(run),
                      sparkline([x.callers.get(caller, ZERO_TOTAL).bytes for x in recent], 12),
                      style=style)
    parts: list[RenderableType] = [head, table]
    if alerts:
        parts.append(Text("\n".join(a.line for a in alerts[-5:]), style="bold red"))
    title = f"pyvmalloc watch  {s.source}  {format_moment(s.t)} UTC"
    return Panel(Group(*parts), title=title, subtitle=f"store {store}  (Ctrl-C stops)")
