"""The model against real Linux 6.1: every capture in tests/data/oracle replayed address for address.

Each capture is a boot of an unmodified Debian 6.1 kernel whose probe module ran a script of
vmalloc/vmap/ioremap/free/purge calls and logged every address (tests/data/oracle/README.md).
``analysis.oracle.replay_capture`` restores its ``before.txt``, replays the script with the same
API calls and compares.  What must hold: no mismatch at all; every operation whose search is
page-aligned exact (only ``i`` requests aligned above a page may depend on the free tree's
shape, which no snapshot shows: those are counted apart, and their kernel address must be one of
the blocks the kernel's search could have returned); ``after.txt``'s busy and lazily freed
ranges equal to the model's.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pyvmalloc.analysis import oracle as O
from pyvmalloc.analysis.oracle import (
    capture_folders,
    fill_addresses,
    format_report,
    parse_module_res,
    replay_capture,
)

DATA = Path(__file__).resolve().parent / "data" / "oracle"
FIGURES = {"amd64": (330, 362), "i386": (603, 634)}  # (exact, total) operations per arch
CAPTURES = capture_folders(DATA, "linux-6.1-")
IDS = [f"{p.parent.name}/{p.name}" for p in CAPTURES]


def test_the_captures_are_there() -> None:
    assert IDS == [
        "linux-6.1-amd64/ioremap", "linux-6.1-amd64/kinds", "linux-6.1-amd64/rand1",
        "linux-6.1-amd64/seq", "linux-6.1-i386/fill", "linux-6.1-i386/ioremap",
        "linux-6.1-i386/rand1", "linux-6.1-i386/seq",
    ]


@pytest.fixture(scope="module")
def reports() -> dict[str, O.CaptureReport]:
    return {name: replay_capture(path) for name, path in zip(IDS, CAPTURES)}


@pytest.mark.parametrize("name", IDS)
def test_capture_replays_exactly(name: str, reports: dict[str, O.CaptureReport],
                                 record_property: Callable[[str, object], None]) -> None:
    rep = reports[name]
    text = format_report(rep, examples=10)
    print(text)
    counts = rep.counts()
    for key, value in counts.items():
        record_property(key, value)
    assert rep.ops, "no operation replayed"
    assert counts["mismatch"] == 0, text
    # Every operation whose search is page-aligned is determined by the snapshot.
    loose = [o.line() for o in rep.ops if o.page_aligned and o.status != "exact"
             and o.status != "not_modelled"]
    assert not loose, loose
    # The tree-shape cases: only aligned i requests, and the kernel's answer is one of the
    # blocks between the lowest fitting one and the lowest of size + align - 1 bytes.
    for o in rep.ops:
        if o.status == "tree_shape":
            assert o.token.startswith("i") and not o.page_aligned, o.line()
            assert "lowest fit" in o.note, o.line()
    # Every operation is modelled now (vm_map_ram included: vmalloc/vmap_block.py).
    assert counts["not_modelled"] == 0 and rep.later_ops_touching_not_modelled == []
    # /proc/vmallocinfo after each script (and before the second one).
    for s in rep.scripts:
        assert s.after is not None
        assert s.after.busy_only_kernel == [] and s.after.busy_only_model == [], text
        assert s.after.unpurged_only_kernel == [] and s.after.unpurged_only_model == [], text
        if s.before is not None:
            assert s.before.equal, text


def test_overall_figures(reports: dict[str, O.CaptureReport]) -> None:
    """The figure the README quotes: how many operations came out exact, per arch."""
    figures = {}
    for arch in ("amd64", "i386"):
        reps = [r for n, r in reports.items() if f"-{arch}/" in n]
        total = sum(r.counts()["total"] for r in reps)
        exact = sum(r.counts()["exact"] for r in reps)
        apart = sum(r.counts()["tree_shape"] + r.counts()["not_modelled"] for r in reps)
        print(f"Linux 6.1 {arch}: {exact} of {total} operations exact ({apart} counted apart)")
        assert exact + apart == total
        assert sum(r.counts()["not_modelled"] for r in reps) == 0
        figures[arch] = (exact, total)
    assert figures == FIGURES


def test_kinds_replays_vm_map_ram_exactly(reports: dict[str, O.CaptureReport]) -> None:
    """r3 and r17: one 1 MiB vmap block where the kernel put it, pieces of 4 and 32 pages
    one after the other; after.txt's vm_map_ram line is the model's."""
    rep = reports["linux-6.1-amd64/kinds"]
    ram = [o for o in rep.ops if o.token in ("r3", "r17")]
    assert [(o.status, o.got) for o in ram] == [("exact", 0xFFFFC90000D00000),
                                                 ("exact", 0xFFFFC90000D04000)]
    assert rep.machine is not None
    line = "0xffffc90000d00000-0xffffc90000e00000 1048576 vm_map_ram"
    assert line in rep.machine.vmallocinfo().splitlines()
    assert line in (DATA / "linux-6.1-amd64" / "kinds" / "after.txt").read_text().splitlines()
    s = rep.scripts[0]
    assert s.after is not None and s.after.equal and s.after.not_modelled == []
    rep.machine.check()


def test_the_comparison_sees_a_divergence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: a replay that skips the vm_unmap_aliases() of seq goes wrong where the
    kernel reused the purged ranges, and after.txt differs."""
    orig = O._Replayer._op

    def skip_purge(self: O._Replayer, rec: O.Record, recs: list[O.Record], i: int,
                   out: list[O.OpResult]) -> None:
        if rec.op == "p":
            self._result(out, "p", None, None, None, "exact", returns_address=False)
            return
        orig(self, rec, recs, i, out)

    monkeypatch.setattr(O._Replayer, "_op", skip_purge)
    rep = replay_capture(DATA / "linux-6.1-amd64" / "seq")
    assert [o.token for o in rep.mismatches] == ["a1", "a4"]
    assert rep.mismatches[0].expected == 0xFFFFC90000055000
    assert not rep.after_equal


def test_tree_shape_cases_follow_the_kernel() -> None:
    """Without following the kernel's choice in the tree-shape cases, later operations diverge
    (which is why the replay follows it), while the page-aligned captures are unaffected."""
    seq = replay_capture(DATA / "linux-6.1-i386" / "seq", follow_kernel=False)
    assert seq.counts()["mismatch"] == 0
    rand = replay_capture(DATA / "linux-6.1-amd64" / "rand1", follow_kernel=False)
    assert rand.counts()["mismatch"] > 0


# ---- the parser ------------------------------------------------------------------------------
RES = """\
SCRIPT n=1 begin from=proc vmalloc_start=f77fe000 vmalloc_end=feffe000 text=a1,e2,i3,c1,p
RES op=a1 slot=1 ok=1 type=vmalloc addr=f780b000 rel=+0x0 relpages=+0 size=4096 nr_pages=1
FILL op=e2 i=1..3 addr=f7810000 step=0x3000
FILL op=e2 i=4..4 addr=f7900000 step=0x3000
RES op=e2 ok=1 chunk_pages=2 chunks=4 stopped_by=failure first_addr=f7810000 kept_chunks=4
[   12.345] vmalloc error: size 8192, vm_struct allocation failed
RES op=i3 slot=2 ok=1 type=ioremap addr=f7820000 size=12288 nr_pages=3
CHK op=c1 page=0 pfn=0x60c1 page_to_pfn=0x60c1 highmem=0 kmap_readback=ok
RES op=c1 slot=1 ok=1 pages=1 vmap_alias=f7830000 is_vmalloc_addr(end-1)=1
RES op=p ok=1 note=vm_unmap_aliases_done
SCRIPT n=1 end nslots=2 fill_chunks=4
SCRIPT n=2 begin from=proc vmalloc_start=f77fe000 vmalloc_end=feffe000 text=F
RES op=F ok=1
SCRIPT n=2 end nslots=2 fill_chunks=4
"""


def test_parse_module_res() -> None:
    scripts = parse_module_res(RES)
    assert [s.n for s in scripts] == [1, 2]
    s = scripts[0]
    assert (s.vmalloc_start, s.vmalloc_end) == (0xF77FE000, 0xFEFFE000)
    assert s.text == "a1,e2,i3,c1,p"
    assert s.ops == ["a1", "e2", "i3", "c1", "p"]
    assert [r.kind for r in s.records].count("CHK") == 1
    c1 = s.results[3]
    assert c1.addr("vmap_alias") == 0xF7830000 and c1.fields["is_vmalloc_addr(end-1)"] == "1"
    assert s.end_fields == {"n": "1", "nslots": "2", "fill_chunks": "4"}
    i = s.records.index(s.results[1])
    assert fill_addresses(s.records, i) == {1: 0xF7810000, 2: 0xF7813000, 3: 0xF7816000,
                                            4: 0xF7900000}
    assert scripts[1].ops == ["F"]


@pytest.mark.parametrize("text", [
    "RES op=a1 slot=1 addr=1000\n",
    "SCRIPT n=1 begin vmalloc_start=0 vmalloc_end=1 text=a1\n",
    "SCRIPT n=1 end nslots=0\n",
])
def test_parse_module_res_rejects_broken_files(text: str) -> None:
    with pytest.raises(O.FormatError):
        parse_module_res(text)


# ---- Linux 6.12: vmap nodes and their pools (6.9+) ------------------------------------------------
# seq, rand1, pools and kinds612 (vmalloc_huge, vmalloc_32, vrealloc) replay on kernel 6.12,
# x86_64, 2 CPUs: nr_vmap_nodes = clamp(2, 1, 128) = 2.
IDS_612 = ["linux-6.12-amd64/seq", "linux-6.12-amd64/rand1", "linux-6.12-amd64/pools",
           "linux-6.12-amd64/kinds612"]


@pytest.fixture(scope="module")
def reports_612() -> dict[str, O.CaptureReport]:
    return {name: replay_capture(DATA / name) for name in IDS_612}


@pytest.mark.parametrize("name", IDS_612)
def test_612_capture_replays_exactly(name: str, reports_612: dict[str, O.CaptureReport]) -> None:
    rep = reports_612[name]
    text = format_report(rep, examples=10)
    print(text)
    counts = rep.counts()
    assert rep.ops and counts["mismatch"] == 0 and counts["not_modelled"] == 0, text
    assert not [o.line() for o in rep.ops if o.page_aligned and o.status != "exact"]
    for o in rep.ops:
        if o.status == "tree_shape":
            assert o.token.startswith("i") and not o.page_aligned and "lowest fit" in o.note, o.line()
    (s,) = rep.scripts
    assert s.after is not None and s.after.equal, text
    m = rep.machine
    assert m is not None and m.vmap_nodes is not None and m.vmap_nodes.nr == 2
    m.check()


@pytest.mark.parametrize("name", IDS_612)
def test_612_vmallocinfo_in_the_kernels_order(name: str, reports_612: dict[str, O.CaptureReport]) -> None:
    """/proc/vmallocinfo node by node: busy lines of node 0 then node 1, each in address order,
    then the unpurged lines (one per area) by lazy node: the same line order as after.txt."""
    from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo

    m = reports_612[name].machine
    assert m is not None
    want = [(ln.start, ln.end, ln.kinds == ("unpurged",) or "unpurged" in ln.kinds)
            for ln in parse_vmallocinfo((DATA / name / "after.txt").read_text()).lines]
    got = [(ln.start, ln.end, "unpurged" in ln.kinds) for ln in parse_vmallocinfo(m.vmallocinfo()).lines]
    # The one percpu area of before.txt sits at the top of the range, node 1's list.
    assert got == want


def test_612_pools_capture_uses_the_pools(reports_612: dict[str, O.CaptureReport]) -> None:
    """The pools capture is exact only through the pools: highest first, the alignment miss
    moved to the tail, the decay by a quarter; the counters say so."""
    m = reports_612["linux-6.12-amd64/pools"].machine
    assert m is not None
    st = m.stats()
    # a7 x2, a7 x2, a7 x4, a255 (a256 is 257 pages with its guard: no pool)
    assert st["vmap_node.pool_hits"] == 9 and st["vmap_node.pool_align_misses"] >= 1
    assert st["vmap_node.decayed"] >= 1 and st["vmap_node.lock.node0.pool_lock"] > 0


def test_612_without_pools_diverges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not vacuous: with the pools switched off (every freed area back to the free tree), the
    6.12 pools capture goes wrong at its first reuse."""
    from pyvmalloc.vmalloc import vmap_node

    monkeypatch.setattr(vmap_node.VmapNodes, "pool_index", lambda self, size: None)
    rep = replay_capture(DATA / "linux-6.12-amd64" / "pools")
    assert rep.mismatches and rep.mismatches[0].expected == 0xFFFFC90000435000


def test_612_kinds_capture_every_op_exact(reports_612: dict[str, O.CaptureReport]) -> None:
    """kinds612: vmalloc_huge (h512, h600 on 2 MiB boundaries), vmalloc_32, vrealloc in place
    (w1:2, w1:3) and moved (w1:4, w1:40), every address the kernel's, no tree_shape case."""
    rep = reports_612["linux-6.12-amd64/kinds612"]
    counts = rep.counts()
    assert counts["exact"] == counts["total"] == 26
    got = {o.token: o.got for o in rep.ops}
    assert got["h512"] == 0xFFFFC90000800000 and got["h600"] == 0xFFFFC90000C00000
    assert [o.got for o in rep.ops if o.token.startswith("w1:")] == [
        0xFFFFC900001C9000, 0xFFFFC900001C9000, 0xFFFFC900001DD000, 0xFFFFC9000041E000]


@pytest.mark.parametrize("name", IDS_612)
def test_612_vmap_pools_derive_from_the_trace(name: str) -> None:
    """Each vmap_pools.txt is pool_state_from_trace() of its trace_after.txt up to the
    'oracle snapshot before' mark (the rule its header names)."""
    from pyvmalloc.formats.trace import parse_trace
    from pyvmalloc.vmalloc.vmap_node import pool_state_from_trace

    text = (DATA / name / "trace_after.txt").read_text()
    cut = next(i for i, line in enumerate(text.splitlines(), 1)
               if line.rstrip().endswith("tracing_mark_write: oracle snapshot before"))
    events = [ev for ev in parse_trace(text) if ev.line < cut]
    st = pool_state_from_trace(events, 2, 4096, 0xFFFFC90000000000, 0xFFFFE8FFFFFFFFFF)
    want = [ln for ln in (DATA / name / "vmap_pools.txt").read_text().splitlines()
            if ln and not ln.startswith("#")]
    assert st.render() == want
