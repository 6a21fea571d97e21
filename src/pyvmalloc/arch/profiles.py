"""Machine profiles: page sizes, page-table levels, address-space constants and protections.

Each profile states which kernel its constants come from (``kernel_version``) and every
constant names its header.  Where versions differ the choice is written next to the value.
The vmalloc bounds of the 32-bit profiles depend on RAM and ``vmalloc=``; ``boot.py``
computes them from the constants here.

RAM limits.  ``min_ram`` is 16 MiB on 32-bit profiles (i386 ZONE_DMA alone is 16 MiB, and
2.6-era 32-bit kernels booted in a few MiB more) and 64 MiB on 64-bit ones (a 64-bit kernel
image, its memmap and page tables take tens of MiB; nothing smaller boots a distribution
kernel).  ``max_ram`` is what the page tables can address: 4 GiB without PAE (32-bit
entries), 64 GiB with PAE (36-bit physical addresses, HIGHMEM64G), and a 1 TiB cap on
64-bit profiles to keep simulated machines sane.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyvmalloc.arch.pte import (
    A64_AF,
    A64_DBM,
    A64_NG,
    A64_PXN,
    A64_RDONLY,
    A64_SHARED,
    A64_USER,
    A64_UXN,
    ARM_PTE_AP0,
    ARM_PTE_AP1,
    ARM_PTE_APX,
    ARM_PTE_B,
    ARM_PTE_C,
    ARM_PTE_NG,
    ARM_PTE_S,
    ARM_PTE_SMALL,
    ARM_PTE_XN,
    X86_A,
    X86_D,
    X86_G,
    X86_NX,
    X86_P,
    X86_PCD,
    X86_PWT,
    X86_RW,
    X86_US,
    Arm64Pte,
    ArmShortPte,
    PteFormat,
    X86Pte,
    a64_attrindx,
    arm_pte_tex,
)
from pyvmalloc.errors import ConfigError

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40

PGPROT_NAMES = ("PAGE_KERNEL", "PAGE_KERNEL_EXEC", "PAGE_KERNEL_RO", "PAGE_KERNEL_NOCACHE",
                "PAGE_SHARED", "PAGE_READONLY")


@dataclass(frozen=True)
class Level:
    """One page-table level: ``shift`` = log2 of the span of one entry, ``bits`` index bits."""

    name: str
    shift: int
    bits: int
    entry_size: int

    @property
    def ptrs(self) -> int:
        """PTRS_PER_xxx: entries in one table of this level."""
        return 1 << self.bits

    @property
    def span(self) -> int:
        """Bytes of address space one entry covers (PMD_SIZE, PGDIR_SIZE...)."""
        return 1 << self.shift

    @property
    def table_bytes(self) -> int:
        return self.ptrs * self.entry_size


@dataclass(frozen=True)
class ArchProfile:
    """Everything architecture-specific the upper layers need, for one machine type."""

    name: str
    description: str
    bits: int
    page_shift: int
    page_size: int
    va_bits: int
    levels: tuple[Level, ...]
    page_offset: int
    ioremap_max_order: int
    has_highmem: bool
    has_nx: bool
    gfp_vmalloc32: str
    min_ram: int
    max_ram: int
    pte: PteFormat = field(compare=False)
    kernel_version: str = ""
    task_size: int = 0
    # Non-randomised VMALLOC_START/END; on 32-bit VMALLOC_START follows high_memory (None) and
    # VMALLOC_END is 0, "the kernel version decides" (arch/boot.py vmalloc_end_for), unless a
    # profile made for one device (snapshot/restore.py) carries that device's own value.
    vmalloc_start: int | None = None
    vmalloc_end: int = 0
    vmalloc_offset: int = 0            # VMALLOC_OFFSET: the hole after lowmem (32-bit)
    vmalloc_default: int = 0           # default __VMALLOC_RESERVE / vmalloc_size (32-bit)
    accepts_vmalloc_param: bool = False
    modules_start: int | None = None   # None: modules live in the vmalloc area (i386)
    modules_end: int | None = None
    pkmap_base: int | None = None
    pkmap_size: int = 0
    kaslr: bool = False                # x86-64 CONFIG_RANDOMIZE_MEMORY modelled
    tlb_flush_ceiling: int | None = None
    pte_tables_per_frame: int = 1
    # arm64: TTBR0 (user, low 2^va_bits) and TTBR1 (kernel, top 2^va_bits) are two roots.
    split_roots: bool = False
    zone_names: tuple[str, ...] = ()
    prots: tuple[tuple[str, int], ...] = ()

    # -- lookups ------------------------------------------------------------------------------
    def pgprot(self, name: str) -> int:
        """The pgprot value of ``name`` (``PAGE_KERNEL``...) on this architecture."""
        for key, value in self.prots:
            if key == name:
                return value
        raise ConfigError(f"{self.name}: unknown pgprot {name!r} (known: "
                          f"{', '.join(k for k, _ in self.prots)})")

    def level(self, name: str) -> Level:
        return self.levels[self.level_index(name)]

    def level_index(self, name: str) -> int:
        for i, lv in enumerate(self.levels):
            if lv.name == name:
                return i
        raise ConfigError(f"{self.name}: no page-table level {name!r} (levels: "
                          f"{', '.join(lv.name for lv in self.levels)})")

    @property
    def huge_levels(self) -> tuple[str, ...]:
        """Levels above the pte where a leaf may sit (x86 PS, ARM sections, arm64 blocks)."""
        return tuple(self.levels[i].name for i in sorted(self.pte.huge_levels))

    def canonical(self, addr: int) -> bool:
        """True if ``addr`` is a valid virtual address (sign-extended on 64-bit)."""
        if self.bits == 32:
            return 0 <= addr < 1 << 32
        if not 0 <= addr < 1 << 64:
            return False
        if self.split_roots:
            return addr < 1 << self.va_bits or addr >= (1 << 64) - (1 << self.va_bits)
        top = addr >> (self.va_bits - 1)
        return top == 0 or top == (1 << (65 - self.va_bits)) - 1


# ---------------------------------------------------------------------------------------------
def _x86_prots(has_nx: bool) -> tuple[tuple[str, int], ...]:
    # arch/x86/include/asm/pgtable_types.h (__PAGE_KERNEL etc.); 2.6.22 include/asm-i386/
    # pgtable.h has the same bits.  _PAGE_GLOBAL on kernel pages (PGE is always used).
    nx = X86_NX if has_nx else 0
    kernel = X86_P | X86_RW | X86_A | X86_D | X86_G
    return (("PAGE_KERNEL", kernel | nx),
            ("PAGE_KERNEL_EXEC", kernel),
            ("PAGE_KERNEL_RO", X86_P | X86_A | X86_D | X86_G | nx),
            ("PAGE_KERNEL_NOCACHE", kernel | X86_PCD | X86_PWT | nx),
            ("PAGE_SHARED", X86_P | X86_RW | X86_US | X86_A | nx),
            ("PAGE_READONLY", X86_P | X86_US | X86_A | nx))


def _arm_prots() -> tuple[tuple[str, int], ...]:
    # The hardware small-page entries cpu_v7_set_pte_ext() (arch/arm/mm/proc-v7-2level.S)
    # makes from Linux's PAGE_* (arch/arm/include/asm/pgtable.h): AP0 always, AP1 for
    # L_PTE_USER, APX for L_PTE_RDONLY, XN for L_PTE_XN; normal memory is write-back
    # write-allocate (TEX=1 C B) and shareable on SMP; user pages are not global (nG).
    normal = ARM_PTE_SMALL | ARM_PTE_B | ARM_PTE_C | arm_pte_tex(1) | ARM_PTE_S | ARM_PTE_AP0
    return (("PAGE_KERNEL", normal | ARM_PTE_XN),
            ("PAGE_KERNEL_EXEC", normal),
            ("PAGE_KERNEL_RO", normal | ARM_PTE_APX | ARM_PTE_XN),
            # MT_DEVICE: shared device memory is TEX=0 C=0 B=1.
            ("PAGE_KERNEL_NOCACHE", ARM_PTE_SMALL | ARM_PTE_B | ARM_PTE_S | ARM_PTE_AP0
             | ARM_PTE_XN),
            ("PAGE_SHARED", normal | ARM_PTE_AP1 | ARM_PTE_NG | ARM_PTE_XN),
            ("PAGE_READONLY", normal | ARM_PTE_AP1 | ARM_PTE_APX | ARM_PTE_NG | ARM_PTE_XN))


def _arm64_prots() -> tuple[tuple[str, int], ...]:
    # arch/arm64/include/asm/pgtable-prot.h: _PROT_DEFAULT = PTE_TYPE_PAGE|PTE_AF|PTE_SHARED,
    # PROT_NORMAL adds PXN|UXN|PTE_WRITE(=DBM) and MT_NORMAL (index 0); PTE_MAYBE_NG is 0
    # without KPTI.  MT_DEVICE_nGnRE is MAIR index 5 (arch/arm64/include/asm/memory.h, 5.x).
    default = 3 | A64_AF | A64_SHARED
    normal = default | A64_PXN | A64_UXN | A64_DBM | a64_attrindx(0)
    return (("PAGE_KERNEL", normal),
            ("PAGE_KERNEL_EXEC", normal & ~A64_PXN),
            ("PAGE_KERNEL_RO", (normal & ~A64_DBM) | A64_RDONLY),
            ("PAGE_KERNEL_NOCACHE", default | A64_PXN | A64_UXN | A64_DBM | a64_attrindx(5)),
            ("PAGE_SHARED", default | A64_USER | A64_RDONLY | A64_NG | A64_PXN | A64_UXN
             | A64_DBM),
            ("PAGE_READONLY", default | A64_USER | A64_RDONLY | A64_NG | A64_PXN | A64_UXN))


def _levels(spec: tuple[tuple[str, int, int], ...], entry_size: int) -> tuple[Level, ...]:
    return tuple(Level(n, s, b, entry_size) for n, s, b in spec)


def _shifts(levels: tuple[Level, ...]) -> tuple[int, ...]:
    return tuple(lv.shift for lv in levels)


def _make_profiles() -> dict[str, ArchProfile]:
    profiles: dict[str, ArchProfile] = {}

    # -- x86-64, 4-level paging ------------------------------------------------------------
    # arch/x86/include/asm/pgtable_64_types.h: PGDIR_SHIFT 39, PUD_SHIFT 30, PMD_SHIFT 21.
    lv = _levels((("pgd", 39, 9), ("pud", 30, 9), ("pmd", 21, 9), ("pte", 12, 9)), 8)
    # __PHYSICAL_MASK_SHIFT 52 (arch/x86/include/asm/page_64_types.h).
    fmt = X86Pte("x86-64", 8, 52, _shifts(lv), frozenset({1, 2}), has_nx=True)
    profiles["x86_64"] = ArchProfile(
        name="x86_64",
        description="x86-64, 4-level paging, 48-bit virtual addresses",
        bits=64, page_shift=12, page_size=4096, va_bits=48, levels=lv,
        # page_64_types.h: __PAGE_OFFSET_BASE_L4 (4.20+, after the LDT remap moved it).
        page_offset=0xFFFF888000000000,
        # include/linux/vmalloc.h + arch/x86: PUD_SHIFT with huge I/O mappings (4.1+).
        ioremap_max_order=30,
        has_highmem=False, has_nx=True,
        gfp_vmalloc32="DMA32",             # CONFIG_64BIT && CONFIG_ZONE_DMA32
        min_ram=64 * MiB, max_ram=1 * TiB,
        pte=fmt,
        kernel_version="5.x/6.x (arch/x86/include/asm/pgtable_64_types.h, arch/x86/mm/kaslr.c)",
        task_size=(1 << 47) - 4096,        # TASK_SIZE_MAX (asm/page_64_types.h)
        # pgtable_64_types.h: VMALLOC_START = vmalloc_base (0xffffc90000000000 without KASLR),
        # VMALLOC_END = VMALLOC_START + (VMALLOC_SIZE_TB << 40) - 1 with 32 TB.
        vmalloc_start=0xFFFFC90000000000, vmalloc_end=0xFFFFE8FFFFFFFFFF,
        vmalloc_default=32 * TiB,
        modules_start=0xFFFFFFFFA0000000, modules_end=0xFFFFFFFFFF000000,  # MODULES_VADDR/END
        kaslr=True,
        # arch/x86/mm/tlb.c: ranges above tlb_single_page_flush_ceiling (33) pages flush all.
        tlb_flush_ceiling=33,
        zone_names=("DMA", "DMA32", "NORMAL"),
        prots=_x86_prots(True),
    )

    # -- x86-64, 5-level paging (LA57) --------------------------------------------------------
    lv = _levels((("pgd", 48, 9), ("p4d", 39, 9), ("pud", 30, 9), ("pmd", 21, 9),
                  ("pte", 12, 9)), 8)
    fmt = X86Pte("x86-64-la57", 8, 52, _shifts(lv), frozenset({2, 3}), has_nx=True)
    profiles["x86_64-la57"] = ArchProfile(
        name="x86_64-la57",
        description="x86-64, 5-level paging (LA57), 57-bit virtual addresses",
        bits=64, page_shift=12, page_size=4096, va_bits=57, levels=lv,
        page_offset=0xFF11000000000000,    # __PAGE_OFFSET_BASE_L5
        ioremap_max_order=30,
        has_highmem=False, has_nx=True, gfp_vmalloc32="DMA32",
        min_ram=64 * MiB, max_ram=1 * TiB,
        pte=fmt,
        kernel_version="5.x/6.x (arch/x86/include/asm/pgtable_64_types.h, 5-level)",
        task_size=(1 << 56) - 4096,
        # pgtable_64_types.h: __VMALLOC_BASE_L5 0xffa0000000000000, VMALLOC_SIZE_TB_L5 12800.
        vmalloc_start=0xFFA0000000000000,
        vmalloc_end=0xFFA0000000000000 + (12800 << 40) - 1,
        vmalloc_default=12800 * TiB,
        modules_start=0xFFFFFFFFA0000000, modules_end=0xFFFFFFFFFF000000,
        kaslr=True, tlb_flush_ceiling=33,
        zone_names=("DMA", "DMA32", "NORMAL"),
        prots=_x86_prots(True),
    )

    # -- i386, 2-level (non-PAE) ------------------------------------------------------------
    # 2.6.22, include/asm-i386/pgtable-2level-defs.h: PGDIR_SHIFT 22, 1024 entries of 4 bytes.
    lv = _levels((("pgd", 22, 10), ("pte", 12, 10)), 4)
    fmt = X86Pte("i386", 4, 32, _shifts(lv), frozenset({0}), has_nx=False)
    i386_common = dict(
        bits=32, page_shift=12, page_size=4096, va_bits=32,
        page_offset=0xC0000000,            # CONFIG_PAGE_OFFSET (3G/1G split)
        has_highmem=True, gfp_vmalloc32="KERNEL",
        # VMALLOC_END = PKMAP_BASE - 2*PAGE_SIZE with HIGHMEM; where PKMAP_BASE lies depends
        # on the kernel version (versions.x86_32_vmalloc_end): 0 here means "ask it".
        vmalloc_end=0, vmalloc_offset=8 * MiB,
        vmalloc_default=128 * MiB,         # __VMALLOC_RESERVE (arch/i386/mm/init.c)
        accepts_vmalloc_param=True,
        pkmap_base=0xFF800000,
        task_size=0xC0000000,
        # 2.6.22 include/asm-i386/tlbflush.h: flush_tlb_kernel_range() is flush_tlb_all().
        tlb_flush_ceiling=0,
        zone_names=("DMA", "NORMAL", "HIGHMEM"),
        min_ram=16 * MiB,
        kernel_version="2.6.22 constants; the vmalloc range per kernel version (versions.py)",
    )
    profiles["i386"] = ArchProfile(
        name="i386",
        description="i386, 2-level paging, 3G/1G split, HIGHMEM4G",
        levels=lv, pte=fmt,
        ioremap_max_order=19,              # 2.6.22 include/linux/vmalloc.h: generic 7 + PAGE_SHIFT (PMD_SHIFT from 4.1)
        has_nx=False, max_ram=4 * GiB,
        pkmap_size=1024 * 4096,            # LAST_PKMAP 1024
        prots=_x86_prots(False),
        **i386_common,  # type: ignore[arg-type]
    )

    # -- i386 with PAE ------------------------------------------------------------------------
    # include/asm-i386/pgtable-3level-defs.h: PGDIR_SHIFT 30 (4 entries), PMD_SHIFT 21.
    lv = _levels((("pgd", 30, 2), ("pmd", 21, 9), ("pte", 12, 9)), 8)
    # arch/x86/include/asm/page_32_types.h: __PHYSICAL_MASK_SHIFT 44 (pfn fits unsigned long).
    fmt = X86Pte("i386-pae", 8, 44, _shifts(lv), frozenset({1}), has_nx=True, pae_top=True)
    profiles["i386-pae"] = ArchProfile(
        name="i386-pae",
        description="i386 with PAE, 3-level paging, NX, HIGHMEM64G",
        levels=lv, pte=fmt,
        ioremap_max_order=19,              # 2.6.22: generic 7 + PAGE_SHIFT (PMD_SHIFT with PAE from 4.1)
        has_nx=True, max_ram=64 * GiB,
        pkmap_size=512 * 4096,             # LAST_PKMAP 512 with PAE
        prots=_x86_prots(True),
        **i386_common,  # type: ignore[arg-type]
    )

    # -- ARMv7, short descriptors ----------------------------------------------------------
    lv = (Level("pgd", 20, 12, 4), Level("pte", 12, 8, 4))
    profiles["arm"] = ArchProfile(
        name="arm",
        description="ARMv7 (short descriptors, 3G/1G split, HIGHMEM)",
        bits=32, page_shift=12, page_size=4096, va_bits=32, levels=lv,
        page_offset=0xC0000000,
        ioremap_max_order=24,              # arch/arm/include/asm/memory.h
        has_highmem=True, has_nx=True, gfp_vmalloc32="KERNEL",
        min_ram=16 * MiB, max_ram=4 * GiB,
        pte=ArmShortPte(),
        kernel_version="arch/arm/mm/mmu.c early_vmalloc/adjust_lowmem_bounds, "
                       "arch/arm/include/asm/pgtable.h; the vmalloc range per kernel version",
        task_size=0xC0000000 - 16 * MiB,   # TASK_SIZE = PAGE_OFFSET - 16M
        vmalloc_end=0,                     # by kernel version: versions.arm_vmalloc_end
        vmalloc_offset=8 * MiB,
        vmalloc_default=240 * MiB,         # arch/arm/mm/mmu.c vmalloc_size
        accepts_vmalloc_param=True,
        # arch/arm/include/asm/memory.h: MODULES_VADDR = PAGE_OFFSET - 16M; with HIGHMEM
        # MODULES_END = PAGE_OFFSET - PMD_SIZE, the pkmap area taking the last 2 MiB.
        modules_start=0xC0000000 - 16 * MiB, modules_end=0xC0000000 - 2 * MiB,
        pkmap_base=0xC0000000 - 2 * MiB, pkmap_size=2 * MiB,
        tlb_flush_ceiling=None,            # v7 flushes kernel ranges page by page
        pte_tables_per_frame=2,
        zone_names=("NORMAL", "HIGHMEM"),
        prots=_arm_prots(),
    )

    # -- arm64, 4 KiB pages, 48-bit VA ------------------------------------------------------
    lv = _levels((("pgd", 39, 9), ("pud", 30, 9), ("pmd", 21, 9), ("pte", 12, 9)), 8)
    profiles["arm64"] = ArchProfile(
        name="arm64",
        description="arm64, 4 KiB granule, 4 levels, 48-bit virtual addresses",
        bits=64, page_shift=12, page_size=4096, va_bits=48, levels=lv,
        # The 5.16-6.4 constants; arch/boot.py arm64_layout() gives each release's PAGE_OFFSET,
        # vmalloc, module and BPF JIT ranges (the machine's are in its BootLayout).
        page_offset=0xFFFF000000000000,    # _PAGE_OFFSET(48) = -(1 << 48) (5.4+)
        ioremap_max_order=30,              # memory.h: PUD_SHIFT with 4K pages
        has_highmem=False, has_nx=True,
        gfp_vmalloc32="DMA32",
        min_ram=64 * MiB, max_ram=1 * TiB,
        pte=Arm64Pte(_shifts(lv)),
        kernel_version="5.16-6.4 (arch/arm64/include/asm/memory.h, pgtable.h)",
        task_size=1 << 48,
        # memory.h 5.16+: MODULES_VADDR = _PAGE_END(48) = 0xffff800000000000, MODULES_VSIZE
        # 128M; pgtable.h: VMALLOC_START = MODULES_END, VMALLOC_END = VMEMMAP_START - 256M
        # with VMEMMAP_START = -(1 << (48 - 6)) = 0xfffffc0000000000.
        vmalloc_start=0xFFFF800008000000, vmalloc_end=0xFFFFFBFFF0000000,
        vmalloc_default=0xFFFFFBFFF0000000 - 0xFFFF800008000000,
        modules_start=0xFFFF800000000000, modules_end=0xFFFF800008000000,
        # arch/arm64/include/asm/tlbflush.h: more than MAX_TLBI_OPS (PTRS_PER_PTE) pages
        # becomes flush_tlb_all().
        tlb_flush_ceiling=512,
        split_roots=True,
        # Zones as arm64 5.0-5.4 (ZONE_DMA32 = first 4 GiB).  6.x names that same range
        # ZONE_DMA on machines without DMA-limited devices and leaves DMA32 empty; naming
        # it DMA32 lets vmalloc_32()'s GFP_DMA32 land where the kernel's fallback lands.
        zone_names=("DMA32", "NORMAL"),
        prots=_arm64_prots(),
    )
    return profiles


PROFILES: dict[str, ArchProfile] = _make_profiles()


def arch_family(name: str) -> str:
    """The arch family a profile name belongs to, as the version rules name them: ``i386`` for
    ``i386``/``i386-pae``, else the name before its first ``-`` (``x86_64-la57`` is ``x86_64``)."""
    return "i386" if name.startswith("i386") else name.split("-")[0]


def get_profile(name: str | ArchProfile) -> ArchProfile:
    """The profile called ``name`` (an ArchProfile passes through)."""
    if isinstance(name, ArchProfile):
        return name
    profile = PROFILES.get(name) if isinstance(name, str) else None
    if profile is None:
        raise ConfigError(f"unknown architecture {name!r} (known: {', '.join(PROFILES)})")
    return profile
