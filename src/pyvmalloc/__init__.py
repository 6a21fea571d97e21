"""pyvmalloc: the Linux kernel's vmalloc subsystem as a runnable Python model."""

from pyvmalloc.errors import (
    ConfigError,
    FormatError,
    Inconsistency,
    KernelBug,
    PageFault,
    PyvmallocError,
)

__all__ = [
    "ConfigError",
    "FormatError",
    "Inconsistency",
    "KernelBug",
    "PageFault",
    "PyvmallocError",
]
