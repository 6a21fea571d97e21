"""Deterministic work counters (kernel/work.py) and the bench's stop on Ctrl-C with partial results."""

from __future__ import annotations

import random
import threading

import pyvmalloc as pv
from pyvmalloc.kernel import test_vmalloc as tv
from pyvmalloc.kernel.work import WorkCounters, work_counters

PAGE = 4096


def _pairs(allocator: str, live: int) -> WorkCounters:
    m = pv.Machine(ram="128M", allocator=allocator)
    busy = [m.vmalloc(PAGE) for _ in range(live)]
    before = work_counters(m)
    for _ in range(10):
        m.vfree(m.vmalloc(PAGE))
    work = work_counters(m) - before
    for a in busy:
        m.vfree(a)
    return work


def test_counters_are_deterministic_and_tell_the_list_from_the_tree() -> None:
    list_work = _pairs("list", 300)
    assert list_work == _pairs("list", 300)  # the same calls count the same, run after run
    kva_work = _pairs("kva", 300)
    # 2.6.22's vmlist walks past every busy area; the 5.2+ free tree descends a few nodes.
    assert list_work.visited >= 10 * 300 > 20 * kva_work.visited > 0
    # the rest of the work is the allocators' common path: a page each way, one PTE written,
    # two cleared (vunmap_range covers va_start..va_end, the guard page's PTE included)
    for w in (list_work, kva_work):
        assert w.pages >= 20 and w.ptes == 30 and w.locks >= 20


def test_a_stopped_run_keeps_its_partial_results_and_frees_everything() -> None:
    m = pv.Machine(ram="256M", allocator="kva")
    stop = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        stop.set()  # as Ctrl-C would, once the first scenario is done

    params = tv.Params(test_loop_count=5, run_test_mask=0x9)  # fix_size, then random_size
    report = tv.run(m, params, progress, stop)
    assert report.interrupted and seen == [1]
    outs = report.outcomes[0]
    assert [o.name for o in outs] == ["fix_size_alloc_test"]
    assert outs[0].ops == 10 and outs[0].work.ptes == 15 and outs[0].repeats == 1
    assert not list(m.areas())
    m.check()


def test_a_scenario_stopped_midway_frees_what_it_held() -> None:
    m = pv.Machine(ram="256M", allocator="kva")
    out = tv.Outcome("long_busy_list_alloc_test", stop=threading.Event())
    real = m.vmalloc
    calls = [0]

    def vmalloc(size: int, **kw: object) -> int | None:
        calls[0] += 1
        if calls[0] == 50:
            assert out.stop is not None
            out.stop.set()
        return real(size, **kw)  # type: ignore[arg-type]

    m.vmalloc = vmalloc  # type: ignore[method-assign]
    try:
        tv.long_busy_list_alloc_test(m, tv.Params(test_loop_count=3), random.Random(0), out, live=400)
    except tv.Stopped:
        pass
    else:
        raise AssertionError("the scenario did not stop")
    assert out.ops == 50 + 50  # the vmallocs made, then their vfrees in the cleanup
    assert not list(m.areas())
    m.check()
