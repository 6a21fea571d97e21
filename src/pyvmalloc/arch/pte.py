"""Page-table entry formats: the real bit layouts of x86 (32-bit, PAE, 64-bit), ARMv7 and arm64.

A ``PteFormat`` encodes and decodes the entries of every level of one architecture's tables:
leaf entries (``mk_pte``/``pte_pfn``...), entries pointing at the next table (``mk_table``/
``table_phys``) and huge leaves above the last level (x86 PS bit, ARM sections, arm64
blocks).  Entries are plain ints here; the vectorised forms (``mk_ptes``, ``ptes_pfn``) work
on numpy arrays of the entry dtype, which is how the mmu layer writes whole tables at once.

``level`` arguments are indices into the profile's levels, 0 being the top (pgd); ``None``
means the last level (pte).

Access rights are reduced to a small bit set (``PERM_*``) per entry; the walker ANDs the
sets of all entries on the path, as x86 does with RW/US/NX and arm64 with its table bits.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from pyvmalloc.errors import ConfigError

# Access rights an entry grants (the effective right is the AND along the walk).
PERM_KR = 1   # kernel read
PERM_KW = 2   # kernel write
PERM_UR = 4   # user read
PERM_UW = 8   # user write
PERM_KX = 16  # kernel execute
PERM_UX = 32  # user execute
PERM_ALL = 63


def _bit(n: int) -> int:
    return 1 << n


class PteFormat:
    """Common part of every format: the address field, sizes, vectorised encode/decode."""

    name = "generic"

    def __init__(self, entry_size: int, page_shift: int, phys_bits: int,
                 shifts: tuple[int, ...], huge_levels: frozenset[int]) -> None:
        self.entry_size = entry_size
        self.dtype = np.dtype("<u8" if entry_size == 8 else "<u4")
        self.page_shift = page_shift
        self.phys_bits = phys_bits
        # Bits of an entry that hold the physical address of a page or a table.
        self.addr_mask = ((1 << phys_bits) - 1) & ~((1 << page_shift) - 1)
        self.max_pfn = 1 << (phys_bits - page_shift)
        self.shifts = shifts
        self.nlevels = len(shifts)
        self.last = self.nlevels - 1
        self.huge_levels = huge_levels

    # -- checks -------------------------------------------------------------------------------
    def _level(self, level: int | None) -> int:
        if level is None:
            return self.last
        if not isinstance(level, int) or not 0 <= level < self.nlevels:
            raise ConfigError(f"{self.name}: no page-table level {level!r} (0..{self.last})")
        return level

    def _check_pfn(self, pfn: int) -> None:
        if not isinstance(pfn, (int, np.integer)) or not 0 <= pfn < self.max_pfn:
            raise ConfigError(f"{self.name}: pfn {pfn!r} does not fit a {self.phys_bits}-bit "
                              "physical address")

    def _check_prot(self, prot: int) -> None:
        if not isinstance(prot, (int, np.integer)) or prot < 0 or prot >> (8 * self.entry_size):
            raise ConfigError(f"{self.name}: {prot!r} is not a pgprot value")
        if prot & self.addr_mask:
            raise ConfigError(f"{self.name}: pgprot {prot:#x} overlaps the address field")

    # -- leaf entries -------------------------------------------------------------------------
    def mk_pte(self, pfn: int, prot: int) -> int:
        """pfn_pte(): the leaf entry mapping frame ``pfn`` with protection ``prot``."""
        self._check_pfn(pfn)
        self._check_prot(prot)
        return (int(pfn) << self.page_shift) | int(prot)

    def mk_ptes(self, pfns: npt.ArrayLike, prot: int) -> npt.NDArray[np.unsignedinteger]:
        """``mk_pte`` of every pfn at once, as an array of the entry dtype."""
        self._check_prot(prot)
        arr = np.asarray(pfns)
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= self.max_pfn):
            raise ConfigError(f"{self.name}: a pfn does not fit a {self.phys_bits}-bit "
                              "physical address")
        ptes: npt.NDArray[np.unsignedinteger] = (
            (arr.astype(self.dtype) << self.dtype.type(self.page_shift)) | self.dtype.type(prot))
        return ptes

    def entry_none(self, e: int) -> bool:
        """pte_none()/pmd_none()...: the entry is all zero."""
        return e == 0

    def pte_present(self, e: int) -> bool:
        raise NotImplementedError

    def pte_pfn(self, e: int) -> int:
        """The frame a leaf pte maps."""
        return (e & self.addr_mask) >> self.page_shift

    def ptes_present(self, entries: npt.NDArray[np.unsignedinteger]) -> npt.NDArray[np.bool_]:
        raise NotImplementedError

    def ptes_pfn(self, entries: npt.NDArray[np.unsignedinteger]) -> npt.NDArray[np.int64]:
        """pte_pfn() of every entry, -1 where the entry is not present."""
        pfns: npt.NDArray[np.unsignedinteger] = (
            (entries & self.dtype.type(self.addr_mask)) >> self.dtype.type(self.page_shift))
        out = pfns.astype(np.int64)
        out[~self.ptes_present(entries)] = -1
        return out

    def pte_write(self, e: int) -> bool:
        return bool(self.perms(e) & PERM_KW)

    def pte_user(self, e: int) -> bool:
        return bool(self.perms(e) & PERM_UR)

    def pte_exec(self, e: int) -> bool:
        return bool(self.perms(e) & PERM_KX)

    def pte_flags(self, e: int, level: int | None = None) -> list[str]:
        raise NotImplementedError

    def perms(self, e: int, level: int | None = None) -> int:
        """The ``PERM_*`` rights this entry grants (all rights for entries that carry none)."""
        raise NotImplementedError

    def hw_update(self, e: int, write: bool) -> int:
        """The leaf entry after the hardware walker's own update (accessed/dirty), if any."""
        return e

    # -- tables and huge leaves ---------------------------------------------------------------
    def mk_table(self, table_phys: int, level: int, user: bool = False) -> int:
        """The entry at ``level`` pointing to the next-level table at ``table_phys``."""
        raise NotImplementedError

    def table_phys(self, e: int, level: int) -> int:
        """Physical address of the next-level table an upper entry points to."""
        return e & self.addr_mask

    def is_leaf(self, e: int, level: int) -> bool:
        """True if a present entry at ``level`` maps memory itself (a pte, or a huge leaf)."""
        raise NotImplementedError

    def mk_huge(self, pfn: int, level: int, prot: int) -> int:
        """A huge leaf at ``level`` (above the pte level) mapping from frame ``pfn``."""
        raise NotImplementedError

    def leaf_phys(self, e: int, level: int) -> int:
        """Physical base of the memory a leaf at ``level`` maps."""
        return e & self.addr_mask & ~((1 << self.shifts[level]) - 1)

    def _check_huge(self, pfn: int, level: int, prot: int) -> None:
        level = self._level(level)
        if level not in self.huge_levels:
            raise ConfigError(f"{self.name}: no huge leaves at level {level}")
        self._check_pfn(pfn)
        self._check_prot(prot)
        span = 1 << (self.shifts[level] - self.page_shift)
        if pfn % span:
            raise ConfigError(f"{self.name}: pfn {pfn:#x} is not aligned to a level-{level} leaf")


# ---------------------------------------------------------------------------------------------
# x86: arch/x86/include/asm/pgtable_types.h (_PAGE_BIT_*); 2.6.22: include/asm-i386/pgtable.h
X86_P, X86_RW, X86_US, X86_PWT, X86_PCD = _bit(0), _bit(1), _bit(2), _bit(3), _bit(4)
X86_A, X86_D, X86_PS, X86_G, X86_NX = _bit(5), _bit(6), _bit(7), _bit(8), _bit(63)
X86_PAT = _bit(7)          # at the pte level bit 7 is PAT, above it PSE
X86_PAT_LARGE = _bit(12)   # PAT of a huge leaf moves to bit 12
# _PAGE_TABLE: what pmd_populate_kernel()/pud_populate() put in an upper entry.
X86_PAGE_TABLE = X86_P | X86_RW | X86_US | X86_A | X86_D


class X86Pte(PteFormat):
    """x86 entries: 4-byte (i386), 8-byte PAE, 8-byte x86-64 (4 or 5 levels).

    ``pae_top`` marks the PAE page-directory-pointer table at level 0, whose entries have only
    P (and cache bits): RW/US/A/D are reserved there, so pud_populate() writes ``__pa(pmd) |
    _PAGE_PRESENT`` (arch/x86/include/asm/pgalloc.h, PAE).
    """

    def __init__(self, name: str, entry_size: int, phys_bits: int, shifts: tuple[int, ...],
                 huge_levels: frozenset[int], has_nx: bool, pae_top: bool = False) -> None:
        super().__init__(entry_size, 12, phys_bits, shifts, huge_levels)
        self.name = name
        self.has_nx = has_nx
        self.pae_top = pae_top

    def pte_present(self, e: int) -> bool:
        return bool(e & X86_P)

    def ptes_present(self, entries: npt.NDArray[np.unsignedinteger]) -> npt.NDArray[np.bool_]:
        present: npt.NDArray[np.bool_] = (entries & self.dtype.type(X86_P)) != 0
        return present

    def perms(self, e: int, level: int | None = None) -> int:
        if not e & X86_P:
            return 0
        if self.pae_top and self._level(level) == 0:
            return PERM_ALL
        p = PERM_KR
        nx = self.has_nx and bool(e & X86_NX)
        # CR0.WP is set by Linux, so RW=0 stops kernel writes too.
        if e & X86_RW:
            p |= PERM_KW
        if e & X86_US:
            p |= PERM_UR | (PERM_UW if e & X86_RW else 0)
        if not nx:
            p |= PERM_KX | (PERM_UX if e & X86_US else 0)
        return p

    def pte_flags(self, e: int, level: int | None = None) -> list[str]:
        level = self._level(level)
        b7 = "PAT" if level == self.last else "PS"
        names = [(X86_P, "P"), (X86_RW, "RW"), (X86_US, "US"), (X86_PWT, "PWT"),
                 (X86_PCD, "PCD"), (X86_A, "A"), (X86_D, "D"), (X86_PS, b7), (X86_G, "G")]
        out = [n for bit, n in names if e & bit]
        if level != self.last and e & X86_PS and e & X86_PAT_LARGE:
            out.append("PAT")
        if self.entry_size == 8 and e & X86_NX:
            out.append("NX")
        return out

    def hw_update(self, e: int, write: bool) -> int:
        # The page walker sets Accessed, and Dirty on a write (Intel SDM vol. 3, 4.8).
        return e | X86_A | (X86_D if write else 0)

    def mk_table(self, table_phys: int, level: int, user: bool = False) -> int:
        level = self._level(level)
        if table_phys & ~self.addr_mask:
            raise ConfigError(f"{self.name}: table address {table_phys:#x} not page aligned")
        if self.pae_top and level == 0:
            return table_phys | X86_P
        return table_phys | X86_PAGE_TABLE

    def is_leaf(self, e: int, level: int) -> bool:
        return level == self.last or (level in self.huge_levels and bool(e & X86_PS))

    def mk_huge(self, pfn: int, level: int, prot: int) -> int:
        self._check_huge(pfn, level, prot)
        if prot & X86_PAT:
            prot = (prot & ~X86_PAT) | X86_PAT_LARGE
        return (int(pfn) << 12) | prot | X86_PS

    def leaf_phys(self, e: int, level: int) -> int:
        if level == self.last:
            return e & self.addr_mask
        return e & self.addr_mask & ~((1 << self.shifts[level]) - 1)


# ---------------------------------------------------------------------------------------------
# ARMv7 short descriptors: arch/arm/include/asm/pgtable-2level-hwdef.h
ARM_PMD_TYPE_TABLE, ARM_PMD_TYPE_SECT, ARM_PMD_BIT4 = 1, 2, _bit(4)
ARM_SECT_B, ARM_SECT_C, ARM_SECT_XN = _bit(2), _bit(3), _bit(4)
ARM_SECT_AP_WRITE, ARM_SECT_AP_READ, ARM_SECT_APX = _bit(10), _bit(11), _bit(15)
ARM_SECT_S, ARM_SECT_NG, ARM_SECT_SUPER = _bit(16), _bit(17), _bit(18)
ARM_PTE_XN, ARM_PTE_SMALL, ARM_PTE_B, ARM_PTE_C = _bit(0), _bit(1), _bit(2), _bit(3)
ARM_PTE_AP0, ARM_PTE_AP1, ARM_PTE_APX = _bit(4), _bit(5), _bit(9)
ARM_PTE_S, ARM_PTE_NG = _bit(10), _bit(11)
# arch/arm/include/asm/domain.h (without CONFIG_IO_36)
ARM_DOMAIN_KERNEL, ARM_DOMAIN_USER = 0, 1


def arm_pte_tex(x: int) -> int:
    """PTE_EXT_TEX(x): memory type extension bits 6-8 of a small page."""
    return (x & 7) << 6


def _arm_ap_perms(ap: int, apx: bool, xn: bool) -> int:
    """ARMv7 ARM B3.7.1: AP[2:0] -> rights (APX=AP[2]); v6's 0b110 read-only encoding included."""
    if ap == 0:
        return 0
    if apx:
        p = PERM_KR | (PERM_UR if ap >= 2 else 0)
    else:
        p = PERM_KR | PERM_KW | (PERM_UR if ap >= 2 else 0) | (PERM_UW if ap == 3 else 0)
    if not xn:
        p |= PERM_KX | (PERM_UX if p & PERM_UR else 0)
    return p


class ArmShortPte(PteFormat):
    """ARMv7 short-descriptor format: level 0 = 4096 first-level entries (1 MiB each: a
    pointer to a 256-entry second-level table, or a section), level 1 = small pages.

    Second-level tables are 1 KiB, so a table address is 1 KiB aligned, not page aligned.
    """

    def __init__(self) -> None:
        super().__init__(4, 12, 32, (20, 12), frozenset({0}))
        self.name = "arm-short"

    def pte_present(self, e: int) -> bool:
        return (e & 3) != 0

    def ptes_present(self, entries: npt.NDArray[np.unsignedinteger]) -> npt.NDArray[np.bool_]:
        present: npt.NDArray[np.bool_] = (entries & self.dtype.type(3)) != 0
        return present

    def perms(self, e: int, level: int | None = None) -> int:
        level = self._level(level)
        if level == 0:
            kind = e & 3
            if kind == ARM_PMD_TYPE_TABLE:
                return PERM_ALL          # domains are "client": rights come from the pte
            if kind == ARM_PMD_TYPE_SECT:
                ap = (e >> 10) & 3
                return _arm_ap_perms(ap, bool(e & ARM_SECT_APX), bool(e & ARM_SECT_XN))
            return 0
        if not e & 3:
            return 0
        ap = (e >> 4) & 3
        return _arm_ap_perms(ap, bool(e & ARM_PTE_APX), bool(e & ARM_PTE_XN))

    def pte_flags(self, e: int, level: int | None = None) -> list[str]:
        level = self._level(level)
        if level == 0:
            kind = e & 3
            if kind == ARM_PMD_TYPE_TABLE:
                return ["TABLE", f"DOMAIN{(e >> 5) & 15}"] + (["BIT4"] if e & ARM_PMD_BIT4 else [])
            if kind != ARM_PMD_TYPE_SECT:
                return [] if e == 0 else ["FAULT"]
            out = ["SUPERSECTION" if e & ARM_SECT_SUPER else "SECTION"]
            out += [n for bit, n in ((ARM_SECT_B, "B"), (ARM_SECT_C, "C"), (ARM_SECT_XN, "XN"))
                    if e & bit]
            out.append(f"AP={(e >> 10) & 3:02b}")
            if (e >> 12) & 7:
                out.append(f"TEX={(e >> 12) & 7}")
            out += [n for bit, n in ((ARM_SECT_APX, "APX"), (ARM_SECT_S, "S"), (ARM_SECT_NG, "nG"))
                    if e & bit]
            return out
        kind = e & 3
        if kind == 0:
            return []
        out = ["LARGE"] if kind == 1 else ["SMALL"]
        if kind == 3:
            out.append("XN")
        out += [n for bit, n in ((ARM_PTE_B, "B"), (ARM_PTE_C, "C")) if e & bit]
        out.append(f"AP={(e >> 4) & 3:02b}")
        if (e >> 6) & 7:
            out.append(f"TEX={(e >> 6) & 7}")
        out += [n for bit, n in ((ARM_PTE_APX, "APX"), (ARM_PTE_S, "S"), (ARM_PTE_NG, "nG"))
                if e & bit]
        return out

    def mk_table(self, table_phys: int, level: int, user: bool = False) -> int:
        # arch/arm/include/asm/pgalloc.h: _PAGE_KERNEL_TABLE / _PAGE_USER_TABLE
        level = self._level(level)
        if level != 0:
            raise ConfigError("arm-short: only first-level entries point to tables")
        if table_phys & 0x3FF or not 0 <= table_phys < 1 << 32:
            raise ConfigError(f"arm-short: table address {table_phys:#x} not 1 KiB aligned")
        domain = ARM_DOMAIN_USER if user else ARM_DOMAIN_KERNEL
        return table_phys | ARM_PMD_TYPE_TABLE | ARM_PMD_BIT4 | (domain << 5)

    def table_phys(self, e: int, level: int) -> int:
        return e & 0xFFFFFC00

    def is_leaf(self, e: int, level: int) -> bool:
        return level == 1 or (e & 3) == ARM_PMD_TYPE_SECT

    def mk_huge(self, pfn: int, level: int, prot: int) -> int:
        """A 1 MiB section carrying the rights of small-page ``prot`` (bits moved to their
        section positions, as mem_types[] pairs prot_pte and prot_sect in arch/arm/mm/mmu.c)."""
        self._check_huge(pfn, level, prot)
        sect = ARM_PMD_TYPE_SECT
        moves = ((ARM_PTE_B, ARM_SECT_B), (ARM_PTE_C, ARM_SECT_C), (ARM_PTE_XN, ARM_SECT_XN),
                 (ARM_PTE_AP0, ARM_SECT_AP_WRITE), (ARM_PTE_AP1, ARM_SECT_AP_READ),
                 (ARM_PTE_APX, ARM_SECT_APX), (ARM_PTE_S, ARM_SECT_S), (ARM_PTE_NG, ARM_SECT_NG))
        for small, big in moves:
            if prot & small:
                sect |= big
        sect |= ((prot >> 6) & 7) << 12
        return (int(pfn) << 12) | sect

    def leaf_phys(self, e: int, level: int) -> int:
        if level == 1:
            return e & 0xFFFFF000
        if e & ARM_SECT_SUPER:
            return e & 0xFF000000
        return e & 0xFFF00000


# ---------------------------------------------------------------------------------------------
# arm64: arch/arm64/include/asm/pgtable-hwdef.h, pgtable-prot.h
A64_VALID, A64_TABLE_BIT = _bit(0), _bit(1)
A64_USER, A64_RDONLY, A64_SHARED, A64_AF, A64_NG = _bit(6), _bit(7), 3 << 8, _bit(10), _bit(11)
A64_DBM, A64_CONT, A64_PXN, A64_UXN = _bit(51), _bit(52), _bit(53), _bit(54)
A64_PXN_TABLE, A64_UXN_TABLE, A64_AP_TABLE_NO_EL0, A64_AP_TABLE_RO = (
    _bit(59), _bit(60), _bit(61), _bit(62))


def a64_attrindx(x: int) -> int:
    """PTE_ATTRINDX(x): MAIR index bits 2-4."""
    return (x & 7) << 2


class Arm64Pte(PteFormat):
    """arm64 VMSAv8-64 descriptors, 4 KiB granule, 48-bit output addresses.

    ``pte_write`` follows Linux (PTE_WRITE is the DBM bit); the hardware write right is
    "not RDONLY, or DBM with hardware dirty management", which is what ``perms`` models.
    """

    def __init__(self, shifts: tuple[int, ...]) -> None:
        super().__init__(8, 12, 48, shifts, frozenset({len(shifts) - 3, len(shifts) - 2}))
        self.name = "arm64"

    def pte_present(self, e: int) -> bool:
        return bool(e & A64_VALID)

    def ptes_present(self, entries: npt.NDArray[np.unsignedinteger]) -> npt.NDArray[np.bool_]:
        present: npt.NDArray[np.bool_] = (entries & self.dtype.type(A64_VALID)) != 0
        return present

    def pte_write(self, e: int) -> bool:
        return bool(e & A64_DBM)

    def perms(self, e: int, level: int | None = None) -> int:
        level = self._level(level)
        if not e & A64_VALID:
            return 0
        if not self.is_leaf(e, level):
            p = PERM_ALL
            if e & A64_PXN_TABLE:
                p &= ~PERM_KX
            if e & A64_UXN_TABLE:
                p &= ~PERM_UX
            if e & A64_AP_TABLE_NO_EL0:
                p &= ~(PERM_UR | PERM_UW | PERM_UX)
            if e & A64_AP_TABLE_RO:
                p &= ~(PERM_KW | PERM_UW)
            return p
        if not e & A64_AF:
            return 0                      # access flag fault without hardware AF management
        writable = not e & A64_RDONLY or bool(e & A64_DBM)
        p = PERM_KR | (PERM_KW if writable else 0)
        if e & A64_USER:
            p |= PERM_UR | (PERM_UW if writable else 0)
            if not e & A64_UXN:
                p |= PERM_UX
        if not e & A64_PXN:
            p |= PERM_KX
        return p

    def pte_flags(self, e: int, level: int | None = None) -> list[str]:
        level = self._level(level)
        if not e & A64_VALID:
            return []
        if not self.is_leaf(e, level):
            out = ["VALID", "TABLE"]
            out += [n for bit, n in ((A64_PXN_TABLE, "PXNTable"), (A64_UXN_TABLE, "UXNTable"),
                                     (A64_AP_TABLE_NO_EL0, "APTable0"),
                                     (A64_AP_TABLE_RO, "APTable1")) if e & bit]
            return out
        out = ["VALID", "PAGE" if level == self.last else "BLOCK", f"ATTRINDX={(e >> 2) & 7}"]
        sh = (e >> 8) & 3
        if sh:
            out.append(f"SH={sh}")
        out += [n for bit, n in ((A64_USER, "USER"), (A64_RDONLY, "RDONLY"), (A64_AF, "AF"),
                                 (A64_NG, "nG"), (A64_DBM, "DBM"), (A64_CONT, "CONT"),
                                 (A64_PXN, "PXN"), (A64_UXN, "UXN")) if e & bit]
        return out

    def hw_update(self, e: int, write: bool) -> int:
        # FEAT_HAFDBS: a write through a DBM entry clears AP[2] (marks it dirty).
        if write and e & A64_DBM:
            e &= ~A64_RDONLY
        return e | A64_AF

    def mk_table(self, table_phys: int, level: int, user: bool = False) -> int:
        # arch/arm64/include/asm/pgalloc.h: kernel tables forbid EL0 execution below them,
        # user tables forbid privileged execution (PMD_TABLE_UXN / PMD_TABLE_PXN).
        level = self._level(level)
        if level == self.last:
            raise ConfigError("arm64: pte entries do not point to tables")
        if table_phys & ~self.addr_mask:
            raise ConfigError(f"arm64: table address {table_phys:#x} not page aligned")
        return table_phys | 3 | (A64_PXN_TABLE if user else A64_UXN_TABLE)

    def is_leaf(self, e: int, level: int) -> bool:
        return level == self.last or (e & 3) == 1

    def mk_huge(self, pfn: int, level: int, prot: int) -> int:
        self._check_huge(pfn, level, prot)
        return (int(pfn) << 12) | (prot & ~A64_TABLE_BIT)
