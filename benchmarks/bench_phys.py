"""Benchmark of pyvmalloc.phys: boot of a 64 GiB machine, and bulk page allocation against a loop.

1. Boot time and host memory (VmRSS growth) of ``PhysMem`` with 64 GiB of 4 KiB frames (16M
   frames: DMA, DMA32 and NORMAL as on x86_64), with 1 and 4 nodes.  Each boot runs in a fresh
   Python process so that one boot's memory does not hide the next.  Goal: < 1 s, < 150 MiB.
2. 64 MiB (16384 pages) allocated and freed, first with ``alloc_pages_bulk`` +
   ``free_pages_bulk``, then with a loop of ``alloc_page`` + ``free_page`` (the seed's
   ``__vmalloc_area_node`` loop); both give the same pages.  Figures are best of a few rounds
   on a freshly booted machine; the ratio comes from this one run.

Run: ``python3 benchmarks/bench_phys.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

GIB = 1 << 30
PAGE = 4096
ZONES_64G = [("DMA", 0, (16 << 20) // PAGE), ("DMA32", (16 << 20) // PAGE, (4 * GIB) // PAGE),
             ("NORMAL", (4 * GIB) // PAGE, (64 * GIB) // PAGE)]
NR = 16384
ROUNDS = 5


def vm_rss_kib() -> int:
    """Resident set size of this process, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def boot_child(nodes: int) -> None:
    """Runs in a child: boot once, print seconds and RSS growth as JSON."""
    import numpy  # noqa: F401  (its own memory is not the allocator's)

    from pyvmalloc.phys import PhysMem

    before = vm_rss_kib()
    t0 = time.perf_counter()
    mem = PhysMem(PAGE, ZONES_64G, nodes)
    seconds = time.perf_counter() - t0
    grown = vm_rss_kib() - before
    print(json.dumps({"seconds": seconds, "rss_mib": grown / 1024, "pages": mem.nr_pages}))


def boot(nodes: int, tries: int = 3) -> dict[str, float]:
    """Fastest of ``tries`` fresh-process boots (first-touch page faults on a shared host are
    noisy), with the largest RSS growth seen."""
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--boot", str(nodes)],
                                      check=True, capture_output=True, text=True).stdout)
            for _ in range(tries)]
    return {"seconds": min(r["seconds"] for r in runs), "rss_mib": max(r["rss_mib"] for r in runs),
            "pages": runs[0]["pages"]}


def bulk_vs_loop() -> tuple[float, float, bool]:
    """Best seconds of bulk alloc+free, of the loop, and whether both gave the same pages."""
    from pyvmalloc.phys import PhysMem
    from pyvmalloc.phys.gfp import GFP_KERNEL, GFPBIT

    gfp = GFP_KERNEL | GFPBIT.HIGHMEM
    bulk_best = loop_best = float("inf")
    same = True
    for _ in range(ROUNDS):
        mem = PhysMem(PAGE, ZONES_64G, 1)
        t0 = time.perf_counter()
        pfns = mem.alloc_pages_bulk(gfp, NR, owner="vmalloc")
        mem.free_pages_bulk(pfns)
        bulk_best = min(bulk_best, time.perf_counter() - t0)

        mem = PhysMem(PAGE, ZONES_64G, 1)
        t0 = time.perf_counter()
        got = [mem.alloc_page(gfp, owner="vmalloc") for _ in range(NR)]
        for pfn in got:
            mem.free_page(pfn)  # type: ignore[arg-type]
        loop_best = min(loop_best, time.perf_counter() - t0)
        same = same and got == pfns.tolist()
    return bulk_best, loop_best, same


def main() -> None:
    print("PhysMem boot, 64 GiB of 4 KiB frames (16M frames), best of 3 fresh processes:")
    for nodes in (1, 4):
        r = boot(nodes)
        print(f"  {nodes} node(s): {r['seconds'] * 1000:7.1f} ms, VmRSS +{r['rss_mib']:6.1f} MiB "
              f"({int(r['pages'])} pages)   goal: < 1000 ms, < 150 MiB")
    bulk, loop, same = bulk_vs_loop()
    print(f"alloc + free of {NR} pages ({NR * PAGE >> 20} MiB), best of {ROUNDS}:")
    print(f"  alloc_pages_bulk + free_pages_bulk: {bulk * 1000:8.2f} ms")
    print(f"  loop of alloc_page + free_page:     {loop * 1000:8.2f} ms "
          f"({loop / NR * 1e6:.2f} us per page)")
    print(f"  loop / bulk: {loop / bulk:.0f}x; same pages in the same order: {same}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--boot":
        boot_child(int(sys.argv[2]))
    else:
        main()
