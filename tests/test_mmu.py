"""Tests of the mmu layer: page tables in frames, walks, TLBs, faults and flushes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.arch import PROFILES, ArchProfile, BootLayout, boot_layout, get_profile
from pyvmalloc.errno import ENOMEM
from pyvmalloc.mmu import Mmu, PageTables, TableFrames, Tlb, TlbEntry
from pyvmalloc.phys.frames import FrameStore

NR_FRAMES = 1 << 16          # 256 MiB of simulated RAM
TABLE_BASE = 1 << 15         # table frames come from the upper half; data pfns below
names = st.sampled_from(sorted(PROFILES))


@dataclass
class Box:
    profile: ArchProfile
    layout: BootLayout
    frames: FrameStore
    tables: TableFrames
    pt: PageTables
    mmu: Mmu

    @property
    def kernel(self) -> int:
        return self.profile.pgprot("PAGE_KERNEL")


def box(name: str, cpus: int = 2, table_frames: int = NR_FRAMES - TABLE_BASE) -> Box:
    p = get_profile(name)
    frames = FrameStore(NR_FRAMES, p.page_size)
    tables = TableFrames(TABLE_BASE, TABLE_BASE + table_frames)
    pt = PageTables(p, frames, tables.alloc, tables.free)
    return Box(p, boot_layout(p, 256 << 20), frames, tables, pt, Mmu(pt, frames, cpus))


@st.composite
def mappings(draw: st.DrawFn) -> tuple[Box, int, np.ndarray]:
    b = box(draw(names))
    lay = b.layout
    npages = draw(st.integers(1, 1500))
    span = (lay.vmalloc_end - lay.vmalloc_start) >> b.profile.page_shift
    first = draw(st.integers(0, min(span - npages, 1 << 22)))
    addr = lay.vmalloc_start + (first << b.profile.page_shift)
    seed = draw(st.integers(0, 2**32 - 1))
    pfns = np.random.default_rng(seed).integers(0, TABLE_BASE, npages)
    return b, addr, pfns


@settings(max_examples=40, deadline=None)
@given(mappings())
def test_map_then_translate(m: tuple[Box, int, np.ndarray]) -> None:
    b, addr, pfns = m
    ps = b.profile.page_size
    assert b.pt.map_range(addr, pfns, b.kernel) == 0
    assert b.pt.warnings == []
    for i in range(0, len(pfns), max(1, len(pfns) // 50)):
        assert b.pt.translate(addr + i * ps + 123) == int(pfns[i]) * ps + 123
    assert np.array_equal(b.pt.lookup(addr, len(pfns)), pfns)
    entries = b.pt.lookup_entries(addr, len(pfns))
    assert np.array_equal(b.profile.pte.ptes_pfn(entries), pfns)
    steps = b.pt.walk(addr + (len(pfns) - 1) * ps)
    assert [s.level for s in steps] == [lv.name for lv in b.profile.levels]
    assert b.profile.pte.pte_pfn(steps[-1].entry) == pfns[-1]
    assert set(steps[-1].flags) == set(b.profile.pte.pte_flags(steps[-1].entry))
    # Neighbours stay unmapped.
    assert b.pt.translate(addr + len(pfns) * ps) is None
    assert b.pt.lookup(addr - ps, 1)[0] == -1 if addr > b.layout.vmalloc_start else True


@settings(max_examples=25, deadline=None)
@given(mappings(), st.integers(0, 1))
def test_unmap_stale_until_flush(m: tuple[Box, int, np.ndarray], cpu: int) -> None:
    b, addr, pfns = m
    ps = b.profile.page_size
    n = len(pfns)
    pfns = np.arange(n) + 10          # distinct frames, so each page holds its own bytes
    assert b.pt.map_range(addr, pfns, b.kernel) == 0
    b.mmu.current_cpu = cpu
    last = addr + (n - 1) * ps
    b.mmu.write(last, b"stale!")
    assert b.mmu.read(last, 6) == b"stale!"
    got = b.pt.unmap_range(addr, n * ps)
    assert np.array_equal(got, pfns)
    assert b.pt.translate(last) is None
    # No flush yet: this CPU still reaches the old frame through its TLB ...
    assert b.mmu.read(last, 6) == b"stale!"
    assert b.mmu.stale_entries()
    # ... the other CPU, whose TLB never held it, faults.
    b.mmu.current_cpu = 1 - cpu
    with pytest.raises(pv.PageFault, match="not present"):
        b.mmu.read(last, 1)
    b.mmu.current_cpu = cpu
    b.mmu.flush_tlb_kernel_range(addr, addr + n * ps)
    assert b.mmu.stale_entries() == []
    with pytest.raises(pv.PageFault) as fault:
        b.mmu.read(last, 6)
    assert fault.value.address == last and fault.value.access == "read"
    assert fault.value.reason == "not present (pte)"
    assert b.mmu.stats["flushes"] == 1


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_big_access_round_trip(name: str) -> None:
    b = box(name)
    ps = b.profile.page_size
    addr = b.layout.vmalloc_start + 3 * ps
    n = 300
    assert b.pt.map_range(addr, np.arange(1000, 1000 + n)[::-1].copy(), b.kernel) == 0
    data = np.random.default_rng(1).integers(0, 256, n * ps - 700, dtype=np.uint8).tobytes()
    b.mmu.write(addr + 333, data)
    assert b.mmu.read(addr + 333, len(data)) == data
    # The bytes went to the frames the ptes name, in address order.
    second_page = b.frames.read((1000 + n - 2) * ps, ps)
    assert second_page == data[ps - 333:2 * ps - 333]
    assert b.mmu.stats["walks"] == n   # one walk per page, then TLB hits


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_write_stops_at_the_guard_page(name: str) -> None:
    b = box(name)
    ps = b.profile.page_size
    addr = b.layout.vmalloc_start
    assert b.pt.map_range(addr, np.array([7, 8]), b.kernel) == 0
    with pytest.raises(pv.PageFault) as fault:
        b.mmu.write(addr + 2 * ps - 4, b"ABCDEFGH")
    assert fault.value.address == addr + 2 * ps and fault.value.access == "write"
    assert b.frames.read(8 * ps + ps - 4, 4) == b"ABCD"       # stores before the fault retired


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_protection_faults(name: str) -> None:
    b = box(name)
    p = b.profile
    ps = p.page_size
    base = b.layout.vmalloc_start
    assert b.pt.map_range(base, np.array([1]), p.pgprot("PAGE_KERNEL_RO")) == 0
    assert b.mmu.read(base, 2) == b"\0\0"
    with pytest.raises(pv.PageFault, match=r"write to read-only page, pte"):
        b.mmu.write(base, b"x")
    with pytest.raises(pv.PageFault, match="user access to kernel page"):
        b.mmu.read(base, 1, user=True)
    assert b.pt.map_range(base + ps, np.array([2]), p.pgprot("PAGE_KERNEL")) == 0
    b.mmu.write(base + ps, b"k")
    if p.has_nx:
        with pytest.raises(pv.PageFault, match="no-exec"):
            b.mmu.probe(base + ps, "exec")
    else:
        assert b.mmu.probe(base + ps, "exec") == 2 * ps
    # User pages in a user address space: read-only and read-write.
    user = p.task_size // 2 & ~(ps - 1)
    assert b.pt.map_range(user, np.array([3, 4]), p.pgprot("PAGE_READONLY")) == 0
    assert b.pt.map_range(user + 2 * ps, np.array([5]), p.pgprot("PAGE_SHARED")) == 0
    assert b.mmu.read(user, 1, user=True) == b"\0"
    with pytest.raises(pv.PageFault, match="write to read-only"):
        b.mmu.write(user, b"u", user=True)
    b.mmu.write(user + 2 * ps, b"ok", user=True)
    assert b.mmu.read(user + 2 * ps, 2) == b"ok"
    assert b.mmu.probe(user + 2 * ps + 5) == 5 * ps + 5


def test_x86_dirty_bit_set_by_the_walker() -> None:
    b = box("x86_64")
    p = b.profile
    user = 0x7F0000000000
    assert b.pt.map_range(user, np.array([9]), p.pgprot("PAGE_SHARED")) == 0
    assert "D" not in b.pt.walk(user)[-1].flags
    b.mmu.read(user, 1, user=True)
    walks = b.mmu.stats["walks"]
    b.mmu.write(user, b"d", user=True)       # a clean TLB entry: the store walks again
    assert b.mmu.stats["walks"] == walks + 1
    assert "D" in b.pt.walk(user)[-1].flags
    b.mmu.write(user, b"e", user=True)
    assert b.mmu.stats["walks"] == walks + 1


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_enomem_keeps_the_prefix(name: str) -> None:
    p = get_profile(name)
    # Enough frames for the top level and a few tables only.
    top = 4 if name == "arm" else 1
    b = box(name, table_frames=top + (2 if p.split_roots else 0) + len(p.levels) + 1)
    span = p.levels[-1].span * p.levels[-1].ptrs      # what one pte table covers
    addr = b.layout.vmalloc_start
    n = (64 * span) >> p.page_shift
    pfns = np.arange(n) % TABLE_BASE
    assert b.pt.map_range(addr, pfns, b.kernel) == -ENOMEM
    got = b.pt.lookup(addr, n)
    mapped = int(np.count_nonzero(got >= 0))
    assert 0 < mapped < n
    assert np.array_equal(got[:mapped], pfns[:mapped]) and (got[mapped:] == -1).all()


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_null_page_is_enomem(name: str) -> None:
    b = box(name)
    addr = b.layout.vmalloc_start
    assert b.pt.map_range(addr, np.array([5, 6, -1, 8]), b.kernel) == -ENOMEM
    assert b.pt.lookup(addr, 4).tolist() == [5, 6, -1, -1]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_remap_warns(name: str) -> None:
    b = box(name)
    addr = b.layout.vmalloc_start
    assert b.pt.map_range(addr, np.array([5, 6]), b.kernel) == 0
    assert b.pt.map_range(addr + b.profile.page_size, np.array([7, 8]), b.kernel) == 0
    assert len(b.pt.warnings) == 1 and "vmap_pte_range" in b.pt.warnings[0]
    assert b.pt.lookup(addr, 3).tolist() == [5, 7, 8]
    said: list[str] = []
    pt2 = PageTables(b.profile, b.frames, b.tables.alloc, warn=said.append)
    pt2.map_range(addr, np.array([1]), b.kernel)
    pt2.map_range(addr, np.array([1]), b.kernel)
    assert len(said) == 1


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_populate_range(name: str) -> None:
    b = box(name)
    p = b.profile
    addr = b.layout.vmalloc_start
    size = 3 * p.levels[-1].span * p.levels[-1].ptrs
    before = b.pt.nr_table_frames
    assert b.pt.populate_range(addr, size) == 0
    built = b.pt.nr_table_frames
    assert built > before
    assert (b.pt.lookup(addr, size >> p.page_shift) == -1).all()
    steps = b.pt.walk(addr + size - 1)
    assert len(steps) == len(p.levels) and steps[-1].entry == 0
    assert b.pt.map_range(addr, np.arange(size >> p.page_shift) % 100, b.kernel) == 0
    assert b.pt.nr_table_frames == built          # nothing more to allocate
    assert len(b.pt.table_pfns()) == built
    assert sum(b.pt.table_levels().values()) == built


def test_arm_two_tables_per_frame() -> None:
    b = box("arm")
    addr = b.layout.vmalloc_start              # 8 MiB aligned: an even section
    assert b.pt.map_range(addr, np.array([1]), b.kernel) == 0
    assert b.pt.map_range(addr + (1 << 20), np.array([2]), b.kernel) == 0
    first, second = b.pt.walk(addr), b.pt.walk(addr + (1 << 20))
    assert second[-1].table_phys == first[-1].table_phys + 1024   # same frame, upper 1 KiB
    assert second[0].index == first[0].index + 1
    assert b.pt.nr_table_frames == 4 + 1       # 16 KiB first level + one shared frame


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_huge_leaves(name: str) -> None:
    b = box(name)
    p = b.profile
    for level_name in p.huge_levels:
        lv = p.level(level_name)
        addr = -(-b.layout.vmalloc_start // lv.span) * lv.span + 2 * lv.span
        span_pages = lv.span >> p.page_shift
        pfn = 4 * span_pages
        assert b.pt.map_huge(addr, pfn, level_name, b.kernel) == 0
        steps = b.pt.walk(addr + lv.span - 1)
        assert steps[-1].level == level_name and len(steps) == p.level_index(level_name) + 1
        assert b.pt.translate(addr + 5 * p.page_size + 1) == (pfn + 5) * p.page_size + 1
        got = b.pt.lookup(addr + p.page_size, 3)
        assert got.tolist() == [pfn + 1, pfn + 2, pfn + 3]
        # A leaf larger than RAM reaches physical addresses with nothing behind them.
        in_ram = pfn + span_pages <= NR_FRAMES
        assert b.mmu.read(addr + 7, 1) == (b"\0" if in_ram else b"\xff")
        b.mmu.write(addr + 2 * p.page_size - 2, b"wxyz")
        assert b.mmu.read(addr + 2 * p.page_size - 2, 4) == (b"wxyz" if in_ram else b"\xff" * 4)
        assert b.pt.map_huge(addr, pfn, level_name, b.kernel) == -17
        with pytest.raises(pv.KernelBug):
            b.pt.map_range(addr, np.array([1]), b.kernel)
        freed = b.pt.unmap_range(addr, lv.span)
        assert len(freed) == span_pages and freed[0] == pfn
        assert b.pt.translate(addr) is None
    if not p.huge_levels:
        pytest.skip("no huge levels")


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_address_spaces_do_not_leak(name: str) -> None:
    b = box(name)
    p = b.profile
    ps = p.page_size
    user_mm = PageTables(p, b.frames, b.tables.alloc, b.tables.free, name="mm1")
    addr = 0x10000 * ps % p.task_size
    assert b.pt.map_range(addr, np.array([20]), p.pgprot("PAGE_SHARED")) == 0
    assert user_mm.map_range(addr, np.array([21]), p.pgprot("PAGE_SHARED")) == 0
    b.frames.write(20 * ps, b"init")
    b.frames.write(21 * ps, b"mm-1")
    assert b.mmu.read(addr, 4, user=True) == b"init"
    assert b.mmu.read(addr, 4, user=True, page_tables=user_mm) == b"mm-1"
    assert b.mmu.read(addr, 4, user=True) == b"init"
    assert len(b.mmu.tlbs[0]) == 2
    b.mmu.flush_tlb_mm(user_mm)
    assert len(b.mmu.tlbs[0]) == 1
    # The kernel half: shared after copy_kernel_entries, visible from the user mm.
    k = b.layout.vmalloc_start
    assert b.pt.map_range(k, np.array([22]), b.kernel) == 0
    user_mm.copy_kernel_entries(b.pt, b.layout.vmalloc_start, b.layout.vmalloc_end)
    assert user_mm.translate(k) == 22 * ps
    b.frames.write(22 * ps, b"kern")
    assert b.mmu.read(k, 4, page_tables=user_mm) == b"kern"
    before = b.tables.allocated
    user_mm.destroy()
    assert b.tables.allocated < before
    with pytest.raises(pv.KernelBug):
        user_mm.map_range(addr, np.array([1]), b.kernel)


@pytest.mark.parametrize("name", ["x86_64", "i386", "i386-pae", "arm"])
def test_copy_kernel_entries_conflict(name: str) -> None:
    b = box(name)
    p = b.profile
    other = PageTables(p, b.frames, b.tables.alloc)
    k = b.layout.vmalloc_start
    assert b.pt.map_range(k, np.array([1]), b.kernel) == 0
    assert other.map_range(k, np.array([2]), b.kernel) == 0
    with pytest.raises(pv.KernelBug, match="vmalloc_sync_all"):
        other.copy_kernel_entries(b.pt, k, k + p.page_size)


def test_flush_ceiling_x86() -> None:
    b = box("x86_64")
    ps = b.profile.page_size
    addr = b.layout.vmalloc_start
    assert b.pt.map_range(addr, np.arange(100), b.kernel) == 0
    b.mmu.read(addr, 100 * ps)
    assert len(b.mmu.tlbs[0]) == 100
    b.mmu.flush_tlb_kernel_range(addr, addr + 33 * ps)
    assert len(b.mmu.tlbs[0]) == 67 and b.mmu.stats["full_flushes"] == 0
    b.mmu.flush_tlb_kernel_range(addr + 50 * ps, addr + 84 * ps)     # 34 pages: everything
    assert len(b.mmu.tlbs[0]) == 0 and b.mmu.stats["full_flushes"] == 1
    assert b.mmu.stats["pages_flushed"] == 67


def test_tlb_lru() -> None:
    t = Tlb(capacity=4)
    for vpn in range(4):
        t.insert(1, vpn, TlbEntry(vpn, 0, 0, "pte"))
    assert t.lookup(1, 0) is not None          # refresh vpn 0
    t.insert(1, 9, TlbEntry(9, 0, 0, "pte"))
    assert (1, 1) not in t and (1, 0) in t and len(t) == 4
    assert t.invalidate_range(0, 100, asid=2) == 0
    assert t.invalidate_range(0, 100) == 4 and len(t) == 0
    with pytest.raises(pv.ConfigError):
        Tlb(0)


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_bad_arguments(name: str) -> None:
    b = box(name)
    p = b.profile
    addr = b.layout.vmalloc_start
    with pytest.raises(pv.ConfigError, match="page aligned"):
        b.pt.map_range(addr + 1, np.array([1]), b.kernel)
    with pytest.raises(pv.KernelBug):
        b.pt.map_range(addr, np.array([], dtype=np.int64), b.kernel)
    with pytest.raises(pv.ConfigError):
        b.pt.map_range(addr, np.array([1.5]), b.kernel)
    with pytest.raises(pv.ConfigError):
        b.pt.map_range(addr, np.array([p.pte.max_pfn]), b.kernel)
    with pytest.raises(pv.ConfigError):
        b.pt.map_range(addr, np.array([1]), b.kernel | (1 << p.page_shift))
    with pytest.raises(pv.ConfigError):
        b.pt.unmap_range(addr, 100)
    with pytest.raises(pv.ConfigError):
        b.pt.map_range((1 << 64) - p.page_size if p.bits == 32 else 1 << (p.va_bits + 1),
                       np.array([1]), b.kernel)
    with pytest.raises(pv.ConfigError):
        b.mmu.read(-1, 4)
    with pytest.raises(pv.ConfigError):
        b.mmu.write(addr, "text")  # type: ignore[arg-type]
    with pytest.raises(pv.ConfigError):
        b.mmu.current_cpu = 5
    with pytest.raises(pv.ConfigError):
        b.pt.map_huge(addr, 0, "pte", b.kernel)
    assert b.pt.translate(-5) is None
    assert b.pt.warnings == []
    with pytest.raises(pv.ConfigError):
        PageTables(p, b.frames, lambda order: None)


@pytest.mark.parametrize("name", ["x86_64", "arm"])
def test_lookup_of_nothing(name: str) -> None:
    b = box(name)
    assert len(b.pt.lookup(b.layout.vmalloc_start, 0)) == 0
    assert len(b.pt.lookup_entries(b.layout.vmalloc_start, 0)) == 0
    with pytest.raises(pv.ConfigError):
        b.pt.lookup(b.layout.vmalloc_start, -1)
    with pytest.raises(pv.KernelBug):
        b.pt.unmap_range(b.layout.vmalloc_start, 0)     # unmap_kernel_range: BUG_ON(addr >= end)
