"""check() at scale: one corrupted frame of a 64 GiB or 1 TiB machine is found and named.

check() reads a chunk whose metadata is all zero (every section untouched since boot) by a
count, and a chunk with few nonzero entries at those entries only (phys/memory.py); these
tests corrupt a random frame, in a section untouched since boot or in one the allocator has
written, and want the frame's pfn in the message.  Each example undoes its corruption and
(on 64 GiB) checks that the machine passes again, so no example sees another's.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.phys.memory import (
    OWNERS,
    PG_buddy,
    PG_pgtable,
    PG_reserved,
    PG_slab,
    PhysMem,
)

PAGE = 4096
_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _busy(ram: str) -> pv.Machine:
    """An x86_64 machine after some vmalloc/vfree activity: a few sections touched, most not."""
    m = pv.Machine(arch="x86_64", ram=ram)
    areas = [m.vmalloc(n * PAGE) for n in (1, 3, 17, 300, 5000, 70000, 2, 1025)]
    for a in areas[::2]:
        m.vfree(a)
    m.check()
    return m


@pytest.fixture(scope="module")
def m64() -> pv.Machine:
    return _busy("64G")


@pytest.fixture(scope="module")
def m1t() -> pv.Machine:
    return _busy("1T")


def _is_head(mem: PhysMem, pfn: int) -> bool:
    """Whether ``pfn`` heads a free block (asked of the free lists: no section is touched)."""
    return any(pfn in d for z in mem._zones for d in z.free_area)


def _corrupt(m: pv.Machine, kind: str, pfn: int, code: int, count: int, bit: int) -> Iterator[str]:
    """Apply corruption ``kind`` to frame ``pfn``, yield the regex check() must match, undo it.

    Written into the arrays themselves, as a stray store would: ``_flags`` directly, so that a
    section untouched since boot stays untouched (the public ``flags`` fills every section)."""
    mem = m.phys
    free = int(mem.owner[pfn]) == 0
    if kind == "owner":
        old = int(mem.owner[pfn])
        new = code if free else 0
        assume(new != old)
        mem.owner[pfn] = new
        state = "in a free block" if free else "in no free block"
        try:
            yield rf"pfn {pfn:#x} is {state} but its owner is {OWNERS[new]}$"
        finally:
            mem.owner[pfn] = old
    elif kind == "refcount":
        assume(free)
        mem.refcount[pfn] = count
        try:
            yield rf"free pfn {pfn:#x} has page_count {count}$"
        finally:
            mem.refcount[pfn] = 0
    elif kind == "flag":
        mem._flags[pfn] ^= bit
        try:
            yield rf"pfn {pfn:#x} has flags .* but owner {OWNERS[int(mem.owner[pfn])]}$"
        finally:
            mem._flags[pfn] ^= bit
    elif kind == "buddy":
        old = int(mem._flags[pfn])
        assume(not _is_head(mem, pfn) and not old & PG_buddy)
        mem._flags[pfn] = old | PG_buddy
        try:
            yield rf"pfn {pfn:#x} has PG_buddy but heads no free block$"
        finally:
            mem._flags[pfn] = old
    else:  # "lost": the free block holding pfn leaves its list (counter kept in step)
        zone = next(z for z in mem._zones if z.start <= pfn < z.end)
        found = [(head, k) for k, d in enumerate(zone.free_area)
                 for head in [pfn >> k << k] if head in d]
        assume(found)
        head, k = found[0]
        del zone.free_area[k][head]
        zone.nr_free -= 1 << k
        try:
            yield rf"pfn {head:#x} is in no free block but its owner is free$"
        finally:
            zone.free_area[k][head] = None
            zone.nr_free += 1 << k


_KINDS = st.sampled_from(["owner", "refcount", "flag", "buddy", "lost"])
_CODES = st.integers(1, len(OWNERS) - 1)
_COUNTS = st.integers(1, 3)
_BITS = st.sampled_from([PG_slab, PG_pgtable, PG_reserved])


def _assert_named(m: pv.Machine, kind: str, pfn: int, code: int, count: int, bit: int) -> None:
    gen = _corrupt(m, kind, pfn, code, count, bit)
    pattern = next(gen)
    try:
        with pytest.raises(pv.Inconsistency, match=r"^page allocator: .*" + pattern):
            m.check()
    finally:
        gen.close()


@settings(max_examples=12, **_SETTINGS)  # type: ignore[arg-type]
@given(kind=_KINDS, where=st.floats(0, 1, exclude_max=True), code=_CODES, count=_COUNTS, bit=_BITS)
def test_random_frame_of_64_gib_is_named(m64: pv.Machine, kind: str, where: float, code: int,
                                         count: int, bit: int) -> None:
    pfn = int(where * m64.phys.nr_frames)
    _assert_named(m64, kind, pfn, code, count, bit)
    m64.check()  # the corruption is undone: nothing else was reported


@settings(max_examples=12, **_SETTINGS)  # type: ignore[arg-type]
@given(kind=_KINDS, pick=st.integers(0, 1 << 30), step=st.integers(-2, 2), code=_CODES,
       count=_COUNTS, bit=_BITS)
def test_frame_of_a_touched_section_is_named(m64: pv.Machine, kind: str, pick: int, step: int,
                                             code: int, count: int, bit: int) -> None:
    # A page of a live area or a frame next to one: sections the allocator wrote, checked in full.
    pages = np.concatenate([a.pages[:a.nr_pages] for a in m64.areas() if a.nr_pages])
    pfn = int(pages[pick % len(pages)]) + step
    _assert_named(m64, kind, pfn, code, count, bit)
    m64.check()


@settings(max_examples=6, **_SETTINGS)  # type: ignore[arg-type]
@given(kind=_KINDS, where=st.floats(0, 1, exclude_max=True), code=_CODES, count=_COUNTS, bit=_BITS)
def test_random_frame_of_1_tib_is_named(m1t: pv.Machine, kind: str, where: float, code: int,
                                        count: int, bit: int) -> None:
    _assert_named(m1t, kind, int(where * m1t.phys.nr_frames), code, count, bit)


def test_1_tib_untouched_check_leaves_sections_pending(m1t: pv.Machine) -> None:
    """check() reads the boot heads of untouched sections through the boot description: it
    writes none of them (a 1 TiB machine's metadata stays unwritten)."""
    mem = m1t.phys
    before = int(np.count_nonzero(mem._pending))
    m1t.check()
    assert before > 7000 and int(np.count_nonzero(mem._pending)) == before


def test_dense_chunk_is_checked_frame_by_frame() -> None:
    """A chunk with many used frames (more than one in 16) takes the frame-by-frame pass:
    a fault in it is named as in a sparse one."""
    mem = PhysMem(PAGE, [("NORMAL", 0, 1 << 16)])
    pfns = mem.alloc_pages_bulk(0, 1 << 14, owner="vmalloc")
    mem.check()
    free = int(np.setdiff1d(np.arange(1 << 16), pfns)[12345])
    mem.owner[free] = OWNERS.index("slab")
    with pytest.raises(pv.Inconsistency, match=rf"pfn {free:#x} is in a free block but its owner is slab"):
        mem.check()
    mem.owner[free] = 0
    mem.refcount[free] = 2
    with pytest.raises(pv.Inconsistency, match=rf"free pfn {free:#x} has page_count 2"):
        mem.check()
    mem.refcount[free] = 0
    used = int(pfns[777])
    mem._flags[used] = PG_slab
    with pytest.raises(pv.Inconsistency, match=rf"pfn {used:#x} has flags PG_slab but owner vmalloc"):
        mem.check()
    mem._flags[used] = 0
    mem.owner[used] = 0
    with pytest.raises(pv.Inconsistency, match=rf"pfn {used:#x} is in no free block but its owner is free"):
        mem.check()
    mem.owner[used] = OWNERS.index("vmalloc")
    mem.check()


@pytest.mark.parametrize("array", ["owner", "flags"])
def test_hole_frame_is_named(array: str) -> None:
    """Frames between two zones belong to none: an owner or a flag there is reported."""
    mem = PhysMem(PAGE, [("DMA32", 0, 1 << 20), ("NORMAL", 3 << 20, 4 << 20)])
    mem.check()
    pfn = (2 << 20) + 4321
    if array == "owner":
        mem.owner[pfn] = OWNERS.index("other")
    else:
        mem._flags[pfn] = PG_reserved
    with pytest.raises(pv.Inconsistency, match=rf"pfn {pfn:#x} lies in a hole"):
        mem.check()
