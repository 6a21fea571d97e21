"""Replay a trace of the vmalloc tracepoints against the list (2.6.22) and kva (5.2+) allocators.

A trace (``formats.trace``: ftrace text of a 6.2+ kernel, or ``Machine.trace()``) becomes a
workload of three kinds of operation:

- a **request** per ``alloc_vmap_area`` search, except that a failed search followed, in the
  same task and with no free of that task in between, by a ``purge_vmap_area_lazy`` and a
  search with the same size, align, vstart and vend is one request retried: alloc_vmap_area
  (2.6.28+) purges the lazy areas and searches again once before it gives up, and traces
  every search.  (A retry after the 6.x ``vmap_notify_list`` callbacks freed memory comes
  without a purge before it and counts as a new request.)
- a **free** per ``free_vmap_area_noflush`` (an area joins the lazy list) or ``vfree_area``
  (the model's own event for 2.6.22's immediate free; no kernel has it);
- a **purge** per ``purge_vmap_area_lazy`` (the kernel's lazy areas were flushed there).

Each allocator replays it on a fresh machine of the chosen arch through the model's own paths
(alloc_vmap_area's search with purge-and-retry, ``remove_vm_area``, ``vm_unmap_aliases``):
``list`` with 2.6.22's immediate free and TLB flush, ``kva`` with the lazy purge of 2.6.28+,
whose threshold is the trace's ``nr_lazy_max`` when the trace has one.  The trace's addresses
are mapped to the replay's (a free names the trace's address; the replay frees the area it
gave that request).  What a replay cannot know:

- the address space starts empty, where the traced kernel had areas from before the trace:
  addresses differ, and frees of areas allocated before the trace are counted, not replayed;
- areas the kernel frees without a tracepoint (``free_vmap_area``: error paths, per-CPU
  areas) stay allocated unless their address is handed out again in the trace, which is
  taken as their free (``implicit_frees``);
- the kernel purges from a worker when ``nr_lazy`` passes ``nr_lazy_max``; the replay runs that
  worker right after the free that scheduled it (before 5.19 the free purges itself), and
  purges again wherever the trace shows a purge.

The report gives per allocator: operations, failures against the trace's ``failed=``, host
microseconds per operation (measured in this run; compare allocators, not hosts), the
deterministic work counters (``kernel/work.py``: tree nodes or list entries visited, locks, TLB
flushes; the same on every host), the free holes of the busiest range at the end, TLB flushes
and lazy purges.

:func:`replay_exact` is the other use of a trace: a whole trace from boot (a 6.9+ kernel's, such
as tests/data/oracle/linux-6.12-amd64/*/trace_after.txt) replayed, event by event, on one machine
of the traced kernel through the model's own machinery (its default allocator, ``kva-rbtree``
for 5.2+, and the 6.9+ vmap nodes with their pools), to count how many traced addresses the
model reproduces:

- ``alloc_vmap_area``: the model's ``alloc_vmap_area`` search on the event's CPU (``node_alloc``
  picks that CPU's node); a failed search, the purge after it and the retry of the same task
  are the model's own purge-and-retry, compared at the retry;
- ``free_vmap_area_noflush``: the area the model gave that request is freed lazily (it joins its
  node's lazy list; a drain it schedules waits for the trace's purge);
- ``purge_vmap_area_lazy``: the model purges (the pools decay, lazy areas go to their node's
  pool or back to the free tree);
- the first dynamic percpu chunk's area (``pcpu_get_vm_areas``, untraced) is placed, when asked
  (``percpu``), top-down at ``VMALLOC_END`` aligned down to the percpu atom, right after the
  first traced allocation of ``percpu + PAGE_SIZE`` bytes in the vmalloc range: the chunk's
  ``obj_exts`` (``pcpu_mem_zalloc(pcpu_chunk_map_bits(chunk) * sizeof(struct pcpuobj_ext))``)
  that ``pcpu_alloc_chunk`` vzallocs just before ``pcpu_create_chunk`` calls
  ``pcpu_get_vm_areas``; in the 6.12 captures (2 CPUs) both are 2 MiB.  The area sits at the top
  of the range, so it changes no traced address there: it is placed to match ``before.txt``.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pyvmalloc.arch import get_profile
from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.formats.trace import TraceEvent, TraceEvents
from pyvmalloc.formats._text import gc_paused
from pyvmalloc.kernel.machine import Machine
from pyvmalloc.kernel.work import WorkCounters, work_counters
from pyvmalloc.snapshot.layout import HoleStats, fragmentation_index, hole_stats
from pyvmalloc.vmalloc.allocator import ALLOCATORS
from pyvmalloc.vmalloc.vm_struct import VM_ALLOC, VM_VM_AREA, vm_struct, vmap_area

__all__ = ["AllocatorResult", "ExactReplay", "Free", "Purge", "ReplayReport", "Request", "Tally",
           "Workload", "exact_to_json", "format_exact", "format_report", "mark_windows", "replay",
           "replay_exact", "to_json", "workload"]


@dataclass(frozen=True)
class Request:
    """One alloc_vmap_area request (its retries folded in), as the trace saw it."""

    line: int
    size: int
    align: int
    vstart: int
    vend: int
    addr: int | None  # the trace's answer; None when its last search failed
    searches: int = 1


@dataclass(frozen=True)
class Free:
    """An area freed in the trace, named by the trace's address."""

    line: int
    va_start: int


@dataclass(frozen=True)
class Purge:
    """A lazy purge in the trace."""

    line: int
    num_purged: int


Op = Request | Free | Purge


@dataclass
class Workload:
    """The operations of a trace, in order, and what was seen while reading them."""

    ops: list[Op]
    retries: int  # searches folded into an earlier request
    nr_lazy_max: int | None  # lazy_max_pages() of the traced kernel (free_vmap_area_noflush)
    ranges: Counter[tuple[int, int]]  # requests per (vstart, vend)

    @property
    def requests(self) -> list[Request]:
        """The requests, in order."""
        return [op for op in self.ops if isinstance(op, Request)]

    @property
    def main_range(self) -> tuple[int, int] | None:
        """The ``(vstart, vend)`` most requests searched (the vmalloc area, usually)."""
        return self.ranges.most_common(1)[0][0] if self.ranges else None


def workload(events: Sequence[TraceEvent]) -> Workload:
    """The requests, frees and purges of ``events`` (see the module docstring for retries)."""
    with gc_paused():  # one op kept per event: see formats._text.gc_paused
        return _workload(events)


def _workload(events: Sequence[TraceEvent]) -> Workload:
    ops: list[Op] = []
    pending: dict[int, int] = {}  # pid -> index in ops of its failed request
    purged: set[int] = set()  # pids that purged since their last search
    retries = 0
    nr_lazy_max = None
    ranges: Counter[tuple[int, int]] = Counter()
    for ev in events:
        if ev.event == "alloc_vmap_area":
            f = dict(ev.fields)  # one dict, not five scans of the field tuple
            key = (f["size"], f["align"], f["vstart"], f["vend"])
            addr = None if f["failed"] else f["addr"]
            index = pending.pop(ev.pid, None)
            earlier = ops[index] if index is not None else None
            if (isinstance(earlier, Request) and ev.pid in purged
                    and (earlier.size, earlier.align, earlier.vstart, earlier.vend) == key):
                assert index is not None
                ops[index] = replace(earlier, addr=addr, searches=earlier.searches + 1)
                retries += 1
            else:
                ops.append(Request(ev.line, *key, addr))
                index = len(ops) - 1
                ranges[key[2:]] += 1
            if addr is None:
                pending[ev.pid] = index
            purged.discard(ev.pid)
        elif ev.event == "purge_vmap_area_lazy":
            purged.add(ev.pid)
            ops.append(Purge(ev.line, ev["npurged"]))
        elif ev.event in ("free_vmap_area_noflush", "vfree_area"):
            # The task did something else: its next search is a new request.
            pending.pop(ev.pid, None)
            purged.discard(ev.pid)
            if ev.event == "free_vmap_area_noflush" and nr_lazy_max is None:
                nr_lazy_max = ev["nr_lazy_max"]
            ops.append(Free(ev.line, ev["va_start"]))
    return Workload(ops, retries, nr_lazy_max, ranges)


@dataclass
class AllocatorResult:
    """What one allocator did with the workload."""

    allocator: str
    lazy_purge: bool
    allocs: int = 0
    frees: int = 0
    failures: int = 0
    outcome_mismatches: int = 0  # requests that failed here and not in the trace, or the reverse
    same_address: int = 0  # requests given the trace's own address
    unmatched_frees: int = 0  # frees of areas this replay does not hold
    implicit_frees: int = 0  # areas dropped because the trace handed their address out again
    alloc_ns: int = 0
    free_ns: int = 0
    tlb_flushes: int = 0
    purges: int = 0  # lazy purges that flushed something
    purged_areas: int = 0
    lazy_pending: int = 0  # areas still waiting for a purge at the end
    range: tuple[int, int] | None = None
    holes: HoleStats | None = None
    fragmentation: float | None = None
    addresses: list[tuple[int | None, int | None]] = field(default_factory=list, repr=False)
    work: WorkCounters = field(default_factory=WorkCounters)

    @property
    def operations(self) -> int:
        """Requests and frees replayed."""
        return self.allocs + self.frees

    @property
    def usec_per_op(self) -> float | None:
        """Host microseconds per operation (requests and frees)."""
        return (self.alloc_ns + self.free_ns) / 1000 / self.operations if self.operations else None

    @property
    def usec_per_alloc(self) -> float | None:
        """Host microseconds per request."""
        return self.alloc_ns / 1000 / self.allocs if self.allocs else None

    @property
    def usec_per_free(self) -> float | None:
        """Host microseconds per free."""
        return self.free_ns / 1000 / self.frees if self.frees else None


@dataclass
class ReplayReport:
    """A trace, the workload read from it, and each allocator's replay."""

    source: str
    arch: str
    events: Counter[str]
    requests: int
    retries: int
    frees: int
    purges: int
    trace_failures: int
    nr_lazy_max: int | None
    ranges: list[tuple[int, int, int]]  # (vstart, vend, requests), busiest first
    skipped_lines: int
    lost_events: int
    results: dict[str, AllocatorResult]


def _check(wl: Workload, source: str, page: int, bits: int, arch: str) -> None:
    top = 1 << bits
    for op in wl.ops:
        if isinstance(op, Request):
            where = f"{source}:{op.line}"
            if op.size == 0 or op.size % page:
                raise FormatError(where, f"alloc_vmap_area: size={op.size} is not a multiple of "
                                  f"{arch}'s page size {page}")
            if op.align == 0 or op.align & (op.align - 1):
                raise FormatError(where, f"alloc_vmap_area: align={op.align} is not a power of two")
            if op.vend > top or op.vstart >= op.vend:
                raise FormatError(where, f"alloc_vmap_area: vstart=0x{op.vstart:x} vend=0x{op.vend:x} "
                                  f"is no range of the {bits}-bit address space of {arch}")


def _replay_one(wl: Workload, name: str, arch: str, kernel: str | None,
                lean: bool = True) -> AllocatorResult:
    """Replay ``wl`` on a fresh machine with allocator ``name``.

    ``lean`` (always, for a trace: it carries addresses and sizes, never data): the replay maps
    no page, so a free unlinks its area without walking page tables that hold no entry
    (``remove_unmapped_vm_area_locked``) and the workers run only when a drain is pending (a
    replay queues no deferred vfree and no kvfree_rcu).  ``lean=False`` is the full path
    (``remove_vm_area``, ``run_workers``), kept to show that both give the same report.
    """
    # The 2.6.22 list frees at once; the others are the lazy-purge kernels they came with.
    m = Machine(arch=arch, ram=get_profile(arch).min_ram, allocator=name, kernel=kernel,
                lazy_purge=name != "list")
    if m.lazy_purge and wl.nr_lazy_max:
        m.vm.lazy_max_pages = wl.nr_lazy_max  # the traced kernel's lazy_max_pages()
    page = m.PAGE_SIZE
    res = AllocatorResult(name, m.lazy_purge, range=wl.main_range)
    live: dict[int, vm_struct] = {}  # the trace's address -> the replay's area
    flushes0 = m.mmu.stats["flushes"]
    work0 = work_counters(m)
    clock = time.perf_counter_ns
    vm = m.vm
    lock = m.vmlist_lock
    alloc_vmap_range = vm.alloc_vmap_range
    unlink = vm.remove_unmapped_vm_area_locked if lean else vm.remove_vm_area_locked

    def remove(addr: int) -> None:
        with lock.write():
            unlink(addr)

    for op in wl.ops:
        if type(op) is Request:
            if op.addr is not None and op.addr in live:
                # The trace hands out an address it never freed: a free without tracepoint.
                remove(live.pop(op.addr).addr)
                res.implicit_frees += 1
            area = vm_struct(addr=0, size=op.size, flags=VM_ALLOC, caller="replay", handle=0)
            va = vmap_area(0, 0, VM_VM_AREA, area)
            t0 = clock()
            with lock.write():
                addr = alloc_vmap_range(op.size, max(op.align, page), op.vstart, op.vend, va)
            res.alloc_ns += clock() - t0
            res.allocs += 1
            res.addresses.append((op.addr, addr))
            if addr is None:
                res.failures += 1
            else:
                area.addr = va.va_start = addr
                va.va_end = addr + op.size
                if op.addr is not None:
                    live[op.addr] = area
                    res.same_address += addr == op.addr
            res.outcome_mismatches += (addr is None) != (op.addr is None)
        elif type(op) is Free:
            held = live.pop(op.va_start, None)
            if held is None:
                res.unmatched_frees += 1
                continue
            t0 = clock()
            remove(held.addr)  # lazily (kva) or with its own flush (list)
            if not lean or vm.drain_pending:
                vm.run_workers()  # 5.19+: the drain the free scheduled runs in its worker now
            res.free_ns += clock() - t0
            res.frees += 1
        elif m.lazy_purge:
            m.vm_unmap_aliases()
    res.tlb_flushes = m.mmu.stats["flushes"] - flushes0
    res.work = work_counters(m) - work0
    res.purges = m.vm_stats["purge_runs"]
    res.purged_areas = m.vm_stats["purged_areas"]
    res.lazy_pending = len(m.lazy_areas())
    if wl.main_range is not None:
        start, end = wl.main_range
        with m.vmlist_lock.read():
            holes = list(m.vmap_allocator.for_each_free(start, end))
        res.holes = hole_stats(holes)
        res.fragmentation = fragmentation_index(holes)
    return res


def replay(events: Sequence[TraceEvent], arch: str = "x86_64",
           allocators: Sequence[str] = ALLOCATORS, source: str | None = None,
           kernel: str | None = None) -> ReplayReport:
    """Replay the trace ``events`` on a fresh machine per allocator (``ALLOCATORS``), each
    booted as Linux ``kernel`` (default: the default kernel) with that allocator; the 2.6.22
    ``list`` frees at once, the others lazily.

    FormatError (``source:line``) for a request no kernel could make on ``arch``, or a trace
    without vmalloc events; ConfigError for an unknown arch or allocator.
    """
    if source is None:
        source = events.source if isinstance(events, TraceEvents) else "<trace>"
    for name in allocators:
        if name not in ALLOCATORS:
            raise ConfigError(f"unknown allocator {name!r}: choose one of {', '.join(ALLOCATORS)}")
    profile = get_profile(arch)
    wl = workload(events)
    if not wl.ops:
        skipped = events.skipped if isinstance(events, TraceEvents) else 0
        raise FormatError(source, f"no vmalloc trace events ({skipped} other lines): enable them "
                          "with 'echo 1 > /sys/kernel/tracing/events/vmalloc/enable'")
    _check(wl, source, profile.page_size, profile.bits, profile.name)
    reqs = wl.requests
    results = {name: _replay_one(wl, name, profile.name, kernel) for name in allocators}
    return ReplayReport(
        source=source, arch=profile.name,
        events=Counter(ev.event for ev in events),
        requests=len(reqs), retries=wl.retries,
        frees=sum(isinstance(op, Free) for op in wl.ops),
        purges=sum(isinstance(op, Purge) for op in wl.ops),
        trace_failures=sum(r.addr is None for r in reqs),
        nr_lazy_max=wl.nr_lazy_max,
        ranges=[(s, e, n) for (s, e), n in wl.ranges.most_common()],
        skipped_lines=events.skipped if isinstance(events, TraceEvents) else 0,
        lost_events=events.lost if isinstance(events, TraceEvents) else 0,
        results=results,
    )


def _round(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(x, digits)


def to_json(report: ReplayReport) -> dict[str, Any]:
    """The report as JSON-ready data (addresses as ``0x`` strings)."""
    def result(r: AllocatorResult) -> dict[str, Any]:
        return {
            "lazy_purge": r.lazy_purge, "operations": r.operations, "allocs": r.allocs,
            "frees": r.frees, "failures": r.failures, "outcome_mismatches": r.outcome_mismatches,
            "same_address": r.same_address, "unmatched_frees": r.unmatched_frees,
            "implicit_frees": r.implicit_frees, "usec_per_op": _round(r.usec_per_op),
            "usec_per_alloc": _round(r.usec_per_alloc), "usec_per_free": _round(r.usec_per_free),
            "tlb_flushes": r.tlb_flushes, "purges": r.purges, "purged_areas": r.purged_areas,
            "lazy_pending": r.lazy_pending, "work": r.work.as_dict(),
            "range": None if r.range is None else [f"0x{r.range[0]:x}", f"0x{r.range[1]:x}"],
            "holes": None if r.holes is None else {"count": r.holes.count, "total": r.holes.total,
                                                   "largest": r.holes.largest},
            "fragmentation": _round(r.fragmentation, 6),
        }
    return {
        "source": report.source, "arch": report.arch, "events": dict(sorted(report.events.items())),
        "requests": report.requests, "retries": report.retries, "frees": report.frees,
        "purges": report.purges, "trace_failures": report.trace_failures,
        "nr_lazy_max": report.nr_lazy_max,
        "ranges": [{"vstart": f"0x{s:x}", "vend": f"0x{e:x}", "requests": n} for s, e, n in report.ranges],
        "skipped_lines": report.skipped_lines, "lost_events": report.lost_events,
        "results": {name: result(r) for name, r in report.results.items()},
    }


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _bytes(n: int | None) -> str | None:
    """``n`` bytes the way people read them (``4.0 KiB``, ``31.9 TiB``)."""
    if n is None:
        return None
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}"
    return f"{n} B"


def format_report(report: ReplayReport) -> str:
    """The report as text: what the trace holds, then one column per allocator."""
    evs = ", ".join(f"{name} {n}" for name, n in sorted(report.events.items()))
    out = [f"{report.source}: {sum(report.events.values())} events ({evs}); "
           f"{report.skipped_lines} other lines skipped"
           + (f"; {report.lost_events} events LOST by the ring buffer" if report.lost_events else "")]
    out.append(f"workload: {report.requests} requests ({report.retries} retries after a purge folded in, "
               f"{report.trace_failures} failed in the trace), {report.frees} frees, "
               f"{report.purges} purges")
    for s, e, n in report.ranges:
        out.append(f"  range 0x{s:x}-0x{e:x}: {n} requests")
    names = list(report.results)
    rows: list[tuple[str, list[object]]] = []

    def row(label: str, get: Any) -> None:
        rows.append((label, [get(report.results[n]) for n in names]))

    row("lazy purge", lambda r: "on" if r.lazy_purge else "off")
    row("operations", lambda r: r.operations)
    row("failures", lambda r: f"{r.failures} (trace {report.trace_failures})")
    row("outcome mismatches", lambda r: r.outcome_mismatches)
    row("same address as trace", lambda r: r.same_address)
    row("frees not replayed", lambda r: r.unmatched_frees)
    row("implicit frees", lambda r: r.implicit_frees)
    row("host us/op", lambda r: r.usec_per_op)
    row("host us/alloc", lambda r: r.usec_per_alloc)
    row("host us/free", lambda r: r.usec_per_free)
    row("TLB flushes", lambda r: r.tlb_flushes)
    row("nodes visited/op", lambda r: r.work.visited / r.operations if r.operations else None)
    row("locks/op", lambda r: r.work.locks / r.operations if r.operations else None)
    row("lazy purges", lambda r: r.purges)
    row("areas awaiting purge", lambda r: r.lazy_pending)
    row("free holes", lambda r: None if r.holes is None else r.holes.count)
    row("largest hole", lambda r: None if r.holes is None else _bytes(r.holes.largest))
    row("free", lambda r: None if r.holes is None else _bytes(r.holes.total))
    # 1 - largest/free: tiny on a 64-bit vmalloc area, hence the significant digits
    row("fragmentation", lambda r: None if r.fragmentation is None else f"{r.fragmentation:.3g}")
    out.append("")
    out.append(f"replayed on {report.arch} (fresh address space; holes of the busiest range):")
    out.append(f"{'':<24}" + "".join(f"{n:>18}" for n in names))
    for label, cells in rows:
        out.append(f"{label:<24}" + "".join(f"{_cell(c):>18}" for c in cells))
    if "list" in report.results and "kva" in report.results:
        lst, kva = report.results["list"].usec_per_op, report.results["kva"].usec_per_op
        if lst and kva:
            out.append(f"list/kva host time per operation: {lst / kva:.2f}x")
    return "\n".join(out) + "\n"


# ---- a whole trace through the model ------------------------------------------------------------
PERCPU_ATOM = 2 << 20  # x86_64 setup_per_cpu_areas: pcpu_embed_first_chunk(..., PMD_SIZE, ...)


@dataclass
class Tally:
    """Traced allocations and how many the model gave the traced address, aligned (``align``
    above a page) ones apart."""

    allocs: int = 0
    same: int = 0
    aligned: int = 0
    aligned_same: int = 0

    def add(self, aligned: bool, same: bool) -> None:
        """Count one traced allocation."""
        self.allocs += 1
        self.same += same
        self.aligned += aligned
        self.aligned_same += aligned and same

    @property
    def exact(self) -> bool:
        """Every traced address reproduced."""
        return self.same == self.allocs

    def text(self) -> str:
        """``same/allocs (aligned same/aligned aligned)``."""
        return f"{self.same}/{self.allocs} (aligned {self.aligned_same}/{self.aligned})"


@dataclass
class ExactReplay:
    """What :func:`replay_exact` reproduced of a trace."""

    source: str
    kernel: str
    arch: str
    cpus: int
    allocator: str
    whole: Tally = field(default_factory=Tally)
    script: Tally = field(default_factory=Tally)  # the allocations inside ``windows``
    windows: list[tuple[int, int]] = field(default_factory=list)
    retries: int = 0  # failed searches whose purge and retry the model made itself
    frees: int = 0
    unmatched_frees: int = 0  # frees of areas the model does not hold (from before the trace)
    purges: int = 0
    lazy_mismatches: int = 0  # frees after which the model's nr_lazy is not the trace's
    purge_mismatches: int = 0  # purges that purged another number of areas than the trace's
    pool_hits: int = 0
    percpu: tuple[int, int] | None = None  # (start, size) of the percpu area placed
    misses: list[str] = field(default_factory=list)
    machine: Machine | None = field(default=None, repr=False)  # the machine at the trace's end

    @property
    def exact(self) -> bool:
        """Every traced address, lazy count and purge count reproduced."""
        return self.whole.exact and not self.lazy_mismatches and not self.purge_mismatches


_MARK = re.compile(r"tracing_mark_write:\s*(.*?)\s*$")


def mark_windows(text: str, begin: str = r"oracle script\d* begin",
                 end: str = r"oracle script\d* end") -> list[tuple[int, int]]:
    """The ``(first, last)`` line numbers between each ``tracing_mark_write`` that matches
    ``begin`` and the next that matches ``end`` (the oracle probe marks its scripts so)."""
    out: list[tuple[int, int]] = []
    opened: int | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _MARK.search(line)
        if m is None:
            continue
        if opened is None and re.fullmatch(begin, m.group(1)):
            opened = lineno
        elif opened is not None and re.fullmatch(end, m.group(1)):
            out.append((opened, lineno))
            opened = None
    return out


def _pcpu_get_vm_area(m: Machine, size: int, align: int) -> tuple[int, int] | None:
    """``pcpu_get_vm_areas`` for one group: the highest ``align``-ed ``size`` bytes free below
    ``VMALLOC_END & ~(align - 1)`` (``pvm_determine_end_from_reverse``), carved out of the free
    tree (``va_clip``) and busy with no node (never freed)."""
    top = m.VMALLOC_END & -align
    with m.vmlist_lock.write():
        holes = list(m.vmap_allocator.for_each_free(m.VMALLOC_START, m.VMALLOC_END))
        for start, length in reversed(holes):
            end = min(start + length, top) & -align
            if end - size >= start:
                area = vm_struct(addr=end - size, size=size, flags=VM_ALLOC,
                                 caller="pcpu_get_vm_areas", handle=0)
                if m.reserve_vmap_area(vmap_area(end - size, end, VM_VM_AREA, area)):
                    return end - size, size
                return None
    return None


def replay_exact(events: Sequence[TraceEvent], kernel: str | None = None, arch: str = "x86_64",
                 cpus: int | None = None, percpu: int | None = None,
                 windows: Sequence[tuple[int, int]] = (), source: str | None = None,
                 max_misses: int = 20) -> ExactReplay:
    """Replay a whole trace from boot on one machine of Linux ``kernel`` (module docstring):
    ``cpus`` (default: the highest CPU of the trace + 1) CPUs, the kernel's default allocator,
    ``lazy_max_pages`` from the trace's ``nr_lazy_max``; ``percpu``: bytes of the percpu area
    to place (None: none); ``windows``: line ranges (:func:`mark_windows`) whose allocations
    are also counted apart (``script``).

    FormatError for a trace without vmalloc events; ConfigError for a bad arch, kernel or cpus.
    """
    if source is None:
        source = events.source if isinstance(events, TraceEvents) else "<trace>"
    if not any(ev.event in ("alloc_vmap_area", "free_vmap_area_noflush", "purge_vmap_area_lazy")
               for ev in events):
        raise FormatError(source, "no alloc_vmap_area, free_vmap_area_noflush or "
                          "purge_vmap_area_lazy events to replay")
    top_cpu = max(ev.cpu for ev in events)
    if cpus is None:
        cpus = top_cpu + 1
    elif cpus <= top_cpu:
        raise ConfigError(f"cpus={cpus}: the trace has events of CPU {top_cpu}")
    m = Machine(arch=arch, ram=get_profile(arch).min_ram, kernel=kernel, cpus=cpus)
    for ev in events:
        if ev.event == "free_vmap_area_noflush":
            m.vm.lazy_max_pages = ev["nr_lazy_max"]  # the traced kernel's lazy_max_pages()
            break
    page = m.PAGE_SIZE
    out = ExactReplay(source, str(m.kernel), m.profile.name, cpus, m.allocator_name,
                      windows=list(windows))
    held: dict[int, int] = {}  # the trace's address -> the model's
    retrying: dict[int, tuple[tuple[int, int, int, int], int | None]] = {}  # pid -> request, answer
    purged: set[int] = set()  # pids whose pending retry's purge the model already made
    for ev in events:
        if ev.event not in ("alloc_vmap_area", "free_vmap_area_noflush", "purge_vmap_area_lazy"):
            continue
        m.current_cpu = ev.cpu
        if ev.event == "alloc_vmap_area":
            key = (ev["size"], max(ev["align"], page), ev["vstart"], ev["vend"])
            pending = retrying.pop(ev.pid, None)
            if pending is not None and pending[0] == key and ev.pid in purged:
                got = pending[1]  # the retry the model made in the failed search's call
                out.retries += 1
            else:
                got = _model_alloc(m, *key)
            purged.discard(ev.pid)
            if ev["failed"]:
                retrying[ev.pid] = (key, got)
                continue
            traced = ev["addr"]
            aligned = ev["align"] > page
            out.whole.add(aligned, got == traced)
            if any(lo <= ev.line <= hi for lo, hi in out.windows):
                out.script.add(aligned, got == traced)
            if got != traced and len(out.misses) < max_misses:
                out.misses.append(f"{source}:{ev.line}: alloc_vmap_area size={ev['size']} "
                                  f"align={ev['align']} cpu={ev.cpu}: traced {traced:#x}, model "
                                  + ("failed" if got is None else f"{got:#x}"))
            if got is not None:
                held[traced] = got
            if (percpu is not None and out.percpu is None and ev["size"] == percpu + page
                    and (ev["vstart"], ev["vend"]) == (m.VMALLOC_START, m.VMALLOC_END)):
                out.percpu = _pcpu_get_vm_area(m, percpu, PERCPU_ATOM)
        elif ev.event == "free_vmap_area_noflush":
            retrying.pop(ev.pid, None)
            mine = held.pop(ev["va_start"], None)
            if mine is None or m.remove_vm_area(mine) is None:
                out.unmatched_frees += 1
                continue
            out.frees += 1
            if sum(va.size for va in m.lazy_areas()) // page != ev["nr_lazy"]:
                out.lazy_mismatches += 1
        else:
            if ev.pid in retrying and ev.pid not in purged:
                purged.add(ev.pid)  # the model purged inside the failed search's call
                continue
            out.purges += 1
            if len(m.lazy_areas()) != ev["npurged"]:
                out.purge_mismatches += 1
            m.vm_unmap_aliases()
    if m.vmap_nodes is not None:
        out.pool_hits = int(m.vmap_nodes.stats["pool_hits"])
    m.check()
    out.machine = m
    return out


def _model_alloc(m: Machine, size: int, align: int, vstart: int, vend: int) -> int | None:
    """The model's ``alloc_vmap_area`` (pools, search, purge and retry) for a traced request."""
    area = vm_struct(addr=0, size=size, flags=VM_ALLOC, caller="replay", handle=0)
    va = vmap_area(0, 0, VM_VM_AREA, area)
    with m.vmlist_lock.write():
        addr = m.vm.alloc_vmap_range(size, align, vstart, vend, va)
    if addr is not None:
        area.addr = va.va_start = addr
        va.va_end = addr + size
    return addr


def format_exact(r: ExactReplay) -> str:
    """One line: what the model reproduced of the trace."""
    script = f"; script {r.script.text()}" if r.windows else ""
    lazy = (f"; {r.lazy_mismatches} lazy counts and {r.purge_mismatches} purge counts differ"
            if r.lazy_mismatches or r.purge_mismatches else "")
    return (f"{r.source}: Linux {r.kernel} {r.arch} {r.cpus} CPUs {r.allocator}: "
            f"{r.whole.text()} traced addresses reproduced{script}; {r.pool_hits} pool hits, "
            f"{r.frees} frees ({r.unmatched_frees} not held), {r.purges} purges{lazy}\n")


def exact_to_json(r: ExactReplay) -> dict[str, Any]:
    """:func:`replay_exact`'s report as JSON-ready data."""
    def tally(t: Tally) -> dict[str, int]:
        return {"allocs": t.allocs, "same": t.same, "aligned": t.aligned, "aligned_same": t.aligned_same}
    return {
        "source": r.source, "kernel": r.kernel, "arch": r.arch, "cpus": r.cpus,
        "allocator": r.allocator, "exact": r.exact, "whole": tally(r.whole),
        "script": tally(r.script), "windows": [list(w) for w in r.windows],
        "retries": r.retries, "frees": r.frees, "unmatched_frees": r.unmatched_frees,
        "purges": r.purges, "lazy_mismatches": r.lazy_mismatches,
        "purge_mismatches": r.purge_mismatches, "pool_hits": r.pool_hits,
        "percpu": None if r.percpu is None else [f"0x{r.percpu[0]:x}", r.percpu[1]],
        "misses": r.misses,
    }
