"""``pcpu_get_vm_areas``'s search (mm/vmalloc.c, 2.6.32+): congruent areas at the top of the
vmalloc space, one per group of the per-CPU allocator's units.

The per-CPU allocator (mm/percpu-vm.c ``pcpu_create_chunk``) asks for ``nr_vms`` areas whose
distances from one another are those of the first chunk's groups (``offsets``), each ``sizes[i]``
bytes, every one aligned to ``align`` (the first chunk's atom size): one ``base`` such that
``[base + offsets[i], base + offsets[i] + sizes[i])`` is free for every ``i``.  The kernel looks
from the top of ``VMALLOC_START..VMALLOC_END`` down (5.2+, Uladzislau Rezki's free-tree version:
``pvm_find_va_enclose_addr``, ``pvm_determine_end_from_reverse``), starting with the area of the
highest offset and moving the base down until every area fits; :func:`find_base` runs that loop
over the free blocks.  The areas get no guard page (:class:`PcpuArea`).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from pyvmalloc.vmalloc.vm_struct import vm_struct


@dataclass(eq=False, repr=False)
class PcpuArea(vm_struct):
    """A ``vm_struct`` that ``pcpu_get_vm_areas`` set up (``setup_vmalloc_vm(vms[area], vas[area],
    VM_ALLOC, pcpu_get_vm_areas)``): exactly its group's size, no guard page after it.  The
    kernel's ``get_vm_area_size()`` still takes a page off it (vread reads its last page as a
    hole, as the kernel's does); ``check()`` knows it has no guard."""


def find_base(free: Sequence[tuple[int, int]], offsets: Sequence[int], sizes: Sequence[int],
              align: int, vmalloc_start: int, vmalloc_end: int) -> int | None:
    """The base the kernel's search settles on, or None (``goto overflow``).

    ``free``: the free blocks ``(start, end)`` in address order; ``vmalloc_start`` is already
    ``ALIGN(VMALLOC_START, align)`` and ``vmalloc_end`` ``VMALLOC_END & ~(align - 1)``.
    """
    starts = [s for s, _e in free]
    nr = len(offsets)
    last = max(range(nr), key=lambda i: (offsets[i], -i))  # the first of the highest offsets

    def enclose(addr: int) -> int | None:
        # pvm_find_va_enclose_addr: the free block holding addr, else the closest one below it.
        i = bisect_right(starts, addr) - 1
        return i if i >= 0 else None

    def end_from_reverse(i: int | None) -> tuple[int, int | None]:
        # pvm_determine_end_from_reverse: walk the free list down from block i to the first one
        # with room below min(its aligned end, vmalloc_end).
        while i is not None and i >= 0:
            addr = min(free[i][1] & -align, vmalloc_end)
            if free[i][0] < addr:
                return addr, i
            i -= 1
        return 0, None

    area = term = last
    start, end = offsets[area], offsets[area] + sizes[area]
    addr, va = end_from_reverse(enclose(vmalloc_end))
    base = addr - end
    while True:
        # "base might have underflowed, add last_end before comparing": base < vmalloc_start.
        if base < vmalloc_start or va is None:
            return None
        if base + end > free[va][1]:  # wider than this block: move the base down
            addr, va = end_from_reverse(va)
            base, term = addr - end, area
            continue
        if base + start < free[va][0]:  # does not fit: the block below
            addr, va = end_from_reverse(va - 1 if va > 0 else None)
            base, term = addr - end, area
            continue
        area = (area + nr - 1) % nr  # this one fits: the previous area
        if area == term:
            return base
        start, end = offsets[area], offsets[area] + sizes[area]
        va = enclose(base + end)
