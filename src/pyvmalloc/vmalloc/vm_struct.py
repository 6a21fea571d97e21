"""``struct vm_struct``, ``struct vmap_area`` and their flags (include/linux/vmalloc.h, mm/vmalloc.c)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

# include/linux/vmalloc.h, 2.6.22: the flags a vm_struct can carry.
VM_IOREMAP = 0x00000001  # ioremap() and friends
VM_ALLOC = 0x00000002  # vmalloc()
VM_MAP = 0x00000004  # vmap()ed pages
VM_USERMAP = 0x00000008  # suitable for remap_vmalloc_range
VM_VPAGES = 0x00000010  # buffer for pages was vmalloc'ed

# include/linux/vmalloc.h of later kernels (6.x values; versions.py dates each): the vm_flags
# that __vmalloc_node_range takes (vmalloc/kvmalloc.py).  VM_VPAGES (0x10) is the model's bit
# for a vmalloc'ed page array; 6.x reused 0x10 for VM_DMA_COHERENT, which the model never sets.
VM_NO_GUARD = 0x00000040          # 4.0: no guard page (get_vm_area_size() is the whole area)
VM_FLUSH_RESET_PERMS = 0x00000100  # 5.2: reset direct-map permissions and flush on free (reset_perms.py)
VM_MAP_PUT_PAGES = 0x00000200     # 5.10: vfree() puts a vmap()ed area's pages
VM_ALLOW_HUGE_VMAP = 0x00000400   # 5.18: may use huge (PMD) mappings
VM_DEFER_KMEMLEAK = 0x00000800    # 5.16: kmemleak object created later (kernel/kmemleak.py)
VM_SPARSE = 0x00001000            # 6.9: pages mapped and unmapped inside it (vm_area_map_pages)

# mm/vmalloc.c s_show: the word each VM_* bit of the model prints in /proc/vmallocinfo, in the
# kernel's order ("vpages" last: the page array was vmalloc'ed).  The one table from bits to
# words: kernel/proc.py renders with it, snapshot/restore.py parses with it.
VM_WORDS: tuple[tuple[int, str], ...] = (
    (VM_IOREMAP, "ioremap"), (VM_SPARSE, "sparse"), (VM_ALLOC, "vmalloc"), (VM_MAP, "vmap"), (VM_USERMAP, "user"),
    (VM_VPAGES, "vpages"),
)

VM_FLAG_NAMES = {
    VM_IOREMAP: "VM_IOREMAP",
    VM_ALLOC: "VM_ALLOC",
    VM_MAP: "VM_MAP",
    VM_USERMAP: "VM_USERMAP",
    VM_VPAGES: "VM_VPAGES",
    VM_NO_GUARD: "VM_NO_GUARD",
    VM_FLUSH_RESET_PERMS: "VM_FLUSH_RESET_PERMS",
    VM_MAP_PUT_PAGES: "VM_MAP_PUT_PAGES",
    VM_ALLOW_HUGE_VMAP: "VM_ALLOW_HUGE_VMAP",
    VM_DEFER_KMEMLEAK: "VM_DEFER_KMEMLEAK",
    VM_SPARSE: "VM_SPARSE",
}


def vm_flag_names(flags: int) -> str:
    """``"VM_ALLOC|VM_USERMAP"`` for a flags word (unknown bits in hex)."""
    names = [name for bit, name in VM_FLAG_NAMES.items() if flags & bit]
    rest = flags & ~sum(VM_FLAG_NAMES)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


_NO_PAGES: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)


@dataclass(eq=False)
class vm_struct:  # noqa: N801 - the kernel's name
    """One area of kernel virtual address space (``struct vm_struct``).

    ``size`` includes the guard page while the area is registered (``remove_vm_area`` takes it
    off, as the seed does).  ``pages`` is the page-pointer array as pfns (the model keeps pfns
    where the kernel keeps ``struct page *``); ``nr_pages`` counts the valid entries.
    ``pages_array`` says where that array lives: ``("kmalloc", handle)`` or ``("vmalloc", addr)``
    (VM_VPAGES).  ``caller`` is what ``/proc/vmallocinfo`` prints (2.6.26+ records it).
    """

    addr: int
    size: int
    flags: int
    caller: str = ""
    pages: npt.NDArray[np.int64] = field(default_factory=lambda: _NO_PAGES)
    nr_pages: int = 0
    phys_addr: int = 0
    pages_array: tuple[str, int] | None = None
    handle: int = 0  # the kmalloc object that holds this vm_struct
    mapped: npt.NDArray[np.int64] | None = None  # vmap()'s pages: not in the kernel's struct, for check()
    # 5.18+: the order of the area's mappings (vm_area_page_order: 9 for PMD leaves on x86_64), 0 for pages.
    page_order: int = 0
    # 6.15+ (a0309faf1cb0): the size vmalloc was asked for; 0 where the model did not record it
    # (areas made by the 2.6.22 entry points): vrealloc then takes the area's size.
    requested_size: int = 0

    @property
    def end(self) -> int:
        """One past the last byte, guard page included."""
        return self.addr + self.size

    def __repr__(self) -> str:
        return (
            f"vm_struct(addr={self.addr:#x}, size={self.size:#x}, flags={vm_flag_names(self.flags)}, "
            f"nr_pages={self.nr_pages}, caller={self.caller!r})"
        )


# ---- struct vmap_area: the address allocator's unit (2.6.28+, db64fe02258f) ---------------------
# va->flags, the kind of a reserved range.  The kernel's values changed over time (2.6.28:
# VM_LAZY_FREE 0x01, VM_LAZY_FREEING 0x02, VM_VM_AREA 0x04; 5.4 moved lazily freed areas to
# their own tree and dropped the flag; 6.4: VMAP_RAM 0x1, VMAP_BLOCK 0x2): the model keeps one
# bit per kind, under the kernel's names, so every version's kinds can be told apart.
VM_LAZY_FREE = 0x01   # freed, waiting for the lazy purge ("unpurged vm_area")
VM_VM_AREA = 0x04     # carries a vm_struct (va->vm)
VMAP_RAM = 0x10       # vm_map_ram() space with no vm_struct ("vm_map_ram")
VMAP_BLOCK = 0x20     # one per-CPU vmap block of vm_map_ram()
# The model's own: a freed area held by a vmap node's pool (6.9+, vmalloc/vmap_node.py); still
# reserved in the address allocator, on no busy or lazy list.  The kernel marks it by nothing
# but its place on a pool list.  Bits 8-15 of ``flags`` carry the node as encode_vn_id does.
VA_POOLED = 0x40

VMAP_FLAG_NAMES = {VM_LAZY_FREE: "VM_LAZY_FREE", VM_VM_AREA: "VM_VM_AREA", VMAP_RAM: "VMAP_RAM",
                   VMAP_BLOCK: "VMAP_BLOCK", VA_POOLED: "VA_POOLED"}


@dataclass(eq=False)
class vmap_area:  # noqa: N801 - the kernel's name
    """A reserved range of kernel virtual address space (``struct vmap_area``).

    ``[va_start, va_end)`` is what the address allocator holds (guard page included);
    ``flags`` say what the range is (:data:`VM_VM_AREA` with its ``vm``, :data:`VM_LAZY_FREE`,
    :data:`VMAP_RAM`), and the checker, ``/proc`` rendering and snapshots ask them.
    """

    va_start: int
    va_end: int
    flags: int
    vm: vm_struct | None = None

    @property
    def addr(self) -> int:
        """``va_start`` (named as ``vm_struct.addr`` for code that handles both)."""
        return self.va_start

    @property
    def size(self) -> int:
        """``va_end - va_start``, guard page included."""
        return self.va_end - self.va_start

    def __repr__(self) -> str:
        names = "|".join(n for b, n in VMAP_FLAG_NAMES.items() if self.flags & b) or "0"
        return f"vmap_area({self.va_start:#x}-{self.va_end:#x}, flags={names}, vm={self.vm!r})"


# ---- areas that a snapshot restores (snapshot/restore.py builds them) ---------------------------
@dataclass(eq=False, repr=False)
class SnapshotArea(vm_struct):
    """A ``vm_struct`` rebuilt from a ``/proc/vmallocinfo`` line.

    ``extra_words`` are the printed words that have no ``VM_*`` bit in the model (vendor words
    such as ``lowmem``, newer kernels' ``sparse``/``dma-coherent``, unknown ``key=value``
    tokens); ``/proc/vmallocinfo`` prints them back.  ``static`` marks areas the kernel put at a
    fixed address during boot (``vm_area_add_early``: the caller is the function itself).
    """

    extra_words: tuple[str, ...] = ()
    static: bool = False
    lineno: int = 0
    snapshot_pages: int = 0  # pages= of a line replayed without frames (RAM too small)




class FixedRange(NamedTuple):
    """A restored area outside ``[VMALLOC_START, VMALLOC_END)``: it keeps its address and
    ``Machine.check()`` accepts it there (``m.extra_vm_ranges``).  ``why`` names the kind."""

    start: int
    end: int
    why: str
