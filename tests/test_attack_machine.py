"""Nothing lost under hostile input, part two: the attacks as a hypothesis state machine.

One machine per kernel (2.6.22 with the list allocator, 4.14 with the rbtree cache, 6.1 with
the kva allocator and lazy purge), NUMA (two nodes, two CPUs, 64 MiB).  The rules allocate with
several flavours of vmalloc (every node), vmap pages with aliases (a page twice in one vmap, a
page in two vmaps, a page in a vmap and a map_vm_area), reserve get_vm_area areas (VM_IOREMAP
and plain) with nothing or part of them mapped, vread/vwrite at random spans over areas and
holes, call public entry points with hostile arguments, restore /proc snapshots, purge, run the
work items and vfree from interrupt context.

Only the public API of ``pv.Machine`` is used.  The reference is byte-level and physical: one
``bytearray`` per frame, shared by all its mappings, read and written page range by page range
in address order (the kernel's memcpy, see test_vread_vwrite.py), with the version's hole rule:
from 2.6.32 unmapped pages and VM_IOREMAP areas read as zeros and are not written; 2.6.22 faults
on an unmapped page of an area (nothing of that area copied) and reads VM_IOREMAP areas through.
After every step ``check()`` passes, every live area maps the frames the reference says, and
every area's bytes are the reference's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import pyvmalloc as pv
from pyvmalloc.phys import Page
from pyvmalloc.phys import gfp as G
from pyvmalloc.versions import has
from test_stateful import VmallocMachine

PAGE = 4096
EINVAL = 22
ENOMEM = 12
NODES = 2
ZEROED = {"vmalloc_user"}
ALLOC_KINDS = ["vmalloc", "vmalloc_user", "vmalloc_32", "vmalloc_node0", "vmalloc_node1"]


def pattern(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@dataclass
class Area:
    """What the reference knows of one live area."""

    kind: str  # an ALLOC_KINDS entry, "vmap" or "gva" (get_vm_area / alloc_vm_area)
    usable: int  # bytes before the guard page
    pfns: list[int]  # the frame mapped at each page, -1: nothing
    ioremap: bool
    vm: pv.vm_struct | None = None  # a gva area's vm_struct, for map_vm_area/free_vm_area
    mapped: bool = False  # a gva area that had its map_vm_area

    @property
    def owns_pages(self) -> bool:
        return self.kind in ALLOC_KINDS


# ---- hostile arguments ----------------------------------------------------------------------
HOSTILE: list[object] = [
    1.5, None, "4096", "BOGUS", b"x", -1, -4096, 0, 1 << 70, 2**64, True, [4096], object(), 1 + 0j,
    np.int64(-1), np.int64(-4096), np.uint64(1 << 63), np.int8(7), np.float64(4096.0),
    np.zeros((2, 2), dtype=np.int64), np.array([[1, 2]], dtype=np.uint8),
]


def _int(v: object) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def legit_size(v: object) -> bool:
    return _int(v) and 0 < int(v) <= 1 << 24  # type: ignore[call-overload]


def legit_node(v: object) -> bool:
    return _int(v) and int(v) in range(-1, NODES)  # type: ignore[call-overload]


def legit_pfn(v: object) -> bool:
    # None and -1 are NULL (the kernel's own answer, with a partial mapping left to undo), a
    # pfn of this machine is a page; an integer of 2**63 or more (Python or np.uint64) is
    # test_vmap_of_a_pfn_too_large_for_int64_is_refused (OverflowError today).
    if v is None:
        return True
    if not _int(v):
        return False
    n = int(v)  # type: ignore[call-overload]
    return n >= -1


def legit_prot(v: object) -> bool:
    # None is PAGE_KERNEL; a small integer with the x86_64 present bit is a pgprot like any other.
    return v is None or (_int(v) and 0 < int(v) < PAGE and int(v) & 1 == 1)  # type: ignore[call-overload]


def never(_v: object) -> bool:
    return False


@dataclass(frozen=True)
class Slot:
    call: Callable[[Any, object], object]  # (the state machine, the hostile value)
    legit: Callable[[object], bool]  # values that are no attack here (the step is skipped)
    kernel_bug: bool = False  # the kernel BUGs on some of these: KernelBug is its answer


SLOTS: dict[str, Slot] = {
    "vmalloc.size": Slot(lambda s, v: s.m.vmalloc(v), legit_size),
    "vmalloc.caller": Slot(lambda s, v: s.m.vmalloc(PAGE, caller=v), lambda v: v is None or isinstance(v, str)),
    "vmalloc_user.size": Slot(lambda s, v: s.m.vmalloc_user(v), legit_size),
    "vmalloc_32.size": Slot(lambda s, v: s.m.vmalloc_32(v), legit_size),
    "vmalloc_node.size": Slot(lambda s, v: s.m.vmalloc_node(v, 1), legit_size),
    "vmalloc_node.node": Slot(lambda s, v: s.m.vmalloc_node(PAGE, v), legit_node),
    "vmalloc_gfp.prot": Slot(lambda s, v: s.m.vmalloc_gfp(PAGE, G.GFP_KERNEL, v), legit_prot),
    "vmalloc_gfp.gfp": Slot(lambda s, v: s.m.vmalloc_gfp(PAGE, v), _int),
    "get_vm_area.size": Slot(lambda s, v: s.m.get_vm_area(v, pv.VM_IOREMAP), legit_size),
    "get_vm_area.flags": Slot(lambda s, v: s.m.get_vm_area(PAGE, v), _int),
    "get_vm_area.caller": Slot(lambda s, v: s.m.get_vm_area(PAGE, 0, caller=v),
                               lambda v: v is None or isinstance(v, str)),
    "get_vm_area_node.node": Slot(lambda s, v: s.m.get_vm_area_node(PAGE, pv.VM_IOREMAP, v), legit_node),
    "alloc_vm_area.size": Slot(lambda s, v: s.m.alloc_vm_area(v), legit_size),
    "vmap.pages": Slot(lambda s, v: s.m.vmap(v, 1), lambda v: isinstance(v, list)),
    "vmap.page": Slot(lambda s, v: s.m.vmap([s.spare, v], 2), legit_pfn, kernel_bug=True),
    "vmap.count": Slot(lambda s, v: s.m.vmap([s.spare], v), lambda v: _int(v) and v == 1),
    "vmap.prot": Slot(lambda s, v: s.m.vmap([s.spare], 1, prot=v), legit_prot),
    "vmap.flags": Slot(lambda s, v: s.m.vmap([s.spare], 1, v), _int),
    "vmap.caller": Slot(lambda s, v: s.m.vmap([s.spare], 1, caller=v), lambda v: v is None or isinstance(v, str)),
    "vfree.addr": Slot(lambda s, v: s.m.vfree(v), never),
    "vunmap.addr": Slot(lambda s, v: s.m.vunmap(v), never),
    "find_vm_area.addr": Slot(lambda s, v: s.m.find_vm_area(v), never),
    "vread.addr": Slot(lambda s, v: s.m.vread(v, 16), _int),
    "vread.count": Slot(lambda s, v: s.m.vread(s.m.VMALLOC_START, v), _int),
    "vwrite.addr": Slot(lambda s, v: s.m.vwrite(v, b"attack"), _int),
    "vwrite.data": Slot(lambda s, v: s.m.vwrite(s.m.VMALLOC_START, v), lambda v: isinstance(v, bytes)),
    "remap_vmalloc_range.addr": Slot(lambda s, v: s.m.remap_vmalloc_range(s.vma, v), never),
    "remap_vmalloc_range.pgoff": Slot(lambda s, v: s.m.remap_vmalloc_range(s.vma, s.m.VMALLOC_START, v),
                                      lambda v: _int(v) and v == 0),
    "Machine.nodes": Slot(lambda s, v: pv.Machine(ram="64M", nodes=v), lambda v: isinstance(v, int) and v >= 1),
    "Machine.cpus": Slot(lambda s, v: pv.Machine(ram="64M", cpus=v), lambda v: isinstance(v, int) and v >= 1),
    "Machine.ram": Slot(lambda s, v: pv.Machine(ram=v), never),
    "Machine.kernel": Slot(lambda s, v: pv.Machine(ram="64M", kernel=v), lambda v: v is None),
}
REFUSED = (TypeError, ValueError, pv.ConfigError)
KERNEL_ANSWERS: tuple[object, ...] = (None, -EINVAL, b"")


def busy_ranges(vmallocinfo: str) -> list[str]:
    """The address ranges of /proc/vmallocinfo lines that are areas (not lazily freed ranges)."""
    return [line.split()[0] for line in vmallocinfo.splitlines()
            if line.strip() and "unpurged vm_area" not in line and "vm_map_ram" not in line]


class AttackMachine(RuleBasedStateMachine):
    """Subclasses pick the kernel and its allocator."""

    kernel = "6.1"
    allocator: str | None = None

    @initialize()
    def boot(self) -> None:
        self.m = pv.Machine(arch="x86_64", ram="64M", nodes=NODES, cpus=2, kernel=self.kernel,
                            allocator=self.allocator)
        self.holes = has(self.m.kernel, "vread_holes")
        self.deferred = has(self.m.kernel, "vfree_deferred_in_interrupt")
        self.areas: dict[int, Area] = {}
        self.frames: dict[int, bytearray] = {}  # pfn -> its bytes, once a readable mapping showed them
        self.pool: dict[int, Page] = {}  # pfn -> Page from alloc_page, not yet freed
        spare = self.m.alloc_page()  # for the hostile vmap calls: never mapped, never freed
        assert spare is not None
        self.spare = spare
        self.vma = self.m.user_mm().mmap(PAGE)

    # ---- the reference -----------------------------------------------------------------------
    def _readable(self, area: Area, i: int) -> bool:
        return area.pfns[i] >= 0 and not (area.ioremap and self.holes)

    # (address, length, area start or None for a hole) as vread/vwrite walk the areas: the walk
    # of test_stateful.py, which reads ``self.ref[start].usable``.
    _runs = VmallocMachine._runs

    @property
    def ref(self) -> dict[int, Area]:
        return self.areas

    @staticmethod
    def _chunks(off: int, n: int) -> list[tuple[int, int, int]]:
        """(page index, offset in the page, length) of ``n`` bytes at ``off`` in an area."""
        out = []
        while n > 0:
            i, o = divmod(off, PAGE)
            take = min(n, PAGE - o)
            out.append((i, o, take))
            off, n = off + take, n - take
        return out

    def _faults(self, area: Area, off: int, n: int) -> bool:
        """2.6.22 touches every byte of an area: a run over an unmapped page oopses."""
        return not self.holes and any(area.pfns[i] < 0 for i, _o, _t in self._chunks(off, n))

    def _area_bytes(self, area: Area, off: int, n: int) -> bytes:
        out = []
        for i, o, take in self._chunks(off, n):
            if self._readable(area, i):
                out.append(bytes(self.frames[area.pfns[i]][o:o + take]))
            else:
                out.append(bytes(take))
        return b"".join(out)

    def _expect_read(self, addr: int, count: int) -> bytes | None:
        """What vread returns, or None for a PageFault."""
        out = []
        for a, n, s in self._runs(addr, count):
            if s is None:
                out.append(bytes(n))
                continue
            if self._faults(self.areas[s], a - s, n):
                return None
            out.append(self._area_bytes(self.areas[s], a - s, n))
        return b"".join(out)

    def _learn(self, start: int) -> None:
        """Frames first seen through this area: their bytes are what the area shows."""
        area = self.areas[start]
        for i, pfn in enumerate(area.pfns):
            if pfn >= 0 and pfn not in self.frames and self._readable(area, i):
                self.frames[pfn] = bytearray(self.m.vread(start + i * PAGE, PAGE))

    def _pages_in_use(self) -> set[int]:
        return {p for a in self.areas.values() for p in a.pfns if p >= 0}

    def _register(self, addr: int, kind: str, pfns: list[int] | None = None,
                  vm: pv.vm_struct | None = None) -> Area:
        found = self.m.find_vm_area(addr)
        assert found is not None and addr not in self.areas
        usable = found.size - PAGE
        if pfns is None:
            pfns = [int(p) for p in self.m.pages_of(addr, usable)]
        area = Area(kind, usable, pfns, bool(found.flags & pv.VM_IOREMAP), vm)
        if area.owns_pages:
            # Fresh pages: no other live mapping, no page of the pool, none twice.
            assert len(set(pfns)) == len(pfns) and min(pfns) >= 0, pfns
            assert not set(pfns) & (self._pages_in_use() | set(self.pool) | {self.spare.pfn}), pfns
        self.areas[addr] = area
        self._learn(addr)
        return area

    def public_state(self, lazy: bool = True) -> tuple[Any, ...]:
        """What a refused call must not change, through the public API only."""
        m = self.m
        m.slab.kmem_cache_shrink()  # empty slabs kept for reuse are not frames a call took
        stats = m.stats()
        info = m.vmallocinfo()
        lazy_part: Any = [(z.addr, z.size) for z in m.lazy_areas()] if lazy else None
        if not lazy:
            info = "\n".join(busy_ranges(info))
        return (sorted((a.addr, a.size, a.nr_pages, a.flags) for a in m.areas()), lazy_part,
                stats["phys.pages_allocated"] - stats["phys.pages_freed"], info, m.meminfo(),
                {a: self._snapshot_bytes(a) for a in self.areas})

    def _snapshot_bytes(self, start: int) -> bytes:
        area = self.areas[start]
        if self.holes or all(p >= 0 for p in area.pfns):
            return self.m.vread(start, area.usable)
        # 2.6.22: an unmapped page would oops; read the mapped pages one by one.
        return b"".join(self.m.vread(start + i * PAGE, PAGE) if p >= 0 else b"-" * PAGE
                        for i, p in enumerate(area.pfns))

    def _live(self, pick: int, kinds: Callable[[Area], bool] = lambda a: True) -> int | None:
        keys = sorted(a for a, r in self.areas.items() if kinds(r))
        return keys[pick % len(keys)] if keys else None

    def _forget(self, start: int) -> None:
        area = self.areas.pop(start)
        if area.owns_pages:
            for p in area.pfns:
                self.frames.pop(p, None)

    # ---- allocating and freeing --------------------------------------------------------------
    @rule(kind=st.sampled_from(ALLOC_KINDS), npages=st.integers(1, 5), trim=st.integers(0, PAGE - 1))
    def allocate(self, kind: str, npages: int, trim: int) -> None:
        size = npages * PAGE - trim
        m = self.m
        a = {"vmalloc": lambda: m.vmalloc(size), "vmalloc_user": lambda: m.vmalloc_user(size),
             "vmalloc_32": lambda: m.vmalloc_32(size), "vmalloc_node0": lambda: m.vmalloc_node(size, 0),
             "vmalloc_node1": lambda: m.vmalloc_node(size, 1)}[kind]()
        assert a is not None, f"{kind}({size}) failed with memory to spare"
        area = self._register(a, kind)
        assert area.usable == npages * PAGE
        if kind in ZEROED:
            assert not any(self._area_bytes(area, 0, area.usable)), f"{kind} handed out stale bytes"
        if kind.startswith("vmalloc_node"):
            line = next(x for x in m.vmallocinfo().splitlines() if x.startswith(f"{a:#x}-"))
            assert f"N{kind[-1]}={npages}" in line.split(), line  # every page from the node asked

    @rule(n=st.integers(1, 3))
    def alloc_pages(self, n: int) -> None:
        for _ in range(n):
            p = self.m.alloc_page()
            assert p is not None
            assert p.pfn not in self.pool and p.pfn not in self._pages_in_use()
            self.pool[p.pfn] = p

    @precondition(lambda self: bool(self.pool))
    @rule(picks=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
          ioremap=st.booleans(), again=st.booleans())
    def vmap(self, picks: list[int], ioremap: bool, again: bool) -> None:
        pool = sorted(self.pool)
        pfns = [pool[p % len(pool)] for p in picks]
        if again:  # a page shared with a live vmap or map_vm_area, when there is one
            shared = sorted(self._pages_in_use() & set(self.pool))
            if shared:
                pfns[picks[0] % len(pfns)] = shared[picks[-1] % len(shared)]
        pages = [self.pool[p] for p in pfns]
        flags = pv.VM_IOREMAP if ioremap else pv.VM_MAP
        a = self.m.vmap(pages, len(pages), flags)
        assert a is not None
        self._register(a, "vmap", pfns)

    @rule(npages=st.integers(1, 4), ioremap=st.booleans(), populate=st.booleans())
    def get_vm_area(self, npages: int, ioremap: bool, populate: bool) -> None:
        if populate:  # alloc_vm_area: VM_IOREMAP with empty page tables
            vm = self.m.alloc_vm_area(npages * PAGE)
        else:
            vm = self.m.get_vm_area(npages * PAGE, pv.VM_IOREMAP if ioremap else 0)
        assert vm is not None
        self._register(vm.addr, "gva", [-1] * npages, vm)
        assert all(p < 0 for p in self.m.pages_of(vm.addr, npages * PAGE))

    @precondition(lambda self: bool(self.pool) and any(a.kind == "gva" and not a.mapped and a.ioremap
                                                       for a in self.areas.values()))
    @rule(pick=st.integers(0, 10**6), picks=st.lists(st.integers(0, 10**6), min_size=4, max_size=4),
          null_at=st.one_of(st.none(), st.integers(0, 3)))
    def map_vm_area(self, pick: int, picks: list[int], null_at: int | None) -> None:
        # Only VM_IOREMAP areas: check() holds a VM_ALLOC area without pages to map nothing
        # (test_check_rejects_map_vm_area_over_a_get_vm_area_vm_alloc_area).
        a = self._live(pick, lambda r: r.kind == "gva" and not r.mapped and r.ioremap)
        assert a is not None
        area = self.areas[a]
        pool = sorted(self.pool)
        nr = area.usable // PAGE
        pfns: list[int | None] = [pool[p % len(pool)] for p in picks[:nr]]
        pfns += [pool[0]] * (nr - len(pfns))
        if null_at is not None and null_at < nr:
            pfns[null_at] = None  # a NULL page: -ENOMEM, what came before stays mapped
        assert area.vm is not None
        ret = self.m.map_vm_area(area.vm, None, [None if p is None else self.pool[p] for p in pfns])
        mapped = pfns if None not in pfns else pfns[:pfns.index(None)]
        assert ret == (0 if len(mapped) == nr else -ENOMEM)
        area.pfns = [int(p) for p in mapped if p is not None] + [-1] * (nr - len(mapped))
        area.mapped = True
        self._learn(a)

    def _free(self, a: int) -> None:
        area = self.areas[a]
        if area.kind == "vmap":
            self.m.vunmap(a)
        elif area.kind == "gva":
            assert area.vm is not None
            self.m.free_vm_area(area.vm)
        else:
            self.m.vfree(a)
        self._forget(a)

    @precondition(lambda self: bool(self.areas))
    @rule(pick=st.integers(0, 10**6))
    def free(self, pick: int) -> None:
        a = self._live(pick)
        assert a is not None
        self._free(a)
        assert self.m.find_vm_area(a) is None

    @precondition(lambda self: bool(set(self.pool) - self._pages_in_use()))
    @rule(pick=st.integers(0, 10**6))
    def free_page(self, pick: int) -> None:
        idle = sorted(set(self.pool) - self._pages_in_use())
        pfn = idle[pick % len(idle)]
        self.m.free_page(self.pool.pop(pfn))
        self.frames.pop(pfn, None)

    # ---- reading and writing ------------------------------------------------------------------
    def _span(self, pick: int, off: int) -> int:
        base = self._live(pick)
        return max((self.m.VMALLOC_START if base is None else base) + off, 0)

    @rule(pick=st.integers(0, 10**6), off=st.integers(-2 * PAGE, 9 * PAGE), count=st.integers(0, 5 * PAGE))
    def vread(self, pick: int, off: int, count: int) -> None:
        addr = self._span(pick, off)
        want = self._expect_read(addr, count)
        if want is None:
            with pytest.raises(pv.PageFault):
                self.m.vread(addr, count)
        else:
            assert self.m.vread(addr, count) == want

    @rule(pick=st.integers(0, 10**6), off=st.integers(-2 * PAGE, 9 * PAGE), count=st.integers(0, 5 * PAGE),
          seed=st.integers(0, 2**32))
    def vwrite(self, pick: int, off: int, count: int, seed: int) -> None:
        addr = self._span(pick, off)
        data = pattern(seed, count)
        runs = self._runs(addr, count)
        fault = next((k for k, (a, n, s) in enumerate(runs)
                      if s is not None and self._faults(self.areas[s], a - s, n)), None)
        if fault is not None:
            with pytest.raises(pv.PageFault):
                self.m.vwrite(addr, data)
            runs = runs[:fault]  # the areas before the one that oopsed were written
        else:
            got = self.m.vwrite(addr, data)
            if self.holes:
                assert got == (count if runs else 0)
            else:
                assert got == (runs[-1][0] + runs[-1][1] - addr if runs else 0)
        for a, n, s in runs:  # memcpy in address order: a later alias of a frame wins
            if s is None:
                continue
            area = self.areas[s]
            pos = a - addr
            for i, o, take in self._chunks(a - s, n):
                if self._readable(area, i):
                    self.frames[area.pfns[i]][o:o + take] = data[pos:pos + take]
                pos += take

    # ---- hostile arguments ----------------------------------------------------------------------
    @rule(slot=st.sampled_from(sorted(SLOTS)), value=st.sampled_from(range(len(HOSTILE))))
    def hostile(self, slot: str, value: int) -> None:
        v = HOSTILE[value]
        s = SLOTS[slot]
        if s.legit(v):
            return
        before = self.public_state()
        allowed = REFUSED + ((pv.KernelBug,) if s.kernel_bug else ())
        try:
            ret = s.call(self, v)
        except allowed:
            assert self.public_state() == before, f"{slot}={v!r} was refused but changed the machine"
        else:
            assert any(ret is k or ret == k for k in KERNEL_ANSWERS if type(ret) is type(k)), \
                f"{slot}={v!r} returned {ret!r}"
            if ret is None and self.public_state() != before:
                # A failed area search purges the lazy areas once before giving up (2.6.28+):
                # that, and only that, may have changed.
                assert [(z.addr, z.size) for z in self.m.lazy_areas()] == []
                assert self.public_state(lazy=False) == before_without_lazy(before), \
                    f"{slot}={v!r} returned NULL but changed more than the lazy areas"
            else:
                assert self.public_state() == before, f"{slot}={v!r} returned {ret!r} and changed the machine"

    # ---- snapshots, purges, workers, interrupts ---------------------------------------------------
    @rule()
    def restore_snapshot(self) -> None:
        before = self.public_state()
        info = self.m.vmallocinfo()
        if not info.strip():
            with pytest.raises(pv.ConfigError, match="no areas"):  # an empty dump places nothing
                pv.Machine.from_snapshot(info, self.m.meminfo(), arch="x86_64", kernel=self.kernel)
            return
        r = pv.Machine.from_snapshot(info, self.m.meminfo(), arch="x86_64", kernel=self.kernel)
        r.check()
        assert busy_ranges(r.vmallocinfo()) == busy_ranges(info)
        assert self.public_state() == before  # reading /proc changes nothing

    @rule()
    def purge(self) -> None:
        self.m.vm_unmap_aliases()
        assert self.m.lazy_areas() == []

    @rule()
    def run_workers(self) -> None:
        self.m.run_workers()

    @precondition(lambda self: bool(self.areas))
    @rule(pick=st.integers(0, 10**6), what=st.sampled_from(["vfree", "vunmap", "vmalloc", "get_vm_area"]),
          then=st.sampled_from(["run_workers", "vmallocinfo", "vmalloc"]))
    def interrupt_context(self, pick: int, what: str, then: str) -> None:
        a = self._live(pick)
        assert a is not None
        if what == "vfree" and self.deferred:
            a = self._live(pick, lambda r: r.owns_pages)
            if a is None:
                return
            # 3.10+ (32fcfd40715e): deferred to a work item, done at the next call outside.
            with self.m.interrupt():
                self.m.vfree(a)
            assert self.m.find_vm_area(a) is not None
            if then == "run_workers":
                self.m.run_workers()
            elif then == "vmallocinfo":
                # Reading /proc runs the work first: the area is gone (at most "unpurged").
                assert not any(r.startswith(f"{a:#x}-") for r in busy_ranges(self.m.vmallocinfo()))
            assert self.m.find_vm_area(a) is None or then == "vmalloc"
            if then == "vmalloc":
                b = self.m.vmalloc(PAGE)
                assert b is not None and self.m.find_vm_area(a) is None
                self._forget(a)
                self._register(b, "vmalloc")
            else:
                self._forget(a)
            return
        before = self.public_state()
        with self.m.interrupt(), pytest.raises(pv.KernelBug):
            if what == "vfree":
                self.m.vfree(a)
            elif what == "vunmap":
                self.m.vunmap(a)
            elif what == "vmalloc":
                self.m.vmalloc(PAGE)
            else:
                self.m.get_vm_area(PAGE, pv.VM_IOREMAP)
        assert self.public_state() == before

    # ---- after every step -----------------------------------------------------------------------
    @invariant()
    def agrees_with_the_reference(self) -> None:
        if not hasattr(self, "m"):
            return
        self.m.check()
        assert {x.addr for x in self.m.areas()} == set(self.areas)
        for a, area in self.areas.items():
            assert [int(p) for p in self.m.pages_of(a, area.usable)] == area.pfns, f"{area.kind} {a:#x}"
            got = self._snapshot_bytes(a)
            if self.holes or all(p >= 0 for p in area.pfns):
                assert got == self._area_bytes(area, 0, area.usable), f"{area.kind} area {a:#x} differs"
            else:
                for i, p in enumerate(area.pfns):
                    if p >= 0:
                        assert got[i * PAGE:(i + 1) * PAGE] == self.frames[p], f"{area.kind} {a:#x} page {i}"


def before_without_lazy(state: tuple[Any, ...]) -> tuple[Any, ...]:
    areas, _lazy, pages, info, meminfo, data = state
    return (areas, None, pages, "\n".join(busy_ranges(info)), meminfo, data)


SETTINGS = settings(max_examples=15, stateful_step_count=30, deadline=None)


def _config(kernel: str, allocator: str | None) -> type[AttackMachine]:
    name = "Attack" + kernel.replace(".", "_")
    return SETTINGS(type(name, (AttackMachine,), {"kernel": kernel, "allocator": allocator}))


TestAttack2622 = _config("2.6.22", None).TestCase
TestAttack414 = _config("4.14", "rbtree-cache").TestCase
TestAttack61 = _config("6.1", None).TestCase


# ---- what the machine found: public entry points that refuse with the wrong exception ----------
# Each call below changes nothing (the machine and check() are as before), but it escapes the
# contract of vmalloc/_args.py: one TypeError or ValueError naming the function and argument.
def _unchanged_after(m: pv.Machine, call: Callable[[], object]) -> None:
    before = (m.vmallocinfo(), m.meminfo(), [(a.addr, a.size, a.flags) for a in m.areas()])
    try:
        with pytest.raises((TypeError, ValueError)):
            call()
    finally:
        assert (m.vmallocinfo(), m.meminfo(), [(a.addr, a.size, a.flags) for a in m.areas()]) == before
        m.check()


@pytest.mark.parametrize("pfn", [1 << 63, 2**64, 1 << 70, np.uint64(1 << 63)])
def test_vmap_of_a_pfn_too_large_for_int64_is_refused(pfn: object) -> None:
    m = pv.Machine(ram="64M", nodes=NODES)
    page = m.alloc_page()
    _unchanged_after(m, lambda: m.vmap([page, pfn], 2))


@pytest.mark.parametrize("page", ["x", 1 << 70])
def test_free_page_of_a_non_page_is_refused(page: object) -> None:
    m = pv.Machine(ram="64M", nodes=NODES)
    _unchanged_after(m, lambda: m.free_page(page))  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["free_vm_area", "map_vm_area"])
def test_free_vm_area_and_map_vm_area_of_an_address_are_refused(which: str) -> None:
    m = pv.Machine(ram="64M", nodes=NODES)
    page = m.alloc_page()
    area = m.get_vm_area(PAGE, pv.VM_IOREMAP)
    assert area is not None and page is not None
    call = {"free_vm_area": lambda: m.free_vm_area(area.addr),  # type: ignore[arg-type]
            "map_vm_area": lambda: m.map_vm_area(area.addr, None, [page])}[which]  # type: ignore[arg-type]
    _unchanged_after(m, call)
