"""Lazy TLB purge (Linux 2.6.28+): deferred flushes never let an address reach a new owner early."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import pytest

import pyvmalloc as pv

PAGE = 4096


def lazy_machine(**kw: object) -> pv.Machine:
    kw.setdefault("arch", "x86_64")
    kw.setdefault("ram", "128M")
    kw.setdefault("cpus", 2)
    return pv.Machine(allocator="kva", **kw)  # type: ignore[arg-type]


def test_lazy_purge_follows_the_kernel_from_2_6_28_db64fe02258f() -> None:
    """"mm: rewrite vmap layer" (db64fe02258f, 2.6.28) brought lazy purge; 2.6.22 frees at once."""
    assert pv.Machine(ram="64M").lazy_purge is True
    assert pv.Machine(ram="64M", kernel="2.6.28").lazy_purge is True
    assert pv.Machine(ram="64M", kernel="2.6.22").lazy_purge is False
    assert pv.Machine(ram="64M", kernel="6.1", lazy_purge=False).lazy_purge is False
    with pytest.raises(pv.ConfigError, match="lazy_purge"):
        pv.Machine(ram="64M", lazy_purge="no")  # type: ignore[arg-type]


def test_lazy_max_pages_follows_the_kernel_formula() -> None:
    # fls(num_online_cpus()) * (32 MiB / PAGE_SIZE)
    for cpus, fls in [(1, 1), (2, 2), (3, 2), (4, 3), (8, 4)]:
        assert lazy_machine(cpus=cpus).lazy_max_pages == fls * (32 << 20) // PAGE


def test_vfree_unmaps_at_once_but_keeps_the_range_until_the_purge() -> None:
    m = lazy_machine()
    a = m.vmalloc(3 * PAGE)
    flushes = m.stats()["tlb.flushes"]
    m.vfree(a)
    assert m.translate(a) is None  # unmapped at once
    assert m.stats()["tlb.flushes"] == flushes  # ... but not flushed
    assert m.find_vm_area(a) is None
    assert [(x.addr, x.size) for x in m.lazy_areas()] == [(a, 4 * PAGE)]
    b = m.vmalloc(3 * PAGE)
    assert b != a  # the range is not handed out again before its flush
    m.vm_unmap_aliases()
    assert m.lazy_areas() == []
    assert m.stats()["tlb.flushes"] == flushes + 1
    assert m.vmalloc(3 * PAGE) == a  # after the flush, first fit finds it again


def test_unpurged_areas_are_shown_in_vmallocinfo_after_the_busy_ones() -> None:
    m = lazy_machine()
    a = m.vmalloc(PAGE)
    b = m.vmalloc(PAGE)
    m.vfree(a)
    lines = m.vmallocinfo().splitlines()
    assert lines[0].startswith(f"0x{b:016x}-0x{b + 2 * PAGE:016x}")
    assert lines[-1] == f"0x{a:016x}-0x{a + 2 * PAGE:016x}    8192 unpurged vm_area"


def test_one_flush_covers_everything_once_lazy_max_pages_pile_up() -> None:
    """Before the drain moved to a worker (5.4 here), the freeing call purges."""
    m = lazy_machine(cpus=1, kernel="5.4")
    chunk = 255  # 256 pages with the guard page
    nfree = m.lazy_max_pages // 256 + 1
    areas = [m.vmalloc(chunk * PAGE) for _ in range(nfree)]
    flushes = m.stats()["tlb.flushes"]
    for a in areas[:-1]:
        m.vfree(a)
    assert m.stats()["vm.purge_runs"] == 0 and m.stats()["tlb.flushes"] == flushes
    m.vfree(areas[-1])  # now more than lazy_max_pages wait: one purge, one flush
    s = m.stats()
    assert s["vm.purge_runs"] == 1 and s["tlb.flushes"] == flushes + 1
    assert s["vm.purged_pages"] == nfree * 256 and s["vm.purged_areas"] == nfree
    assert m.lazy_areas() == []


def test_an_allocation_that_would_fail_purges_and_retries() -> None:
    m = pv.Machine(arch="i386", ram="1G", allocator="kva")
    room = m.VMALLOC_END - m.VMALLOC_START
    big = m.vmalloc(room // 2)
    assert big is not None
    m.vfree(big)
    assert m.lazy_areas()
    again = m.vmalloc(room // 2)  # only fits in the lazily freed range: purge, then retry
    assert again == big
    assert m.stats()["vm.purge_runs"] == 1


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 1), st.booleans()), min_size=1, max_size=30),
       st.booleans())
def test_no_stale_translation_reaches_a_new_owner(ops: list[tuple[int, int, bool]], lazy: bool) -> None:
    """Every CPU reads each new area through its TLB: it must see the new owner's bytes."""
    m = pv.Machine(ram="64M", cpus=2, allocator="kva", lazy_purge=lazy)
    live: dict[int, bytes] = {}
    for n, (pages, cpu, free_one) in enumerate(ops):
        a = m.vmalloc(pages * PAGE)
        assert a is not None
        pending = [(x.addr, x.addr + x.size) for x in m.lazy_areas()]
        assert all(a + pages * PAGE <= s or a >= e for s, e in pending)
        pattern = bytes([n % 251 + 1]) * (pages * PAGE)
        m.vwrite(a, pattern)
        live[a] = pattern
        for c in range(2):  # fill both TLBs with this area's translations
            m.current_cpu = c
            assert m.read(a, len(pattern)) == pattern
        m.current_cpu = cpu
        if free_one and live:
            victim = next(iter(live))
            m.vfree(victim)
            del live[victim]
    for c in range(2):
        m.current_cpu = c
        for a, pattern in live.items():
            assert m.read(a, len(pattern)) == pattern


def test_without_the_flush_a_reused_address_hits_a_stale_translation() -> None:
    """What the property above guards against: drop the flush, and a new owner of the address
    reads the previous owner's frame through a CPU's stale TLB entry."""
    m = pv.Machine(ram="64M", cpus=2, allocator="kva", lazy_purge=False)
    m.vm.flush_tlb_kernel_range = lambda start, end: None  # type: ignore[method-assign]
    a = m.vmalloc(PAGE)
    old = int(m.find_vm_area(a).pages[0])
    m.vwrite(a, b"\x11" * PAGE)
    m.current_cpu = 1
    assert m.read(a, 1) == b"\x11"  # CPU 1 caches the translation
    m.vfree(a)
    hogs = []  # take the freed frame away, so that the new owner gets another one
    while not hogs or hogs[-1].pfn != old:
        hogs.append(m.alloc_page())
    b = m.vmalloc(PAGE)
    assert b == a and int(m.find_vm_area(b).pages[0]) != old
    m.vwrite(b, b"\x22" * PAGE)
    assert m.read(b, 1) == b"\x11"  # stale: the old owner's frame
    m.current_cpu = 0
    assert m.read(b, 1) == b"\x22"


def test_6_1_drains_in_a_worker_once_more_than_lazy_max_pages_wait() -> None:
    """drain_in_worker (5.19+): free_vmap_area_noflush only schedules drain_vmap_work; the purge
    runs in the worker (the model: at the next call, or run_workers())."""
    m = lazy_machine(cpus=1, kernel="6.1")
    chunk = 255
    nfree = m.lazy_max_pages // 256 + 1
    areas = [m.vmalloc(chunk * PAGE) for _ in range(nfree)]
    for a in areas:
        m.vfree(a)
    assert m.stats()["vm.purge_runs"] == 0 and len(m.lazy_areas()) == nfree
    m.run_workers()
    assert m.stats()["vm.purge_runs"] == 1 and m.lazy_areas() == []
    # Exactly lazy_max_pages waiting schedules nothing ("strictly more", as 6.1 showed).
    m2 = lazy_machine(cpus=1, kernel="6.1")
    exact = [m2.vmalloc(chunk * PAGE) for _ in range(m2.lazy_max_pages // 256)]
    for a in exact:
        m2.vfree(a)
    m2.run_workers()
    assert m2.stats()["vm.purge_runs"] == 0
