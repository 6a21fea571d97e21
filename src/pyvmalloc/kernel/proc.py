"""The machine's ``/proc/vmallocinfo`` and ``/proc/meminfo``, rendered in the kernel's formats."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from pyvmalloc.formats.meminfo import render_meminfo
from pyvmalloc.formats.vmalloc_meminfo import GENERATIONS, vmalloc_meminfo
from pyvmalloc.formats.vmallocinfo import UNPURGED, VM_MAP_RAM, VmallocinfoLine, render_vmallocinfo
from pyvmalloc.versions import has
from pyvmalloc.vmalloc.vm_struct import VA_POOLED, VM_LAZY_FREE, VM_WORDS, VMAP_BLOCK, VMAP_RAM, SnapshotArea
from pyvmalloc.vmalloc.vm_struct import vmap_area

if TYPE_CHECKING:
    from pyvmalloc.kernel.machine import Machine



_PS = re.compile(r"(\S+\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+( \[\S+\])?|0x[0-9a-fA-F]+)")


def _ps(caller: str) -> str | None:
    """The caller as ``%pS`` prints it: ``symbol+0xoffset/0xsize`` (kallsyms) or a raw address.

    Callers read from a real snapshot are already in that form and stay verbatim; a name given
    to the model (``caller="my_probe"``, or the API's default) has no offset to show, so it
    prints as ``my_probe+0x0/0x0`` -- a bare word would read as a flag word (``vmalloc``).
    """
    if not caller:
        return None
    if _PS.fullmatch(caller):
        return caller
    return "_".join(caller.split()) + "+0x0/0x0"


def vmallocinfo_records(m: Machine) -> list[VmallocinfoLine]:
    """One record per area in address order, then the areas waiting for a lazy purge.

    Lazily freed areas as the machine's kernel shows them (``versions.py``): not at all before
    4.13 (``vmallocinfo_lazy_lines``), in address order among the busy areas from 4.13, after
    the busy ones from 5.4 (``unpurged_in_vmallocinfo``), merged with their neighbours from 5.11
    to 6.8 (``purge_tree_merges``: one line per merged range).
    """
    numa = len(m.phys.nodes) > 1
    busy: list[VmallocinfoLine] = []
    lazy: list[VmallocinfoLine] = []
    lazy_vas: list[vmap_area] = []
    with m.vmlist_lock.read():
        vas = list(m.for_each_vmap_area())
    for va in vas:
        start, size = va.va_start, va.size
        if va.flags & VA_POOLED:  # 6.9+: in a vmap-node pool, on no busy or lazy list
            continue
        if va.flags & VM_LAZY_FREE:
            lazy.append(VmallocinfoLine(start=start, end=start + size, size=size, kinds=(UNPURGED,)))
            lazy_vas.append(va)
            continue
        if va.flags & (VMAP_RAM | VMAP_BLOCK):
            # vm_map_ram space: a range with no vm_struct (s_show's "vm_map_ram" line).
            busy.append(VmallocinfoLine(start=start, end=start + size, size=size,
                                        kinds=(VM_MAP_RAM,)))
            continue
        if va.vm is None:
            continue
        area = va.vm
        nodes: dict[int, int] = {}
        if numa and area.nr_pages:
            # show_numa_info(): per-node page counts of VM_ALLOC areas.
            counts = np.bincount(m.phys.nodes_of(area.pages[: area.nr_pages]))
            nodes = {int(n): int(c) for n, c in enumerate(counts) if c}
        words = [word for bit, word in VM_WORDS if area.flags & bit]
        # Words with no VM_* bit in the model (vendor "lowmem", newer kernels' words) that a
        # snapshot area carries (snapshot/restore.py SnapshotArea); printed before "vpages".
        extra = area.extra_words if isinstance(area, SnapshotArea) else ()
        at = len(words) - (words[-1:] == ["vpages"])
        words[at:at] = [w for w in extra if "=" not in w]
        busy.append(VmallocinfoLine(
            start=area.addr, end=area.addr + area.size, size=area.size, caller=_ps(area.caller),
            nr_pages=area.nr_pages or None, phys=area.phys_addr or None,
            kinds=tuple(words), numa=nodes, unknown_words=tuple(w for w in extra if "=" in w),
        ))
    if not has(m.kernel, "vmallocinfo_lazy_lines"):
        lazy = []
    if has(m.kernel, "purge_tree_merges"):
        lazy = _merge_adjacent(lazy)
    if m.vmap_nodes is not None and has(m.kernel, "vmallocinfo_node_order"):
        # 6.9+ vmalloc_info_show: busy areas node by node, then show_purge_info's lazy ones
        # node by node (one line per area: nothing merges them), each list in address order.
        bi, li = m.vmap_nodes.vmallocinfo_order([r.start for r in busy], lazy_vas)
        return [busy[i] for i in bi] + [lazy[i] for i in li]
    if has(m.kernel, "unpurged_in_vmallocinfo"):
        return busy + lazy
    return sorted(busy + lazy, key=lambda r: r.start)


def _merge_adjacent(lines: list[VmallocinfoLine]) -> list[VmallocinfoLine]:
    """``merge_or_add_vmap_area`` on the purge tree: touching ranges become one."""
    out: list[VmallocinfoLine] = []
    for ln in sorted(lines, key=lambda r: r.start):
        if out and out[-1].end == ln.start:
            prev = out.pop()
            ln = VmallocinfoLine(start=prev.start, end=ln.end, size=ln.end - prev.start,
                                 kinds=(UNPURGED,))
        out.append(ln)
    return out


def vmallocinfo(m: Machine) -> str:
    """``/proc/vmallocinfo`` as a current kernel prints it (busy areas, then ``unpurged vm_area``);
    before 4.13 (``vmallocinfo_lazy_lines``) without the vm_map_ram lines, which s_show skipped
    with every area that had no vm_struct."""
    records = vmallocinfo_records(m)
    if not has(m.kernel, "vmallocinfo_lazy_lines"):
        records = [r for r in records if VM_MAP_RAM not in r.kinds]
    return render_vmallocinfo(records, bits=m.profile.bits)


def meminfo_fields(m: Machine, generation: str = "vmlist") -> dict[str, int]:
    """``/proc/meminfo`` fields in kB.  VmallocUsed/VmallocChunk follow ``generation`` (a key of
    ``formats.vmalloc_meminfo.GENERATIONS``; ``vmlist`` is 2.6.22's ``get_vmalloc_info()`` walk
    over vmlist: sizes with guard pages, the largest gap)."""
    if generation not in GENERATIONS:
        from pyvmalloc.errors import ConfigError

        raise ConfigError(f"unknown meminfo generation {generation!r}: one of {', '.join(GENERATIONS)}")
    kb = m.PAGE_SIZE >> 10
    phys = m.phys
    fields: dict[str, int] = {
        "MemTotal": phys.nr_total() * kb,
        "MemFree": phys.nr_free() * kb,
    }
    zones = {z for z in ("DMA", "DMA32", "NORMAL", "HIGHMEM") if phys.nr_total(zone=z)} if m.profile.has_highmem else set()
    if "HIGHMEM" in zones:
        fields["HighTotal"] = phys.nr_total(zone="HIGHMEM") * kb
        fields["HighFree"] = phys.nr_free(zone="HIGHMEM") * kb
        fields["LowTotal"] = fields["MemTotal"] - fields["HighTotal"]
        fields["LowFree"] = fields["MemFree"] - fields["HighFree"]
    fields["Slab"] = m.slab.statistics().slab_bytes >> 10
    fields["PageTables"] = (m.init_mm.nr_table_frames + sum(mm.page_tables.nr_table_frames for mm in m.vm.user_mms)) * kb
    info = vmalloc_meminfo(vmallocinfo_records(m), (m.VMALLOC_START, m.VMALLOC_END), generation,
                           page_size=m.PAGE_SIZE, bits=m.profile.bits)
    fields["VmallocTotal"] = info.total_kb or 0
    fields["VmallocUsed"] = info.used_kb
    skew = m.vm.nr_vmalloc_pages_skew
    if generation == "nr_pages" and skew:
        # vmalloc_nr_pages() reads an atomic_long_t that 5.11-6.12 vfree() of VM_MAP_PUT_PAGES
        # areas drove below what vmalloc holds; show_val_kb() prints it as an unsigned long
        # shifted to kB (fs/proc/meminfo.c), so a negative count shows as a huge number.
        mask = (1 << m.profile.bits) - 1
        pages = (info.used_kb // kb - skew) & mask
        fields["VmallocUsed"] = (pages << (m.PAGE_SHIFT - 10)) & mask
    fields["VmallocChunk"] = info.chunk_kb
    return fields


def meminfo(m: Machine, generation: str) -> str:
    """``/proc/meminfo`` text (the fields the model knows)."""
    return render_meminfo(meminfo_fields(m, generation))
