"""``pyvmalloc tour``: a guided walk through vmalloc on a simulated machine, for newcomers."""

from __future__ import annotations

import argparse
import random
import textwrap
from typing import Any

import pyvmalloc as pv
from pyvmalloc.versions import has
from pyvmalloc.cli.common import add_machine_args, boot_from_args
from pyvmalloc.sizes import human_bytes


def register(sub: Any) -> None:
    """Add the ``tour`` subcommand."""
    p = sub.add_parser("tour", help="a guided tour of vmalloc on a simulated machine",
                       description=__doc__)
    add_machine_args(p, default_arch="x86_64", default_ram="512M")
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed: same seed, same tour (default 0)")
    p.set_defaults(func=run)


def _screen(title: str, body: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))
    print(textwrap.dedent(body).strip("\n"))


def run(args: argparse.Namespace) -> int:
    """Print the tour; returns the exit code."""
    rng = random.Random(args.seed)
    m = boot_from_args(args)
    ps = m.PAGE_SIZE
    lay = m.layout
    _screen(
        "1. The machine",
        f"""
        A simulated {m.profile.description} with {human_bytes(lay.ram_bytes)} of RAM,
        running the vmalloc of Linux {m.kernel} (--kernel 2.6.22 for the seed's).
        Kernel virtual addresses {lay.vmalloc_start:#x} .. {lay.vmalloc_end:#x}
        ({human_bytes(lay.vmalloc_end - lay.vmalloc_start)}) are the vmalloc area: memory that is
        contiguous to the kernel but made of scattered physical pages.
        """,
    )
    size = rng.choice([3, 5, 7, 10]) * ps - rng.randrange(1, ps // 2)
    a = m.vmalloc(size, caller="tour")
    assert a is not None
    area = m.find_vm_area(a)
    assert area is not None
    _screen(
        "2. vmalloc",
        f"""
        a = m.vmalloc({size})          -> {a:#x}
        The size is rounded up to {area.nr_pages} pages, and ONE MORE page is added to the area:
        the guard page, never mapped, so that running off the end faults instead of
        scribbling on the next area (mm/vmalloc.c, 2.6.22: "We always allocate a guard page").
          area {area.addr:#x}-{area.end:#x}  size={area.size} ({area.size // ps} pages, guard included)
          physical frames (pfn): {', '.join(str(int(p)) for p in area.pages[:8])}{' ...' if area.nr_pages > 8 else ''}
        """,
    )
    probe = a + ps + 0x123
    steps = m.walk(probe)
    width = 2 * m.profile.levels[-1].entry_size
    rows = "\n".join(
        f"  {s.level:<4} index {s.index:>4}  entry 0x{s.entry:0{width}x}  {' '.join(s.flags)}" for s in steps
    )
    phys = m.translate(probe)
    _screen(
        "3. The page-table walk",
        f"""
        The CPU turns {probe:#x} into a physical address by walking init_mm's tables:
        """,
    )
    print(rows)
    print(f"  -> physical address {phys:#x} (frame {phys // ps}, offset {probe % ps:#x})" if phys is not None else "")
    msg = b"Hello from the vmalloc area!"
    m.vwrite(a, msg)
    _screen(
        "4. Bytes",
        f"""
        m.vwrite(a, {msg!r})
        m.vread(a, {len(msg)})  -> {m.vread(a, len(msg))!r}
        m.read(a, {len(msg)})   -> {m.read(a, len(msg))!r}   (a CPU load: TLB, then the walk)
        """,
    )
    end = a + area.nr_pages * ps
    try:
        m.write(end, b"!")
        fault = "no fault?!"
    except pv.PageFault as exc:
        fault = f"PageFault: {exc.access} at {exc.address:#x}: {exc.reason}"
    _screen(
        "5. The guard page",
        f"""
        The last byte of the area is {end - 1:#x}. One byte further is the guard page:
        m.write({end:#x}, b"!")  -> {fault}
        """,
    )
    old_frames = set(area.pages.tolist())
    m.vwrite(a, b"\xaa" * (area.nr_pages * ps))
    m.vfree(a)
    m.vm_unmap_aliases()
    b = m.vmalloc(4 * area.nr_pages * ps, caller="tour")
    u = m.vmalloc_user(area.nr_pages * ps, caller="tour")
    assert b is not None and u is not None
    new_area = m.find_vm_area(b)
    assert new_area is not None
    reused = [i for i, pfn in enumerate(new_area.pages.tolist()) if pfn in old_frames]
    if reused:
        i = reused[0]
        stale = (f"Frame {int(new_area.pages[i])} came back in a new m.vmalloc(); page {i} of it reads "
                 f"{m.vread(b + i * ps, 4).hex(' ')} ... the old bytes.")
    else:
        stale = "(This time the buddy allocator handed out other frames.)"
    _screen(
        "6. Stale bytes, and vmalloc_user",
        f"""
        After m.vfree(a), the freed frames keep their old bytes (aa aa ...), as real RAM does.
        {stale}
        m.vmalloc_user() passes __GFP_ZERO: it reads {m.vread(u, 4).hex(' ')} ..., so that
        mapping it into a process (remap_vmalloc_range) cannot leak kernel data.
        """,
    )
    io_size = rng.choice([5, 9, 17]) * ps
    io = m.get_vm_area(io_size, pv.VM_IOREMAP, caller="tour")
    assert io is not None
    align = m.ioremap_align(io_size)
    rule = "get_count_order(PAGE_ALIGN(size))" if has(m.kernel, "ioremap_count_order") else "fls(size)"
    _screen(
        "7. ioremap alignment",
        f"""
        get_vm_area({io_size}, VM_IOREMAP) -> {io.addr:#x}
        On Linux {m.kernel}, I/O areas align to 2^clamp({rule}, PAGE_SHIFT,
        IOREMAP_MAX_ORDER={m.layout.ioremap_max_order}) = {human_bytes(align)}, so large device
        windows can later use large mappings.
        """,
    )
    small = pv.Machine(arch="i386", ram="1G", allocator=m.allocator_name, kernel=m.kernel)
    want = 64 << 20
    got = [small.vmalloc(want, caller="driver_probe") for _ in range(3)]
    fails = sum(x is None for x in got)
    last = [line for line in small.dmesg() if "vmalloc=" in line or "restricted" in line][-1]
    big = pv.Machine(arch="i386", ram="1G", cmdline="vmalloc=256M", allocator=m.allocator_name,
                     kernel=m.kernel)
    got_big = [big.vmalloc(want, caller="driver_probe") for _ in range(3)]
    _screen(
        "8. Running out: the vmalloc= boot parameter",
        f"""
        An i386 machine with 1 GiB RAM has only {human_bytes(small.VMALLOC_END - small.VMALLOC_START)} of vmalloc space
        (3G/1G split: lowmem takes the rest of the kernel's 1 GiB).
        Three drivers each ask for {human_bytes(want)}: {3 - fails} of 3 succeed, {fails} fail{'s' if fails == 1 else ''}:
          dmesg: {last.split('] ', 1)[-1]}
        Booting with vmalloc=256M moves the lowmem/highmem boundary down and gives
        {human_bytes(big.VMALLOC_END - big.VMALLOC_START)} of vmalloc space: {sum(x is not None for x in got_big)} of 3 succeed.
        """,
    )
    _screen(
        "Next",
        """
        pyvmalloc machine --arch arm --ram 512M --cmdline vmalloc=384M   (the layout)
        pyvmalloc analyze examples/vmallocinfo/<file>                     (a real device)
        In Python:  import pyvmalloc as pv; m = pv.Machine(arch="i386", ram="2G")
        """,
    )
    return 0
