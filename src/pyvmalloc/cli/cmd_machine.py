"""``pyvmalloc machine``: boot a machine and print its layout, nodes, zones and meminfo."""

from __future__ import annotations

import argparse
from typing import Any

import pyvmalloc as pv
from pyvmalloc.cli.common import add_machine_args, boot_from_args
from pyvmalloc.sizes import human_bytes


def register(sub: Any) -> None:
    """Add the ``machine`` subcommand."""
    p = sub.add_parser("machine", help="boot a simulated machine and show its layout", description=__doc__)
    add_machine_args(p)
    p.add_argument("--list", action="store_true", help="list the machine profiles and exit")
    p.add_argument("--dmesg", action="store_true", help="also print the boot log")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the machine; returns the exit code."""
    if args.list:
        for name, desc in pv.Machine.profiles().items():
            print(f"{name:<12} {desc}")
        return 0
    m = boot_from_args(args)
    prof, lay = m.profile, m.layout
    print(f"{prof.name}: {prof.description}")
    print(f"  {prof.bits}-bit, {prof.page_size}-byte pages, {prof.va_bits}-bit virtual addresses")
    geometry = " -> ".join(f"{lv.name}[{1 << lv.bits}]" for lv in prof.levels)
    print(f"  page tables: {len(prof.levels)} levels: {geometry}")
    print("\nkernel virtual memory layout:")
    rows: list[tuple[str, int, int | None]] = [("PAGE_OFFSET", lay.page_offset, None)]
    rows.append(("vmalloc", lay.vmalloc_start, lay.vmalloc_end))
    if lay.modules_end > lay.modules_start and (lay.modules_start, lay.modules_end) != (lay.vmalloc_start, lay.vmalloc_end):
        rows.append(("modules", lay.modules_start, lay.modules_end))
    w = prof.bits // 4
    for name, start, end in rows:
        if end is None:
            print(f"  {name:<12} 0x{start:0{w}x}")
        else:
            print(f"  {name:<12} 0x{start:0{w}x} - 0x{end:0{w}x}  ({human_bytes(end - start)})")
    print(f"  lowmem {human_bytes(lay.lowmem_bytes)}, highmem {human_bytes(lay.highmem_bytes)}, "
          f"IOREMAP_MAX_ORDER {m.layout.ioremap_max_order} (Linux {m.kernel})")
    print("\nnodes and zones:")
    for z in m.phys.zone_info():
        print(f"  Node {z.node}, zone {z.zone:<8} pfn {z.start_pfn:#x}-{z.end_pfn:#x}  "
              f"present {z.present:>9}  free {z.free:>9}  ({human_bytes(z.present * prof.page_size)})")
    print("  buddyinfo (free blocks per order):")
    for z in m.phys.zone_info():
        print(f"  Node {z.node}, zone {z.zone:>8} " + " ".join(f"{n:6d}" for n in z.free_per_order))
    print("\n/proc/meminfo:")
    print(m.meminfo(), end="")
    if args.dmesg:
        print("\ndmesg:")
        print("\n".join(m.dmesg()))
    return 0
