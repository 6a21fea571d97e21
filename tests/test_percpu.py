"""pcpu_get_vm_areas/pcpu_free_vm_areas (mm/vmalloc.c, 2.6.32+) and the minimal per-CPU allocator
over them (kernel/percpu.py), which lets bench run lib/test_vmalloc.c's pcpu_alloc_test."""

from __future__ import annotations

import random

import pytest

import pyvmalloc as pv
from pyvmalloc.kernel import test_vmalloc as tv
from pyvmalloc.kernel.percpu import build_geometry
from pyvmalloc.vmalloc.pcpu_areas import PcpuArea, find_base

PS = 4096
MB2 = 2 << 20


def test_find_base_is_the_highest_congruent_fit() -> None:
    free = [(0x1000, 0x9000_0000), (0xA000_0000, 0xA080_0000)]
    # One group: the top of the highest block, aligned.
    assert find_base(free, [0], [MB2], MB2, 0, 0xB000_0000) == 0xA060_0000
    # Two groups 8 MiB apart: both must fit; the upper one decides, the lower one must fit too.
    # Two groups 8 MiB apart (a 10 MiB span) do not fit in the 8 MiB top block: the upper one
    # would, the lower one then falls in the hole below it, so the base moves under 0x9000_0000.
    assert find_base(free, [0, 8 << 20], [MB2, MB2], MB2, 0, 0xB000_0000) == 0x9000_0000 - (10 << 20)
    # Groups 4 MiB apart fit the top block: the highest base.
    assert find_base(free, [0, 4 << 20], [MB2, MB2], MB2, 0, 0xB000_0000) == 0xA080_0000 - (6 << 20)
    assert find_base(free, [0], [4 << 30], MB2, 0, 0xB000_0000) is None


def test_pcpu_areas_sit_at_the_top_without_guard_pages() -> None:
    m = pv.Machine(ram="64M", kernel="6.12")
    vms = m.pcpu_get_vm_areas([0, 4 << 20], [MB2, MB2], MB2)
    assert vms is not None and [type(a) for a in vms] == [PcpuArea, PcpuArea]
    top = m.VMALLOC_END & -MB2
    assert vms[1].addr + MB2 == top and vms[1].addr - vms[0].addr == 4 << 20  # congruent
    assert all(a.size == MB2 and a.flags == pv.VM_ALLOC for a in vms)
    assert f"{vms[0].addr:#x}-{vms[0].addr + MB2:#x} 2097152 pcpu_get_vm_areas+0x0/0x0 vmalloc" in m.vmallocinfo()
    again = m.pcpu_get_vm_areas([0], [MB2], MB2)
    assert again is not None and again[0].addr == vms[1].addr - MB2  # just below the highest
    m.check()
    m.pcpu_free_vm_areas(vms + again)
    m.vm_unmap_aliases()
    assert not list(m.areas())
    m.check()


def test_pcpu_get_vm_areas_rules() -> None:
    m = pv.Machine(ram="64M", kernel="6.1")
    with pytest.raises(pv.KernelBug, match="overlap"):
        m.pcpu_get_vm_areas([0, MB2], [2 * MB2, MB2], MB2)
    with pytest.raises(pv.KernelBug, match="aligned"):
        m.pcpu_get_vm_areas([PS], [MB2], MB2)
    assert m.pcpu_get_vm_areas([0], [1 << 62], MB2) is None  # wider than the range: a WARN
    assert any("pcpu_get_vm_areas() span" in ln for ln in m.dmesg())
    with pytest.raises(pv.ConfigError, match=r"2\.6\.32"):
        pv.Machine(ram="64M", kernel="2.6.31").pcpu_get_vm_areas([0], [MB2], MB2)


def test_geometry_matches_the_612_capture() -> None:
    # x86_64, 2 CPUs, one node: 1 MiB units, one 2 MiB group (the captures' pcpu_get_vm_areas line).
    g = build_geometry(2, 1, PS, MB2, 64)
    assert (g.unit_size, g.group_sizes, g.unit_off) == (1 << 20, [MB2], [0, 1 << 20])
    g4 = build_geometry(4, 2, PS, MB2, 64)  # two nodes: two groups, congruent offsets
    assert len(g4.group_sizes) == 2 and g4.group_offsets[1] % MB2 == 0


def test_alloc_percpu_fills_chunks_and_gives_each_cpu_its_copy() -> None:
    m = pv.Machine(ram="128M", kernel="6.12", cpus=2)
    rng = random.Random(1)
    ptrs = [m.alloc_percpu(rng.randint(1, PS // 4), 1 << rng.randint(1, 11)) for _ in range(2500)]
    assert all(p is not None for p in ptrs)
    s = m.stats()
    assert s["percpu.chunks_created"] >= 2 and s["percpu.objects"] == 2500
    p0 = ptrs[7]
    assert p0 is not None
    m.write(m.per_cpu_ptr(p0, 1), b"cpu1")  # each CPU's copy is mapped, and they differ
    assert m.read(m.per_cpu_ptr(p0, 1), 4) == b"cpu1" and m.read(m.per_cpu_ptr(p0, 0), 4) != b"cpu1"
    m.check()
    for p in ptrs:
        m.free_percpu(p)
    s = m.stats()
    assert s["percpu.objects"] == 0 and s["percpu.chunks_created"] - s["percpu.chunks_destroyed"] == 1
    m.vm_unmap_aliases()
    assert [type(a) for a in m.areas()] == [PcpuArea]  # one empty chunk kept
    m.check()
    with pytest.raises(pv.KernelBug):
        m.free_percpu(p0)


def test_check_sees_a_per_cpu_page_gone() -> None:
    m = pv.Machine(ram="64M", kernel="6.12", cpus=2)
    p = m.alloc_percpu(64, 8)
    assert p is not None
    m.unmap_kernel_range(m.per_cpu_ptr(p, 1) & -PS, PS)
    with pytest.raises(pv.Inconsistency, match="per-CPU page"):
        m.check()


def test_bench_runs_pcpu_alloc_test_and_says_why_not_no_block() -> None:
    m = pv.Machine(ram="128M", kernel="6.12", cpus=2)
    rep = tv.run(m, tv.Params(run_test_mask=1 << 7, nr_pcpu_objects=400))
    (out,) = rep.outcomes[0]
    assert out.name == "pcpu_alloc_test" and out.failed == 0 and out.ops == 2 + 2 * 400
    why = tv.NOT_MODELLED["no_block_alloc_test"]
    assert list(tv.NOT_MODELLED) == ["no_block_alloc_test"] and "6.19" in why
    # The reason names the test's calls and why the model does not claim 6.19 (versions._NEWEST).
    assert "GFP_ATOMIC or GFP_NOWAIT" in why and "preempt_disable()" in why and "6.15" in why
    assert "no_block_alloc_test" not in [name for _bit, name, _f in tv.scenarios()]
    assert (7, "pcpu_alloc_test") in [(bit, name) for bit, name, _f in tv.scenarios(m)]
    m.check()


def test_bench_prints_why_no_block_alloc_test_is_not_run(capsys: pytest.CaptureFixture[str]) -> None:
    from pyvmalloc.cli.main import main

    assert main(["bench", "run_test_mask=1", "test_loop_count=2", "--ram", "64M",
                 "--allocator", "kva"]) == 0
    out = capsys.readouterr().out
    assert "not run: no_block_alloc_test: id 2048 came with Linux 6.19" in out
