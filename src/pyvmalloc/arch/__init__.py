"""Layer arch: machine profiles, page-table entry formats, boot layout (constants and pure functions).

Nothing here holds state: a profile is a frozen description of one architecture as a given
kernel version defines it, ``boot_layout()`` is what that kernel decides at boot for a RAM
size and command line.  See ``profiles.py`` (constants), ``pte.py`` (entry bit layouts),
``boot.py`` (command line, lowmem/highmem, zones, vmalloc bounds), ``pyvmalloc.sizes`` (memparse).
"""

from pyvmalloc.arch.boot import BootLayout, boot_layout, vmalloc_end_for
from pyvmalloc.arch.profiles import (
    PGPROT_NAMES,
    PROFILES,
    ArchProfile,
    Level,
    arch_family,
    get_profile,
)
from pyvmalloc.arch.pte import (
    PERM_ALL,
    PERM_KR,
    PERM_KW,
    PERM_KX,
    PERM_UR,
    PERM_UW,
    PERM_UX,
    Arm64Pte,
    ArmShortPte,
    PteFormat,
    X86Pte,
)

__all__ = [
    "PERM_ALL", "PERM_KR", "PERM_KW", "PERM_KX", "PERM_UR", "PERM_UW", "PERM_UX",
    "PGPROT_NAMES", "PROFILES", "Arm64Pte", "ArchProfile", "ArmShortPte", "BootLayout",
    "Level", "PteFormat", "X86Pte", "arch_family", "boot_layout", "get_profile", "vmalloc_end_for",
]
