"""Trace replay on the list and kva allocators, and ``pyvmalloc replay``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.analysis.replay import Free, Purge, Request, replay, workload
from pyvmalloc.cli.main import main
from pyvmalloc.formats.trace import TraceEvent, parse_trace, render

PAGE = 4096
EXAMPLE = Path(__file__).parent.parent / "examples" / "trace" / "i386-kva.trace"

# i386: 111 MiB of vmalloc space, so big requests fail; one CPU: 32 MiB of lazy areas purge.
script = st.lists(st.one_of(st.tuples(st.just("alloc"), st.sampled_from([1, 3, 16, 300, 4096, 9000, 20000])),
                            st.tuples(st.just("free"), st.integers(0, 99))), min_size=5, max_size=30)
# Six 16 MiB areas fill the space; one freed lazily is in the way of the next until a purge;
# the last request never fits (search, empty purge, search).
RETRY = [("alloc", 4096)] * 6 + [("free", 1), ("alloc", 4096), ("alloc", 20000)]
# A request that never fits, frees that pass lazy_max_pages (a purge), the same request again.
AGAIN = [("alloc", 1), ("alloc", 9000), ("alloc", 20000), ("free", 0), ("free", 1), ("alloc", 20000)]


def _traced(allocator: str, ops: list[tuple[str, int]]) -> tuple[pv.Machine, list[int | None]]:
    m = pv.Machine(arch="i386", ram="1G", cpus=1, allocator=allocator,
                   lazy_purge=allocator != "list")  # as replay boots them
    m.trace_on()
    live: list[int] = []
    given_out: list[int | None] = []
    for op, n in ops:
        if op == "alloc":
            a = m.vmalloc(n * PAGE)
            given_out.append(a)
            if a is not None:
                live.append(a)
        elif live:
            m.vfree(live.pop(n % len(live)))
    return m, given_out


@settings(max_examples=15, deadline=None)
@given(allocator=st.sampled_from(["kva", "list"]), ops=script)
@example(allocator="kva", ops=RETRY)
@example(allocator="list", ops=RETRY)
@example(allocator="kva", ops=AGAIN)
def test_replay_on_the_same_allocator_gives_the_models_addresses(allocator: str, ops: list[tuple[str, int]]) -> None:
    m, given_out = _traced(allocator, [("alloc", 2), *ops])
    events = parse_trace("\n".join(m.trace(header=True)), "model")
    report = replay(events, "i386", [allocator])
    res = report.results[allocator]
    assert [replayed for _trace, replayed in res.addresses] == [t for t, _r in res.addresses]
    assert res.outcome_mismatches == 0 and res.unmatched_frees == 0 and res.implicit_frees == 0
    assert res.failures == report.trace_failures
    # every vmalloc the caller saw succeed is one of the replay's addresses (page arrays add more)
    assert {a for a in given_out if a is not None} <= {r for _t, r in res.addresses}
    # the replay ends where the model ended: the same holes in the vmalloc area
    with m.vmlist_lock.read():
        holes = list(m.vmap_allocator.for_each_free(m.VMALLOC_START, m.VMALLOC_END))
    assert res.holes is not None and (res.holes.count, res.holes.total) == (len(holes), sum(s for _a, s in holes))
    if allocator == "list":
        assert res.tlb_flushes == res.frees and res.purges == 0
    else:
        assert res.tlb_flushes == res.purges == m.stats()["vm.purge_runs"]


def test_the_example_folds_retries_and_compares_both_allocators() -> None:
    events = parse_trace(EXAMPLE.read_text(), str(EXAMPLE))
    report = replay(events, "i386")
    assert report.events["alloc_vmap_area"] == report.requests + report.retries
    assert (report.retries, report.trace_failures) == (2, 1)
    kva, lst = report.results["kva"], report.results["list"]
    assert kva.same_address == report.requests - report.trace_failures
    assert kva.failures == lst.failures == 1
    assert lst.tlb_flushes == lst.frees == report.frees
    assert kva.tlb_flushes == kva.purges < lst.tlb_flushes
    assert lst.lazy_pending == 0 and not lst.lazy_purge and kva.lazy_purge


def _ev(event: str, pid: int = 1, line: int = 0, **values: int) -> TraceEvent:
    return TraceEvent.new(event, values, pid=pid, line=line)


def _alloc(addr: int | None, size: int = 2 * PAGE, pid: int = 1) -> TraceEvent:
    vs, ve = 0xf8800000, 0xff7fe000
    return _ev("alloc_vmap_area", pid, addr=0xfffffffe if addr is None else addr, size=size,
               align=PAGE, vstart=vs, vend=ve, failed=int(addr is None))


def test_a_retry_is_the_same_task_searching_again_after_a_purge() -> None:
    purge = _ev("purge_vmap_area_lazy", start=0xffffffff, end=0, npurged=0)
    wl = workload([_alloc(None), purge, _alloc(0xf8800000)])
    assert [type(op) for op in wl.ops] == [Request, Purge] and wl.retries == 1
    assert wl.ops[0] == Request(0, 2 * PAGE, PAGE, 0xf8800000, 0xff7fe000, 0xf8800000, 2)
    # another task, no purge in between, another size, or a free in between: a new request
    free = _ev("free_vmap_area_noflush", va_start=0xf9000000, nr_lazy=3, nr_lazy_max=64)
    for seq in ([_alloc(None), purge, _alloc(0xf8800000, pid=2)],
                [_alloc(None), _alloc(0xf8800000)],
                [_alloc(None), purge, _alloc(0xf8800000, size=3 * PAGE)],
                [_alloc(None), free, purge, _alloc(0xf8800000)]):
        assert workload(seq).retries == 0 and len(workload(seq).requests) == 2
    again = workload([_alloc(None), purge, _alloc(None), free, purge, _alloc(0xf8800000)])
    assert again.retries == 1 and [r.addr for r in again.requests] == [None, 0xf8800000]


def test_frees_the_replay_cannot_match_are_counted_not_replayed() -> None:
    free_old = _ev("free_vmap_area_noflush", va_start=0xf9000000, nr_lazy=3, nr_lazy_max=64)
    events = [free_old, _alloc(0xf8800000), _alloc(0xf8800000)]  # handed out twice: a free was not traced
    wl = workload(events)
    assert wl.nr_lazy_max == 64 and isinstance(wl.ops[0], Free)
    res = replay(events, "i386", ["kva"]).results["kva"]
    assert (res.unmatched_frees, res.implicit_frees, res.allocs, res.frees) == (1, 1, 2, 0)


@pytest.mark.parametrize("bad, what", [
    (_alloc(0xf8800000, size=1000), "alloc_vmap_area: size=1000 is not a multiple of i386's page size 4096"),
    (TraceEvent.new("alloc_vmap_area", {"addr": 0, "size": PAGE, "align": 3, "vstart": 0, "vend": 1 << 30,
                                        "failed": 0}), "alloc_vmap_area: align=3 is not a power of two"),
    (TraceEvent.new("alloc_vmap_area", {"addr": 0, "size": PAGE, "align": PAGE, "vstart": 0xffffc90000000000,
                                        "vend": 0xffffe90000000000, "failed": 0}),
     "alloc_vmap_area: vstart=0xffffc90000000000 vend=0xffffe90000000000 is no range of the 32-bit"),
])
def test_requests_no_kernel_could_make_name_their_line(bad: TraceEvent, what: str) -> None:
    events = parse_trace("# tracer: nop\n" + render([bad]), "t")
    with pytest.raises(pv.FormatError) as info:
        replay(events, "i386")
    assert info.value.where == "t:2" and info.value.what.startswith(what)


def test_a_trace_without_vmalloc_events_is_an_error() -> None:
    with pytest.raises(pv.FormatError) as info:
        replay(parse_trace("# tracer: nop\n<idle>-0 [000] d.s3 1.000000: sched_wakeup: pid=1\n", "e"))
    assert info.value.where == "e" and "no vmalloc trace events (2 other lines)" in info.value.what
    with pytest.raises(pv.ConfigError):
        replay([_alloc(0xf8800000)], "i386", ["slab"])


# ---- the command line --------------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    code = main(["replay", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, EXAMPLE, "--arch", "i386")
    assert code == 0 and err == ""
    assert out.startswith(f"{EXAMPLE}: 72 events (alloc_vmap_area 39, free_vmap_area_noflush 30, "
                          "purge_vmap_area_lazy 3); 12 other lines skipped\n")
    assert "workload: 37 requests (2 retries after a purge folded in, 1 failed in the trace)" in out
    assert "list/kva host time per operation" in out
    code, out, err = _cli(capsys, EXAMPLE, "--arch", "i386", "--allocator", "kva", "--json")
    doc = json.loads(out)
    assert code == 0 and list(doc["results"]) == ["kva"]
    kva = doc["results"]["kva"]
    assert kva["same_address"] == 36 and kva["failures"] == doc["trace_failures"] == 1
    assert doc["ranges"] == [{"vstart": "0xf73fe000", "vend": "0xfebfe000", "requests": 37}]


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_cli_errors_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.trace"
    bad.write_text("# tracer: nop\n  bash-1 [000] ..... 1.000000: purge_vmap_area_lazy: start=0x1 end=0x2\n")
    code, out, err = _cli(capsys, bad)
    assert code == 2 and out == ""
    assert _one_error_line(err).startswith(f"{bad}:2: purge_vmap_area_lazy: expected 'start=0x%lx")
    missing = tmp_path / "missing.trace"
    code, _, err = _cli(capsys, missing)
    assert code == 2 and _one_error_line(err) == f"{missing}: No such file or directory"
    code, _, err = _cli(capsys, EXAMPLE, "--arch", "vax")
    assert code == 2 and _one_error_line(err).startswith("pyvmalloc replay: ")
    code, _, err = _cli(capsys, EXAMPLE, "--arch", "x86_64")  # fine: 32-bit addresses fit 64 bits
    assert code == 0
    with pytest.raises(SystemExit) as info:
        main(["replay", str(EXAMPLE), "--allocator", "slab"])
    assert info.value.code == 2
    assert _one_error_line(capsys.readouterr().err).startswith("pyvmalloc replay: error:")


# ---- the lean replay loop ------------------------------------------------------------------------
ORACLE_TRACES = sorted((Path(__file__).parent / "data" / "oracle").glob("*/*/trace_*.txt"))


@pytest.mark.parametrize("path", ORACLE_TRACES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_lean_replay_gives_the_full_paths_report(path: Path) -> None:
    # A trace carries no data, so replay() frees without walking page tables; the full path
    # (remove_vm_area, run_workers) must give the same addresses, failures, counters and holes.
    from pyvmalloc.analysis.replay import _replay_one, workload
    from pyvmalloc.vmalloc.allocator import ALLOCATORS

    wl = workload(parse_trace(path.read_text(), str(path)))
    for name in ALLOCATORS:
        lean = _replay_one(wl, name, "x86_64", "6.12", lean=True)
        full = _replay_one(wl, name, "x86_64", "6.12", lean=False)
        lean.alloc_ns = full.alloc_ns = lean.free_ns = full.free_ns = 0  # host time only
        assert lean.addresses == full.addresses and lean.allocs > 0
        assert lean == full
