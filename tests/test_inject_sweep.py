"""Every failure point of every allocating call: fail the Nth call at a point, N = 1, 2, ...

For each call (vmalloc, vmalloc_user, vmalloc_node, vmap, __vmalloc with a VM_VPAGES-sized
page array, alloc_vm_area) and each injection point, the sweep fails the Nth call at that point
on a freshly booted machine, for N = 1, 2, ... until the call succeeds with nothing injected.
After each failed call: it returned None, ``check()`` passes, free frames plus page-table
frames and the area list are what they were before the call (page-table frames stay
allocated, as in the kernel), dmesg names the point, and ``stats()`` counted the failure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import pyvmalloc as pv
from pyvmalloc.kernel.inject import POINTS
from pyvmalloc.phys import gfp as G

PAGE = 4096
GFP_HIGHMEM = getattr(G, "__GFP_HIGHMEM")
VPAGES = PAGE // 8 + 1  # one page more than a page of pointers holds: the array is vmalloc'ed


def _vmap(m: pv.Machine) -> Callable[[], Any]:
    pages = [m.alloc_page() for _ in range(3)]  # taken before the sweep arms anything
    return lambda: m.vmap(pages, len(pages))


# name -> (machine options, prepare(m) -> call(), undo(m, result))
CALLS: dict[str, tuple[dict[str, Any], Callable[[pv.Machine], Callable[[], Any]], Callable[[pv.Machine, Any], None]]] = {
    "vmalloc": ({}, lambda m: lambda: m.vmalloc(5 * PAGE), lambda m, a: m.vfree(a)),
    "vmalloc_user": ({"allocator": "list"}, lambda m: lambda: m.vmalloc_user(3 * PAGE), lambda m, a: m.vfree(a)),
    "vmalloc_node": ({"nodes": 2, "ram": "128M"}, lambda m: lambda: m.vmalloc_node(4 * PAGE, 1),
                     lambda m, a: m.vfree(a)),
    "vmap": ({"allocator": "list"}, _vmap, lambda m, a: m.vunmap(a)),
    "vmalloc_gfp_vpages": ({}, lambda m: lambda: m.vmalloc_gfp(VPAGES * PAGE, G.GFP_KERNEL | GFP_HIGHMEM, "PAGE_KERNEL"),
                           lambda m, a: m.vfree(a)),
    "alloc_vm_area": ({"allocator": "list"}, lambda m: lambda: m.alloc_vm_area(5 * PAGE),
                      lambda m, area: m.free_vm_area(area)),
}


def frames_back(m: pv.Machine) -> int:
    """Free frames plus page-table frames: what a failed call must leave as it found."""
    m.slab.kmem_cache_shrink()  # empty slabs kept for reuse are not lost frames
    return m.phys.nr_free() + m.init_mm.nr_table_frames


def area_list(m: pv.Machine) -> list[tuple[int, int, int]]:
    return [(a.addr, a.size, a.flags) for a in m.areas()]


def sweep(name: str, point: str, limit: int = 2000) -> int:
    """Fail the Nth call at ``point`` for N = 1, 2, ...; returns how many calls failed."""
    options, prepare, undo = CALLS[name]
    failed = 0
    for nth in range(1, limit):
        m = pv.Machine(arch="x86_64", ram=options.get("ram", "64M"), nodes=options.get("nodes", 1),
                       allocator=options.get("allocator", "kva"))
        call = prepare(m)
        frames, areas, log = frames_back(m), area_list(m), len(m.dmesg())
        m.inject(point, nth=nth)
        result = call()
        m.inject_clear()
        injected = m.stats().get(f"inject.{point}", 0)
        assert m.stats()["inject.total"] == injected <= 1
        m.check()
        if result is None:
            assert injected == 1, f"{name} returned NULL at N={nth} with nothing injected"
            failed += 1
            assert frames_back(m) == frames, f"{name}: N={nth} at {point} lost frames"
            assert area_list(m) == areas, f"{name}: N={nth} at {point} left an area"
            assert f"FAULT_INJECTION: forcing a failure. name {point}" in "\n".join(m.dmesg()[log:])
            continue
        # A failure the call absorbed (slab falls back to another node's page) or none at all.
        undo(m, result)
        m.check()
        assert frames_back(m) == frames
        if not injected:
            return failed
    raise AssertionError(f"{name} at {point} still fails after {limit} calls")


@pytest.mark.parametrize("point", sorted(POINTS))
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_failure_point_frees_what_it_took(name: str, point: str) -> None:
    # Every call reaches every point at least once (vmap through its slab and table pages).
    assert sweep(name, point) >= 1


def test_the_vpages_sweep_reaches_the_page_array_and_every_page() -> None:
    # kmalloc: the vm_struct, the vm_struct of the array's area, the array area's own array;
    # page_alloc: the array's pages, then each of the VPAGES pages.
    assert sweep("vmalloc_gfp_vpages", "kmalloc") >= 3
    assert sweep("vmalloc_gfp_vpages", "vmap_area") == 2


def test_stats_count_injected_failures_across_calls() -> None:
    m = pv.Machine(ram="64M")
    m.inject("vmap_area", every=2)
    results = [m.vmalloc(PAGE) for _ in range(6)]
    m.inject_clear()
    assert [r is None for r in results] == [False, True] * 3
    assert m.stats()["inject.vmap_area"] == 3 and m.stats()["inject.total"] == 3
    m.check()
