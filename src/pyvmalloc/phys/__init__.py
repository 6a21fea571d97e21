"""Layer phys: physical frames with real bytes, page metadata, buddy allocators, GFP flags, kmalloc.

See docs/design.md.  ``PhysMem`` is mm/page_alloc.c with ``struct page`` as numpy arrays,
``Kmalloc`` a small kmalloc/kfree, ``gfp`` the flags of include/linux/gfp.h (2.6.22).
"""

from pyvmalloc.phys import gfp
from pyvmalloc.phys.frames import FrameStore
from pyvmalloc.phys.memory import (
    OWNER_FREE,
    OWNER_OTHER,
    OWNER_PGTABLE,
    OWNER_RESERVED,
    OWNER_SLAB,
    OWNER_VMALLOC,
    OWNERS,
    PG_buddy,
    PG_pgtable,
    PG_reserved,
    PG_slab,
    Page,
    PhysMem,
    PhysStats,
    ZoneInfo,
    page_flag_names,
    page_to_pfn,
    pfn_to_page,
)
from pyvmalloc.phys.slab import Kmalloc, KmallocStats

__all__ = [
    "FrameStore",
    "Kmalloc",
    "KmallocStats",
    "OWNERS",
    "OWNER_FREE",
    "OWNER_OTHER",
    "OWNER_PGTABLE",
    "OWNER_RESERVED",
    "OWNER_SLAB",
    "OWNER_VMALLOC",
    "PG_buddy",
    "PG_pgtable",
    "PG_reserved",
    "PG_slab",
    "Page",
    "PhysMem",
    "PhysStats",
    "ZoneInfo",
    "gfp",
    "page_flag_names",
    "page_to_pfn",
    "pfn_to_page",
]
