"""Fleet analysis: every dump summarised in parallel, devices grouped by kernel and arch, and ranked by risk.

Each dump goes through ``analysis.summary.summarize`` on a Dask worker (batches of dumps per
task).  Devices are grouped by kernel (the release series its version text names, else the range
its dump allows) and arch.  A group's *typical request* is the median, over its devices, of the
99th percentile of the sizes of the areas each holds in the vmalloc range: the large request a
typical device of the group makes (a median, so that one odd device does not move it).
A device's *headroom* is its largest free hole divided by that size; under 1, the next such
request fails (or needs a purge to succeed), under ``AT_RISK`` it is at risk.  Devices that left
a series of dumps are also checked for leaks: a caller whose bytes grow from every dump to the
next, by at least ``LEAK_GROWTH``, is a leak suspect.  Dumps with hashed addresses are reported
but not ranked (their holes cannot be known).
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from pyvmalloc.analysis.summary import summarize
from pyvmalloc.errors import PyvmallocError
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.dumps import read_dump
from pyvmalloc.scale.fleet_input import Dump
from pyvmalloc.snapshot.layout import infer_kernel
from pyvmalloc.versions import parse_version

__all__ = ["AT_RISK", "DEVICE_COLUMNS", "LEAK_GROWTH", "analyse_batch",
           "analyse_dump", "analyse_fleet", "rank"]

AT_RISK = 2.0        # headroom under this: fewer than two of the group's large requests fit
LEAK_GROWTH = 0.25   # a caller that grew by a quarter over a device's series, in every step
_TOP_CALLERS = 25    # callers kept per dump for the leak check

DEVICE_COLUMNS: tuple[str, ...] = (
    "device", "taken", "source", "status", "error", "arch", "kernel", "group", "areas",
    "used_bytes", "vmalloc_bytes", "free_bytes", "largest_hole", "holes", "fragmentation",
    "max_request", "typical_request", "headroom", "at_risk", "rank", "top_caller",
    "leak_suspect", "callers",
)


def _percentile(values: Sequence[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _kernel(dump: Dump, snapshot: Any, meminfo: dict[str, int] | None, arch: str | None) -> tuple[str, str | None]:
    """``(group label, exact version or None)``: the version text's series, else the range the
    dump allows (``infer_kernel``)."""
    if dump.version:
        try:
            v = parse_version(dump.version)
            series = v.series()
            label = f"Linux {series[0]}.{series[1]}" + (f".{series[2]}" if v.major == 2 else "")
            return label, str(v)
        except PyvmallocError:
            pass   # an unknown version text: date the dump by what it shows instead
    rng, _why = infer_kernel(snapshot, meminfo, arch=arch)
    return str(rng), None


def analyse_dump(dump: Dump) -> dict[str, Any]:
    """One row of the devices table (``DEVICE_COLUMNS``) for ``dump``; a dump that cannot be
    read is a row with ``status="error"`` and the reason."""
    row: dict[str, Any] = dict.fromkeys(DEVICE_COLUMNS)
    row.update(device=dump.device, taken=dump.taken, source=dump.source, status="ok")
    try:
        snap, _fmt = read_dump(dump.vmallocinfo, dump.source)   # plain text parses as before
        mem = parse_meminfo(dump.meminfo, dump.source + " meminfo") if dump.meminfo else None
        group_kernel, exact = _kernel(dump, snap, mem, None)
        s = summarize(snap, meminfo=mem, kernel=exact, top=_TOP_CALLERS)
    except PyvmallocError as exc:
        row.update(status="error", error=str(exc))
        return row
    row.update(arch=s.arch, kernel=exact or group_kernel, group=f"{group_kernel} {s.arch}",
               areas=s.areas, used_bytes=s.bytes,
               top_caller=s.top_callers[0].caller if s.top_callers else None,
               callers=json.dumps({c.caller: c.bytes for c in s.top_callers}, sort_keys=True))
    if not s.addresses_trusted or s.hole_stats is None or s.bounds is None:
        row.update(status="hashed" if not s.addresses_trusted else "no range",
                   error=s.address_reason if not s.addresses_trusted else "vmalloc range unknown")
        return row
    inside = [ln.size for ln in s.lines if s.bounds.start <= ln.start < s.bounds.end]
    row.update(vmalloc_bytes=sum(inside), free_bytes=s.hole_stats.total,
               largest_hole=s.hole_stats.largest, holes=s.hole_stats.count,
               fragmentation=s.fragmentation, max_request=max(inside, default=0),
               # The sizes go to the group's percentile; kept in the row as JSON for rank().
               typical_request=None)
    row["_sizes"] = inside
    return row


def analyse_batch(dumps: Sequence[Dump]) -> list[dict[str, Any]]:
    """``analyse_dump`` of each dump (one Dask task runs a batch: dumps are small and many)."""
    return [analyse_dump(d) for d in dumps]


def _leaks(series: list[dict[str, Any]]) -> str | None:
    """The caller that grew in every step of a device's series by ``LEAK_GROWTH`` overall."""
    if len(series) < 3:
        return None
    steps = [json.loads(r["callers"] or "{}") for r in series]
    suspects = []
    for caller in steps[-1]:
        sizes = [s.get(caller, 0) for s in steps]
        if all(b > a for a, b in zip(sizes, sizes[1:])) and sizes[0] > 0 \
                and sizes[-1] >= sizes[0] * (1 + LEAK_GROWTH):
            suspects.append((sizes[-1] - sizes[0], caller))
    if not suspects:
        return None
    grew, caller = max(suspects)
    return f"{caller} +{grew >> 10} KiB over {len(series)} dumps"


def rank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill ``typical_request``, ``headroom``, ``at_risk``, ``leak_suspect`` and ``rank`` (1 =
    most at risk; latest dump of each device only) and return the rows, ranked ones first."""
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_device[r["device"]].append(r)
    latest = []
    for dev_rows in by_device.values():
        dev_rows.sort(key=lambda r: (r["taken"], r["source"]))
        last = dev_rows[-1]
        last["leak_suspect"] = _leaks([r for r in dev_rows if r["status"] == "ok"])
        latest.append(last)
    large: dict[str, list[int]] = defaultdict(list)   # group -> each device's large request
    for r in latest:
        if r.get("_sizes"):
            large[r["group"]].append(_percentile(r["_sizes"], 0.99))
    typical = {g: int(statistics.median(v)) for g, v in large.items()}
    for r in rows:
        r.pop("_sizes", None)
        t = typical.get(r["group"])
        if r["status"] == "ok" and t:
            r["typical_request"] = t
            r["headroom"] = round(r["largest_hole"] / t, 4)
            r["at_risk"] = r["headroom"] < AT_RISK
    ranked = sorted((r for r in latest if r["headroom"] is not None),
                    key=lambda r: (not r["leak_suspect"] and r["headroom"] >= AT_RISK,
                                   r["headroom"], r["device"]))
    for i, r in enumerate(ranked, 1):
        r["rank"] = i
    rest = sorted((r for r in rows if r["rank"] is None), key=lambda r: (r["device"], r["taken"]))
    return ranked + rest


def analyse_fleet(dumps: Sequence[Dump], client: Any, batch: int = 25,
                  progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Analyse ``dumps`` on ``client``'s cluster, ``batch`` dumps per task; ranked rows.

    ``progress(n)`` is called with the number of dumps done so far after each batch.
    """
    from dask.distributed import as_completed

    chunks = [list(dumps[i:i + batch]) for i in range(0, len(dumps), batch)]
    futures = [client.submit(analyse_batch, c, pure=False) for c in chunks]
    rows: list[dict[str, Any]] = []
    for fut in as_completed(futures):  # type: ignore[no-untyped-call]
        rows.extend(fut.result())
        fut.release()
        if progress is not None:
            progress(len(rows))
    rows.sort(key=lambda r: (r["device"], r["taken"], r["source"]))
    return rank(rows)
