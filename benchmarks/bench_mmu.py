"""Benchmark of the mmu layer: vectorised map/unmap of a large range against page-by-page
calls, translate() and lookup() rates, and CPU reads through the TLB.

Run: ``python3 benchmarks/bench_mmu.py [--arch x86_64] [--size 1G]``.  Every ratio printed
compares numbers measured in this same run.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from pyvmalloc.arch import boot_layout, get_profile
from pyvmalloc.sizes import parse_size
from pyvmalloc.errors import PyvmallocError
from pyvmalloc.mmu import Mmu, PageTables, TableFrames
from pyvmalloc.phys.frames import FrameStore


def machine(arch: str, data_pages: int) -> tuple[PageTables, Mmu, int, int]:
    """Page tables over a frame store with ``data_pages`` data frames and room for tables."""
    profile = get_profile(arch)
    table_room = data_pages // 256 + 4096
    frames = FrameStore(data_pages + table_room, profile.page_size)
    tables = TableFrames(data_pages, data_pages + table_room)
    pt = PageTables(profile, frames, tables.alloc, tables.free)
    layout = boot_layout(profile, max(profile.min_ram, min(profile.max_ram, 1 << 30)))
    return pt, Mmu(pt, frames, cpus=2), layout.vmalloc_start, profile.pgprot("PAGE_KERNEL")


def timed(fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="x86_64")
    ap.add_argument("--size", default="1G", help="size of the mapped range (default 1G)")
    args = ap.parse_args(argv)
    try:
        size = parse_size(args.size)
        profile = get_profile(args.arch)
    except PyvmallocError as err:
        print(f"bench_mmu: {err}", file=sys.stderr)
        return 2
    ps = profile.page_size
    n = size // ps
    if n < 1:
        print("bench_mmu: --size is smaller than a page", file=sys.stderr)
        return 2
    rng = np.random.default_rng(0)
    pfns = rng.permutation(n).astype(np.int64)
    print(f"mmu benchmark: {profile.name}, {size >> 20} MiB = {n} pages")

    # -- 1. one vectorised map+unmap against the same pages one call per page ---------------
    pt, mmu, addr, prot = machine(args.arch, n)

    def bulk() -> None:
        assert pt.map_range(addr, pfns, prot) == 0
        assert len(pt.unmap_range(addr, n * ps)) == n

    t_first = timed(bulk)              # includes building the tables
    t_bulk = timed(bulk)               # tables in place, as for a reused vmalloc range

    def one_by_one() -> None:
        for i in range(n):
            assert pt.map_range(addr + i * ps, pfns[i:i + 1], prot) == 0
        for i in range(n):
            pt.unmap_range(addr + i * ps, ps)

    t_pages = timed(one_by_one)
    print(f"  map+unmap, one call per table range : {t_bulk * 1e3:9.1f} ms "
          f"(first time, building {pt.nr_table_frames} tables: {t_first * 1e3:.1f} ms)")
    print(f"  map+unmap, one call per page        : {t_pages * 1e3:9.1f} ms")
    print(f"  ratio                               : {t_pages / t_bulk:9.1f}x  (goal >= 20x)")

    # -- 2. translate() and lookup() ----------------------------------------------------------
    assert pt.map_range(addr, pfns, prot) == 0
    probes = [addr + int(o) for o in rng.integers(0, n * ps, 100_000)]
    t_tr = timed(lambda: [pt.translate(a) for a in probes])
    t_lookup = timed(lambda: pt.lookup(addr, n))
    assert np.array_equal(pt.lookup(addr, n), pfns)
    print(f"  translate()                         : {len(probes) / t_tr:12,.0f} calls/s")
    print(f"  lookup() of the whole range         : {t_lookup * 1e3:9.1f} ms "
          f"({n / t_lookup / 1e6:.1f} M pages/s, {t_tr / len(probes) * n / t_lookup:.0f}x "
          "translate() per page)")

    # -- 3. CPU reads through the TLB ------------------------------------------------------
    chunk = min(n, 4096)                 # 16 MiB with 4 KiB pages
    mmu.flush_tlb_all()
    t_miss = timed(lambda: mmu.read(addr, chunk * ps))
    t_hit = timed(lambda: mmu.read(addr + (chunk - 1536) * ps, 1536 * ps))
    per_miss = t_miss / chunk
    per_hit = t_hit / 1536
    print(f"  Mmu.read, cold TLB (walk per page)  : {chunk * ps / t_miss / 2**20:9.1f} MiB/s")
    print(f"  Mmu.read, warm TLB                  : {1536 * ps / t_hit / 2**20:9.1f} MiB/s "
          f"({per_miss / per_hit:.1f}x faster per page)")
    print(f"  TLB stats: {mmu.stats}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
