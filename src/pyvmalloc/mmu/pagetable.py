"""Page tables held in real frames: map/unmap of ranges, walk, translate, lookup.

One ``PageTables`` is one address space (``init_mm``, or a user mm).  Every table is a frame
(or, on ARM, half a frame) of the ``FrameStore``; its entries are the architecture's real
bit layout, read and written through numpy views of the frame bytes.  A range that covers
many entries of one table is written with one vectorised assignment per table, which is
what keeps mapping a gigabyte cheap.

Kernel counterparts (2.6.22 mm/vmalloc.c, mm/memory.c): ``map_range`` is
vmap_pud_range/vmap_pmd_range/vmap_pte_range with pud_alloc/pmd_alloc/pte_alloc_kernel;
``unmap_range`` is unmap_kernel_range without the flush (the caller flushes: that is
what makes a missing flush visible); ``populate_range`` is apply_to_page_range with a no-op
callback (alloc_vm_area); ``copy_kernel_entries`` is the pgd copy of pgd_alloc and
vmalloc_sync_all.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pyvmalloc.arch.profiles import ArchProfile
from pyvmalloc.arch.pte import PERM_KR, PERM_KW, PERM_KX, PERM_UR, PERM_UW, PERM_UX
from pyvmalloc.errno import EEXIST, ENOMEM
from pyvmalloc.errors import ConfigError, Inconsistency, KernelBug, PageFault
from pyvmalloc.phys.frames import FrameStore


_asids = itertools.count(1)

# Segment kinds yielded by PageTables._segments().
_NONE, _TABLE, _HUGE = 0, 1, 2
# Up to this many pages, map_range/unmap_range work on plain ints: numpy's per-call overhead
# costs more than the loop on one- or two-page areas, the most common vmalloc size.
_FEW = 8
_ABSENT = -1  # _pte_table: an absent upper entry covers the whole range (no table address is < 0)


@dataclass(frozen=True)
class WalkStep:
    """One level of a walk: the entry at ``index`` of the table at physical ``table_phys``."""

    level: str
    index: int
    entry: int
    table_phys: int
    flags: tuple[str, ...]
    entry_size: int = 8

    @property
    def entry_phys(self) -> int:
        """Physical address of the entry itself."""
        return self.table_phys + self.index * self.entry_size


def access_fault_reason(perms: int, access: str, user: bool, level: str) -> str | None:
    """Why an access with effective rights ``perms`` through a leaf at ``level`` faults
    (``"protection (write to read-only page, pte)"``), or None if it is allowed."""
    why = None
    if user and not perms & PERM_UR:
        why = "user access to kernel page"
    elif access == "write" and not perms & (PERM_UW if user else PERM_KW):
        why = "write to read-only page"
    elif access == "exec" and not perms & (PERM_UX if user else PERM_KX):
        why = "execute of no-exec page"
    elif not user and not perms & PERM_KR:
        why = "no access"
    return None if why is None else f"protection ({why}, {level})"


class TableFrames:
    """A bump allocator of table frames over ``[start_pfn, end_pfn)`` of a FrameStore, with a
    free list; for tests and tools that run the mmu layer without the buddy allocator.
    Blocks of order > 0 are naturally aligned, as the buddy allocator's are."""

    def __init__(self, start_pfn: int, end_pfn: int) -> None:
        if not 0 <= start_pfn <= end_pfn:
            raise ConfigError(f"bad frame range {start_pfn}..{end_pfn}")
        self.next = start_pfn
        self.end = end_pfn
        self.free_list: dict[int, list[int]] = {}
        self.allocated = 0

    def alloc(self, order: int) -> int | None:
        """A block of ``1 << order`` frames, or None when the range is used up."""
        free = self.free_list.get(order)
        if free:
            self.allocated += 1 << order
            return free.pop()
        n = 1 << order
        pfn = -(-self.next // n) * n
        if pfn + n > self.end:
            return None
        self.next = pfn + n
        self.allocated += n
        return pfn

    def free(self, pfn: int, order: int) -> None:
        self.free_list.setdefault(order, []).append(pfn)
        self.allocated -= 1 << order


class PageTables:
    """The page tables of one address space, stored in frames of ``frames``.

    ``alloc_table(order) -> pfn | None`` supplies table frames (the kernel passes one taking
    zeroed frames from the buddy allocator and counting them as PageTables);
    ``free_table(pfn, order)`` takes them back in ``destroy()``; ``warn(line)`` receives
    the kernel's WARN_ON lines (default: appended to ``self.warnings``).

    ``pgd_phys`` is the physical address of the top-level table.  On arm64, where user and
    kernel halves have separate roots (TTBR0/TTBR1), ``pgd_phys`` is the user root and
    ``kernel_pgd_phys`` the kernel one; elsewhere both name the same table.
    """

    def __init__(self, profile: ArchProfile, frames: FrameStore,
                 alloc_table: Callable[[int], int | None],
                 free_table: Callable[[int, int], None] | None = None,
                 warn: Callable[[str], None] | None = None, name: str = "init_mm") -> None:
        if not isinstance(profile, ArchProfile):
            raise ConfigError(f"PageTables needs an ArchProfile, not {profile!r}")
        if frames.page_size != profile.page_size:
            raise ConfigError(f"frame size {frames.page_size} differs from the {profile.name} "
                              f"page size {profile.page_size}")
        self.profile = profile
        self.fmt = profile.pte
        self.frames = frames
        self.name = name
        self.asid = next(_asids)
        self.warnings: list[str] = []
        self._alloc = alloc_table
        self._free = free_table
        self._warn = warn
        self._views: dict[int, npt.NDArray[np.unsignedinteger]] = {}
        self._tables: dict[int, tuple[int, int]] = {}          # pfn -> (level, order)
        lv = profile.levels
        self._names = tuple(x.name for x in lv)
        self._shift = tuple(x.shift for x in lv)
        self._mask = tuple(x.ptrs - 1 for x in lv)
        self._last = len(lv) - 1
        self._pshift = profile.page_shift
        self._esize = lv[0].entry_size
        # Work counter: leaf entries written by map_range and cleared by unmap_range (what
        # vmap_pte_range/vunmap_pte_range touch), for comparisons that are not host time.
        self.ptes_touched = 0
        pgd = self._new_table(0)
        if pgd is None:
            raise ConfigError(f"{name}: no frame for the top-level page table (pgd)")
        self.pgd_phys = pgd
        kpgd = pgd
        if profile.split_roots:
            # arm64: the kernel half has its own root (swapper_pg_dir behind TTBR1).
            kernel_root = self._new_table(0)
            if kernel_root is None:
                raise ConfigError(f"{name}: no frame for the kernel page table root")
            kpgd = kernel_root
        self.kernel_pgd_phys = kpgd
        # Root for an address: index by bit 63 (the same table twice where there is one).
        self._roots = (pgd, kpgd)
        self._dead = False

    # -- frames and views ---------------------------------------------------------------------
    def _order(self, level: int) -> int:
        nbytes = self.profile.levels[level].table_bytes
        return max(0, (nbytes - 1).bit_length() - self._pshift)

    def _new_table(self, level: int) -> int | None:
        """A zeroed table frame (block) for ``level``; its physical address, or None."""
        order = self._order(level)
        pfn = self._alloc(order)
        if pfn is None:
            return None
        n = 1 << order
        if (isinstance(pfn, bool) or not isinstance(pfn, (int, np.integer)) or pfn % n
                or not 0 <= pfn <= self.frames.nr_frames - n):
            raise KernelBug(f"alloc_table({order}) returned {pfn!r}: not an aligned block "
                            "inside physical memory")
        pfn = int(pfn)
        # The kernel asks for __GFP_ZERO; zero here too so a careless source cannot leave
        # stale entries behind.
        self.frames.zero(np.arange(pfn, pfn + n, dtype=np.int64))
        self._tables[pfn] = (level, order)
        return pfn << self._pshift

    def _view(self, table_phys: int, level: int) -> npt.NDArray[np.unsignedinteger]:
        """The entries of the table at ``table_phys`` as a writable numpy view of its frame."""
        view = self._views.get(table_phys)
        if view is not None:
            return view
        nbytes = self.profile.levels[level].table_bytes
        ps = self.profile.page_size
        pfn, off = divmod(table_phys, ps)
        first = self.frames.frame(pfn)
        if off + nbytes <= ps:
            raw = first[off:off + nbytes]
        else:
            # A table larger than a frame (ARM's 16 KiB first level): its frames are one
            # naturally aligned block, consecutive rows of one FrameStore chunk.
            base = first.__array_interface__["data"][0]
            for i in range(1, -(-nbytes // ps)):
                if self.frames.frame(pfn + i).__array_interface__["data"][0] != base + i * ps:
                    raise KernelBug(f"table at {table_phys:#x} spans frames that are not "
                                    "contiguous in the frame store")
            raw = np.lib.stride_tricks.as_strided(first, shape=(nbytes,), strides=(1,))
        view = raw.view(self.fmt.dtype)
        self._views[table_phys] = view
        return view

    def _say(self, line: str) -> None:
        if self._warn is None:
            self.warnings.append(line)
        else:
            self._warn(line)

    # -- argument checks ----------------------------------------------------------------------
    def _check_live(self) -> None:
        if self._dead:
            raise KernelBug(f"{self.name}: page tables used after destroy()")

    def _check_range(self, addr: int, npages: int, what: str) -> None:
        self._check_live()
        if isinstance(addr, bool) or not isinstance(addr, (int, np.integer)):
            raise ConfigError(f"{what}: address must be an int, not {addr!r}")
        if addr & (self.profile.page_size - 1):
            raise ConfigError(f"{what}: address {addr:#x} is not page aligned")
        if npages <= 0:
            # map_vm_area()/unmap_kernel_range(): BUG_ON(addr >= end).
            raise KernelBug(f"{what}: empty range at {addr:#x} (BUG_ON(addr >= end))")
        end = addr + (npages << self._pshift) - 1
        if not (self.profile.canonical(addr) and self.profile.canonical(end)
                and (addr >> 63) == (end >> 63)):
            raise ConfigError(f"{what}: range {addr:#x}+{npages} pages is not a valid "
                              f"{self.profile.name} virtual address range")

    def _no_pages(self, addr: int, nr_pages: int, what: str) -> bool:
        """Check a lookup's arguments; True when it asks for no pages at all."""
        if isinstance(nr_pages, bool) or not isinstance(nr_pages, (int, np.integer)) or nr_pages < 0:
            raise ConfigError(f"{what}: nr_pages must be a non-negative int, not {nr_pages!r}")
        if nr_pages == 0:
            return True
        self._check_range(addr, int(nr_pages), what)
        return False

    def _npages(self, size: int, what: str) -> int:
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise ConfigError(f"{what}: size must be an int, not {size!r}")
        if size & (self.profile.page_size - 1):
            raise ConfigError(f"{what}: size {size:#x} is not a multiple of the page size")
        return int(size) >> self._pshift

    # -- descending ---------------------------------------------------------------------------
    def _entry_ok(self, view: npt.NDArray[np.unsignedinteger], idx: int, level: int,
                  va: int) -> int:
        """The entry, after pXd_none_or_clear_bad(): a non-zero entry that is not present is
        'bad', reported and cleared (mm/pgtable-generic.c)."""
        e = int(view[idx])
        if e and not self.fmt.pte_present(e):
            self._say(f"mm/pgtable-generic.c: bad {self._names[level]} {e:#018x} "
                      f"(covering {va:#x}), cleared")
            view[idx] = 0
            e = 0
        return e

    def _install(self, view: npt.NDArray[np.unsignedinteger], idx: int, level: int,
                 va: int) -> int | None:
        """__pud_alloc/__pmd_alloc/__pte_alloc_kernel: a new table under entry ``idx`` of a
        level-``level`` table; its physical address, or None when no frame can be had."""
        new_level = level + 1
        frame = self._new_table(new_level)
        if frame is None:
            return None
        user = va < self.profile.task_size
        per_frame = self.profile.pte_tables_per_frame
        if new_level == self._last and per_frame == 2:
            # ARM: one frame holds the hardware tables of two consecutive 1 MiB sections
            # (Linux's 2 MiB pmd); __pmd_populate() points both first-level entries into it.
            half = self.profile.levels[new_level].table_bytes
            pair = idx & ~1
            if int(view[pair]) == 0 and int(view[pair + 1]) == 0:
                view[pair] = self.fmt.mk_table(frame, level, user)
                view[pair + 1] = self.fmt.mk_table(frame + half, level, user)
                return frame + (idx & 1) * half
            table = frame + (idx & 1) * half
            view[idx] = self.fmt.mk_table(table, level, user)
            return table
        view[idx] = self.fmt.mk_table(frame, level, user)
        return frame

    def _table_for(self, va: int, level: int) -> int | None:
        """Physical address of the level-``level`` table covering ``va``, allocating missing
        tables on the way; None when a table frame cannot be had."""
        table = self._roots[va >> 63]
        for li in range(level):
            view = self._view(table, li)
            idx = (va >> self._shift[li]) & self._mask[li]
            e = self._entry_ok(view, idx, li, va)
            if e == 0:
                nxt = self._install(view, idx, li, va)
                if nxt is None:
                    return None
                table = nxt
                continue
            if self.fmt.is_leaf(e, li):
                raise KernelBug(f"{self.name}: a huge {self._names[li]} leaf maps {va:#x}; "
                                "cannot build a table under it")
            table = self.fmt.table_phys(e, li)
        return table

    def _segments(self, addr: int, npages: int) -> Iterator[tuple[int, int, int, tuple[int, ...]]]:
        """Split ``npages`` pages from ``addr`` into runs: ``(first page, count, kind, info)``
        with kind _NONE (no table), _TABLE (info = pte table phys, first index) or _HUGE
        (info = level, entry, table phys, index)."""
        pos = 0
        ps = self._pshift
        last = self._last
        fmt = self.fmt
        while pos < npages:
            va = addr + (pos << ps)
            table = self._roots[va >> 63]
            for li in range(last):
                shift = self._shift[li]
                idx = (va >> shift) & self._mask[li]
                e = int(self._view(table, li)[idx])
                left = (((va >> shift) + 1) << shift) - va >> ps
                count = min(npages - pos, left)
                if not fmt.pte_present(e):
                    # One segment for the whole run of absent entries of this table (a scan of
                    # the 32 TiB x86_64 vmalloc area meets thousands of them in a row).
                    after = npages - pos - count
                    if after > 0:
                        span = 1 << (shift - ps)
                        most = min(self._mask[li] - idx, -(-after // span))
                        if most > 0:
                            nxt = np.flatnonzero(fmt.ptes_present(self._view(table, li)[idx + 1:idx + 1 + most]))
                            run = int(nxt[0]) if len(nxt) else most
                            count = min(npages - pos, count + run * span)
                    yield pos, count, _NONE, ()
                    break
                if fmt.is_leaf(e, li):
                    yield pos, count, _HUGE, (li, e, table, idx)
                    break
                table = fmt.table_phys(e, li)
            else:
                idx = (va >> ps) & self._mask[last]
                count = min(npages - pos, self._mask[last] + 1 - idx)
                yield pos, count, _TABLE, (table, idx)
            pos += count

    def present_pages(self, start: int, end: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """``(vpns, pfns)`` of every present leaf page in ``[start, end)``, reading only the
        tables that exist (one vectorised read per PTE table), so that scanning the 32 TiB
        x86_64 vmalloc area costs what its tables cost.  A PTE that is neither none nor
        present raises ``Inconsistency`` (the seed's ``WARN_ON(!pte_none && !pte_present)``)."""
        shift = self._pshift
        first = start >> shift
        npages = ((end + (1 << shift) - 1) >> shift) - first
        fmt = self.fmt
        vparts, pparts = [], []
        for pos, count, kind, _info in self._segments(first << shift, npages):
            if kind == _NONE:
                continue
            va = (first + pos) << shift
            if kind == _TABLE:
                entries = self.lookup_entries(va, count)
                present = fmt.ptes_present(entries)
                junk = np.flatnonzero((entries != 0) & ~present)
                if len(junk):
                    i = int(junk[0])
                    raise Inconsistency(f"{self.name}: pte at {va + (i << shift):#x} is "
                                        f"{int(entries[i]):#x}: not none and not present")
                pfns = fmt.ptes_pfn(entries)
            else:
                pfns = self.lookup(va, count)
            idx = np.flatnonzero(pfns >= 0)
            if len(idx):
                vparts.append(first + pos + idx)
                pparts.append(pfns[idx])
        if not vparts:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(vparts).astype(np.int64), np.concatenate(pparts).astype(np.int64)

    # -- mapping ------------------------------------------------------------------------------
    def map_range(self, addr: int, pfns: npt.ArrayLike, prot: int) -> int:
        """Map ``len(pfns)`` pages at ``addr`` with ``prot``; 0, or -ENOMEM when a table frame
        cannot be had or a pfn is negative (a NULL page: vmap_pte_range returns -ENOMEM).

        Pages mapped before a failure stay mapped, as in the seed.  An entry that is not
        none is overwritten after a WARN_ON line (mm/vmalloc.c:105 in 2.6.22).
        """
        arr = np.asarray(pfns)
        # dtype.kind 'i'/'u' is np.issubdtype(dtype, np.integer), without its class walk
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ConfigError("map_range: pfns must be a 1-d array of integers")
        if 0 < arr.size <= _FEW:
            return self._map_few(addr, arr.tolist(), prot)
        arr = arr.astype(np.int64, copy=False)
        n = len(arr)
        self._check_range(addr, n, "map_range")
        bad = np.flatnonzero(arr < 0)
        n_ok = int(bad[0]) if len(bad) else n
        entries = self.fmt.mk_ptes(arr[:n_ok], prot)  # validates prot and pfns up front
        last = self._last
        pos = 0
        while pos < n:
            va = addr + (pos << self._pshift)
            table = self._table_for(va, last)
            if table is None:
                return -ENOMEM
            view = self._view(table, last)
            idx = (va >> self._pshift) & self._mask[last]
            count = min(n - pos, self._mask[last] + 1 - idx)
            seg = view[idx:idx + count]
            # WARN_ON(!pte_none(*pte)) is checked before the NULL page is noticed.
            check = min(count, n_ok - pos + 1)
            for i in np.flatnonzero(seg[:check]):
                self._say(f"WARNING: at mm/vmalloc.c:105 vmap_pte_range() (pte {int(seg[i]):#x} "
                          f"not none at {va + (int(i) << self._pshift):#x})")
            stop = max(0, min(count, n_ok - pos))
            seg[:stop] = entries[pos:pos + stop]
            self.ptes_touched += stop
            if stop < count:
                return -ENOMEM
            pos += count
        return 0

    def _map_few(self, addr: int, pfns: list[int], prot: int) -> int:
        """map_range of a few pages, entry by entry: the same checks, warnings and result."""
        n = len(pfns)
        self._check_range(addr, n, "map_range")
        fmt = self.fmt
        fmt._check_prot(prot)
        n_ok = next((i for i, pfn in enumerate(pfns) if pfn < 0), n)
        if any(pfn >= fmt.max_pfn for pfn in pfns[:n_ok]):
            raise ConfigError(f"{fmt.name}: a pfn does not fit a {fmt.phys_bits}-bit "
                              "physical address")
        shift, last, mask = self._pshift, self._last, self._mask[self._last]
        view = None
        for i in range(n):
            va = addr + (i << shift)
            idx = (va >> shift) & mask
            if view is None or idx == 0:
                table = self._table_for(va, last)
                if table is None:
                    return -ENOMEM
                view = self._view(table, last)
            # WARN_ON(!pte_none(*pte)) is checked before the NULL page is noticed.
            e = int(view[idx])
            if e:
                self._say(f"WARNING: at mm/vmalloc.c:105 vmap_pte_range() (pte {e:#x} "
                          f"not none at {va:#x})")
            if i == n_ok:
                return -ENOMEM
            view[idx] = (pfns[i] << fmt.page_shift) | prot
            self.ptes_touched += 1
        return 0

    def pte_table_present(self, addr: int) -> bool:
        """Whether the pte table that maps ``addr`` exists (every level above has a table
        entry, no huge leaf on the way): mapping a page there takes no table frame.  Reads
        only; a 'bad' upper entry counts as absent (map_range reports and clears it)."""
        table = self._pte_table(addr, 1)
        return table is not None and table != _ABSENT

    def map_pages_bulk(self, vpns: npt.NDArray[np.int64], pfns: npt.NDArray[np.int64],
                       prot: int) -> bool:
        """Map page ``vpns[i]`` (a virtual page number) to frame ``pfns[i]`` for every i, the
        pages of many areas at once: what :meth:`map_range` of each area writes, with one
        vectorised write per pte table, when every pte table is there and every entry is none.

        Returns False, with nothing written, when a pte table is missing, an entry is not
        none or a page is not a valid address (map_range of each area then gives the table
        frames, warnings and errors in their order); ConfigError for a pfn or ``prot`` that
        map_range refuses too.  ``vpns`` ascend; ``pfns`` are not negative.
        """
        self._check_live()
        n = len(vpns)
        if n == 0:
            return True
        if len(pfns) != n:
            raise ConfigError("map_pages_bulk: one pfn per page")
        if int(pfns.min()) < 0:
            raise ConfigError("map_pages_bulk: a negative pfn is no page")
        entries = self.fmt.mk_ptes(pfns, prot)  # validates prot and pfns, as map_range
        last = self._last
        mask = self._mask[last]
        bits = mask.bit_length()
        keys = vpns >> bits
        cuts = np.flatnonzero(keys[1:] != keys[:-1]) + 1
        bounds = [0, *cuts.tolist(), n]
        canonical = self.profile.canonical
        shift = self._pshift
        plan = []
        for a, b in zip(bounds, bounds[1:]):
            first = int(vpns[a]) << shift
            lastva = (int(vpns[b - 1]) << shift) + (1 << shift) - 1
            if not (canonical(first) and canonical(lastva) and (first >> 63) == (lastva >> 63)):
                return False
            table = self._pte_table(first, 1)
            if table is None or table == _ABSENT:
                return False
            view = self._view(table, last)
            idx = vpns[a:b] & mask
            if view[idx].any():
                return False
            plan.append((view, idx, a, b))
        for view, idx, a, b in plan:
            view[idx] = entries[a:b]
        self.ptes_touched += n
        return True

    def map_huge(self, addr: int, pfn: int, level_name: str, prot: int) -> int:
        """Map one huge leaf (x86 PS pmd/pud, ARM section, arm64 block) at ``level_name``;
        0, -ENOMEM, or -EEXIST (after a WARN line) if that entry is in use."""
        li = self.profile.level_index(level_name)
        if li not in self.fmt.huge_levels:
            raise ConfigError(f"{self.profile.name}: no huge leaves at {level_name} (possible: "
                              f"{', '.join(self.profile.huge_levels) or 'none'})")
        span = 1 << self._shift[li]
        if isinstance(addr, (int, np.integer)) and addr & (span - 1):
            raise ConfigError(f"map_huge: {addr:#x} is not aligned to a {level_name} leaf")
        self._check_range(addr, span >> self._pshift, "map_huge")
        entry = self.fmt.mk_huge(pfn, li, prot)
        table = self._table_for(addr, li)
        if table is None:
            return -ENOMEM
        view = self._view(table, li)
        idx = (addr >> self._shift[li]) & self._mask[li]
        if int(view[idx]):
            self._say(f"WARNING: map_huge: {level_name} entry for {addr:#x} in use "
                      f"({int(view[idx]):#x})")
            return -EEXIST
        view[idx] = entry
        return 0

    def populate_range(self, addr: int, size: int) -> int:
        """Build every level down to (empty) pte tables for ``[addr, addr + size)`` without
        mapping anything (apply_to_page_range with a no-op, as alloc_vm_area does); 0 or
        -ENOMEM."""
        n = self._npages(size, "populate_range")
        self._check_range(addr, n, "populate_range")
        last = self._last
        pos = 0
        while pos < n:
            va = addr + (pos << self._pshift)
            if self._table_for(va, last) is None:
                return -ENOMEM
            idx = (va >> self._pshift) & self._mask[last]
            pos += self._mask[last] + 1 - idx
        return 0

    def unmap_range(self, addr: int, size: int) -> npt.NDArray[np.int64]:
        """Clear the ptes of ``[addr, addr + size)``; the pfns that were mapped, in address
        order.  Tables stay allocated, as in the kernel; the TLB is not flushed here.

        A non-zero entry that is not present gets the seed's WARN_ON (mm/vmalloc.c:37).  A
        huge leaf is cleared whole (pmd_clear_huge, 4.x+), with a warning if the range
        covers it only partly.
        """
        n = self._npages(size, "unmap_range")
        self._check_range(addr, n, "unmap_range")
        fmt = self.fmt
        table = self._pte_table(addr, n)
        if table == _ABSENT:  # no table reaches the range: nothing is mapped there
            return np.zeros(0, dtype=np.int64)
        idx = (addr >> self._pshift) & self._mask[self._last]
        if table is not None and n <= _FEW and idx + n <= self._mask[self._last] + 1:
            return self._unmap_few(addr, 0, n, (table, idx))
        pieces: list[npt.NDArray[np.int64]] = []
        for pos, count, kind, info in self._segments(addr, n):
            if kind == _TABLE and count <= _FEW:
                pieces.append(self._unmap_few(addr, pos, count, info))
            elif kind == _TABLE:
                table, idx = info
                seg = self._view(table, self._last)[idx:idx + count]
                present = fmt.ptes_present(seg)
                odd = np.flatnonzero((seg != 0) & ~present)
                for i in odd:
                    va = addr + ((pos + int(i)) << self._pshift)
                    self._say(f"WARNING: at mm/vmalloc.c:37 vunmap_pte_range() "
                              f"(pte {int(seg[i]):#x} at {va:#x} not present)")
                pieces.append(fmt.ptes_pfn(seg)[present])
                seg[:] = 0
                self.ptes_touched += count
            elif kind == _HUGE:
                li, e, table, idx = info
                span_pages = 1 << (self._shift[li] - self._pshift)
                if count < span_pages:
                    self._say(f"WARNING: unmap of {count} pages clears a whole huge "
                              f"{self._names[li]} leaf ({span_pages} pages)")
                pieces.append(self._huge_pfns(addr, pos, count, li, e))
                self._view(table, li)[idx] = 0
        if not pieces:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(pieces)

    def _pte_table(self, va: int, npages: int) -> int | None:
        """The pte table covering ``va`` when every level above has a table entry;
        _ABSENT when an absent entry covers all ``npages`` pages from ``va`` (nothing is mapped);
        else None (a huge leaf, or a range that leaves the absent entry: left to _segments)."""
        fmt = self.fmt
        table = self._roots[va >> 63]
        for li in range(self._last):
            shift = self._shift[li]
            e = int(self._view(table, li)[(va >> shift) & self._mask[li]])
            if not fmt.pte_present(e):
                end = va + (npages << self._pshift) - 1
                return _ABSENT if (end >> shift) == (va >> shift) and (end >> 63) == (va >> 63) else None
            if fmt.is_leaf(e, li):
                return None
            table = fmt.table_phys(e, li)
        return table

    def _unmap_few(self, addr: int, pos: int, count: int, info: tuple[int, ...]) -> npt.NDArray[np.int64]:
        """One pte table's part of unmap_range for a few entries, on plain ints."""
        table, idx = info
        view = self._view(table, self._last)
        fmt = self.fmt
        pfns: list[int] = []
        for i in range(count):
            e = int(view[idx + i])
            if not e:
                continue
            if fmt.pte_present(e):
                pfns.append(fmt.pte_pfn(e))
            else:
                va = addr + ((pos + i) << self._pshift)
                self._say(f"WARNING: at mm/vmalloc.c:37 vunmap_pte_range() "
                          f"(pte {e:#x} at {va:#x} not present)")
            view[idx + i] = 0
        self.ptes_touched += count
        return np.array(pfns, dtype=np.int64)

    def _huge_pfns(self, addr: int, pos: int, count: int, li: int, e: int) -> npt.NDArray[np.int64]:
        va = addr + (pos << self._pshift)
        base = self.fmt.leaf_phys(e, li) >> self._pshift
        first = (va & ((1 << self._shift[li]) - 1)) >> self._pshift
        return np.arange(base + first, base + first + count, dtype=np.int64)

    # -- reading ------------------------------------------------------------------------------
    def walk(self, addr: int) -> list[WalkStep]:
        """The entries a hardware walk of ``addr`` reads, top down, stopping after the first
        absent entry or at the leaf."""
        self._check_range(addr & ~(self.profile.page_size - 1), 1, "walk")
        steps = []
        table = self._roots[addr >> 63]
        for li in range(self._last + 1):
            idx = (addr >> self._shift[li]) & self._mask[li]
            e = int(self._view(table, li)[idx])
            steps.append(WalkStep(self._names[li], idx, e, table,
                                  tuple(self.fmt.pte_flags(e, li)), self._esize))
            if not self.fmt.pte_present(e) or self.fmt.is_leaf(e, li):
                break
            table = self.fmt.table_phys(e, li)
        return steps

    def translate(self, addr: int) -> int | None:
        """The physical address ``addr`` maps to, or None (no permission checks)."""
        if self._dead or not self.profile.canonical(addr):
            return None
        fmt = self.fmt
        table = self._roots[addr >> 63]
        for li in range(self._last + 1):
            view = self._views.get(table)
            if view is None:
                view = self._view(table, li)
            e = int(view[(addr >> self._shift[li]) & self._mask[li]])
            if not fmt.pte_present(e):
                return None
            if li == self._last or fmt.is_leaf(e, li):
                return fmt.leaf_phys(e, li) | (addr & ((1 << self._shift[li]) - 1))
            table = fmt.table_phys(e, li)
        return None  # pragma: no cover - the loop always returns at the last level

    def lookup(self, addr: int, nr_pages: int) -> npt.NDArray[np.int64]:
        """pfns mapped at ``nr_pages`` pages from ``addr`` (-1 where unmapped), one vectorised
        read per pte table (vmalloc_to_pfn over a range)."""
        if self._no_pages(addr, nr_pages, "lookup"):
            return np.zeros(0, dtype=np.int64)
        out = np.full(nr_pages, -1, dtype=np.int64)
        for pos, count, kind, info in self._segments(addr, nr_pages):
            if kind == _TABLE:
                table, idx = info
                out[pos:pos + count] = self.fmt.ptes_pfn(self._view(table, self._last)[idx:idx + count])
            elif kind == _HUGE:
                out[pos:pos + count] = self._huge_pfns(addr, pos, count, info[0], info[1])
        return out

    def lookup_entries(self, addr: int, nr_pages: int) -> npt.NDArray[np.unsignedinteger]:
        """Raw leaf entries for ``nr_pages`` pages from ``addr`` (0 where there is no table;
        the huge leaf's own entry for every page it covers)."""
        if self._no_pages(addr, nr_pages, "lookup_entries"):
            return np.zeros(0, dtype=self.fmt.dtype)
        out = np.zeros(nr_pages, dtype=self.fmt.dtype)
        for pos, count, kind, info in self._segments(addr, nr_pages):
            if kind == _TABLE:
                table, idx = info
                out[pos:pos + count] = self._view(table, self._last)[idx:idx + count]
            elif kind == _HUGE:
                out[pos:pos + count] = info[1]
        return out

    def hw_walk(self, addr: int, access: str, user: bool) -> tuple[int, int, int, str]:
        """What the MMU's walker does on a TLB miss: ``(pfn, leaf entry, rights, level)`` after
        checking every level and setting accessed/dirty in the leaf; raises PageFault."""
        fmt = self.fmt
        if self._dead or not self.profile.canonical(addr):
            raise PageFault(addr, access, "non-canonical address")
        table = self._roots[addr >> 63]
        rights = -1
        for li in range(self._last + 1):
            view = self._views.get(table)
            if view is None:
                view = self._view(table, li)
            idx = (addr >> self._shift[li]) & self._mask[li]
            e = int(view[idx])
            if not fmt.pte_present(e):
                raise PageFault(addr, access, f"not present ({self._names[li]})")
            rights &= fmt.perms(e, li)
            if li == self._last or fmt.is_leaf(e, li):
                reason = access_fault_reason(rights, access, user, self._names[li])
                if reason is not None:
                    raise PageFault(addr, access, reason)
                updated = fmt.hw_update(e, access == "write")
                if updated != e:
                    view[idx] = updated
                phys = fmt.leaf_phys(updated, li) | (addr & ((1 << self._shift[li]) - 1))
                return phys >> self._pshift, updated, rights, self._names[li]
            table = fmt.table_phys(e, li)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- accounting and sharing ---------------------------------------------------------------
    @property
    def nr_table_frames(self) -> int:
        """Frames this address space allocated as page tables (NR_PAGETABLE)."""
        return sum(1 << order for _level, order in self._tables.values())

    def table_pfns(self) -> list[int]:
        """Every frame this address space allocated as a page table, ascending."""
        return sorted(pfn + i for pfn, (_lv, order) in self._tables.items()
                      for i in range(1 << order))

    def table_levels(self) -> dict[str, int]:
        """Frames used as tables, per level name."""
        out = {name: 0 for name in self._names}
        for level, order in self._tables.values():
            out[self._names[level]] += 1 << order
        return out

    def copy_kernel_entries(self, src: PageTables, start: int, end: int) -> int:
        """Copy ``src``'s top-level entries covering ``[start, end)`` into this pgd where this
        one has none (pgd_alloc's clone of the kernel half; vmalloc_sync_all).  A different
        entry already present is the BUG_ON of 2.6.22 vmalloc_sync_all.  Returns how many
        entries were copied.  On arm64 the kernel half is not copied but shared: this
        address space's upper root becomes ``src``'s (TTBR1 is the same for every mm)."""
        self._check_live()
        src._check_live()
        if src.profile is not self.profile:
            raise ConfigError("copy_kernel_entries: address spaces of different profiles")
        if not start < end:
            raise ConfigError(f"copy_kernel_entries: empty range {start:#x}..{end:#x}")
        if not (self.profile.canonical(start) and self.profile.canonical(end - 1)):
            raise ConfigError(f"copy_kernel_entries: {start:#x}..{end:#x} is not a valid range")
        if (start >> 63) != ((end - 1) >> 63):
            raise ConfigError(f"copy_kernel_entries: {start:#x}..{end:#x} spans both halves")
        half = start >> 63
        if self.profile.split_roots and half:
            # arm64: every mm reaches the kernel through TTBR1, i.e. init_mm's root itself.
            mine = self._roots[1]
            if mine != src._roots[1]:
                if np.any(self._view(mine, 0)):
                    raise KernelBug(f"{self.name}: own kernel-half tables in the way of TTBR1")
                self._views.pop(mine, None)
                _level, order = self._tables.pop(mine >> self._pshift)
                if self._free is not None:
                    self._free(mine >> self._pshift, order)
                self.kernel_pgd_phys = src._roots[1]
                self._roots = (self._roots[0], src._roots[1])
            return 0
        i0 = (start >> self._shift[0]) & self._mask[0]
        i1 = ((end - 1) >> self._shift[0]) & self._mask[0]
        s = src._view(src._roots[half], 0)[i0:i1 + 1]
        d = self._view(self._roots[half], 0)[i0:i1 + 1]
        clash = np.flatnonzero((d != 0) & (s != 0) & (d != s))
        if len(clash):
            raise KernelBug(f"vmalloc_sync_all: {self.name} pgd entry {i0 + int(clash[0])} "
                            "points elsewhere than init_mm's (BUG_ON)")
        fill = (d == 0) & (s != 0)
        d[fill] = s[fill]
        return int(fill.sum())

    def destroy(self) -> None:
        """Free every table this address space allocated (exit_mmap/pgd_free); entries copied
        from another address space are not followed.  The object is unusable afterwards."""
        self._check_live()
        self._dead = True
        self._views.clear()
        tables, self._tables = self._tables, {}
        if self._free is not None:
            for pfn, (_level, order) in sorted(tables.items()):
                self._free(pfn, order)
