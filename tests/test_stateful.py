"""The whole public API against a reference model, step by step (hypothesis state machine).

The reference is a dict of live areas and the bytes each must hold.  Rules allocate with every
flavour of the API, free, free twice, free bad addresses, read and write at random offsets that
run over guard pages and holes (``vread``/``vwrite``, and CPU loads/stores through the MMU),
call vfree/vunmap/vmalloc in interrupt context (``KernelBug`` where 2.6.22 BUGs), inject
failures, map areas into user space and purge lazily freed areas.  After every step the model
and the reference agree and ``check()`` passes.  Both allocators, lazy purge on and off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import pyvmalloc as pv
from pyvmalloc.versions import has
from pyvmalloc.kernel.inject import POINTS
from pyvmalloc.phys import Page
from pyvmalloc.phys import gfp as G
from pyvmalloc.vmalloc.vm_struct import VM_MAP_PUT_PAGES, VM_NO_GUARD, VM_SPARSE

PAGE = 4096
GFP_ZERO = getattr(G, "__GFP_ZERO")
VPAGES = PAGE // 8 + 8  # a page array too big for kmalloc: it is vmalloc'ed (VM_VPAGES)

ZEROED = {"vmalloc_user", "vmalloc_32_user", "vmalloc_gfp_zero"}
KINDS = ["vmalloc", "vmalloc_user", "vmalloc_32", "vmalloc_32_user", "vmalloc_exec", "vmalloc_node",
         "vmalloc_gfp_zero", "module_alloc", "vmap", "alloc_vm_area", "vpages",
         "no_guard", "vmap_put", "sparse"]
# Kinds of area that came with later kernels: the versions.py rule each needs.
NEWER_KINDS = {"no_guard": "vm_no_guard", "vmap_put": "vm_map_put_pages_nr_pages", "sparse": "vm_sparse"}


@dataclass
class Ref:
    """What the reference knows of one live area."""

    kind: str
    usable: int  # bytes before the guard page
    data: bytearray | None  # None: nothing mapped (alloc_vm_area), accesses fault
    pages: list[Page] = field(default_factory=list)  # vmap: the caller's pages
    array: int | None = None  # address of its VM_VPAGES page array
    sparse: dict[int, tuple[Page, bytearray]] = field(default_factory=dict)  # VM_SPARSE: page index -> page, bytes


def pattern(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


class VmallocMachine(RuleBasedStateMachine):
    """Subclasses pick the allocator and lazy purge."""

    allocator = "list"
    lazy = False
    kernel = "2.6.22"

    @initialize()
    def boot(self) -> None:
        self.m = pv.Machine(arch="x86_64", ram="64M", nodes=2, cpus=2, allocator=self.allocator,
                            lazy_purge=self.lazy, kernel=self.kernel)
        self.ref: dict[int, Ref] = {}
        self.freed: list[int] = []
        self.mm = self.m.user_mm()

    # ---- helpers -------------------------------------------------------------------------------
    def _live(self, pick: int) -> int:
        keys = sorted(a for a, r in self.ref.items() if r.kind != "array")
        return keys[pick % len(keys)]

    def _has_live(self) -> bool:
        return any(r.kind != "array" for r in self.ref.values())

    def _kind_ok(self, kind: str) -> bool:
        return kind not in NEWER_KINDS or has(self.m.kernel, NEWER_KINDS[kind])

    def _call(self, kind: str, npages: int, trim: int) -> tuple[int | None, list[Page]]:
        m = self.m
        size = npages * PAGE - trim
        if kind in ("vmap", "vmap_put"):
            pages = [m.alloc_page() for _ in range(npages)]
            if any(p is None for p in pages):  # an injected page_alloc failure
                for p in pages:
                    if p is not None:
                        m.free_page(p)
                return None, []
            for i, p in enumerate(pages):
                m.phys.frames.write(p.phys_addr, pattern(p.pfn + i, PAGE))
            # vmap_put: VM_MAP_PUT_PAGES (5.10+) hands the pages over; vfree() puts them.
            a = m.vmap(pages, npages, pv.VM_MAP | (VM_MAP_PUT_PAGES if kind == "vmap_put" else 0))
            if a is None:
                for p in pages:
                    m.free_page(p)
            return a, pages
        if kind == "sparse":  # 6.9+ get_vm_area(VM_SPARSE): nothing mapped until vm_area_map_pages
            area = m.get_vm_area(size, VM_SPARSE)
            return (None if area is None else area.addr), []
        if kind == "alloc_vm_area":
            area = m.alloc_vm_area(size)
            return (None if area is None else area.addr), []
        call = {
            "vmalloc": lambda: m.vmalloc(size),
            "vmalloc_user": lambda: m.vmalloc_user(size),
            "vmalloc_32": lambda: m.vmalloc_32(size),
            "vmalloc_32_user": lambda: m.vmalloc_32_user(size),
            "vmalloc_exec": lambda: m.vmalloc_exec(size),
            "vmalloc_node": lambda: m.vmalloc_node(size, npages % 2),
            "vmalloc_gfp_zero": lambda: m.vmalloc_gfp(size, G.GFP_KERNEL | GFP_ZERO, "PAGE_KERNEL"),
            "module_alloc": lambda: m.module_alloc(size),
            "vpages": lambda: m.vmalloc(VPAGES * PAGE),
            # 4.0+: no guard page; the next area may start right after this one.
            "no_guard": lambda: m.vmalloc_node_range_flags(size, 1, m.VMALLOC_START, m.VMALLOC_END,
                                                           G.GFP_KERNEL, None, VM_NO_GUARD, -1),
        }[kind]
        return call(), []

    def _alloc(self, kind: str, npages: int, trim: int) -> int | None:
        before = {a.addr for a in self.m.areas()}
        a, pages = self._call(kind, npages, trim)
        if a is None:
            assert {x.addr for x in self.m.areas()} == before
            return None
        area = self.m.find_vm_area(a)
        assert area is not None and a not in self.ref
        usable = area.size - (0 if kind == "no_guard" else PAGE)
        if kind == "vmap_put":
            assert area.nr_pages == npages and list(area.pages) == [p.pfn for p in pages]
        if kind in ("vmap", "vmap_put"):
            data = bytearray(b"".join(pattern(p.pfn + i, PAGE) for i, p in enumerate(pages)))
            ref = Ref(kind, usable, data, pages)
        elif kind in ("alloc_vm_area", "sparse"):
            ref = Ref(kind, usable, None)
        else:
            data = bytearray(self.m.vread(a, usable))
            if kind in ZEROED:
                assert data.count(0) == len(data), f"{kind} handed out stale bytes"
            ref = Ref(kind, usable, data)
        if area.flags & pv.VM_VPAGES:
            where = area.pages_array[1]
            arr = self.m.find_vm_area(where)
            stored = area.pages[: area.nr_pages].astype(np.uint64).tobytes()
            self.ref[where] = Ref("array", arr.size - PAGE,
                                  bytearray(stored + bytes(arr.size - PAGE - len(stored))))
            ref.array = where
        self.ref[a] = ref
        assert {x.addr for x in self.m.areas()} == set(self.ref)
        return a

    def _free(self, a: int) -> None:
        ref = self.ref.pop(a)
        if ref.kind == "vmap":
            self.m.vunmap(a)
            for p in ref.pages:
                self.m.free_page(p)
        elif ref.kind in ("alloc_vm_area", "sparse"):
            area = self.m.find_vm_area(a)
            assert area is not None
            self.m.free_vm_area(area)  # unmaps what a sparse area still maps; the pages are ours
            for p, _data in ref.sparse.values():
                self.m.free_page(p)
        else:
            self.m.vfree(a)
        if ref.array is not None:
            del self.ref[ref.array]
        self.freed.append(a)

    def _runs(self, addr: int, count: int) -> list[tuple[int, int, int | None]]:
        """(address, length, area start or None for a hole) as the seed's vread walks vmlist."""
        top = 1 << 64
        count = max(count, 0)
        if addr + count >= top:
            count = max(top - addr, 0)
        runs: list[tuple[int, int, int | None]] = []
        for start in sorted(self.ref):
            if count == 0:
                break
            end = start + self.ref[start].usable
            if addr >= end:
                continue
            if addr < start:
                gap = min(start - addr, count)
                runs.append((addr, gap, None))
                addr, count = addr + gap, count - gap
                if count == 0:
                    break
            n = min(end - addr, count)
            runs.append((addr, n, start))
            addr, count = addr + n, count - n
        return runs

    # ---- allocation and freeing ---------------------------------------------------------------
    @rule(kind=st.sampled_from(KINDS), npages=st.integers(1, 6), trim=st.integers(0, PAGE - 1))
    def allocate(self, kind: str, npages: int, trim: int) -> None:
        if not self._kind_ok(kind):
            return
        assert self._alloc(kind, npages, trim) is not None, f"{kind} failed with memory to spare"

    # ---- VM_SPARSE (6.9+): pages mapped and unmapped inside the area --------------------------------
    def _sparse(self, pick: int) -> int | None:
        keys = sorted(a for a, r in self.ref.items() if r.kind == "sparse")
        return keys[pick % len(keys)] if keys else None

    @rule(pick=st.integers(0, 10**6), page=st.integers(0, 5), seed=st.integers(0, 2**32))
    def sparse_map(self, pick: int, page: int, seed: int) -> None:
        a = self._sparse(pick)
        if a is None:
            return
        ref, area = self.ref[a], self.m.find_vm_area(a)
        i = page % (ref.usable // PAGE)
        start = a + i * PAGE
        if i in ref.sparse:
            return
        p = self.m.alloc_page()
        assert p is not None
        data = bytearray(pattern(seed, PAGE))
        self.m.phys.frames.write(p.phys_addr, bytes(data))
        assert self.m.vm_area_map_pages(area, start, start + PAGE, [p]) == 0
        ref.sparse[i] = (p, data)
        # Past the area (its guard page): -ERANGE, nothing mapped.
        end = a + ref.usable
        assert self.m.vm_area_map_pages(area, end, end + PAGE, [p]) == -34

    @rule(pick=st.integers(0, 10**6), page=st.integers(0, 5))
    def sparse_unmap(self, pick: int, page: int) -> None:
        a = self._sparse(pick)
        if a is None or not self.ref[a].sparse:
            return
        ref = self.ref[a]
        i = sorted(ref.sparse)[page % len(ref.sparse)]
        self.m.vm_area_unmap_pages(self.m.find_vm_area(a), a + i * PAGE, a + (i + 1) * PAGE)
        p, _data = ref.sparse.pop(i)
        self.m.free_page(p)

    @precondition(lambda self: self._has_live())
    @rule(pick=st.integers(0, 10**6))
    def free(self, pick: int) -> None:
        self._free(self._live(pick))

    @precondition(lambda self: any(a not in self.ref for a in self.freed))
    @rule(pick=st.integers(0, 10**6))
    def double_free(self, pick: int) -> None:
        gone = [a for a in self.freed if a not in self.ref]
        a = gone[pick % len(gone)]
        log = len(self.m.dmesg())
        self.m.vfree(a)
        new = "\n".join(self.m.dmesg()[log:])
        assert f"Trying to vfree() nonexistent vm area ({a:016x})" in new and "WARNING" in new

    @rule(pick=st.integers(0, 10**6), off=st.integers(1, PAGE - 1))
    def bad_free(self, pick: int, off: int) -> None:
        a = (self._live(pick) if self._has_live() else self.m.VMALLOC_START) + off
        log = len(self.m.dmesg())
        self.m.vfree(a)
        assert f"Trying to vfree() bad address ({a:016x})" in "\n".join(self.m.dmesg()[log:])

    @precondition(lambda self: self._has_live())
    @rule(pick=st.integers(0, 10**6), what=st.sampled_from(["vfree", "vunmap", "vmalloc"]))
    def interrupt_context(self, pick: int, what: str) -> None:
        a = self._live(pick)
        if what == "vfree" and has(self.m.kernel, "vfree_deferred_in_interrupt"):
            if self.ref[a].kind in ("vmap", "alloc_vm_area", "sparse"):
                return  # vfree() of an area vfree does not own: misuse, not this rule
            # 3.10+ (32fcfd40715e): deferred to a work item, freed at the next call outside.
            with self.m.interrupt():
                self.m.vfree(a)
            assert a in {x.addr for x in self.m.areas()}
            self.m.run_workers()
            ref = self.ref.pop(a)
            if ref.array is not None:
                del self.ref[ref.array]
            self.freed.append(a)
            return
        with self.m.interrupt(), pytest.raises(pv.KernelBug):
            if what == "vfree":
                self.m.vfree(a)
            elif what == "vunmap":
                self.m.vunmap(a)
            else:
                self.m.vmalloc(PAGE)

    @rule(kind=st.sampled_from(KINDS), point=st.sampled_from(sorted(POINTS)), nth=st.integers(1, 8),
          npages=st.integers(1, 6))
    def injected_failure(self, kind: str, point: str, nth: int, npages: int) -> None:
        if not self._kind_ok(kind):
            return
        injected = self.m.stats()["inject.total"]
        self.m.inject(point, nth=nth)
        try:
            a = self._alloc(kind, npages, 0)
        finally:
            self.m.inject_clear()
        if a is None:
            assert self.m.stats()["inject.total"] == injected + 1

    @rule()
    def purge(self) -> None:
        self.m.vm_unmap_aliases()
        assert self.m.lazy_areas() == []

    # ---- reading and writing ------------------------------------------------------------------
    def _span(self, pick: int, off: int) -> int:
        base = self._live(pick) if self._has_live() else self.m.VMALLOC_START
        return max(base + off, 0)

    @rule(pick=st.integers(0, 10**6), off=st.integers(-2 * PAGE, 8 * PAGE), count=st.integers(0, 4 * PAGE))
    def vread(self, pick: int, off: int, count: int) -> None:
        addr = self._span(pick, off)
        runs = self._runs(addr, count)
        holes = has(self.m.kernel, "vread_holes")  # 2.6.32+: unmapped areas read as zeros
        if not holes and any(s is not None and self.ref[s].data is None for _a, _n, s in runs):
            with pytest.raises(pv.PageFault):
                self.m.vread(addr, count)
            return
        want = b"".join(bytes(n) if s is None or self.ref[s].data is None
                        else bytes(self.ref[s].data[a - s:a - s + n])  # type: ignore[index]
                        for a, n, s in runs)
        assert self.m.vread(addr, count) == want

    @rule(pick=st.integers(0, 10**6), off=st.integers(-2 * PAGE, 8 * PAGE), count=st.integers(0, 4 * PAGE),
          seed=st.integers(0, 2**32))
    def vwrite(self, pick: int, off: int, count: int, seed: int) -> None:
        addr = self._span(pick, off)
        runs = self._runs(addr, count)
        if any(s is not None and self.ref[s].kind == "array" for _a, _n, s in runs):
            return  # writing over a page array would corrupt the kernel's own data
        data = pattern(seed, count)
        holes = has(self.m.kernel, "vread_holes")  # 2.6.32+: unmapped areas are skipped
        fault = next((i for i, (_a, _n, s) in enumerate(runs) if s is not None and self.ref[s].data is None), None)
        if holes:
            assert self.m.vwrite(addr, data) == (count if runs else 0)
            runs = [r for r in runs if r[2] is None or self.ref[r[2]].data is not None]
        elif fault is not None:
            with pytest.raises(pv.PageFault):
                self.m.vwrite(addr, data)
            runs = runs[:fault]  # what came before the unmapped area was written
        else:
            assert self.m.vwrite(addr, data) == (runs[-1][0] + runs[-1][1] - addr if runs else 0)
        for a, n, s in runs:
            if s is not None:
                self.ref[s].data[a - s:a - s + n] = data[a - addr:a - addr + n]  # type: ignore[index]

    @precondition(lambda self: self._has_live())
    @rule(pick=st.integers(0, 10**6), page=st.integers(0, 7), off=st.integers(0, PAGE - 16),
          cpu=st.integers(0, 1), store=st.booleans(), seed=st.integers(0, 255))
    def cpu_access(self, pick: int, page: int, off: int, cpu: int, store: bool, seed: int) -> None:
        a = self._live(pick)
        ref = self.ref[a]
        at = page % (ref.usable // PAGE + 1) * PAGE + off  # up to the guard page, not past it
        self.m.current_cpu = cpu
        data = pattern(seed, 16)
        if ref.kind == "no_guard" and at + 16 > ref.usable:
            return  # no guard page: what lies past the end is the next area's, or a hole
        if ref.kind == "sparse" and at // PAGE in ref.sparse:  # a page vm_area_map_pages mapped
            _p, bytes_ = ref.sparse[at // PAGE]
            o = at % PAGE
            if store:
                self.m.write(a + at, data)
                bytes_[o:o + 16] = data
            assert self.m.read(a + at, 16) == bytes(bytes_[o:o + 16])
            return
        if at + 16 > ref.usable or ref.data is None:  # the guard page, or nothing mapped
            with pytest.raises(pv.PageFault):
                self.m.write(a + at, data) if store else self.m.read(a + at, 16)
            if store and ref.data is not None and at < ref.usable:
                ref.data[at:] = data[: ref.usable - at]  # the stores before the faulting page retire
            return
        if store:
            self.m.write(a + at, data)
            ref.data[at:at + 16] = data
        assert self.m.read(a + at, 16) == bytes(ref.data[at:at + 16])

    @precondition(lambda self: self._has_live())
    @rule(pick=st.integers(0, 10**6))
    def map_to_user(self, pick: int) -> None:
        a = self._live(pick)
        ref = self.ref[a]
        vma = self.mm.mmap(ref.usable)
        ret = self.m.remap_vmalloc_range(vma, a)
        if ref.kind not in ("vmalloc_user", "vmalloc_32_user"):
            assert ret == -22  # -EINVAL: only VM_USERMAP areas may be mapped
            return
        assert ret == 0
        assert ref.data is not None
        assert self.mm.read(vma.start, ref.usable) == bytes(ref.data)

    # ---- after every step -----------------------------------------------------------------------
    @invariant()
    def agrees_with_the_reference(self) -> None:
        if not hasattr(self, "m"):
            return
        assert {a.addr for a in self.m.areas()} == set(self.ref)
        for a, ref in self.ref.items():
            if ref.data is not None:
                assert self.m.vread(a, ref.usable) == bytes(ref.data), f"{ref.kind} area {a:#x} differs"
        self.m.check()


SETTINGS = settings(max_examples=20, stateful_step_count=40, deadline=None)


def _config(allocator: str, lazy: bool, kernel: str) -> type[VmallocMachine]:
    name = f"{allocator.capitalize().replace('-', '_')}{'Lazy' if lazy else 'NoLazy'}"
    return SETTINGS(type(name, (VmallocMachine,),
                         {"allocator": allocator, "lazy": lazy, "kernel": kernel}))


ListNoLazy = _config("list", False, "2.6.22")
ListLazy = _config("list", True, "2.6.22")
KvaLazy = _config("kva", True, "6.1")
KvaNoLazy = _config("kva", False, "6.1")
RbtreeCacheLazy = _config("rbtree-cache", True, "4.14")
TestRbtreeCacheLazy = RbtreeCacheLazy.TestCase
TestListNoLazy = ListNoLazy.TestCase
TestListLazy = ListLazy.TestCase
TestKvaLazy = KvaLazy.TestCase
TestKvaNoLazy = KvaNoLazy.TestCase
# 6.12: vmap nodes and pools, VM_NO_GUARD, VM_MAP_PUT_PAGES and VM_SPARSE areas among the others.
Kva612Lazy = _config("kva-rbtree", True, "6.12")
TestKva612Lazy = Kva612Lazy.TestCase
