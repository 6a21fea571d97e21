"""Snapshot restoring: a machine whose address space holds a real /proc/vmallocinfo's areas.

Three steps, each usable on its own (``analysis.plan`` replays snapshots on other layouts):

1. :func:`snapshot_layout` reads what the snapshot says about the machine it came from: the arch
   (given, or guessed from the addresses), the vmalloc range (the x86_64 KASLR ``vmalloc_base``
   inferred from the areas; on 32-bit the start read off the lowest allocated area and the end
   from meminfo's VmallocTotal), the RAM and the NUMA nodes.  Everything guessed is said.
2. :func:`boot_snapshot_machine` boots a ``Machine`` for that layout: the arch profile, with the
   device's own VMALLOC_END where it differs (3.x ARM used 0xff000000, vendors other values), and
   the range read off the snapshot where the model's boot computes another one.
3. :func:`replay_snapshot` puts every area back at its exact address: a ``vm_struct`` of the
   same size (guard page included), flags from the words, the caller text verbatim, ``pages=N``
   real frames mapped at the start of the area (``N<node>=`` on the nodes named), ``phys=``.
   ``unpurged vm_area`` lines become lazily freed ranges waiting for a purge, ``vm_map_ram`` lines
   reserved blocks without a vm_struct.  Areas outside the vmalloc range (modules, static maps,
   vendor ``lowmem`` maps) are registered too and listed in ``m.extra_vm_ranges``.  On a fresh
   machine the work is done in bulk (frames of many areas per page allocator call, kmallocs in
   runs, the allocator's tree built in address order, one page-table write per table), with the
   same machine as a result, frame for frame (see "replaying in bulk" below).

The address arithmetic (arch guess, KASLR base, bounds) is ``snapshot.layout``'s, which reads only
parsed records and arch constants, so that the machine and the ``analyze`` report agree on every
inferred number.
"""

from __future__ import annotations

import dataclasses
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from pyvmalloc.snapshot.layout import (
    check_arch,
    guess_arch,
    infer_bounds,
    infer_kaslr,
    infer_kernel,
    is_static_area,
)
from pyvmalloc.arch import PROFILES, ArchProfile, boot_layout, get_profile, vmalloc_end_for
from pyvmalloc.sizes import format_size, parse_size
from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.versions import KNOWN_VERSIONS, KernelVersion, parse_version, resolve
from pyvmalloc.kernel.log import KERN_INFO, KERN_WARNING
from pyvmalloc.kernel.machine import MAX_CPUS, Machine
from pyvmalloc.phys import gfp as G
from pyvmalloc.formats._text import gc_paused
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.vmallocinfo import (
    UNPURGED,
    VM_MAP_RAM,
    VmallocinfoLine,
    VmallocinfoSnapshot,
    parse_vmallocinfo,
)
from pyvmalloc.vmalloc.list_allocator import space_bounds
from pyvmalloc.vmalloc.vm_struct import (
    VM_ALLOC,
    VM_MAP,
    VM_VPAGES,
    VM_WORDS,
    FixedRange,
    SnapshotArea,
    VM_LAZY_FREE,
    VM_VM_AREA,
    VMAP_RAM,
    vmap_area,
)

M = TypeVar("M", bound=Machine)

__all__ = [
    "FLAG_WORDS",
    "FixedRange",
    "LAYOUT_PARAMS",
    "ReplayReport",
    "SnapshotArea",
    "SnapshotLayout",
    "boot_snapshot_machine",
    "layout_cmdline",
    "machine_from_snapshot",
    "read_meminfo",
    "read_snapshot",
    "replay_snapshot",
    "resolve_arch",
    "set_vmalloc_range",
    "snapshot_layout",
    "vmalloc_bounds",
]

MiB = 1 << 20
GiB = 1 << 30

# The words that stand for a VM_* bit of the model's vm_struct (vmalloc/vm_struct.py VM_WORDS).
FLAG_WORDS: dict[str, int] = {word: bit for bit, word in VM_WORDS}
_GFP_VMALLOC = G.GFP_KERNEL | getattr(G, "__GFP_HIGHMEM")
_GFP_ZERO: int = getattr(G, "__GFP_ZERO")
# Machines booted for a snapshot without a RAM size: the 64-bit default (any server has it).
_DEFAULT_RAM_64 = 1 * GiB








@dataclass(frozen=True)
class SnapshotLayout:
    """What a snapshot says about the machine it came from, and how each number was found.

    ``profile`` is the arch profile to boot (the device's VMALLOC_END where it differs from the
    profile's); ``vmalloc_start``/``vmalloc_end`` the range the areas were allocated from, in the
    profile's convention (x86_64's VMALLOC_END is the last byte); ``messages`` the sentences that
    go to dmesg.
    """

    arch: str
    profile: ArchProfile
    vmalloc_start: int
    vmalloc_end: int
    bounds_how: str
    ram: int
    ram_how: str
    nodes: int
    kaslr_base: int | None
    messages: tuple[str, ...]
    cpus: int | None = None  # the fewest CPUs whose lazy_max_pages holds the unpurged pages
    cmdline: str = ""        # the parameters of the device's command line that shape the layout
    kernel: KernelVersion = field(default_factory=lambda: resolve(None))


@dataclass
class ReplayReport:
    """What :func:`replay_snapshot` did: areas placed, moved, left out or left without pages."""

    placed: int = 0
    relocated: list[tuple[int, int, int]] = field(default_factory=list)  # (line, old, new)
    dropped: list[tuple[int, str]] = field(default_factory=list)         # (line, why)
    unplaced: list[tuple[int, str]] = field(default_factory=list)        # (line, why)
    without_pages: list[int] = field(default_factory=list)               # line numbers
    pages: int = 0
    fixed: list[FixedRange] = field(default_factory=list)
    arrays_linked: int = 0  # vpages areas whose page array is another line of the snapshot


# ---- reading ----------------------------------------------------------------------------------
def read_snapshot(vmallocinfo: str | VmallocinfoSnapshot, source: str = "<vmallocinfo>"
                  ) -> VmallocinfoSnapshot:
    """A parsed snapshot: text is parsed (FormatError ``source:line``), a parsed one passes."""
    if isinstance(vmallocinfo, VmallocinfoSnapshot):
        return vmallocinfo
    return parse_vmallocinfo(vmallocinfo, source)


def read_meminfo(meminfo: str | Mapping[str, int] | None, source: str = "<meminfo>"
                 ) -> dict[str, int] | None:
    """``/proc/meminfo`` fields in kB (text is parsed; a mapping passes; None stays None)."""
    if meminfo is None:
        return None
    if isinstance(meminfo, str):
        return parse_meminfo(meminfo, source)
    return dict(meminfo)


# Boot parameters that shape the vmalloc layout (arch/boot.py knows these); the rest of a
# device's command line (console=, root=, quiet...) changes nothing here.
LAYOUT_PARAMS = ("mem", "vmalloc", "nokaslr")


def layout_cmdline(cmdline: str) -> tuple[str, list[str]]:
    """``(kept, dropped)``: the words of ``cmdline`` that shape the layout, and the others."""
    if not isinstance(cmdline, str):
        raise ConfigError(f"the kernel command line must be text, not {cmdline!r}")
    kept: list[str] = []
    dropped: list[str] = []
    for word in cmdline.split():
        (kept if word.split("=", 1)[0] in LAYOUT_PARAMS else dropped).append(word)
    return " ".join(kept), dropped


# ---- the layout --------------------------------------------------------------------------------
def _need_arch(why: str) -> ConfigError:
    known = ", ".join(PROFILES)
    return ConfigError(f"{why}: give the arch (--arch, one of {known})")


def resolve_arch(snapshot: VmallocinfoSnapshot, arch: str | None) -> tuple[str, str]:
    """The profile name for ``snapshot`` and why: given (checked against the addresses) or guessed.

    ConfigError when the addresses are hashed, the arch cannot be guessed or has no profile;
    FormatError (naming the line) when an address cannot belong to the given arch.
    """
    if not snapshot.addresses_trusted:
        raise ConfigError(f"{snapshot.source}: {snapshot.address_reason}: the areas cannot be "
                          f"placed at their addresses (capture /proc/vmallocinfo as root with "
                          f"kptr_restrict=0)")
    if not snapshot.lines:
        raise ConfigError(f"{snapshot.source}: no areas: nothing to place on a machine")
    if arch is None:
        guessed, reason = guess_arch(snapshot)
        if guessed is None:
            raise _need_arch(f"{snapshot.source}: the arch cannot be told from the snapshot "
                             f"({reason})")
        return guessed, f"guessed: {reason}"
    if arch not in PROFILES:
        raise _need_arch(f"no machine profile for arch {arch!r}")
    check_arch(snapshot, arch)
    return arch, "given"


def _check_kernel_space(snapshot: VmallocinfoSnapshot, profile: ArchProfile) -> None:
    """Every area must lie where ``profile``'s kernel can map: above PAGE_OFFSET or in its
    module area; anything else means the arch is wrong."""
    floor = profile.page_offset
    if profile.modules_start is not None:
        floor = min(floor, profile.modules_start)
    for ln in snapshot.lines:
        if ln.start < floor:
            raise FormatError(
                f"{snapshot.source}:{ln.lineno}",
                f"area 0x{ln.start:x} lies below {profile.name}'s kernel space "
                f"(PAGE_OFFSET 0x{profile.page_offset:x}"
                + (f", modules from 0x{profile.modules_start:x}" if profile.modules_start else "")
                + "): is the arch right?")


def vmalloc_bounds(m: Machine) -> tuple[int, int]:
    """``[VMALLOC_START, VMALLOC_END)`` of ``m``: half-open, as every range inside the model.

    The end is the kernel's own VMALLOC_END value used as an exclusive bound, exactly as
    ``alloc_vmap_area(size, align, VMALLOC_START, VMALLOC_END, ...)`` uses it: x86_64 defines
    VMALLOC_END as the last byte (0xffffe8ffffffffff), so its last page is never handed out, and
    VmallocTotal is ``(VMALLOC_END - VMALLOC_START) >> 10`` (34359738367 kB), as the kernel prints.
    """
    return m.VMALLOC_START, m.VMALLOC_END


def _ram_candidates(profile: ArchProfile, vstart: int, ram: int | str | None,
                    meminfo: Mapping[str, int] | None) -> list[tuple[int, str]]:
    if ram is not None:
        return [(parse_size(ram) if isinstance(ram, str) else int(ram), "given")]
    out: list[tuple[int, str]] = []
    if meminfo and meminfo.get("MemTotal"):
        kb = meminfo["MemTotal"]
        out.append((-(-kb * 1024 // MiB) * MiB,
                    f"meminfo MemTotal {kb} kB rounded up to 1 MiB (MemTotal leaves out what "
                    f"firmware and the kernel image reserve)"))
    if profile.bits == 32:
        # VMALLOC_START = high_memory + VMALLOC_OFFSET rounded to VMALLOC_OFFSET (arch/arm/
        # include/asm/pgtable.h; i386 2.6.22 rounds high_memory + 2*OFFSET - 1 down): the
        # lowmem that ends VMALLOC_OFFSET below the snapshot's start yields that start.
        low = vstart - profile.vmalloc_offset - profile.page_offset
        out.append((low, f"the lowmem ({format_size(low)}) that puts VMALLOC_START at "
                         f"0x{vstart:x} (high_memory + VMALLOC_OFFSET, rounded)"))
    else:
        out.append((_DEFAULT_RAM_64, f"default {format_size(_DEFAULT_RAM_64)} (no MemTotal given)"))
    return out


def pick_kernel(snapshot: VmallocinfoSnapshot, meminfo: Mapping[str, int] | None, arch: str,
                cmdline: str, kernel: str | KernelVersion | None) -> tuple[KernelVersion, str]:
    """The kernel to restore ``snapshot`` on, and how it was chosen: ``kernel`` when given;
    else what the dump tells (``snapshot.layout.infer_kernel``): the default kernel when the
    dump allows it, otherwise the newest listed release the dump allows."""
    if kernel is not None:
        return resolve(kernel), "given"
    span, why = infer_kernel(snapshot, meminfo, arch=arch, cmdline=cmdline)
    default = resolve(None)
    if span.contains(default):
        if not span.known:
            return default, "not given, and the dump does not tell: the default kernel"
        return default, f"not given: the default kernel, which the dump allows ({span}: {why})"
    allowed = [v for v in (parse_version(k) for k in KNOWN_VERSIONS) if span.contains(v)]
    if not allowed:
        return default, f"not given; the dump points to {span} ({why}) but no listed release is there"
    return allowed[-1], f"inferred from the dump: {span} ({why}); restored as the newest of them"


def snapshot_layout(snapshot: VmallocinfoSnapshot, meminfo: Mapping[str, int] | None = None,
                    arch: str | None = None, cmdline: str = "", ram: int | str | None = None,
                    nodes: int | None = None,
                    kernel: str | KernelVersion | None = None) -> SnapshotLayout:
    """Read the machine behind ``snapshot``: arch, vmalloc range, RAM, nodes (see the module doc).

    RAM: ``ram`` when given; else the first of meminfo's MemTotal and (32-bit) the lowmem that
    yields the snapshot's VMALLOC_START with which the model's boot of ``cmdline`` reproduces that
    start; else the first of them (the range is then taken from the snapshot, and said).
    """
    arch, arch_reason = resolve_arch(snapshot, arch)
    profile = get_profile(arch)
    cmdline, dropped = layout_cmdline(cmdline)
    kver, kernel_how = pick_kernel(snapshot, meminfo, arch, cmdline, kernel)
    _check_kernel_space(snapshot, profile)
    messages = [f"snapshot {snapshot.source}: {len(snapshot.lines)} areas, arch {arch} "
                f"({arch_reason}), Linux {kver} ({kernel_how})"]
    if dropped:
        messages.append(f"snapshot: left out of the command line (they do not shape the vmalloc "
                        f"layout): {' '.join(dropped)}")
    messages += [f"snapshot: {w}" for w in snapshot.warnings]
    total_kb = (meminfo or {}).get("VmallocTotal") or None
    bounds = infer_bounds(snapshot, arch, total_kb, kver)
    assert bounds is not None  # trusted addresses and at least one area
    kaslr = infer_kaslr(snapshot, arch)
    start, end, how = bounds.start, bounds.end, bounds.how
    kernel_end = vmalloc_end_for(profile, kver)
    if profile.bits == 32 and not bounds.exact:
        # No VmallocTotal: the kernel's VMALLOC_END, unless areas reach above it.
        if bounds.end <= kernel_end:
            end = kernel_end
            how = (how.split("; VMALLOC_END unknown")[0] + f"; VMALLOC_END 0x{end:08x} of "
                   f"{arch} Linux {kver} (no meminfo VmallocTotal to read it from)")
    if profile.bits == 32 and end != kernel_end:
        # Vendors set their own VMALLOC_END (e.g. 0xf0000000): boot the profile with the
        # device's value so that vmalloc= means what it meant there.
        profile = dataclasses.replace(profile, vmalloc_end=end)
        messages.append(f"snapshot: VMALLOC_END 0x{end:08x} (Linux {kver} on {arch} has "
                        f"0x{kernel_end:08x}): booting with the device's value")
    messages.append(f"snapshot: vmalloc range 0x{start:x}-0x{end:x}: {how}")
    if kaslr is not None:
        messages.append(f"snapshot: KASLR: {kaslr.reason}")

    candidates = _ram_candidates(profile, start, ram, meminfo)
    chosen = None
    for size, why in candidates:
        size = min(max(size, profile.min_ram), profile.max_ram)
        try:
            lay = boot_layout(profile, size, cmdline, kernel=kver)
        except ConfigError:
            if ram is not None:
                raise
            continue
        if profile.bits == 64 or lay.vmalloc_start == start:
            chosen = (size, why)
            break
    if chosen is None:
        size, why = candidates[0]
        size = min(max(size, profile.min_ram), profile.max_ram)
        chosen = (size, why + "; no RAM size reproduces the snapshot's VMALLOC_START with this "
                              "command line, so the range is set from the snapshot")
    messages.append(f"snapshot: RAM {format_size(chosen[0])}: {chosen[1]}")
    numa = [n for ln in snapshot.lines for n in ln.numa]
    if nodes is None:
        nodes = max(numa) + 1 if numa else 1
    # mm/vmalloc.c (2.6.28+): lazy_max_pages() = fls(num_online_cpus()) * (32 MiB / PAGE_SIZE);
    # more unpurged pages than that would have been purged, so the machine had more CPUs.
    lazy = sum(ln.size for ln in snapshot.lines if UNPURGED in ln.kinds) >> profile.page_shift
    per_bit = (32 << 20) >> profile.page_shift
    cpus = None
    if lazy > per_bit:
        bits = min(-(-lazy // per_bit), MAX_CPUS.bit_length())
        cpus = 1 << (bits - 1)
        messages.append(f"snapshot: {lazy} unpurged pages exceed lazy_max_pages of one CPU: at "
                        f"least {cpus} CPUs (lazy_max_pages = fls(cpus) * 32 MiB / PAGE_SIZE)")
    return SnapshotLayout(arch=arch, profile=profile, vmalloc_start=start, vmalloc_end=end,
                          bounds_how=how, ram=chosen[0], ram_how=chosen[1], nodes=nodes,
                          kaslr_base=None if kaslr is None else kaslr.vmalloc_base,
                          messages=tuple(messages), cpus=cpus, cmdline=cmdline, kernel=kver)


# ---- booting -------------------------------------------------------------------------------------
def set_vmalloc_range(m: Machine, start: int, end: int, why: str) -> None:
    """Move the booted machine's VMALLOC_START/END to ``[start, end)`` (before any allocation):
    the snapshot's range where the model's boot computed another; said in dmesg."""
    lay = m.layout
    if (lay.vmalloc_start, lay.vmalloc_end) == (start, end):
        return
    if len(m.vmap_allocator):
        raise ConfigError("the vmalloc range can only be moved on a machine without areas")
    params = dict(lay.params)
    params["vmalloc_from_snapshot"] = why
    m.vm.set_vmalloc_range(dataclasses.replace(lay, vmalloc_start=start, vmalloc_end=end, params=params))
    m.printk(KERN_INFO, f"snapshot: booted vmalloc 0x{lay.vmalloc_start:x}-0x{lay.vmalloc_end:x} "
                        f"moved to 0x{start:x}-0x{end:x} ({(end - start) >> 20} MB): {why}")


def boot_snapshot_machine(cls: type[M], layout: SnapshotLayout, **machine_args: Any) -> M:
    """Boot ``cls`` for ``layout`` with the snapshot's vmalloc range (and KASLR base)."""
    if layout.cpus is not None:
        machine_args.setdefault("cpus", layout.cpus)
    m = cls(arch=layout.profile, ram=layout.ram, nodes=layout.nodes, cmdline=layout.cmdline,
            kernel=layout.kernel, **machine_args)
    for line in layout.messages:
        m.printk(KERN_INFO, line)
    why = (f"KASLR vmalloc_base 0x{layout.kaslr_base:x} inferred from the snapshot"
           if layout.kaslr_base is not None else layout.bounds_how)
    set_vmalloc_range(m, layout.vmalloc_start, layout.vmalloc_end, why)
    if layout.kaslr_base is not None:
        m.layout.params["kaslr"] = True
        m.layout.params["vmalloc_base"] = layout.kaslr_base
    return m


# ---- replaying -----------------------------------------------------------------------------------
def _flags(ln: VmallocinfoLine) -> tuple[int, tuple[str, ...]]:
    flags = 0
    extra = []
    for word in ln.kinds:
        if word in FLAG_WORDS:
            flags |= FLAG_WORDS[word]
        else:
            extra.append(word)
    extra += [w for w in ln.unknown_words if w not in ln.kinds]
    return flags, tuple(extra)



def _fixed_why(m: Machine, ln: VmallocinfoLine) -> str:
    lay = m.layout
    if lay.modules_end > lay.modules_start and lay.modules_start <= ln.start < lay.modules_end:
        return "module area (MODULES_VADDR..MODULES_END)"
    vendor = [w for w in ln.kinds if w not in FLAG_WORDS]
    if vendor:
        return f"vendor map '{' '.join(vendor)}'"
    if is_static_area(ln):
        return f"static map ({ln.function})"
    side = "below VMALLOC_START" if ln.start < m.VMALLOC_START else "above VMALLOC_END"
    return f"area {side}"


def _alloc_frames(m: Machine, ln: VmallocinfoLine, n: int, owner: str = "vmalloc"
                  ) -> np.ndarray | None:
    """``n`` frames for the line, ``N<node>=`` counts on their nodes first; None if RAM is short."""
    if m.phys.nr_free() < n:
        return None
    parts = []
    left = n
    nodes = len(m.phys.nodes)
    for node, count in sorted(ln.numa.items()):
        take = min(count, left)
        if take and node < nodes:
            got = m.vm.alloc_pages(_GFP_VMALLOC, take, node, owner)
            parts.append(got)
            left -= len(got)
            if len(got) < take:
                break
    if left:
        parts.append(m.vm.alloc_pages(_GFP_VMALLOC, left, -1, owner))
    pfns = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if len(pfns) < n:
        m.vm.free_pages(pfns)
        return None
    return pfns.astype(np.int64, copy=False)


def _populate(m: Machine, area: SnapshotArea, n: int, ln: VmallocinfoLine, exec_: bool) -> bool:
    """Give ``area`` ``n`` mapped frames and its page array; False (nothing taken) if RAM is short.

    Every line with ``pages=N`` gets N frames mapped at the start of its area, whatever its
    words.  A VM_ALLOC (``vmalloc``) area owns its frames (owner ``vmalloc``) and a page array.
    Any other area -- ``vmap`` (5.8+ prints ``pages=`` for vmap(VM_MAP_PUT_PAGES) areas),
    ``ioremap``, ``user``, ``dma-coherent``, vendor words, no word -- maps frames that belong to
    whoever mapped them (owner ``other``, as the pages a vmap() caller passes), recorded as the
    area's mapped pages, as ``vmap`` records them; ``vfree`` gives them back (VM_MAP_PUT_PAGES).
    """
    vm_alloc = bool(area.flags & VM_ALLOC)
    pfns = _alloc_frames(m, ln, n, "vmalloc" if vm_alloc else "other")
    if pfns is None:
        return False
    prot = m.vm.pgprot("PAGE_KERNEL_EXEC" if exec_ else "PAGE_KERNEL")
    with m.vm.pgtable_lock:
        err = m.init_mm.map_range(area.addr, pfns, prot)
    if err:
        m.vm.unmap_range(area.addr, n << m.PAGE_SHIFT)
        m.vm.free_pages(pfns)
        return False
    area.pages = pfns
    area.nr_pages = n
    if area.flags & VM_MAP or not vm_alloc:
        area.mapped = pfns
    if vm_alloc and n * m.vm.ptr_size <= m.PAGE_SIZE:
        _kmalloc_array(m, area)
    # A larger array was vmalloc'ed by the kernel (``vpages``): _link_page_arrays finds it.
    return True


def _kmalloc_array(m: Machine, area: SnapshotArea) -> None:
    handle = m.vm.kmalloc(area.nr_pages * m.vm.ptr_size, G.GFP_KERNEL | getattr(G, "__GFP_ZERO"), -1)
    if handle:
        area.pages_array = ("kmalloc", handle)


def _link_page_arrays(m: Machine, areas: Sequence[SnapshotArea]) -> int:
    """Give each populated VM_ALLOC area whose page array is over a page that array.

    mm/vmalloc.c ``__vmalloc_area_node`` (2.6.28+) vmallocs such an array right after the area,
    with the area's own caller, so the snapshot holds it as a line of that caller sized
    ``PAGE_ALIGN(nr_pages * sizeof(void *))`` plus the guard page: a ``vpages`` area takes the
    nearest unused such line (after it first) as its array, and the pfns are written there.
    Where none is found (or the line had no ``vpages``), the array is kmalloc'ed and the word
    ``vpages`` kept as printed text.  Returns how many arrays were linked.
    """
    ps = m.PAGE_SIZE
    shapes: dict[tuple[str, int], list[SnapshotArea]] = {}
    for a in areas:
        if a.flags & VM_ALLOC and a.nr_pages:
            shapes.setdefault((a.caller, a.size), []).append(a)
    used: set[int] = set()
    linked = 0
    for area in areas:
        if not (area.flags & VM_ALLOC and area.nr_pages):
            continue
        if area.pages_array is not None:
            if area.flags & VM_VPAGES:
                # ``vpages`` on an area whose array fits a page (kmalloc'ed above): the kernel
                # would not have vmalloc'ed it; the word is kept as printed text.
                area.flags &= ~VM_VPAGES
                area.extra_words += ("vpages",)
            continue
        nbytes = area.nr_pages * m.vm.ptr_size
        want = ((nbytes + ps - 1) & -ps) + ps
        holder = None
        if area.flags & VM_VPAGES and nbytes > ps:
            options = [h for h in shapes.get((area.caller, want), ())
                       if id(h) not in used and h is not area and h.nr_pages * ps >= nbytes]
            if options:
                holder = min(options, key=lambda h: (h.addr < area.end, abs(h.addr - area.end)))
        if holder is not None:
            used.add(id(holder))
            area.pages_array = ("vmalloc", holder.addr)
            m.vm.store_page_array(area)
            linked += 1
            continue
        if area.flags & VM_VPAGES:
            area.flags &= ~VM_VPAGES
            area.extra_words += ("vpages",)
        _kmalloc_array(m, area)
    return linked


def _line_kind(ln: VmallocinfoLine) -> tuple[int, int, tuple[str, ...], bool]:
    """What a line stands for: (the vmap_area's flags: lazily freed, vm_map_ram space or an
    area with a vm_struct; that vm_struct's VM_* flags, its extra words, whether it is static)."""
    if UNPURGED in ln.kinds:
        return VM_LAZY_FREE, 0, (), False
    if VM_MAP_RAM in ln.kinds:
        return VMAP_RAM, 0, (), False
    flags, extra = _flags(ln)
    return VM_VM_AREA, flags, extra, is_static_area(ln)


def _vmap_area(m: Machine, ln: VmallocinfoLine, addr: int) -> vmap_area:
    """The vmap_area a line stands for (:func:`_line_kind`), with its rebuilt vm_struct, whose
    kmalloc object is taken here, when it has one."""
    va_flags, flags, extra, static = _line_kind(ln)
    if va_flags != VM_VM_AREA:
        return vmap_area(addr, addr + ln.size, va_flags)
    handle = m.vm.kmalloc(m.vm.vm_struct_size, G.GFP_KERNEL, -1)
    area = SnapshotArea(addr=addr, size=ln.size, flags=flags, caller=ln.caller or "",
                        phys_addr=ln.phys or 0, handle=handle, extra_words=extra,
                        static=static, lineno=ln.lineno)
    return vmap_area(addr, addr + ln.size, VM_VM_AREA, area)


def _drop(m: Machine, va: vmap_area) -> None:
    if va.vm is not None:
        m.vm.kfree(va.vm.handle)


def _check_line(m: Machine, ln: VmallocinfoLine, source: str) -> None:
    where = f"{source}:{ln.lineno}"
    if ln.size <= 0:
        raise FormatError(where, "an area of size 0")
    low, high = space_bounds(m.PAGE_SIZE)
    if ln.start < low or ln.start + ln.size > high:
        # mm/vmalloc.c: the free space is [1, ULONG_MAX): va_end of an area ending at 2**64
        # would wrap to 0, and page 0 is NULL.  (A 32-bit end of 0x100000000 is fine here.)
        raise FormatError(where, f"area 0x{ln.start:x}-0x{ln.start + ln.size:x} reaches "
                                 f"{'page 0' if ln.start < low else 'the last page of the 64-bit address space'}"
                                 f": no kernel's vmap space holds it ([0x{low:x}, 0x{high:x}))")
    for word in (VM_MAP_RAM, UNPURGED):
        if word in ln.kinds and ln.nr_pages is not None:
            raise FormatError(where, f"pages= on a {word!r} line: such an area has no vm_struct, "
                                     f"and the kernel prints no pages= for it")
    if ln.start % m.PAGE_SIZE or ln.size % m.PAGE_SIZE:
        raise FormatError(where, f"area 0x{ln.start:x}+{ln.size} is not page aligned "
                                 f"(PAGE_SIZE {m.PAGE_SIZE})")
    if (ln.nr_pages or 0) > ln.size // m.PAGE_SIZE:
        raise FormatError(where, f"pages={ln.nr_pages} do not fit in an area of {ln.size} bytes")


# ---- replaying in bulk ---------------------------------------------------------------------------
# replay_snapshot of every line at its own address on a fresh machine does per line: a kmalloc
# for the vm_struct, the range into the address allocator, the frames, their mapping (which may
# take page-table frames), a kmalloc for the page array.  _replay_bulk does the same work in as
# few calls as give the same machine, object for object and frame for frame:
# - the ranges go into the allocator in address order at once (``insert_sorted`` where the
#   allocator has one: the same tree, see KvaRbtreeAllocator.insert_sorted);
# - the buddy allocator hands out frames in one order whoever asks, so the frames of many areas
#   come from one alloc_pages_bulk call (exactly the loop of the areas' calls) as long as nobody
#   else takes a page in between.  The only other takers are kmalloc when it opens a slab
#   (Kmalloc.kmalloc_run makes the kmallocs that need no page, in runs, and stops before one
#   that does) and the page tables of an area whose range has none yet (PageTables.
#   pte_table_present tells; its tables are built right after its frames, as map_range would
#   build them, with populate_range), and an area whose frames come from other nodes
#   (_populate on its own, in its turn): before each of these, the frames asked for so far;
# - mapping takes no page once the tables are there: all entries are written at the end, one
#   vectorised write per pte table (map_pages_bulk).
# Anything that could fail or differ on the way (a fault armed, areas already there,
# overlapping lines, RAM that might run short, lines that do not keep their address, no pages)
# takes the line-by-line path.  tests/test_snapshot_bulk.py compares the two machines whole.

def _bulk_ok(m: Machine, order: Sequence[VmallocinfoLine]) -> bool:
    """Whether _replay_bulk gives what the line-by-line replay gives: nothing can fail on the
    way (no fault armed, RAM for every frame, slab and table page), no area is there yet, and
    no two lines overlap."""
    hook = m.phys.fail_hook
    if hook is not None and (hook != m.faults.allow or m.faults.armed):
        return False
    if len(m.vmap_allocator) or not order:
        return False
    reach = 0
    for ln in order:
        if ln.start < reach:
            return False
        reach = ln.start + ln.size
    ps = m.PAGE_SIZE
    shift = m.PAGE_SHIFT
    ptr = m.vm.ptr_size
    pt = m.init_mm
    bits = pt.pte_table_shift  # the span of one pte table
    nr_pages = 0
    slab_bytes = 0
    tables = 0
    last_key = -1
    for ln in order:
        n = ln.nr_pages or 0
        nr_pages += n
        slab_bytes += 2 * m.vm.vm_struct_size + (n * ptr << 1 if n * ptr <= ps else 0)
        if n:
            first, last = ln.start >> bits, (ln.start + (n << shift) - 1) >> bits
            tables += last - max(first, last_key + 1) + 1 if last > last_key else 0
            last_key = max(last_key, last)
    # Pages kmalloc may take (objects round up to twice their size at most, and each class may
    # open a slab), and the tables a mapping may take (a pte table and the levels above it,
    # blocks of up to 4 frames on ARM).
    slab_pages = slab_bytes // ps + 64
    table_pages = (tables + 1) * pt.nr_levels * 4
    # Room for all of it in the zones kmalloc and the page tables take from (GFP_KERNEL: not
    # highmem), as if every frame came from there too: then no allocation can fail.
    lowmem = sum(m.phys.nr_free(node, zone) for node, zone in m.phys.zonelist(0, G.GFP_KERNEL))
    return nr_pages + slab_pages + table_pages <= lowmem


def _numa_on_node0(ln: VmallocinfoLine, nodes: int) -> bool:
    """Whether _alloc_frames takes every frame of ``ln`` from node 0's zonelist."""
    left = ln.nr_pages or 0
    for node, count in sorted(ln.numa.items()):
        take = min(count, left)
        if take and node < nodes:
            if node != 0:
                return False
            left -= take
    return True


class _Batch:
    """The page takers of a bulk replay in the line-by-line order: kmallocs, areas' frames,
    and the areas whose populating takes another page (barriers).  Kept in flat lists and
    arrays (a 100,000-line dump makes 200,000 kmallocs)."""

    def __init__(self) -> None:
        self.k_sizes: list[int] = []
        self.k_gfps: list[int] = []  # GFP_KERNEL: a vm_struct; with __GFP_ZERO: a page array
        self.k_owners: list[SnapshotArea] = []
        self.k_frames_before = array("q")  # how many frames entries come before each kmalloc
        self.f_owners: list[SnapshotArea] = []  # frames entries: the area, its pages, exec
        self.f_counts = array("q")
        self.f_exec = array("b")
        # Areas whose populating takes a page other than its frames, in order: (kmallocs and
        # frames entries before it, the area, its line, pages, exec, True: a page table to
        # install after its frames (taken with the others), False: _populate on its own
        # (frames from other nodes)).
        self.barriers: list[tuple[int, int, SnapshotArea, VmallocinfoLine, int, bool, bool]] = []
        # Frames taken, not yet handed to their areas and mapped (the mapping takes no page:
        # every table is there): all of them at the end of the replay.
        self.taken: list[npt.NDArray[np.int64]] = []


def _flush(m: Machine, b: _Batch, report: ReplayReport, short: list[int]) -> None:
    """Make the kmallocs, take the frames and populate the barrier areas, in the line-by-line
    order: the frames asked for between two page takers in one call."""
    slab = m.vm.slab
    sizes, gfps, owners, before = b.k_sizes, b.k_gfps, b.k_owners, b.k_frames_before
    k = 0
    f = 0
    barriers = b.barriers
    for i in range(len(barriers) + 1):
        last = i == len(barriers)
        if last:
            k_stop, f_stop = len(sizes), len(b.f_owners)
        else:
            k_stop, f_stop, area, ln, n, exec_, table = barriers[i]
        while k < k_stop:
            stop = min(k_stop, k + 1024)  # a window: a new slab comes every few dozen objects
            with m.vm.page_lock:
                got = slab.kmalloc_run(sizes[k:stop], gfps[k:stop], -1)
            for handle in got:
                _hand_over(owners[k], gfps[k], handle or 0)
                k += 1
            if k < stop:
                # This kmalloc takes a page: every frame asked for before it first.
                f = _take_frames(m, b, f, before[k])
                _hand_over(owners[k], gfps[k], m.vm.kmalloc(sizes[k], gfps[k], -1))
                k += 1
        f = _take_frames(m, b, f, f_stop)
        if last:
            break
        if table:
            # Its frames were just taken; the tables its mapping needs come next (map_range
            # would make the same _table_for calls); the entries are written at the end.
            with m.vm.pgtable_lock:
                if m.init_mm.populate_range(area.addr, n << m.PAGE_SHIFT):
                    raise AssertionError("snapshot bulk replay: no page for a page table")
        elif _populate(m, area, n, ln, exec_):
            report.pages += n
        else:
            area.snapshot_pages = n
            short.append(n)
            report.without_pages.append(ln.lineno)
    sizes.clear()
    gfps.clear()
    owners.clear()
    del before[:]
    barriers.clear()


def _hand_over(owner: SnapshotArea, gfp: int, handle: int) -> None:
    """A kmalloc of the batch to its area: the page array (``__GFP_ZERO``; none on failure) or
    the vm_struct (0 on failure)."""
    if gfp & _GFP_ZERO:
        if handle:
            owner.pages_array = ("kmalloc", handle)
    else:
        owner.handle = handle


def _take_frames(m: Machine, b: _Batch, first: int, stop: int) -> int:
    """The frames of entries ``first:stop`` in one page allocator call; returns ``stop``."""
    if stop <= first:
        return first
    total = sum(b.f_counts[first:stop])
    pfns = m.vm.alloc_pages(_GFP_VMALLOC, total, 0, "vmalloc")
    if len(pfns) != total:  # _bulk_ok leaves RAM for all of them
        raise AssertionError("snapshot bulk replay: the page allocator fell short")
    b.taken.append(pfns)
    return stop


def _give_frames(m: Machine, b: _Batch, report: ReplayReport) -> None:
    """Hand the frames taken to their areas (as _populate does), give the frames of areas that
    are not VM_ALLOC to their owner kind, and map them all: one write per pte table."""
    owners = b.f_owners
    if not owners:
        return
    pfns = np.concatenate(b.taken) if len(b.taken) > 1 else b.taken[0]
    b.taken.clear()
    total = len(pfns)
    shift = m.PAGE_SHIFT
    counts = np.frombuffer(b.f_counts, dtype=np.int64).copy()  # (the array is emptied below)
    firsts = np.fromiter((area.addr >> shift for area in owners), dtype=np.int64,
                         count=len(owners))
    # Page i is page (i - the offset of its area) of its area.
    offsets = np.cumsum(counts) - counts
    vpns = np.repeat(firsts - offsets, counts) + np.arange(total, dtype=np.int64)
    execs = np.repeat(np.frombuffer(b.f_exec, dtype=np.int8).astype(bool), counts)
    others: list[tuple[int, int]] = []
    pos = 0
    for area, n in zip(owners, b.f_counts):
        own = pfns[pos:pos + n].copy()
        area.pages = own
        area.nr_pages = n
        flags = area.flags
        if not flags & VM_ALLOC:
            others.append((pos, n))
            area.mapped = own
        elif flags & VM_MAP:
            area.mapped = own
        pos += n
    report.pages += total
    if others:
        m.phys.set_owner(np.concatenate([pfns[p:p + n] for p, n in others]), "other")
    with m.vm.pgtable_lock:
        for exec_ in (False, True):
            sel = execs if exec_ else ~execs
            if not sel.any():
                continue
            prot = m.vm.pgprot("PAGE_KERNEL_EXEC" if exec_ else "PAGE_KERNEL")
            if not m.init_mm.map_pages_bulk(vpns[sel], pfns[sel], prot):
                # An entry in use or an odd address: map_range area by area, as before (every
                # table is there, so no page is taken).
                for area, ex in zip(owners, b.f_exec):
                    if bool(ex) == exec_ and m.init_mm.map_range(area.addr, area.pages, prot):
                        raise AssertionError("snapshot bulk replay: a mapping failed")
    owners.clear()
    del b.f_counts[:]
    del b.f_exec[:]


def _tables_present(m: Machine, addr: int, n: int, known: set[int]) -> bool:
    """Whether mapping ``n`` pages at ``addr`` takes no page-table frame (``known``: pte
    tables seen present, by their number)."""
    pt = m.init_mm
    bits = pt.pte_table_shift
    first = addr >> bits
    last = (addr + (n << m.PAGE_SHIFT) - 1) >> bits
    for key in range(first, last + 1):
        if key in known:
            continue
        if not pt.pte_table_present(max(key << bits, addr)):
            return False
        known.add(key)
    return True


def _replay_bulk(m: Machine, order: Sequence[VmallocinfoLine], source: str,
                 report: ReplayReport) -> None:
    """replay_snapshot of ``order`` (sorted, every line kept, pages) when _bulk_ok says so."""
    vstart, vend = vmalloc_bounds(m)
    fixed = m.extra_vm_ranges
    lay = m.layout
    nodes = len(m.phys.nodes)
    ptr = m.vm.ptr_size
    ps = m.PAGE_SIZE
    vmsz = m.vm.vm_struct_size
    kernel_gfp = G.GFP_KERNEL
    zero_gfp = G.GFP_KERNEL | _GFP_ZERO
    shift = m.PAGE_SHIFT
    table_bits = m.init_mm.pte_table_shift
    mod_lo, mod_hi = lay.modules_start, lay.modules_end
    # What a line's caller and words make of it: (va flags, VM_* flags, extra words, static).
    kinds_cache: dict[tuple[str | None, tuple[str, ...], tuple[str, ...]],
                      tuple[int, int, tuple[str, ...], bool]] = {}
    vas: list[vmap_area] = []
    built: list[SnapshotArea] = []
    known: set[int] = set()  # pte tables seen present, by number
    b = _Batch()
    k_sizes, k_gfps, k_owners, k_before = b.k_sizes, b.k_gfps, b.k_owners, b.k_frames_before
    f_owners, f_counts, f_exec = b.f_owners, b.f_counts, b.f_exec
    short: list[int] = []
    for ln in order:
        addr = ln.start
        end = addr + ln.size
        ckey = (ln.caller, ln.kinds, ln.unknown_words)
        kind = kinds_cache.get(ckey)
        if kind is None:
            kind = kinds_cache[ckey] = _line_kind(ln)
        report.placed += 1
        if not (vstart <= addr and end <= vend):
            fr = FixedRange(addr, end, _fixed_why(m, ln))
            fixed.append(fr)
            report.fixed.append(fr)
        if kind[0] != VM_VM_AREA:
            vas.append(vmap_area(addr, end, kind[0]))
            continue
        # _vmap_area: the vm_struct (its kmalloc is made in order, with the batch's).
        owner = SnapshotArea(addr=addr, size=ln.size, flags=kind[1], caller=ln.caller or "",
                             phys_addr=ln.phys or 0, handle=0, extra_words=kind[2],
                             static=kind[3], lineno=ln.lineno)
        vas.append(vmap_area(addr, end, VM_VM_AREA, owner))
        built.append(owner)
        k_sizes.append(vmsz)
        k_gfps.append(kernel_gfp)
        k_owners.append(owner)
        k_before.append(len(f_owners))
        n = ln.nr_pages or 0
        if not n:
            continue
        # _populate
        exec_ = mod_hi > mod_lo and mod_lo <= addr < mod_hi
        numa = ln.numa
        if not numa or (len(numa) == 1 and 0 in numa) or _numa_on_node0(ln, nodes):
            f_owners.append(owner)
            f_counts.append(n)
            f_exec.append(exec_)
            key = addr >> table_bits
            last_key = (addr + (n << shift) - 1) >> table_bits
            if not (key in known and last_key == key) and not _tables_present(m, addr, n, known):
                # Its mapping takes a table frame after its frames: a barrier.
                b.barriers.append((len(k_sizes), len(f_owners), owner, ln, n, exec_, True))
                known.update(range(key, last_key + 1))
            if kind[1] & VM_ALLOC and n * ptr <= ps:
                k_sizes.append(n * ptr)
                k_gfps.append(zero_gfp)
                k_owners.append(owner)
                k_before.append(len(f_owners))
            continue
        # Frames from other nodes: _populate on its own, in its turn.
        b.barriers.append((len(k_sizes), len(f_owners), owner, ln, n, exec_, False))
    # The ranges into the address allocator (no page is taken there), in address order.
    bulk_insert = getattr(m.vmap_allocator, "insert_sorted", None)
    with m.vmlist_lock.write():
        first = 0
        for i, va in enumerate(vas):
            if va.flags & VM_LAZY_FREE:  # a lazily freed range also joins the purge list
                _insert_run(m, order, vas, first, i, source, bulk_insert)
                if not m.vm.reserve_vmap_area(va):
                    _overlap(m, order[i], source)
                first = i + 1
        _insert_run(m, order, vas, first, len(vas), source, bulk_insert)
    _flush(m, b, report, short)
    _give_frames(m, b, report)
    report.arrays_linked = _link_page_arrays(m, built)
    m.vm_stats["snapshot_areas"] += report.placed
    if short:
        m.printk(KERN_WARNING, f"snapshot: RAM too small for the pages of {len(short)} areas "
                               f"({sum(short)} pages): their ranges are reserved without pages")


def _overlap(m: Machine, ln: VmallocinfoLine, source: str) -> None:
    hit = m.vmap_allocator.find_containing(ln.start)
    raise FormatError(f"{source}:{ln.lineno}",
                      f"area 0x{ln.start:x}-0x{ln.end:x} overlaps another area"
                      + (f" at 0x{hit[0]:x}" if hit else ""))


def _insert_run(m: Machine, order: Sequence[VmallocinfoLine], vas: list[vmap_area], first: int,
                stop: int, source: str,
                bulk_insert: Callable[[Iterable[tuple[int, int, object]]], int] | None) -> None:
    """Put ``vas[first:stop]`` (the areas of ``order[first:stop]``) into the address allocator
    in order (FormatError at an overlap)."""
    if stop <= first:
        return
    if bulk_insert is not None:
        done = bulk_insert((vas[i].va_start, vas[i].va_end - vas[i].va_start, vas[i])
                           for i in range(first, stop))
        if done < stop - first:
            _overlap(m, order[first + done], source)
        return
    for i in range(first, stop):
        if not m.vm.reserve_vmap_area(vas[i]):
            _overlap(m, order[i], source)


def _sorted_lines(lines: Sequence[VmallocinfoLine]) -> list[VmallocinfoLine]:
    """``lines`` by (start, lineno): a dump is printed in address order, so usually as given."""
    it = iter(lines)
    prev = next(it, None)
    for ln in it:
        assert prev is not None
        if ln.start < prev.start or (ln.start == prev.start and ln.lineno < prev.lineno):
            return sorted(lines, key=lambda x: (x.start, x.lineno))
        prev = ln
    return list(lines)


def _check_lines(m: Machine, order: Sequence[VmallocinfoLine], source: str) -> None:
    """_check_line of each line: the usual line (page aligned, pages that fit, inside the
    space) passes a few comparisons; any other gets _check_line's verdict."""
    low, high = space_bounds(m.PAGE_SIZE)
    mask = m.PAGE_SIZE - 1
    shift = m.PAGE_SHIFT
    for ln in order:
        start, size, n = ln.start, ln.size, ln.nr_pages
        if (size > 0 and low <= start and start + size <= high and not (start | size) & mask
                and (n is None or (n <= size >> shift and VM_MAP_RAM not in ln.kinds
                                   and UNPURGED not in ln.kinds))):
            continue
        _check_line(m, ln, source)


def replay_snapshot(m: Machine, lines: Sequence[VmallocinfoLine], source: str = "<vmallocinfo>",
                    keep: Callable[[VmallocinfoLine], bool] | None = None,
                    pages: bool = True) -> ReplayReport:
    """Register ``lines`` on ``m`` (see the module doc); the report says what happened.

    ``keep`` (default: every line) decides which lines keep their address; the others are placed
    afterwards, in address order, at the lowest address of ``[VMALLOC_START, VMALLOC_END)`` where
    they fit (with the VM_IOREMAP alignment for ioremap lines), as a fresh boot would allocate
    them; lazily freed lines that do not keep their address are dropped (a purge frees them).
    ``pages=False`` reserves the ranges without frames.  FormatError names a line that cannot be
    a kernel area (unaligned, overlapping, more pages than room).
    """
    report = ReplayReport()
    vstart, vend = vmalloc_bounds(m)
    fixed = m.extra_vm_ranges
    built: list[SnapshotArea] = []
    order = _sorted_lines(lines)
    _check_lines(m, order, source)
    if keep is None and pages and _bulk_ok(m, order):
        _replay_bulk(m, order, source, report)
        return report
    marks = [keep is None or keep(ln) for ln in order]
    plan = [ln for ln, k in zip(order, marks) if k] + [ln for ln, k in zip(order, marks) if not k]
    nkept = sum(marks)
    short: list[int] = []
    for i, ln in enumerate(plan):
        kept = i < nkept
        if not kept and UNPURGED in ln.kinds:
            report.dropped.append((ln.lineno, "lazily freed: a purge frees it"))
            continue
        va = _vmap_area(m, ln, ln.start)
        with m.vmlist_lock.write():
            if kept:
                if not m.reserve_vmap_area(va):
                    _drop(m, va)
                    hit = m.vmap_allocator.find_containing(ln.start)
                    raise FormatError(f"{source}:{ln.lineno}",
                                      f"area 0x{ln.start:x}-0x{ln.end:x} overlaps another area"
                                      + (f" at 0x{hit[0]:x}" if hit else ""))
                addr: int | None = ln.start
            else:
                align = m.PAGE_SIZE
                if "ioremap" in ln.kinds:
                    align = max(m.ioremap_align(ln.size - m.PAGE_SIZE), m.PAGE_SIZE)
                addr = m.vmap_allocator.alloc(ln.size, align, vstart, vend, va)
                if addr is not None:
                    va.va_start, va.va_end = addr, addr + ln.size
        if addr is None:
            _drop(m, va)
            report.unplaced.append((ln.lineno, f"{ln.size} bytes fit nowhere in "
                                               f"0x{vstart:x}-0x{vend:x}"))
            continue
        owner = va.vm
        if owner is not None:
            owner.addr = addr
        report.placed += 1
        if addr != ln.start:
            report.relocated.append((ln.lineno, ln.start, addr))
        end = addr + ln.size
        if not (vstart <= addr and end <= vend):
            fr = FixedRange(addr, end, _fixed_why(m, ln))
            fixed.append(fr)
            report.fixed.append(fr)
        if isinstance(owner, SnapshotArea):
            built.append(owner)
        n = ln.nr_pages or 0
        if n and isinstance(owner, SnapshotArea):
            lay = m.layout
            exec_ = lay.modules_end > lay.modules_start and lay.modules_start <= addr < lay.modules_end
            if pages and _populate(m, owner, n, ln, exec_):
                report.pages += n
            else:
                # The range stays reserved with no frames (nr_pages 0, so vfree and check()
                # see a consistent area); the snapshot's count is kept in snapshot_pages.
                owner.snapshot_pages = n
                if pages:
                    short.append(n)
                report.without_pages.append(ln.lineno)
    report.arrays_linked = _link_page_arrays(m, built)
    m.vm_stats["snapshot_areas"] += report.placed
    if short:
        m.printk(KERN_WARNING, f"snapshot: RAM too small for the pages of {len(short)} areas "
                               f"({sum(short)} pages): their ranges are reserved without pages")
    if report.relocated:
        m.printk(KERN_INFO, f"snapshot: {len(report.relocated)} areas that did not keep their "
                            f"address placed again by lowest-address first fit")
    return report


def machine_from_snapshot(cls: type[M], vmallocinfo_text: str | VmallocinfoSnapshot,
                          meminfo_text: str | Mapping[str, int] | None = None,
                          arch: str | None = None, cmdline: str = "",
                          **machine_args: Any) -> tuple[M, SnapshotLayout, ReplayReport]:
    """Boot a machine of class ``cls`` for the snapshot and replay every area on it.

    Besides the Machine's arguments, ``source=`` and ``meminfo_source=`` name the texts in error
    messages.  ``ram=`` and ``nodes=`` override what the snapshot and meminfo suggest.  Returns
    the machine, the layout read off the snapshot and the :class:`ReplayReport`; the areas kept
    outside the vmalloc range are the machine's ``extra_vm_ranges``; everything inferred is in
    ``m.dmesg()``.  ``pyvmalloc.Machine.from_snapshot`` is the public spelling.
    """
    source = str(machine_args.pop("source", "<vmallocinfo>"))
    meminfo_source = str(machine_args.pop("meminfo_source", "<meminfo>"))
    # Hundreds of thousands of objects are made here and none is garbage: the cyclic
    # collector's passes over them (a third of the time of a 100,000-line dump) find nothing.
    with gc_paused():
        snapshot = read_snapshot(vmallocinfo_text, source)
        meminfo = read_meminfo(meminfo_text, meminfo_source)
        layout = snapshot_layout(snapshot, meminfo, arch, cmdline,
                                 ram=machine_args.pop("ram", None),
                                 nodes=machine_args.pop("nodes", None),
                                 kernel=machine_args.pop("kernel", None))
        m = boot_snapshot_machine(cls, layout, **machine_args)
        report = replay_snapshot(m, snapshot.lines, snapshot.source)
    return m, layout, report
