"""vread/vwrite under hostile input: aliases, holes inside areas, reads "to the end", vread_into,
and the check() invariants that the reported bugs slipped past.

The reference for every copy is the kernel's memcpy: byte range by byte range through the
mappings in address order, so a page mapped twice receives each range in turn.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.phys import gfp as G
from pyvmalloc.versions import CHANGES

PAGE = 4096


def machine(kernel: str = "6.1", **kw: object) -> pv.Machine:
    kw.setdefault("arch", "x86_64")
    kw.setdefault("ram", "64M")
    return pv.Machine(kernel=kernel, **kw)  # type: ignore[arg-type]


def pattern(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def pages_with(m: pv.Machine, n: int, seed: int = 0) -> list[pv.Page]:
    """``n`` fresh pages, each filled with its own pattern."""
    out = []
    for i in range(n):
        p = m.alloc_page()
        assert p is not None
        m.phys.frames.write(p.phys_addr, pattern(seed + i, PAGE))
        out.append(p)
    return out


def frame(m: pv.Machine, pfn: int) -> bytes:
    return m.phys.frames.read(pfn * PAGE, PAGE)


def memcpy_through(contents: dict[int, bytearray], mapping: list[tuple[int, list[int]]],
                   addr: int, data: bytes) -> None:
    """The reference vwrite: ``data`` stored at ``addr`` page range by page range, in address
    order, through ``mapping`` ((area address, pfns) pairs); unmapped bytes are skipped."""
    where = {base + i * PAGE: pfn for base, pfns in mapping for i, pfn in enumerate(pfns)}
    pos = 0
    while pos < len(data):
        va = addr + pos
        page, off = va - va % PAGE, va % PAGE
        take = min(len(data) - pos, PAGE - off)
        if page in where:
            contents[where[page]][off:off + take] = data[pos:pos + take]
        pos += take


# ---- aliases -----------------------------------------------------------------------------------
def test_vwrite_through_a_vmap_of_the_same_page_twice_keeps_both_ranges() -> None:
    m = machine()
    (p,) = pages_with(m, 1)
    a = m.vmap([p, p], 2)
    assert a is not None
    data = pattern(7, PAGE - 100 + 50)
    assert m.vwrite(a + 100, data) == len(data)
    # First [100, PAGE) through the first mapping, then [0, 50) through the second.
    want = bytearray(pattern(0, PAGE))
    want[100:] = data[:PAGE - 100]
    want[:50] = data[PAGE - 100:]
    assert frame(m, p.pfn) == bytes(want)
    assert m.vread(a, 2 * PAGE) == bytes(want) * 2 == m.read(a, 2 * PAGE)
    m.check()


def test_vwrite_overlapping_ranges_of_an_alias_the_later_address_wins() -> None:
    m = machine()
    (p,) = pages_with(m, 1)
    a = m.vmap([p, p, p], 3)
    assert a is not None
    data = pattern(3, 2 * PAGE + 10)
    m.vwrite(a + 5, data)
    want = bytearray(pattern(0, PAGE))
    memcpy_through({p.pfn: want}, [(a, [p.pfn] * 3)], a + 5, data)
    assert frame(m, p.pfn) == bytes(want)
    assert m.vread(a, 3 * PAGE) == bytes(want) * 3


def test_vwrite_across_two_vmaps_of_the_same_page() -> None:
    m = machine()
    p, q = pages_with(m, 2)
    a = m.vmap([p, q], 2)
    b = m.vmap([q, p], 2)
    assert a is not None and b is not None and b == a + 3 * PAGE  # guard page between them
    data = pattern(11, b + PAGE + 300 - (a + 1000))
    assert m.vwrite(a + 1000, data) == len(data)
    contents = {p.pfn: bytearray(pattern(0, PAGE)), q.pfn: bytearray(pattern(1, PAGE))}
    memcpy_through(contents, [(a, [p.pfn, q.pfn]), (b, [q.pfn, p.pfn])], a + 1000, data)
    assert frame(m, p.pfn) == bytes(contents[p.pfn]) and frame(m, q.pfn) == bytes(contents[q.pfn])
    got = m.vread(a, b + 2 * PAGE - a)
    assert got == m.read(a, 2 * PAGE) + bytes(PAGE) + m.read(b, 2 * PAGE)
    m.check()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=1, max_size=6), st.lists(st.integers(0, 2), min_size=1, max_size=4),
       st.integers(0, 13 * PAGE), st.integers(0, 13 * PAGE), st.integers(0, 2**32),
       st.integers(0, 13 * PAGE), st.integers(0, 13 * PAGE), st.sampled_from(["6.1", "2.6.22"]))
def test_vwrite_and_vread_equal_a_byte_range_memcpy_through_the_mappings(
        pick_a: list[int], pick_b: list[int], off: int, n: int, seed: int,
        roff: int, rn: int, kernel: str) -> None:
    m = machine(kernel)
    pool = pages_with(m, 3, seed=100)
    a = m.vmap([pool[i] for i in pick_a], len(pick_a))
    b = m.vmap([pool[i] for i in pick_b], len(pick_b))
    assert a is not None and b is not None
    mapping = [(a, [pool[i].pfn for i in pick_a]), (b, [pool[i].pfn for i in pick_b])]
    end = max(x + len(p) * PAGE for x, p in mapping)
    start = min(a, b)
    addr = start + off
    data = pattern(seed, n)
    contents = {p.pfn: bytearray(frame(m, p.pfn)) for p in pool}
    wrote = m.vwrite(addr, data)
    memcpy_through(contents, mapping, addr, data[:max(0, min(n, end - addr))])
    for p in pool:
        assert frame(m, p.pfn) == bytes(contents[p.pfn])
    if kernel == "2.6.22":
        assert wrote == max(0, min(n, end - addr))
    else:
        assert wrote == (n if addr < end else 0)
    # vread: the CPU's view through the MMU where mapped, zeros elsewhere, up to the last area.
    raddr = start + roff
    got = m.vread(raddr, rn)
    assert len(got) == max(0, min(rn, end - raddr))
    want = b"".join(m.read(raddr + i, 1) if m.translate(raddr + i) is not None else b"\0"
                    for i in range(0, len(got)))
    assert got == want
    m.check()


# ---- holes inside areas ------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [pv.VM_IOREMAP, pv.VM_ALLOC])
def test_a_reserved_area_reads_as_zeros_and_is_not_written(flags: int) -> None:
    m = machine()
    before = m.vmalloc(PAGE)
    area = m.get_vm_area(4 * PAGE, flags)
    after = m.vmalloc(PAGE)
    assert before is not None and area is not None and after is not None
    m.vwrite(before, b"\x11" * PAGE)
    m.vwrite(after, b"\x22" * PAGE)
    span = after + PAGE - before
    data = b"\x33" * span
    assert m.vwrite(before, data) == span  # the reserved area's bytes are consumed, not written
    got = m.vread(before, span)
    assert got[:PAGE] == b"\x33" * PAGE and got[-PAGE:] == b"\x33" * PAGE
    assert got[PAGE:-PAGE] == bytes(span - 2 * PAGE)
    assert all(m.translate(area.addr + i * PAGE) is None for i in range(4))
    m.free_vm_area(area)
    m.check()


def test_2_6_22_faults_on_an_unmapped_page_of_an_area_as_its_vread_did() -> None:
    m = machine("2.6.22")
    area = m.get_vm_area(2 * PAGE, pv.VM_IOREMAP)
    assert area is not None
    with pytest.raises(pv.PageFault):
        m.vread(area.addr, PAGE)
    with pytest.raises(pv.PageFault):
        m.vwrite(area.addr, b"x")


def test_ioremap_areas_read_as_zeros_from_2_6_32_but_through_in_2_6_22() -> None:
    assert CHANGES["vread_holes"].since == "2.6.32"
    for kernel, readable in (("2.6.22", True), ("2.6.32", False), ("6.1", False)):
        m = machine(kernel)
        (p,) = pages_with(m, 1, seed=5)
        area = m.get_vm_area(PAGE, pv.VM_IOREMAP)
        assert area is not None and m.map_vm_area(area, None, [p]) == 0
        want = pattern(5, PAGE) if readable else bytes(PAGE)
        assert m.vread(area.addr, PAGE) == want, kernel
        assert m.vwrite(area.addr, b"\xee" * PAGE) == PAGE
        assert frame(m, p.pfn) == (b"\xee" * PAGE if readable else pattern(5, PAGE)), kernel


def test_a_half_built_vmalloc_reads_what_is_mapped_and_zeros_for_the_rest() -> None:
    m = machine()
    # Another thread's vmalloc: the area is on the list, two of its four pages are mapped.
    area = m.get_vm_area(4 * PAGE, pv.VM_ALLOC)
    assert area is not None
    pages = pages_with(m, 2, seed=20)
    assert m.map_vm_area(area, None, [pages[0], pages[1], None, None]) == -12  # -ENOMEM: NULL page
    got = m.vread(area.addr, 4 * PAGE)
    assert got == pattern(20, PAGE) + pattern(21, PAGE) + bytes(2 * PAGE)
    assert m.vwrite(area.addr + PAGE + 10, b"\x77" * 2 * PAGE) == 2 * PAGE
    assert frame(m, pages[1].pfn) == pattern(21, PAGE)[:10] + b"\x77" * (PAGE - 10)
    assert m.vread(area.addr + 2 * PAGE, 2 * PAGE) == bytes(2 * PAGE)
    m.unmap_kernel_range(area.addr, area.size)
    m.free_vm_area(area)
    for p in pages:
        m.free_page(p)
    m.check()


# ---- reading to the end ------------------------------------------------------------------------
def test_i386_vread_to_the_end_returns_up_to_the_last_area_without_allocating_gib() -> None:
    m = machine(arch="i386")
    a = m.vmalloc(3 * PAGE)
    assert a is not None
    m.vwrite(a, b"\x5a" * 3 * PAGE)
    tracemalloc.start()
    try:
        got = m.vread(a, (1 << 32) - a)  # "to the end" of the 32-bit address space
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == b"\x5a" * 3 * PAGE
    assert peak < 4 << 20


def test_x86_64_vread_far_beyond_host_memory_is_one_clear_error() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    mod = m.module_alloc(PAGE)  # the module area lies tens of TiB above the vmalloc area
    assert a is not None and mod is not None and mod - a > 1 << 40
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="vread_into"):
            m.vread(a, 2**62)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20
    # Past the last area there is nothing to read: clipped to nothing, not an error.
    assert m.vread(mod + PAGE, 2**62) == b""
    # Small reads still work, and vread_into reads any span into a buffer of the caller's.
    buf = bytearray(2 * PAGE)
    assert m.vread_into(a, buf) == 2 * PAGE and not any(buf)


# ---- vread_into --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "numpy"])
def test_vread_into_fills_the_callers_buffer(kind: str) -> None:
    m = machine()
    a = m.vmalloc(2 * PAGE)
    assert a is not None
    data = pattern(9, 2 * PAGE)
    m.vwrite(a, data)
    raw = bytearray(b"\xff" * 5 * PAGE)
    buf = {"bytearray": raw, "memoryview": memoryview(raw),
           "numpy": np.frombuffer(raw, dtype=np.uint8)}[kind]
    # 6.1 (2.6.32+): the rest of the buffer is zero-filled and the count is the buffer's length.
    assert m.vread_into(a + 100, buf) == 5 * PAGE
    assert bytes(raw) == data[100:] + bytes(3 * PAGE + 100)
    assert bytes(raw[:2 * PAGE - 100]) == m.vread(a + 100, 5 * PAGE)


def test_vread_into_counts_per_kernel() -> None:
    old, new = machine("2.6.22"), machine("6.1")
    for m in (old, new):
        a = m.vmalloc(PAGE)
        assert a is not None
        m.vwrite(a, b"\x42" * PAGE)
        buf = bytearray(b"\xff" * 3 * PAGE)
        n = m.vread_into(a, buf)
        if m is old:  # the seed: what was copied; the rest of the buffer untouched
            assert n == PAGE and bytes(buf) == b"\x42" * PAGE + b"\xff" * 2 * PAGE
        else:
            assert n == 3 * PAGE and bytes(buf) == b"\x42" * PAGE + bytes(2 * PAGE)
        # Above the last area nothing is read: 0 in both.
        assert m.vread_into(a + 2 * PAGE, bytearray(PAGE)) == 0
        assert m.vwrite(a + 2 * PAGE, b"zz") == 0


def test_vread_into_rejects_a_read_only_buffer() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    assert a is not None
    with pytest.raises(TypeError, match="read-only"):
        m.vread_into(a, bytes(PAGE))
    with pytest.raises(TypeError, match="buffer"):
        m.vread_into(a, [0] * PAGE)


def test_a_large_vwrite_and_vread_round_trip_over_scattered_frames() -> None:
    m = machine(ram="128M")
    # Interleave allocations so the area's pages are not one run of frames.
    keep = [m.alloc_page() for _ in range(64)]
    for p in keep[::2]:
        assert p is not None
        m.free_page(p)
    a = m.vmalloc(8 << 20)
    assert a is not None
    data = pattern(1, 8 << 20)
    assert m.vwrite(a + 1, data[: (8 << 20) - 1]) == (8 << 20) - 1
    assert m.vread(a + 1, (8 << 20) - 1) == data[: (8 << 20) - 1] == m.read(a + 1, (8 << 20) - 1)


# ---- check() -----------------------------------------------------------------------------------
def test_check_names_a_leaked_kmalloc_object() -> None:
    m = machine()
    a = m.vmalloc(3 * PAGE)
    assert a is not None
    m.check()
    leaked = m.vm.kmalloc(48, G.GFP_KERNEL, -1)
    assert leaked
    with pytest.raises(pv.Inconsistency, match=f"kmalloc object {leaked:#x}.*leak"):
        m.check()
    m.vm.kfree(leaked)
    m.check()


def test_check_rejects_a_caller_that_is_not_a_str() -> None:
    m = machine()
    a = m.vmalloc(PAGE)
    area = m.find_vm_area(a) if a is not None else None
    assert area is not None
    area.caller = 42  # type: ignore[assignment]
    with pytest.raises(pv.Inconsistency, match="caller 42"):
        m.check()
