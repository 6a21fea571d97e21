"""``replay_exact``: the real 6.12 boot traces replayed through the model, address for address.

Each tests/data/oracle/linux-6.12-amd64/<capture>/trace_after.txt is the kernel's ``vmalloc:*``
trace from boot to the second snapshot, the oracle probe's script between its ``oracle script1
begin/end`` marks.  Replayed on one machine of Linux 6.12 with 2 CPUs (the model's ``kva-rbtree``
free tree, its vmap nodes and their pools, each event on its traced CPU, lazy frees and purges
where the trace has them), every traced ``alloc_vmap_area`` must come out at the traced address,
the aligned ones included; no pool is re-implemented here (tests/test_kva_rbtree.py keeps its own
driver as an independent reference).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

import pyvmalloc as pv
from pyvmalloc.analysis.replay import ExactReplay, format_exact, mark_windows, replay_exact
from pyvmalloc.cli.main import main
from pyvmalloc.formats.trace import parse_trace

DATA = Path(__file__).parent / "data" / "oracle" / "linux-6.12-amd64"
MIB = 1 << 20
# capture -> (traced allocations, of which aligned; in the script, of which aligned; pool hits)
EXPECTED = {
    "seq": (130, 89, 9, 0, 0),
    "rand1": (276, 139, 159, 54, 20),
    "pools": (155, 98, 26, 1, 9),
    "kinds612": (156, 111, 16, 3, 3),
}


def run(capture: str, kernel: str = "6.12", **kw: object) -> ExactReplay:
    path = DATA / capture / "trace_after.txt"
    text = path.read_text()
    return replay_exact(parse_trace(text, str(path)), kernel, windows=mark_windows(text),
                        **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("capture", sorted(EXPECTED))
def test_every_traced_address_comes_out_through_the_model(capture: str) -> None:
    r = run(capture, percpu=2 * MIB)
    print(format_exact(r), end="")
    allocs, aligned, script, script_aligned, hits = EXPECTED[capture]
    assert r.misses == [] and r.exact
    assert (r.script.allocs, r.script.same, r.script.aligned, r.script.aligned_same) == (
        script, script, script_aligned, script_aligned)
    assert (r.whole.allocs, r.whole.same, r.whole.aligned, r.whole.aligned_same) == (
        allocs, allocs, aligned, aligned)
    assert r.pool_hits == hits and r.unmatched_frees == 0 and r.retries == 0
    assert (r.lazy_mismatches, r.purge_mismatches) == (0, 0) and r.purges > 0
    assert (r.kernel, r.cpus, r.allocator) == ("6.12", 2, "kva-rbtree")
    # The percpu area lands where before.txt shows pcpu_get_vm_areas'.
    m = re.search(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+\d+ pcpu_get_vm_areas",
                  (DATA / capture / "before.txt").read_text(), re.M)
    assert m and r.percpu == (int(m.group(1), 16), int(m.group(2), 16) - int(m.group(1), 16))
    assert f"{r.whole.same}/{r.whole.allocs} (aligned {r.whole.aligned_same}/{r.whole.aligned})" \
        in format_exact(r)


def test_the_model_needs_its_nodes_and_the_traced_cpus() -> None:
    """Not vacuous: on 6.1 (no vmap nodes), or with every event on CPU 0, rand1's script comes
    out elsewhere; a machine without the trace's CPUs is refused."""
    assert not run("rand1", kernel="6.1").script.exact
    with pytest.raises(pv.ConfigError, match="CPU 1"):
        run("rand1", cpus=1)
    path = DATA / "rand1" / "trace_after.txt"
    events = [replace(ev, cpu=0) for ev in parse_trace(path.read_text())]
    assert not replay_exact(events, "6.12", cpus=2).whole.exact


def test_a_failed_search_is_the_models_purge_and_retry() -> None:
    """A trace of the model itself: a search that fails until the lazy area is purged, the
    purge and the retry are one call of the model's alloc_vmap_area."""
    m = pv.Machine(kernel="6.12", cpus=2)
    start = m.VMALLOC_START + 64 * m.PAGE_SIZE
    window = (start, start + 4 * m.PAGE_SIZE)
    m.trace_on()
    area = m.get_vm_area_range(3 * m.PAGE_SIZE, pv.VM_ALLOC, *window)
    assert area is not None and m.remove_vm_area(area.addr) is not None
    again = m.get_vm_area_range(3 * m.PAGE_SIZE, pv.VM_ALLOC, *window)
    assert again is not None and again.addr == start
    events = m.trace_events()
    assert [ev.event for ev in events] == ["alloc_vmap_area", "free_vmap_area_noflush", "alloc_vmap_area",
                                           "purge_vmap_area_lazy", "alloc_vmap_area"]
    r = replay_exact(events, "6.12", cpus=2)
    assert r.retries == 1 and r.whole.allocs == r.whole.same == 2 and r.exact
    assert r.purges == 0 and r.frees == 1


def test_mark_windows() -> None:
    mark = "init-1 [000] ..... 3.7: tracing_mark_write: oracle script{} {}"
    text = "\n".join(["x", mark.format(1, "begin"), "y", mark.format(1, "end"), mark.format(2, "begin"),
                      mark.format(2, "end"), mark.format(3, "begin")])
    assert mark_windows(text) == [(2, 4), (5, 6)]
    assert mark_windows("no marks") == []


def test_cli_exact(capsys: pytest.CaptureFixture[str]) -> None:
    trace = DATA / "pools" / "trace_after.txt"
    assert main(["replay", "--exact", "--kernel", "6.12", "--percpu", "2M", str(trace)]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "155/155 (aligned 98/98) traced addresses reproduced" in out
    assert "script 26/26 (aligned 1/1)" in out and "9 pool hits" in out
    assert main(["replay", "--exact", "--json", "--kernel", "6.12", str(trace)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["exact"] and data["whole"]["same"] == 155 and data["percpu"] is None
    assert main(["replay", "--exact", "--percpu", "lots", str(trace)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
