"""Physical memory: nodes, zones, a buddy allocator per (node, zone), and page metadata in arrays.

Model of mm/page_alloc.c (2.6.22) on frames whose bytes live in a ``FrameStore``.

Page metadata (``struct page``) is a set of numpy arrays indexed by pfn, never one Python object
per frame.  A 64 GiB machine has 16M frames; the arrays are ``np.zeros`` (backed lazily by the
host OS), so boot writes only what must be nonzero:

``flags`` (uint8)
    ``PG_buddy`` on the first page of each free block (as the kernel does: only the head carries
    it, with the order in ``order``); ``PG_reserved`` on pages kept out of the allocator at boot;
    ``PG_slab`` on kmalloc pages; ``PG_pgtable`` on page-table pages.
``owner`` (uint8: code ``i`` is the owner kind ``OWNERS[i]``)
    who holds the frame: ``"free"`` (0: in the buddy allocator, head or not), ``"pgtable"``,
    ``"vmalloc"``, ``"slab"``, ``"other"`` (any other caller, the default) or ``"reserved"``.
    The kernel has no such field; it lets the consistency checker tell frames apart.
``refcount`` (int32)
    ``page_count()``: 1 on each page handed out by order-0 allocations and on the head of a
    higher-order one (tail pages of a non-compound block stay at 0, as in the kernel).
``order`` (uint8)
    the buddy order of a free block, valid where ``PG_buddy`` is set (``page_private``).
``zone_ids(pfns)``
    which (node, zone) pair each frame belongs to (``page_zone_id``), ``NO_ZONE`` in holes:
    computed from the zones' bounds, not stored per frame (zones are ranges of pfns, so the
    kernel's per-page zone bits say nothing the bounds do not).

Sparse boot: ``flags`` and ``order`` of the free blocks that boot makes (a PG_buddy head every
MAX_ORDER block) are written per memory section (``SECTION_SIZE_BITS`` 27 on x86_64: 32768
frames of 4 KiB) on the first touch of that section, not at boot, so a 1 TiB machine boots
without writing 256 MiB of heads (as SPARSEMEM's ``sparse_init`` sets up ``mem_map`` per present
section).  Until then a section's heads are implied by ``_boot_heads``; the allocator paths
touch a section before they read or write its metadata, ``check()`` reads through the implied
heads without touching, and the public ``flags``/``order`` arrays fill every section first.

Free lists are insertion-ordered dicts, one per (node, zone, order).  The end of a dict is the
head of the kernel's list: ``__free_one_page`` does ``list_add`` (head) and ``__rmqueue`` takes
``free_list.next`` (head), so both map to ``d[pfn] = None`` / ``d.popitem()`` (LIFO).

Left out: per-CPU hot/cold page lists, watermarks and reclaim (an allocation succeeds while any
block of the order is free), migrate types, compound pages (``__GFP_COMP`` is ignored).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from pyvmalloc.errors import ConfigError, Inconsistency, KernelBug
from pyvmalloc.phys.frames import FrameStore
from pyvmalloc.phys.gfp import GFPBIT, GFP_ZONEMASK, ZONE_NAMES, gfp_zonelist

# -- page flags (bits of ``PhysMem.flags``) ---------------------------------------------------------
PG_buddy = 0x01
PG_reserved = 0x02
PG_slab = 0x04
PG_pgtable = 0x08  # PageTable(): a 4.x flag; 2.6.22 had no mark for page-table pages
_PG_NAMES = (("PG_buddy", PG_buddy), ("PG_reserved", PG_reserved), ("PG_slab", PG_slab),
             ("PG_pgtable", PG_pgtable))

# -- owner kinds --------------------------------------------------------------------------------
OWNER_FREE = "free"
OWNER_PGTABLE = "pgtable"
OWNER_VMALLOC = "vmalloc"
OWNER_SLAB = "slab"
OWNER_OTHER = "other"
OWNER_RESERVED = "reserved"
OWNERS: tuple[str, ...] = (OWNER_FREE, OWNER_PGTABLE, OWNER_VMALLOC, OWNER_SLAB, OWNER_OTHER,
                           OWNER_RESERVED)
_OWNER_CODE = {name: code for code, name in enumerate(OWNERS)}
_FREE, _RESERVED = _OWNER_CODE[OWNER_FREE], _OWNER_CODE[OWNER_RESERVED]
# The page flag an owner kind implies (set on allocation, cleared on free).
_OWNER_FLAG = np.zeros(len(OWNERS), dtype=np.uint8)
_OWNER_FLAG[_OWNER_CODE[OWNER_SLAB]] = PG_slab
_OWNER_FLAG[_OWNER_CODE[OWNER_PGTABLE]] = PG_pgtable
_OWNER_FLAG[_RESERVED] = PG_reserved
_OWNER_MARKS = PG_slab | PG_pgtable | PG_reserved  # the flags _OWNER_FLAG sets

NO_ZONE = 0xFF
# arch/x86/include/asm/sparsemem.h: SECTION_SIZE_BITS 27, 128 MiB sections (frames of 4 KiB).
_SECTION_SHIFT = 15
MAX_NUMNODES = 64  # x86_64 NODES_SHIFT 6

FailHook = Callable[[str, int], int]


# check() walks the frames in chunks of this many (a multiple of every block size, 16 MiB of
# metadata per array): no temporary array the size of a 1 TiB machine's.
_CHUNK = 1 << 22


def _chunks(start: int, end: int) -> Iterator[tuple[int, int]]:
    """``[c0, c1)`` pieces of ``[start, end)`` cut at multiples of _CHUNK."""
    c0 = start
    while c0 < end:
        c1 = min(end, (c0 // _CHUNK + 1) * _CHUNK)
        yield c0, c1
        c0 = c1


# Below this many frames, free_pages_bulk runs the plain loop (same result, less overhead).
_SMALL_BULK = 8


@dataclass(frozen=True)

class ZoneInfo:
    """One (node, zone) pair: its pfn span and how much of it is free, per order."""

    node: int
    zone: str
    start_pfn: int
    end_pfn: int
    present: int
    reserved: int
    free: int
    free_per_order: tuple[int, ...]  # number of free blocks of each order (/proc/buddyinfo)


@dataclass(frozen=True)
class PhysStats:
    """Counters of the page allocator since boot.

    ``allocs``/``frees`` count calls of the single-page API, a bulk call counting one per page
    (what the equivalent loop of ``alloc_page``/``__free_page`` would count); ``splits`` and
    ``merges`` count block halvings in ``expand()`` and buddy merges in ``__free_one_page()``.
    """

    allocs: int
    frees: int
    pages_allocated: int
    pages_freed: int
    splits: int
    merges: int
    failures: int
    injected_failures: int


class Page:
    """A light handle on one frame's ``struct page``: reads the metadata arrays on demand."""

    __slots__ = ("_mem", "pfn")

    def __init__(self, mem: PhysMem, pfn: int) -> None:
        self._mem = mem
        self.pfn = pfn

    def page_to_pfn(self) -> int:
        """The frame number of this page."""
        return self.pfn

    @property
    def phys_addr(self) -> int:
        """Physical address of the first byte of the frame."""
        return self.pfn * self._mem.page_size

    @property
    def node(self) -> int:
        """NUMA node of the frame (``page_to_nid``)."""
        return self._mem.node_of(self.pfn)

    @property
    def zone(self) -> str:
        """Zone name of the frame (``page_zone(page)->name``)."""
        return self._mem.zone_of(self.pfn)

    @property
    def flags(self) -> int:
        """The ``PG_*`` bits."""
        self._mem._touch(self.pfn)
        return int(self._mem._flags[self.pfn])

    @property
    def flag_names(self) -> str:
        """The set flags by name, ``"PG_buddy|PG_reserved"``, or ``""``."""
        return page_flag_names(self.flags)

    @property
    def refcount(self) -> int:
        """``page_count(page)``."""
        return int(self._mem.refcount[self.pfn])

    @property
    def owner(self) -> str:
        """Owner kind: one of ``OWNERS``."""
        return OWNERS[int(self._mem.owner[self.pfn])]

    @property
    def order(self) -> int | None:
        """Buddy order when this page heads a free block, else None."""
        return int(self._mem._order[self.pfn]) if self.flags & PG_buddy else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Page) and other.pfn == self.pfn and other._mem is self._mem

    def __hash__(self) -> int:
        return hash(self.pfn)

    def __int__(self) -> int:
        return self.pfn

    def __index__(self) -> int:
        return self.pfn

    def __repr__(self) -> str:
        return (f"Page(pfn={self.pfn:#x}, node={self.node}, zone={self.zone}, "
                f"flags={self.flag_names or '0'}, count={self.refcount}, owner={self.owner})")


def page_flag_names(flags: int) -> str:
    """``PG_*`` names of the bits in ``flags`` joined by ``|`` (``""`` when none)."""
    return "|".join(name for name, bit in _PG_NAMES if flags & bit)


def pfn_to_page(mem: PhysMem, pfn: int) -> Page:
    """The page handle of frame ``pfn`` of ``mem``."""
    return mem.page(pfn)


def page_to_pfn(page: Page | int) -> int:
    """The frame number of ``page`` (a ``Page`` or already a pfn)."""
    return page.pfn if isinstance(page, Page) else int(page)


class _Zone:
    """One buddy allocator: the free areas of one zone on one node."""

    __slots__ = ("zid", "node", "name", "start", "end", "free_area", "nr_free", "present",
                 "reserved")

    def __init__(self, zid: int, node: int, name: str, start: int, end: int, max_order: int) -> None:
        self.zid = zid
        self.node = node
        self.name = name
        self.start = start
        self.end = end
        self.free_area: list[dict[int, None]] = [{} for _ in range(max_order)]
        self.nr_free = 0
        self.present = end - start
        self.reserved = 0


class _FreeList(dict[int, None]):
    """A free list (see the module docstring: the dict's end is the list's head) whose oldest
    entries, the blocks boot freed in ascending order, stay an array until taken: a 1 TiB
    machine boots without a dict of its 262,144 MAX_ORDER blocks.  The blocks freed later are
    the dict itself, after the array in list order; ``popitem`` takes the dict's last entry,
    then the array's last; any other change of an array entry first makes the whole list a
    plain dict (same order)."""

    __slots__ = ("_boot", "_n")

    def __init__(self, boot: npt.NDArray[np.int64]) -> None:
        super().__init__()
        self._boot = boot
        self._n = len(boot)

    def _spill(self) -> None:
        """Turn the array part into dict entries, ahead of the dict's own (the list's order)."""
        if self._n:
            rest = list(dict.__iter__(self))
            dict.clear(self)
            dict.update(self, dict.fromkeys(self._boot[:self._n].tolist()))
            dict.update(self, dict.fromkeys(rest))
            self._n = 0
            self._boot = self._boot[:0]

    def _in_boot(self, key: object) -> bool:
        if not self._n or not isinstance(key, (int, np.integer)):
            return False
        i = int(np.searchsorted(self._boot[:self._n], key))
        return i < self._n and int(self._boot[i]) == key

    def __len__(self) -> int:
        return self._n + dict.__len__(self)

    def __bool__(self) -> bool:
        return self._n > 0 or dict.__len__(self) > 0

    def __iter__(self) -> Iterator[int]:
        if self._n:
            yield from self._boot[:self._n].tolist()
        yield from dict.__iter__(self)

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or self._in_boot(key)

    def __getitem__(self, key: int) -> None:
        if self._in_boot(key):
            return None
        return dict.__getitem__(self, key)

    def __setitem__(self, key: int, value: None) -> None:
        if self._in_boot(key):
            self._spill()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: int) -> None:
        if self._in_boot(key):
            self._spill()
        dict.__delitem__(self, key)

    def popitem(self) -> tuple[int, None]:
        if dict.__len__(self):
            return dict.popitem(self)
        if not self._n:
            raise KeyError("popitem(): free list is empty")
        self._n -= 1
        return int(self._boot[self._n]), None

    def keys(self) -> Any:
        self._spill()
        return dict.keys(self)

    def items(self) -> Any:
        self._spill()
        return dict.items(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, dict) and list(self) == list(other) and len(self) == len(other)

    __hash__ = None

    def __repr__(self) -> str:
        return f"_FreeList({list(self)!r})"


def _log2_floor(n: int) -> int:
    return n.bit_length() - 1


def _aligned_blocks(start: int, end: int, top: int) -> Iterator[tuple[int, int]]:
    """``(pfn, order)`` of the maximal naturally aligned blocks (order <= top) tiling [start, end)."""
    pfn = start
    while pfn < end:
        k = min(top, _log2_floor(end - pfn), _log2_floor(pfn & -pfn) if pfn else top)
        yield pfn, k
        pfn += 1 << k


class PhysMem:
    """The physical memory of a machine: frames with bytes, nodes, zones and their buddy allocators.

    ``zones`` are ``(name, start_pfn, end_pfn)`` in address order (names from DMA, DMA32,
    NORMAL, HIGHMEM; empty ones are skipped); frames outside them are holes.  RAM is split evenly
    among ``nodes`` in address order, node boundaries aligned to MAX_ORDER blocks.
    ``reserved`` are pfn ranges kept out of the allocator at boot (PG_reserved), e.g. the
    kernel image.  ``fail_hook(point, n)`` returns how many of ``n`` page allocations about to
    be attempted may succeed (fault injection; point ``"page_alloc"``).
    """

    def __init__(
        self,
        page_size: int,
        zones: Sequence[tuple[str, int, int]],
        nodes: int = 1,
        fail_hook: FailHook | None = None,
        max_order: int = 11,
        *,
        reserved: Sequence[tuple[int, int]] = (),
    ) -> None:
        zones = self._validate(page_size, zones, nodes, max_order)
        self.page_size = int(page_size)
        self.max_order = int(max_order)
        self.fail_hook = fail_hook
        span_start, span_end = int(zones[0][1]), int(zones[-1][2])
        self.frames = FrameStore(span_end, self.page_size)
        self.nr_frames = span_end  # pfns 0 .. span_end-1 exist as indices (holes included)

        self._flags = np.zeros(span_end, dtype=np.uint8)
        self.owner = np.zeros(span_end, dtype=np.uint8)
        self.refcount = np.zeros(span_end, dtype=np.int32)
        self._order = np.zeros(span_end, dtype=np.uint8)
        # A section never splits a MAX_ORDER block, so a block's buddies share its section.
        self._section_shift = max(_SECTION_SHIFT, self.max_order - 1)
        self._pending = np.zeros((span_end >> self._section_shift) + 1, dtype=bool)
        self._npending = 0
        self._boot_heads = np.zeros(0, dtype=np.int64)
        self._boot_orders = np.zeros(0, dtype=np.uint8)

        self.node_spans = self._split_nodes(zones, nodes, span_start, span_end)
        self.nodes = range(nodes)
        self._zones: list[_Zone] = []
        self._node_zones: list[list[_Zone]] = [[] for _ in range(nodes)]
        for node, (n_start, n_end) in enumerate(self.node_spans):
            for name, z_start, z_end in zones:
                s, e = max(n_start, int(z_start)), min(n_end, int(z_end))
                if s < e:
                    zone = _Zone(len(self._zones), node, name, s, e, self.max_order)
                    self._zones.append(zone)
                    self._node_zones[node].append(zone)
        # Nodes and zones both go up in address order: the zones' bounds are sorted.
        self._zone_starts = [z.start for z in self._zones]
        self._zstarts = np.array(self._zone_starts, dtype=np.int64)
        self._zends = np.array([z.end for z in self._zones], dtype=np.int64)
        for node in range(len(self.node_spans)):
            present = sum(z.present for z in self._node_zones[node])
            if present < 1 << (self.max_order - 1):
                raise ConfigError(
                    f"node {node} would get {present} pages, less than one MAX_ORDER block of "
                    f"{1 << (self.max_order - 1)} pages: use fewer nodes or more memory")
        self.nr_pages = sum(z.present for z in self._zones)  # num_physpages

        self._zonelists: dict[tuple[int, int], list[_Zone]] = {}
        self._allocs = self._frees = self._pages_allocated = self._pages_freed = 0
        self._splits = self._merges = self._failures = self._injected = 0
        self._boot(reserved)

    # -- boot ----------------------------------------------------------------------------------
    @staticmethod
    def _validate(page_size: int, zones: Sequence[tuple[str, int, int]], nodes: int,
                  max_order: int) -> list[tuple[str, int, int]]:
        """The populated zones, as ints; ConfigError for anything the model cannot boot."""
        if not isinstance(page_size, int) or page_size < 64 or page_size & (page_size - 1):
            raise ConfigError(f"page size {page_size!r} is not a power of two of at least 64 bytes")
        if not isinstance(max_order, int) or not 1 <= max_order <= 20:
            raise ConfigError(f"MAX_ORDER {max_order!r} is outside 1..20")
        if not isinstance(nodes, int) or not 1 <= nodes <= MAX_NUMNODES:
            raise ConfigError(f"{nodes!r} NUMA nodes: the model supports 1 to {MAX_NUMNODES}")
        out: list[tuple[str, int, int]] = []
        last_end, last_type = 0, -1
        for zone in zones:
            try:
                name, start, end = zone
                start, end = int(start), int(end)
            except (TypeError, ValueError):
                raise ConfigError(f"zone {zone!r} is not (name, start_pfn, end_pfn)") from None
            if name not in ZONE_NAMES:
                raise ConfigError(f"zone name {name!r} is not one of {', '.join(ZONE_NAMES)}")
            if ZONE_NAMES.index(name) <= last_type:
                raise ConfigError(f"zone {name} is out of order or repeated (order: DMA, DMA32, NORMAL, HIGHMEM)")
            if not last_end <= start <= end:
                raise ConfigError(f"zone {name} [{start:#x}, {end:#x}) overlaps or is out of address order")
            last_type = ZONE_NAMES.index(name)
            if start < end:  # an empty zone is not populated: leave it out
                out.append((name, start, end))
                last_end = end
        if not out:
            raise ConfigError("no memory zones: the machine has no RAM")
        return out

    def _split_nodes(self, zones: Sequence[tuple[str, int, int]], nodes: int, start: int,
                     end: int) -> list[tuple[int, int]]:
        block = 1 << (self.max_order - 1)
        per = (end - start) // nodes // block * block
        if per < block:
            raise ConfigError(
                f"{nodes} nodes need at least {nodes} MAX_ORDER blocks of {block} pages each, "
                f"the machine has {end - start} pages")
        bounds = [start] + [(start + i * per) // block * block for i in range(1, nodes)] + [end]
        return [(bounds[i], bounds[i + 1]) for i in range(nodes)]

    def _boot(self, reserved: Sequence[tuple[int, int]]) -> None:
        """Reserve ``reserved`` and free the rest into the buddy allocators (free_all_bootmem)."""
        res: list[tuple[int, int]] = []
        for rng in reserved:
            try:
                s, e = (int(x) for x in rng)
            except (TypeError, ValueError):
                raise ConfigError(f"reserved range {rng!r} is not (start_pfn, end_pfn)") from None
            if not 0 <= s < e <= self.nr_frames:
                raise ConfigError(f"reserved range [{s:#x}, {e:#x}) is outside physical memory")
            res.append((s, e))
        res.sort()
        top = self.max_order - 1
        heads: list[npt.NDArray[np.int64]] = []
        orders: list[npt.NDArray[np.int64]] = []
        for zone in self._zones:
            free_ranges = self._subtract(zone.start, zone.end, res)
            zone.reserved = zone.present - sum(e - s for s, e in free_ranges)
            per_order: list[list[npt.NDArray[np.int64]]] = [[] for _ in range(self.max_order)]
            block = 1 << top
            for s, e in free_ranges:
                # Edges piece by piece, the aligned middle as one arange of MAX_ORDER blocks.
                mid_s = min(e, -(-s // block) * block)
                mid_e = max(mid_s, e // block * block)
                for lo, hi in ((s, mid_s), (mid_e, e)):
                    for pfn, k in _aligned_blocks(lo, hi, top):
                        per_order[k].append(np.array([pfn], dtype=np.int64))
                per_order[top].append(np.arange(mid_s, mid_e, block, dtype=np.int64))
                zone.nr_free += e - s
            for k, parts in enumerate(per_order):
                if not parts:
                    continue
                pfns = np.sort(np.concatenate(parts))
                # Ascending, as free_all_bootmem frees: the highest block ends at the list head.
                zone.free_area[k] = _FreeList(pfns) if k == top else dict.fromkeys(pfns.tolist())
                heads.append(pfns)
                orders.append(np.full(len(pfns), k, dtype=np.int64))
        if heads:
            # Not written here: each section's heads are written when it is first touched.
            all_heads = np.concatenate(heads)
            by_pfn = np.argsort(all_heads, kind="stable")
            self._boot_heads = all_heads[by_pfn]
            self._boot_orders = np.concatenate(orders)[by_pfn].astype(np.uint8)
            self._pending[np.unique(self._boot_heads >> self._section_shift)] = True
            self._npending = int(np.count_nonzero(self._pending))
        for s, e in res:
            present = self.zone_ids(slice(s, e)) != NO_ZONE
            self._flags[s:e][present] = PG_reserved
            self.owner[s:e][present] = _RESERVED
            self.refcount[s:e][present] = 1

    # -- sections: the boot heads written on first touch -----------------------------------------
    def _fill(self, sec: int) -> None:
        """Write section ``sec``'s boot heads (PG_buddy, order) into the metadata arrays."""
        sh = self._section_shift
        lo, hi = np.searchsorted(self._boot_heads, [sec << sh, (sec + 1) << sh])
        heads = self._boot_heads[lo:hi]
        self._flags[heads] |= PG_buddy  # reserved frames are no heads: nothing else is set
        self._order[heads] = self._boot_orders[lo:hi]
        self._pending[sec] = False
        self._npending -= 1

    def _touch(self, pfn: int) -> None:
        """Make the metadata of ``pfn``'s section real before reading or writing it."""
        if self._npending and self._pending[pfn >> self._section_shift]:
            self._fill(pfn >> self._section_shift)

    def _touch_pfns(self, pfns: npt.NDArray[np.int64]) -> None:
        """``_touch`` of every frame of ``pfns`` (valid pfns)."""
        if self._npending and len(pfns):
            secs = np.unique(pfns >> self._section_shift)
            for sec in secs[self._pending[secs]].tolist():
                self._fill(sec)

    def _touch_all(self) -> None:
        if self._npending:
            for sec in np.flatnonzero(self._pending).tolist():
                self._fill(sec)

    @property
    def flags(self) -> npt.NDArray[np.uint8]:
        """Page flags per pfn (every section filled first: callers may read any frame)."""
        self._touch_all()
        return self._flags

    @property
    def order(self) -> npt.NDArray[np.uint8]:
        """Buddy order per pfn, valid where ``PG_buddy`` is set (every section filled first)."""
        self._touch_all()
        return self._order

    def _implied(self, pfns: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.intp]]:
        """Which of ``pfns`` are boot heads of sections not yet filled, and their index in
        ``_boot_heads`` (where they are)."""
        idx = np.searchsorted(self._boot_heads, pfns)
        idx = np.minimum(idx, max(len(self._boot_heads) - 1, 0))
        hit = self._pending[pfns >> self._section_shift] & (self._boot_heads[idx] == pfns)
        return hit, idx

    def _meta_at(self, pfns: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """(flags, order) of ``pfns`` as they are, sections not yet filled read through their
        boot heads (nothing is written: check() of a large machine stays small)."""
        fl, od = self._flags[pfns], self._order[pfns]
        if self._npending and len(pfns) and len(self._boot_heads):
            hit, idx = self._implied(pfns)
            fl[hit] |= PG_buddy
            od[hit] = self._boot_orders[idx[hit]]
        return fl, od

    def _flags_range(self, c0: int, c1: int) -> npt.NDArray[np.uint8]:
        """``flags[c0:c1]`` as ``_meta_at`` reads it (a view when no section in it is pending)."""
        fl = self._flags[c0:c1]
        sh = self._section_shift
        if self._npending and self._pending[c0 >> sh:((c1 - 1) >> sh) + 1].any():
            lo, hi = np.searchsorted(self._boot_heads, [c0, c1])
            heads = self._boot_heads[lo:hi]
            heads = heads[self._pending[heads >> sh]]
            fl = fl.copy()
            fl[heads - c0] |= PG_buddy
        return fl

    def _buddy_marked(self, c0: int, c1: int) -> npt.NDArray[np.int64]:
        """The pfns of ``[c0, c1)`` with PG_buddy as ``_meta_at`` reads them, ascending (the
        pending sections' heads joined to the written marks: no copy of the range; a range
        with few flags set is read at those frames only)."""
        fl = self._flags[c0:c1]
        n = int(np.count_nonzero(fl))
        few = _few_nonzero(fl, n, c0)
        if few is None:
            marked = np.flatnonzero(fl & PG_buddy).astype(np.int64) + c0
        else:
            marked = few[(fl[few - c0] & PG_buddy) != 0]
        sh = self._section_shift
        if self._npending and self._pending[c0 >> sh:((c1 - 1) >> sh) + 1].any():
            lo, hi = np.searchsorted(self._boot_heads, [c0, c1])
            heads = self._boot_heads[lo:hi]
            heads = heads[self._pending[heads >> sh]]
            marked = np.union1d(marked, heads) if len(marked) else heads
        return marked

    # -- zone ids ------------------------------------------------------------------------------
    def zone_ids(self, pfns: npt.ArrayLike | slice) -> npt.NDArray[np.uint8]:
        """``page_zone_id`` of each frame of ``pfns`` (an array of pfns inside
        ``[0, nr_frames)``, or a ``slice(start, stop)`` of them): the index of its (node, zone)
        pair, ``NO_ZONE`` in holes.  The one way to ask a frame's zone id."""
        if isinstance(pfns, slice):
            c0, c1 = int(pfns.start), int(pfns.stop)
            out = np.full(max(c1 - c0, 0), NO_ZONE, dtype=np.uint8)
            for z in self._zones:
                s, e = max(z.start, c0), min(z.end, c1)
                if s < e:
                    out[s - c0:e - c0] = z.zid
            return out
        arr = np.asarray(pfns, dtype=np.int64)
        i = np.searchsorted(self._zstarts, arr, side="right") - 1
        safe = np.maximum(i, 0)
        inside = (i >= 0) & (arr < self._zends[safe])
        return np.where(inside, safe, NO_ZONE).astype(np.uint8)

    def zone_id(self, pfn: int) -> int:
        """``zone_ids`` of one frame (``NO_ZONE`` in a hole or outside memory)."""
        i = bisect_right(self._zone_starts, pfn) - 1
        if i < 0 or pfn >= self._zones[i].end:
            return NO_ZONE
        return i

    @staticmethod
    def _subtract(start: int, end: int, holes: list[tuple[int, int]]) -> list[tuple[int, int]]:
        out, pos = [], start
        for s, e in holes:
            if e <= pos or s >= end:
                continue
            if s > pos:
                out.append((pos, s))
            pos = max(pos, e)
        if pos < end:
            out.append((pos, end))
        return out

    # -- lookups -------------------------------------------------------------------------------
    def pfn_valid(self, pfn: int) -> bool:
        """Whether ``pfn`` is a frame of RAM (inside a zone, not a hole)."""
        return 0 <= pfn < self.nr_frames and self.zone_id(pfn) != NO_ZONE

    def _zone_of_pfn(self, pfn: int, what: str) -> _Zone:
        if not isinstance(pfn, (int, np.integer)) or not self.pfn_valid(int(pfn)):
            raise KernelBug(f"{what}: pfn {pfn!r} is outside physical memory")
        return self._zones[self.zone_id(int(pfn))]

    def node_of(self, pfn: int) -> int:
        """NUMA node of frame ``pfn``."""
        return self._zone_of_pfn(pfn, "page_to_nid").node

    def nodes_of(self, pfns: npt.ArrayLike) -> npt.NDArray[np.int64]:
        """NUMA node of each frame of ``pfns`` (vectorised ``page_to_nid``)."""
        starts = np.array([start for start, _end in self.node_spans], dtype=np.int64)
        return np.searchsorted(starts, np.asarray(pfns, dtype=np.int64), side="right") - 1

    def zone_of(self, pfn: int) -> str:
        """Zone name of frame ``pfn``."""
        return self._zone_of_pfn(pfn, "page_zone").name

    def page(self, pfn: int) -> Page:
        """The page handle of frame ``pfn`` (``pfn_to_page``); KernelBug outside memory."""
        self._zone_of_pfn(pfn, "pfn_to_page")
        return Page(self, int(pfn))

    pfn_to_page = page

    @staticmethod
    def page_to_pfn(page: Page | int) -> int:
        """The frame number of ``page``."""
        return page_to_pfn(page)

    def page_count(self, pfn: int) -> int:
        """``page_count()`` of frame ``pfn``."""
        self._zone_of_pfn(pfn, "page_count")
        return int(self.refcount[pfn])

    def owner_of(self, pfn: int) -> str:
        """Owner kind of frame ``pfn``."""
        self._zone_of_pfn(pfn, "page owner")
        return OWNERS[int(self.owner[pfn])]

    def pfns_owned_by(self, owner: str) -> npt.NDArray[np.int64]:
        """Every frame whose owner kind is ``owner``, ascending (a scan of the owner array)."""
        code = self._owner_code(owner)
        pfns = np.flatnonzero(self.owner == code).astype(np.int64)
        if code == _FREE:
            pfns = pfns[self.zone_ids(pfns) != NO_ZONE]
        return pfns

    @staticmethod
    def _owner_code(owner: str) -> int:
        code = _OWNER_CODE.get(owner)
        if code is None:
            raise ConfigError(f"owner kind {owner!r} is not one of {', '.join(OWNERS)}")
        return code

    # -- zonelists -----------------------------------------------------------------------------
    def _node_arg(self, node: int, what: str) -> int:
        if not isinstance(node, (int, np.integer)) or not -1 <= node < len(self.nodes):
            # NODE_DATA(nid) of a node that does not exist: the kernel oopses.
            raise KernelBug(f"{what}: node {node!r} does not exist")
        return 0 if node < 0 else int(node)  # -1 = "this CPU's node": the model runs on node 0

    def zonelist(self, node: int, gfp: int) -> list[tuple[int, str]]:
        """``(node, zone)`` pairs an allocation with ``gfp`` preferring ``node`` tries, in order."""
        return [(z.node, z.name) for z in self._zonelist(self._node_arg(node, "zonelist"), gfp)]

    def _zonelist(self, node: int, gfp: int) -> list[_Zone]:
        key = (node, gfp & (GFP_ZONEMASK | GFPBIT.THISNODE))
        zl = self._zonelists.get(key)
        if zl is None:
            # mm/page_alloc.c (2.6.22, NUMA) build_zonelists(): node-ordered lists, the local
            # node's zones first, then each other node by distance.  The model's distance
            # is the ring order node+1, node+2, ...; __GFP_THISNODE keeps only the local node.
            nodes = [node] if gfp & GFPBIT.THISNODE else [
                (node + i) % len(self.nodes) for i in range(len(self.nodes))]
            zl = []
            for n in nodes:
                by_name = {z.name: z for z in self._node_zones[n]}
                zl.extend(by_name[name] for name in gfp_zonelist(gfp, by_name))
            self._zonelists[key] = zl
        return zl

    # -- fault injection -----------------------------------------------------------------------
    def _allowed(self, gfp: int, n: int) -> int:
        # mm/page_alloc.c should_fail_alloc_page() (2.6.20+): __GFP_NOFAIL is never failed.
        if self.fail_hook is None or n == 0 or gfp & GFPBIT.NOFAIL:
            return n
        return max(0, min(n, int(self.fail_hook("page_alloc", n))))

    # -- single allocations --------------------------------------------------------------------
    def alloc_pages_node(self, node: int, gfp: int, order: int, *, owner: str = OWNER_OTHER) -> int | None:
        """``2**order`` contiguous frames, pfn of the first, or None (the kernel's NULL).

        Tries the zonelist of ``node`` (-1: the local node, node 0) for ``gfp``: the preferred
        zone, lower zones, then the other nodes unless ``__GFP_THISNODE``.
        """
        node = self._node_arg(node, "alloc_pages_node")
        code = self._owner_code(owner)
        if not isinstance(order, (int, np.integer)) or not 0 <= order < self.max_order:
            # __alloc_pages(): order >= MAX_ORDER returns NULL.
            self._failures += 1
            return None
        if self._allowed(gfp, 1) == 0:
            self._failures += 1
            self._injected += 1
            return None
        for zone in self._zonelist(node, gfp):
            if zone.nr_free >= 1 << order:
                pfn = self._rmqueue(zone, order)
                if pfn is not None:
                    self._prep_new_pages(pfn, 1 << order, gfp, code)
                    self._allocs += 1
                    self._pages_allocated += 1 << order
                    return pfn
        self._failures += 1
        return None

    def alloc_pages(self, gfp: int, order: int, *, owner: str = OWNER_OTHER) -> int | None:
        """``alloc_pages(gfp, order)`` on the local node."""
        return self.alloc_pages_node(-1, gfp, order, owner=owner)

    def alloc_page(self, gfp: int, *, owner: str = OWNER_OTHER) -> int | None:
        """``alloc_page(gfp)``: one frame from the local node's zonelist, or None."""
        return self.alloc_pages_node(-1, gfp, 0, owner=owner)

    def _rmqueue(self, zone: _Zone, order: int) -> int | None:
        """__rmqueue(): the head block of the smallest order that fits, split down to ``order``."""
        area = zone.free_area
        for cur in range(order, self.max_order):
            if area[cur]:
                pfn = area[cur].popitem()[0]
                break
        else:
            return None
        self._touch(pfn)  # the halves below share the block's section
        self._flags[pfn] = 0  # a free head carries PG_buddy and nothing else
        # expand(): keep the lower half, give each upper half back at its order.
        while cur > order:
            cur -= 1
            half = pfn + (1 << cur)
            area[cur][half] = None
            self._flags[half] = PG_buddy
            self._order[half] = cur
            self._splits += 1
        zone.nr_free -= 1 << order
        return pfn

    def _prep_new_pages(self, pfn: int, n: int, gfp: int, code: int) -> None:
        if n == 1:
            self.owner[pfn] = code
            self._flags[pfn] = _OWNER_FLAG[code]
        else:
            self.owner[pfn:pfn + n] = code
            self._flags[pfn:pfn + n] = _OWNER_FLAG[code]
        self.refcount[pfn] = 1
        if gfp & GFPBIT.ZERO:
            self.frames.zero(np.arange(pfn, pfn + n, dtype=np.int64))

    # -- single frees --------------------------------------------------------------------------
    def get_page(self, pfn: int) -> None:
        """Take a reference on an allocated frame (``get_page``)."""
        self._zone_of_pfn(pfn, "get_page")
        if self.refcount[pfn] <= 0:
            raise KernelBug(f"get_page: pfn {pfn:#x} has page_count {int(self.refcount[pfn])}")
        self.refcount[pfn] += 1

    def put_page(self, pfn: int) -> None:
        """Drop a reference (``put_page``); the frame goes back to the buddy at zero."""
        self.free_pages(pfn, 0)

    def free_pages(self, pfn: int, order: int = 0) -> None:
        """``__free_pages(page, order)``: drop a reference on the block at ``pfn``; at zero
        every frame of it returns to the buddy allocator, merging with free buddies.

        Raises KernelBug ("Bad page state") for a pfn outside memory, a misaligned block, a
        block that is (partly) free or reserved, or tail pages that still hold references.
        """
        zone = self._zone_of_pfn(pfn, "__free_pages")
        pfn = int(pfn)
        if not isinstance(order, (int, np.integer)) or not 0 <= order < self.max_order:
            raise KernelBug(f"__free_pages: order {order!r} is outside 0..{self.max_order - 1}")
        n = 1 << order
        if pfn & (n - 1) or pfn + n > zone.end:
            raise KernelBug(f"__free_pages: block of order {order} at pfn {pfn:#x} is misaligned or leaves its zone")
        self._touch(pfn)  # the block and its buddies share one section
        count = int(self.refcount[pfn])
        if count <= 0 or self.owner[pfn] == _FREE:
            raise KernelBug(f"Bad page state: pfn {pfn:#x} freed with page_count {count} (double free?)")
        if self._flags[pfn] & PG_reserved:
            raise KernelBug(f"Bad page state: pfn {pfn:#x} is PG_reserved")
        if count > 1:  # put_page_testzero(): others still hold it
            self.refcount[pfn] = count - 1
            self._frees += 1
            return
        if n > 1:
            tail = slice(pfn + 1, pfn + n)
            if (np.any(self.owner[tail] == _FREE) or np.any(self.refcount[tail] != 0)
                    or np.any(self._flags[tail] & (PG_buddy | PG_reserved))):
                raise KernelBug(f"Bad page state: block of order {order} at pfn {pfn:#x} has free, "
                                "reserved or referenced tail pages")
            self.owner[tail] = _FREE
            self._flags[tail] = 0
        self.refcount[pfn] = 0
        self.owner[pfn] = _FREE
        self._flags[pfn] = 0
        self._free_one_page(zone, pfn, order)
        zone.nr_free += n
        self._frees += 1
        self._pages_freed += n

    def free_page(self, pfn: int) -> None:
        """``__free_page(page)`` = ``free_pages(pfn, 0)``."""
        self.free_pages(pfn, 0)

    def _free_one_page(self, zone: _Zone, pfn: int, order: int) -> None:
        """__free_one_page(): merge with the buddy while it is free at the same order."""
        area, flags, orders = zone.free_area, self._flags, self._order
        top = self.max_order - 1
        while order < top:
            size = 1 << order
            buddy = pfn ^ size
            # page_is_buddy(): inside the same zone, PG_buddy, same order.
            if buddy < zone.start or buddy + size > zone.end:
                break
            if not flags[buddy] & PG_buddy or orders[buddy] != order:
                break
            del area[order][buddy]
            flags[buddy] = 0
            pfn &= ~size
            order += 1
            self._merges += 1
        flags[pfn] = PG_buddy
        orders[pfn] = order
        area[order][pfn] = None

    # -- bulk ----------------------------------------------------------------------------------
    def alloc_pages_bulk(self, gfp: int, nr: int, node: int = -1, *,
                         owner: str = OWNER_OTHER) -> npt.NDArray[np.int64]:
        """Up to ``nr`` single frames, exactly those a loop of ``alloc_pages_node(node, gfp, 0)``
        would return, in the same order, leaving the free lists in the same state.

        Fewer than ``nr`` when memory runs out or ``fail_hook`` refuses: like the loop, it stops
        at the first failure.  Whole free blocks are taken at once (a loop empties the smallest
        order first, each block in ascending pfn order), so the cost is per block, not per page.
        """
        node = self._node_arg(node, "alloc_pages_bulk")
        code = self._owner_code(owner)
        if not isinstance(nr, (int, np.integer)) or nr < 0:
            raise KernelBug(f"alloc_pages_bulk: bad page count {nr!r}")
        nr = int(nr)
        zonelist = self._zonelist(node, gfp)
        avail = sum(z.nr_free for z in zonelist)
        # The loop consults the hook once per attempt, up to and including the first failure.
        attempts = min(nr, avail + 1)
        allowed = self._allowed(gfp, attempts)
        want = min(allowed, avail)
        if want <= _SMALL_BULK:
            return self._alloc_few(gfp, nr, want, allowed < attempts, zonelist, code)
        starts: list[int] = []
        lengths: list[int] = []
        need = want
        for zone in zonelist:
            if need == 0:
                break
            if zone.nr_free:
                need -= self._take_blocks(zone, min(need, zone.nr_free), starts, lengths)
        if allowed < attempts:
            self._injected += 1
            self._failures += 1
        elif want < nr:
            self._failures += 1
        if not starts:
            return np.zeros(0, dtype=np.int64)
        st = np.array(starts, dtype=np.int64)
        ln = np.array(lengths, dtype=np.int64)
        # Concatenated aranges: pfn i = start of its block + (i - pages before its block).
        pfns = np.repeat(st - (np.cumsum(ln) - ln), ln) + np.arange(want, dtype=np.int64)
        self._flags[st] = 0  # the heads lose PG_buddy (_take_blocks touched their sections)
        self.owner[pfns] = code
        self._flags[pfns] = _OWNER_FLAG[code]
        self.refcount[pfns] = 1
        if gfp & GFPBIT.ZERO:
            self.frames.zero(pfns)
        self._allocs += want
        self._pages_allocated += want
        return pfns

    def _alloc_few(self, gfp: int, nr: int, want: int, injected: bool, zonelist: list[_Zone],
                   code: int) -> npt.NDArray[np.int64]:
        """alloc_pages_bulk of a handful of frames: the loop of ``__rmqueue`` itself, on plain
        ints (numpy's per-call overhead dominates below ``_SMALL_BULK`` frames)."""
        out: list[int] = []
        flag = int(_OWNER_FLAG[code])
        owner, flags, refcount = self.owner, self._flags, self.refcount
        for zone in zonelist:
            while len(out) < want and zone.nr_free:
                pfn = self._rmqueue(zone, 0)
                if pfn is None:  # nr_free says otherwise: cannot happen in a consistent zone
                    break
                owner[pfn] = code
                flags[pfn] = flag
                refcount[pfn] = 1
                out.append(pfn)
        if injected:
            self._injected += 1
            self._failures += 1
        elif len(out) < nr:
            self._failures += 1
        pfns = np.array(out, dtype=np.int64)
        if gfp & GFPBIT.ZERO and out:
            self.frames.zero(pfns)
        self._allocs += len(out)
        self._pages_allocated += len(out)
        return pfns

    def _take_blocks(self, zone: _Zone, need: int, starts: list[int], lengths: list[int]) -> int:
        """Take ``need`` (<= zone.nr_free) pages from ``zone`` as the loop would; returns ``need``."""
        area = zone.free_area
        left = need
        for k in range(self.max_order):
            d = area[k]
            size = 1 << k
            while d and left >= size:
                pfn = d.popitem()[0]
                self._touch(pfn)
                starts.append(pfn)
                lengths.append(size)
                self._splits += size - 1  # the loop halves a block of 2**k pages 2**k - 1 times
                left -= size
            if left == 0:
                break
            if d:
                # Part of the head block: the loop takes its first `left` pages in ascending
                # order; what stays free is [pfn + left, pfn + size) as aligned pieces, one per
                # order below k (the lower lists are empty, the loop emptied them first).
                pfn = d.popitem()[0]
                self._touch(pfn)
                starts.append(pfn)
                lengths.append(left)
                pieces = 0
                for piece, j in _aligned_blocks(pfn + left, pfn + size, k - 1):
                    area[j][piece] = None
                    self._flags[piece] = PG_buddy
                    self._order[piece] = j
                    pieces += 1
                self._splits += pieces + left - 1
                left = 0
                break
        zone.nr_free -= need
        return need

    def _free_few(self, pfns: list[int]) -> None:
        """free_pages_bulk of a handful of frames: the same checks, then the loop itself
        (numpy's per-call overhead dominates below ``_SMALL_BULK`` frames)."""
        counts: dict[int, int] = {}
        for pfn in pfns:
            counts[pfn] = counts.get(pfn, 0) + 1
        for pfn, n in counts.items():
            if not 0 <= pfn < self.nr_frames or self.zone_id(pfn) == NO_ZONE:
                raise KernelBug(f"__free_page: pfn {pfn:#x} is outside physical memory")
            self._touch(pfn)
            rc = int(self.refcount[pfn])
            if n > rc or self.owner[pfn] == _FREE or self._flags[pfn] & (PG_reserved | PG_buddy):
                raise KernelBug(f"Bad page state: pfn {pfn:#x} freed with page_count {rc} "
                                f"({n} times), owner {OWNERS[int(self.owner[pfn])]}")
        for pfn in pfns:
            self.free_pages(pfn, 0)

    def set_owner(self, pfns: npt.NDArray[np.int64], owner: str) -> None:
        """Make frames just handed out by :meth:`alloc_pages_bulk` belong to ``owner``: the
        owner and page flags that allocating them with ``owner=owner`` would have written (a
        caller that takes the frames of several owners in one bulk call, in the order a loop
        of calls would take them, sorts them out afterwards).  Frames that are free or held
        more than once are a KernelBug, and nothing changes."""
        code = self._owner_code(owner)
        if not len(pfns):
            return
        if np.any(self.owner[pfns] == _FREE) or np.any(self.refcount[pfns] != 1):
            raise KernelBug(f"set_owner: frames that are free or shared cannot be given to {owner}")
        self.owner[pfns] = code
        self._flags[pfns] = _OWNER_FLAG[code]

    def free_pages_bulk(self, pfns: npt.ArrayLike) -> None:
        """``__free_page`` of each frame of ``pfns``, in that order, with the result of the loop
        (same free blocks, same list order, same counters), computed order by order.

        Validates everything first: a bad frame raises KernelBug and frees nothing.
        """
        try:
            arr = np.asarray(pfns)
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                raise TypeError
        except (TypeError, ValueError):
            raise KernelBug(f"free_pages_bulk: {pfns!r} is not a 1-D array of pfns") from None
        if arr.size == 0:
            return
        if arr.size <= _SMALL_BULK:
            self._free_few(arr.tolist())
            return
        arr = arr.astype(np.int64, copy=False)
        if int(arr.min()) < 0 or int(arr.max()) >= self.nr_frames or np.any(self.zone_ids(arr) == NO_ZONE):
            bad = arr[(arr < 0) | (arr >= self.nr_frames)]
            bad = bad if bad.size else arr[self.zone_ids(np.clip(arr, 0, self.nr_frames - 1)) == NO_ZONE]
            raise KernelBug(f"__free_page: pfn {int(bad[0]):#x} is outside physical memory")
        uniq, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
        self._touch_pfns(uniq)  # their buddies share their sections
        rc = self.refcount[uniq].astype(np.int64)
        bad = (counts > rc) | (self.owner[uniq] == _FREE) | ((self._flags[uniq] & (PG_reserved | PG_buddy)) != 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise KernelBug(f"Bad page state: pfn {int(uniq[i]):#x} freed with page_count {int(rc[i])} "
                            f"({int(counts[i])} times), owner {OWNERS[int(self.owner[uniq[i]])]}")
        left = rc - counts
        self.refcount[uniq] = left
        dying = left == 0
        free = uniq[dying]
        # The loop frees a frame at its last occurrence: that index orders the list heads.
        last = np.full(len(uniq), -1, dtype=np.int64)
        if len(uniq) == len(arr):
            last[inverse] = np.arange(len(arr), dtype=np.int64)
        else:
            np.maximum.at(last, inverse, np.arange(len(arr), dtype=np.int64))
        keys = last[dying]
        self.owner[free] = _FREE
        self._flags[free] = 0
        self._frees += len(arr)
        self._pages_freed += len(free)
        if not len(free):
            return
        zids = self.zone_ids(free)
        cuts = np.flatnonzero(np.diff(zids)) + 1
        for part_pfns, part_keys in zip(np.split(free, cuts), np.split(keys, cuts)):
            zone = self._zones[self.zone_id(int(part_pfns[0]))]
            self._merge_bulk(zone, part_pfns, part_keys)
            zone.nr_free += len(part_pfns)

    def _merge_bulk(self, zone: _Zone, cand: npt.NDArray[np.int64], keys: npt.NDArray[np.int64]) -> None:
        """Free the sorted frames ``cand`` of ``zone``: merge order by order, vectorised.

        At each order a candidate block merges with its buddy when the buddy is another
        candidate or an old free block of that order; the rest are final.  A final block is
        inserted (at the head) when its last frame was freed in the loop: ``keys`` carry the
        index of that free, and finals enter their list in increasing key order.
        """
        flags, orders, area = self._flags, self._order, zone.free_area
        top = self.max_order - 1
        finals: list[tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        for k in range(self.max_order):
            if not len(cand):
                break
            if k == top:
                finals.append((k, cand, keys))
                break
            size = 1 << k
            lower = (cand & size) == 0
            pair_lo = np.zeros(len(cand), dtype=bool)
            pair_lo[:-1] = lower[:-1] & (cand[1:] == cand[:-1] + size)
            pair_hi = np.zeros(len(cand), dtype=bool)
            pair_hi[1:] = pair_lo[:-1]
            single = ~(pair_lo | pair_hi)
            s_pfn, s_key = cand[single], keys[single]
            buddy = s_pfn ^ size
            inside = (buddy >= zone.start) & (buddy + size <= zone.end)
            safe = np.where(inside, buddy, zone.start)
            old = inside & ((flags[safe] & PG_buddy) != 0) & (orders[safe] == k)
            old_buddies = buddy[old]
            for b in old_buddies.tolist():
                del area[k][b]
            flags[old_buddies] = 0
            n_pairs = int(pair_lo.sum())
            self._merges += n_pairs + len(old_buddies)
            finals.append((k, s_pfn[~old], s_key[~old]))
            hi_keys = keys[np.flatnonzero(pair_lo) + 1]
            parents = np.concatenate([cand[pair_lo], s_pfn[old] & ~size])
            pkeys = np.concatenate([np.maximum(keys[pair_lo], hi_keys), s_key[old]])
            by_pfn = np.argsort(parents, kind="stable")
            cand, keys = parents[by_pfn], pkeys[by_pfn]
        for k, pfns, fkeys in finals:
            if not len(pfns):
                continue
            pfns = pfns[np.argsort(fkeys, kind="stable")]
            flags[pfns] = PG_buddy
            orders[pfns] = k
            d = area[k]
            for p in pfns.tolist():
                d[p] = None

    # -- counters and reports ------------------------------------------------------------------
    def _select(self, node: int | None, zone: str | None) -> list[_Zone]:
        if node is not None and (not isinstance(node, (int, np.integer)) or not 0 <= node < len(self.nodes)):
            raise ConfigError(f"node {node!r} does not exist (nodes 0..{len(self.nodes) - 1})")
        if zone is not None and zone not in ZONE_NAMES:
            raise ConfigError(f"zone {zone!r} is not one of {', '.join(ZONE_NAMES)}")
        return [z for z in self._zones
                if (node is None or z.node == node) and (zone is None or z.name == zone)]

    def nr_free(self, node: int | None = None, zone: str | None = None) -> int:
        """Free frames, over all nodes/zones or those selected."""
        return sum(z.nr_free for z in self._select(node, zone))

    def nr_total(self, node: int | None = None, zone: str | None = None) -> int:
        """Present frames (reserved ones included), over all nodes/zones or those selected."""
        return sum(z.present for z in self._select(node, zone))

    def nr_used(self, node: int | None = None, zone: str | None = None) -> int:
        """Present frames that are not free (allocated or reserved)."""
        return self.nr_total(node, zone) - self.nr_free(node, zone)

    def zones_of_node(self, node: int) -> list[str]:
        """Names of the zones node ``node`` has, in address order."""
        return [z.name for z in self._select(node, None)]

    def zone_info(self) -> list[ZoneInfo]:
        """Per node, per zone (address order): span, present, reserved, free, free blocks per order."""
        return [ZoneInfo(z.node, z.name, z.start, z.end, z.present, z.reserved, z.nr_free,
                         tuple(len(d) for d in z.free_area)) for z in self._zones]

    def statistics(self) -> PhysStats:
        """Allocator counters since boot."""
        return PhysStats(self._allocs, self._frees, self._pages_allocated, self._pages_freed,
                         self._splits, self._merges, self._failures, self._injected)

    def host_bytes(self) -> int:
        """Host memory held for frame contents and the metadata arrays (virtual size)."""
        meta = sum(a.nbytes for a in (self._flags, self.owner, self.refcount, self._order))
        return self.frames.host_bytes() + meta

    # -- consistency ---------------------------------------------------------------------------
    # check() costs what the machine's state holds, not its size.  Every frame is still read
    # (a caller may write ``owner`` or ``refcount`` of any frame, touched section or not), but
    # by np.count_nonzero, which reads a chunk at memory speed without a temporary: a chunk
    # whose frames are all free (the metadata of a section untouched since boot is zero but
    # for reserved frames and the implied boot heads) passes each rule on that count and its
    # free blocks alone; a chunk with a few nonzero entries is checked at those entries only;
    # only a chunk with many (a heavily used one) takes the frame-by-frame pass, which is also
    # the pass that names the first broken frame when a cheaper one finds a fault.
    def check(self) -> None:
        """Raise Inconsistency naming the first broken invariant of the allocator state."""
        # Per zone: free + used = present; the nodes' sums follow (a node is its zones).
        for z in self._zones:
            where = f"node {z.node} zone {z.name}"
            parts = [_list_pfns(d) for d in z.free_area]
            heads = np.concatenate(parts)
            hord = np.repeat(np.arange(self.max_order, dtype=np.int64), [len(p) for p in parts])
            sizes = np.int64(1) << hord
            if len(heads):
                bad = (heads & (sizes - 1)) != 0
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise Inconsistency(f"{where}: free block at pfn {int(heads[i]):#x} is not aligned to its order {int(hord[i])}")
                bad = (heads < z.start) | (heads + sizes > z.end)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise Inconsistency(f"{where}: free block at pfn {int(heads[i]):#x} of order {int(hord[i])} leaves the zone [{z.start:#x}, {z.end:#x})")
                hflags, horder = self._meta_at(heads)
                bad = ((hflags & PG_buddy) == 0) | (horder != hord)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise Inconsistency(f"{where}: free block at pfn {int(heads[i]):#x} lacks PG_buddy or its order {int(hord[i])} in the page metadata")
            free_total = int(sizes.sum())
            if free_total != z.nr_free:
                raise Inconsistency(f"{where}: free lists hold {free_total} pages, the counter says {z.nr_free}")
            used = self._check_frames(z, where, heads, sizes)
            # Unmerged buddies: a free block whose buddy is a free block of the same order.
            for k in range(self.max_order - 1):
                h = heads[hord == k]
                if len(h) < 2:
                    continue
                mates = np.intersect1d(h, h ^ (1 << k))
                if len(mates):
                    raise Inconsistency(f"{where}: free buddies at pfn {int(mates.min()):#x} and {int(mates.min()) ^ (1 << k):#x} of order {k} were not merged")
            if used + z.nr_free != z.present:
                raise Inconsistency(f"{where}: {z.nr_free} free + {used} used != {z.present} present")
        self._check_holes()

    def _check_holes(self) -> None:
        """No frame between the zones has an owner or flags (no boot head lies in a hole: the
        raw flags are the flags there)."""
        prev = 0
        for z in self._zones:  # address order; the last zone ends at nr_frames
            for c0, c1 in _chunks(prev, z.start):
                own, fl = self.owner[c0:c1], self._flags[c0:c1]
                if np.count_nonzero(own) or np.count_nonzero(fl):
                    i = int(np.flatnonzero((own != _FREE) | (fl != 0))[0])
                    raise Inconsistency(f"pfn {c0 + i:#x} lies in a hole but has an owner or flags")
            prev = z.end

    def used_pfns(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8]]:
        """Every frame whose owner is not "free", ascending, and its owner code (an index of
        ``OWNERS``): one scan of the owner array, all-free chunks skipped at memory speed."""
        pfns: list[npt.NDArray[np.int64]] = []
        for c0, c1 in _chunks(0, self.nr_frames):
            own = self.owner[c0:c1]
            if np.count_nonzero(own):
                pfns.append(_nonzero_pfns(own, c0))
        out = np.concatenate(pfns) if pfns else np.zeros(0, np.int64)
        return out, self.owner[out]

    def _check_frames(self, z: _Zone, where: str, heads: npt.NDArray[np.int64],
                      sizes: npt.NDArray[np.int64]) -> int:
        """check() of the frames of one zone against its free blocks: each frame in at most one
        block, free frames owned "free" with no references, PG_buddy exactly on the heads, the
        flags an owner implies.  Each rule is one pass over the zone in chunks of _CHUNK frames
        (a block never crosses a chunk: both are aligned), so a 1 TiB machine needs no array
        of its size; the first frame that breaks a rule is the one named.  A chunk is read
        frame by frame (``_dense_*``) only when it has many nonzero entries or a cheaper test
        fails (see the comment above check()).  Returns how many frames of the zone are used
        (owner not "free")."""
        order = np.argsort(heads, kind="stable")
        hs, ss = heads[order], sizes[order]
        he = hs + ss
        owner = self.owner

        # Two blocks overlap where a head lies below the furthest end of the blocks before it.
        if len(hs) > 1:
            reach = np.maximum.accumulate(he)
            over = np.flatnonzero(hs[1:] < reach[:-1])
            if len(over):
                raise Inconsistency(f"{where}: pfn {int(hs[over[0] + 1]):#x} is in two free blocks")

        spans = [(c0, c1, int(lo), int(hi)) for c0, c1 in _chunks(z.start, z.end)
                 for lo, hi in [np.searchsorted(hs, [c0, c1])]]
        # Free frames are owned "free": as many frames of the chunk are used as lie outside its
        # blocks, and no used one lies inside a block.
        used_in: list[int] = []  # per chunk (owner code 0 is "free")
        for c0, c1, lo, hi in spans:
            own = owner[c0:c1]
            used = int(np.count_nonzero(own))
            used_in.append(used)
            if used + int(ss[lo:hi].sum()) == c1 - c0:
                if lo == hi or used == 0:
                    continue
                if _few_and_outside(own, used, c0, hs[lo:hi], he[lo:hi]):
                    continue
            self._dense_owner(where, c0, c1, hs[lo:hi], ss[lo:hi])
        # Free frames have no references: no frame with a page_count lies inside a block.
        for c0, c1, lo, hi in spans:
            rc = self.refcount[c0:c1]
            counted = int(np.count_nonzero(rc))
            if lo == hi or counted == 0:
                continue
            if _few_and_outside(rc, counted, c0, hs[lo:hi], he[lo:hi]):
                continue
            self._dense_refcount(where, c0, c1, hs[lo:hi], ss[lo:hi])
        buddy_marked = np.concatenate([self._buddy_marked(c0, c1) for c0, c1, _lo, _hi in spans])
        if len(buddy_marked) != len(heads) or not np.array_equal(buddy_marked, hs):
            extra = np.setdiff1d(buddy_marked, heads)
            pfn = int(extra[0]) if len(extra) else int(np.setdiff1d(heads, buddy_marked)[0])
            raise Inconsistency(f"{where}: pfn {pfn:#x} has PG_buddy but heads no free block")
        # The flags an owner implies: where owner and flags are both 0 the rule holds.
        for (c0, c1, _lo, _hi), n_own in zip(spans, used_in):
            own, fl = owner[c0:c1], self._flags[c0:c1]
            n_fl = int(np.count_nonzero(fl))
            if n_own == 0 and n_fl == 0:
                continue
            # A frame that breaks it has a nonzero owner or flags: look at those frames only.
            nz_own, nz_fl = _few_nonzero(own, n_own, c0), _few_nonzero(fl, n_fl, c0)
            if nz_own is not None and nz_fl is not None:
                at = np.concatenate([nz_own, nz_fl]) - c0
                if not ((fl[at] & _OWNER_MARKS) != _OWNER_FLAG[own[at]]).any():
                    continue
            self._dense_flags(where, c0, c1)
        return sum(used_in)

    @staticmethod
    def _in_block_map(c0: int, c1: int, starts: npt.NDArray[np.int64],
                      sizes: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        """Whether each frame of [c0, c1) lies in one of the disjoint sorted blocks
        ``starts``/``sizes`` (all inside it): alternating runs of gaps and blocks, one np.repeat."""
        edges = np.empty(2 * len(starts) + 2, dtype=np.int64)
        edges[0], edges[-1] = c0, c1
        edges[1:-1:2], edges[2:-1:2] = starts, starts + sizes
        values = np.zeros(len(edges) - 1, dtype=bool)
        values[1::2] = True
        free: npt.NDArray[np.bool_] = np.repeat(values, np.diff(edges))
        return free

    def _dense_owner(self, where: str, c0: int, c1: int, starts: npt.NDArray[np.int64],
                     sizes: npt.NDArray[np.int64]) -> None:
        """Frame by frame over [c0, c1): owned "free" exactly inside the blocks."""
        is_free = self._in_block_map(c0, c1, starts, sizes)
        own = self.owner[c0:c1]
        bad = is_free != (own == _FREE)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            state = "in a free block" if is_free[i] else "in no free block"
            raise Inconsistency(f"{where}: pfn {c0 + i:#x} is {state} but its owner is {OWNERS[int(own[i])]}")

    def _dense_refcount(self, where: str, c0: int, c1: int, starts: npt.NDArray[np.int64],
                        sizes: npt.NDArray[np.int64]) -> None:
        """Frame by frame over [c0, c1): no page_count inside the blocks."""
        rc = self.refcount[c0:c1]
        bad = self._in_block_map(c0, c1, starts, sizes) & (rc != 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise Inconsistency(f"{where}: free pfn {c0 + i:#x} has page_count {int(rc[i])}")

    def _dense_flags(self, where: str, c0: int, c1: int) -> None:
        """Frame by frame over [c0, c1): the flags each owner implies."""
        # PG_buddy plays no part here: the raw flags do (the message reads the frame's own).
        fl, own = self._flags[c0:c1], self.owner[c0:c1]
        bad = (fl & _OWNER_MARKS) != _OWNER_FLAG[own]
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            shown = int(self._flags_range(c0 + i, c0 + i + 1)[0])
            raise Inconsistency(f"{where}: pfn {c0 + i:#x} has flags {page_flag_names(shown) or '0'} but owner {OWNERS[int(own[i])]}")


def _list_pfns(d: dict[int, None]) -> npt.NDArray[np.int64]:
    """The pfns of free list ``d`` in its iteration order (a ``_FreeList``'s array part as an
    array: no Python int per MAX_ORDER block of a large machine)."""
    rest = np.fromiter(dict.__iter__(d), dtype=np.int64, count=dict.__len__(d))
    if isinstance(d, _FreeList) and d._n:
        return np.concatenate([d._boot[:d._n], rest])
    return rest


def _few_nonzero(a: npt.NDArray[Any], n: int, c0: int) -> npt.NDArray[np.int64] | None:
    """``c0 +`` the indices of the ``n`` nonzero entries of the chunk ``a``, ascending, when
    they are few (at most one in 16), else None: the frame-by-frame pass is then cheaper."""
    if n > len(a) >> 4:
        return None
    if n == 0:
        return np.zeros(0, np.int64)
    return _nonzero_pfns(a, c0)


def _few_and_outside(a: npt.NDArray[Any], n: int, c0: int, starts: npt.NDArray[np.int64],
                     ends: npt.NDArray[np.int64]) -> bool:
    """Whether the ``n`` nonzero entries of chunk ``a`` are few (:func:`_few_nonzero`) and lie
    outside every free block ``[starts, ends)``: the chunk then passes without the
    frame-by-frame pass, which alone names a broken frame."""
    nz = _few_nonzero(a, n, c0)
    return nz is not None and not _in_blocks(nz, starts, ends).any()


def _nonzero_pfns(a: npt.NDArray[Any], c0: int) -> npt.NDArray[np.int64]:
    """``c0 +`` the indices of the nonzero entries of the chunk ``a``, ascending: found among
    its 8-byte words first (np.flatnonzero walks a uint8 array byte by byte, 7 ms per chunk
    however few entries are set), then among the entries of those words."""
    per = 8 // a.itemsize
    if per <= 1 or len(a) % per or not a.flags.c_contiguous:
        return np.flatnonzero(a).astype(np.int64) + c0
    words = np.flatnonzero(a.view(np.uint64))
    idx: npt.NDArray[np.int64] = (words[:, None] * per + np.arange(per, dtype=np.int64)).reshape(-1)
    found: npt.NDArray[np.int64] = idx[a[idx] != 0] + c0
    return found


def _in_blocks(pfns: npt.NDArray[np.int64], starts: npt.NDArray[np.int64],
               ends: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Whether each of ``pfns`` lies in one of the disjoint sorted blocks ``[starts, ends)``."""
    if not len(starts):
        return np.zeros(len(pfns), dtype=bool)
    i = np.searchsorted(starts, pfns, side="right") - 1
    inside: npt.NDArray[np.bool_] = (i >= 0) & (pfns < ends[np.maximum(i, 0)])
    return inside


# The kernel's spelling, for code outside a class (inside one, Python mangles ``__`` names).
setattr(PhysMem, "__free_pages", PhysMem.free_pages)
setattr(PhysMem, "__free_page", PhysMem.free_page)
