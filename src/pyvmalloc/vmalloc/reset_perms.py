"""``VM_FLUSH_RESET_PERMS`` (5.2+) and the permission changes it undoes: ``set_memory_ro/rw/x/nx``
on vmalloc'ed memory and the direct-map aliases they reach.

Module text is vmalloc'ed (``module_alloc``, 6.10+ ``execmem_alloc``), then made read-only and
executable with ``set_memory_ro``/``set_memory_x``.  On x86 ``change_page_attr`` also changes the
page's alias in the direct map (``cpa_process_alias``; not for an NX-only change), and arm64 does
the same for read-only changes with ``rodata=full`` (``change_memory_common``, applied to every
page of the area).  Before 5.2 the module loader made everything writable again before freeing;
a page given back to the page allocator with a read-only direct-map alias faults its next owner.

Linux 5.2 (868b104d7379, Rick Edgecombe, "mm/vmalloc: Add flag for freeing of special
permsissions") let the area carry ``VM_FLUSH_RESET_PERMS`` instead.  mm/vmalloc.c (5.2..6.2
``vm_remove_mappings``, 6.3+ ``vm_reset_perms``) on ``vfree``, after ``remove_vm_area`` queued
the range lazily:

1. the direct-map range of the area's pages that have one (``page_address``: lowmem; one entry
   per ``1 << page_order`` pages of a huge area) is found;
2. their aliases are set invalid (``set_area_direct_map(area, set_direct_map_invalid_noflush)``),
   so no access between the flush and the reset can cache them;
3. ``_vm_unmap_aliases(start, end, flush_dmap)``: the vmap blocks' dirty ranges and every lazily
   freed range (this area's included) are flushed with the direct-map range in **one**
   ``flush_tlb_kernel_range`` over the span of them all, and the lazy ranges go back to the free
   tree at once (the area does not wait for the lazy purge);
4. the aliases are reset to the default, valid and writable
   (``set_direct_map_default_noflush``).

``vunmap`` of such an area (5.2..6.2) only runs ``vm_unmap_aliases()``; from 6.3 (the series
that made ``vmap`` refuse the flag) only ``vfree`` resets.  ARM has no ``set_direct_map_*``
(no ARCH_HAS_SET_DIRECT_MAP): the flush happens, the direct map is not touched.

5.2's version also made the vmalloc alias NX and writable (``set_memory_nx``/``set_memory_rw``)
before unmapping it on arches without ``set_direct_map_*`` (ARM, arm64 until it had them), a block
later removed; nothing of it outlives the unmap (on arm64 with ``rodata=full`` it reset the linear
aliases, as the model's reset does), so the model does not repeat it.  5.2 passed ``flush = 1``
where 6.1 passes ``flush_dmap`` (whether any page had a direct-map address); the area being
freed is always lazy at that point, so the flush is the same.

Simplifications, said here: ``set_memory_*`` work on every kernel the model runs (x86's
``set_memory_*`` API dates from 2.6.25), arm64's read-only rule for the linear aliases is the
``rodata=full`` one (5.0, c55191e96caa ≈) on every version, and a range mapped with huge leaves
is refused rather than split.

What the model keeps (:class:`DirectMap`): the model has no direct-map page tables (nothing is
mapped at PAGE_OFFSET; kmalloc objects are addresses computed from their frames), so the direct
map's state is the set of frames whose alias is not the default: read-only, or invalid during a
reset.  ``check()`` reports a frame with a read-only alias that no live area owns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pyvmalloc.errno import EINVAL
from pyvmalloc.versions import has
from pyvmalloc.vmalloc import _args, vmap_block
from pyvmalloc.vmalloc.vm_struct import VM_ALLOC, VM_VM_AREA, vm_struct

if TYPE_CHECKING:
    from pyvmalloc.vmalloc.api import Vmalloc

__all__ = ["DirectMap", "SET_MEMORY", "direct_map_of", "has_set_direct_map", "page_addresses", "set_memory",
           "vm_remove_mappings"]

# The four calls and what each does to a kernel PTE: (pgprot whose bits are set, the pgprot
# compared with PAGE_KERNEL to find the bits that change).
SET_MEMORY = {
    "set_memory_ro": ("PAGE_KERNEL_RO", "PAGE_KERNEL_RO"),
    "set_memory_rw": ("PAGE_KERNEL", "PAGE_KERNEL_RO"),
    "set_memory_x": ("PAGE_KERNEL_EXEC", "PAGE_KERNEL_EXEC"),
    "set_memory_nx": ("PAGE_KERNEL", "PAGE_KERNEL_EXEC"),
}


@dataclass
class DirectMap:
    """The direct-map aliases whose permissions differ from the default (present, writable,
    not executable), by pfn, and what vm_reset_perms did to them."""

    readonly: set[int] = field(default_factory=set)
    invalid: set[int] = field(default_factory=set)
    # vm_remove_mappings/vm_reset_perms runs that reset aliases, pages set invalid then default.
    resets: int = 0
    pages_reset: int = 0


def direct_map_of(m: Vmalloc) -> DirectMap:
    """The machine's direct-map state, made at first use."""
    dm = m.direct_map
    if dm is None:
        dm = m.direct_map = DirectMap()
    return dm


def _family(m: Vmalloc) -> str:
    name = m.profile.name
    if name.startswith("x86") or name.startswith("i386"):
        return "x86"
    return "arm64" if name.startswith("arm64") else "arm"


def has_set_direct_map(m: Vmalloc) -> bool:
    """ARCH_HAS_SET_DIRECT_MAP: x86 and arm64 (with rodata=full, the distributions' default,
    ``can_set_direct_map``); 32-bit ARM's set_direct_map_* do nothing."""
    return _family(m) != "arm"


def page_addresses(m: Vmalloc, pfns: npt.NDArray[np.int64]) -> list[int]:
    """``page_address()`` of each lowmem pfn, its direct-map address ``PAGE_OFFSET + phys``
    (PHYS_OFFSET is 0 in the model); highmem pages have none (the model kmaps nothing) and are
    left out."""
    return [m.layout.page_offset + (p << m.PAGE_SHIFT) for p in _lowmem(m, pfns)]


def _lowmem(m: Vmalloc, pfns: npt.NDArray[np.int64]) -> list[int]:
    low = m.layout.lowmem_bytes >> m.PAGE_SHIFT
    return [int(p) for p in pfns[(pfns >= 0) & (pfns < low)].tolist()]


# ---- vfree/vunmap of a VM_FLUSH_RESET_PERMS area ------------------------------------------------
def vm_remove_mappings(m: Vmalloc, area: vm_struct, deallocate_pages: bool) -> None:
    """What ``__vunmap`` (5.2..6.2, ``vm_remove_mappings``) and ``vfree`` (6.3+,
    ``vm_reset_perms``) do for a VM_FLUSH_RESET_PERMS ``area`` after ``remove_vm_area``; the
    caller tested the flag.  Nothing on a kernel before 5.2 (the bit meant nothing there)."""
    if not has(m.kernel, "vm_flush_reset_perms"):
        return
    if not deallocate_pages:
        # 5.2..6.2: "If not deallocating pages, just do the flush of the VM area and return."
        if not has(m.kernel, "vfree_reset_perms_only"):
            m.vm_unmap_aliases()
        return
    pfns = area.pages[: area.nr_pages]
    order = area.page_order   # vm_area_page_order(): 9 for a PMD-mapped huge area
    addrs = page_addresses(m, pfns[:: 1 << order])
    flush_dmap = bool(addrs)
    start = min(addrs) if flush_dmap else (1 << m.profile.bits) - 1   # ULONG_MAX
    end = max(addrs) + (m.PAGE_SIZE << order) if flush_dmap else 0
    dm = direct_map_of(m)
    touched = _lowmem(m, pfns) if has_set_direct_map(m) else []
    # set_area_direct_map(area, set_direct_map_invalid_noflush): every small page.
    dm.invalid.update(touched)
    _vm_unmap_aliases(m, start, end, flush_dmap)
    # set_area_direct_map(area, set_direct_map_default_noflush): valid and writable again.
    dm.invalid.difference_update(touched)
    dm.readonly.difference_update(touched)
    dm.resets += 1
    dm.pages_reset += len(touched)
    m.vm_stats["reset_perms"] += 1


def _vm_unmap_aliases(m: Vmalloc, start: int, end: int, flush: bool) -> None:
    """``_vm_unmap_aliases(start, end, flush)``: the vmap blocks' dirty ranges, then one purge of
    every lazily freed range whose flush covers ``[start, end)`` too (when ``flush``); with no
    lazy range the flush of ``[start, end)`` alone."""
    m.drain_pending = False
    with m.vmlist_lock.write():
        vmap_block.flush_dirty_blocks(m)
        m.purge_vmap_area_lazy_range((start, end) if flush else None)


# ---- set_memory_ro/rw/x/nx ---------------------------------------------------------------------
def set_memory(m: Vmalloc, fn: str, addr: object, numpages: object) -> int:
    """``set_memory_ro/rw/x/nx(addr, numpages)`` on vmalloc'ed memory: 0, or ``-EINVAL`` when
    ``[addr, addr + numpages pages)`` is not inside one live VM_ALLOC area (arm64's own rule,
    taken for every arch: the model has no other kernel mapping to change), not all mapped, or
    mapped with huge leaves (the kernel would split them; the model does not).

    The area's PTEs get the bits of the call (the pgprot bits by which PAGE_KERNEL and
    PAGE_KERNEL_RO, or PAGE_KERNEL_EXEC, differ) and the range is flushed.  A read-only change
    reaches the direct-map aliases of the lowmem pages (x86: those of the range; arm64: those
    of the whole area); an executable change does not (x86 checks no alias for _PAGE_NX)."""
    a = _args.integer(fn, "addr", addr)
    n = _args.integer(fn, "numpages", numpages)
    to_name, diff_name = SET_MEMORY[fn]
    if n < 0 or a & (m.PAGE_SIZE - 1):
        return -EINVAL
    if n == 0:
        return 0
    size = n << m.PAGE_SHIFT
    with m.vmlist_lock.read():
        va = next(m.for_each_vmap_area(a), None)
        area = va.vm if va is not None and va.flags & VM_VM_AREA else None
        if (area is None or not area.flags & VM_ALLOC or a < area.addr
                or a + size > area.addr + m.get_vm_area_size(area) or area.page_order):
            return -EINVAL
    base = m.pgprot("PAGE_KERNEL")
    bits = base ^ m.pgprot(diff_name)
    want = m.pgprot(to_name) & bits
    fmt = m.profile.pte
    with m.pgtable_lock:
        entries = m.init_mm.lookup_entries(a, n)
        pfns = m.init_mm.lookup(a, n)
        if bool(np.any(pfns < 0)):
            return -EINVAL
        prots = [(int(e) & ~fmt.addr_mask & ~bits) | want for e in entries.tolist()]
        if any(p != (int(e) & ~fmt.addr_mask) for p, e in zip(prots, entries.tolist())):
            m.init_mm.unmap_range(a, size)
            i = 0
            while i < n:
                j = i
                while j + 1 < n and prots[j + 1] == prots[i]:
                    j += 1
                m.init_mm.map_range(a + (i << m.PAGE_SHIFT), pfns[i:j + 1], prots[i])
                i = j + 1
    m.flush_tlb_kernel_range(a, a + size)
    if diff_name == "PAGE_KERNEL_RO" and has_set_direct_map(m):
        dm = direct_map_of(m)
        alias = area.pages[: area.nr_pages] if _family(m) == "arm64" else pfns
        low = _lowmem(m, alias)
        if fn == "set_memory_ro":
            dm.readonly.update(low)
        else:
            dm.readonly.difference_update(low)
    return 0
