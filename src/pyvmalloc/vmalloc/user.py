"""A minimal user address space (``mm_struct``, ``vm_area_struct``) for remap_vmalloc_range."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pyvmalloc.errno import EBUSY, EFAULT, EINVAL
from pyvmalloc.errors import ConfigError

if TYPE_CHECKING:
    from pyvmalloc.mmu import Mmu, PageTables

# include/linux/mm.h, 2.6.22: vm_flags bits used here.
VM_READ = 0x00000001
VM_WRITE = 0x00000002
VM_EXEC = 0x00000004
VM_SHARED = 0x00000008
VM_MAYREAD = 0x00000010
VM_MAYWRITE = 0x00000020
VM_MAYSHARE = 0x00000080
VM_RESERVED = 0x00080000  # "Don't unmap it from swap_out" (renamed VM_DONTEXPAND|VM_DONTDUMP later)
VM_INSERTPAGE = 0x02000000  # "The vma has had vm_insert_page() done on it"



@dataclass(eq=False)
class Vma:
    """One ``struct vm_area_struct``: ``[start, end)`` of a user address space."""

    mm: UserMm
    start: int
    end: int
    flags: int

    def __repr__(self) -> str:
        return f"Vma({self.start:#x}-{self.end:#x}, flags={self.flags:#x})"


class UserMm:
    """A process address space: its own page tables, the kernel half shared with init_mm.

    ``mmap(length)`` makes a shared read/write VMA (as a driver's mmap handler sees it);
    ``read``/``write`` are user-mode CPU accesses through this mm's page tables.
    """

    def __init__(self, kernel: Any) -> None:
        self._k = kernel
        page_tables_cls = type(kernel.init_mm)
        self.page_tables: PageTables = page_tables_cls(
            kernel.profile, kernel.phys.frames, kernel.env.alloc_pgtable_frame, kernel.env.free_pgtable_frame
        )
        lay, prof = kernel.layout, kernel.profile
        kernel_start = min(lay.page_offset, lay.vmalloc_start, lay.modules_start or lay.page_offset)
        # pgd_alloc(): the kernel's top-level entries are copied into every new pgd.
        self.page_tables.copy_kernel_entries(kernel.init_mm, kernel_start, 1 << prof.bits)
        # TASK_SIZE: the user half (3 GiB on the 32-bit 3G/1G split, below the modules on
        # ARM); TASK_UNMAPPED_BASE = PAGE_ALIGN(TASK_SIZE / 3), where mmap starts looking.
        self.task_size = kernel_start if prof.bits == 32 else 1 << (prof.va_bits - 1)
        ps = prof.page_size
        self.vmas: list[Vma] = []
        self._next = (self.task_size // 3 + ps - 1) & ~(ps - 1)
        self.inserted: list[int] = []  # pfns whose reference this mm holds

    def mmap(self, length: int) -> Vma:
        """A new VMA of ``length`` bytes (rounded up to pages) above the last one."""
        ps = self._k.PAGE_SIZE
        if length <= 0:
            raise ConfigError(f"mmap length {length} must be positive")
        length = (length + ps - 1) & ~(ps - 1)
        start = self._next
        if start + length > self.task_size:
            raise ConfigError("mmap: the user address space is full")
        self._next = start + length + ps  # leave a page between VMAs so overruns fault
        vma = Vma(self, start, start + length, VM_READ | VM_WRITE | VM_SHARED | VM_MAYREAD | VM_MAYWRITE | VM_MAYSHARE)
        self.vmas.append(vma)
        return vma

    def find_vma(self, addr: int) -> Vma | None:
        """The VMA containing ``addr``, or None."""
        for vma in self.vmas:
            if vma.start <= addr < vma.end:
                return vma
        return None

    def vm_insert_page(self, vma: Vma, addr: int, page: Any) -> int:
        """Insert ``page`` at user ``addr`` of ``vma`` (mm/memory.c, 2.6.22); 0 or -errno.

        ``-EFAULT`` outside the VMA, ``-EINVAL`` for a NULL or unreferenced page, ``-EBUSY``
        when something is mapped there already; takes a reference on the page.
        """
        if not vma.start <= addr < vma.end:
            return -EFAULT
        if page is None or self._k.phys.page(page.pfn).refcount <= 0:
            return -EINVAL
        vma.flags |= VM_INSERTPAGE
        pt = self.page_tables
        if int(pt.lookup(addr, 1)[0]) >= 0:
            return -EBUSY
        prot = self._k.profile.pgprot("PAGE_SHARED" if vma.flags & VM_WRITE else "PAGE_READONLY")
        with self._k.pgtable_lock:
            err = pt.map_range(addr, np.array([page.pfn], dtype=np.int64), prot)
        if err:
            return err
        self._k.get_page(page.pfn)
        self.inserted.append(page.pfn)
        return 0

    def read(self, addr: int, n: int) -> bytes:
        """A user-mode read of ``n`` bytes at ``addr`` (``pv.PageFault`` where nothing is mapped)."""
        mmu: Mmu = self._k.mmu
        return mmu.read(addr, n, user=True, page_tables=self.page_tables)

    def write(self, addr: int, data: bytes) -> None:
        """A user-mode store of ``data`` at ``addr``."""
        self._k.mmu.write(addr, data, user=True, page_tables=self.page_tables)

    def munmap(self, vma: Vma) -> int:
        """Unmap ``vma``: clear its PTEs, flush, and drop the references vm_insert_page took; 0.

        A VMA this mm no longer has (unmapped already, or another mm's) leaves nothing to
        unmap: munmap(2) of a range with no mapping is not an error (mm/mmap.c ``do_munmap``
        returns 0 when ``find_vma`` finds nothing in the range), so the answer is 0 here too.
        """
        if not isinstance(vma, Vma):
            raise TypeError(f"munmap(): vma must be a Vma (UserMm.mmap), not {type(vma).__name__} {vma!r}")
        if not any(v is vma for v in self.vmas):
            return 0
        with self._k.pgtable_lock:
            pfns = self.page_tables.unmap_range(vma.start, vma.end - vma.start)
        self._k.mmu.flush_tlb_range(self.page_tables, vma.start, vma.end)
        for pfn in pfns.tolist():
            self.inserted.remove(pfn)
        self._k.free_pages(pfns)
        self.vmas.remove(vma)
        return 0
