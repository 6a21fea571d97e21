"""Benchmark of the whole vmalloc path on the machine (issues 3 and 4), ratios from one run.

1. vmalloc(PAGE_SIZE) + vfree pairs per second, list (2.6.22) and kva (5.2+, lazy purge).
2. vmalloc(64 MiB) + vwrite + vread + vfree against numpy copying the same bytes in and out
   (goal: within 4x).
3. lib/test_vmalloc.c's long_busy_list pattern on the machine at 100, 1,000, 10,000 and
   100,000 live one-page areas: vmalloc 100 pages + vmalloc 1 page, write both, vfree both
   (goals: kva grows less than 2x from 100 to 100,000; at 100 kva is no slower than 1.5x list).

Run: ``python3 benchmarks/bench_vmalloc.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

import pyvmalloc as pv
from pyvmalloc.phys import gfp as G

PAGE = 4096
MIB = 1 << 20


def best(fn, repeats: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Best wall time of ``repeats`` calls of ``fn`` (the host is shared)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def page_pairs(allocator: str, n: int) -> float:
    """vmalloc(PAGE)+vfree pairs per second."""
    m = pv.Machine(ram="256M", allocator=allocator)

    def run() -> None:
        for _ in range(n):
            m.vfree(m.vmalloc(PAGE))

    return n / best(run)


def big_round_trip(size: int, ram: str = "512M",
                   timer: Callable[[Callable[[], None]], float] = best) -> tuple[float, float]:
    """Seconds for vmalloc+vwrite+vread+vfree of ``size`` bytes, and for numpy's two copies
    (``timer`` measures a callable: by default the best wall time of three calls)."""
    m = pv.Machine(ram=ram, allocator="kva")
    data = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()

    def model() -> None:
        a = m.vmalloc(size)
        m.vwrite(a, data)
        back = m.vread(a, size)
        m.vfree(a)
        assert back == data

    src = np.frombuffer(data, dtype=np.uint8)
    dst = np.empty_like(src)

    def numpy_copy() -> None:
        np.copyto(dst, src)  # the bytes in ...
        out = dst.tobytes()  # ... and out again, as bytes like vread returns
        assert len(out) == size

    model()  # page tables built once, as on a running kernel
    return timer(model), timer(numpy_copy)


def populate(m: pv.Machine, live: int) -> None:
    """``live`` one-page vmallocs packed from VMALLOC_START, built from the top down.

    Each is reserved just below the previous one, which links it at the head of the 2.6.22
    list (O(1) instead of a first-fit walk), then filled and mapped like any vmalloc.
    """
    start = m.VMALLOC_START
    for i in range(live - 1, -1, -1):
        addr = start + i * 2 * PAGE
        area = m.get_vm_area_node_range(PAGE, pv.VM_ALLOC, addr, addr + 2 * PAGE, caller="long_busy")
        assert area is not None and area.addr == addr
        assert m.vmalloc_area(area, G.GFP_KERNEL, "PAGE_KERNEL") == addr


def long_busy(allocator: str, live: int, loops: int) -> float:
    """Microseconds per vmalloc/vfree operation with ``live`` busy areas below."""
    m = pv.Machine(ram="2G", allocator=allocator)
    populate(m, live)

    def run() -> None:
        for _ in range(loops):
            a = m.vmalloc(100 * PAGE)
            b = m.vmalloc(PAGE)
            m.vwrite(a, b"\0")
            m.vwrite(b, b"\0")
            m.vfree(a)
            m.vfree(b)

    return best(run, 2) * 1e6 / (4 * loops)


def main() -> None:
    """Print the figures and ratios."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer live areas (up to 10,000)")
    args = ap.parse_args()

    print("1. vmalloc(PAGE_SIZE) + vfree pairs per second")
    rates = {name: page_pairs(name, 2000) for name in ("list", "kva")}
    for name, r in rates.items():
        print(f"   {name:<5} {r:10.0f} pairs/s")
    print(f"   kva/list: {rates['kva'] / rates['list']:.2f}x")

    print("\n2. vmalloc(64 MiB) + vwrite + vread + vfree against numpy copying the same bytes")
    t_model, t_numpy = big_round_trip(64 * MIB)
    print(f"   model {t_model * 1e3:8.1f} ms   numpy {t_numpy * 1e3:8.1f} ms   "
          f"ratio {t_model / t_numpy:.2f}x (goal <= 4x)")

    print("\n3. long_busy_list on the machine: us per vmalloc/vfree operation")
    counts = (100, 1_000, 10_000) if args.quick else (100, 1_000, 10_000, 100_000)
    table: dict[str, dict[int, float]] = {"list": {}, "kva": {}}
    for live in counts:
        for name in ("list", "kva"):
            loops = 200 if name == "kva" else max(5, 200_000 // (live + 1000))
            table[name][live] = long_busy(name, live, loops)
        lst, kva = table["list"][live], table["kva"][live]
        print(f"   {live:>7} live: list {lst:10.1f}   kva {kva:8.1f}   list/kva {lst / kva:8.1f}x")
    lo, hi = counts[0], counts[-1]
    print(f"   kva growth {lo} -> {hi}: {table['kva'][hi] / table['kva'][lo]:.2f}x (goal < 2x); "
          f"list growth: {table['list'][hi] / table['list'][lo]:.1f}x")
    print(f"   at {lo} live areas kva/list = {table['kva'][lo] / table['list'][lo]:.2f}x (goal <= 1.5x)")


if __name__ == "__main__":
    main()
