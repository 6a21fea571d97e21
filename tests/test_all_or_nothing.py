"""Nothing lost under hostile input, part two: every API call is all or nothing.

Arguments (types, ranges, prot, node, page lists) are checked before anything is taken
(``vmalloc/_args.py``), so a refused call leaves the frames, the slab objects, the areas and
the page tables as they were and ``check()`` passes; where the kernel has an answer of its own
(NULL, -EINVAL, a fault) the model gives that answer.  One test per reported attack, then a
property over every public entry point.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.phys import gfp as G
from test_hostile_input import run_cli

PAGE = 4096
EINVAL = 22


def state(m: pv.Machine, tables: bool = True) -> tuple[Any, ...]:
    """What a refused call must not change: free frames, slab objects, areas, lazy areas, PTEs
    (with ``tables=False``, page-table frames count as free: the kernel keeps them)."""
    m.slab.kmem_cache_shrink()  # empty slabs kept for reuse are not frames taken
    areas = [(a.addr, a.size, a.flags, a.nr_pages) for a in m.areas()]
    mapped = int((m.pages_of(m.VMALLOC_START, 1 << 24) >= 0).sum())
    free = len(m.phys.pfns_owned_by("free")) + (0 if tables else len(m.phys.pfns_owned_by("pgtable")))
    return (free, m.slab.statistics().objects, areas,
            [(z.addr, z.size) for z in m.lazy_areas()], mapped)


def refused(m: pv.Machine, call: Callable[[], object], exc: type[BaseException] | tuple[type[BaseException], ...],
            match: str | None = None) -> None:
    before = state(m)
    with pytest.raises(exc, match=match):
        call()
    assert state(m) == before
    m.check()


# ---- prot ----------------------------------------------------------------------------------------
BAD_PROTS = ["BOGUS", 1.5, b"PAGE_KERNEL", -1, 1 << 70, [1]]


@pytest.mark.parametrize("prot", BAD_PROTS)
@pytest.mark.parametrize("kind", ["vmalloc_gfp", "vmalloc_node_range", "vmap"])
def test_a_bad_prot_is_refused_before_the_area_and_pages_are_taken(kind: str, prot: object) -> None:
    m = pv.Machine(ram="64M")
    page = m.alloc_page()
    calls = {
        "vmalloc_gfp": lambda: m.vmalloc_gfp(4 * PAGE, G.GFP_KERNEL, prot),
        "vmalloc_node_range": lambda: m.vmalloc_node_range(4 * PAGE, 1, m.VMALLOC_START, m.VMALLOC_END,
                                                           G.GFP_KERNEL, prot, -1),
        "vmap": lambda: m.vmap([page], 1, prot=prot),
    }
    refused(m, calls[kind], (TypeError, ValueError), "prot")


def test_prot_zero_is_refused_up_front_and_a_present_int_prot_works() -> None:
    # prot=0 would make PTEs neither none nor present, which vunmap_pte_range WARNs about.
    m = pv.Machine(ram="64M")
    refused(m, lambda: m.vmalloc_gfp(PAGE, G.GFP_KERNEL, 0), ValueError, "present bit")
    page = m.alloc_page()
    refused(m, lambda: m.vmap([page], 1, prot=0), ValueError, "present bit")
    a = m.vmalloc_gfp(PAGE, G.GFP_KERNEL, m.profile.pgprot("PAGE_KERNEL"))
    assert a is not None
    m.vwrite(a, b"ok")
    assert m.read(a, 2) == b"ok"
    m.check()


# ---- page lists ------------------------------------------------------------------------------------
def test_vmap_of_a_2d_pfn_array_is_refused_and_check_still_works() -> None:
    m = pv.Machine(ram="64M")
    pfn = m.alloc_page().pfn
    refused(m, lambda: m.vmap(np.array([[pfn]]), 1), TypeError, "1-D")
    refused(m, lambda: m.vmap(np.array([1.5]), 1), TypeError, "pages")
    refused(m, lambda: m.vmap(["x"], 1), TypeError, r"pages\[0\]")
    refused(m, lambda: m.vmap("ab", 1), TypeError, "pages")
    refused(m, lambda: m.vmap([pfn], 2), ValueError, "fewer than count")
    refused(m, lambda: m.vmap([-5], 1), ValueError, "pfn -5")


@pytest.mark.parametrize("kernel", ["2.6.22", "6.1"])
@pytest.mark.parametrize("null_at", [0, 1, 2])
def test_vmap_with_a_null_page_returns_null_wherever_it_is(kernel: str, null_at: int) -> None:
    # 2.6.22 vmap_pte_range: "if (!page) return -ENOMEM;" -> vmap() vunmaps the area, NULL.
    m = pv.Machine(ram="64M", kernel=kernel)
    pages: list[Any] = [m.alloc_page() for _ in range(3)]
    pages[null_at] = None
    before = state(m, tables=False)
    assert m.vmap(pages, 3) is None
    m.run_workers()
    m.vm_unmap_aliases()
    assert state(m, tables=False) == before  # page-table frames of a partial mapping stay
    m.check()


def test_vmap_with_numpy_pfns_and_count() -> None:
    m = pv.Machine(ram="64M")
    pfns = np.array([m.alloc_page().pfn for _ in range(2)], dtype=np.int32)
    a = m.vmap(pfns, np.int64(2))
    assert a is not None and list(m.pages_of(a, 2 * PAGE)) == list(pfns)
    m.vunmap(np.uint64(a))
    m.check()


# ---- nodes ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("node", [-2, 1, 64, 2**40])
def test_vmalloc_node_of_a_node_that_does_not_exist_is_refused_before_anything(node: int) -> None:
    m = pv.Machine(ram="64M")
    refused(m, lambda: m.vmalloc_node(PAGE, node), ValueError, "node")
    refused(m, lambda: m.vmalloc_node_range(PAGE, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL,
                                            "PAGE_KERNEL", node), ValueError, "node")
    refused(m, lambda: m.get_vm_area_node(PAGE, pv.VM_ALLOC, node), ValueError, "node")


def test_vmalloc_node_of_every_online_node_and_numa_no_node_works() -> None:
    m = pv.Machine(ram="256M", nodes=2)
    for node in (-1, 0, 1, np.int8(1)):
        a = m.vmalloc_node(2 * PAGE, node)
        assert a is not None
        m.vfree(a)
    refused(m, lambda: m.vmalloc_node(PAGE, 2), ValueError, "node 2")
    refused(m, lambda: m.vmalloc_node(PAGE, "0"), TypeError, "node")


# ---- numpy integers, callers, sizes ------------------------------------------------------------------
def test_numpy_integers_are_integers_and_nothing_leaks() -> None:
    m = pv.Machine(ram="64M")
    slab = m.slab.statistics().objects
    for n in (np.int64(4096), np.uint32(8192), np.int16(100)):
        a = m.vmalloc(n)
        assert a is not None
        assert m.find_vm_area(np.uint64(a)) is not None
        m.vwrite(np.uint64(a), b"x")
        assert m.vread(np.uint64(a), np.int32(1)) == b"x"
        m.vfree(np.uint64(a))
    assert m.slab.statistics().objects == slab
    m.check()


@pytest.mark.parametrize("caller", [5, b"drv", ["drv"], 1.0])
def test_a_caller_that_is_not_a_string_is_refused_up_front(caller: object) -> None:
    m = pv.Machine(ram="64M")
    page = m.alloc_page()
    for call in (lambda: m.vmalloc(PAGE, caller=caller), lambda: m.vmalloc_gfp(PAGE, G.GFP_KERNEL, None, caller),
                 lambda: m.get_vm_area(PAGE, pv.VM_IOREMAP, caller=caller), lambda: m.alloc_vm_area(PAGE, caller),
                 lambda: m.vmap([page], 1, caller=caller), lambda: m.module_alloc(PAGE, caller)):
        refused(m, call, TypeError, "caller")
    m.meminfo()
    m.vmallocinfo()


@pytest.mark.parametrize("value", [4096.0, None, "4096", b"4096", [4096], True, 1 + 0j])
def test_sizes_and_addresses_of_the_wrong_type_name_the_argument(value: object) -> None:
    m = pv.Machine(ram="64M")
    a = m.vmalloc(PAGE)
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: m.vmalloc(value), "size"),
        (lambda: m.vmalloc_user(value), "size"),
        (lambda: m.vmalloc_32(value), "size"),
        (lambda: m.vmalloc_exec(value), "size"),
        (lambda: m.vmalloc_node(value, -1), "size"),
        (lambda: m.module_alloc(value), "size"),
        (lambda: m.get_vm_area(value, pv.VM_IOREMAP), "size"),
        (lambda: m.vmalloc_gfp(PAGE, value), "gfp"),
        (lambda: m.vread(value, 4), "addr"),
        (lambda: m.vread(a, value), "count"),
        (lambda: m.vwrite(value, b"x"), "addr"),
        (lambda: m.find_vm_area(value), "addr"),
        (lambda: m.vmalloc_to_pfn(value), "addr"),
        (lambda: m.vmalloc_node_range(PAGE, value, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL, None, -1),
         "align"),
        (lambda: m.vmalloc_node_range(PAGE, 1, value, m.VMALLOC_END, G.GFP_KERNEL, None, -1), "start"),
    ]
    if value is not None:  # vfree(NULL) and vunmap(NULL) are no-ops
        calls += [(lambda: m.vfree(value), "addr"), (lambda: m.vunmap(value), "addr")]
    for call, name in calls:
        refused(m, call, TypeError, name)


# ---- ranges --------------------------------------------------------------------------------------
def test_vmalloc_node_range_refuses_ranges_outside_the_kernel_areas_and_unaligned_starts() -> None:
    m = pv.Machine(ram="64M")

    def vnr(start: int, end: int) -> int | None:
        return m.vmalloc_node_range(PAGE, 1, start, end, G.GFP_KERNEL, "PAGE_KERNEL", -1)

    refused(m, lambda: vnr(0x1000, 0x100000), ValueError, "not inside")
    refused(m, lambda: vnr(m.layout.page_offset, m.layout.page_offset + (1 << 20)), ValueError, "not inside")
    refused(m, lambda: vnr(m.VMALLOC_START + 1, m.VMALLOC_END), ValueError, "page-aligned")
    refused(m, lambda: vnr(m.VMALLOC_START + PAGE, m.VMALLOC_START), ValueError, "not inside")
    refused(m, lambda: m.get_vm_area_range(PAGE, pv.VM_IOREMAP, 0, 1 << 20), ValueError, "not inside")
    a = vnr(m.layout.modules_start, m.layout.modules_end)
    assert a is not None and m.layout.modules_start <= a < m.layout.modules_end
    m.vfree(a)
    m.check()


# ---- user space ------------------------------------------------------------------------------------
def user_area() -> tuple[pv.Machine, int, Any, Any]:
    """A machine, a 2-page vmalloc_user area, a user mm and a 2-page VMA of it."""
    m = pv.Machine(ram="64M")
    a = m.vmalloc_user(2 * PAGE)
    assert a is not None
    mm = m.user_mm()
    return m, a, mm, mm.mmap(2 * PAGE)


def test_munmap_twice_is_not_an_error() -> None:
    m, a, mm, vma = user_area()
    assert m.remap_vmalloc_range(vma, a) == 0
    assert mm.munmap(vma) == 0
    before = state(m)
    assert mm.munmap(vma) == 0  # do_munmap of a range with no mapping: 0
    assert state(m) == before
    with pytest.raises(TypeError, match="vma"):
        mm.munmap(vma.start)  # type: ignore[arg-type]
    m.vfree(a)
    m.check()


def test_remap_vmalloc_range_of_a_vma_ending_below_its_start_is_einval() -> None:
    m, a, mm, vma = user_area()
    vma.start, vma.end = vma.end, vma.start
    before = state(m)
    assert m.remap_vmalloc_range(vma, a) == -EINVAL
    assert state(m) == before
    with pytest.raises(TypeError, match="vma"):
        m.remap_vmalloc_range(object(), a)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="pgoff"):
        m.remap_vmalloc_range(mm.mmap(PAGE), a, pgoff=0.5)  # type: ignore[arg-type]
    m.check()


# ---- vwrite ------------------------------------------------------------------------------------------
def test_vwrite_of_an_int_is_a_type_error_not_five_nuls() -> None:
    m = pv.Machine(ram="64M")
    a = m.vmalloc(PAGE)
    m.vwrite(a, b"\x01" * 8)
    for bad in (5, "text", None, [1, 2]):
        with pytest.raises(TypeError, match="data"):
            m.vwrite(a, bad)  # type: ignore[arg-type]
    assert m.vread(a, 8) == b"\x01" * 8
    assert m.vwrite(a, memoryview(b"ab")) == 2 and m.vwrite(a + 2, bytearray(b"c")) == 1
    assert m.vread(a, 3) == b"abc"


@pytest.mark.parametrize("kernel", ["2.6.22", "6.1"])
def test_vwrite_into_a_read_only_vmap_follows_the_kernel(kernel: str) -> None:
    m = pv.Machine(ram="64M", kernel=kernel)
    pages = [m.alloc_page(), m.alloc_page()]
    rw = m.vmap(pages[:1], 1)
    ro = m.vmap(pages[1:], 1, prot="PAGE_KERNEL_RO")
    assert rw is not None and ro is not None
    if kernel == "2.6.22":
        # The seed's vwrite stores through the area's PTEs: a kernel write to a RO page faults.
        with pytest.raises(pv.PageFault) as info:
            m.vwrite(ro, b"x" * 8)
        assert info.value.address == ro and info.value.access == "write"
        assert m.vread(ro, 8) == bytes(8)
    else:
        # aligned_vwrite (2.6.32+) copies through kmap_atomic(page): a writable alias.
        assert m.vwrite(ro, b"x" * 8) == 8
        assert m.vread(ro, 8) == b"x" * 8
    assert m.vwrite(rw, b"y") == 1
    m.check()


# ---- bench -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("param", ["test_loop_count=1e23", "test_loop_count=100000000000000000000000",
                                   "nr_threads=100 test_repeat_count=1000 test_loop_count=1000",
                                   "nr_pages=4294967296"])
def test_bench_refuses_unbounded_work_with_exit_2(param: str) -> None:
    code, _out, err = run_cli(["bench", "--allocator", "list", "--", *param.split()])
    assert code == 2 and len(err.strip().splitlines()) == 1, err


# ---- every public entry point, every bad value ---------------------------------------------------------
BAD = [1.5, "x", b"x", [1.5], {}, object(), 1 + 0j, np.float64(4096.0)]


def entry_points(m: pv.Machine, a: int, page: Any) -> dict[str, Callable[[object], object]]:
    """Public methods with one argument left open for a bad value."""
    vs, ve = m.VMALLOC_START, m.VMALLOC_END
    mm = m.user_mm()
    return {
        "vmalloc.size": lambda v: m.vmalloc(v),
        "vmalloc.caller": lambda v: m.vmalloc(PAGE, v),
        "vmalloc_user.size": lambda v: m.vmalloc_user(v),
        "vmalloc_32_user.size": lambda v: m.vmalloc_32_user(v),
        "vmalloc_exec.size": lambda v: m.vmalloc_exec(v),
        "vmalloc_node.node": lambda v: m.vmalloc_node(PAGE, v),
        "vmalloc_gfp.prot": lambda v: m.vmalloc_gfp(PAGE, G.GFP_KERNEL, v),
        "vmalloc_gfp.gfp": lambda v: m.vmalloc_gfp(PAGE, v),
        "vmalloc_node_gfp.node": lambda v: m.vmalloc_node_gfp(PAGE, G.GFP_KERNEL, None, v),
        "vmalloc_node_range.end": lambda v: m.vmalloc_node_range(PAGE, 1, vs, v, G.GFP_KERNEL, None, -1),
        "vmalloc_node_range.prot": lambda v: m.vmalloc_node_range(PAGE, 1, vs, ve, G.GFP_KERNEL, v, -1),
        "module_alloc.size": lambda v: m.module_alloc(v),
        "get_vm_area.flags": lambda v: m.get_vm_area(PAGE, v),
        "get_vm_area_node.gfp": lambda v: m.get_vm_area_node(PAGE, pv.VM_IOREMAP, -1, v),
        "get_vm_area_range.start": lambda v: m.get_vm_area_range(PAGE, pv.VM_IOREMAP, v, ve),
        "get_vm_area_node_range.align": lambda v: m.get_vm_area_node_range(PAGE, pv.VM_IOREMAP, vs, ve, align=v),
        "alloc_vm_area.size": lambda v: m.alloc_vm_area(v),
        "vmap.pages": lambda v: m.vmap(v, 1),
        "vmap.page": lambda v: m.vmap([page, v], 2),
        "vmap.count": lambda v: m.vmap([page], v),
        "vmap.prot": lambda v: m.vmap([page], 1, prot=v),
        "vmap.flags": lambda v: m.vmap([page], 1, v),
        "vfree.addr": lambda v: m.vfree(v),
        "vunmap.addr": lambda v: m.vunmap(v),
        "find_vm_area.addr": lambda v: m.find_vm_area(v),
        "vread.count": lambda v: m.vread(a, v),
        "vwrite.data": lambda v: m.vwrite(a, v),
        "remap_vmalloc_range.addr": lambda v: m.remap_vmalloc_range(mm.mmap(PAGE), v),
        "vmalloc_to_page.addr": lambda v: m.vmalloc_to_page(v),
        "alloc_page.gfp": lambda v: m.alloc_page(v),
    }


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_every_entry_point_refuses_bad_values_and_changes_nothing(data: st.DataObject) -> None:
    m = pv.Machine(ram="64M", kernel=data.draw(st.sampled_from(["2.6.22", "6.1"])))
    a = m.vmalloc_user(2 * PAGE)
    assert a is not None
    page = m.alloc_page()
    calls = entry_points(m, a, page)
    name = data.draw(st.sampled_from(sorted(calls)))
    bad = data.draw(st.sampled_from(BAD))
    # A string is a caller, bytes are what vwrite takes.
    assume(not (name.endswith(".caller") and isinstance(bad, str)) and not (name == "vwrite.data" and isinstance(bad, bytes)))
    before = state(m)
    with pytest.raises((TypeError, ValueError)) as info:
        calls[name](bad)
    arg = name.split(".")[1]
    assert arg.rstrip("s") in str(info.value) or arg in str(info.value), (name, info.value)
    assert state(m) == before
    m.check()
    m.meminfo()
    m.vmallocinfo()
