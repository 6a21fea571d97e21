"""The bulk snapshot replay (``snapshot/restore.py`` ``_replay_bulk``) gives the machine the
line-by-line replay gives: same areas, frames, kmalloc objects, free lists, page tables, trees,
counters, ``check()`` and later allocations -- on random dumps and on the real ones.

Also the pieces on their own: ``KvaRbtreeAllocator.insert_sorted`` against ``insert`` one by
one (the kernel's tree, node for node), ``Kmalloc.kmalloc_run`` against ``kmalloc``, and the
parser's fast path against ``_parse_line``.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.formats import vmallocinfo as vmi
from pyvmalloc.formats.dumps import read_dump
from pyvmalloc.phys import gfp as G
from pyvmalloc.phys.memory import PG_buddy
from pyvmalloc.snapshot import restore
from pyvmalloc.vmalloc.allocator import make_allocator
from pyvmalloc.vmalloc.kva_rbtree import KvaRbtreeAllocator
from pyvmalloc.vmalloc.list_allocator import space_bounds

HERE = Path(__file__).parent
_SHARED = HERE.parent.parent / "shared" / "data" / "vmallocinfo"  # the team's copy, if any
DUMPS = sorted({p.name: p for p in [*sorted(_SHARED.glob("*.txt")),
                                    *sorted((HERE / "data" / "vmallocinfo").glob("*.txt"))]}.values())
EXAMPLES = HERE.parent / "examples" / "vmallocinfo"
PAGE = 4096
BASE = 0xFFFFC90000000000


# ---- the machine's whole state ------------------------------------------------------------------
def _h(data: Any) -> str:
    return hashlib.sha256(repr(data).encode()).hexdigest()


def _arr(a: Any) -> Any:
    return None if a is None else np.asarray(a).tolist()


def fingerprint(m: pv.Machine) -> dict[str, Any]:
    """Everything a restored machine holds that the replay could have made differently."""
    out: dict[str, Any] = {}
    areas = []
    for start, size, va in m.vmap_allocator.for_each_busy(0):
        vm = getattr(va, "vm", None)
        row: list[Any] = [start, size, type(va).__name__, getattr(va, "flags", None)]
        if vm is not None:
            row += [type(vm).__name__, vm.addr, vm.size, vm.flags, vm.caller, _arr(vm.pages),
                    vm.nr_pages, vm.phys_addr, vm.pages_array, vm.handle, _arr(vm.mapped),
                    vm.mapped is vm.pages, vm.page_order, vm.requested_size,
                    getattr(vm, "extra_words", None), getattr(vm, "static", None),
                    getattr(vm, "lineno", None), getattr(vm, "snapshot_pages", None)]
        areas.append(row)
    out["areas"] = _h(areas)
    out["nareas"] = len(areas)
    out["free"] = list(m.vmap_allocator.for_each_free(0, 1 << 64))
    shape = getattr(m.vmap_allocator, "shape", None)
    out["shape"] = _h(shape()) if shape is not None else None
    phys = m.phys
    # A frame's order means something only while it heads a free block (PG_buddy): the loop
    # of single allocations leaves stale orders on the frames it hands out, a bulk take none.
    order = np.where(phys._flags & PG_buddy, phys._order, 0)
    out["phys.arrays"] = _h([phys.owner.tobytes(), phys.refcount.tobytes(),
                             phys._flags.tobytes(), order.tobytes()])
    out["phys.free_lists"] = _h([[list(d.keys()) for d in z.free_area] for z in phys._zones])
    out["phys.nr_free"] = [z.nr_free for z in phys._zones]
    out["phys.stats"] = vars(phys.statistics())
    frames = phys.frames
    out["frames"] = _h(sorted((k, hashlib.sha256(c.tobytes()).hexdigest())
                              for k, c in frames._chunks.items()))
    slab = m.vm.slab
    out["slab"] = _h([
        sorted((pfn, s.size, s.key, list(s.free), list(s.used.items()))
               for pfn, s in slab._slabs.items()),
        [(k, list(v.keys())) for k, v in slab._partial.items()],
        [(k, list(v.keys())) for k, v in slab._empty.items()],
        list(slab._large.items()), list(slab._pinned),
        slab._objects, slab._requested, slab._allocated, slab._pages, slab._failures,
        slab._injected])
    pt = m.init_mm
    out["pagetables"] = _h([list(pt._tables.items()), pt.ptes_touched, list(pt.warnings)])
    out["extra_vm_ranges"] = list(m.extra_vm_ranges)
    out["dmesg"] = m.dmesg()
    stats = m.stats()
    stats.pop("vmlist_lock.write")  # the bulk replay takes the lock once, not once per line
    out["stats"] = stats
    out["lazy"] = [(va.va_start, va.va_end, va.flags) for va in m.vm.purge_list]
    out["vmallocinfo"] = m.vmallocinfo()
    out["meminfo"] = m.meminfo()
    return out


def _report(r: restore.ReplayReport) -> tuple[Any, ...]:
    return (r.placed, r.relocated, r.dropped, r.unplaced, r.without_pages, r.pages, r.fixed,
            r.arrays_linked)


def _restore(text: str, bulk: bool, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> Any:
    with monkeypatch.context() as mp:
        if not bulk:
            mp.setattr(restore, "_bulk_ok", lambda m, order: False)
        try:
            return pv.Machine.from_snapshot(text, **kw), None
        except Exception as e:
            return None, (type(e).__name__, str(e))


def _check(m: pv.Machine) -> str | None:
    """check()'s verdict (a random dump may hold areas check() refuses, on either path)."""
    try:
        m.check()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


def _after(m: pv.Machine) -> list[Any]:
    """What later calls give on the restored machine: allocations land at the same place."""
    got: list[Any] = []
    for size in (PAGE, 3 * PAGE, 64 * PAGE, 5 * PAGE):
        addr = m.vmalloc(size)
        got.append(addr)
        if addr:
            area = m.find_vm_area(addr)
            got.append(None if area is None else _arr(area.pages))
    first = next(iter(m.areas()), None)
    if first is not None and not getattr(first, "static", False):
        m.vfree(first.addr)
    got.append(m.vmalloc(2 * PAGE))
    got.append(_check(m))
    got.append(_h(fingerprint(m)))
    return got


def assert_same(text: str, monkeypatch: pytest.MonkeyPatch, expect_bulk: bool | None = None,
                **kw: Any) -> None:
    calls: list[bool] = []
    real = restore._bulk_ok

    def spy(m: Any, order: Any) -> bool:
        ok = real(m, order)
        calls.append(ok)
        return ok

    with monkeypatch.context() as mp:
        mp.setattr(restore, "_bulk_ok", spy)
        fast, fast_err = _restore(text, True, monkeypatch, **kw)
    slow, slow_err = _restore(text, False, monkeypatch, **kw)
    assert fast_err == slow_err
    if slow is None:
        return
    if expect_bulk is not None:
        assert calls == [expect_bulk]
    assert _report(fast.snapshot_report) == _report(slow.snapshot_report)
    a, b = fingerprint(fast), fingerprint(slow)
    for key in b:
        assert a[key] == b[key], key
    assert _check(fast) == _check(slow)
    assert _after(fast) == _after(slow)


# ---- random dumps -----------------------------------------------------------------------------
WORDS = ["vmalloc", "vmalloc", "vmalloc", "vmap", "ioremap", "user", "vmalloc vpages",
         "vm_map_ram", "unpurged vm_area", "dma-coherent", "lowmem"]


@st.composite
def dumps(draw: Any) -> str:
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    addr = BASE + rng.randrange(0, 1 << 12) * PAGE
    lines = []
    for _ in range(n):
        pages = rng.choice([0, 1, 1, 2, 3, 4, 7, 8, 16, 100, 513, 600])
        size = (max(pages, 1) + rng.choice([0, 1, 1, 1, 3])) * PAGE
        word = rng.choice(WORDS)
        caller = rng.choice(["a_fn+0x1/0x10", "b_fn+0x22/0x40 [mod]", "c_fn+0x0/0x8", ""])
        parts = [f"0x{addr:016x}-0x{addr + size:016x} {size:7d}"]
        if word not in ("vm_map_ram", "unpurged vm_area") and caller:
            parts.append(caller)
        if word not in ("vm_map_ram", "unpurged vm_area") and pages:
            parts.append(f"pages={pages}")
        if word == "ioremap" and rng.random() < 0.5:
            parts.append(f"phys=0x{rng.randrange(1 << 20) * PAGE:x}")
        parts.append(word)
        if word not in ("vm_map_ram", "unpurged vm_area") and pages and rng.random() < 0.7:
            if rng.random() < 0.2 and pages > 1:
                parts.append(f"N0={pages // 2} N1={pages - pages // 2}")
            else:
                parts.append(f"N0={pages}")
        lines.append(" ".join(parts))
        addr += size + rng.choice([0, 0, 0, PAGE, 5 * PAGE, 1 << 21, 1 << 30])
    rng.shuffle(lines) if rng.random() < 0.2 else None
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dumps(), st.sampled_from(["6.1", "6.12", "5.10", "4.19", "2.6.28", "2.6.22"]),
       st.sampled_from(["64M", "256M"]), st.sampled_from([None, "kva", "rbtree", "list"]))
def test_bulk_replay_gives_the_line_by_line_machine(text: str, kernel: str, ram: str,
                                                    allocator: str | None) -> None:
    kw: dict[str, Any] = {} if allocator is None else {"allocator": allocator}
    with pytest.MonkeyPatch.context() as mp:
        assert_same(text, mp, arch="x86_64", kernel=kernel, ram=ram, **kw)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dumps())
def test_bulk_replay_with_two_nodes(text: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        assert_same(text, mp, arch="x86_64", kernel="6.1", ram="512M", nodes=2)


# (arch, RAM, the first vmalloc address, the module area's start)
ARCHES = [("x86_64", "256M", 0xFFFFC90000000000, 0xFFFFFFFFA0000000),
          ("i386", "1G", 0xF8000000, None),        # highmem: frames and slabs from two zones
          ("arm", "768M", 0xF0800000, 0xBF000000),
          ("arm64", "256M", 0xFFFF800008000000, None)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ARCHES), st.integers(0, 2**32 - 1), st.integers(1, 40),
       st.sampled_from(["6.1", "4.19"]))
def test_bulk_replay_on_every_arch(arch: tuple[str, str, int, int | None], seed: int, n: int,
                                   kernel: str) -> None:
    name, ram, base, modules = arch
    rng = random.Random(seed)
    lines = []
    for region in ([base] if modules is None else [modules, base]):
        addr = region + rng.randrange(16) * PAGE
        for _ in range(n):
            pages = rng.choice([1, 1, 2, 3, 5, 8, 40, 300])
            size = (pages + 1) * PAGE
            word = rng.choice(["vmalloc", "vmalloc", "vmap", "ioremap", "vmalloc vpages"])
            lines.append(f"0x{addr:x}-0x{addr + size:x} {size:7d} f_{rng.randrange(3)}+0x1/0x9 "
                         f"pages={pages} {word}")
            addr += size + rng.choice([0, 0, PAGE, 1 << 20])
    with pytest.MonkeyPatch.context() as mp:
        assert_same("\n".join(lines) + "\n", mp, arch=name, kernel=kernel, ram=ram)


def test_the_benchmark_dump_takes_the_bulk_path(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(3)
    addr = BASE
    out = []
    for _ in range(3000):
        pages = rng.randint(1, 8)
        size = (pages + 1) * PAGE
        out.append(f"0x{addr:x}-0x{addr + size:x} {size:7d} bench_alloc+0x1/0x10 pages={pages} "
                   f"vmalloc N0={pages}")
        addr += size + (PAGE if rng.random() < 0.3 else 0)
    assert_same("\n".join(out) + "\n", monkeypatch, expect_bulk=True, arch="x86_64",
                kernel="6.1", ram="1G")


def test_a_vmap_line_with_pages_is_not_leaked_in_bulk(monkeypatch: pytest.MonkeyPatch) -> None:
    text = ("0xffffc90000000000-0xffffc90000005000   20480 irq_init_percpu_irqstack+0xf0/0x120 vmap\n"
            "0xffffc90000010000-0xffffc90000013000   12288 i915_gem_object_map_page+0x1d2/0x2c0 pages=2 vmap\n")
    assert_same(text, monkeypatch, expect_bulk=True, arch="x86_64", kernel="6.1", ram="256M")
    m = pv.Machine.from_snapshot(text, arch="x86_64", kernel="6.1", ram="256M")
    m.check()
    area = m.find_vm_area(0xFFFFC90000010000)
    assert area is not None and area.nr_pages == 2
    assert int(m.phys.owner[int(area.pages[0])]) == int(m.phys.owner[int(area.pages[1])])


@pytest.mark.parametrize("kernel", [None, "2.6.28", "4.19"])
@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_real_dumps_restore_the_same(path: Path, kernel: str | None,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text(errors="replace")
    assert_same(text, monkeypatch, expect_bulk=None if "hashed" in path.name else True,
                source=str(path), kernel=kernel)
    mi = EXAMPLES / path.with_suffix(".meminfo").name
    if mi.exists() and kernel is None:
        assert_same(text, monkeypatch, source=str(path), meminfo_text=mi.read_text())


@pytest.mark.parametrize("path", sorted((HERE / "data" / "dumps").glob("*.txt")),
                         ids=lambda p: p.name)
def test_other_dump_formats_restore_the_same(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        snap, _fmt = read_dump(path.read_text(errors="replace"), str(path))
    except vmi.FormatError:
        pytest.skip("not a dump read_dump reads")
    assert_same(snap, monkeypatch, arch=None if not snap.lines or snap.lines[0].start >> 32
                else "arm")


# ---- the pieces -------------------------------------------------------------------------------
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(1, 6)), min_size=1, max_size=300),
       st.integers(0, 1 << 20))
def test_insert_sorted_builds_the_kernels_tree(runs: list[tuple[int, int]], base: int) -> None:
    low, _high = space_bounds(PAGE)
    one, bulk = KvaRbtreeAllocator(PAGE), KvaRbtreeAllocator(PAGE)
    addr = low + base * PAGE
    items = []
    for gap, pages in runs:
        addr += gap * PAGE
        items.append((addr, pages * PAGE, object()))
        addr += pages * PAGE
    for a, s, o in items:
        assert one.insert(a, s, o)
    assert bulk.insert_sorted(items) == len(items)
    assert one.shape() == bulk.shape()
    assert list(one.for_each_busy(0)) == list(bulk.for_each_busy(0))
    assert list(one.for_each_free(0, 1 << 64)) == list(bulk.for_each_free(0, 1 << 64))
    one.check() if hasattr(one, "check") else None
    bulk.check() if hasattr(bulk, "check") else None
    for size, align in ((PAGE, PAGE), (3 * PAGE, 4 * PAGE), (PAGE, 1 << 16)):
        assert one.alloc(size, align, low, 1 << 63, None) == bulk.alloc(size, align, low, 1 << 63, None)
    assert one.shape() == bulk.shape()


def _tree_state(a: KvaRbtreeAllocator) -> Any:
    nodes = []
    va = a.head.next
    while va is not a.head:
        nodes.append((va.start, va.end, va.red, va.max, None if va.parent is None else va.parent.start,
                      [None if k is None else k.start for k in va.kid]))
        va = va.next
    return a.shape(), nodes, list(a.for_each_busy(0)), a._starts


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 80), st.integers(1, 120))
def test_insert_sorted_on_a_fragmented_tree(seed: int, churn: int, want: int) -> None:
    """FL, LE, RE and NE fits, in blocks of every place in the tree, then later calls."""
    rng = random.Random(seed)
    low, _high = space_bounds(PAGE)
    one, bulk = KvaRbtreeAllocator(PAGE), KvaRbtreeAllocator(PAGE)
    top = low + (1 << 30)
    live: list[int] = []
    for _ in range(churn):  # the same history on both
        if live and rng.random() < 0.4:
            addr = live.pop(rng.randrange(len(live)))
            assert one.remove(addr) is not None and bulk.remove(addr) is not None
        else:
            size = rng.randint(1, 16) * PAGE
            align = PAGE << rng.choice([0, 0, 2, 5])
            vstart = low + rng.randrange(64) * PAGE
            got = one.alloc(size, align, vstart, top, "churn")
            assert bulk.alloc(size, align, vstart, top, "churn") == got
            if got is not None:
                live.append(got)
    assert _tree_state(one) == _tree_state(bulk)
    items: list[tuple[int, int, object]] = []
    for start, size in list(one.for_each_free(low, top)):
        pages = size // PAGE
        pos = 0
        while pos < pages and len(items) < want:
            skip = rng.choice([0, 0, 1, 3])
            take = rng.randint(1, 6)
            if rng.random() < 0.2:
                take = pages - pos - skip  # up to the block's end: RE or FL
            if take <= 0 or pos + skip + take > pages:
                break
            items.append((start + (pos + skip) * PAGE, take * PAGE, object()))
            pos += skip + take
    if items and rng.random() < 0.2:
        items.append(items[rng.randrange(len(items))])  # an overlap, last: both refuse it
    ok = [one.insert(*it) for it in items]
    assert ok[:-1] == [True] * (len(ok) - 1)
    assert bulk.insert_sorted(items) == sum(ok)
    assert _tree_state(one) == _tree_state(bulk)
    bulk.check()
    one.check()
    for size, align in ((PAGE, PAGE), (3 * PAGE, 4 * PAGE), (PAGE, 1 << 16), (64 * PAGE, PAGE)):
        assert one.alloc(size, align, low, top, None) == bulk.alloc(size, align, low, top, None)
    assert _tree_state(one) == _tree_state(bulk)


def _busy_free(a: Any) -> Any:
    return (list(a.for_each_busy(0)), list(a.for_each_free(0, 1 << 64)), len(a))


@pytest.mark.parametrize("name", ["list", "rbtree", "rbtree-cache", "kva", "kva-rbtree"])
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 60), pre=st.integers(0, 20))
def test_insert_sorted_of_every_allocator(name: str, seed: int, n: int, pre: int) -> None:
    """insert_sorted (or the loop, where an allocator has none) is insert one by one: the
    same busy and free blocks, the same answer to later allocations."""
    rng = random.Random(seed)
    low, _ = space_bounds(PAGE)
    one, bulk = make_allocator(name, PAGE), make_allocator(name, PAGE)
    for _ in range(pre):  # some areas there already, the same on both
        addr = low + rng.randrange(4096) * PAGE
        size = rng.randint(1, 4) * PAGE
        assert one.insert(addr, size, "pre") == bulk.insert(addr, size, "pre")
    items: list[tuple[int, int, object]] = []
    addr = low + rng.randrange(64) * PAGE
    for i in range(n):
        addr += rng.choice([0, 0, 1, 7]) * PAGE
        size = rng.randint(1, 5) * PAGE
        items.append((addr, size, i))
        addr += size
        if rng.random() < 0.03:
            addr = low + rng.randrange(4096) * PAGE  # out of order now and then
    want = 0
    for it in items:
        if not one.insert(*it):
            break
        want += 1
    fn = getattr(bulk, "insert_sorted", None)
    if fn is None:
        pytest.skip(f"{name} has no insert_sorted")
    assert fn(items) == want
    assert _busy_free(one) == _busy_free(bulk)
    one.check()
    bulk.check()
    for size, align in ((PAGE, PAGE), (3 * PAGE, 4 * PAGE), (2 * PAGE, 1 << 16)):
        assert one.alloc(size, align, low, 1 << 40, "x") == bulk.alloc(size, align, low, 1 << 40, "x")
    assert _busy_free(one) == _busy_free(bulk)


def test_insert_sorted_stops_at_an_overlap() -> None:
    low, _ = space_bounds(PAGE)
    one, bulk = KvaRbtreeAllocator(PAGE), KvaRbtreeAllocator(PAGE)
    items = [(low, 2 * PAGE, 1), (low + 2 * PAGE, PAGE, 2), (low + 2 * PAGE, PAGE, 3),
             (low + 9 * PAGE, PAGE, 4)]
    got = [one.insert(*it) for it in items]
    assert got == [True, True, False, True]
    assert bulk.insert_sorted(items) == 2
    assert list(bulk.for_each_busy(0)) == [(low, 2 * PAGE, 1), (low + 2 * PAGE, PAGE, 2)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.booleans()), min_size=1, max_size=400))
def test_kmalloc_run_is_kmalloc_in_a_loop(reqs: list[tuple[int, bool]]) -> None:
    zero = getattr(G, "__GFP_ZERO")
    ma, mb = pv.Machine(ram="64M", arch="x86_64"), pv.Machine(ram="64M", arch="x86_64")
    sizes = [s for s, _ in reqs]
    gfps = [G.GFP_KERNEL | (zero if z else 0) for _, z in reqs]
    want = [ma.slab.kmalloc(s, g, -1) for s, g in zip(sizes, gfps)]
    got: list[Any] = []
    while len(got) < len(sizes):
        got += mb.slab.kmalloc_run(sizes[len(got):], gfps[len(got):], -1)
        if len(got) < len(sizes):
            got.append(mb.slab.kmalloc(sizes[len(got)], gfps[len(got)], -1))
    assert got == want
    fa, fb = fingerprint(ma), fingerprint(mb)
    assert fa == fb


def _slow_lines(numbered: Any, source: str, unknown: dict[str, list[int]]) -> Any:
    """_parse_lines as a loop of _parse_line over _text.lines (the parser before its fast path)."""
    lines = []
    digits = 0
    for lineno, raw in numbered:
        if "\x00" in raw:
            raise vmi.FormatError(f"{source}:{lineno}", "binary data (NUL byte), not vmallocinfo text")
        if raw.strip():
            line, width = vmi._parse_line(raw, lineno, source, unknown)
            lines.append(line)
            digits = max(digits, width)
    return lines, digits


def _both(text: str) -> tuple[Any, Any]:
    fast = _parsed(lambda: vmi.parse_vmallocinfo(text, "t"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(vmi, "_parse_lines", _slow_lines)
        mp.setattr(vmi, "_numbered", vmi._lines)
        slow = _parsed(lambda: vmi.parse_vmallocinfo(text, "t"))
    return fast, slow


def _parsed(fn: Any) -> Any:
    try:
        snap = fn()
    except vmi.FormatError as e:
        return ("error", str(e))
    return ([(ln, ln.lineno) for ln in snap.lines], snap.addresses_trusted, snap.address_reason,
            snap.address_bits, snap.warnings)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(st.sampled_from("0x1fF-: \t=NpagesvmalocN0123[]+/_\r\x0c"), max_size=60),
                max_size=8))
def test_the_parsers_fast_path_reads_what_parse_line_reads(raws: list[str]) -> None:
    fast, slow = _both("\n".join(raws))
    assert fast == slow


@pytest.mark.parametrize("line", [
    "0xffffc90000000000-0xffffc90000002000    8192 f+0x1/0x2 pages=1 vmalloc N0=1",
    "0xffffc90000000000-0xffffc90000002000\t8192 f+0x1/0x2 pages=1 vmalloc",
    "  0xffffc90000000000-0xffffc90000002000 8192 vmap",
    "0xfffff000-0x100000000 4096 ioremap",
    "0xfffffffffffff000-0x10000000000000000 4096 ioremap",
    "0x0000000000000000-0x0000000000000000 0",
    "0xffffc90000000000-0xffffc90000002000 8192 f+0x1/0x2 pages=1 vmalloc vendorword key=1",
    "0xffffc90000000000-0xffffc90000002000 8192 f+0x1/0x2 pages=x vmalloc",
    "0xffffc90000000000-0xffffc90000002000 0000000000000000008192 unpurged vm_area",
    "0xffffc90000000000-0xffffc90000002000 8192 f+0x1/0x2 pages=1 vmalloc\x0cN0=1",
    "0xffffc90000000000-0xffffc90000002000 8192 N0=1 N0=1",
])
def test_the_parsers_fast_path_on_edge_lines(line: str) -> None:
    other = line.replace("c9000000", "c9000010")
    for text in (line, line + "\n" + other, line + "\r\n" + other + "\n\n", "\n" + line):
        fast, slow = _both(text)
        assert fast == slow
