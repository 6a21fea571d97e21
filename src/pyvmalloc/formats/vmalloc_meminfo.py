"""VmallocTotal/Used/Chunk of ``/proc/meminfo`` as each kernel generation computes them.

The three lines changed meaning over time (reference §3):

- ``vmlist`` (2.6.x-3.9, ``fs/proc/mmu.c: get_vmalloc_info``): walk the address-sorted
  ``vmlist`` of vm_structs; areas starting below VMALLOC_START are skipped ("some archs keep
  another range for modules"), the walk stops at the first area at or above VMALLOC_END.
  Used = the sum of their sizes (guard pages included); Chunk = the largest gap between
  VMALLOC_START, the areas and VMALLOC_END; VMALLOC_TOTAL when the list is empty.
- ``vmap_area_list`` (3.10-4.3, ``mm/vmalloc.c``): the same walk over vmap_area_list, which also
  holds vm_map_ram blocks and skips lazily freed areas (VM_LAZY_FREE).
- ``zero`` (4.4-5.2): a5ad88ce8c7f removed the walk; both print 0.
- ``nr_pages`` (5.3+): 97105f0ab7b8 makes VmallocUsed ``vmalloc_nr_pages()`` in kB, the pages
  vmalloc obtained; VmallocChunk stays 0.

VmallocTotal is ``(VMALLOC_END - VMALLOC_START) >> 10`` in every version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyvmalloc.errors import ConfigError
from pyvmalloc.versions import KernelVersion, meminfo_generation, parse_version
from pyvmalloc.formats.vmallocinfo import UNPURGED, VM_MAP_RAM, VmallocinfoLine

__all__ = ["GENERATIONS", "VmallocMeminfo", "generation_for", "parse_kernel_version",
           "vmalloc_meminfo"]

GENERATIONS: dict[str, str] = {
    "vmlist": "2.6.x-3.9: get_vmalloc_info() walks vmlist inside [VMALLOC_START, VMALLOC_END)",
    "vmap_area_list": "3.10-4.3: get_vmalloc_info() walks vmap_area_list, skipping lazy areas",
    "zero": "4.4-5.2: VmallocUsed and VmallocChunk print 0 (a5ad88ce8c7f)",
    "nr_pages": "5.3+: VmallocUsed = vmalloc_nr_pages() in kB (97105f0ab7b8), VmallocChunk 0",
}


@dataclass(frozen=True)
class VmallocMeminfo:
    """The three Vmalloc* lines in kB under one generation's definitions; ``total_kb`` is None
    when the bounds are not known."""

    generation: str
    total_kb: int | None
    used_kb: int
    chunk_kb: int


def parse_kernel_version(version: str) -> tuple[int, int, int]:
    """``"4.18.0-80.11.2.el8_0"`` -> ``(4, 18, 0)``; ConfigError if it is no kernel version."""
    v = parse_version(version)
    return v.major, v.minor, v.patch


def generation_for(version: str | tuple[int, ...] | KernelVersion) -> str:
    """The generation name (a key of GENERATIONS) whose definitions kernel ``version`` uses
    (the rule is ``versions.meminfo_generation``)."""
    if isinstance(version, tuple):
        version = ".".join(str(x) for x in version)
    return meminfo_generation(parse_version(version))


def _walk(lines: Sequence[VmallocinfoLine], start: int, end: int, bits: int,
          with_vm_map_ram: bool) -> tuple[int, int]:
    """get_vmalloc_info()'s walk, in the kernel's unsigned long arithmetic."""
    mask = (1 << bits) - 1
    areas = sorted((ln.start, ln.size) for ln in lines
                   if UNPURGED not in ln.kinds and (with_vm_map_ram or VM_MAP_RAM not in ln.kinds))
    if not areas:
        return 0, (end - start) & mask
    used = 0
    largest = 0
    prev_end = start
    for addr, size in areas:
        if addr < start:
            continue
        if addr >= end:
            break
        used += size
        largest = max(largest, (addr - prev_end) & mask)
        prev_end = (addr + size) & mask
    largest = max(largest, (end - prev_end) & mask)
    return used, largest


def vmalloc_meminfo(lines: Sequence[VmallocinfoLine], bounds: tuple[int, int] | None,
                    generation: str, page_size: int = 4096, bits: int | None = None
                    ) -> VmallocMeminfo:
    """VmallocTotal/Used/Chunk (kB) for ``lines`` under ``generation`` (a key of GENERATIONS).

    ``bounds`` is (VMALLOC_START, VMALLOC_END); the walking generations need it (ConfigError
    otherwise), the others only for VmallocTotal.  ``bits`` is the width of unsigned long
    (default: 64 if VMALLOC_END needs it, else 32).
    """
    if generation not in GENERATIONS:
        raise ConfigError(f"unknown VmallocUsed generation {generation!r}; "
                          f"one of {', '.join(GENERATIONS)}")
    total_kb = None
    if bounds is not None:
        start, end = bounds
        if end < start:
            raise ConfigError(f"VMALLOC_END 0x{end:x} below VMALLOC_START 0x{start:x}")
        total_kb = (end - start) >> 10
        if bits is None:
            bits = 64 if end >= 1 << 32 else 32
    if generation in ("vmlist", "vmap_area_list"):
        if bounds is None:
            raise ConfigError(f"the {generation} walk needs VMALLOC_START and VMALLOC_END")
        used, chunk = _walk(lines, bounds[0], bounds[1], bits or 64,
                            with_vm_map_ram=generation == "vmap_area_list")
        return VmallocMeminfo(generation, total_kb, used >> 10, chunk >> 10)
    if generation == "zero":
        return VmallocMeminfo(generation, total_kb, 0, 0)
    # vmalloc_nr_pages counts pages that __vmalloc_area_node() obtained: areas flagged VM_ALLOC.
    pages = sum(ln.nr_pages or 0 for ln in lines if "vmalloc" in ln.kinds)
    return VmallocMeminfo(generation, total_kb, pages * page_size >> 10, 0)
