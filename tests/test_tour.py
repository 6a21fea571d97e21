"""The tour says only what the model shows: on every arch profile, kernel and allocator."""

from __future__ import annotations

import pytest

import pyvmalloc as pv
from pyvmalloc.cli.main import main
from pyvmalloc.course.tour import runs_of, tour

CASES = [("x86_64", None, None), ("x86_64-la57", "6.12", None), ("i386", "2.6.22", None),
         ("i386-pae", "3.4.5", "rbtree"), ("arm", "4.9", "list"), ("arm64", "6.1", "kva")]


@pytest.mark.parametrize(("arch", "kernel", "allocator"), CASES)
def test_every_claim_of_the_tour_holds(arch: str, kernel: str | None, allocator: str | None) -> None:
    m = pv.Machine(arch=arch, ram="64M", kernel=kernel, allocator=allocator)
    t = tour(m, seed=3, ram="64M", options=f"--arch {arch}")
    text, f = t.text(), t.facts
    assert runs_of(f["fresh_pfns"]) == 1                   # fresh: consecutive
    assert f["runs"] > 1 and "scattered" in text           # after the fragmentation shown
    assert "not present" in str(f["guard_fault"])
    assert f["stale"] == "aa aa aa aa" and 'b"\\xaa" * ' in text   # the fill is printed
    assert f["user_bytes"] == "00 00 00 00"
    addr, align = f["ioremap"]  # type: ignore[misc]
    assert addr % align == 0
    assert f["walk_levels"] == [lv.name for lv in m.profile.levels]
    if m.profile.bits == 32:
        assert f["out_32"] == (2, 3)                        # 2 of 3 fit; vmalloc= fits all 3
        assert f"arch={arch!r}" in text and f"allocator={m.allocator_name!r}" in text
    else:
        assert f["out_64"] == (None, True)                  # range found, pages ran out
    assert f"--arch {arch}" in text.split("== Next")[1]


def test_the_tour_command_passes_the_flags_on_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "--arch", "arm", "--kernel", "3.4.5", "--allocator", "list", "--ram", "64M"]) == 0
    out = capsys.readouterr().out
    last = out.split("== 9.")[1]
    assert "arch='arm'" in last and "kernel='3.4.5'" in last and "allocator='list'" in last
    assert "pyvmalloc quiz -s 1 -c --arch arm --kernel 3.4.5 --allocator list" in out
