"""Maps to draw: a machine after a list of operations or after the events of an ftrace capture
(the whole of it, or a replay stopped at a step), or a real ``/proc/vmallocinfo`` dump."""

from __future__ import annotations

import os

import pyvmalloc as pv
from pyvmalloc.analysis.replay import replay_exact
from pyvmalloc.course.quiz import Op, QuizConfig, parse_ops, replay
from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.formats.dumps import read_dump
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.trace import TraceEvent, parse_trace
from pyvmalloc.viz.html_map import MapData, map_data

__all__ = ["DEMO_OPS", "map_of_dump", "map_of_ops", "map_of_trace", "ops_arg"]

# A small workload with every kind the map colours: vmallocs, an ioremap window, a freed area
# waiting for the lazy purge, and a hole it leaves.
DEMO_OPS = "a16k,a10000,i6M,a200k,a64k,f1,a8k"


def map_of_ops(cfg: QuizConfig, ops: tuple[Op, ...], step: int | None = None,
               walk_addr: int | None = None, modules: int = 1) -> MapData:
    """The map after the first ``step`` operations of ``ops`` (all of them when None), on a
    machine of ``cfg``; ``modules`` module_alloc calls first show the module area in use."""
    if step is not None and not 0 <= step <= len(ops):
        raise ConfigError(f"--step {step}: the replay has steps 0..{len(ops)}")
    done = list(ops if step is None else ops[:step])
    m, addrs = replay(cfg, done)
    for k in range(modules):
        m.module_alloc(3 * m.PAGE_SIZE + 100 * k, caller="load_module")
    if walk_addr is None:
        walk_addr = next((a for a, op in zip(addrs, done) if a is not None and op.kind == "a"), None)
    data = map_data(m, walk_addr=walk_addr)
    data.title = f"{m.profile.name}, Linux {m.kernel}, allocator {m.allocator_name}"
    shown = ", ".join(op.text() for op in done) or "nothing yet"
    data.notes.append(f"After step {len(done)} of {len(ops)}: {shown}; then {modules} module_alloc.")
    data.notes.append("Areas are named p0, p1, ... in order; a freed vmalloc area stays 'unpurged' until "
                      "the lazy purge.")
    return data


def map_of_dump(vmallocinfo: str, meminfo: str | None, arch: str | None, kernel: str | None,
                source: str, walk_addr: int | None = None,
                meminfo_source: str = "<meminfo>") -> MapData:
    """The map of a real dump in any format :func:`read_dump` reads, restored at its exact
    addresses (``Machine.from_snapshot``); ``source`` (the file) names the dump in errors."""
    # Parsed here, under the file's own name: the facade would call it "<vmallocinfo>" and
    # read only the plain format.
    snapshot = read_dump(vmallocinfo, source)[0]
    if not snapshot.lines:
        raise FormatError(source, "no vmalloc areas in this text: nothing to draw")
    facts = None if meminfo is None else parse_meminfo(meminfo, meminfo_source)
    m = pv.Machine.from_snapshot(snapshot, facts, arch=arch, kernel=kernel)
    data = map_data(m, walk_addr=walk_addr)
    source = os.path.basename(source)
    data.title = f"{source} ({m.profile.name}, Linux {m.kernel})"
    report = m.snapshot_report
    if report is not None:
        data.notes.append(f"Restored from {source}: {report.placed} areas at their own addresses, "
                          f"{len(report.relocated)} moved, {len(report.dropped) + len(report.unplaced)} "
                          f"left out; the kernel is the one the dump allows (--kernel to choose).")
    return data


def map_of_trace(text: str, source: str, step: int | None, arch: str, kernel: str | None,
                 walk_addr: int | None = None) -> MapData:
    """The map after the first ``step`` vmalloc events of an ftrace capture (all when None),
    replayed from boot through one machine (``analysis.replay.replay_exact``)."""
    events: list[TraceEvent] = [ev for ev in parse_trace(text, source)
                                if ev.event in ("alloc_vmap_area", "free_vmap_area_noflush", "purge_vmap_area_lazy")]
    if step is not None and not 1 <= step <= len(events):
        raise ConfigError(f"--step {step}: the trace has vmalloc events 1..{len(events)}")
    done = events if step is None else events[:step]
    result = replay_exact(done, kernel=kernel, arch=arch, source=source)
    m = result.machine
    assert m is not None
    data = map_data(m, walk_addr=walk_addr)
    data.title = f"{source} ({m.profile.name}, Linux {m.kernel})"
    data.notes.append(f"After vmalloc event {len(done)} of {len(events)} of {source}, replayed from boot: "
                      f"{result.whole.text()} traced addresses reproduced.")
    return data


def ops_arg(text: str | None) -> tuple[Op, ...]:
    """``-A`` text, or the demo workload."""
    return parse_ops(DEMO_OPS if text is None else text)
