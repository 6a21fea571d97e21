"""Today's allocation API over the 2.6.22 core: vzalloc, vmalloc_array/vcalloc, huge vmalloc,
vmap_pfn, vrealloc and kvmalloc/kvfree/kvrealloc (2.6.37 ... 6.15).

The functions here take the machine (``Vmalloc``) first; the public methods at the end of
``vmalloc.api.Vmalloc`` (section "today's API") check their arguments and call them.  Each
feature exists from the release that brought it (``versions.py``, block "today's API"); on an
older kernel the method raises ``ConfigError`` naming the release and the commit
(:func:`require`), the way a module built for a newer kernel fails to load on an older one.

What the model does not have, said once here:

- ``VM_NO_GUARD`` (4.0+) is modelled (``Vmalloc.guard_size``): such an area has no guard page.
- ``VM_FLUSH_RESET_PERMS`` (5.2+): ``vfree`` resets the direct-map aliases of the area's pages
  and flushes them with every lazily freed range in one flush, the area purged at once
  (``vmalloc/reset_perms.py``, with ``set_memory_ro/rw/x/nx`` and the direct map's state).
- ``VM_DEFER_KMEMLEAK`` (5.16+): the area gets no kmemleak object until its caller registers
  it (``Machine.kmemleak_vmalloc``); kmemleak exists when the machine boots with
  ``kmemleak=on`` (``kernel/kmemleak.py``), and has no scan (the model has no roots).
- ``init_on_alloc``/``init_on_free`` are off (the upstream default): ``want_init_on_alloc``
  is ``__GFP_ZERO``, ``want_init_on_free`` false.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pyvmalloc.errors import ConfigError
from pyvmalloc.phys import gfp as G
from pyvmalloc.versions import CHANGES, has
from pyvmalloc.vmalloc.vm_struct import (
    VM_ALLOC,
    VM_ALLOW_HUGE_VMAP,
    VM_DEFER_KMEMLEAK,
    VM_FLUSH_RESET_PERMS,
    VM_IOREMAP,
    VM_NO_GUARD,
    VM_USERMAP,
    VM_VPAGES,
    vm_struct,
)

if TYPE_CHECKING:
    from pyvmalloc.vmalloc.api import Vmalloc

_GFP_ZERO = getattr(G, "__GFP_ZERO")
_GFP_HIGHMEM = getattr(G, "__GFP_HIGHMEM")
_GFP_NOWARN = getattr(G, "__GFP_NOWARN")
_GFP_NORETRY = getattr(G, "__GFP_NORETRY")
_GFP_NOFAIL = getattr(G, "__GFP_NOFAIL")
# The model's gfp has no __GFP_RETRY_MAYFAIL: __GFP_REPEAT is what 4.13 renamed to it.
_GFP_RETRY_MAYFAIL = getattr(G, "__GFP_REPEAT")
_GFP_WAIT = getattr(G, "__GFP_WAIT")

# include/linux/slab.h: kmalloc(0) returns ZERO_SIZE_PTR, ((void *)16); kfree/kvfree ignore it.
ZERO_SIZE_PTR = 16
INT_MAX = (1 << 31) - 1

# The vm_flags __vmalloc_node_range takes from its callers in the model.
VMALLOC_VM_FLAGS = VM_USERMAP | VM_NO_GUARD | VM_FLUSH_RESET_PERMS | VM_ALLOW_HUGE_VMAP | VM_DEFER_KMEMLEAK

# Arch families whose kernels select HAVE_ARCH_HUGE_VMALLOC (arch/x86/Kconfig: "if X86_64",
# 5.18): the PMD level's name in their profile.  i386 (PAE or not), ARM and arm64 are left out:
# arm64 selects it only in later releases than the model's, 32-bit x86 never did.
HUGE_VMALLOC_ARCHES = {"x86_64": "pmd", "x86_64-la57": "pmd"}


def require(m: Vmalloc, change: str, fn: str) -> None:
    """ConfigError unless the machine's kernel has ``change`` (``fn`` came with it)."""
    if not has(m.kernel, change):
        c = CHANGES[change]
        name = fn if fn.endswith(")") else f"{fn}()"
        raise ConfigError(f"{name} is not in Linux {m.kernel}: it came with Linux {c.since} ({c.commit})")


def size_t(m: Vmalloc, value: int) -> int:
    """``value`` as the kernel's ``size_t`` (a negative count is huge, as in C)."""
    return value & ((1 << m.profile.bits) - 1)


def array_bytes(m: Vmalloc, n: int, size: int) -> int | None:
    """``check_mul_overflow(n, size, &bytes)``: the product, or None when it overflows size_t."""
    n, size = size_t(m, n), size_t(m, size)
    total = n * size
    return None if total >> m.profile.bits else total


# ---- __vmalloc_node_range with vm_flags (4.0+), huge mappings (5.18+) ------------------------
def huge_shift(m: Vmalloc, size: int, vm_flags: int, node: int) -> int:
    """The mapping shift ``__vmalloc_node_range`` picks (6.1): PMD_SHIFT when the area may be
    huge (VM_ALLOW_HUGE_VMAP, an arch with HAVE_ARCH_HUGE_VMALLOC) and the size per node
    (``size / num_online_nodes()`` for NUMA_NO_NODE) is at least PMD_SIZE; else PAGE_SHIFT.
    ``arch_vmap_pte_supported_shift`` is PAGE_SHIFT on x86 (no contiguous-PTE sizes)."""
    level = HUGE_VMALLOC_ARCHES.get(m.profile.name)
    if not vm_flags & VM_ALLOW_HUGE_VMAP or level is None or not has(m.kernel, "vmalloc_huge"):
        return m.PAGE_SHIFT
    per_node = size if node != -1 else size // len(m.phys.nodes)
    pmd_shift = m.profile.level(level).shift
    return pmd_shift if per_node >= 1 << pmd_shift else m.PAGE_SHIFT


def vmalloc_node_range_flags(m: Vmalloc, size: int, align: int, start: int, end: int, gfp: int,
                             prot: int, vm_flags: int, node: int, caller: str) -> int | None:
    """``__vmalloc_node_range(size, align, start, end, gfp, prot, vm_flags, node, caller)``
    (arguments already checked).  Huge areas as 6.1: ``align = max(align, PMD_SIZE)`` and the
    size rounded up to PMD_SIZE; a failure (no area, no order-9 block) logs what the kernel
    logs and retries with small pages, the caller's alignment and size."""
    m.vm_stats["vmalloc"] += 1
    real_size = size
    real_align = align
    size = m.PAGE_ALIGN(max(size, 0))
    if not size or (size >> m.PAGE_SHIFT) > m.num_physpages:
        return None
    shift = huge_shift(m, size, vm_flags, node)
    while True:
        if shift > m.PAGE_SHIFT:
            align = max(real_align, 1 << shift)
            size = -(-real_size // (1 << shift)) << shift
        area = m.get_vm_area_node_range(size, VM_ALLOC | vm_flags, start, end, node, gfp,
                                        caller, align=align)
        if area is None:
            m.vmalloc_failure(real_size, gfp)
        else:
            area.requested_size = real_size
            if shift == m.PAGE_SHIFT:
                return m.vmalloc_area_node(area, gfp, prot, node)
            addr = vmalloc_area_huge(m, area, gfp, prot, node, shift)
            if addr is not None:
                return addr
        if shift == m.PAGE_SHIFT:
            return None
        shift, align, size = m.PAGE_SHIFT, real_align, m.PAGE_ALIGN(real_size)


def vmalloc_area_huge(m: Vmalloc, area: vm_struct, gfp: int, prot: int, node: int, shift: int) -> int | None:
    """``__vmalloc_area_node`` with ``page_shift = shift``: the page array (kmalloc'ed up to a
    page, vmalloc'ed above, as the core does), then ``vm_area_alloc_pages`` of order
    ``shift - PAGE_SHIFT`` blocks, each ``split_page``d into small pages, then the mapping.

    The gfp of the blocks is the caller's with __GFP_NOWARN (and without __GFP_NOFAIL), as
    6.1; a short allocation gives everything back (``vfree``) and returns None, the caller
    retrying with small pages.  Each block is mapped with one PMD leaf, except where an
    earlier small mapping left a PTE table in that PMD slot: the kernel frees it
    (``pmd_free_pte_page``) and maps the leaf, the model keeps the table and maps that block
    with PTEs (same pages, same addresses; only the page-table shape differs).
    """
    order = shift - m.PAGE_SHIFT
    nr_pages = m.get_vm_area_size(area) >> m.PAGE_SHIFT
    area.page_order = order
    if not m.alloc_page_array(area, nr_pages, gfp, node):
        return None
    block_gfp = (gfp & ~_GFP_NOFAIL) | _GFP_NOWARN
    heads: list[int] = []
    with m.page_lock:
        for _ in range(nr_pages >> order):
            pfn = m.phys.alloc_pages_node(node, block_gfp, order, owner="vmalloc")
            if pfn is None:
                break
            m.phys.refcount[pfn:pfn + (1 << order)] = 1  # split_page(): every page its own
            heads.append(pfn)
    pfns = (np.repeat(np.array(heads, dtype=np.int64), 1 << order)
            + np.tile(np.arange(1 << order, dtype=np.int64), len(heads)))
    area.pages = pfns
    if len(pfns) < nr_pages:
        area.nr_pages = len(pfns)
        m.vfree(area.addr)
        return None
    if area.flags & VM_VPAGES:
        m.store_page_array(area)
    if map_huge_area(m, area, prot, heads, shift):
        m.vfree(area.addr)
        return None
    if m.kmemleak is not None:   # kmemleak_vmalloc(area, size, gfp) unless VM_DEFER_KMEMLEAK
        m.kmemleak.vmalloc(area, m.get_vm_area_size(area))
    return area.addr


def map_huge_area(m: Vmalloc, area: vm_struct, prot: int, heads: list[int], shift: int) -> int:
    """``vmap_pages_range_noflush`` with ``page_shift = shift``: one leaf per block; 0 or an errno."""
    level = HUGE_VMALLOC_ARCHES[m.profile.name]
    step = 1 << shift
    bits = m.pgprot(prot)
    npb = step >> m.PAGE_SHIFT
    with m.pgtable_lock:
        for i, head in enumerate(heads):
            addr = area.addr + i * step
            slot = [s for s in m.init_mm.walk(addr) if s.level == level]
            if slot and slot[0].entry:
                err = m.init_mm.map_range(addr, np.arange(head, head + npb, dtype=np.int64), bits)
            else:
                err = m.init_mm.map_huge(addr, head, level, bits)
            if err:
                return err
    m.vm_stats["cache_flushes"] += 1  # flush_cache_vmap()
    return 0


# ---- vmap_pfn (5.10+) ---------------------------------------------------------------------------
def vmap_pfn(m: Vmalloc, pfns: npt.NDArray[np.int64], count: int, prot: int, caller: str) -> int | None:
    """``vmap_pfn(pfns, count, prot)`` (6.1): an area from ``get_vm_area_caller(count *
    PAGE_SIZE, VM_IOREMAP)`` (so the ioremap alignment applies, /proc shows "ioremap"), the
    pfns mapped with ``pgprot_nx(prot)``.  A pfn that is RAM (``pfn_valid``) WARNs and fails
    (``vmap_pfn_apply``): the area is freed, None."""
    area = m.get_vm_area_node_range(count * m.PAGE_SIZE, VM_IOREMAP, m.VMALLOC_START, m.VMALLOC_END,
                                    -1, G.GFP_KERNEL, caller)
    if area is None:
        return None
    ram = [int(p) for p in pfns[:count] if m.phys.pfn_valid(int(p))]
    if ram:
        m.WARN_ON(True, f"mm/vmalloc.c:vmap_pfn_apply() (pfn {ram[0]:#x} is RAM)")
        m.free_vm_area(area)
        return None
    with m.pgtable_lock:
        err = m.init_mm.map_range(area.addr, pfns[:count], prot) if count else 0
    if err:
        m.free_vm_area(area)
        return None
    m.vm_stats["cache_flushes"] += 1  # flush_cache_vmap()
    return area.addr


# ---- vrealloc (6.12+, 6.15 requested_size) -------------------------------------------------------
def vrealloc(m: Vmalloc, p: int | None, size: int, gfp: int, caller: str) -> int | None:
    """``vrealloc(p, size, flags)`` of the machine's kernel (6.12 or 6.15, see versions.py).

    6.12 (3ddc2fefe6f3): ``old_size = get_vm_area_size(vm)``; ``size <= old_size`` keeps ``p``
    (zeroing ``[size, old_size)`` when ``want_init_on_alloc(flags)``); otherwise
    ``__vmalloc(size, flags)``, ``memcpy(n, p, old_size)``, ``vfree(p)``: the new area is had
    before the old one is freed.  6.15 (a0309faf1cb0): ``old_size = vm->requested_size``;
    a shrink zeroes ``[size, old_size)`` when ``want_init_on_free() || want_init_on_alloc``, a
    grow up to the area's size stays in place (no zeroing), both record the new size.
    """
    if not size:
        m.vfree(p)
        return None
    vm: vm_struct | None = None
    old_size = alloced = 0
    if p:
        vm = m.find_vm_area(p)
        if vm is None:
            m.printk(4, f"Trying to vrealloc() nonexistent vm area ({m.fmt_ptr(p)})")
            m.WARN_ON(True, "mm/vmalloc.c:vrealloc()")
            return None
        alloced = m.get_vm_area_size(vm)
        old_size = alloced
        if has(m.kernel, "vrealloc_requested_size") and vm.requested_size:
            old_size = vm.requested_size
    granular = has(m.kernel, "vrealloc_requested_size")
    if p and vm is not None and size <= old_size:
        if gfp & _GFP_ZERO:  # want_init_on_alloc(flags); init_on_free is off
            m.kernel_write(p + size, bytes(old_size - size))
        if granular:
            vm.requested_size = size
        return p
    if p and vm is not None and granular and size <= alloced:
        vm.requested_size = size
        return p
    n = m.vmalloc_node_gfp(size, gfp, "PAGE_KERNEL", -1, caller)
    if n is None:
        return None
    new = m.find_vm_area(n)
    if new is not None:
        new.requested_size = size
    if p and old_size:
        m.kernel_write(n, m.vread(p, old_size))
        m.vfree(p)
    return n


# ---- kvmalloc / kvfree / kvrealloc (4.12+) ------------------------------------------------------
def kv_objects(m: Vmalloc) -> dict[int, int]:
    """The live kmalloc objects kvmalloc handed out: handle -> requested size (check() counts
    them as held, not leaked)."""
    return m.kv_slab


def is_vmalloc_addr(m: Vmalloc, addr: int) -> bool:
    """``is_vmalloc_addr``: inside [VMALLOC_START, VMALLOC_END)."""
    return m.VMALLOC_START <= addr < m.VMALLOC_END


def _kv_addr(m: Vmalloc, handle: int) -> int:
    return m.layout.page_offset + handle  # the object's address in the direct map (__va)


def _kv_handle(m: Vmalloc, addr: int) -> int:
    return addr - m.layout.page_offset


def kmalloc_gfp_adjust(size: int, gfp: int, page_size: int) -> int:
    """The gfp kvmalloc passes kmalloc (mm/util.c): above a page, __GFP_NOWARN, __GFP_NORETRY
    unless __GFP_RETRY_MAYFAIL, and no __GFP_NOFAIL (the vmalloc fallback keeps it)."""
    if size > page_size:
        gfp |= _GFP_NOWARN
        if not gfp & _GFP_RETRY_MAYFAIL:
            gfp |= _GFP_NORETRY
        gfp &= ~_GFP_NOFAIL
    return gfp


def kmalloc(m: Vmalloc, size: int, gfp: int, node: int) -> int | None:
    """kmalloc_node for kvmalloc: the object's direct-map address, ZERO_SIZE_PTR for 0 bytes."""
    if size == 0:
        return ZERO_SIZE_PTR
    handle = m.kmalloc(size, gfp, node)
    if not handle:
        return None
    kv_objects(m)[handle] = size
    return _kv_addr(m, handle)


def kvmalloc_node(m: Vmalloc, size: int, gfp: int, node: int, caller: str) -> int | None:
    """``kvmalloc_node`` (mm/util.c, 4.12 ... 6.12): kmalloc with :func:`kmalloc_gfp_adjust`;
    a request of at most a page stops there; else vmalloc when the gfp allows it (4.12-5.18:
    all of GFP_KERNEL; 5.19+: any blocking gfp), sizes over INT_MAX refused (5.15+), with
    VM_ALLOW_HUGE_VMAP (5.18+)."""
    size = size_t(m, size)
    ret = kmalloc(m, size, kmalloc_gfp_adjust(size, gfp, m.PAGE_SIZE), node)
    if ret is not None or size <= m.PAGE_SIZE:
        return ret
    if has(m.kernel, "kvmalloc_nonblocking_only"):
        if not gfp & _GFP_WAIT:
            return None
    elif gfp & G.GFP_KERNEL != G.GFP_KERNEL:
        return None
    if has(m.kernel, "kvmalloc_int_max") and size > INT_MAX:
        m.WARN_ON(not gfp & _GFP_NOWARN, "mm/util.c:kvmalloc_node() (size > INT_MAX)")
        return None
    flags = VM_ALLOW_HUGE_VMAP if has(m.kernel, "kvmalloc_huge") else 0
    return vmalloc_node_range_flags(m, size, 1, m.VMALLOC_START, m.VMALLOC_END, gfp,
                                    m.pgprot(None), flags, node, caller)


def kvfree(m: Vmalloc, addr: int | None) -> None:
    """``kvfree``: vfree for a vmalloc address, kfree otherwise (NULL and ZERO_SIZE_PTR: nothing)."""
    if addr is None or addr <= ZERO_SIZE_PTR:
        return
    if is_vmalloc_addr(m, addr):
        m.vfree(addr)
        return
    handle = _kv_handle(m, addr)
    kv_objects(m).pop(handle, None)
    m.kfree(handle)  # an unknown object is kfree's own BUG (KernelBug)


def _kv_read(m: Vmalloc, addr: int, n: int) -> bytes:
    if is_vmalloc_addr(m, addr):
        return m.vread(addr, n)
    return m.phys.frames.read(_kv_handle(m, addr), n)


def _kv_write(m: Vmalloc, addr: int, data: bytes) -> None:
    if is_vmalloc_addr(m, addr):
        m.kernel_write(addr, data)
    else:
        m.phys.frames.write(_kv_handle(m, addr), data)


def kvrealloc(m: Vmalloc, p: int | None, size: int, gfp: int, oldsize: int | None, caller: str) -> int | None:
    """``kvrealloc`` of the machine's kernel.

    6.12+ ``kvrealloc(p, size, flags)``: :func:`vrealloc` for a vmalloc address; otherwise
    ``krealloc`` (the same object when ``ksize(p)`` holds ``size``, else a new one with the
    bytes copied; size 0 frees and gives ZERO_SIZE_PTR) and, when that fails,
    ``kvmalloc(size)`` with ``ksize(p)`` bytes copied and ``kfree(p)``.
    5.15-6.11 ``kvrealloc(p, oldsize, newsize, flags)``: ``p`` when ``oldsize >= newsize``,
    else kvmalloc, copy ``oldsize`` bytes, kvfree.
    """
    if not has(m.kernel, "vrealloc"):
        if oldsize is None:
            raise TypeError("kvrealloc(): before Linux 6.12 it is kvrealloc(p, oldsize, newsize, flags): "
                            "pass oldsize=")
        if oldsize >= size:
            return p
        n = kvmalloc_node(m, size, gfp, -1, caller)
        if n is None:
            return None
        if p and oldsize:
            _kv_write(m, n, _kv_read(m, p, oldsize))
        kvfree(m, p)
        return n
    if p and is_vmalloc_addr(m, p):
        return vrealloc(m, p, size, gfp, caller)
    if p is None or p <= ZERO_SIZE_PTR:
        return kvmalloc_node(m, size, gfp, -1, caller)  # krealloc(NULL), then kvmalloc
    handle = _kv_handle(m, p)
    with m.page_lock:
        ks = m.slab.ksize(handle)
    if not size:
        kvfree(m, p)
        return ZERO_SIZE_PTR
    if size <= ks:  # krealloc: the object already holds it
        kv_objects(m)[handle] = size
        return p
    n = kmalloc(m, size, kmalloc_gfp_adjust(size, gfp, m.PAGE_SIZE), -1)
    if n is None:
        n = kvmalloc_node(m, size, gfp, -1, caller)
        if n is None:
            return None
    _kv_write(m, n, _kv_read(m, p, ks))
    kvfree(m, p)
    return n


__all__ = [
    "HUGE_VMALLOC_ARCHES", "INT_MAX", "VMALLOC_VM_FLAGS", "ZERO_SIZE_PTR", "array_bytes", "huge_shift",
    "is_vmalloc_addr", "kmalloc_gfp_adjust", "kv_objects", "kvfree", "kvmalloc_node", "kvrealloc",
    "require", "size_t", "vmalloc_node_range_flags", "vmap_pfn", "vrealloc",
]
