"""vmap nodes (6.9+): the pool rules one by one on a 6.12 machine (x86_64, 2 CPUs: 2 nodes),
check() after each step, and 6.1 unchanged (no nodes, no pools)."""

from __future__ import annotations

import copy

import pytest

import pyvmalloc as pv
from pyvmalloc.errors import Inconsistency
from pyvmalloc.vmalloc.kva_rbtree import KvaRbtreeAllocator
from pyvmalloc.vmalloc.vm_struct import VA_POOLED, VM_IOREMAP
from pyvmalloc.vmalloc.vmap_node import MAX_VA_SIZE_PAGES, PoolState, nr_vmap_nodes

PS = 4096


def machine(kernel: str = "6.12", cpus: int = 2) -> pv.Machine:
    return pv.Machine(arch="x86_64", kernel=kernel, ram="64M", cpus=cpus)


def pool(m: pv.Machine, pages: int, node: int = 0) -> list[int]:
    """Starts of the areas in ``node``'s pool of ``pages`` pages (guard included), head first."""
    assert m.vmap_nodes is not None
    return [va.va_start for va in m.vmap_nodes.nodes[node].pools.get(pages - 1, ())]


def shown(m: pv.Machine) -> set[int]:
    return {int(line.split("-")[0], 16) for line in m.vmallocinfo().splitlines()}


def test_nr_vmap_nodes() -> None:
    assert [nr_vmap_nodes(c, 64) for c in (1, 2, 4, 200)] == [1, 2, 4, 128]
    assert nr_vmap_nodes(8, 32) == 1
    assert machine(cpus=2).vmap_nodes.nr == 2  # type: ignore[union-attr]
    assert machine(cpus=1).vmap_nodes.nr == 1  # type: ignore[union-attr]
    assert pv.Machine(arch="i386-pae", kernel="6.12", ram="64M", cpus=4).vmap_nodes.nr == 1  # type: ignore[union-attr]


def test_addr_to_node_is_16_page_zones() -> None:
    nodes = machine(cpus=4).vmap_nodes
    assert nodes is not None and nodes.zone_size == 16 * PS
    base = 0xFFFFC90000000000
    assert [nodes.addr_to_node_id(base + i * 16 * PS) for i in range(6)] == [0, 1, 2, 3, 0, 1]


def test_same_size_reuse_takes_the_highest_first() -> None:
    m = machine()
    addrs = [m.vmalloc(7 * PS) for _ in range(4)]
    for a in addrs:
        m.vfree(a)
    assert pool(m, 8) == []  # freed areas wait on the lazy list until a purge
    m.vm_unmap_aliases()
    assert pool(m, 8) == sorted(addrs, reverse=True)  # type: ignore[type-var]
    m.check()
    assert [m.vmalloc(7 * PS) for _ in range(4)] == sorted(addrs, reverse=True)  # type: ignore[type-var]
    assert pool(m, 8) == []
    assert m.stats()["vmap_node.pool_hits"] == 4
    m.check()


def test_another_size_does_not_take_from_the_pool() -> None:
    m = machine()
    a = m.vmalloc(7 * PS)
    m.vfree(a)
    m.vm_unmap_aliases()
    b = m.vmalloc(6 * PS)
    assert b != a and pool(m, 8) == [a]
    m.check()


def test_alignment_miss_moves_the_head_to_the_tail() -> None:
    align = 1 << 15  # ioremap of 7 pages aligns to 32 KiB
    for pad in range(1, 8):  # a first area of ``pad`` pages puts the 8-page areas off 32 KiB
        m = machine()
        m.vmalloc(pad * PS)
        addrs = sorted(a for a in (m.vmalloc(7 * PS) for _ in range(4)) if a is not None)
        for a in addrs:
            m.vfree(a)
        m.vm_unmap_aliases()
        head = pool(m, 8)[0]
        if head % align:
            break
    assert head % align
    area = m.get_vm_area(7 * PS, VM_IOREMAP)
    assert area is not None and area.addr not in addrs
    p = pool(m, 8)
    assert p[-1] == head and p[:-1] == sorted(addrs, reverse=True)[1:]
    assert m.stats()["vmap_node.pool_align_misses"] == 1
    m.check()


def test_decay_by_a_quarter_from_the_head() -> None:
    m = machine()
    addrs = [m.vmalloc(7 * PS) for _ in range(8)]
    for a in addrs:
        m.vfree(a)
    m.vm_unmap_aliases()
    before = pool(m, 8)
    m.vm_unmap_aliases()  # an empty purge still decays: 8 >> 2 = 2 from the head
    assert pool(m, 8) == before[2:]
    m.vm_unmap_aliases()  # 6 >> 2 = 1
    assert pool(m, 8) == before[3:]
    m.check()


def test_small_pools_empty_at_the_next_purge() -> None:
    m = machine()
    addrs = [m.vmalloc(3 * PS) for _ in range(3)]
    for a in addrs:
        m.vfree(a)
    m.vm_unmap_aliases()
    assert len(pool(m, 4)) == 3
    m.vm_unmap_aliases()  # fewer than 4: the 6.9 loop removes them all
    assert pool(m, 4) == []
    assert m.vmalloc(3 * PS) == min(addrs)  # type: ignore[type-var]  # back in the free tree
    m.check()


def test_full_decay_after_a_failed_search() -> None:
    m = machine()
    a = m.vmalloc(7 * PS)
    m.vfree(a)
    m.vm_unmap_aliases()
    assert pool(m, 8) == [a]
    b = m.vmalloc(5 * PS)
    m.vfree(b)  # lazy: a failed search's purge must send it to the free tree, not the pool
    assert m.get_vm_area_range(1 << 40, VM_IOREMAP, m.VMALLOC_START, m.VMALLOC_START + (1 << 30)) is None
    assert m.pooled_areas() == []
    assert m.stats()["vmap_node.decayed"] >= 1
    m.check()


def test_the_shrinker_empties_every_pool() -> None:
    m = machine()
    addrs = [m.vmalloc(n * PS) for n in (1, 2, 7, 7, 7, 7, 7)]
    for a in addrs:
        m.vfree(a)
    m.vm_unmap_aliases()
    assert m.vmap_nodes is not None and m.vmap_nodes.shrink_count() == 7
    assert m.vmap_node_shrink() == 7
    assert m.pooled_areas() == [] and m.stats()["vmap_node.shrinker_runs"] == 1
    m.check()


def test_pooled_areas_are_invisible_in_proc_and_stay_reserved() -> None:
    m = machine()
    a = m.vmalloc(7 * PS)
    m.vfree(a)
    assert a in shown(m)  # unpurged vm_area
    m.vm_unmap_aliases()
    assert a not in shown(m)
    assert [va.va_start for va in m.pooled_areas()] == [a]
    assert m.pooled_areas()[0].flags & VA_POOLED
    # Reserved: a request of another size does not land on it.
    b = m.vmalloc(1 * PS)
    assert b is not None and not a <= b < a + 8 * PS  # type: ignore[operator]
    m.check()


def test_ranges_other_than_vmalloc_start_end_bypass_the_pools() -> None:
    m = machine()
    a = m.get_vm_area_range(7 * PS, VM_IOREMAP, m.VMALLOC_START, m.VMALLOC_START + (1 << 30))
    assert a is not None
    m.free_vm_area(a)
    m.vm_unmap_aliases()
    assert m.pooled_areas() == []  # no node encoded: back to the free tree
    c = m.vmalloc(7 * PS)
    m.vfree(c)
    m.vm_unmap_aliases()
    assert pool(m, 8) == [c]
    d = m.get_vm_area_range(7 * PS, VM_IOREMAP, m.VMALLOC_START, m.VMALLOC_START + (1 << 30))
    assert d is not None and pool(m, 8) == [c]  # the pool was not asked
    m.check()


def test_areas_over_256_pages_are_not_pooled() -> None:
    m = machine()
    a = m.vmalloc((MAX_VA_SIZE_PAGES - 1) * PS)  # 256 with the guard: pooled
    b = m.vmalloc(MAX_VA_SIZE_PAGES * PS)        # 257: not
    m.vfree(a)
    m.vfree(b)
    m.vm_unmap_aliases()
    assert [va.va_start for va in m.pooled_areas()] == [a]
    m.check()


def test_the_requesting_cpu_picks_the_node() -> None:
    m = machine()
    m.current_cpu = 1
    a = m.vmalloc(7 * PS)
    m.vfree(a)
    m.vm_unmap_aliases()
    assert pool(m, 8, node=1) == [a] and pool(m, 8, node=0) == []
    m.current_cpu = 0
    assert m.vmalloc(7 * PS) != a  # node 0's pool is empty
    m.current_cpu = 1
    assert m.vmalloc(7 * PS) == a
    m.check()


def test_proc_lists_node_by_node() -> None:
    m = machine()
    addrs = [m.vmalloc(15 * PS) for _ in range(4)]  # 16 pages: one zone each
    assert m.vmap_nodes is not None
    lines = [int(x.split("-")[0], 16) for x in m.vmallocinfo().splitlines()]
    nodes = [m.vmap_nodes.addr_to_node_id(a) for a in lines]
    assert nodes == sorted(nodes)
    assert {m.vmap_nodes.addr_to_node_id(a) for a in addrs if a is not None} == {0, 1}
    m.vfree(addrs[0])
    m.vfree(addrs[1])
    text = m.vmallocinfo().splitlines()
    assert [ln.endswith("unpurged vm_area") for ln in text][-2:] == [True, True]
    m.check()


def test_check_sees_a_lost_pooled_area() -> None:
    m = machine()
    a = m.vmalloc(7 * PS)
    m.vfree(a)
    m.vm_unmap_aliases()
    assert m.vmap_nodes is not None
    m.vmap_nodes.nodes[0].pools.clear()
    with pytest.raises(Inconsistency):
        m.check()


def test_pool_state_round_trip() -> None:
    st = PoolState([(0, 0xFFFFC90000010000, 8 * PS)], {0xFFFFC90000100000: 1}, {0xFFFFC90000000000: None})
    assert PoolState.parse("\n".join(["# c", *st.render()])) == st


@pytest.mark.parametrize("kernel", ["6.1", "6.6"])
def test_before_6_9_nothing_changes(kernel: str) -> None:
    m = machine(kernel)
    assert m.vmap_nodes is None
    a = m.vmalloc(7 * PS)
    m.vfree(a)
    m.vm_unmap_aliases()
    assert m.pooled_areas() == [] and m.vmap_node_shrink() == 0
    assert m.vmalloc(7 * PS) == a  # straight back from the free tree
    assert not any(k.startswith("vmap_node.") for k in m.stats())
    m.check()


# -- the free tree's shape: what goes back, in which order (6.12 mm/vmalloc.c) ------------------------
def _given_back(tree: KvaRbtreeAllocator, runs: list[tuple[int, int]]) -> tuple[object, ...] | None:
    """The shape of a copy of ``tree`` after its busy ``runs`` (start, end) are given back in
    that order (``release`` each area, then ``reclaim`` each run)."""
    t = copy.deepcopy(tree)
    for start, end in runs:
        a = start
        while a < end:
            got = t.release(a)
            assert got is not None
            a += got[1]
    for start, end in runs:
        t.reclaim(start, end)
    return t.shape()


def _other(m: pv.Machine, pages: int) -> int:
    """An area of ``pages`` pages, lowest fit from VMALLOC_START, that no pool serves (its range
    is not VMALLOC_START..VMALLOC_END: no node encoded)."""
    area = m.get_vm_area_range(pages * PS, VM_IOREMAP, m.VMALLOC_START, m.VMALLOC_START + (1 << 40))
    assert area is not None
    return area.addr


def _free_other(m: pv.Machine, addr: int) -> None:
    area = m.find_vm_area(addr)
    assert area is not None
    m.free_vm_area(area)


def test_a_pool_hit_leaves_the_free_tree_alone() -> None:
    """``node_alloc`` hands the pooled area out as it is: the free tree is not touched (giving
    the range back and clipping it again, as the model once did, rebalances this tree)."""
    m = machine()
    assert isinstance(m.vmap_allocator, KvaRbtreeAllocator)
    holes, target = [], 0
    for i in range(4):  # kept, hole; the pooled area after the second hole
        _other(m, 1)
        holes.append(_other(m, 1))
        if i == 1:
            _other(m, 1)
            target = m.vmalloc(7 * PS) or 0
    for h in holes:
        _free_other(m, h)
    m.vfree(target)
    m.vm_unmap_aliases()
    assert pool(m, 8) == [target]
    shape = m.vmap_allocator.shape()
    got = m.vmalloc(7 * PS)
    assert got == target and m.stats()["vmap_node.pool_hits"] == 1
    assert m.vmap_allocator.shape() == shape
    assert m.find_vm_area(got) is not None  # the range is the new area's
    m.check()


def test_a_purge_gives_each_nodes_areas_back_in_descending_order() -> None:
    """``purge_vmap_node``: the lazy list (address order) is ``list_add``ed onto a local list,
    so ``reclaim_list_global`` gives a node's areas back highest first; the ascending order the
    model once used builds another tree from the same free space."""
    m = machine()
    assert isinstance(m.vmap_allocator, KvaRbtreeAllocator)
    lo = m.VMALLOC_START + (1 << 30)
    window = (lo, lo + (1 << 30))  # not VMALLOC_START..END: no node encoded, no pool
    areas = [m.get_vm_area_range(PS, VM_IOREMAP, *window) for _ in range(48)]
    # one node (addr_to_node: 16-page zones, 2 nodes), not adjacent to one another
    gone = [a for a in areas if a is not None and (a.addr - lo) // (16 * PS) % 2 == 0][::2]
    assert len(gone) >= 6
    for a in gone:
        m.free_vm_area(a)
    tree = m.vmap_allocator
    ranges = sorted((va.va_start, va.va_end) for va in m.lazy_areas())
    descending, ascending = _given_back(tree, ranges[::-1]), _given_back(tree, ranges)
    assert descending != ascending
    m.vm_unmap_aliases()
    assert m.pooled_areas() == [] and tree.shape() == descending
    m.check()


def test_decayed_areas_go_back_merged() -> None:
    """``decay_va_pool_node`` merges a node's decayed areas (of all its pools) among themselves
    onto a local tree, then gives the runs back in address order: a run next to a free block
    extends it, where the areas one by one (in address order, or pool by pool from the head)
    would first add a node and then erase one."""
    m = machine()
    assert isinstance(m.vmap_allocator, KvaRbtreeAllocator)
    pooled, holes = [], []
    for n in range(1, 9):  # a pooled pair of n pages each (two per pool), a hole below or above
        first = _other(m, 1)
        pooled += [m.vmalloc(n * PS), m.vmalloc(n * PS)]
        last = _other(m, 1)
        holes.append(first if n % 2 else last)
    for a in pooled:
        m.vfree(a)
    for h in holes:
        _free_other(m, h)
    m.vm_unmap_aliases()  # the holes go back to the free tree, the pairs to node 0's pools
    assert sorted(va.va_start for va in m.pooled_areas()) == sorted(pooled)  # type: ignore[type-var]
    ranges = sorted((va.va_start, va.va_end) for va in m.pooled_areas())
    runs: list[tuple[int, int]] = []
    for start, end in ranges:
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], end)
        else:
            runs.append((start, end))
    assert len(runs) == len(ranges) // 2
    merged = _given_back(m.vmap_allocator, runs)
    by_pool = [(va.va_start, va.va_end) for va in m.pooled_areas()]
    assert merged not in (_given_back(m.vmap_allocator, ranges), _given_back(m.vmap_allocator, by_pool))
    m.vm_unmap_aliases()  # every pool has fewer than 4 areas: all decayed
    assert m.pooled_areas() == [] and m.vmap_allocator.shape() == merged
    m.check()


def test_a_moved_vmalloc_range_moves_the_pools_range_too() -> None:
    """A snapshot restore that moves VMALLOC_START/END (KASLR, vendor ranges) must leave the 6.9+
    pools serving the new range (node_alloc compares the request's range with it)."""
    from pyvmalloc.snapshot.restore import set_vmalloc_range

    m = pv.Machine(ram="256M", kernel="6.12", cpus=4)
    start = m.VMALLOC_START + (1 << 30)
    set_vmalloc_range(m, start, m.VMALLOC_END, "test")
    for _ in range(4):
        m.vfree(m.vmalloc(4096))
    m.vm_unmap_aliases()
    assert m.pooled_areas()
    m.check()


# ---- the purge split across helper workers (6.9+ __purge_vmap_area_lazy) ---------------------------
def _lazy_on_every_node(m: pv.Machine, per_cpu: int, pages: int = 1) -> None:
    """Free ``per_cpu`` areas allocated from each CPU (each lands on that CPU's node lazy list)."""
    for cpu in range(m.nr_cpus):
        m.current_cpu = cpu
        for a in [m.vmalloc(pages * PS) for _ in range(per_cpu)]:
            m.vfree(a)
    m.current_cpu = 0


def test_purge_helpers_run_nodes_on_their_cpus() -> None:
    m = machine(cpus=4)
    m.trace_on()
    _lazy_on_every_node(m, 3)                       # 12 areas of 2 pages: 24 lazy pages, 4 nodes
    m.vm.lazy_max_pages = 10                        # vmap_lazy_nr / lazy_max_pages() = 2
    m.vm_unmap_aliases()
    assert m.vmap_nodes is not None
    works = m.vmap_nodes.last_purge
    # nr_purge_helpers = clamp(24 / 10, 1, 4) - 1 = 1: node 0 on CPU 0's worker, the caller the rest.
    assert [(w.node, w.cpu, w.nr_purged) for w in works] == [(0, 0, 3), (1, None, 3), (2, None, 3), (3, None, 3)]
    s = m.stats()
    assert s["vmap_node.purge_helpers"] == 1 and s["vmap_node.purge_work.cpu0"] == 1
    assert (s["vmap_node.purge_helper_areas"], s["vmap_node.purge_caller_areas"]) == (3, 9)
    assert (s["vmap_node.purge_steps"], s["vmap_node.purge_span"]) == (12, 9)  # node 0 ran beside the caller
    tail = [(e.event, e.cpu) for e in m.trace_events()][-2:]
    assert tail == [("purge_vmap_node", 0), ("purge_vmap_area_lazy", 0)]
    m.check()


def test_helpers_change_who_and_when_not_what() -> None:
    """With helpers the nodes finish in another order; the pools and the free space are the same."""
    runs = []
    for helpers in (False, True):
        m = machine(cpus=4)
        _lazy_on_every_node(m, 2, pages=300)         # over 256 pages: back to the free tree
        _lazy_on_every_node(m, 1)                    # pooled
        m.vm.lazy_max_pages = 300 if helpers else 10**6
        m.vm_unmap_aliases()
        assert m.vmap_nodes is not None
        assert bool(m.stats()["vmap_node.purge_helpers"]) == helpers
        m.check()
        runs.append(([va.va_start for va in m.pooled_areas()], [m.vmalloc(PS) for _ in range(6)],
                     m.vmalloc(900 * PS)))
    assert runs[0] == runs[1]


def test_one_node_or_few_lazy_pages_need_no_helper() -> None:
    m = machine(cpus=1)
    _lazy_on_every_node(m, 4)
    m.vm.lazy_max_pages = 1
    m.vm_unmap_aliases()
    assert m.stats()["vmap_node.purge_helpers"] == 0  # clamp(8, 1, 1) - 1
    m = machine(cpus=4)
    _lazy_on_every_node(m, 1)
    m.vm_unmap_aliases()
    assert m.stats()["vmap_node.purge_helpers"] == 0  # 8 lazy pages, far below lazy_max_pages


def test_busy_lock_taken_to_insert_and_to_unlink() -> None:
    # 6.9+: alloc_vmap_area inserts the area in its node's busy tree under vn->busy.lock, and
    # vfree's find_unlink_vmap_area takes the same lock to unlink it.
    m = pv.Machine(arch="x86_64", ram="256M", cpus=2, kernel="6.12")

    def busy() -> int:
        return sum(v for k, v in m.stats().items() if k.endswith(".busy.lock"))

    before = busy()
    a = m.vmalloc(5000)
    assert a is not None and busy() == before + 1
    m.vfree(a)
    assert busy() == before + 2
    # Before 6.9 there are no vmap nodes and no such lock.
    old = pv.Machine(arch="x86_64", ram="256M", cpus=2, kernel="6.6")
    old.vfree(old.vmalloc(5000))
    assert not any(k.endswith(".busy.lock") for k in old.stats())
