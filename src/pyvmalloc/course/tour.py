"""The guided tour's narrative: each screen runs the model and prints every step it takes.

Nothing happens off the page: every call that changes the machine is shown as the line of
Python that makes it, and every claim in the text is read from what the model did (the frames
it handed out, the fault it raised, the alignment it used), so the tour stays true on every
arch, kernel and allocator.  ``facts`` keeps those values for the tests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pyvmalloc as pv
from pyvmalloc.sizes import human_bytes
from pyvmalloc.versions import has

__all__ = ["Screen", "Tour", "runs_of", "tour"]


@dataclass
class Screen:
    """One screen of the tour: its title and its lines."""

    title: str
    lines: list[str]


@dataclass
class Tour:
    """The screens, and the facts the text states (for tests)."""

    screens: list[Screen] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    def text(self) -> str:
        """The tour as printed."""
        out: list[str] = []
        for s in self.screens:
            out.append(f"\n== {s.title} " + "=" * max(0, 66 - len(s.title)))
            out.extend(s.lines)
        return "\n".join(out) + "\n"


def runs_of(pfns: list[int]) -> int:
    """How many runs of consecutive frame numbers ``pfns`` is made of."""
    return sum(1 for i, p in enumerate(pfns) if i == 0 or p != pfns[i - 1] + 1)


def _pfns(pfns: list[int], limit: int = 8) -> str:
    return ", ".join(str(p) for p in pfns[:limit]) + (" ..." if len(pfns) > limit else "")


def tour(m: pv.Machine, seed: int, ram: str, options: str) -> Tour:
    """Run the tour on ``m``; ``ram`` and ``options`` (the --arch/--kernel/--allocator flags as
    typed) are passed on to the machines of the last screen and to the commands it suggests."""
    rng = random.Random(seed)
    t = Tour()
    ps = m.PAGE_SIZE
    lay = m.layout
    t.screens.append(Screen("1. The machine", [
        f"m = pv.Machine(arch={m.profile.name!r}, ram={ram!r}, kernel={str(m.kernel)!r}"
        f", allocator={m.allocator_name!r})",
        f"A simulated {m.profile.description} with {human_bytes(lay.ram_bytes)} of RAM, running the",
        f"vmalloc of Linux {m.kernel} with the {m.allocator_name!r} address-space allocator.",
        f"Kernel virtual addresses {lay.vmalloc_start:#x} .. {lay.vmalloc_end:#x}",
        f"({human_bytes(lay.vmalloc_end - lay.vmalloc_start)}) are the vmalloc area: memory that is contiguous",
        "to the kernel, made of physical pages that need not be.",
    ]))

    # A fresh machine has no fragmentation: show it, then make some, as a running kernel has.
    fresh = [m.alloc_page() for _ in range(4)]
    fresh_pfns = [p.pfn for p in fresh if p is not None]
    for p in fresh:
        if p is not None:
            m.free_page(p)
    held = [m.alloc_page() for _ in range(64)]
    given_back = sorted(rng.sample(range(64), 32))
    for i in given_back:
        page = held[i]
        if page is not None:
            m.free_page(page)
    back_pfns = [p.pfn for i, p in enumerate(held) if i in given_back and p is not None]
    t.screens.append(Screen("2. Physical memory, fresh and used", [
        "[m.alloc_page() for _ in range(4)]  -> frames " + _pfns(fresh_pfns) + " (then freed again)",
        "Fresh from boot, the buddy allocator hands out consecutive frames. A kernel that has",
        "run a while has not: its free memory is scattered. Make that happen here:",
        "held = [m.alloc_page() for _ in range(64)]",
        "for i in (" + ", ".join(map(str, given_back[:16])) + ",",
        "          " + ", ".join(map(str, given_back[16:])) + "):",
        "    m.free_page(held[i])          # 32 of the 64, picked by the seed",
        "Free now, one by one, between frames still in use: " + _pfns(back_pfns),
    ]))
    t.facts["fresh_pfns"] = fresh_pfns

    size = rng.choice([3, 5, 7, 10]) * ps - rng.randrange(1, ps // 2)
    a = m.vmalloc(size, caller="tour")
    assert a is not None
    area = m.find_vm_area(a)
    assert area is not None
    frames = [int(p) for p in area.pages]
    runs = runs_of(frames)
    t.facts.update(vmalloc_pfns=frames, runs=runs)
    scattered = (f"{runs} separate runs of consecutive frames: scattered, yet contiguous at {a:#x}"
                 if runs > 1 else "one run of consecutive frames this time")
    t.screens.append(Screen("3. vmalloc", [
        f"a = m.vmalloc({size})          -> {a:#x}",
        f"The size is rounded up to {area.nr_pages} pages, and ONE MORE page is added to the area:",
        "the guard page, never mapped, so that running off the end faults instead of",
        "scribbling on the next area (mm/vmalloc.c, 2.6.22: \"We always allocate a guard page\").",
        f"  area {area.addr:#x}-{area.end:#x}  size={area.size} ({area.size // ps} pages, guard included)",
        f"  physical frames (pfn): {_pfns(frames, 10)}",
        f"  {scattered}.",
    ]))

    probe = a + ps + 0x123
    steps = m.walk(probe)
    width = 2 * steps[-1].entry_size
    phys = m.translate(probe)
    lines = [f"The CPU turns {probe:#x} into a physical address by walking init_mm's tables,",
             f"{len(steps)} level(s) on {m.profile.name}:"]
    lines += [f"  {s.level:<4} index {s.index:>4}  entry 0x{s.entry:0{width}x}  {' '.join(s.flags)}" for s in steps]
    if phys is not None:
        lines.append(f"  -> physical address {phys:#x} (frame {phys // ps}, offset {probe % ps:#x})")
    t.facts["walk_levels"] = [s.level for s in steps]
    t.screens.append(Screen("4. The page-table walk", lines))

    msg = b"Hello from the vmalloc area!"
    m.vwrite(a, msg)
    t.screens.append(Screen("5. Bytes", [
        f"m.vwrite(a, {msg!r})",
        f"m.vread(a, {len(msg)})  -> {m.vread(a, len(msg))!r}",
        f"m.read(a, {len(msg)})   -> {m.read(a, len(msg))!r}   (a CPU load: TLB, then the walk)",
    ]))

    end = a + area.nr_pages * ps
    try:
        m.write(end, b"!")
        fault = "no fault?!"
    except pv.PageFault as exc:
        fault = f"PageFault: {exc.access} at {exc.address:#x}: {exc.reason}"
        t.facts["guard_fault"] = exc.reason
    t.screens.append(Screen("6. The guard page", [
        f"The last byte of the area is {end - 1:#x}. One byte further is the guard page:",
        f"m.write({end:#x}, b\"!\")  -> {fault}",
    ]))

    filled = area.nr_pages * ps
    m.vwrite(a, b"\xaa" * filled)
    old_frames = set(frames)
    m.vfree(a)
    b = m.vmalloc(4 * filled, caller="tour")
    u = m.vmalloc_user(filled, caller="tour")
    assert b is not None and u is not None
    new_area = m.find_vm_area(b)
    assert new_area is not None
    reused = [i for i, pfn in enumerate(new_area.pages.tolist()) if pfn in old_frames]
    lines = [
        f"m.vwrite(a, b\"\\xaa\" * {filled})   # fill all {area.nr_pages} pages of a with 0xaa",
        "m.vfree(a)                        # the frames go back to the buddy allocator as they are",
        f"b = m.vmalloc({4 * filled})          -> {b:#x}",
    ]
    if reused:
        i = reused[0]
        stale = m.vread(b + i * ps, 4).hex(" ")
        t.facts["stale"] = stale
        lines += [f"Frame {int(new_area.pages[i])}, one of a's, came back as page {i} of b:",
                  f"m.vread(b + {i * ps:#x}, 4)  -> {stale} ...  a's old bytes: vmalloc does not clear pages."]
    else:
        lines.append("(This time the buddy allocator handed out other frames: none of a's came back.)")
    zero = m.vread(u, 4).hex(" ")
    t.facts["user_bytes"] = zero
    lines += [f"u = m.vmalloc_user({filled})  -> {u:#x}",
              f"m.vread(u, 4)  -> {zero} ...  vmalloc_user passes __GFP_ZERO, so that mapping it into a",
              "process (remap_vmalloc_range) cannot leak kernel data."]
    t.screens.append(Screen("7. Stale bytes, and vmalloc_user", lines))

    io_size = rng.choice([5, 9, 17]) * ps
    io = m.get_vm_area(io_size, pv.VM_IOREMAP, caller="tour")
    assert io is not None
    align = m.ioremap_align(io_size)
    t.facts["ioremap"] = (io.addr, align)
    rule = "get_count_order(PAGE_ALIGN(size))" if has(m.kernel, "ioremap_count_order") else "fls(size)"
    t.screens.append(Screen("8. ioremap alignment", [
        f"io = m.get_vm_area({io_size}, pv.VM_IOREMAP)  -> {io.addr:#x}",
        f"On Linux {m.kernel}, I/O areas align to 2^clamp({rule}, PAGE_SHIFT,",
        f"IOREMAP_MAX_ORDER={lay.ioremap_max_order}) = {human_bytes(align)} ({io.addr:#x} is a multiple of it), so",
        "large device windows can later use large mappings.",
    ]))

    t.screens.append(_running_out(m, t))
    nexts = [(f"pyvmalloc quiz -s 1 -c {options}", "problems, with -c their answers and rules"),
             (f"pyvmalloc map -o map.html {options}", "the address space as a page to zoom and hover"),
             # This machine's flags, not a fixed ARM example: --arch/--kernel/--allocator hold
             # to the end, and vmalloc= only where the arch takes it.
             (f"pyvmalloc machine {options} --ram {ram}"
              + (" --cmdline vmalloc=384M" if m.profile.accepts_vmalloc_param else ""), "a layout"),
             ("pyvmalloc analyze examples/vmallocinfo/<file>", "a real device's /proc/vmallocinfo")]
    col = max(len(c) for c, _ in nexts) + 2
    t.screens.append(Screen("Next", [f"{c:<{col}}({w})" for c, w in nexts] + [
        f"In Python:  import pyvmalloc as pv; m = pv.Machine(arch={m.profile.name!r}, ram={ram!r}, "
        f"kernel={str(m.kernel)!r}, allocator={m.allocator_name!r})"]))
    return t


def _running_out(m: pv.Machine, t: Tour) -> Screen:
    """The last screen, for this machine's arch, kernel and allocator: on 32-bit, device windows
    exhaust the vmalloc space until ``vmalloc=`` grows it; on 64-bit, RAM runs out first."""
    title = "9. Running out"
    if m.profile.bits == 64:
        want = m.num_physpages * m.PAGE_SIZE
        mark = len(m.dmesg())
        free_before = sum(z.free for z in m.phys.zone_info())
        tables_before = len(m.phys.pfns_owned_by("pgtable"))
        m.trace_on()
        got = m.vmalloc(want, caller="big_table_init")
        m.trace_off()
        found = [e for e in m.trace_events() if e.event == "alloc_vmap_area" and e["size"] > want]
        free_after = sum(z.free for z in m.phys.zone_info())
        t.facts["out_64"] = (got, bool(found and not found[-1]["failed"]))
        said = [line.split("] ", 1)[-1] for line in m.dmesg()[mark:]]
        area = ("alloc_vmap_area found the range (the trace says failed=0)" if found and not found[-1]["failed"]
                else "even the range was not found")
        tables = len(m.phys.pfns_owned_by("pgtable")) - tables_before
        kept = free_before - free_after
        back = ("every page it had taken went back" if kept == 0 else
                f"every page went back but {kept} new page-table page(s): kernel page tables are never freed"
                if kept == tables else f"{kept} page(s) stayed taken")
        return Screen(title, [
            f"On {m.profile.name} the vmalloc area is {human_bytes(m.VMALLOC_END - m.VMALLOC_START)}: "
            "address space is not what runs out.",
            f"m.vmalloc({want})   # as many pages as the machine has  -> {'NULL' if got is None else hex(got)}",
            *[f"  dmesg: {line}" for line in said[:2]],
            f"Pages do: {area}, then the page allocator failed, and",
            f"{back}",
            f"(free frames before and after: {free_before}, {free_after}). One page more than",
            "num_physpages is refused before any search.",
            "vmalloc= is a boot parameter of the 32-bit machines, where the space itself is small",
            "(try --arch i386).",
        ])
    small = pv.Machine(arch=m.profile.name, ram="1G", kernel=m.kernel, allocator=m.allocator_name)
    space = small.VMALLOC_END - small.VMALLOC_START
    want = (space * 2 // 5) >> 20 << 20
    windows = [small.get_vm_area(want, pv.VM_IOREMAP, caller="driver_probe") for _ in range(3)]
    fails = sum(x is None for x in windows)
    said = [line.split("] ", 1)[-1] for line in small.dmesg() if "vmalloc=" in line or "restricted" in line]
    grow = -(-(3 * want * 5 // 4) // (64 << 20)) * (64 << 20)
    cmdline = f"vmalloc={grow >> 20}M"
    big = pv.Machine(arch=m.profile.name, ram="1G", cmdline=cmdline, kernel=m.kernel,
                     allocator=m.allocator_name)
    got_big = [big.get_vm_area(want, pv.VM_IOREMAP, caller="driver_probe") for _ in range(3)]
    t.facts["out_32"] = (3 - fails, sum(x is not None for x in got_big))
    lines = [
        f"small = pv.Machine(arch={m.profile.name!r}, ram=\"1G\", kernel={str(m.kernel)!r}, "
        f"allocator={m.allocator_name!r})",
        "With 1 GiB of RAM the 32-bit kernel keeps most of its 1 GiB for lowmem, leaving",
        f"{human_bytes(space)} of vmalloc space. Three drivers each map a {human_bytes(want)} device window:",
        f"[small.get_vm_area({want}, pv.VM_IOREMAP) for _ in range(3)]  -> {3 - fails} of 3 succeed",
        *[f"  dmesg: {line}" for line in said[-1:]],
        f"big = pv.Machine(..., cmdline={cmdline!r}) moves the lowmem/highmem boundary down:",
        f"{human_bytes(big.VMALLOC_END - big.VMALLOC_START)} of vmalloc space, and "
        f"{sum(x is not None for x in got_big)} of 3 succeed.",
    ]
    return Screen(title, lines)
