"""The 2.6.22 vmalloc API on the simulated machine: one test per behaviour of the seed."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.phys import gfp as G

PAGE = 4096
GFP_ZERO = getattr(G, "__GFP_ZERO")


def free_and_tables(m: pv.Machine) -> int:
    """Free frames plus page-table frames: constant across anything that frees what it took
    (page-table frames stay allocated once built, as in the kernel)."""
    m.slab.kmem_cache_shrink()  # empty slabs kept for reuse are not lost frames
    return m.phys.nr_free() + m.init_mm.nr_table_frames


def machine(**kw: object) -> pv.Machine:
    kw.setdefault("arch", "x86_64")
    kw.setdefault("ram", "64M")
    kw.setdefault("kernel", "2.6.22")  # the seed's semantics, unless a test names another
    return pv.Machine(**kw)  # type: ignore[arg-type]


# ---- areas and the address space -------------------------------------------------------------
def test_vmalloc_returns_page_aligned_address_inside_the_vmalloc_range() -> None:
    m = machine()
    a = m.vmalloc(10_000)
    assert a is not None and a % PAGE == 0
    assert m.VMALLOC_START <= a < m.VMALLOC_END


def test_area_size_includes_one_guard_page_and_is_page_aligned() -> None:
    m = machine()
    a = m.vmalloc(10_000)
    area = m.find_vm_area(a)
    assert area is not None
    assert area.size == 3 * PAGE + PAGE
    assert area.nr_pages == 3 and area.flags & pv.VM_ALLOC


def test_get_vm_area_of_size_zero_returns_none() -> None:
    m = machine()
    assert m.get_vm_area(0, pv.VM_ALLOC) is None
    assert m.vmalloc(0) is None


def test_consecutive_areas_are_separated_by_exactly_the_guard_page() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    b = m.vmalloc(PAGE)
    assert b == a + 2 * PAGE


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.booleans()), min_size=1, max_size=25), st.integers(1, 6))
def test_first_fit_takes_the_lowest_hole_that_fits(ops: list[tuple[int, bool]], want: int) -> None:
    m = machine()
    live = []
    for pages, keep in ops:
        a = m.vmalloc(pages * PAGE)
        assert a is not None
        if keep:
            live.append(a)
        else:
            m.vfree(a)
    busy = sorted((ar.addr, ar.end) for ar in m.areas())
    # The lowest address where want pages + guard fit, recomputed from the busy list.
    need = (want + 1) * PAGE
    expect, cursor = None, m.VMALLOC_START
    for s, e in busy:
        if s - cursor >= need:
            expect = cursor
            break
        cursor = max(cursor, e)
    if expect is None:
        expect = cursor
    assert m.vmalloc(want * PAGE) == expect


@pytest.mark.parametrize("size", [1, PAGE, PAGE + 1, 5 * PAGE, 1 << 20, 3 << 20])
def test_ioremap_areas_align_to_fls_of_size_clamped(size: int) -> None:
    m = machine()
    m.vmalloc(PAGE)  # make the first free address only page-aligned
    area = m.get_vm_area(size, pv.VM_IOREMAP)
    assert area is not None
    bit = min(max(size.bit_length(), 12), m.layout.ioremap_max_order)
    assert m.layout.ioremap_max_order == 19          # 2.6.22: the generic 7 + PAGE_SHIFT
    assert area.addr % (1 << bit) == 0


@pytest.mark.parametrize("arch,size,kernel,want", [
    ("x86_64", 4096, "2.6.22", 8192), ("x86_64", 4096, "6.1", 4096),
    ("x86_64", 1 << 20, "4.8", 2 << 20), ("x86_64", 1 << 20, "4.9", 1 << 20),
    ("x86_64", 3 << 20, "6.1", 4 << 20), ("x86_64", 5 << 30, "6.1", 1 << 30),
    ("x86_64", 3 << 20, "4.0", 1 << 19), ("i386-pae", 3 << 20, "6.1", 2 << 20),
    ("i386", 5 << 20, "6.1", 4 << 20), ("arm", 64 << 20, "3.4", 16 << 20),
])
def test_ioremap_alignment_by_version_34fe653716b0_and_x86_huge_io(
        arch: str, size: int, kernel: str, want: int) -> None:
    """2.6.22 took fls(size); 4.9's "mm/vmalloc.c: fix align value calculation error"
    (34fe653716b0) took get_count_order of the page-aligned size (a power of two no longer gets
    twice its size); IOREMAP_MAX_ORDER is the generic 19 until x86's huge I/O mappings (4.1:
    PUD_SHIFT on x86_64, PMD_SHIFT on x86_32), 24 on ARM."""
    m = pv.Machine(arch=arch, ram="1G", kernel=kernel)
    assert m.ioremap_align(size) == want


def test_out_of_vmalloc_space_returns_none_and_logs_the_seed_warning() -> None:
    m = pv.Machine(arch="i386", ram="64M", kernel="2.6.22")
    room = m.VMALLOC_END - m.VMALLOC_START
    assert m.get_vm_area(room, pv.VM_ALLOC) is None  # + guard page: cannot fit
    assert any(
        "allocation failed: out of vmalloc space - use vmalloc=<size> to increase size." in line
        for line in m.dmesg()
    )


def test_the_vmalloc_space_warning_is_rate_limited() -> None:
    m = pv.Machine(arch="i386", ram="64M", kernel="2.6.22")
    room = m.VMALLOC_END - m.VMALLOC_START
    for _ in range(50):
        assert m.get_vm_area(room, pv.VM_ALLOC) is None
    lines = [line for line in m.dmesg() if "out of vmalloc space" in line]
    assert 1 <= len(lines) <= 10


@pytest.mark.parametrize("allocator", ["list", "kva"])
def test_area_never_runs_past_end_seed_bug_fixed(allocator: str) -> None:
    # 2.6.22 returned the address after the last area without checking it against ``end``.
    m = machine(allocator=allocator)
    start = m.VMALLOC_START
    first = m.get_vm_area_range(PAGE, pv.VM_ALLOC, start, start + 4 * PAGE)
    assert first is not None and first.addr == start
    # 2 pages + guard = 3 pages would end at start + 5 pages: past end.
    assert m.get_vm_area_range(2 * PAGE, pv.VM_ALLOC, start, start + 4 * PAGE) is None
    assert m.get_vm_area_range(PAGE, pv.VM_ALLOC, start, start + 4 * PAGE) is not None


def test_remove_vm_area_unlinks_and_takes_off_the_guard_page() -> None:
    m = machine()
    a = m.vmalloc(2 * PAGE)
    area = m.remove_vm_area(a)
    assert area is not None and area.size == 2 * PAGE
    assert m.find_vm_area(a) is None
    assert m.remove_vm_area(a) is None


def test_free_vm_area_of_an_area_that_is_not_registered_is_a_bug() -> None:
    m = machine()
    area = m.get_vm_area(PAGE, pv.VM_IOREMAP)
    assert area is not None
    impostor = pv.vm_struct(addr=area.addr, size=area.size, flags=area.flags)
    with pytest.raises(pv.KernelBug):
        m.free_vm_area(impostor)


def test_alloc_vm_area_builds_page_tables_down_to_empty_ptes_without_mapping() -> None:
    m = machine()
    area = m.alloc_vm_area(3 * PAGE)
    assert area is not None and area.flags & pv.VM_IOREMAP
    steps = m.walk(area.addr)
    assert steps[-1].level == "pte"  # every level exists down to the PTE table
    assert m.translate(area.addr) is None  # ... and nothing is mapped
    m.free_vm_area(area)
    assert m.find_vm_area(area.addr) is None


# ---- allocation and mapping ------------------------------------------------------------------
def test_vmap_maps_the_given_pages_and_vunmap_leaves_them_allocated() -> None:
    m = machine()
    pages = [m.alloc_page() for _ in range(3)]
    free_before = free_and_tables(m)
    a = m.vmap(pages, 3, pv.VM_MAP, "PAGE_KERNEL")
    assert a is not None
    for i, p in enumerate(pages):
        assert m.translate(a + i * PAGE) == p.pfn * PAGE
    m.vunmap(a)
    assert m.translate(a) is None
    assert free_and_tables(m) == free_before
    for p in pages:
        m.free_page(p)


def test_vmap_of_more_pages_than_num_physpages_returns_none() -> None:
    m = machine()
    assert m.vmap([], m.num_physpages + 1, pv.VM_MAP) is None


def test_vmap_with_a_null_page_fails_and_undoes_everything() -> None:
    m = machine()
    p = m.alloc_page()
    areas_before = len(list(m.areas()))
    assert m.vmap([p, None], 2, pv.VM_MAP) is None
    assert len(list(m.areas())) == areas_before
    m.free_page(p)


def test_vfree_gives_every_page_back() -> None:
    m = machine(lazy_purge=False)
    free_before = free_and_tables(m)
    a = m.vmalloc(40 * PAGE)
    assert free_and_tables(m) <= free_before - 40
    m.vfree(a)
    assert free_and_tables(m) == free_before


def test_vfree_of_null_does_nothing() -> None:
    m = machine()
    before = m.dmesg()
    m.vfree(None)
    m.vfree(0)
    assert m.dmesg() == before


def test_vfree_of_an_unaligned_address_logs_bad_address_and_warns() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    m.vfree(a + 1)
    log = "\n".join(m.dmesg())
    assert f"Trying to vfree() bad address ({a + 1:016x})" in log and "WARNING" in log
    assert m.find_vm_area(a) is not None


def test_double_vfree_is_the_nonexistent_area_case() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    m.vfree(a)
    m.vfree(a)
    assert any(f"Trying to vfree() nonexistent vm area ({a:016x})" in line for line in m.dmesg())


def test_vfree_and_vunmap_in_interrupt_context_are_bugs() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    with m.interrupt():
        with pytest.raises(pv.KernelBug):
            m.vfree(a)
        with pytest.raises(pv.KernelBug):
            m.vunmap(a)
        with pytest.raises(pv.KernelBug):
            m.vmalloc(PAGE)
    m.vfree(a)


def test_vmalloc_user_is_zeroed_even_on_recycled_frames_and_marked_usermap() -> None:
    m = machine(lazy_purge=False)
    a = m.vmalloc(8 * PAGE)
    m.vwrite(a, b"\xaa" * 8 * PAGE)
    m.vfree(a)
    b = m.vmalloc_user(8 * PAGE)
    assert b is not None
    assert m.vread(b, 8 * PAGE) == bytes(8 * PAGE)
    assert m.find_vm_area(b).flags & pv.VM_USERMAP


def test_plain_vmalloc_sees_stale_bytes_of_recycled_frames() -> None:
    m = machine(lazy_purge=False)
    a = m.vmalloc(16 * PAGE)
    m.vwrite(a, b"\x5a" * 16 * PAGE)
    old = set(m.find_vm_area(a).pages.tolist())
    m.vfree(a)
    b = m.vmalloc(64 * PAGE)
    new = m.find_vm_area(b).pages.tolist()
    reused = [i for i, pfn in enumerate(new) if pfn in old]
    assert reused  # the buddy allocator hands recently freed frames out again
    for i in reused:  # as real RAM: plain vmalloc does not zero
        assert m.vread(b + i * PAGE, PAGE) == b"\x5a" * PAGE


def test_vmalloc_exec_clears_nx_and_vmalloc_sets_it() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    x = m.vmalloc_exec(PAGE)
    assert "NX" in m.walk(a)[-1].flags
    assert "NX" not in m.walk(x)[-1].flags


def test_vmalloc_32_takes_frames_below_4g_on_x86_64() -> None:
    m = machine(ram="8G")
    hog = m.vmalloc(100 * PAGE)  # NORMAL (above 4 GiB) is preferred by plain vmalloc
    a = m.vmalloc_32(16 * PAGE)
    pfns = m.find_vm_area(a).pages
    assert np.all(pfns < (4 << 30) // PAGE)
    assert np.any(m.find_vm_area(hog).pages >= (4 << 30) // PAGE)


def test_vmalloc_on_i386_with_more_ram_than_lowmem_takes_highmem_first() -> None:
    m = pv.Machine(arch="i386", ram="2G", kernel="2.6.22")
    a = m.vmalloc(4 * PAGE)
    zones = {m.phys.page(int(p)).zone for p in m.find_vm_area(a).pages}
    assert zones == {"HIGHMEM"}
    b = m.vmalloc_32(4 * PAGE)  # GFP_KERNEL on 32-bit: lowmem
    assert {m.phys.page(int(p)).zone for p in m.find_vm_area(b).pages} <= {"NORMAL", "DMA"}


def test_vmalloc_node_takes_pages_from_that_node() -> None:
    m = machine(ram="256M", nodes=2)
    a = m.vmalloc_node(8 * PAGE, 1)
    assert {m.phys.page(int(p)).node for p in m.find_vm_area(a).pages} == {1}


def test_large_areas_keep_their_page_array_in_vmalloc_space_with_vm_vpages() -> None:
    m = machine()
    n = PAGE // 8 + 1  # array of n pointers no longer fits in a page
    a = m.vmalloc(n * PAGE)
    area = m.find_vm_area(a)
    assert area.flags & pv.VM_VPAGES
    kind, where = area.pages_array
    assert kind == "vmalloc" and m.find_vm_area(where) is not None
    # The array's memory holds the pfns, one pointer-sized word each.
    stored = np.frombuffer(m.vread(where, n * 8), dtype=np.uint64)
    assert np.array_equal(stored, area.pages.astype(np.uint64))
    m.vfree(a)
    assert m.find_vm_area(where) is None


def test_small_areas_keep_their_page_array_in_kmalloc() -> None:
    m = machine()
    a = m.vmalloc(4 * PAGE)
    area = m.find_vm_area(a)
    assert not area.flags & pv.VM_VPAGES and area.pages_array[0] == "kmalloc"


@pytest.mark.parametrize("point", ["page_alloc", "kmalloc", "vmap_area", "pgtable_alloc"])
def test_every_failure_path_of_vmalloc_frees_what_it_took(point: str) -> None:
    for nth in range(1, 6):
        m = machine(lazy_purge=False)
        free_before = free_and_tables(m)
        areas_before = len(list(m.areas()))
        m.inject(point, nth=nth)
        a = m.vmalloc(600 * PAGE)  # big enough for a VM_VPAGES array
        m.inject_clear()
        if a is not None:
            m.vfree(a)
        assert free_and_tables(m) == free_before
        assert len(list(m.areas())) == areas_before


# ---- reading, writing, user space --------------------------------------------------------------
def test_vwrite_then_vread_round_trips_bytes() -> None:
    m = machine()
    a = m.vmalloc(3 * PAGE)
    assert m.vwrite(a + 100, b"hello") == 5
    assert m.vread(a + 100, 5) == b"hello"
    assert m.read(a + 100, 5) == b"hello"  # the CPU sees the same bytes


def test_vread_of_holes_and_guard_pages_returns_zeros() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    b = m.vmalloc(PAGE)
    m.vwrite(a, b"\xff" * PAGE)
    m.vwrite(b, b"\xee" * PAGE)
    data = m.vread(a, 3 * PAGE)
    assert data == b"\xff" * PAGE + bytes(PAGE) + b"\xee" * PAGE


def test_vwrite_skips_holes_but_counts_them() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    b = m.vmalloc(PAGE)
    assert m.vwrite(a, b"\x11" * 3 * PAGE) == 3 * PAGE
    assert m.vread(b, 1) == b"\x11"


def test_vread_stops_after_the_last_area() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    assert len(m.vread(a, 10 * PAGE)) == PAGE


def test_vread_near_the_top_of_the_address_space_is_clamped() -> None:
    m = machine()
    m.vmalloc(PAGE)
    assert m.vread((1 << 64) - 16, 1 << 20) == b""


def test_a_store_into_the_guard_page_faults() -> None:
    m = machine()
    a = m.vmalloc(3 * PAGE)
    m.write(a + 3 * PAGE - 1, b"x")
    with pytest.raises(pv.PageFault) as exc:
        m.write(a + 3 * PAGE, b"x")
    assert exc.value.address == a + 3 * PAGE and exc.value.access == "write"


def test_remap_vmalloc_range_shares_bytes_with_user_space() -> None:
    m = machine()
    a = m.vmalloc_user(4 * PAGE)
    mm = m.user_mm()
    vma = mm.mmap(2 * PAGE)
    assert m.remap_vmalloc_range(vma, a, 1) == 0
    assert vma.flags & pv.VM_RESERVED
    m.vwrite(a + PAGE, b"kernel")
    assert mm.read(vma.start, 6) == b"kernel"
    mm.write(vma.start + PAGE, b"user")
    assert m.vread(a + 2 * PAGE, 4) == b"user"
    with pytest.raises(pv.PageFault):
        mm.read(vma.end, 1)


def test_munmap_of_a_remapped_vma_faults_and_gives_back_the_page_references() -> None:
    m = machine()
    a = m.vmalloc_user(2 * PAGE)
    pfns = [m.vmalloc_to_pfn(a), m.vmalloc_to_pfn(a + PAGE)]
    mm = m.user_mm()
    vma = mm.mmap(2 * PAGE)
    assert m.remap_vmalloc_range(vma, a) == 0
    assert [m.phys.page(p).refcount for p in pfns] == [2, 2]  # vmalloc's and vm_insert_page's
    mm.write(vma.start + PAGE, b"user")
    assert mm.read(vma.start + PAGE, 4) == b"user"  # the translation is in the TLB now
    mm.munmap(vma)
    assert mm.vmas == [] and mm.inserted == [] and mm.find_vma(vma.start) is None
    for addr in (vma.start, vma.start + PAGE):
        with pytest.raises(pv.PageFault):
            mm.read(addr, 1)
    assert [m.phys.page(p).refcount for p in pfns] == [1, 1]
    assert m.vread(a + PAGE, 4) == b"user"  # the kernel mapping is untouched
    m.vfree(a)
    assert [m.phys.page(p).refcount for p in pfns] == [0, 0]


def test_remap_vmalloc_range_refuses_what_the_seed_refuses() -> None:
    m = machine()
    plain = m.vmalloc(2 * PAGE)
    user = m.vmalloc_user(2 * PAGE)
    mm = m.user_mm()
    vma = mm.mmap(2 * PAGE)
    assert m.remap_vmalloc_range(vma, user + 1, 0) == -22  # unaligned
    assert m.remap_vmalloc_range(vma, user + 64 * PAGE, 0) == -22  # no such area
    assert m.remap_vmalloc_range(vma, plain, 0) == -22  # no VM_USERMAP
    assert m.remap_vmalloc_range(vma, user, 1) == -22  # vma larger than what is left
    assert m.remap_vmalloc_range(mm.mmap(3 * PAGE), user, 0) == -22


def test_vmalloc_to_page_and_pfn_name_the_mapped_frame() -> None:
    m = machine()
    a = m.vmalloc(2 * PAGE)
    area = m.find_vm_area(a)
    assert m.vmalloc_to_pfn(a + PAGE + 5) == int(area.pages[1])
    assert m.vmalloc_to_page(a).pfn == int(area.pages[0])
    assert m.vmalloc_to_page(a + 2 * PAGE) is None


def test_kernel_names_with_double_underscores_are_reachable() -> None:
    m = machine()
    vmalloc = getattr(m, "__vmalloc")
    a = vmalloc(PAGE, G.GFP_KERNEL, "PAGE_KERNEL")
    assert m.find_vm_area(a) is not None


@pytest.mark.parametrize("lazy_purge", [False, True])
def test_find_and_remove_vm_area_with_underscores_run_under_the_callers_vmlist_lock(
    lazy_purge: bool,
) -> None:
    # mm/vmalloc.c, 2.6.22: "Caller must hold vmlist_lock" for __find_vm_area and
    # __remove_vm_area; taking it again would deadlock (rwlock_t is not recursive).
    m = machine(lazy_purge=lazy_purge)
    a = m.vmalloc(3 * PAGE)
    area = m.find_vm_area(a)
    found: list[object] = []

    def under_the_lock() -> None:
        with m.vmlist_lock.write():
            found.append(getattr(m, "__find_vm_area")(a))
            found.append(getattr(m, "__remove_vm_area")(a))
            found.append(getattr(m, "__find_vm_area")(a))

    t = threading.Thread(target=under_the_lock, daemon=True)
    t.start()
    t.join(timeout=10)
    assert not t.is_alive(), "a double-underscore alias took vmlist_lock again: deadlock"
    assert found == [area, area, None]
    assert area.size == 3 * PAGE  # came back without its guard page
    assert m.find_vm_area(a) is None and not m.vmlist_lock.write_locked
    with pytest.raises(pv.PageFault):
        m.write(a, b"x")


# ---- concurrency -------------------------------------------------------------------------------
def test_threads_allocate_write_and_free_without_crossing_bytes() -> None:
    m = machine(ram="128M", cpus=4)
    errors: list[str] = []

    def worker(tid: int) -> None:
        for i in range(30):
            a = m.vmalloc((1 + (tid + i) % 3) * PAGE)
            if a is None:
                errors.append("NULL")
                continue
            pattern = bytes([tid + 1]) * PAGE
            m.vwrite(a, pattern)
            if m.vread(a, PAGE) != pattern:
                errors.append(f"thread {tid} lost its bytes")
            m.vfree(a)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert list(m.areas()) == []


# ---- more of the seed's surface ------------------------------------------------------------------
def test_unmap_kernel_range_clears_ptes_and_flushes_every_cpu() -> None:
    m = machine(cpus=3)
    a = m.vmalloc(4 * PAGE)
    for cpu in range(3):
        m.current_cpu = cpu
        m.read(a, 1)
    flushes = m.stats()["tlb.flushes"]
    m.unmap_kernel_range(a, 4 * PAGE)
    assert m.stats()["tlb.flushes"] == flushes + 1
    for cpu in range(3):
        m.current_cpu = cpu
        with pytest.raises(pv.PageFault):
            m.read(a, 1)


def test_unmap_kernel_range_of_an_empty_range_is_a_bug() -> None:
    m = machine()
    with pytest.raises(pv.KernelBug):
        m.unmap_kernel_range(m.VMALLOC_START, 0)


def test_map_vm_area_maps_pages_over_an_area_from_get_vm_area() -> None:
    m = machine()
    area = m.get_vm_area(2 * PAGE, pv.VM_MAP)
    pages = [m.alloc_page(), m.alloc_page()]
    assert m.map_vm_area(area, "PAGE_KERNEL", pages) == 0
    assert [m.vmalloc_to_pfn(area.addr + i * PAGE) for i in range(2)] == [p.pfn for p in pages]
    assert m.vmalloc_to_pfn(area.addr + 2 * PAGE) is None  # the guard page stays unmapped


def test_get_vm_area_node_allocates_the_vm_struct_on_that_node() -> None:
    m = machine(ram="256M", nodes=2)
    area = m.get_vm_area_node(PAGE, pv.VM_IOREMAP, 1)
    assert area is not None
    assert m.phys.node_of(m.slab.phys_of(area.handle) // PAGE) == 1


def test_alloc_vm_area_syncs_the_new_tables_into_every_process() -> None:
    m = pv.Machine(arch="i386", ram="64M", kernel="2.6.22")
    mm = m.user_mm()
    area = m.alloc_vm_area(PAGE)
    assert m.stats()["vm.vmalloc_sync_all"] >= 1
    # The process's pgd now reaches the same PTE table as init_mm's.
    kernel_walk = m.init_mm.walk(area.addr)
    user_walk = mm.page_tables.walk(area.addr)
    assert [s.entry for s in user_walk[:1]] == [s.entry for s in kernel_walk[:1]]


def test_vmalloc_32_on_i386_uses_plain_gfp_kernel() -> None:
    m = pv.Machine(arch="i386", ram="64M", kernel="2.6.22")
    assert m.GFP_VMALLOC32 == G.GFP_KERNEL
    assert pv.Machine(ram="64M").GFP_VMALLOC32 == G.GFP_KERNEL | G.GFP_DMA32


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.integers(1, 8), st.just(0)), min_size=1, max_size=40))
def test_list_and_kva_machines_hand_out_the_same_addresses(ops: list[int]) -> None:
    """Same calls, same answers (page-aligned requests; lazy purge off so ranges free at once)."""
    machines = [machine(allocator="list"), machine(allocator="kva", lazy_purge=False)]
    live: list[list[int]] = [[], []]
    for op in ops:
        got = []
        for i, m in enumerate(machines):
            if op == 0:
                if live[i]:
                    m.vfree(live[i].pop(len(live[i]) // 2))
                got.append(None)
            else:
                a = m.vmalloc(op * PAGE)
                live[i].append(a)
                got.append(a)
        assert got[0] == got[1]


def test_vmap_of_a_pfn_that_is_no_page_of_the_machine_is_a_bug_and_leaves_nothing() -> None:
    m = machine()
    with pytest.raises(pv.KernelBug):
        m.vmap([m.phys.nr_frames + 5], 1, pv.VM_MAP)
    m.check()


def test_vread_takes_negative_addresses_as_c_pointers_do() -> None:
    m = machine()
    m.vmalloc(PAGE)
    assert m.vread(-1, 10) == b""  # the top byte of the address space: nothing after it
