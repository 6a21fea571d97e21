"""Benchmark of the list (2.6.22) and kva (5.2+) allocators on lib/test_vmalloc.c's long busy list.

``long_busy_list_alloc_test`` keeps 15000 one-page vmallocs alive, then loops: vmalloc 100
pages, vmalloc 1 page, vfree both.  Here the live count runs from 100 to 100,000 areas of one
page (two with the guard page), and each loop is two alloc+free pairs (101 and 2 pages with
guards) in the x86_64 vmalloc range.  The list walks every live area on every call, so its
loop count shrinks as the list grows, to keep the script near half a minute; every figure and
ratio comes from this one run.  Run: ``python3 benchmarks/bench_allocators.py``.
"""

from __future__ import annotations

import time

from pyvmalloc.vmalloc.allocator import ALLOCATORS, VmapAllocator, make_allocator

PAGE = 4096
# arch/x86/include/asm/pgtable_64_types.h: VMALLOC_START without KASLR, 32 TiB of space
VMALLOC_START = 0xFFFFC90000000000
VMALLOC_END = 0xFFFFE8FFFFFFFFFF
LIVE_COUNTS = (100, 1_000, 10_000, 100_000)
REPEATS = 3  # best of three runs: the machine is shared


def populate(alloc: VmapAllocator, n: int) -> None:
    """``n`` live one-page areas packed from VMALLOC_START, as the test's first loop leaves them.

    They are inserted from the top down: each then links at the head of the list allocator's
    ``vmlist``, so building 100,000 of them costs O(n), not the O(n^2) of n first-fit walks.
    """
    for i in range(n - 1, -1, -1):
        if not alloc.insert(VMALLOC_START + i * 2 * PAGE, 2 * PAGE, i):
            raise RuntimeError("populate: an area overlapped")


def long_busy_loops(alloc: VmapAllocator, loops: int) -> float:
    """Seconds for ``loops`` rounds of: alloc 100 pages, alloc 1 page, free both."""
    big, small = 101 * PAGE, 2 * PAGE  # guard pages included, as vm_struct.size has them
    start, end = VMALLOC_START, VMALLOC_END
    t0 = time.perf_counter()
    for _ in range(loops):
        a = alloc.alloc(big, 1, start, end, None)
        b = alloc.alloc(small, 1, start, end, None)
        if a is None or b is None:
            raise RuntimeError("long_busy_loops: the vmalloc range is full")
        alloc.remove(a)
        alloc.remove(b)
    return time.perf_counter() - t0


def loops_for(name: str, n: int) -> int:
    """Rounds to time: the list's cost grows with n, so it gets fewer."""
    if name == "list":
        return max(10, min(5_000, 2_000_000 // n))
    return 5_000


def main() -> None:
    print("long_busy_list pattern: microseconds per alloc+free pair (best of "
          f"{REPEATS}); a pair = alloc + free of 101 or 2 pages, guard included")
    print(f"{'live areas':>10} {'list µs/pair':>13} {'kva µs/pair':>12} {'list/kva':>9}")
    kva_cost: dict[int, float] = {}
    for n in LIVE_COUNTS:
        cost: dict[str, float] = {}
        for name in ALLOCATORS:
            alloc = make_allocator(name, PAGE)
            populate(alloc, n)
            loops = loops_for(name, n)
            best = min(long_busy_loops(alloc, loops) for _ in range(REPEATS))
            cost[name] = best / (2 * loops) * 1e6
            if len(alloc) != n:
                raise RuntimeError(f"{name}: {len(alloc)} areas live after the loops, not {n}")
        kva_cost[n] = cost["kva"]
        print(f"{n:>10,} {cost['list']:>13.2f} {cost['kva']:>12.2f} "
              f"{cost['list'] / cost['kva']:>8.1f}x")
    lo, hi = LIVE_COUNTS[0], LIVE_COUNTS[-1]
    growth = kva_cost[hi] / kva_cost[lo]
    print(f"kva growth from {lo:,} to {hi:,} live areas: {growth:.2f}x (goal < 2x)")


if __name__ == "__main__":
    main()
