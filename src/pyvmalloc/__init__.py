"""pyvmalloc: the Linux kernel's vmalloc subsystem as a runnable Python model.

The public facade: ``Machine`` and the kernel's flag names.  Everything else lives in the
layers (``pyvmalloc.arch``, ``phys``, ``mmu``, ``vmalloc``, ``kernel``, ``snapshot``, ``formats``, ...; see docs/design.md).
"""

from pyvmalloc.errors import (
    ConfigError,
    FormatError,
    Inconsistency,
    KernelBug,
    PageFault,
    PyvmallocError,
)
from pyvmalloc.facade import Machine
from pyvmalloc.vmalloc.user import VM_RESERVED
from pyvmalloc.vmalloc.vm_struct import (
    VM_ALLOC,
    VM_IOREMAP,
    VM_MAP,
    VM_USERMAP,
    VM_VPAGES,
    vm_struct,
)

__all__ = [
    "ConfigError",
    "FormatError",
    "Inconsistency",
    "KernelBug",
    "Machine",
    "PageFault",
    "PyvmallocError",
    "VM_ALLOC",
    "VM_IOREMAP",
    "VM_MAP",
    "VM_RESERVED",
    "VM_USERMAP",
    "VM_VPAGES",
    "vm_struct",
]

