"""What changed between samples: appeared, disappeared and grown by caller and kind, rates, leak suspects, hole trends.

:func:`diff` compares two samples; :func:`series` reads two or more in time order and adds what
only a series tells: each caller's growth rate (least squares over the samples, per hour), the
callers that only grow (leak suspects) with how sure that is, and the trend of the largest hole
and of fragmentation with the time left until a request of a given size stops fitting.

Areas are matched by identity (:func:`pyvmalloc.monitor.sample.area_key`), which holds for
hashed addresses too within one boot; samples read back from a store carry no identities, and
then only the net change per caller is known (``Diff.exact`` is False).

How sure a suspect is: ``(grew / steps) * (1 - 2 ** -grew)`` -- the share of steps in which it
grew, times a factor that halves the doubt with each growing step (one step of two dumps: at
most 0.5; six growing steps of six: 0.98).  A caller that ever shrank is no suspect: leaks
only grow; it is listed among the growing callers when its trend is up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyvmalloc.errors import ConfigError
from pyvmalloc.monitor.sample import ZERO_TOTAL, Sample, Total, totals_by_caller
from pyvmalloc.monitor.units import (
    format_duration,
    format_moment,
    signed_bytes,
    signed_rate,
)
from pyvmalloc.sizes import human_bytes

__all__ = ["Change", "Diff", "HoleTrend", "Series", "Trend", "diff", "format_diff",
           "format_series", "least_squares", "request_span", "series", "series_to_json"]

ZERO = ZERO_TOTAL
PAGE = 4096
# Lazily freed areas are no caller's: they fall and rise with every purge.
NOT_SUSPECT_PREFIX = "(no caller: unpurged"


@dataclass(frozen=True)
class Change:
    """One caller's or kind's totals before and after, and (when identities are known) the
    areas that appeared and disappeared in between."""

    name: str
    before: Total
    after: Total
    appeared: Total | None
    disappeared: Total | None

    @property
    def areas(self) -> int:
        """The net change in areas."""
        return self.after.areas - self.before.areas

    @property
    def bytes(self) -> int:
        """The net change in bytes."""
        return self.after.bytes - self.before.bytes


@dataclass
class Diff:
    """Two samples compared; ``callers`` and ``kinds`` hold only what changed, largest first."""

    old: Sample
    new: Sample
    callers: list[Change]
    kinds: list[Change]
    appeared: Total | None
    disappeared: Total | None
    exact: bool
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.new.t - self.old.t

    @property
    def total(self) -> Change:
        """Every area of the two samples, as one change."""
        return Change("total", Total(self.old.areas, self.old.bytes),
                      Total(self.new.areas, self.new.bytes), self.appeared, self.disappeared)

    @property
    def empty(self) -> bool:
        """True when nothing appeared, disappeared or changed size."""
        return not self.callers and not self.kinds and not (self.appeared and self.appeared.areas) \
            and not (self.disappeared and self.disappeared.areas)


def _changes(before: Mapping[str, Total], after: Mapping[str, Total],
             appeared: Mapping[str, Total] | None, disappeared: Mapping[str, Total] | None
             ) -> list[Change]:
    out = []
    for name in set(before) | set(after) | set(appeared or {}) | set(disappeared or {}):
        b, a = before.get(name, ZERO), after.get(name, ZERO)
        up = None if appeared is None else appeared.get(name, ZERO)
        down = None if disappeared is None else disappeared.get(name, ZERO)
        if a != b or (up is not None and up.areas) or (down is not None and down.areas):
            out.append(Change(name, b, a, up, down))
    out.sort(key=lambda c: (-abs(c.bytes), -abs(c.areas), c.name))
    return out


def diff(old: Sample, new: Sample) -> Diff:
    """What changed from ``old`` to ``new``."""
    notes = []
    exact = bool(old.keys or not old.areas) and bool(new.keys or not new.areas)
    appeared = disappeared = None
    by_caller_up = by_caller_down = None
    if exact:
        up, down = new.keys - old.keys, old.keys - new.keys
        by_caller_up, by_caller_down = totals_by_caller(up), totals_by_caller(down)
        appeared = Total(sum(t.areas for t in by_caller_up.values()),
                         sum(t.bytes for t in by_caller_up.values()))
        disappeared = Total(sum(t.areas for t in by_caller_down.values()),
                            sum(t.bytes for t in by_caller_down.values()))
        if old.areas and new.areas and not (old.keys & new.keys):
            notes.append("no area is in both dumps: another boot (hashed addresses change their "
                         "key at each boot), or another host")
    else:
        notes.append("area identities not kept (a stored sample): net changes per caller only")
    if old.addresses_trusted != new.addresses_trusted:
        notes.append("one dump has real addresses and the other hashed ones (kptr_restrict "
                     "changed, or another reader): every area looks new")
    return Diff(old=old, new=new,
                callers=_changes(old.callers, new.callers, by_caller_up, by_caller_down),
                kinds=_changes(old.kinds, new.kinds, None, None),
                appeared=appeared, disappeared=disappeared, exact=exact, notes=notes)


def least_squares(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float | None]:
    """Slope of the least-squares line through the points, and its R² (None when the values do
    not vary: a flat line explains them all, and nothing is left to explain)."""
    n = len(xs)
    if n < 2:
        raise ConfigError("a trend needs at least two samples")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        raise ConfigError("every sample has the same time: give the times (--times or --interval)")
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    r2 = None if syy == 0 else (sxy * sxy) / (sxx * syy)
    return slope, r2


@dataclass(frozen=True)
class Trend:
    """A caller over the series: first and last totals, growth per hour, steps up and down."""

    caller: str
    first: Total
    last: Total
    bytes_per_hour: float
    areas_per_hour: float
    r2: float | None
    steps: int
    grew: int
    shrank: int

    @property
    def only_grows(self) -> bool:
        return self.shrank == 0 and self.grew > 0 and self.last.bytes > self.first.bytes

    @property
    def confidence(self) -> float:
        """How sure it is a leak, 0..1 (module docstring); 0 for a caller that ever shrank."""
        if not self.only_grows or self.caller.startswith(NOT_SUSPECT_PREFIX):
            return 0.0
        return (self.grew / self.steps) * (1.0 - 2.0 ** -self.grew)

    @property
    def sureness(self) -> str:
        c = self.confidence
        return "high" if c >= 0.9 else "medium" if c >= 0.6 else "low"


@dataclass(frozen=True)
class HoleTrend:
    """The largest free hole of one range over the series, and when sizes stop fitting."""

    name: str
    values: list[int]
    bytes_per_hour: float
    fragmentation: list[float | None]
    fragmentation_per_hour: float | None
    # request size -> seconds until it no longer fits (0: already does not; None: not shrinking)
    runs_out: dict[int, float | None]


@dataclass
class Series:
    """Two or more samples in time order and what their changes tell."""

    samples: list[Sample]
    steps: list[Diff]
    overall: Diff
    trends: list[Trend]
    holes: list[HoleTrend]
    notes: list[str]

    @property
    def suspects(self) -> list[Trend]:
        """Callers that only grew, surest and fastest first."""
        found = [t for t in self.trends if t.confidence > 0]
        return sorted(found, key=lambda t: (-t.confidence, -t.bytes_per_hour, t.caller))

    @property
    def growing(self) -> list[Trend]:
        """Callers whose trend is up but that also shrank at times (churn, or a slow leak)."""
        return [t for t in self.trends if t.confidence == 0 and t.bytes_per_hour > 0
                and t.last.bytes > t.first.bytes and not t.caller.startswith(NOT_SUSPECT_PREFIX)]


def _caller_trend(name: str, samples: Sequence[Sample], hours: Sequence[float]) -> Trend:
    totals = [s.callers.get(name, ZERO) for s in samples]
    byte_rate, r2 = least_squares(hours, [t.bytes for t in totals])
    area_rate, _ = least_squares(hours, [t.areas for t in totals])
    pairs = list(zip(totals, totals[1:]))
    # A line through two points always fits: R² says something from three samples on.
    return Trend(caller=name, first=totals[0], last=totals[-1], bytes_per_hour=byte_rate,
                 areas_per_hour=area_rate, r2=r2 if len(totals) >= 3 else None, steps=len(pairs),
                 grew=sum(1 for a, b in pairs if b.bytes > a.bytes),
                 shrank=sum(1 for a, b in pairs if b.bytes < a.bytes))


def _hole_trend(name: str, values: list[int], frags: list[float | None], hours: list[float],
                sizes: Sequence[int]) -> HoleTrend:
    rate, _ = least_squares(hours, values)
    known = [(h, f) for h, f in zip(hours, frags) if f is not None]
    frag_rate = None
    if len(known) >= 2 and known[0][0] != known[-1][0]:
        frag_rate, _ = least_squares([h for h, _ in known], [f for _, f in known])
    runs_out: dict[int, float | None] = {}
    for size in sizes:
        need = request_span(size)
        if values[-1] < need:
            runs_out[size] = 0.0
        elif rate < 0:
            runs_out[size] = (values[-1] - need) / -rate * 3600.0
        else:
            runs_out[size] = None
    return HoleTrend(name, values, rate, frags, frag_rate, runs_out)


def request_span(size: int) -> int:
    """The hole a request of ``size`` bytes needs: mm/vmalloc.c, __get_vm_area_node (every
    version): ``size = PAGE_ALIGN(size)``, then ``size += PAGE_SIZE`` for the guard page.  A
    dump names no page size; 4 KiB is the page of every arch the model boots."""
    return -(-size // PAGE) * PAGE + PAGE


def series(samples: Sequence[Sample], sizes: Sequence[int] = ()) -> Series:
    """Compare each sample with the next, and the first with the last; the trends of every
    caller and of the largest holes.  ``sizes``: request sizes to say the time left for."""
    if len(samples) < 2:
        raise ConfigError("a diff needs at least two samples")
    samples = list(samples)
    notes: list[str] = []
    if any(b.t <= a.t for a, b in zip(samples, samples[1:])):
        notes.append("the samples' times do not increase (files copied without their times?): "
                     "rates are per hour of the times given; pass --times or --interval")
    steps = [diff(a, b) for a, b in zip(samples, samples[1:])]
    overall = diff(samples[0], samples[-1])
    for d in steps:
        notes.extend(f"{d.old.source} -> {d.new.source}: {n}" for n in d.notes
                     if n not in overall.notes)
    hours = [(s.t - samples[0].t) / 3600.0 for s in samples]
    names = sorted({name for s in samples for name in s.callers})
    trends = [_caller_trend(n, samples, hours) for n in names]
    trends.sort(key=lambda t: (-t.bytes_per_hour, t.caller))
    holes = []
    for name, attr in (("vmalloc range", "largest_hole"), ("module area", "module_largest_hole")):
        values = [getattr(s, attr) for s in samples]
        if all(v is not None for v in values):
            frags = [s.fragmentation for s in samples] if attr == "largest_hole" else []
            holes.append(_hole_trend(name, values, frags, hours, sizes))
    if not holes:
        notes.append("largest hole and fragmentation: not known (addresses hashed in at least "
                      "one dump); counts and bytes per caller are")
    return Series(samples=samples, steps=steps, overall=overall, trends=trends, holes=holes,
                  notes=notes)


def _total(t: Total | None) -> str:
    return "?" if t is None else f"{t.areas} ({human_bytes(t.bytes)})"


def _change_line(c: Change, width: int) -> str:
    moved = ""
    if c.appeared is not None and c.disappeared is not None:
        moved = f"   +{c.appeared.areas} / -{c.disappeared.areas} areas"
    return (f"  {c.name:<{width}} {signed_bytes(c.bytes):>12} {c.areas:+6d} areas   "
            f"{human_bytes(c.before.bytes):>10} -> {human_bytes(c.after.bytes):<10}{moved}"
            ).rstrip()


def format_diff(d: Diff, top: int = 15) -> str:
    """Two samples compared, as text."""
    span = format_duration(d.seconds) if d.seconds > 0 else "no time"
    out = [f"{d.old.source} ({format_moment(d.old.t)}) -> {d.new.source} "
           f"({format_moment(d.new.t)}), {span} apart",
           f"  areas {d.old.areas} -> {d.new.areas} ({d.total.areas:+d}), bytes "
           f"{human_bytes(d.old.bytes)} -> {human_bytes(d.new.bytes)} "
           f"({signed_bytes(d.total.bytes)})"]
    if d.exact:
        out.append(f"  appeared {_total(d.appeared)}, disappeared {_total(d.disappeared)}")
    if d.empty:
        out.append("  nothing changed")
        return "\n".join(out + [f"  note: {n}" for n in d.notes]) + "\n"
    width = max([len(c.name) for c in d.callers[:top]] + [12])
    out += ["", "by caller (net change, before -> after):"]
    out += [_change_line(c, width) for c in d.callers[:top]]
    if len(d.callers) > top:
        rest = d.callers[top:]
        out.append(f"  ... {len(rest)} more callers, {signed_bytes(sum(c.bytes for c in rest))}")
    out += ["", "by kind:"] + [_change_line(c, width) for c in d.kinds]
    return "\n".join(out + [f"  note: {n}" for n in d.notes]) + "\n"


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "not shrinking: no end in sight"
    if seconds == 0:
        return "does not fit now"
    return f"stops fitting in {format_duration(seconds)}"


def format_series(s: Series, top: int = 10) -> str:
    """A series: the overall change, rates, suspects and hole trends, as text."""
    first, last = s.samples[0], s.samples[-1]
    hours = (last.t - first.t) / 3600.0
    out = [f"{len(s.samples)} samples from {format_moment(first.t)} to {format_moment(last.t)} "
           f"({format_duration(last.t - first.t)})"]
    if hours > 0:
        out.append(f"total: {human_bytes(first.bytes)} -> {human_bytes(last.bytes)}, "
                   f"{signed_rate((last.bytes - first.bytes) / hours)} "
                   f"({(last.areas - first.areas) / hours:+.1f} areas/h)")
    out += ["", format_diff(s.overall, top).rstrip("\n")]
    out += ["", "leak suspects (callers that only grew):"]
    if not s.suspects:
        out.append("  none")
    for t in s.suspects[:top]:
        fit = "" if t.r2 is None else f", fit R² {t.r2:.2f}"
        out.append(f"  {t.caller}: {signed_rate(t.bytes_per_hour)} ({t.areas_per_hour:+.1f} "
                   f"areas/h), grew in {t.grew} of {t.steps} steps{fit}; "
                   f"{t.first.areas} -> {t.last.areas} areas; {t.sureness} "
                   f"confidence ({t.confidence:.2f})")
    if s.growing:
        out += ["", "growing with frees in between (churn, or a slower leak):"]
        for t in s.growing[:top]:
            out.append(f"  {t.caller}: {signed_rate(t.bytes_per_hour)}, grew {t.grew} / shrank "
                       f"{t.shrank} of {t.steps} steps")
    for h in s.holes:
        out += ["", f"largest hole of the {h.name}: {human_bytes(h.values[0])} -> "
                    f"{human_bytes(h.values[-1])} ({signed_rate(h.bytes_per_hour)})"]
        frags = [f for f in h.fragmentation if f is not None]
        if frags:
            rate = "" if h.fragmentation_per_hour is None else \
                f" ({h.fragmentation_per_hour:+.4f}/h)"
            out.append(f"  fragmentation {frags[0]:.3f} -> {frags[-1]:.3f}{rate}")
        for size, seconds in h.runs_out.items():
            out.append(f"  a {human_bytes(size)} request: {_when(seconds)}")
    if s.notes:
        out += [""] + [f"note: {n}" for n in s.notes]
    return "\n".join(out) + "\n"


def _total_json(t: Total | None) -> dict[str, int] | None:
    return None if t is None else {"areas": t.areas, "bytes": t.bytes}


def _change_json(c: Change) -> dict[str, Any]:
    return {"name": c.name, "before": _total_json(c.before), "after": _total_json(c.after),
            "appeared": _total_json(c.appeared), "disappeared": _total_json(c.disappeared),
            "bytes": c.bytes, "areas": c.areas}


def series_to_json(s: Series) -> dict[str, Any]:
    """The series as a JSON-ready dict (bytes as ints, rates per hour, times in epoch seconds)."""
    return {
        "samples": [{"source": x.source, "t": x.t, "areas": x.areas, "bytes": x.bytes,
                     "largest_hole": x.largest_hole, "fragmentation": x.fragmentation,
                     "module_largest_hole": x.module_largest_hole} for x in s.samples],
        "callers": [_change_json(c) for c in s.overall.callers],
        "kinds": [_change_json(c) for c in s.overall.kinds],
        "appeared": _total_json(s.overall.appeared),
        "disappeared": _total_json(s.overall.disappeared),
        "trends": [{"caller": t.caller, "bytes_per_hour": t.bytes_per_hour,
                    "areas_per_hour": t.areas_per_hour, "r2": t.r2, "grew": t.grew,
                    "shrank": t.shrank, "steps": t.steps, "confidence": t.confidence}
                   for t in s.trends],
        "suspects": [t.caller for t in s.suspects],
        "holes": [{"range": h.name, "largest": h.values, "bytes_per_hour": h.bytes_per_hour,
                   "fragmentation": h.fragmentation,
                   "fragmentation_per_hour": h.fragmentation_per_hour,
                   "runs_out_seconds": {str(k): v for k, v in h.runs_out.items()}}
                  for h in s.holes],
        "notes": s.notes,
    }
