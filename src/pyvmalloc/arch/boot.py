"""Boot-time memory layout: the kernel command line, lowmem/highmem, zones and the vmalloc area.

``boot_layout()`` is what ``setup_arch()`` and ``paging_init()`` decide before the first
allocation, for one kernel version: every rule that changed between releases is asked of
``pyvmalloc.versions`` (the arithmetic is written here once, the choice of rule there).

- **i386, i386-pae.**  ``vmalloc=`` sets ``__VMALLOC_RESERVE`` (plus VMALLOC_OFFSET from
  2.6.25: ``x86_32_vmalloc_reserve``); lowmem = min(RAM, MAXMEM) (``x86_32_maxmem``), the rest
  is HIGHMEM; VMALLOC_START follows high_memory (rounded to 8 MiB in 2.6.22, not later:
  ``x86_32_vmalloc_start``); VMALLOC_END = PKMAP_BASE - 2 pages (``x86_32_vmalloc_end``).
- **arm.**  arch/arm/mm/mmu.c ``early_vmalloc()`` clamps the size to at least 16 MiB and at most
  ``arm_vmalloc_max`` with the kernel's warnings; ``adjust_lowmem_bounds()`` ends lowmem at
  ``arm_vmalloc_min`` (the 2021 "make the size of vmalloc in cmdline and meminfo uniform"
  change decides whether VMALLOC_OFFSET comes off the asked size);
  ``VMALLOC_START = (high_memory + VMALLOC_OFFSET) & ~(VMALLOC_OFFSET-1)``; VMALLOC_END by
  version (``arm_vmalloc_end``).
- **x86_64, x86_64-la57** (5.x/6.x constants; the 2.6.22 base by version); ``vmalloc=`` is no
  parameter there and is reported as an unknown parameter passed to user space (init/main.c,
  5.13+); KASLR follows arch/x86/mm/kaslr.c kernel_randomize_memory().
- **arm64** (48-bit VA, 4 KiB pages, no KASAN): ``arm64_layout()`` evaluates each era's
  arch/arm64/include/asm/memory.h and pgtable.h: the linear map in the top half with modules in
  the 64 MiB below PAGE_OFFSET until 4.5, the module area (then 5.0-5.15 a BPF JIT region below
  it) at VA_START from 4.6, the flipped VA space from 5.4, VMALLOC_END below the vmemmap by
  ``arm64_vmemmap_size`` 3.17, ``arm64_vmemmap_below_linear`` 4.7, ``arm64_flip_va`` 5.4 and
  ``arm64_vmalloc_end_below_vmemmap`` 5.11, the 2 GiB module area from 6.5
  (``arm64_modules_2g``); ``vmalloc=`` as on x86-64.

IOREMAP_MAX_ORDER is the version's too (``versions.ioremap_max_order``).  ``mem=SIZE`` caps
RAM on every profile.  Physical RAM is modelled as one bank from 0.
"""

from __future__ import annotations

import dataclasses
import random
import re
from dataclasses import dataclass, field
from typing import Any

from pyvmalloc.arch.profiles import GiB, MiB, TiB, ArchProfile, arch_family, get_profile
from pyvmalloc.sizes import format_size, memparse
from pyvmalloc.errors import ConfigError
from pyvmalloc.versions import (
    CHANGES,
    X86_64_VMALLOC_2622,
    KernelVersion,
    has,
    arm_vmalloc_end,
    arm_vmalloc_max,
    arm_vmalloc_min,
    ioremap_max_order,
    resolve,
    x86_32_maxmem,
    x86_32_vmalloc_end,
    x86_32_vmalloc_reserve,
    x86_32_vmalloc_start,
)

# Zone names as the kernel prints them (mm/page_alloc.c zone_names[]).
_ZONE_PRINT = {"DMA": "DMA", "DMA32": "DMA32", "NORMAL": "Normal", "HIGHMEM": "HighMem"}


@dataclass(frozen=True)
class BootLayout:
    """The memory layout of one booted machine (all addresses are ints, ``end`` exclusive)."""

    profile: ArchProfile
    ram_bytes: int
    page_offset: int
    vmalloc_start: int
    vmalloc_end: int
    modules_start: int
    modules_end: int
    lowmem_bytes: int
    highmem_bytes: int
    zones: tuple[tuple[str, int, int], ...]
    messages: tuple[str, ...]
    params: dict[str, Any] = field(hash=False)
    high_memory: int = 0
    cmdline: str = ""
    kernel: KernelVersion = field(default_factory=lambda: resolve(None))
    ioremap_max_order: int = 0       # IOREMAP_MAX_ORDER of this kernel on this arch
    # arm64 5.0-5.15: BPF_JIT_REGION_START/END (``arm64_bpf_jit_region``); 0, 0 elsewhere.
    bpf_jit_start: int = 0
    bpf_jit_end: int = 0

    @property
    def ram_pages(self) -> int:
        return self.ram_bytes >> self.profile.page_shift

    @property
    def vmalloc_total_kb(self) -> int:
        """/proc/meminfo VmallocTotal: (VMALLOC_END - VMALLOC_START) >> 10."""
        return (self.vmalloc_end - self.vmalloc_start) >> 10

    def zone(self, name: str) -> tuple[int, int]:
        """``(start_pfn, end_pfn)`` of the zone ``name`` (empty zones have start == end)."""
        for zname, start, end in self.zones:
            if zname == name:
                return start, end
        raise ConfigError(f"{self.profile.name} has no zone {name!r} "
                          f"(zones: {', '.join(z for z, _, _ in self.zones)})")


@dataclass(frozen=True)
class Arm64Layout:
    """The arm64 kernel VA layout of one release (``end`` exclusive; no BPF region: 0, 0)."""

    page_offset: int
    vmalloc_start: int
    vmalloc_end: int
    modules_start: int
    modules_end: int
    bpf_jit_start: int = 0
    bpf_jit_end: int = 0


# SZ_* of include/linux/sizes.h; STRUCT_PAGE_MAX_SHIFT is 6 (a 64-byte struct page: 4.6-4.20
# memory.h defines it so, later include/linux/mm_types.h takes order_base_2(sizeof(struct page))).
_SZ_64K, _SZ_64M, _SZ_128M, _SZ_256M = 64 << 10, 64 * MiB, 128 * MiB, 256 * MiB
_STRUCT_PAGE_MAX_SHIFT = 6


def arm64_layout(profile: ArchProfile, kver: KernelVersion) -> Arm64Layout:
    """arm64's PAGE_OFFSET, vmalloc, module and BPF JIT ranges under ``kver``, from
    arch/arm64/include/asm/memory.h and pgtable.h of its era at the profile's VA_BITS and
    PAGE_SHIFT, without KASAN (KASAN_SHADOW_SIZE 0) and with the kernel image taken as empty.

    3.7-4.5 (``arm64_port``): VA_START = ~0UL << VA_BITS, PAGE_OFFSET = ~0UL << (VA_BITS - 1),
    MODULES_END = PAGE_OFFSET, MODULES_VADDR = MODULES_END - SZ_64M, VMALLOC_START = VA_START,
    VMALLOC_END = PAGE_OFFSET - 0x400000000 - SZ_64K (3.17+: PAGE_OFFSET - PUD_SIZE -
    VMEMMAP_SIZE - SZ_64K).  4.6+ (``arm64_kimage_in_vmalloc``): MODULES_VADDR = VA_START +
    KASAN_SHADOW_SIZE, MODULES_VSIZE SZ_128M, VMALLOC_START = MODULES_END; 5.0-5.15 the BPF JIT
    region takes the first 128 MiB and MODULES_VADDR = BPF_JIT_REGION_END.  5.4+
    (``arm64_flip_va``): PAGE_OFFSET = -(1 << VA_BITS), the rest from _PAGE_END(VA_BITS_MIN).
    """
    va, shift = profile.va_bits, profile.page_shift
    pud = profile.level("pud").span
    top = 1 << 64
    bpf = has(kver, "arm64_bpf_jit_region")
    if has(kver, "arm64_flip_va"):
        page_offset = top - (1 << va)                       # _PAGE_OFFSET(VA_BITS)
        page_end = top - (1 << (va - 1))                    # _PAGE_END(VA_BITS_MIN)
        base = page_end                                     # KASAN_SHADOW_END without KASAN
        vmemmap_shift = shift - _STRUCT_PAGE_MAX_SHIFT      # VMEMMAP_SHIFT
        if has(kver, "arm64_vmalloc_end_below_vmemmap"):
            vend = top - (1 << (va - vmemmap_shift)) - _SZ_256M   # VMEMMAP_START - SZ_256M
        else:
            vend = top - pud - ((page_end - page_offset) >> vmemmap_shift) - _SZ_64K
    else:
        va_start = top - (1 << va)                          # ~0UL << VA_BITS
        page_offset = top - (1 << (va - 1))                 # ~0UL << (VA_BITS - 1)
        if has(kver, "arm64_vmemmap_below_linear"):
            vmemmap = 1 << (va - shift - 1 + _STRUCT_PAGE_MAX_SHIFT)
            vend = page_offset - pud - vmemmap - _SZ_64K
        elif has(kver, "arm64_vmemmap_size"):
            vmemmap = -(-((1 << (va - shift)) << _STRUCT_PAGE_MAX_SHIFT) // pud) * pud
            vend = page_offset - pud - vmemmap - _SZ_64K
        else:
            vend = page_offset - 0x400000000 - _SZ_64K
        if not has(kver, "arm64_kimage_in_vmalloc"):
            return Arm64Layout(page_offset, va_start, vend, page_offset - _SZ_64M, page_offset)
        base = va_start                                     # + KASAN_SHADOW_SIZE (0)
    bpf_start = bpf_end = 0
    if bpf:
        bpf_start, bpf_end = base, base + _SZ_128M          # BPF_JIT_REGION_SIZE
        base = bpf_end
    msize = 2 * GiB if has(kver, "arm64_modules_2g") else _SZ_128M   # MODULES_VSIZE
    return Arm64Layout(page_offset, base + msize, vend, base, base + msize, bpf_start, bpf_end)


def vmalloc_end_for(profile: ArchProfile, kernel: KernelVersion) -> int:
    """VMALLOC_END of ``profile`` under ``kernel``: the profile's own value where it has one (the
    64-bit profiles, a device's profile), else the version's (``versions.py``)."""
    if profile.vmalloc_end:
        return profile.vmalloc_end
    if profile.name == "arm":
        return arm_vmalloc_end(kernel)
    return x86_32_vmalloc_end(kernel, profile.name == "i386-pae")


_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*")+')


def _tokens(cmdline: str) -> list[tuple[str, str | None, str]]:
    """(key, value or None, token) for each word; double quotes group as in lib/cmdline.c."""
    out = []
    for tok in _TOKEN.findall(cmdline):
        key, eq, value = tok.partition("=")
        out.append((key, value.replace('"', "") if eq else None, tok))
    return out


def _size_param(key: str, value: str | None) -> tuple[int, str]:
    """memparse() of a ``key=SIZE`` value that must start with a number."""
    if not value:
        raise ConfigError(f"{key}= needs a size (e.g. {key}=256M)")
    size, rest = memparse(value)
    if rest == value:
        raise ConfigError(f"{key}={value}: {value!r} is not a size")
    return size, rest


def _zone_lines_modern(zones: list[tuple[str, int, int]], shift: int) -> list[str]:
    # mm/mm_init.c free_area_init(): "  %-8s [mem %#018Lx-%#018Lx]" or "empty".
    lines = ["Zone ranges:"]
    for name, start, end in zones:
        label = f"  {_ZONE_PRINT[name]:<8} "
        if start == end:
            lines.append(label + "empty")
        else:
            lines.append(label + f"[mem {start << shift:#018x}-{(end << shift) - 1:#018x}]")
    return lines


def _zone_lines_2622(zones: list[tuple[str, int, int]]) -> list[str]:
    # 2.6.22 mm/page_alloc.c free_area_init_nodes(): "  %-8s %8lu -> %8lu".
    return ["Zone PFN ranges:"] + [f"  {_ZONE_PRINT[n]:<8} {s:8d} -> {e:8d}" for n, s, e in zones]


def _layout_line(name: str, start: int, end: int, unit: str) -> str:
    # arch/i386/mm/init.c, arch/arm/mm/init.c mem_init(): "    %-7s: 0x%08lx - 0x%08lx   (%4ld MB)"
    size = (end - start) >> (20 if unit == "MB" else 10)
    return f"    {name:<7} : {start:#010x} - {end:#010x}   ({size:4d} {unit})"


def _kaslr_bases(profile: ArchProfile, ram: int, seed: int) -> tuple[int, int, int]:
    """arch/x86/mm/kaslr.c kernel_randomize_memory() (5.x/6.x): (page_offset, vmalloc_base,
    vmemmap_base).  The kernel seeds prandom from kaslr_get_random_long("Memory"); the model
    seeds Python's Mersenne Twister with ``seed``, so a seed names one layout."""
    l5 = profile.va_bits == 57
    vaddr_start = profile.page_offset                  # __PAGE_OFFSET_BASE_L4/L5
    vaddr_end = 0xFFFFFE0000000000                     # CPU_ENTRY_AREA_BASE
    pud = 1 << 30
    max_physmem_bits = 52 if l5 else 46                # asm/sparsemem.h MAX_PHYSMEM_BITS
    # CONFIG_RANDOMIZE_MEMORY_PHYSICAL_PADDING defaults to 0xa (10 TB).
    memory_tb = -(-ram // TiB) + 10
    sizes = [min(1 << (max_physmem_bits - 40), memory_tb), profile.vmalloc_default >> 40, 0]
    vmemmap = (sizes[0] << (40 - profile.page_shift)) * 64   # sizeof(struct page) == 64
    sizes[2] = -(-vmemmap // TiB)
    remain = vaddr_end - vaddr_start - (len(sizes) - 1) * pud - sum(s << 40 for s in sizes)
    rng = random.Random(seed)
    vaddr = vaddr_start
    bases = []
    for i, size_tb in enumerate(sizes):
        entropy = remain // (len(sizes) - i)
        rand = rng.getrandbits(64)
        entropy = (rand % (entropy + 1)) & ~(pud - 1)
        vaddr += entropy
        bases.append(vaddr)
        vaddr += size_tb << 40
        vaddr = -(-(vaddr + 1) // pud) * pud         # round_up(vaddr + 1, PUD_SIZE)
        remain -= entropy
    return bases[0], bases[1], bases[2]


def boot_layout(profile: ArchProfile | str, ram_bytes: int, cmdline: str = "",
                kaslr_seed: int | None = None,
                kernel: str | KernelVersion | None = None) -> BootLayout:
    """Boot ``profile`` with ``ram_bytes`` of RAM and ``cmdline``; see the module docstring.

    ``kaslr_seed`` randomises the x86-64 direct map, vmalloc and vmemmap bases (None, or
    ``nokaslr`` on the command line, keeps the documented fixed layout); profiles without
    memory randomisation ignore it (``params["kaslr"]`` says whether it applied).
    ``kernel`` (a version, default ``versions.DEFAULT_KERNEL``) picks the rules that changed
    between releases (``versions.py``): the 32-bit vmalloc range and ``vmalloc=`` arithmetic,
    IOREMAP_MAX_ORDER.  Raises ConfigError for RAM outside the profile's limits, malformed or
    unknown parameters, and layouts the kernel could not boot with.
    """
    profile = get_profile(profile)
    kver = resolve(kernel)
    if profile.name == "arm64" and not has(kver, "arm64_port"):
        raise ConfigError(f"arm64: the port came with Linux {CHANGES['arm64_port'].since}; "
                          f"Linux {kver} has no arm64")
    if isinstance(ram_bytes, bool) or not isinstance(ram_bytes, int):
        raise ConfigError(f"RAM size must be an int number of bytes, not {ram_bytes!r}")
    if not isinstance(cmdline, str):
        raise ConfigError(f"the kernel command line must be text, not {cmdline!r}")
    if kaslr_seed is not None and (isinstance(kaslr_seed, bool) or not isinstance(kaslr_seed, int)):
        raise ConfigError(f"kaslr_seed must be an int or None, not {kaslr_seed!r}")
    if not profile.min_ram <= ram_bytes <= profile.max_ram:
        raise ConfigError(f"{profile.name}: RAM {format_size(ram_bytes)} outside "
                          f"{format_size(profile.min_ram)}..{format_size(profile.max_ram)}")
    shift = profile.page_shift
    messages = [f"Kernel command line: {cmdline}"]
    params: dict[str, Any] = {"mem": None, "vmalloc": None, "kaslr": False}
    unknown: list[str] = []
    for key, value, tok in _tokens(cmdline):
        if key == "mem":
            if value == "nopentium" and profile.bits == 32 and profile.name.startswith("i386"):
                params["nopentium"] = True     # arch/i386: no 4 MiB pages; no layout effect
                continue
            size, rest = _size_param(key, value)
            if rest.startswith("@") and profile.name == "arm":
                start, tail = memparse(rest[1:])   # arch/arm/kernel/setup.c early_mem: size@start
                if tail or start:
                    raise ConfigError(f"mem={value}: the model's RAM is one bank at physical 0")
            elif rest:
                raise ConfigError(f"mem={value}: {value!r} is not a size")
            if size == 0:
                raise ConfigError("mem=0: the kernel rejects a zero memory limit")
            params["mem"] = size
        elif key == "vmalloc" and profile.accepts_vmalloc_param:
            size, rest = _size_param(key, value)
            if rest:
                raise ConfigError(f"vmalloc={value}: {value!r} is not a size")
            params["vmalloc"] = size
        elif key == "vmalloc" and profile.bits == 64:
            unknown.append(tok)
        elif key == "nokaslr" and value is None and profile.bits == 64:
            params["nokaslr"] = True
        elif key == "kmemleak" and has(kver, "kmemleak"):
            # mm/kmemleak.c kmemleak_boot_config(): a CONFIG_DEBUG_KMEMLEAK kernel built
            # DEFAULT_OFF, turned on at boot (kernel/kmemleak.py).
            if value not in ("on", "off"):
                raise ConfigError(f"kmemleak={value}: on or off")
            params["kmemleak"] = value == "on"
        else:
            raise ConfigError(f"{profile.name}: unknown kernel parameter {tok!r}")
    if unknown:
        # init/main.c print_unknown_bootoptions() (5.13+).
        messages.append(f'Unknown kernel command line parameters "{" ".join(unknown)}", '
                        "will be passed to user space.")

    ram = ram_bytes
    if params["mem"] is not None and params["mem"] < ram:
        ram = params["mem"]
        if profile.name.startswith("x86") or profile.name.startswith("i386"):
            # arch/x86/kernel/e820.c: the map is printed again after mem= trimmed it.
            messages.append("user-defined physical RAM map:")
            messages.append(f"user: [mem {0:#018x}-{(ram >> shift << shift) - 1:#018x}] usable")
    ram = ram >> shift << shift
    if ram < profile.min_ram:
        raise ConfigError(f"mem={format_size(params['mem'])} leaves {format_size(ram)} of RAM; "
                          f"{profile.name} needs at least {format_size(profile.min_ram)}")

    shifts = {lv.name: lv.shift for lv in profile.levels}
    max_order = ioremap_max_order(kver, arch_family(profile.name), profile.page_shift,
                                  shifts.get("pmd", shifts["pgd"]), shifts.get("pud", 30),
                                  profile.ioremap_max_order)
    if profile.name.startswith("i386"):
        lay = _boot_i386(profile, ram, cmdline, messages, params, kver)
    elif profile.name == "arm":
        lay = _boot_arm(profile, ram, cmdline, messages, params, kver)
    else:
        lay = _boot_64(profile, ram, cmdline, messages, params, kaslr_seed, kver)
    return dataclasses.replace(lay, kernel=kver, ioremap_max_order=max_order)


def _boot_64(profile: ArchProfile, ram: int, cmdline: str, messages: list[str],
             params: dict[str, Any], kaslr_seed: int | None, kver: KernelVersion) -> BootLayout:
    shift = profile.page_shift
    ram_pfn = ram >> shift

    # -- 64-bit: fixed (or KASLR-randomised) regions, no highmem -------------------------------
    if profile.name == "x86_64-la57" and not has(kver, "x86_64_five_level_paging"):
        raise ConfigError(f"x86_64-la57: 5-level paging came with Linux "
                          f"{CHANGES['x86_64_five_level_paging'].since}; Linux {kver} has none")
    page_offset = profile.page_offset
    vstart = profile.vmalloc_start
    vend = profile.vmalloc_end
    if profile.name == "x86_64" and not has(kver, "x86_64_vmalloc_64tb_map"):
        vstart, vend = X86_64_VMALLOC_2622                      # include/asm-x86_64/pgtable.h
    assert vstart is not None and profile.modules_start is not None
    assert profile.modules_end is not None
    if kaslr_seed is not None and profile.kaslr and not has(kver, "x86_64_kaslr_memory"):
        messages.append(f"kaslr_seed ignored: Linux {kver} does not randomise the memory "
                        f"regions (CONFIG_RANDOMIZE_MEMORY came with "
                        f"{CHANGES['x86_64_kaslr_memory'].since})")
        kaslr_seed = None
    if profile.kaslr and kaslr_seed is not None and not params.get("nokaslr"):
        page_offset, vstart, vmemmap = _kaslr_bases(profile, ram, kaslr_seed)
        vend = vstart + profile.vmalloc_default - 1
        params["kaslr"] = True
        params["vmemmap_base"] = vmemmap
    mstart, mend = profile.modules_start, profile.modules_end
    bpf_start = bpf_end = 0
    if profile.name == "arm64":
        a64 = arm64_layout(profile, kver)
        page_offset, vstart, vend = a64.page_offset, a64.vmalloc_start, a64.vmalloc_end
        mstart, mend = a64.modules_start, a64.modules_end
        bpf_start, bpf_end = a64.bpf_jit_start, a64.bpf_jit_end
        if not has(kver, "arm64_va_bits_48"):
            messages.append(f"arm64: Linux {kver} had no 48-bit VA (39 or 42 bits; 48 from "
                            f"{CHANGES['arm64_va_bits_48'].since}): this layout is its "
                            "memory.h evaluated at the model's VA_BITS 48")
    zones: list[tuple[str, int, int]] = []
    lo = 0
    limits = {"DMA": 16 * MiB, "DMA32": 4 * GiB, "NORMAL": None}
    for name in profile.zone_names:
        limit = limits[name]
        hi = ram_pfn if limit is None else min(ram_pfn, limit >> shift)
        hi = max(hi, lo)
        zones.append((name, lo, hi))
        lo = hi
    messages += _zone_lines_modern(zones, shift)
    return BootLayout(profile=profile, ram_bytes=ram, page_offset=page_offset,
                      vmalloc_start=vstart, vmalloc_end=vend,
                      modules_start=mstart, modules_end=mend,
                      lowmem_bytes=ram, highmem_bytes=0, zones=tuple(zones),
                      messages=tuple(messages), params=params,
                      high_memory=page_offset + ram, cmdline=cmdline,
                      bpf_jit_start=bpf_start, bpf_jit_end=bpf_end)


def _boot_i386(profile: ArchProfile, ram: int, cmdline: str, messages: list[str],
               params: dict[str, Any], kver: KernelVersion) -> BootLayout:
    shift = profile.page_shift
    offset = profile.vmalloc_offset
    vend = vmalloc_end_for(profile, kver)
    reserve = profile.vmalloc_default
    if params["vmalloc"] is not None:
        reserve = x86_32_vmalloc_reserve(kver, params["vmalloc"], offset)
    params["vmalloc_reserve"] = reserve
    maxmem = x86_32_maxmem(kver, profile.page_offset, vend, reserve)   # MAXMEM
    if maxmem < profile.min_ram:
        raise ConfigError(f"vmalloc={format_size(reserve)} leaves "
                          f"{format_size(max(maxmem, 0))} for lowmem; the kernel cannot boot")
    low_pfn = min(ram, maxmem) >> shift                         # max_low_pfn
    lowmem = low_pfn << shift
    high_memory = profile.page_offset + lowmem
    vstart = x86_32_vmalloc_start(kver, high_memory, offset)   # VMALLOC_START
    if vstart >= vend:
        # Later kernels BUG_ON(VMALLOC_START >= VMALLOC_END) in mem_init(); 2.6.22 would
        # boot with an empty (negative) vmalloc area.  Neither is a machine to model.
        raise ConfigError(f"vmalloc={format_size(reserve)} leaves no vmalloc space "
                          f"(VMALLOC_START {vstart:#x} >= VMALLOC_END {vend:#x})")
    ram_pfn = ram >> shift
    dma = min(16 * MiB >> shift, low_pfn)
    zones = [("DMA", 0, dma), ("NORMAL", dma, low_pfn), ("HIGHMEM", low_pfn, ram_pfn)]
    # arch/i386/kernel/setup.c (2.6.22) find_max_low_pfn()/setup_memory(), pages_to_mb().
    messages.append(f"{(ram - lowmem) >> 20}MB HIGHMEM available.")
    messages.append(f"{lowmem >> 20}MB LOWMEM available.")
    messages += _zone_lines_2622(zones)
    assert profile.pkmap_base is not None
    messages += ["virtual kernel memory layout:",
                 _layout_line("pkmap", profile.pkmap_base, profile.pkmap_base + profile.pkmap_size,
                              "kB"),
                 _layout_line("vmalloc", vstart, vend, "MB"),
                 _layout_line("lowmem", profile.page_offset, high_memory, "MB")]
    # 2.6.22 module_alloc() is vmalloc_exec(): modules share the vmalloc area.
    return BootLayout(profile=profile, ram_bytes=ram, page_offset=profile.page_offset,
                      vmalloc_start=vstart, vmalloc_end=vend, modules_start=vstart,
                      modules_end=vend, lowmem_bytes=lowmem, highmem_bytes=ram - lowmem,
                      zones=tuple(zones), messages=tuple(messages), params=params,
                      high_memory=high_memory, cmdline=cmdline)


def _boot_arm(profile: ArchProfile, ram: int, cmdline: str, messages: list[str],
              params: dict[str, Any], kver: KernelVersion) -> BootLayout:
    shift = profile.page_shift
    offset = profile.vmalloc_offset
    # A profile built for a device (snapshot/restore.py) carries the device's own VMALLOC_END.
    vend = vmalloc_end_for(profile, kver)
    size = None
    if params["vmalloc"] is not None:
        # arch/arm/mm/mmu.c early_vmalloc()
        size = params["vmalloc"]
        if size < 16 * MiB:
            size = 16 * MiB
            messages.append(f"vmalloc area is too small, limiting to {size >> 20}MiB")
        vmalloc_max = arm_vmalloc_max(kver, vend, profile.page_offset, offset)
        if size > vmalloc_max:
            size = vmalloc_max
            messages.append(f"vmalloc area is too big, limiting to {size >> 20}MiB")
    params["vmalloc_size"] = profile.vmalloc_default if size is None else size
    # adjust_lowmem_bounds(): PHYS_OFFSET is 0 in the model.
    vmalloc_limit = arm_vmalloc_min(kver, vend, size, profile.vmalloc_default, offset) - profile.page_offset
    lowmem_limit = min(vmalloc_limit, ram)
    high_memory = profile.page_offset + lowmem_limit
    low_pfn = lowmem_limit >> shift                             # find_limits(): PFN_DOWN
    lowmem = low_pfn << shift
    vstart = (high_memory + offset) & ~(offset - 1)             # VMALLOC_START
    ram_pfn = ram >> shift
    zones = [("NORMAL", 0, low_pfn), ("HIGHMEM", low_pfn, ram_pfn)]
    messages += _zone_lines_modern(zones, shift)
    assert profile.modules_start is not None and profile.modules_end is not None
    assert profile.pkmap_base is not None
    # arch/arm/mm/init.c mem_init() (up to 5.x) printed this layout.
    messages += ["Virtual kernel memory layout:",
                 _layout_line("vmalloc", vstart, vend, "MB"),
                 _layout_line("lowmem", profile.page_offset, high_memory, "MB"),
                 _layout_line("pkmap", profile.pkmap_base, profile.pkmap_base + profile.pkmap_size,
                              "MB"),
                 _layout_line("modules", profile.modules_start, profile.modules_end, "MB")]
    return BootLayout(profile=profile, ram_bytes=ram, page_offset=profile.page_offset,
                      vmalloc_start=vstart, vmalloc_end=vend,
                      modules_start=profile.modules_start, modules_end=profile.modules_end,
                      lowmem_bytes=lowmem, highmem_bytes=ram - lowmem, zones=tuple(zones),
                      messages=tuple(messages), params=params, high_memory=high_memory,
                      cmdline=cmdline)
