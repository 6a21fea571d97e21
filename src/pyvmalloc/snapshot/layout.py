"""Where a running kernel put its areas, read from a snapshot: arch guess, KASLR base, vmalloc
bounds, module range and holes (used by Machine.from_snapshot and by the analysis layer above).

Everything here reads addresses only (no model): the arch facts used are the few constants named
in comments, so that a snapshot of an arch the model has no profile for still gets its answers.
When the machine model's arch profiles exist, pass their ``VMALLOC_START/END`` as ``bounds`` and
these guesses are not used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pyvmalloc.arch.profiles import PROFILES
from pyvmalloc.arch.boot import arm64_layout
from pyvmalloc.errors import FormatError
from pyvmalloc.formats.vmallocinfo import UNPURGED, VM_MAP_RAM, VmallocinfoLine, VmallocinfoSnapshot
from pyvmalloc.versions import (
    CHANGES,
    KNOWN_VERSIONS,
    KernelVersion,
    arm_vmalloc_end,
    has,
    parse_version,
    resolve,
)

__all__ = [
    "ARCH_NAMES",
    "KNOWN_ARCHES",
    "LAYOUT_ONLY_ARCHES",
    "Bounds",
    "HoleStats",
    "KaslrGuess",
    "KernelRange",
    "check_arch",
    "find_holes",
    "fragmentation_index",
    "guess_arch",
    "hole_stats",
    "infer_bounds",
    "infer_kaslr",
    "infer_kernel",
    "infer_page_size",
    "is_static_area",
    "layout_contradiction",
    "module_range",
]

KiB = 1 << 10
GiB = 1 << 30
TiB = 1 << 40

# The machine profiles' names; the 32-bit ones print 8 hex digits.
ARCH_NAMES: tuple[str, ...] = tuple(PROFILES)
# 32-bit arches whose dumps are read (bounds, holes, module area) but that have no machine
# profile: the model cannot boot them, so what-if answers say so.
#  ppc32: arch/powerpc/include/asm/book3s/32/pgtable.h and nohash/32/pgtable.h (read in
#    torvalds/linux 06f52524, a 5.5/5.6-era tree): VMALLOC_OFFSET 16 MiB, VMALLOC_START =
#    (high_memory + VMALLOC_OFFSET) & ~(VMALLOC_OFFSET - 1) -- with STRICT_KERNEL_RWX and
#    MODULES on book3s/32, high_memory is first rounded up to 256 MiB: still 16 MiB aligned;
#    VMALLOC_END = ioremap_bot, or ALIGN_DOWN(ioremap_bot, PAGE_SIZE << KASAN_SHADOW_SCALE_SHIFT)
#    with CONFIG_KASAN_VMALLOC (versions.CHANGES "ppc32_kasan_vmalloc_end"). ioremap_bot starts
#    at IOREMAP_TOP (PKMAP_BASE with HIGHMEM, else FIXADDR_START) and early ioremaps take it
#    downwards before mem_init: those have no vm_struct and are not in /proc/vmallocinfo, so the
#    top of the range is the device's and is read from meminfo's VmallocTotal.  Modules: in the
#    vmalloc area, then MODULES_VADDR..MODULES_END = PAGE_OFFSET - 256 MiB .. PAGE_OFFSET on
#    book3s/32 with STRICT_KERNEL_RWX (5.10, versions.CHANGES "ppc32s_module_segment") and on
#    the 8xx (5.13, "ppc32_modules_near_text"). ioremap never goes below PAGE_OFFSET.
#  mips32: arch/mips/include/asm/pgtable-32.h: VMALLOC_START = MAP_BASE = CKSSEG (KSEG2,
#    0xc0000000, whatever the RAM), VMALLOC_END = PKMAP_BASE - 2 * PAGE_SIZE with HIGHMEM, else
#    FIXADDR_START - 2 * PAGE_SIZE; no MODULES_VADDR on 32-bit (pgtable-64.h has one): modules
#    are vmalloc'ed in that range.  ioremap of a low physical address returns a KSEG1 address
#    without an area, so a MIPS dump has nothing below 0xc0000000.
LAYOUT_ONLY_ARCHES: dict[str, str] = {
    "ppc32": "32-bit PowerPC (book3s/32, 8xx, 40x/44x/e500): vmalloc from high_memory + 16 MiB "
             "up to ioremap_bot",
    "mips32": "32-bit MIPS: vmalloc in KSEG2 from 0xc0000000",
}
KNOWN_ARCHES: tuple[str, ...] = (*ARCH_NAMES, *LAYOUT_ONLY_ARCHES)
_32BIT = frozenset([*(name for name, p in PROFILES.items() if p.bits == 32), *LAYOUT_ONLY_ARCHES])
_PPC32_VMALLOC_OFFSET = 16 << 20
_PPC32_MODULES_SIZE = 256 << 20
# arch/powerpc/Kconfig PAGE_OFFSET: 0xc0000000 unless ADVANCED_OPTIONS changes it; 0x80000000
# runs in the field (MikroTik RB1120, Linux 3.3.5: its oops in tests/data/dumps shows kernel text
# at 0x80000000 and __get_vm_area_node(..., 0xe1000000, 0xedffc000) from __ioremap_caller).
_PPC32_PAGE_OFFSET = 0xC0000000
_PPC32_PAGE_OFFSETS = (_PPC32_PAGE_OFFSET, 0x80000000)
_MIPS32_VMALLOC_START = 0xC0000000
# Callers only a ppc32 kernel has (arch/powerpc: PCI bridges, MPIC, CPM/QE, early ioremap).
# Not __ioremap_caller: arch/powerpc/mm/pgtable_32.c and arch/x86/mm/ioremap.c both have one.
_PPC_ONLY_CALLERS = frozenset({"__ioremap_at", "pci_process_bridge_OF_ranges",
                               "pcibios_map_io_space", "mpic_alloc", "fsl_add_bridge",
                               "_mpic_map_mmio", "_mpic_map_mmio.constprop.0",
                               "setup_indirect_pci", "cpm_muram_init", "qe_reset", "udbg_init_",
                               "mpc85xx_setup_arch", "ioremap_bot", "early_ioremap_range",
                               # arch/powerpc/lib/code-patching.c: the per-CPU text poke area
                               "text_area_cpu_up",
                               "pmac_feature_init", "probe_one_macio", "find_via_cuda",
                               "kasan_init_region"})
# Name prefixes of functions only arch/powerpc (and its platform code) has.
_PPC_ONLY_PREFIXES = ("mpc8", "mpic_", "_mpic_", "pmac_", "ppc4xx_", "ppc44x_", "cpm2_",
                      "ipic_", "fsl_pci_")
# Callers only a MIPS kernel has.
_MIPS_ONLY_CALLERS = frozenset({"r4k_cache_init", "plat_mem_setup", "ath79_setup",
                                "ralink_of_remap", "ltq_soc_init", "bcm47xx_setup",
                                "mips_cpc_probe", "mips_cm_probe", "plat_of_remap_node"})
# Name prefixes of functions only arch/mips (and its SoC code) has.
_MIPS_ONLY_PREFIXES = ("ath79_", "ralink_", "rt305x_", "rt3883_", "mt7620_", "ltq_",
                       "bcm47xx_", "bcm63xx_", "r4k_", "mips_cm_", "mips_cpc_")
# The lowest kernel address of each 64-bit arch (the canonical upper half).
_KERNEL_FLOOR = {
    "x86_64": 0xFFFF800000000000,        # 4-level paging, 48-bit canonical addresses
    "x86_64-la57": 0xFF00000000000000,   # 5-level paging, 57-bit canonical addresses
    "arm64": 0xFFF0000000000000,         # up to 52-bit kernel VA
}


def _fixed_vmalloc_start(name: str) -> int:
    """VMALLOC_START of a 64-bit profile: fixed there (only 32-bit ones follow high_memory)."""
    start = PROFILES[name].vmalloc_start
    assert start is not None, f"the {name} profile has no fixed VMALLOC_START"
    return start


# x86_64: the profiles' fixed (non-KASLR) vmalloc areas, plus 2.6.22's base
# (include/asm-x86_64/pgtable.h: 0xffffc20000000000, also 32 TiB).
_X86_VMALLOC_SIZE = {name: PROFILES[name].vmalloc_end + 1 - _fixed_vmalloc_start(name)
                     for name in ("x86_64", "x86_64-la57")}
_X86_VMALLOC_BASES = (_fixed_vmalloc_start("x86_64"), 0xFFFFC20000000000)
_X86_LA57_BASE = _fixed_vmalloc_start("x86_64-la57")
_X86_FIXED_BASES = (*_X86_VMALLOC_BASES, _X86_LA57_BASE)
# arch/x86/mm/kaslr.c (CONFIG_RANDOMIZE_MEMORY, 4.8+): the direct map, vmalloc and vmemmap bases
# are placed at random, PUD (1 GiB) aligned, in a window starting at __PAGE_OFFSET_BASE
# (0xffff880000000000; 0xffff888000000000 from 4.20).
_X86_KASLR_WINDOW = (0xFFFF880000000000, 0xFFFFFE0000000000)
# x86_64 module area: MODULES_VADDR = __START_KERNEL_map (0xffffffff80000000) +
# KERNEL_IMAGE_SIZE (512 MiB, or 1 GiB with RANDOMIZE_BASE), MODULES_END from the profile.
_X86_KERNEL_MAP = 0xFFFFFFFF80000000
_X86_MODULES_END = PROFILES["x86_64"].modules_end or 0
# ARM: MODULES_VADDR = PAGE_OFFSET - 16 MiB, MODULES_END = PAGE_OFFSET - PMD_SIZE with HIGHMEM
# (arch/arm/include/asm/memory.h); PAGE_OFFSET is 0xc0000000 for the 3G/1G split, 0x80000000
# or 0x40000000 for the others.
_ARM = PROFILES["arm"]
_ARM_PAGE_OFFSETS = (_ARM.page_offset, 0x80000000, 0x40000000)
_ARM_MODULES_SIZE = _ARM.page_offset - (_ARM.modules_start or 0)
_ARM_MODULES_GAP = _ARM.page_offset - (_ARM.modules_end or 0)
# 32-bit ARM and i386 align VMALLOC_START on VMALLOC_OFFSET (8 MiB) above high_memory
# (arch/arm/include/asm/pgtable.h, arch/x86/include/asm/pgtable_32_areas.h).
_VMALLOC_OFFSET = _ARM.vmalloc_offset
# Functions of arch/arm/mm/mmu.c (and ARM ioremap) that only an ARM kernel has.
_ARM_ONLY_CALLERS = frozenset({"iotable_init", "map_lowmem", "pmd_empty_section_gap",
                               "pci_reserve_io", "debug_ll_io_init", "__arm_ioremap",
                               "__arm_ioremap_caller", "__arm_ioremap_pfn_caller"})
# Callers that only an x86 kernel has (ACPI and HPET on PCs; ioremap_nocache is a function on
# x86 only, a macro on ARM, ppc and MIPS).  __ioremap_caller is also ppc32's (see above).
_X86_ONLY_CALLERS = frozenset({"acpi_os_map_memory", "acpi_os_map_iomem",
                               "hpet_enable", "hpet_late_init", "ioremap_nocache"})
# i386 PAGE_OFFSET for each VMSPLIT choice (arch/x86/Kconfig: 3G, 3G_OPT, 2G, 2G_OPT, 1G).
_I386_PAGE_OFFSETS = (0xC0000000, 0xB0000000, 0x80000000, 0x78000000, 0x40000000)


@dataclass(frozen=True)
class Bounds:
    """An address range ``[start, end)``; ``end`` is the kernel's VMALLOC_END value, ``how`` says
    where the numbers came from (given, arch constant, inferred from the snapshot and meminfo)."""

    start: int
    end: int
    how: str
    exact: bool = True  # False when VMALLOC_END is only the last area's end (a lower bound)

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class KaslrGuess:
    """The randomised x86_64 ``vmalloc_base`` read off a snapshot, and how."""

    vmalloc_base: int
    reason: str


@dataclass(frozen=True)
class HoleStats:
    """Free gaps of a range: how many, their total and the largest, in bytes."""

    count: int
    total: int
    largest: int


def _starts(snapshot: VmallocinfoSnapshot) -> list[int]:
    return [ln.start for ln in snapshot.lines]


def is_static_area(line: VmallocinfoLine) -> bool:
    """True for areas the kernel placed at fixed addresses, not allocated from the vmalloc space.

    Early areas (``vm_area_add_early``: ARM ``iotable_init``, ``pmd_empty_section_gap``,
    ``pci_reserve_io``; percpu ``pcpu_get_vm_areas``) record the function itself as the caller,
    so ``%pS`` prints ``+0x0``; vendor flag words (``lowmem``) mark vendor maps.
    """
    if line.caller_at_entry:
        return True
    return bool(line.unknown_words and set(line.unknown_words) & set(line.kinds))


def guess_arch(snapshot: VmallocinfoSnapshot,
               vmalloc_total_kb: int | None = None) -> tuple[str | None, str]:
    """Guess the arch from the addresses; return (profile name or None, the reason in words).

    ``vmalloc_total_kb`` (meminfo's VmallocTotal) rules out layouts it cannot belong to."""
    if not snapshot.lines:
        return None, "no areas to read an arch from"
    if not snapshot.addresses_trusted:
        return None, (f"addresses are hashed ({snapshot.address_bits}-bit pointers): "
                      f"the arch cannot be read from them")
    high = max(ln.end for ln in snapshot.lines)
    if snapshot.address_bits == 32 and high <= 1 << 32:
        return _guess_32bit(snapshot, vmalloc_total_kb)
    low = [s for s in _starts(snapshot) if s < _X86_KERNEL_MAP]
    if any(s >= _X86_KERNEL_MAP for s in _starts(snapshot)):
        return "x86_64", "areas at 0xffffffff8..., the x86_64 kernel-image/module map"
    if not low:
        return None, "no area below 0xffffffff80000000 to read an arch from"
    first = min(low)
    for base in _X86_VMALLOC_BASES:
        if base <= first < base + _X86_VMALLOC_SIZE["x86_64"]:
            return "x86_64", f"areas from 0x{first:x}, in the x86_64 vmalloc area at 0x{base:x}"
    if _X86_LA57_BASE <= first < _X86_LA57_BASE + _X86_VMALLOC_SIZE["x86_64-la57"]:
        return "x86_64-la57", f"areas from 0x{first:x}, in the 5-level x86_64 vmalloc area"
    if _X86_KASLR_WINDOW[0] <= first < _X86_KASLR_WINDOW[1]:
        return "x86_64", (f"areas from 0x{first:x}, inside the x86_64 KASLR window "
                          f"0x{_X86_KASLR_WINDOW[0]:x}-0x{_X86_KASLR_WINDOW[1]:x} "
                          f"(randomised vmalloc_base)")
    if 0xFFFF000000000000 <= first < _X86_KASLR_WINDOW[0] or 0xFFFFFF8000000000 <= first:
        return "arm64", f"areas from 0x{first:x}, the arm64 vmalloc/module region"
    return None, f"64-bit areas from 0x{first:x} match no known layout"


# ---- which 32-bit layouts a dump's addresses fit ---------------------------------------------------
# The layouts a 32-bit dump can come from, each with the PAGE_OFFSET values its kernel offers
# (the first is the default).  Only the addresses of dynamic areas are held against a layout:
# static maps (iotable_init, vendor lowmem words) sit where the board put them.
_LAYOUT_ORDER = ("arm", "i386", "ppc32", "mips32")


def _dynamic(snapshot: VmallocinfoSnapshot) -> list[VmallocinfoLine]:
    return [ln for ln in snapshot.lines if not is_static_area(ln)]


def _is_ioremap(line: VmallocinfoLine) -> bool:
    return "ioremap" in line.kinds or line.phys is not None


def _contradiction_at(snapshot: VmallocinfoSnapshot, arch: str, page_offset: int) -> str | None:
    """Why the dynamic areas cannot lie where ``arch`` with this PAGE_OFFSET maps, or None."""
    dyn = _dynamic(snapshot)
    if not dyn:
        return None
    if arch == "mips32":
        # pgtable-32.h: nothing mapped below KSEG2 (KSEG0/KSEG1 are unmapped windows).
        low = min(dyn, key=lambda ln: ln.start)
        if low.start < _MIPS32_VMALLOC_START:
            return (f"line {low.lineno}: 0x{low.start:08x} is below KSEG2 0xc0000000, where "
                    f"32-bit MIPS maps nothing")
        return None
    if arch == "arm":
        # memory.h: MODULES_VADDR = PAGE_OFFSET - 16M is TASK_SIZE (user space below); only
        # module_alloc uses [MODULES_VADDR, PAGE_OFFSET) (ioremap never does); pgtable.h:
        # VMALLOC_START = ALIGN(high_memory + 8M, 8M) > PAGE_OFFSET + 8M - 1 and VMALLOC_END
        # 0xff800000 (0xff000000 before 4.2) is the highest end.
        floor, offset, top = page_offset - (16 << 20), _VMALLOC_OFFSET, 0xFF800000
    elif arch == "ppc32":
        # book3s/32 and 8xx module segment: PAGE_OFFSET - 256M (module_alloc only); VMALLOC_START
        # = ALIGN(high_memory + 16M, 16M) (see LAYOUT_ONLY_ARCHES).
        floor, offset, top = page_offset - _PPC32_MODULES_SIZE, _PPC32_VMALLOC_OFFSET, 1 << 32
    else:  # i386: pgtable_32_areas.h, modules in the vmalloc area, VMALLOC_START as ARM's.
        floor, offset, top = page_offset, _VMALLOC_OFFSET, 1 << 32
    for ln in dyn:
        if ln.start < floor:
            return (f"line {ln.lineno}: 0x{ln.start:08x} is below 0x{floor:08x}, the lowest "
                    f"kernel address of {arch} with PAGE_OFFSET 0x{page_offset:08x}")
        if ln.start < page_offset and _is_ioremap(ln):
            return (f"line {ln.lineno}: an ioremap at 0x{ln.start:08x}, below PAGE_OFFSET "
                    f"0x{page_offset:08x}, where {arch} puts only modules")
        if page_offset <= ln.start < page_offset + offset:
            return (f"line {ln.lineno}: 0x{ln.start:08x} is within {offset >> 20} MiB of "
                    f"PAGE_OFFSET 0x{page_offset:08x}, below any {arch} VMALLOC_START")
        if ln.end > top:
            return (f"line {ln.lineno}: 0x{ln.end:08x} is above {arch}'s highest VMALLOC_END "
                    f"0x{top:08x}")
    return None


def _ppc32_page_offset(snapshot: VmallocinfoSnapshot) -> int:
    """The ppc32 PAGE_OFFSET the dump fits (the default when it fits none or both)."""
    for page_offset in _PPC32_PAGE_OFFSETS:
        if _contradiction_at(snapshot, "ppc32", page_offset) is None:
            return page_offset
    return _PPC32_PAGE_OFFSET


def _page_offsets(arch: str) -> tuple[int, ...]:
    return {"arm": _ARM_PAGE_OFFSETS, "i386": _I386_PAGE_OFFSETS, "ppc32": _PPC32_PAGE_OFFSETS,
            "mips32": (_MIPS32_VMALLOC_START,)}[arch]


def _arm_total_contradiction(snapshot: VmallocinfoSnapshot, total_kb: int) -> str | None:
    """ARM's VMALLOC_END is a constant (versions.arm_vmalloc_end: 0xff800000 from 4.2), so
    meminfo's VmallocTotal fixes VMALLOC_START = VMALLOC_END - VmallocTotal; a dynamic area
    above PAGE_OFFSET below it cannot be ARM's.  Only for a dump the words date to 4.2+."""
    kernels, _ = infer_kernel(snapshot, arch="arm")
    since = parse_version(CHANGES["arm_vmalloc_end_ff800000"].since)
    if kernels.lo.series() < since.series():
        return None
    start = arm_vmalloc_end(kernels.lo) - total_kb * KiB
    for ln in _dynamic(snapshot):
        if _arm_page_offset(snapshot) <= ln.start < start:
            return (f"line {ln.lineno}: 0x{ln.start:08x} is below ARM's VMALLOC_START "
                    f"0x{start:08x} = VMALLOC_END 0x{arm_vmalloc_end(kernels.lo):08x} - "
                    f"VmallocTotal {total_kb} kB ({kernels})")
    return None


def layout_contradiction(snapshot: VmallocinfoSnapshot, arch: str, default_only: bool = False,
                         vmalloc_total_kb: int | None = None) -> str | None:
    """Why ``snapshot``'s addresses cannot come from 32-bit ``arch`` (arm, i386, ppc32, mips32)
    under any PAGE_OFFSET its kernel offers (only the default one with ``default_only``), or None
    when they can (and for hashed addresses, other arches, or no dynamic area).  meminfo's
    ``vmalloc_total_kb`` rules ARM out when it puts VMALLOC_START above an area."""
    if not snapshot.addresses_trusted or snapshot.address_bits != 32 or arch not in _LAYOUT_ORDER:
        return None
    offsets = _page_offsets(arch)[:1] if default_only else _page_offsets(arch)
    reasons = [_contradiction_at(snapshot, arch, po) for po in offsets]
    if all(r is not None for r in reasons):
        return reasons[0]
    if arch == "arm" and vmalloc_total_kb:
        return _arm_total_contradiction(snapshot, vmalloc_total_kb)
    return None


def _guess_32bit(snapshot: VmallocinfoSnapshot,
                 total_kb: int | None) -> tuple[str | None, str]:
    """guess_arch for 32-bit addresses: never an arch whose layout the addresses contradict."""
    possible = [a for a in _LAYOUT_ORDER
                if layout_contradiction(snapshot, a, vmalloc_total_kb=total_kb) is None]
    usual = [a for a in possible if layout_contradiction(snapshot, a, True, total_kb) is None]
    callers = {ln.function for ln in snapshot.lines if ln.function}
    found = {arch: sorted(c for c in callers if c in only or c.startswith(prefixes))
             for arch, only, prefixes in (("arm", _ARM_ONLY_CALLERS, ()),
                                          ("ppc32", _PPC_ONLY_CALLERS, _PPC_ONLY_PREFIXES),
                                          ("mips32", _MIPS_ONLY_CALLERS, _MIPS_ONLY_PREFIXES),
                                          ("i386", _X86_ONLY_CALLERS, ()))}
    told = [a for a in ("ppc32", "mips32") if found[a] and a in possible and not found["arm"]]
    if len(told) == 1:
        what = "PowerPC" if told[0] == "ppc32" else "MIPS"
        return told[0], f"32-bit addresses and {what}-only callers ({', '.join(found[told[0]])})"
    if "arm" in possible:
        for page_offset in _ARM_PAGE_OFFSETS:
            if _contradiction_at(snapshot, "arm", page_offset) is not None:
                continue
            lo = page_offset - _ARM_MODULES_SIZE
            mods = [ln for ln in snapshot.lines if lo <= ln.start < page_offset]
            if mods and any(ln.start >= page_offset for ln in snapshot.lines) \
                    and not (found["ppc32"] or found["mips32"]):
                return "arm", (f"{len(mods)} areas in the ARM module area "
                               f"0x{lo:08x}-0x{page_offset:08x} "
                               f"(MODULES_VADDR = PAGE_OFFSET - 16 MiB)")
        if found["arm"]:
            return "arm", f"32-bit addresses and ARM-only callers ({', '.join(found['arm'])})"
    if found["i386"] and "i386" in possible:
        return "i386", (f"32-bit addresses and x86-only callers ({', '.join(found['i386'])}); "
                        f"i386-pae looks the same")
    others = [a for a in _LAYOUT_ORDER if a not in possible]
    ruled_out = "; ".join(f"not {a}: {layout_contradiction(snapshot, a, False, total_kb)}"
                          for a in others)
    if len(usual) == 1 and usual[0] in ("ppc32", "mips32"):
        # The only layout at its default PAGE_OFFSET: ppc32's module segment below PAGE_OFFSET
        # or MIPS's KSEG2 from 0xc0000000 (the others would need a non-default memory split).
        unusual = "; ".join(f"not {a} at PAGE_OFFSET 0x{_page_offsets(a)[0]:08x}: "
                            f"{layout_contradiction(snapshot, a, True, total_kb)}"
                            for a in _LAYOUT_ORDER if a != usual[0])
        return usual[0], (f"32-bit addresses that only the {usual[0]} layout holds at the usual "
                          f"PAGE_OFFSET ({LAYOUT_ONLY_ARCHES[usual[0]]}); {unusual}")
    if not possible:
        return None, f"32-bit addresses that fit no known 32-bit layout ({ruled_out})"
    return None, ("32-bit addresses without an ARM module area or an arch-only caller: "
                  f"{' or '.join(possible)}, give --arch" + (f" ({ruled_out})" if ruled_out
                                                             else ""))


def check_arch(snapshot: VmallocinfoSnapshot, arch: str) -> None:
    """Raise FormatError naming the first line whose address cannot belong to ``arch``."""
    src = snapshot.source
    if arch in _32BIT:
        if snapshot.address_bits == 64:
            first = snapshot.lines[0].lineno if snapshot.lines else 0
            raise FormatError(f"{src}:{first}", f"64-bit pointers (16 hex digits) in a snapshot "
                                                f"for 32-bit arch {arch}")
        return
    floor = _KERNEL_FLOOR.get(arch)
    if floor is None or not snapshot.addresses_trusted:
        return
    for ln in snapshot.lines:
        if ln.start < floor:
            raise FormatError(f"{src}:{ln.lineno}",
                              f"address 0x{ln.start:x} is not a kernel address on {arch} "
                              f"(kernel space begins at 0x{floor:x})")


def infer_kaslr(snapshot: VmallocinfoSnapshot, arch: str | None) -> KaslrGuess | None:
    """The randomised x86_64 vmalloc base, or None when the layout is the fixed one (or unknown)."""
    if arch not in ("x86_64", "x86_64-la57") or not snapshot.addresses_trusted:
        return None
    low = [s for s in _starts(snapshot) if s < _X86_KERNEL_MAP]
    if not low:
        return None
    first = min(low)
    if any(0 <= first - base < GiB for base in _X86_FIXED_BASES):
        return None
    base = first & ~(GiB - 1)
    return KaslrGuess(base, (f"vmalloc_base inferred as 0x{base:x}: the lowest area 0x{first:x} "
                             f"rounded down to 1 GiB (arch/x86/mm/kaslr.c aligns the randomised "
                             f"bases to PUD_SIZE); the fixed layout starts at "
                             f"0x{_X86_FIXED_BASES[0]:x}"))


def _first_dynamic(snapshot: VmallocinfoSnapshot, floor: int) -> int | None:
    starts = [ln.start for ln in snapshot.lines if ln.start >= floor and not is_static_area(ln)]
    return min(starts) if starts else None


def _arm_page_offset(snapshot: VmallocinfoSnapshot) -> int:
    for page_offset in _ARM_PAGE_OFFSETS:
        lo = page_offset - _ARM_MODULES_SIZE
        if any(lo <= ln.start < page_offset for ln in snapshot.lines):
            return page_offset
    return min(_ARM_PAGE_OFFSETS, key=lambda p: abs(p - min(_starts(snapshot))))


def infer_bounds(snapshot: VmallocinfoSnapshot, arch: str | None,
                 vmalloc_total_kb: int | None = None,
                 kernel: KernelVersion | None = None) -> Bounds | None:
    """VMALLOC_START/END as well as a snapshot (and meminfo's VmallocTotal) tell them.

    ``kernel`` (default: the default kernel) decides whether the 32-bit x86 VMALLOC_START is
    8 MiB aligned (2.6.22) or ``high_memory + VMALLOC_OFFSET`` at page granularity (later: the
    lowest area is then taken as the start; early boot ioremaps sit there).

    None when the addresses are hashed or there are no areas.  ``how`` says what was inferred.
    """
    if not snapshot.lines or not snapshot.addresses_trusted:
        return None
    total = vmalloc_total_kb * KiB if vmalloc_total_kb else None
    if arch in _X86_VMALLOC_SIZE:
        kaslr = infer_kaslr(snapshot, arch)
        low = [s for s in _starts(snapshot) if s < _X86_KERNEL_MAP]
        if low:
            if kaslr is not None:
                start, how = kaslr.vmalloc_base, "VMALLOC_START = inferred KASLR vmalloc_base"
            else:
                start = next((b for b in _X86_FIXED_BASES if 0 <= min(low) - b < GiB),
                             _X86_LA57_BASE if arch == "x86_64-la57" else _X86_VMALLOC_BASES[0])
                how = f"VMALLOC_START 0x{start:x} ({arch} fixed layout)"
            size = _X86_VMALLOC_SIZE[arch] - 1
            if total is not None and (size >> 10) != vmalloc_total_kb:
                size, how = total, how + f", VMALLOC_END from VmallocTotal {vmalloc_total_kb} kB"
            else:
                how += f", VMALLOC_END = START + {_X86_VMALLOC_SIZE[arch] // TiB} TiB - 1"
            return Bounds(start, start + size, how)
    if arch in ("ppc32", "mips32"):
        return _layout_only_bounds(snapshot, arch, total, vmalloc_total_kb)
    if arch in _32BIT or (arch is None and snapshot.address_bits == 32):
        floor = _arm_page_offset(snapshot) if arch in (None, "arm") else 0xC0000000
        first = _first_dynamic(snapshot, floor)
        kver = resolve(kernel)
        if first is not None and arch in ("i386", "i386-pae") and has(kver, "x86_32_vmalloc_start_unrounded"):
            start = first
            how = (f"VMALLOC_START 0x{start:08x}: the lowest allocated area (Linux {kver}: "
                   f"high_memory + VMALLOC_OFFSET, not rounded)")
        elif first is not None:
            start = first & ~(_VMALLOC_OFFSET - 1)
            how = (f"VMALLOC_START 0x{start:08x}: the lowest allocated area 0x{first:08x} rounded "
                   f"down to VMALLOC_OFFSET (8 MiB)")
        if first is not None:
            if total is not None:
                return Bounds(start, start + total,
                              how + f"; VMALLOC_END = START + VmallocTotal ({vmalloc_total_kb} kB)")
            end = max(ln.end for ln in snapshot.lines if ln.start >= start)
            return Bounds(start, end, how + f"; VMALLOC_END unknown (no VmallocTotal), "
                                            f"taken as the last area's end 0x{end:08x}",
                          exact=False)
    if arch == "arm64":
        vstart, vend, how = _arm64_vmalloc(kernel)
        ends = [ln.end for ln in snapshot.lines if ln.start >= vstart]
        if ends and max(ends) <= vend:
            return Bounds(vstart, vend, how)
    start = min(_starts(snapshot))
    end = max(ln.end for ln in snapshot.lines)
    if total is not None and start + total >= end:
        return Bounds(start, start + total, "from the first area's start, "
                                            f"VmallocTotal {vmalloc_total_kb} kB long")
    return Bounds(start, end, "between the first area's start and the last area's end "
                              "(the arch's VMALLOC_START/END are not known here)", exact=False)


def _layout_only_bounds(snapshot: VmallocinfoSnapshot, arch: str, total: int | None,
                        total_kb: int | None) -> Bounds | None:
    """VMALLOC_START/END of a ppc32 or mips32 dump (see :data:`LAYOUT_ONLY_ARCHES`)."""
    if arch == "mips32":
        start = _MIPS32_VMALLOC_START
        how = "VMALLOC_START 0xc0000000 (MIPS32 MAP_BASE, KSEG2)"
    else:
        # Areas below PAGE_OFFSET are the module segment's, not the vmalloc area's.
        first = _first_dynamic(snapshot, _ppc32_page_offset(snapshot))
        if first is None:
            return None
        start = first & ~(_PPC32_VMALLOC_OFFSET - 1)
        how = (f"VMALLOC_START 0x{start:08x}: the lowest allocated area 0x{first:08x} rounded "
               f"down to ppc32's VMALLOC_OFFSET (16 MiB)")
    if total is not None:
        return Bounds(start, start + total,
                      how + f"; VMALLOC_END = START + VmallocTotal ({total_kb} kB)")
    ends = [ln.end for ln in snapshot.lines if ln.start >= start and not is_static_area(ln)]
    if not ends:
        return None
    end = max(ends)
    return Bounds(start, end, how + f"; VMALLOC_END unknown ({'ioremap_bot' if arch == 'ppc32' else 'PKMAP_BASE'} "
                                    f"is the device's; give --meminfo for VmallocTotal), taken as "
                                    f"the last area's end 0x{end:08x}", exact=False)


def _arm64_vmalloc(kernel: KernelVersion | None) -> tuple[int, int, str]:
    """arm64's VMALLOC_START/END: of ``kernel``'s era (``arch.boot.arm64_layout``), or the
    profile's (5.16-6.4) when the version is not known."""
    prof = PROFILES["arm64"]
    if kernel is None:
        assert prof.vmalloc_start is not None
        return prof.vmalloc_start, prof.vmalloc_end, \
            f"arm64 profile VMALLOC_START/END ({prof.kernel_version}; the kernel version is not known)"
    kver = resolve(kernel)
    a64 = arm64_layout(prof, kver)
    return a64.vmalloc_start, a64.vmalloc_end, f"arm64 VMALLOC_START/END of Linux {kver} (48-bit VA)"


def module_range(snapshot: VmallocinfoSnapshot, arch: str | None,
                 kernel: KernelVersion | None = None) -> Bounds | None:
    """The arch's separate module area if the snapshot has areas there, else None (arm64's is
    ``kernel``'s era's when it is given)."""
    if not snapshot.lines or not snapshot.addresses_trusted:
        return None
    if arch == "mips32":
        return None
    if arch == "ppc32":
        hi = _ppc32_page_offset(snapshot)
        lo = hi - _PPC32_MODULES_SIZE
        if any(lo <= s < hi for s in _starts(snapshot)):
            return Bounds(lo, hi, "ppc32 book3s/32 MODULES_VADDR..MODULES_END (PAGE_OFFSET - "
                                  "256 MiB .. PAGE_OFFSET, 5.10+)")
        return None
    if arch in ("x86_64", "x86_64-la57"):
        mods = [s for s in _starts(snapshot) if s >= _X86_KERNEL_MAP]
        if not mods:
            return None
        # KERNEL_IMAGE_SIZE is 1 GiB with KASLR (modules from 0xffffffffc0000000), else 512 MiB.
        start = 0xFFFFFFFFA0000000 if min(mods) < 0xFFFFFFFFC0000000 else 0xFFFFFFFFC0000000
        return Bounds(start, _X86_MODULES_END, "x86_64 MODULES_VADDR..MODULES_END")
    if arch == "arm64":
        prof = PROFILES["arm64"]
        if kernel is None:
            lo, hi = prof.modules_start or 0, prof.modules_end or 0
            how = "arm64 profile MODULES_VADDR..MODULES_END"
        else:
            kver = resolve(kernel)
            a64 = arm64_layout(prof, kver)
            lo, hi, how = a64.modules_start, a64.modules_end, f"arm64 MODULES_VADDR..MODULES_END of Linux {kver}"
        if any(lo <= s < hi for s in _starts(snapshot)):
            return Bounds(lo, hi, how)
        return None
    # Only when the arch is ARM: an unknown 32-bit arch gets no module area (ppc32's is 256 MiB,
    # i386 and MIPS have none), rather than ARM's invented for it.
    if arch == "arm":
        page_offset = _arm_page_offset(snapshot)
        lo = page_offset - _ARM_MODULES_SIZE
        if any(lo <= s < page_offset for s in _starts(snapshot)):
            return Bounds(lo, page_offset - _ARM_MODULES_GAP,
                          "ARM MODULES_VADDR..MODULES_END (PAGE_OFFSET - 16 MiB .. - PMD_SIZE)")
    return None


def find_holes(areas: Iterable[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """The free gaps ``(address, size)`` of ``[start, end)`` not covered by any ``(start, end)``."""
    holes = []
    cursor = start
    for a_start, a_end in sorted(areas):
        if a_end <= cursor or a_end <= a_start:
            continue
        if a_start >= end:
            break
        if a_start > cursor:
            holes.append((cursor, a_start - cursor))
        cursor = a_end
    if cursor < end:
        holes.append((cursor, end - cursor))
    return holes


def hole_stats(holes: Sequence[tuple[int, int]]) -> HoleStats:
    """Count, total and largest of a list of ``(address, size)`` holes."""
    sizes = [size for _, size in holes]
    return HoleStats(len(sizes), sum(sizes), max(sizes, default=0))


def fragmentation_index(holes: Sequence[tuple[int, int]]) -> float | None:
    """``1 - largest free / total free``: 0 when the free space is one hole, None with none."""
    stats = hole_stats(holes)
    if stats.total == 0:
        return None
    return 1.0 - stats.largest / stats.total


def infer_page_size(snapshot: VmallocinfoSnapshot) -> tuple[int, str]:
    """PAGE_SIZE read from vmalloc lines (size = (pages + 1 guard) * PAGE_SIZE); 4096 by default."""
    votes: dict[int, int] = {}
    for ln in snapshot.lines:
        if "vmalloc" in ln.kinds and ln.nr_pages:
            quotient, rest = divmod(ln.size, ln.nr_pages + 1)
            if rest == 0 and quotient >= 4096 and quotient & (quotient - 1) == 0:
                votes[quotient] = votes.get(quotient, 0) + 1
    if not votes:
        return 4096, "PAGE_SIZE assumed 4096 (no vmalloc line tells it)"
    size, count = max(votes.items(), key=lambda kv: kv[1])
    return size, (f"PAGE_SIZE {size}: size = (pages + 1 guard page) * {size} "
                  f"on {count} vmalloc lines")


# ---- the kernel version a dump tells ---------------------------------------------------------------
@dataclass(frozen=True)
class KernelRange:
    """The kernels ``lo <= v < hi`` (``hi`` None: up to the newest the model knows).

    What a dump tells about its kernel is a range (a word appeared in one release, a computation
    changed in another); :meth:`split` cuts it where chosen rules of ``versions.CHANGES`` change,
    so that an answer that depends on them can be given under each.
    """

    lo: KernelVersion
    hi: KernelVersion | None = None

    @classmethod
    def everything(cls) -> KernelRange:
        """Every kernel the model knows."""
        return cls(parse_version(KNOWN_VERSIONS[0]))

    @classmethod
    def only(cls, v: KernelVersion) -> KernelRange:
        """The one release ``v`` (rules change between release series, never inside one)."""
        if v.major == 2:
            nxt = KernelVersion(2, 6, v.patch + 1)
        else:
            nxt = KernelVersion(v.major, v.minor + 1, 0)
        return cls(v, nxt)

    @property
    def known(self) -> bool:
        """False for :meth:`everything` (nothing narrowed it)."""
        return self != KernelRange.everything()

    def contains(self, v: KernelVersion) -> bool:
        return self.lo.series() <= v.series() and (self.hi is None or v.series() < self.hi.series())

    def __str__(self) -> str:
        if self.hi is None:
            return f"Linux {self.lo} or later"
        return f"Linux {self.lo} to before {self.hi}"

    def split(self, rules: Sequence[str]) -> list[KernelRange]:
        """This range cut at every release where one of ``rules`` (names of CHANGES) starts or
        ends, in release order."""
        cuts = set()
        for name in rules:
            change = CHANGES[name]
            for edge in (change.since, change.until):
                if edge is not None:
                    v = parse_version(edge)
                    if self.lo.series() < v.series() and (self.hi is None
                                                          or v.series() < self.hi.series()):
                        cuts.add(v)
        edges = [self.lo, *sorted(cuts, key=lambda v: v.series())]
        return [KernelRange(a, b) for a, b in zip(edges, [*edges[1:], self.hi])]


def _evidence_line(name: str, text: str) -> str:
    return f"{text} ({CHANGES[name].commit})"


def _arm64_eras(snapshot: VmallocinfoSnapshot) -> tuple[str, str | None, str] | None:
    """``(since, until, why)``: the run of arm64 layout eras (``arch.boot.arm64_layout`` at
    48-bit VA) whose module, BPF JIT and vmalloc ranges hold every area of ``snapshot``; None
    when no era or a broken run does (the addresses do not date it)."""
    prof = PROFILES["arm64"]
    lo_addr = min(ln.start for ln in snapshot.lines)
    hi_addr = max(ln.end for ln in snapshot.lines)
    versions = [v for v in KNOWN_VERSIONS if has(parse_version(v), "arm64_port")]
    fits: list[bool] = []
    for v in versions:
        a64 = arm64_layout(prof, parse_version(v))
        floor = min(a64.modules_start, a64.vmalloc_start, a64.bpf_jit_start or a64.modules_start)
        fits.append(floor <= lo_addr and hi_addr <= a64.vmalloc_end)
    if not any(fits):
        return None
    first = fits.index(True)
    last = len(fits) - 1 - fits[::-1].index(True)
    if not all(fits[first:last + 1]):
        return None
    since_v = versions[first]
    until_v = versions[last + 1] if last + 1 < len(versions) else None
    span = f"{since_v}+" if until_v is None else f"{since_v} to before {until_v}"
    return since_v, until_v, (f"arm64 areas 0x{lo_addr:x}-0x{hi_addr:x} lie in the module and "
                              f"vmalloc ranges of the arm64 layouts of {span} (48-bit VA)")


def infer_kernel(snapshot: VmallocinfoSnapshot, meminfo: Mapping[str, int] | None = None, *,
                 arch: str | None = None, cmdline: str = "") -> tuple[KernelRange, str]:
    """The kernels that could have printed ``snapshot`` (and ``meminfo``), and why.

    Reads parsed records only (never a file name): the words a release introduced (``vpages``
    2.6.28, ``unpurged vm_area``/``vm_map_ram`` 4.13, ``dma-coherent`` 5.5, ``sparse`` 6.9),
    where lazily freed areas are listed (among the others before 5.4, after them from 5.4), the
    i386 VMALLOC_START (not 8 MiB aligned: 2.6.25+), the ARM VMALLOC_END that meminfo's
    VmallocTotal gives (0xff000000 before 4.2, 0xff800000 from it), meminfo's VmallocUsed and
    VmallocChunk (the walk until 4.3, zeros 4.4-5.2, pages from 5.3) and, on ARM, a ``vmalloc=``
    of ``cmdline`` that gave a smaller area than asked (before 5.15).  Returns the range and the
    reason in words; :meth:`KernelRange.everything` when nothing tells.
    """
    lo_bounds: list[tuple[str, str]] = []     # (since, why)
    hi_bounds: list[tuple[str, str]] = []     # (until, why)

    def since(name: str, why: str) -> None:
        lo_bounds.append((CHANGES[name].since, _evidence_line(name, why)))

    def until(name: str, why: str) -> None:
        hi_bounds.append((CHANGES[name].since, _evidence_line(name, why)))

    lines = snapshot.lines
    words = {w for ln in lines for w in ln.kinds}
    if "vpages" in words:
        since("vmallocinfo_vpages_word", "'vpages' lines: 2.6.28+")
    lazy = [i for i, ln in enumerate(lines) if UNPURGED in ln.kinds or VM_MAP_RAM in ln.kinds]
    if lazy:
        since("vmallocinfo_lazy_lines", "'unpurged vm_area'/'vm_map_ram' lines: 4.13+")
    unpurged = [i for i, ln in enumerate(lines) if UNPURGED in ln.kinds]
    busy = [i for i, ln in enumerate(lines) if UNPURGED not in ln.kinds]
    if unpurged and busy:
        if min(unpurged) > max(busy):
            if snapshot.addresses_trusted and min(lines[i].start for i in unpurged) < max(
                    lines[i].start for i in busy):
                since("unpurged_in_vmallocinfo", "'unpurged vm_area' lines listed after the "
                      "busy ones, out of address order: 5.4+")
        else:
            until("unpurged_in_vmallocinfo", "'unpurged vm_area' lines among the busy ones: "
                  "before 5.4")
    if "dma-coherent" in words:
        since("vmallocinfo_dma_coherent_word", "'dma-coherent' lines: 5.5+")
    if "sparse" in words:
        since("vmallocinfo_sparse_word", "'sparse' lines: 6.9+")
    if arch is None and lines and snapshot.addresses_trusted:
        arch = guess_arch(snapshot)[0]
    fields = dict(meminfo or {})
    total_kb = fields.get("VmallocTotal") or None
    if snapshot.addresses_trusted and lines and arch in ("i386", "i386-pae"):
        first = _first_dynamic(snapshot, 0xC0000000)
        if first is not None and first % _VMALLOC_OFFSET:
            since("x86_32_vmalloc_start_unrounded", f"i386 lowest area 0x{first:08x} is not "
                  f"8 MiB aligned (VMALLOC_START = high_memory + VMALLOC_OFFSET): 2.6.25+")
    if arch == "arm64":
        since("arm64_port", "an arm64 dump: the port came with 3.7")
        if snapshot.addresses_trusted and lines:
            eras = _arm64_eras(snapshot)
            if eras is not None:
                lo_v, hi_v, why = eras
                lo_bounds.append((lo_v, why))
                if hi_v is not None:
                    hi_bounds.append((hi_v, why))
    if snapshot.addresses_trusted and lines and arch == "ppc32":
        below = [ln for ln in _dynamic(snapshot) if ln.start < _ppc32_page_offset(snapshot)]
        if below:
            since("ppc32s_module_segment", f"ppc32 areas below PAGE_OFFSET (0x{below[0].start:08x}:"
                  f" the module segment): 5.10+")
    if snapshot.addresses_trusted and lines and arch == "arm" and total_kb:
        bounds = infer_bounds(snapshot, "arm", total_kb)
        if bounds is not None and bounds.exact:
            old = arm_vmalloc_end(parse_version("2.6.22"))
            new = arm_vmalloc_end(parse_version(CHANGES["arm_vmalloc_end_ff800000"].since))
            if bounds.end == old:
                until("arm_vmalloc_end_ff800000", f"VmallocTotal {total_kb} kB puts VMALLOC_END "
                      f"at 0x{old:08x}: before 4.2")
            elif bounds.end == new:
                since("arm_vmalloc_end_ff800000", f"VmallocTotal {total_kb} kB puts VMALLOC_END "
                      f"at 0x{new:08x}: 4.2+")
            asked = _cmdline_vmalloc(cmdline)
            if asked is not None and bounds.size < asked:
                until("arm_vmalloc_size_uniform",
                      f"vmalloc={asked >> 20}M on the command line gave an area of "
                      f"{bounds.size >> 20} MiB (VmallocTotal {total_kb} kB), smaller than asked: "
                      f"the rule before 5.15")
    if "VmallocUsed" in fields and "VmallocChunk" in fields:
        used, chunk = fields["VmallocUsed"], fields["VmallocChunk"]
        if chunk > 0:
            until("meminfo_vmalloc_walk_removed", f"meminfo VmallocChunk {chunk} kB is not 0: "
                  f"before 4.4")
        elif used > 0:
            since("meminfo_vmalloc_used_pages", "meminfo VmallocChunk 0 with VmallocUsed "
                  f"{used} kB: 5.3+")
        else:
            since("meminfo_vmalloc_walk_removed", "meminfo VmallocUsed and VmallocChunk 0: "
                  "4.4+")
            until("meminfo_vmalloc_used_pages", "meminfo VmallocUsed 0: before 5.3")
    if not lo_bounds and not hi_bounds:
        return KernelRange.everything(), ("nothing in the dump dates it (no word, order or "
                                          "meminfo figure that changed between releases)")
    lo = max((parse_version(v) for v, _ in lo_bounds), key=lambda v: v.series(),
             default=parse_version(KNOWN_VERSIONS[0]))
    hi = min((parse_version(v) for v, _ in hi_bounds), key=lambda v: v.series(), default=None)
    why = "; ".join(dict.fromkeys(w for _, w in lo_bounds + hi_bounds))  # each reason once
    if hi is not None and hi.series() <= lo.series():
        return KernelRange.everything(), f"the evidence disagrees ({why}): version unknown"
    return KernelRange(lo, hi), why


def _cmdline_vmalloc(cmdline: str) -> int | None:
    """The ``vmalloc=`` size of a command line (memparse suffixes K, M, G), or None."""
    value = None
    for word in cmdline.split():
        if word.startswith("vmalloc="):
            m = re.fullmatch(r"(\d+)([kKmMgG]?)", word[len("vmalloc="):])
            if m:
                value = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    return value
