"""vm_map_ram()/vm_unmap_ram() and the per-CPU vmap blocks (vmalloc/vmap_block.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.kernel import test_vmalloc as tv
from pyvmalloc.vmalloc import vmap_block as VB
from pyvmalloc.vmalloc.vm_struct import VM_LAZY_FREE, VMAP_BLOCK, VMAP_RAM

PS = 4096


def _machine(kernel: str = "6.1") -> pv.Machine:
    return pv.Machine(kernel=kernel, cpus=2, ram="256M")


def _pages(m: pv.Machine, n: int) -> list[object]:
    return [m.alloc_page() for _ in range(n)]


def _ram_lines(m: pv.Machine) -> list[str]:
    return [ln for ln in m.vmallocinfo().splitlines() if "vm_map_ram" in ln or "unpurged" in ln]


def test_block_geometry_follows_the_build_nr_cpus() -> None:
    # 128 GiB / 4 KiB / 8192 / 16 = 256 pages (Debian amd64); 32-bit: max(64, 32768/32/16) = 64.
    assert VB.vmap_bbmap_bits(64, 12, 8192) == 256
    assert VB.vmap_bbmap_bits(64, 12, 64) == 1024           # VMAP_BBMAP_BITS_MAX
    assert VB.vmap_bbmap_bits(32, 12, 32) == 64             # VMAP_BBMAP_BITS_MIN
    m = _machine()
    st_ = VB.blocks_of(m.vm)
    assert (st_.bits, st_.block_size, st_.max_alloc) == (256, 1 << 20, 64)
    # The machine's CPU count does not enter it (the kernel uses CONFIG_NR_CPUS).
    assert VB.blocks_of(pv.Machine(kernel="6.1", cpus=8, ram="256M").vm).bits == 256


def test_pieces_are_power_of_two_orders_one_after_the_other() -> None:
    m = _machine()
    a = m.vm_map_ram(_pages(m, 3), 3)
    b = m.vm_map_ram(_pages(m, 17), 17)
    c = m.vm_map_ram(_pages(m, 1), 1)
    assert a is not None and b is not None and c is not None
    assert a % (1 << 20) == 0                               # a VMAP_BLOCK_SIZE-aligned block
    assert (b - a, c - a) == (4 * PS, 36 * PS)               # orders 2, 5, 0 at the bump offset
    va = m.find_vmap_area(a)
    assert va is not None and va.flags == VMAP_RAM | VMAP_BLOCK and va.size == 1 << 20
    vb = VB.blocks_of(m.vm).by_index[VB.blocks_of(m.vm).index(m.VMALLOC_START, a)]
    assert (vb.free, vb.dirty) == (256 - 37, 0)
    m.check()


def test_before_4_0_pieces_are_aligned_regions_of_alloc_map() -> None:
    m = _machine("3.10")
    a = m.vm_map_ram(_pages(m, 3), 3)
    b = m.vm_map_ram(_pages(m, 17), 17)
    c = m.vm_map_ram(_pages(m, 1), 1)
    assert a is not None and b is not None and c is not None
    assert (b - a, c - a) == (32 * PS, 4 * PS)               # bitmap_find_free_region
    m.vm_unmap_ram(c, 1)
    d = m.vm_map_ram(_pages(m, 1), 1)
    assert d == a + 5 * PS                                   # a freed region is not reused
    m.check()


def test_dirty_accounting_and_a_fully_dirty_block_is_freed_lazily() -> None:
    m = _machine()
    addrs = [m.vm_map_ram(_pages(m, 64), 64) for _ in range(4)]
    assert all(x is not None for x in addrs)
    st_ = VB.blocks_of(m.vm)
    vb = st_.by_index[st_.index(m.VMALLOC_START, addrs[0])]
    assert vb.free == 0 and vb not in st_.queues[0]          # full: off the free list
    for i, a in enumerate(addrs[:3]):
        m.vm_unmap_ram(a, 64)
        assert vb.dirty == 64 * (i + 1)
        assert (vb.dirty_min, vb.dirty_max) == (0, 64 * (i + 1))
    m.check()
    m.vm_unmap_ram(addrs[3], 64)
    assert not st_.by_index
    va = m.find_vmap_area(addrs[0])
    assert va is not None and va.flags == VM_LAZY_FREE
    assert _ram_lines(m) == [f"{addrs[0]:#x}-{addrs[0] + (1 << 20):#x} 1048576 unpurged vm_area"]
    m.check()


def test_vm_unmap_aliases_frees_fragmented_blocks() -> None:
    m = _machine()
    a = m.vm_map_ram(_pages(m, 3), 3)
    assert a is not None
    m.vm_unmap_ram(a, 3)                                     # free 252 + dirty 4 == 256
    m.check()                                                # stale TLB allowed in the dirty range
    m.vm_unmap_aliases()
    assert not VB.blocks_of(m.vm).by_index and _ram_lines(m) == []
    m.check()


def test_vmap_purge_threshold_keeps_usable_blocks() -> None:
    # ≈6.5: a fragmented block is freed by vm_unmap_aliases only when less than 1/4 is free.
    m = _machine("6.6")
    a = m.vm_map_ram(_pages(m, 3), 3)
    assert a is not None
    m.vm_unmap_ram(a, 3)
    m.vm_unmap_aliases()
    st_ = VB.blocks_of(m.vm)
    (vb,) = st_.by_index.values()
    assert (vb.dirty_min, vb.dirty_max) == (256, 0)           # flushed once, forgotten
    m.check()
    big = [m.vm_map_ram(_pages(m, 64), 64) for _ in range(3)]   # 252 - 192 = 60 < 64 free
    for x in big:
        assert x is not None
        m.vm_unmap_ram(x, 64)
    m.vm_unmap_aliases()
    assert not st_.by_index
    m.check()


def test_the_purge_of_a_failed_search_frees_fragmented_blocks() -> None:
    m = _machine()
    a = m.vm_map_ram(_pages(m, 1), 1)
    assert a is not None
    m.vm_unmap_ram(a, 1)
    with m.vmlist_lock.write():
        VB.purge_fragmented_blocks_allcpus(m.vm)
    assert not VB.blocks_of(m.vm).by_index
    assert m.lazy_areas()[0].va_start == a
    m.check()


def test_large_counts_take_an_area_of_their_own_without_guard_page() -> None:
    m = _machine()
    pages = _pages(m, 65)
    a = m.vm_map_ram(pages, 65)
    assert a is not None
    va = m.find_vmap_area(a)
    assert va is not None and va.flags == VMAP_RAM and va.vm is None and va.size == 65 * PS
    assert _ram_lines(m) == [f"{a:#x}-{a + 65 * PS:#x}  266240 vm_map_ram"]
    assert m.translate(a + 64 * PS) is not None
    m.check()
    m.vm_unmap_ram(a, 65)
    assert _ram_lines(m) == [f"{a:#x}-{a + 65 * PS:#x}  266240 unpurged vm_area"]
    m.check()


def test_proc_line_is_the_block_and_older_kernels_print_none() -> None:
    m = _machine()
    a = m.vm_map_ram(_pages(m, 2), 2)
    assert a is not None
    assert _ram_lines(m) == [f"{a:#x}-{a + (1 << 20):#x} 1048576 vm_map_ram"]
    old = _machine("4.9")
    b = old.vm_map_ram(_pages(old, 2), 2)
    assert b is not None and _ram_lines(old) == []          # s_show skipped them before 4.13
    old.check()
    with pytest.raises(NotImplementedError):
        _machine("2.6.22").vm_map_ram(_pages(m, 1), 1)


def test_bad_calls_oops_like_the_kernel() -> None:
    m = _machine()
    with pytest.raises(pv.KernelBug):
        m.vm_unmap_ram(m.VMALLOC_START + 5 * (1 << 20), 3)  # no vmap block there
    with pytest.raises(pv.KernelBug):
        m.vm_unmap_ram(0, 1)
    with pytest.raises(pv.KernelBug):
        m.vm_map_ram([], 0)
    assert m.vm_map_ram([None], 1) is None                   # a NULL page: WARN, undone
    m.check()


def test_check_catches_a_corrupted_block() -> None:
    m = _machine()
    a = m.vm_map_ram(_pages(m, 4), 4)
    assert a is not None
    st_ = VB.blocks_of(m.vm)
    vb = st_.by_index[st_.index(m.VMALLOC_START, a)]
    vb.dirty += 1
    with pytest.raises(pv.Inconsistency, match=r"free .* dirty"):
        m.check()
    vb.dirty -= 1
    m.check()
    # A page mapped in the free part of a block.
    m.init_mm.map_range(a + 10 * PS, [m.translate(a) >> 12], m.vm.pgprot("PAGE_KERNEL"))
    with pytest.raises(pv.Inconsistency, match="page 10"):
        m.check()


def test_vread_reads_vm_map_ram_pieces_from_6_4() -> None:
    for kernel, readable in (("6.1", False), ("6.6", True)):
        m = _machine(kernel)
        pages = _pages(m, 2)
        a = m.vm_map_ram(pages, 2)
        assert a is not None
        m.write(a, b"through the mapping")
        got = m.vread(a, 19)
        # 6.1 skips areas without a vm_struct: nothing ends above ``a``, vread returns 0.
        assert got == (b"through the mapping" if readable else b""), kernel
        if readable:
            assert m.vwrite(a + PS, b"second") == 6
            assert m.read(a + PS, 6) == b"second"
            # The rest of the block reads as zeros (free pages).
            assert m.vread(a + 2 * PS, 16) == bytes(16)
        m.check()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 80), st.integers(0, 1)), min_size=1, max_size=30))
def test_random_maps_and_unmaps_against_a_reference(steps: list[tuple[bool, int, int]]) -> None:
    m = _machine()
    live: dict[int, tuple[int, list[object], bytes]] = {}
    for i, (do_map, count, cpu) in enumerate(steps):
        m.current_cpu = cpu
        if do_map or not live:
            pages = _pages(m, count)
            a = m.vm_map_ram(pages, count)
            assert a is not None and a % PS == 0
            # No overlap with any live mapping.
            for b, (n, _p, _t) in live.items():
                assert a + count * PS <= b or b + n * PS <= a
            tag = f"map{i}".encode()
            m.write(a + (count - 1) * PS, tag)
            live[a] = (count, pages, tag)
        else:
            a = sorted(live)[count % len(live)]
            n, pages, _tag = live.pop(a)
            m.vm_unmap_ram(a, n)
            for p in pages:
                m.free_page(p)
        m.check()
        for a, (n, _p, tag) in live.items():
            assert m.read(a + (n - 1) * PS, len(tag)) == tag
    m.vm_unmap_aliases()
    m.check()


def test_bench_runs_vm_map_ram_test() -> None:
    assert "vm_map_ram_test" not in tv.NOT_MODELLED
    assert (10, "vm_map_ram_test") in [(bit, name) for bit, name, _f in tv.scenarios()]
    m = _machine()
    rep = tv.run(m, tv.Params(run_test_mask=1024, test_loop_count=40, nr_pages=5))
    (out,) = rep.outcomes[0]
    assert out.name == "vm_map_ram_test" and out.failed == 0 and out.ops == 80
    m.check()
