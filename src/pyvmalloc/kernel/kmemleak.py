"""kmemleak's registry of vmalloc'ed blocks (mm/kmemleak.c, CONFIG_DEBUG_KMEMLEAK, 2.6.31+), and
what ``VM_DEFER_KMEMLEAK`` (5.16+) changes in it.

Booted with ``cmdline="kmemleak=on"`` (a kernel built with CONFIG_DEBUG_KMEMLEAK_DEFAULT_OFF),
a machine keeps one :class:`KmemleakObject` per block kmemleak knows:

- ``__vmalloc_node_range`` registers every block it vmallocs (6.1:
  ``kmemleak_vmalloc(area, PAGE_ALIGN(size), gfp)``, ``min_count`` 2: the ``vm_struct``'s own
  pointer to it is not a reference of its user), unless the caller passed ``VM_DEFER_KMEMLEAK``
  (5.16, 60115fa54ad7 "mm: defer kmemleak object creation of module_alloc()"): then the block
  has no object until the caller registers it, :meth:`Kmemleak.register`
  (``Machine.kmemleak_vmalloc``; in the kernel ``kasan_alloc_module_shadow`` does it once the
  module's KASAN shadow exists, so that a scan never reads module memory without a shadow);
- ``vfree`` unregisters the object at its address first (``kmemleak_free``), whether or not
  there was one; ``vmap``, ``get_vm_area`` and per-CPU areas are never registered.

What the model leaves out, on purpose: the scan.  kmemleak reports a block as a leak when no
pointer to it is found in the kernel's data and bss sections, the stacks and the other objects;
the model has no data sections, no stacks and no kmemleak objects for kmalloc, so a scan would
call every block a leak.  The registry is what the flag changes, and ``check()`` verifies it
(every object is a live vmalloc'ed block, no freed block keeps one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyvmalloc.kernel.log import KERN_ERR
from pyvmalloc.versions import KernelVersion, has
from pyvmalloc.vmalloc.vm_struct import VM_DEFER_KMEMLEAK

if TYPE_CHECKING:
    from pyvmalloc.kernel.log import KernelLog
    from pyvmalloc.vmalloc.vm_struct import vm_struct

__all__ = ["Kmemleak", "KmemleakObject"]


@dataclass
class KmemleakObject:
    """One ``struct kmemleak_object`` of a vmalloc'ed block: ``pointer``, ``size``,
    ``min_count`` (2 for vmalloc, as 6.1 registers it) and the allocation's ``caller``."""

    pointer: int
    size: int
    min_count: int
    caller: str


class Kmemleak:
    """The machine's kmemleak (see the module docstring); ``vmalloc``/``free`` are the hooks
    mm/vmalloc.c calls (``vmalloc.env.KmemleakHooks``)."""

    def __init__(self, kernel: KernelVersion, log: KernelLog) -> None:
        self.objects: dict[int, KmemleakObject] = {}
        self._defer = has(kernel, "vm_defer_kmemleak")
        self._log = log
        self.stats = {"created": 0, "freed": 0, "deferred": 0}

    def vmalloc(self, area: vm_struct, size: int) -> None:
        """``kmemleak_vmalloc`` as ``__vmalloc_node_range`` calls it: nothing for a
        VM_DEFER_KMEMLEAK area (5.16+; before, the bit meant nothing)."""
        if self._defer and area.flags & VM_DEFER_KMEMLEAK:
            self.stats["deferred"] += 1
            return
        self.register(area, size)

    def register(self, area: vm_struct, size: int) -> None:
        """``kmemleak_vmalloc(area, size, gfp)``: an object for ``[area->addr, + size)``.  A block
        already registered is the kernel's "overlaps existing" error, logged; the first object
        stays (the kernel would also turn kmemleak off)."""
        if area.addr in self.objects:
            self._log.printk(KERN_ERR, f"kmemleak: Cannot insert {area.addr:#x} into the object "
                                       "search tree (overlaps existing)")
            return
        self.objects[area.addr] = KmemleakObject(area.addr, size, 2, area.caller)
        self.stats["created"] += 1

    def free(self, addr: int | None) -> None:
        """``kmemleak_free(addr)``: the object at ``addr`` goes; an unknown address is ignored
        (the kernel's warning is DEBUG-only)."""
        if addr and self.objects.pop(addr, None) is not None:
            self.stats["freed"] += 1

    def list(self) -> list[KmemleakObject]:
        """The objects in address order."""
        return [self.objects[a] for a in sorted(self.objects)]
