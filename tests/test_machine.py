"""The Machine facade: configuration, exported names, locks, determinism, and the CLI around it."""

from __future__ import annotations

import contextlib
import io
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.cli.main import main

PAGE = 4096


def test_the_public_names_are_pinned() -> None:
    assert sorted(pv.__all__) == sorted([
        "ConfigError", "FormatError", "Inconsistency", "KernelBug", "Machine", "PageFault",
        "PyvmallocError", "VM_ALLOC", "VM_IOREMAP", "VM_MAP", "VM_RESERVED", "VM_USERMAP",
        "VM_VPAGES", "vm_struct",
    ])
    for name in pv.__all__:
        assert getattr(pv, name) is not None


def test_vm_flags_have_the_kernel_values() -> None:
    assert (pv.VM_IOREMAP, pv.VM_ALLOC, pv.VM_MAP, pv.VM_USERMAP, pv.VM_VPAGES) == (1, 2, 4, 8, 0x10)


def test_every_function_the_seed_defines_is_a_method() -> None:
    seed_functions = [
        "unmap_kernel_range", "map_vm_area", "__get_vm_area", "get_vm_area", "get_vm_area_node",
        "__find_vm_area", "__remove_vm_area", "remove_vm_area", "__vunmap", "vfree", "vunmap", "vmap",
        "__vmalloc_area_node", "__vmalloc_area", "__vmalloc_node", "__vmalloc", "vmalloc", "vmalloc_user",
        "vmalloc_node", "vmalloc_exec", "vmalloc_32", "vmalloc_32_user", "vread", "vwrite",
        "remap_vmalloc_range", "vmalloc_sync_all", "alloc_vm_area", "free_vm_area", "__get_vm_area_node",
    ]
    for name in seed_functions:
        assert callable(getattr(pv.Machine, name)), name


@pytest.mark.parametrize("kwargs, words", [
    ({"arch": "sparc"}, "unknown"),
    ({"ram": "lots"}, "not a size"),
    ({"ram": "1M"}, "below"),
    ({"ram": "2T"}, "above"),
    ({"arch": "i386", "ram": "128G"}, "above"),
    ({"nodes": 0}, "node"),
    ({"ram": "64M", "nodes": 64}, "node"),
    ({"cpus": 0}, "CPU"),
    ({"allocator": "slab"}, "allocator"),
    ({"cmdline": "frobnicate=1"}, "frobnicate"),
])
def test_bad_configuration_raises_config_error_with_one_sentence(kwargs: dict, words: str) -> None:
    with pytest.raises(pv.ConfigError) as exc:
        pv.Machine(**kwargs)
    message = str(exc.value)
    assert words.lower() in message.lower() and "\n" not in message


def test_vmalloc_cmdline_is_reported_in_dmesg_and_moves_the_boundary() -> None:
    small = pv.Machine(arch="i386", ram="2G")
    big = pv.Machine(arch="i386", ram="2G", cmdline="vmalloc=384M")
    assert big.VMALLOC_END - big.VMALLOC_START > small.VMALLOC_END - small.VMALLOC_START
    assert big.layout.lowmem_bytes < small.layout.lowmem_bytes
    assert any("vmalloc=384M" in line for line in big.dmesg())


def test_meminfo_counts_page_tables_and_vmalloc_space() -> None:
    m = pv.Machine(arch="i386", ram="2G", kernel="2.6.22")
    info = dict(line.split(":") for line in m.meminfo().splitlines())
    assert int(info["VmallocTotal"].split()[0]) == (m.VMALLOC_END - m.VMALLOC_START) >> 10
    assert "HighTotal" in info and int(info["PageTables"].split()[0]) > 0
    m.vmalloc(10 * PAGE)
    after = dict(line.split(":") for line in m.meminfo().splitlines())
    assert int(after["VmallocUsed"].split()[0]) == 11 * PAGE >> 10
    # 5.3+ (97105f0ab7b8): VmallocUsed counts the pages vmalloc took, no guard page.
    m = pv.Machine(arch="i386", ram="2G", kernel="6.1")
    m.vmalloc(10 * PAGE)
    after = dict(line.split(":") for line in m.meminfo().splitlines())
    assert int(after["VmallocUsed"].split()[0]) == 10 * PAGE >> 10


def test_readers_of_the_vmlist_lock_run_together_and_writers_wait() -> None:
    m = pv.Machine(ram="64M")
    a = m.vmalloc(PAGE)
    m.vwrite(a, b"shared")
    done = threading.Event()
    with m.vmlist_lock.read():
        reader = threading.Thread(target=lambda: done.set() if m.vread(a, 6) == b"shared" else None)
        reader.start()
        reader.join(timeout=10)
        assert done.is_set()  # a second reader got in while the first holds the lock
        writer = threading.Thread(target=m.vmalloc, args=(PAGE,))
        writer.start()
        writer.join(timeout=0.2)
        assert writer.is_alive()  # vmalloc takes the lock for write: it waits for the reader
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert m.vmlist_lock.max_concurrent_readers >= 2


def _tour(seed: int) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["tour", "--seed", str(seed)]) == 0
    return out.getvalue()


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_the_tour_prints_the_same_transcript_for_the_same_seed(seed: int) -> None:
    first = _tour(seed)
    assert _tour(seed) == first
    assert "guard page" in first and "PageFault" in first and "vmalloc=" in first


def test_machine_command_prints_layout_zones_and_meminfo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["machine", "--arch", "arm", "--ram", "512M", "--cmdline", "vmalloc=384M"]) == 0
    out = capsys.readouterr().out
    assert "vmalloc" in out and ("HIGHMEM" in out or "NORMAL" in out)
    assert "VmallocTotal" in out and "page tables: 2 levels" in out


@pytest.mark.parametrize("argv", [
    ["machine", "--arch", "vax"], ["machine", "--ram", "12parsecs"], ["tour", "--seed", "x"],
    ["machine", "--cmdline", "bogus=1"], ["nonsense"], ["bench", "test_loop_count=-3"],
    ["bench", "frobs=1"],
])
def test_bad_command_lines_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err and "Traceback" not in err and len(err.splitlines()) <= 2


def test_bench_runs_every_scenario_on_both_allocators(capsys: pytest.CaptureFixture[str]) -> None:
    # long_busy_list_alloc_test keeps 15000 areas busy: it runs below, smaller, on its own.
    assert main(["bench", "test_loop_count=2", "run_test_mask=0x79", "--ram", "256M", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    names = {row["scenario"] for row in report["results"]}
    assert names == {"fix_size_alloc_test", "long_busy_list_alloc_test", "random_size_alloc_test",
                     "fix_align_alloc_test", "random_size_align_alloc_test", "align_shift_alloc_test",
                     "full_fit_alloc_test"} - {"full_fit_alloc_test", "long_busy_list_alloc_test"}
    for row in report["results"]:
        for alloc in ("list", "kva"):
            assert row[alloc]["ops"] > 0 and row[alloc]["failed"] == 0
    align = next(r for r in report["results"] if r["scenario"] == "align_shift_alloc_test")
    assert align["list"]["xfailed"] == 1 and align["kva"]["xfailed"] == 1


@pytest.mark.parametrize("allocator", ["list", "kva"])
def test_long_busy_list_keeps_its_areas_and_frees_them_all(allocator: str) -> None:
    import random

    from pyvmalloc.kernel import test_vmalloc as tv

    m = pv.Machine(ram="256M", allocator=allocator)
    out = tv.Outcome("long_busy_list_alloc_test")
    tv.long_busy_list_alloc_test(m, tv.Params(test_loop_count=3), random.Random(0), out, live=400)
    assert out.failed == 0 and out.ops == 2 * 400 + 4 * 3
    assert not list(m.areas())
    m.check()
