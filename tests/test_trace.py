"""The vmalloc tracepoints (6.2+): the model's ftrace lines, the ring buffer, parse and render."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.formats import trace as trace_module
from pyvmalloc.formats.trace import (
    EVENT_FORMATS,
    TraceEvent,
    parse_trace,
    render,
    render_line,
)

PAGE = 4096
EXAMPLE = Path(__file__).parent.parent / "examples" / "trace"
CONTEXT = "      MainThread-1       [000] ....."


def test_one_line_of_each_event_in_the_kernel_format() -> None:
    m = pv.Machine(ram="64M")
    m.trace_on()
    a = m.vmalloc(3 * PAGE)
    m.vfree(a)
    m.vm_unmap_aliases()
    start = m.VMALLOC_START
    assert a == start
    assert m.trace() == [
        (f"{CONTEXT}     0.004000: alloc_vmap_area: va_start: {start} size=16384 align=4096 "
         f"vstart=0x{start:x} vend=0x{m.VMALLOC_END:x} failed=0"),
        f"{CONTEXT}     0.004001: free_vmap_area_noflush: va_start=0x{start:x} nr_lazy=4 nr_lazy_max=8192",
        f"{CONTEXT}     0.004002: purge_vmap_area_lazy: start=0x{start:x} end=0x{start + 4 * PAGE:x} num_purged=1",
    ]


def test_the_2_6_22_free_is_the_models_own_event() -> None:
    m = pv.Machine(ram="64M", kernel="2.6.22")
    m.trace_on()
    m.vfree(m.vmalloc(PAGE))
    lines = m.trace()
    assert lines[1] == f"{CONTEXT}     0.004001: vfree_area: va_start=0x{m.VMALLOC_START:x} size=8192"
    assert not m.trace_events()[1].is_kernel_event and m.trace_events()[0].is_kernel_event


def test_a_failed_search_prints_an_error_value_then_purges_and_searches_again() -> None:
    m = pv.Machine(arch="i386", ram="1G")
    m.trace_on()
    assert m.vmalloc(200 << 20) is None
    size, vs, ve = (200 << 20) + PAGE, m.VMALLOC_START, m.VMALLOC_END
    failed = (f"alloc_vmap_area: va_start: 4294967294 size={size} align=4096 vstart=0x{vs:x} "
              f"vend=0x{ve:x} failed=1")  # -ENOENT as a 32-bit unsigned long
    assert [line.split(": ", 1)[1] for line in m.trace()] == [
        failed, "purge_vmap_area_lazy: start=0xffffffff end=0x0 num_purged=0", failed]


def test_without_tracing_nothing_is_recorded_and_trace_off_keeps_what_was() -> None:
    m = pv.Machine(ram="64M")
    m.vmalloc(PAGE)
    assert m.trace() == [] and m.trace_events() == []
    m.trace_on()
    m.vmalloc(PAGE)
    m.trace_off()
    m.vmalloc(PAGE)
    assert len(m.trace()) == 1
    m.trace_on()
    m.vmalloc(PAGE)
    assert len(m.trace()) == 2  # same size: the ring is kept
    m.trace_on(buffer_size=8)
    assert m.trace() == []  # a new size starts empty rings
    with pytest.raises(pv.ConfigError):
        m.trace_on(buffer_size=0)


def test_a_full_ring_overwrites_its_oldest_events_per_cpu() -> None:
    m = pv.Machine(ram="64M", cpus=2)
    m.trace_on(buffer_size=3)
    addrs = []
    for _ in range(5):
        m.current_cpu = 0
        addrs.append(m.vmalloc(PAGE))
    m.current_cpu = 1
    m.vmalloc(PAGE)
    evs = m.trace_events()
    assert [e.cpu for e in evs] == [0, 0, 0, 1]
    assert [e["addr"] for e in evs[:3]] == addrs[2:]
    head = m.trace(header=True)
    assert "# entries-in-buffer/entries-written: 4/6   #P:2" in head


ops = st.lists(st.one_of(st.tuples(st.just("alloc"), st.integers(1, 40 * PAGE)),
                         st.tuples(st.just("free"), st.integers(0, 50)),
                         st.tuples(st.just("purge"), st.just(0))), max_size=25)


def _run(allocator: str, script: list[tuple[str, int]]) -> list[str]:
    m = pv.Machine(ram="64M", allocator=allocator, kernel="6.2")  # the first with the tracepoints
    m.trace_on()
    live: list[int] = []
    for op, n in script:
        if op == "alloc":
            a = m.vmalloc(n)
            if a is not None:
                live.append(a)
        elif op == "free" and live:
            m.vfree(live.pop(n % len(live)))
        elif op == "purge":
            m.vm_unmap_aliases()
    return m.trace(header=True)


@settings(max_examples=20, deadline=None)
@given(allocator=st.sampled_from(["kva", "list"]), script=ops)
def test_the_same_calls_give_the_same_trace(allocator: str, script: list[tuple[str, int]]) -> None:
    first = _run(allocator, script)
    assert first == _run(allocator, script)
    parsed = parse_trace("\n".join(first), "t")
    assert len(parsed) == len(first) - 12 and parsed.comments == 12
    assert render(parsed, header=True, nr_cpus=1) == "\n".join(first) + "\n"


# ---- parse and render --------------------------------------------------------------------------
_ULONG = st.integers(0, (1 << 64) - 1)
_FIELD = {"%lu": _ULONG, "%lx": _ULONG, "%u": st.integers(0, (1 << 32) - 1),
          "%d": st.integers(-(1 << 31), (1 << 31) - 1)}
# Task names without the characters that would make ftrace's own line ambiguous.
_COMM = st.text(st.sampled_from("abcxyz019_-/:.<>"), min_size=1, max_size=15).filter(
    lambda c: not c.startswith("#"))


@st.composite
def events(draw: st.DrawFn) -> TraceEvent:
    name = draw(st.sampled_from(sorted(EVENT_FORMATS)))
    fmt, names = EVENT_FORMATS[name]
    convs = re.findall(r"%lu|%lx|%u|%d", fmt)
    values = {n: draw(_FIELD[c]) for n, c in zip(names, convs)}
    raw = draw(st.booleans())
    return TraceEvent.new(
        name, values, comm=draw(_COMM), pid=draw(st.integers(0, 4_194_304)),
        cpu=draw(st.integers(0, 4095)), raw_clock=raw,
        timestamp=draw(st.integers(0, 10**12)),
        flags=draw(st.sampled_from([None, ".....", "d..1.", "dNh2.", "...."])),
        tgid=draw(st.one_of(st.none(), st.integers(0, 4_194_304))))


@settings(max_examples=200, deadline=None)
@given(st.lists(events(), max_size=8), st.booleans())
def test_parse_of_render_is_identity(evs: list[TraceEvent], header: bool) -> None:
    assert parse_trace(render(evs, header=header), "x") == evs


REAL = """\
# tracer: nop
#
# entries-in-buffer/entries-written: 6/6   #P:8
#
#           TASK-PID     CPU#  ||||  TIMESTAMP  FUNCTION
#              | |         |   ||||     |         |
     kworker/1:2-131     [001] ....   413.080342: alloc_vmap_area: va_start: 18446683600570118144 size=12288 align=1 vstart=0xffffc90000000000 vend=0xffffe8ffffffffff failed=0
          <idle>-0       [000] d.s3   413.080400: sched_wakeup: comm=bash pid=1 prio=120 target_cpu=000
            bash-1234    (   1234) [003] ..... 99999.000001: free_vmap_area_noflush: va_start=0xffffc90000019000 nr_lazy=8 nr_lazy_max=32768
CPU:2 [LOST 17 EVENTS]
 kworker/u16:0-events_u-9 [002]  1234.500000: purge_vmap_area_lazy: start=0xffffc90000019000 end=0xffffc9000001c000 num_purged=1
            modprobe-77 [000]   123456789012: alloc_vmap_area: va_start: 18446744073709551614 size=8192 align=4096 vstart=0xffffffffa0000000 vend=0xffffffffff000000 failed=1
some text a tool printed
"""


def test_real_ftrace_lines_with_their_variants() -> None:
    evs = parse_trace(REAL, "cap.txt")
    assert [e.event for e in evs] == ["alloc_vmap_area", "free_vmap_area_noflush",
                                      "purge_vmap_area_lazy", "alloc_vmap_area"]
    a, f, p, fail = evs
    assert (a.comm, a.pid, a.cpu, a.flags, a.timestamp, a.line) == ("kworker/1:2", 131, 1, "....", 413_080_342, 7)
    assert a.values == {"addr": 0xffffc90000017000, "size": 12288, "align": 1,
                        "vstart": 0xffffc90000000000, "vend": 0xffffe8ffffffffff, "failed": 0}
    assert (f.tgid, f.flags, f["nr_lazy_max"]) == (1234, ".....", 32768)
    assert (p.comm, p.pid, p.flags, p["npurged"]) == ("kworker/u16:0-events_u", 9, None, 1)
    assert (fail.raw_clock, fail.timestamp, fail["failed"]) == (True, 123456789012, 1)
    assert evs.comments == 6 and evs.other_events == {"sched_wakeup": 1}
    assert evs.lost == 17 and evs.unparsed == 1 and evs.skipped == 8
    assert render_line(f) == REAL.splitlines()[8]


@pytest.mark.parametrize("line, what", [
    ("bash-1 [000] .... 1.000000: alloc_vmap_area: va_start: 4096 size=4096 align=4096 vstart=0x1 vend=0x2 failed=no",
     "alloc_vmap_area: expected 'va_start: %lu size=%lu"),
    ("bash-1 [000] .... 1.000000: alloc_vmap_area: va_start=0x1000 size=4096",
     "alloc_vmap_area: expected"),
    ("bash-1 [000] .... 1.000000: purge_vmap_area_lazy: start=0x1 end=0x2 num_purged=4294967296",
     "purge_vmap_area_lazy: npurged=4294967296 does not fit %u"),
    ("bash-1 [000] .... 1.000000: free_vmap_area_noflush: va_start=0xFFFF nr_lazy=1 nr_lazy_max=2",
     "free_vmap_area_noflush: expected"),
    ("bash-1 [000] .... 1.000000: vfree_area: va_start=0x10000000000000000 size=1",
     "vfree_area: va_start=0x10000000000000000 does not fit %lx"),
    ("alloc_vmap_area: va_start: 1 size=4096 align=4096 vstart=0x1 vend=0x2 failed=0",
     "alloc_vmap_area: not an ftrace line"),
])
def test_malformed_lines_of_these_events_name_file_and_line(line: str, what: str) -> None:
    with pytest.raises(pv.FormatError) as info:
        parse_trace(f"# header\n\n{line}\n", "t.txt")
    assert info.value.where == "t.txt:3"
    assert info.value.what.startswith(what)


def test_events_made_in_code_are_checked() -> None:
    with pytest.raises(pv.ConfigError):
        TraceEvent.new("alloc_vmap_area", {"addr": 1})
    with pytest.raises(pv.ConfigError):
        TraceEvent.new("purge_vmap_area_lazy", {"start": -1, "end": 0, "npurged": 0})
    with pytest.raises(pv.ConfigError):
        TraceEvent.new("vfree_area", {"va_start": 0, "size": 0}, comm=" padded")
    with pytest.raises(pv.ConfigError):
        TraceEvent.new("kmalloc", {})
    with pytest.raises(KeyError):
        TraceEvent.new("vfree_area", {"va_start": 0, "size": 0})["nr_lazy"]


def test_the_example_trace_is_what_its_readme_program_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (EXAMPLE / "README.md").read_text()
    program = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert program is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(program.group(1), "README.md", "exec"), {})  # the README's own program
    made = (tmp_path / "i386-kva.trace").read_text()
    assert made == (EXAMPLE / "i386-kva.trace").read_text()
    kinds = {e.event for e in parse_trace(made, "example")}
    assert kinds == {"alloc_vmap_area", "free_vmap_area_noflush", "purge_vmap_area_lazy"}


def _parse_both(text: str) -> tuple[object, object]:
    """parse_trace with its fast path and with the general path alone: events and counters, or
    the error (where, what)."""
    def run() -> object:
        try:
            evs = parse_trace(text, "f.txt")
        except pv.FormatError as exc:
            return ("error", exc.where, exc.what)
        return ([(e, e.line) for e in evs], evs.comments, dict(evs.other_events), evs.unparsed, evs.lost)

    fast = run()
    saved = trace_module._fast_event
    trace_module._fast_event = lambda line, lineno: None  # type: ignore[assignment]
    try:
        slow = run()
    finally:
        trace_module._fast_event = saved
    return fast, slow


@settings(max_examples=150, deadline=None)
@given(st.lists(events(), min_size=1, max_size=4), st.data())
def test_the_fast_line_parser_reads_what_the_general_one_reads(evs: list[TraceEvent], data: st.DataObject) -> None:
    # Rendered lines, then mutated: a character replaced, inserted or dropped anywhere, so the
    # strict regexes meet near-misses (spaces at the comm's ends, '#', brackets, huge numbers).
    lines = render(evs).splitlines()
    for _ in range(data.draw(st.integers(0, 3))):
        i = data.draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        pos = data.draw(st.integers(0, len(line)))
        ch = data.draw(st.sampled_from(" \t#[]-()0123456789:.abcx\x0b\u00e9") | st.text(max_size=1))
        how = data.draw(st.sampled_from(["replace", "insert", "drop"]))
        if how == "replace":
            line = line[:pos] + ch + line[pos + 1:]
        elif how == "insert":
            line = line[:pos] + ch + line[pos:]
        else:
            line = line[:pos] + line[pos + 1:]
        lines[i] = line
    fast, slow = _parse_both("\n".join(lines) + "\n")
    assert fast == slow


def test_the_fast_line_parser_on_the_real_lines() -> None:
    fast, slow = _parse_both(REAL)
    assert fast == slow


def test_trace_header_says_when_the_kernel_has_no_vmalloc_tracepoints() -> None:
    """include/trace/events/vmalloc.h came with 6.2: a 6.1 machine's trace says its events are
    the model's; a 6.2 one's header is ftrace's own; both parse to the same events."""
    texts = {}
    for kernel in ("6.1", "6.2"):
        m = pv.Machine(kernel=kernel)
        m.trace_on()
        m.vfree(m.vmalloc(4096))
        texts[kernel] = m.trace(header=True)
    assert texts["6.1"][1].startswith("# Linux 6.1 has no vmalloc tracepoints (they came with 6.2)")
    assert not any("no vmalloc tracepoints" in line for line in texts["6.2"])
    evs = {k: [(e.event, e.values) for e in parse_trace("\n".join(t))] for k, t in texts.items()}
    assert evs["6.1"] and evs["6.1"] == evs["6.2"]
