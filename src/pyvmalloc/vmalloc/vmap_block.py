"""``vm_map_ram``/``vm_unmap_ram`` and the per-CPU vmap blocks behind them (mm/vmalloc.c, 2.6.28+).

Nick Piggin's "mm: rewrite vmap layer" (db64fe02258f, 2.6.28) added a front end for short-lived
small mappings: a request of at most ``VMAP_MAX_ALLOC`` (BITS_PER_LONG) pages is carved out of a
per-CPU ``struct vmap_block``, itself one vmap_area of ``VMAP_BLOCK_SIZE`` bytes aligned to
``VMAP_BLOCK_SIZE`` that ``alloc_vmap_area`` placed like any other area (no guard page).  Larger
requests take a vmap_area of their own (``count * PAGE_SIZE``, page aligned, no guard page, no
vm_struct).  Freeing a piece only unmaps it: its range turns *dirty* and stays unusable (and
possibly in some CPU's TLB) until the whole block is dirty -- then the block's area is freed
lazily like a vfree'd one -- or a purge frees fragmented blocks, or ``vm_unmap_aliases`` flushes
the dirty ranges.

What differs between versions (``versions.py``, block "vm_map_ram and vmap blocks"):

- before 4.0 (``vmap_block_bump_alloc``) a block hands out the first free region of
  ``1 << order`` pages *aligned to its size* (``bitmap_find_free_region`` on ``alloc_map``),
  a new block is put at the head of the CPU's list and the search starts again; from 4.0
  (Roman Pen) the block is a bump allocator: the piece is at ``VMAP_BBMAP_BITS - free``, the
  new block serves the request that made it and goes to the tail of the list;
- 2.6.33 (``vmap_purge_fragmented_blocks``) frees blocks that are all free or dirty but not
  all dirty (``free + dirty == VMAP_BBMAP_BITS && dirty != VMAP_BBMAP_BITS``): before 4.0 from
  vb_alloc when a block cannot serve a request, always from ``vm_unmap_aliases`` and from the
  purge that ``alloc_vmap_area`` runs when it finds no room;
- ≈6.5 (``vmap_purge_threshold``): ``vm_unmap_aliases`` frees such a block only when less than
  a quarter of it is free (``VMAP_PURGE_THRESHOLD``) and forgets the dirty range it flushed;
- 6.4 (``vmap_ram_flags``, ``vread_vm_map_ram``): the areas carry ``VMAP_RAM``/``VMAP_BLOCK``,
  blocks keep a ``used_map``, and vread reads the used pieces (earlier kernels skip every area
  without a vm_struct).  The model keeps the flags and the used map on every version (its own
  bookkeeping; the /proc line is the same "vm_map_ram").

``VMAP_BBMAP_BITS = min(1024, max(2 * VMAP_MAX_ALLOC, VMALLOC_PAGES / roundup_pow_of_two(NR_CPUS)
/ 16))`` with ``VMALLOC_SPACE`` guessed as 128 MiB on 32-bit and 128 GiB on 64-bit and
``NR_CPUS`` the *build-time* ``CONFIG_NR_CPUS`` (:data:`NR_CPUS`), not the machine's CPU count:
Debian's amd64 6.1 kernel (NR_CPUS 8192) has 256-page (1 MiB) blocks, as the ``kinds`` capture
shows (``0xffffc90000d00000-0xffffc90000e00000 1048576 vm_map_ram``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pyvmalloc.errors import Inconsistency
from pyvmalloc.phys.memory import NO_ZONE, OWNERS
from pyvmalloc.versions import has, vmap_failure_lines
from pyvmalloc.vmalloc import _args
from pyvmalloc.vmalloc.vm_struct import VM_MAP, VMAP_BLOCK, VMAP_RAM, vm_struct, vmap_area
from pyvmalloc.vmalloc.vmap_node import VN_ID_MASK

if TYPE_CHECKING:
    from pyvmalloc.vmalloc.api import Vmalloc

__all__ = [
    "NR_CPUS",
    "VmapBlocks",
    "blocks_of",
    "check_vm_map_ram",
    "flush_dirty_blocks",
    "purge_fragmented_blocks_allcpus",
    "vm_map_ram",
    "vm_map_ram_view",
    "vm_unmap_ram",
    "vmap_bbmap_bits",
]

# CONFIG_NR_CPUS of the distribution kernels each profile stands for (the model's guess where no
# capture says otherwise): Debian amd64 8192 (the 6.1 capture's 1 MiB blocks confirm it), Debian
# 686-pae 32, Debian armmp 8, Debian arm64 4096.  VMAP_BBMAP_BITS depends on it, not on the
# machine's CPU count.
NR_CPUS: dict[str, int] = {"x86_64": 8192, "x86_64-la57": 8192, "i386": 32, "i386-pae": 32,
                           "arm": 8, "arm64": 4096}

_KERN_WARNING = 4
_FREE = OWNERS.index("free")


def _roundup_pow_of_two(n: int) -> int:
    return 1 << (max(n, 1) - 1).bit_length()


def vmap_bbmap_bits(bits_per_long: int, page_shift: int, nr_cpus: int) -> int:
    """``VMAP_BBMAP_BITS``: pages per vmap block for a build of ``bits_per_long`` with
    ``CONFIG_NR_CPUS = nr_cpus``."""
    space = (128 << 20) if bits_per_long == 32 else (128 << 30)   # VMALLOC_SPACE, a guess
    pages = space >> page_shift                                    # VMALLOC_PAGES
    return min(1024, max(2 * bits_per_long, pages // _roundup_pow_of_two(nr_cpus) // 16))


def _get_order(count: int) -> int:
    """``get_order(count << PAGE_SHIFT)``: the order of the smallest power of two >= count pages."""
    return (count - 1).bit_length() if count > 1 else 0


@dataclass(eq=False)
class vmap_block:  # noqa: N801 - the kernel's name
    """``struct vmap_block``: ``free`` pages not yet handed out, ``dirty`` pages freed since,
    ``[dirty_min, dirty_max)`` the pages whose unmapping no TLB flush has covered yet.
    ``used`` is the 6.4 ``used_map`` (bit i: page i is mapped by a live vm_map_ram), ``alloc``
    the pre-4.0 ``alloc_map`` (bit i: handed out since the block was made).  ``pieces`` and
    ``handle`` are the model's own: the live pieces (page offset -> pfns) and the kmalloc object
    of the struct, for ``check()``."""

    va: vmap_area
    bits: int
    cpu: int
    handle: int
    free: int = 0
    dirty: int = 0
    dirty_min: int = 0
    dirty_max: int = 0
    used: int = 0
    alloc: int = 0
    pieces: dict[int, npt.NDArray[np.int64]] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"vmap_block({self.va.va_start:#x}, free={self.free}, dirty={self.dirty}, "
                f"dirty=[{self.dirty_min}, {self.dirty_max}), cpu={self.cpu})")


@dataclass
class VmapBlocks:
    """The vmap-block state of one machine: ``vmap_blocks`` (the xarray, by block index), the
    per-CPU ``vmap_block_queue`` free lists, and the large vm_map_ram areas (address -> pfns)."""

    bits: int
    block_size: int
    max_alloc: int
    by_index: dict[int, vmap_block] = field(default_factory=dict)
    queues: dict[int, list[vmap_block]] = field(default_factory=dict)
    large: dict[int, tuple[vmap_area, npt.NDArray[np.int64]]] = field(default_factory=dict)

    def index(self, vmalloc_start: int, addr: int) -> int:
        """``addr_to_vb_idx``."""
        return (addr - (vmalloc_start & ~(self.block_size - 1))) // self.block_size


def blocks_of(m: Vmalloc) -> VmapBlocks:
    """The machine's vmap-block state (made on first use)."""
    state = m.vmap_blocks
    if state is None:
        bits = vmap_bbmap_bits(m.profile.bits, m.PAGE_SHIFT, NR_CPUS.get(m.profile.name, 64))
        state = VmapBlocks(bits=bits, block_size=bits << m.PAGE_SHIFT, max_alloc=m.profile.bits)
        m.vmap_blocks = state
    return state


def _vb_struct_size(m: Vmalloc, st: VmapBlocks) -> int:
    """sizeof(struct vmap_block): lock, va, free, dirty, dirty_min/max, three list heads and an
    rcu_head (12 words), plus the bitmaps of the version (alloc_map and dirty_map before 4.0,
    used_map from 6.4)."""
    words = 12 * m.ptr_size
    bitmap = -(-st.bits // 8)
    if not has(m.kernel, "vmap_block_bump_alloc"):
        return words + 2 * bitmap
    return words + (bitmap if has(m.kernel, "vmap_ram_flags") else 0)


# ---- vm_map_ram ------------------------------------------------------------------------------
def vm_map_ram(m: Vmalloc, pages: object, count: object, node: object = -1) -> int | None:
    """``vm_map_ram(pages, count, node)``: map ``count`` pages (PAGE_KERNEL); the address or None."""
    fn = "vm_map_ram"
    count = _args.integer(fn, "count", count)
    node = _args.node(fn, node, m.nr_nodes())
    if not has(m.kernel, "vm_map_ram"):
        raise NotImplementedError(f"vm_map_ram() does not exist in Linux {m.kernel} (2.6.28+)")
    count &= 0xFFFFFFFF                                    # unsigned int count
    pfns = _args.pages(fn, pages, count if count <= m.num_physpages else 0)
    if count > m.num_physpages:
        return None                                        # no room anywhere for such a map
    m.check_pages(pfns, fn)
    m.run_workers()
    st = blocks_of(m)
    size = count << m.PAGE_SHIFT
    if count == 0:
        # vb_alloc: WARN_ON(size == 0) returns NULL, which is no ERR_PTR: vmap_pages_range(0, 0)
        # then hits BUG_ON(addr >= end) (6.1 vmap_small_pages_range_noflush).
        m.WARN_ON(True, "mm/vmalloc.c:vb_alloc() size == 0")
        m.bug_on(True, "vmap_pages_range: addr >= end")
    with m.vmlist_lock.write():
        if count <= st.max_alloc:
            addr = _vb_alloc(m, st, count)
        else:
            addr = _alloc_large(m, st, size, pfns)
    if addr is None:
        return None
    valid = pfns if not np.any(pfns < 0) else pfns[: int(np.flatnonzero(pfns < 0)[0])]
    err = 0
    if len(valid):
        with m.pgtable_lock:
            err = m.init_mm.map_range(addr, valid, m.pgprot("PAGE_KERNEL"))
    m.vm_stats["cache_flushes"] += 1                       # flush_cache_vmap()
    if err or len(valid) < count:
        # vmap_pages_pte_range: WARN_ON(!page) -> -ENOMEM; vm_map_ram undoes the map.
        m.WARN_ON(len(valid) < count, "mm/vmalloc.c:vmap_pages_pte_range() NULL page")
        vm_unmap_ram(m, addr, count)
        return None
    if count <= st.max_alloc:
        vb = st.by_index[st.index(m.VMALLOC_START, addr)]
        vb.pieces[(addr - vb.va.va_start) >> m.PAGE_SHIFT] = pfns.copy()
    m.vm_stats["vm_map_ram"] += 1
    return addr


def _alloc_large(m: Vmalloc, st: VmapBlocks, size: int, pfns: npt.NDArray[np.int64]) -> int | None:
    """``alloc_vmap_area(size, PAGE_SIZE, VMALLOC_START, VMALLOC_END, node, GFP_KERNEL)``: no
    guard page, no vm_struct (VMAP_RAM from 6.4).  vmlist_lock held."""
    va = vmap_area(0, 0, VMAP_RAM)
    addr = _alloc_area(m, va, size, m.PAGE_SIZE)
    if addr is not None:
        st.large[addr] = (va, pfns.copy())
    return addr


def _alloc_area(m: Vmalloc, va: vmap_area, size: int, align: int) -> int | None:
    addr = m.alloc_vmap_range(size, align, m.VMALLOC_START, m.VMALLOC_END, va)
    if addr is None:
        if m.printk_ratelimit():
            for line in vmap_failure_lines(m.kernel, size, m.VMALLOC_START, m.VMALLOC_END):
                m.printk(_KERN_WARNING, line)
        return None
    va.va_start, va.va_end = addr, addr + size
    m.vm_stats["areas_allocated"] += 1
    return addr


def _vb_alloc(m: Vmalloc, st: VmapBlocks, count: int) -> int | None:
    """``vb_alloc``: a piece of ``1 << get_order(count)`` pages from this CPU's blocks, or a
    new block.  vmlist_lock held."""
    order = _get_order(count)
    n = 1 << order
    cpu = int(m.mmu.current_cpu)
    queue = st.queues.setdefault(cpu, [])
    if has(m.kernel, "vmap_block_bump_alloc"):
        for vb in queue:
            if vb.free < n:
                continue
            off = st.bits - vb.free
            vb.free -= n
            vb.used |= ((1 << n) - 1) << off
            if vb.free == 0:
                queue.remove(vb)
            return vb.va.va_start + (off << m.PAGE_SHIFT)
        made = _new_vmap_block(m, st, cpu, n)
        if made is None:
            return None
        made.used = (1 << n) - 1
        return made.va.va_start
    # Before 4.0: the first free aligned region (bitmap_find_free_region), new blocks at the
    # head of the list, then the search again.
    for _attempt in range(2):
        purge = False
        for vb in list(queue):
            if vb.free < n:
                continue
            off = next((i for i in range(0, st.bits, n) if not (vb.alloc >> i) & ((1 << n) - 1)), -1)
            if off < 0:
                if vb.free + vb.dirty == st.bits:
                    purge = True    # fragmented and no outstanding allocations
                continue
            vb.alloc |= ((1 << n) - 1) << off
            vb.used |= ((1 << n) - 1) << off
            vb.free -= n
            if vb.free == 0:
                queue.remove(vb)
            if purge and has(m.kernel, "vmap_purge_fragmented_blocks"):
                _purge_fragmented_blocks(m, st, cpu, force=True)
            return vb.va.va_start + (off << m.PAGE_SHIFT)
        if purge and has(m.kernel, "vmap_purge_fragmented_blocks"):
            _purge_fragmented_blocks(m, st, cpu, force=True)
        if _new_vmap_block(m, st, cpu, 0) is None:
            return None
    return None  # pragma: no cover - a fresh block always serves a request of <= VMAP_MAX_ALLOC


def _new_vmap_block(m: Vmalloc, st: VmapBlocks, cpu: int, first: int) -> vmap_block | None:
    """``new_vmap_block``: kmalloc the struct, ``alloc_vmap_area(VMAP_BLOCK_SIZE,
    VMAP_BLOCK_SIZE, ...)``, register it; ``first`` pages are already handed out (4.0+)."""
    handle = m.kmalloc(_vb_struct_size(m, st), 0, -1)
    if not handle:
        return None
    va = vmap_area(0, 0, VMAP_RAM | VMAP_BLOCK)
    if _alloc_area(m, va, st.block_size, st.block_size) is None:
        m.kfree(handle)
        return None
    vb = vmap_block(va=va, bits=st.bits, cpu=cpu, handle=handle, free=st.bits - first,
                    dirty_min=st.bits, dirty_max=0)
    st.by_index[st.index(m.VMALLOC_START, va.va_start)] = vb
    queue = st.queues.setdefault(cpu, [])
    if has(m.kernel, "vmap_block_bump_alloc"):
        queue.append(vb)          # list_add_tail_rcu
    else:
        queue.insert(0, vb)       # list_add_rcu
    return vb


def _free_vmap_block(m: Vmalloc, st: VmapBlocks, vb: vmap_block) -> None:
    """``free_vmap_block``: unregister, free the area lazily, kfree the struct."""
    del st.by_index[st.index(m.VMALLOC_START, vb.va.va_start)]
    queue = st.queues.get(vb.cpu, [])
    if vb in queue:
        queue.remove(vb)
    m.free_vmap_area_noflush(vb.va)
    m.kfree(vb.handle)


def _purgeable(vb: vmap_block, force: bool) -> bool:
    if vb.free + vb.dirty != vb.bits or vb.dirty == vb.bits:
        return False
    return force or vb.free < vb.bits // 4      # VMAP_PURGE_THRESHOLD (≈6.5)


def _purge_fragmented_blocks(m: Vmalloc, st: VmapBlocks, cpu: int, force: bool) -> None:
    """``purge_fragmented_blocks(cpu)``: free this CPU's blocks that hold no live piece."""
    for vb in [vb for vb in st.queues.get(cpu, []) if _purgeable(vb, force)]:
        vb.free, vb.dirty, vb.dirty_min, vb.dirty_max = 0, vb.bits, 0, vb.bits
        _free_vmap_block(m, st, vb)


def purge_fragmented_blocks_allcpus(m: Vmalloc) -> None:
    """``purge_fragmented_blocks_allcpus`` (2.6.33+; a no-op before and with no block made):
    the purge ``alloc_vmap_area`` runs when it finds no room starts with it.  vmlist_lock held."""
    st = m.vmap_blocks
    if st is None or not has(m.kernel, "vmap_purge_fragmented_blocks"):
        return
    for cpu in sorted(st.queues):
        _purge_fragmented_blocks(m, st, cpu, force=True)


def flush_dirty_blocks(m: Vmalloc) -> None:
    """The vmap-block half of ``_vm_unmap_aliases``: free the fragmented blocks and flush the
    TLB over every block's dirty range.  vmlist_lock held."""
    st = m.vmap_blocks
    if st is None:
        return
    threshold = has(m.kernel, "vmap_purge_threshold")
    start, end = 1 << m.profile.bits, 0
    for cpu in sorted(st.queues):
        for vb in list(st.queues[cpu]):
            if threshold and _purgeable(vb, force=False):
                vb.free, vb.dirty, vb.dirty_min, vb.dirty_max = 0, vb.bits, 0, vb.bits
                _free_vmap_block(m, st, vb)
                continue
            if vb.dirty and vb.dirty != vb.bits and vb.dirty_max:
                start = min(start, vb.va.va_start + (vb.dirty_min << m.PAGE_SHIFT))
                end = max(end, vb.va.va_start + (vb.dirty_max << m.PAGE_SHIFT))
                if threshold:       # "Prevent that this is flushed again"
                    vb.dirty_min, vb.dirty_max = vb.bits, 0
    if not threshold:
        purge_fragmented_blocks_allcpus(m)
    if end > start:
        # __purge_vmap_area_lazy flushes [start, end) with the lazy areas; one flush here.
        m.flush_tlb_kernel_range(start, end)


# ---- vm_unmap_ram ----------------------------------------------------------------------------
def vm_unmap_ram(m: Vmalloc, addr: object, count: object) -> None:
    """``vm_unmap_ram(mem, count)``: ``count`` must be what was mapped (a partial unmap is not
    possible); BUG on NULL, an address outside the vmalloc range or not page aligned."""
    fn = "vm_unmap_ram"
    a = _args.address(fn, "addr", addr)
    count = _args.integer(fn, "count", count) & 0xFFFFFFFF
    m.bug_on(not a, "vm_unmap_ram: !addr")
    assert a is not None
    m.bug_on(a < m.VMALLOC_START or a > m.VMALLOC_END, "vm_unmap_ram: addr outside VMALLOC_START..END")
    m.bug_on(bool(a & (m.PAGE_SIZE - 1)), "vm_unmap_ram: addr not page aligned")
    m.run_workers()
    st = blocks_of(m)
    size = count << m.PAGE_SHIFT
    with m.vmlist_lock.write():
        if count <= st.max_alloc:
            _vb_free(m, st, a, size)
        else:
            va = m.find_vmap_area(a)
            m.bug_on(va is None or not va.flags & VMAP_RAM or bool(va.flags & VMAP_BLOCK),
                      "vm_unmap_ram: no vm_map_ram area at addr")
            assert va is not None
            st.large.pop(a, None)
            m.unmap_range(va.va_start, va.size)     # free_unmap_vmap_area: unmap, then lazily free
            m.free_vmap_area_noflush(va)
    m.vm_stats["vm_unmap_ram"] += 1


def _vb_free(m: Vmalloc, st: VmapBlocks, addr: int, size: int) -> None:
    order = _get_order(size >> m.PAGE_SHIFT)
    n = 1 << order
    vb = st.by_index.get(st.index(m.VMALLOC_START, addr))
    m.bug_on(vb is None, f"vb_free: no vmap block holds {addr:#x} (NULL vmap_block)")
    assert vb is not None
    off = (addr & (st.block_size - 1)) >> m.PAGE_SHIFT
    vb.used &= ~(((1 << n) - 1) << off)
    vb.pieces.pop(off, None)
    m.unmap_range(addr, size)                        # vunmap_range_noflush: no TLB flush
    vb.dirty_min = min(vb.dirty_min, off)
    vb.dirty_max = max(vb.dirty_max, off + n)
    vb.dirty += n
    if vb.dirty == vb.bits:
        m.bug_on(vb.free != 0, "vb_free: a fully dirty block has free pages")
        _free_vmap_block(m, st, vb)


# ---- vread (6.4+) ----------------------------------------------------------------------------
def vm_map_ram_view(m: Vmalloc, va: vmap_area) -> vm_struct | None:
    """What vread/vwrite walk for a vm_map_ram area: from 6.4 (``vread_vm_map_ram``) the whole
    range, which reads as the pages of the live pieces and zeros elsewhere (freed and never
    used pages are unmapped), as ``vmap_ram_vread_iter`` returns it; earlier kernels skip it."""
    if not va.flags & VMAP_RAM or va.vm is not None or not has(m.kernel, "vread_vm_map_ram"):
        return None
    return vm_struct(addr=va.va_start, size=va.size, flags=VM_MAP, caller="vm_map_ram")


# ---- check() ---------------------------------------------------------------------------------
def check_vm_map_ram(m: Vmalloc, map_ram: list[vmap_area]) -> tuple[list[int], list[tuple[int, int]]]:
    """Raise ``Inconsistency`` unless every vm_map_ram area the model made is accounted for:
    each block registered at its index, ``free``/``dirty``/``used`` and its pieces agree, no
    block with no free page is on a free list, and the page tables map exactly the live
    pieces' pages (nothing in free or dirty pages), none of them a free frame.  Returns the
    kmalloc objects of the blocks and the ranges whose stale TLB entries are allowed (the
    blocks' dirty ranges).  vm_map_ram areas a snapshot reserved are not the model's: not
    checked.  vmlist_lock held."""
    st = m.vmap_blocks
    if st is None:
        return [], []
    ps, shift = m.PAGE_SIZE, m.PAGE_SHIFT
    reserved = {id(va) for va in map_ram}
    handles, stale = [], []
    listed = {id(vb): cpu for cpu, q in st.queues.items() for vb in q}
    for idx, vb in st.by_index.items():
        va = vb.va
        where = f"vmap block {va.va_start:#x}"
        # 6.9+: alloc_vmap_area sets ``va->flags = va_flags | vn_id`` (node_alloc's node bits).
        if id(va) not in reserved or va.flags & ~VN_ID_MASK != VMAP_RAM | VMAP_BLOCK:
            raise Inconsistency(f"{where} is not a VMAP_RAM|VMAP_BLOCK area of the allocator ({va!r})")
        if st.index(m.VMALLOC_START, va.va_start) != idx or va.size != st.block_size \
                or va.va_start % st.block_size:
            raise Inconsistency(f"{where}: not a {st.block_size:#x}-aligned block at index {idx}")
        want = np.full(vb.bits, -1, dtype=np.int64)
        live = 0
        for off, pfns in vb.pieces.items():
            n = 1 << _get_order(len(pfns))
            mask = ((1 << n) - 1) << off
            if vb.used & mask != mask:
                raise Inconsistency(f"{where}: live piece at page {off} is not in its used map")
            want[off: off + len(pfns)] = pfns
            live += n
        if bin(vb.used).count("1") != live or vb.free + vb.dirty + live != vb.bits:
            raise Inconsistency(f"{where}: free {vb.free} + dirty {vb.dirty} + used {live} pages "
                                f"(used map {bin(vb.used).count('1')}) != {vb.bits}")
        if (id(vb) in listed) != (vb.free > 0):
            raise Inconsistency(f"{where}: free {vb.free} but {'on' if id(vb) in listed else 'off'} "
                                "its CPU's free list")
        _check_mapped(m, va.va_start, want, where)
        handles.append(vb.handle)
        if vb.dirty_max > vb.dirty_min:
            stale.append((va.va_start + (vb.dirty_min << shift), va.va_start + (vb.dirty_max << shift)))
    for addr, (va, pfns) in st.large.items():
        if id(va) not in reserved or va.flags & ~VN_ID_MASK != VMAP_RAM or va.va_start != addr \
                or va.size != len(pfns) * ps:
            raise Inconsistency(f"vm_map_ram area {addr:#x} is not a VMAP_RAM area of "
                                f"{len(pfns)} pages in the allocator ({va!r})")
        _check_mapped(m, addr, pfns, f"vm_map_ram area {addr:#x}")
    return handles, stale


def _check_mapped(m: Vmalloc, start: int, want: npt.NDArray[np.int64], where: str) -> None:
    got = m.init_mm.lookup(start, len(want))
    bad = np.flatnonzero(got != want)
    if len(bad):
        i = int(bad[0])
        exp = "nothing (a free or dirty page)" if want[i] < 0 else f"pfn {int(want[i]):#x}"
        now = "nothing" if got[i] < 0 else f"pfn {int(got[i]):#x}"
        raise Inconsistency(f"{where}: page {i} ({start + (i << m.PAGE_SHIFT):#x}) maps {now}, "
                            f"not {exp}")
    mapped = want[want >= 0]
    phys = m.phys
    if len(mapped) and np.any((phys.owner[mapped] == _FREE) & (phys.zone_ids(mapped) != NO_ZONE)):
        raise Inconsistency(f"{where} maps a free frame (freed while mapped)")

