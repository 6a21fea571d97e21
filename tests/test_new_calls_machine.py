"""Today's vmalloc, whole: the calls newer than the seed as one hypothesis state machine.

One machine per kernel (6.1, 6.12, 6.15; x86_64, two NUMA nodes, two CPUs, 128 MiB, the
kva-rbtree allocator each defaults to), whose rules use every call that came after 2.6.22,
each gated by its release as ``versions.py`` gates it:

- vm_map_ram/vm_unmap_ram (2.6.28) of fresh, alias-free page lists on either CPU: up to
  BITS_PER_LONG pages from the per-CPU vmap blocks, more in an area of their own;
- vzalloc/vzalloc_node, vmalloc_array/vcalloc (overflow is NULL), vmalloc_node_range_flags,
  vmalloc_huge (PMD leaves and 2 MiB alignment when the size per node is >= 2 MiB), vmap_pfn of
  pfns that are not RAM (and one that is: WARN, NULL);
- kvmalloc/kvzalloc/kvmalloc_node (slab up to KMALLOC_MAX_SIZE, vmalloc above), kvfree,
  kvrealloc (6.12+ ``(p, size, flags)``, before ``(p, oldsize, newsize, flags)``);
- vrealloc (6.12: the area's size counts; 6.15: ``vm->requested_size`` counts, a shrink zeroes
  the freed tail with __GFP_ZERO, an in-place grow does not); before 6.12 it is refused;
- frees, vm_unmap_aliases, run_workers, the 6.9+ vmap-node shrinker;
- set_memory_ro/set_memory_x of VM_FLUSH_RESET_PERMS areas (5.2: their direct-map aliases go
  read-only; a CPU store faults; the vfree resets the aliases and purges the area at once), and
  kmemleak (booted with ``kmemleak=on``): every live vmalloc'ed block has an object, those made
  with VM_DEFER_KMEMLEAK (5.16) only once the ``kmemleak_register`` rule registered them;
- vread/vwrite and CPU loads/stores inside every live allocation: vmalloc areas as always,
  vmap_pfn areas as holes (VM_IOREMAP, zeros, not written), vm_map_ram pieces from 6.4 only.

The reference is byte-level per allocation: what the caller may rely on (the bytes of a fresh
non-zeroed allocation are learnt once, from the model).  ``requested_size`` is the kernel's:
the size the caller asked ``__get_vm_area_node`` for.  After every step ``check()`` passes,
the vm_structs are exactly the live vmalloc/vmap_pfn allocations (and their vmalloc'ed page
arrays), the kmalloc objects of kvmalloc are exactly the live slab ones, every allocation
holds its reference bytes, and /proc/vmallocinfo parses, shows each live allocation and none
of the areas the vmap-node pools hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import pyvmalloc as pv
from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo
from pyvmalloc.phys import Page
from pyvmalloc.phys import gfp as G
from pyvmalloc.versions import has
from pyvmalloc.vmalloc.kvmalloc import ZERO_SIZE_PTR, kv_objects
from pyvmalloc.vmalloc.vm_struct import (
    VM_ALLOC,
    VM_ALLOW_HUGE_VMAP,
    VM_DEFER_KMEMLEAK,
    VM_FLUSH_RESET_PERMS,
    VM_IOREMAP,
    VM_USERMAP,
)

PAGE = 4096
PMD = 2 << 20
NODES = 2
ZERO = getattr(G, "__GFP_ZERO")
VMAP_MAX_ALLOC = 64          # BITS_PER_LONG: vm_map_ram counts up to this come from vmap blocks
KMALLOC_MAX = 4 << 20        # kvmalloc: kmalloc serves up to KMALLOC_MAX_SIZE (x86_64, SLUB)
BUDGET = 24 << 20            # live bytes at most: keeps the invariant's reads short
DEV_PFN = 1 << 28            # 1 TiB: no RAM there (vmap_pfn)
HUGE_SIZES = [PMD, 3 * PMD // 2 + 5, 2 * PMD, 2 * PMD + 3 * PAGE + 1, 3 * PMD]
BIG_KV = [KMALLOC_MAX + 1, KMALLOC_MAX + 5 * PAGE, 5 << 20]


def pattern(seed: int, n: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@dataclass
class Obj:
    """What the reference knows of one live allocation."""

    kind: str  # "vmalloc" (a vm_struct with pages), "slab" (kvmalloc's kmalloc), "ram", "pfn"
    how: str  # the call that made it
    size: int  # requested bytes (the kernel's vm->requested_size; a vm_map_ram's count pages)
    data: bytearray  # the bytes the allocation holds: a vmalloc area's whole usable size
    pages: list[Page] = field(default_factory=list)  # vm_map_ram: the caller's pages
    ro: bool = False  # set_memory_ro'ed (a VM_FLUSH_RESET_PERMS area): CPU stores fault
    deferred: bool = False  # VM_DEFER_KMEMLEAK: no kmemleak object until registered

    @property
    def count(self) -> int:  # vm_map_ram / vmap_pfn: pages mapped
        return len(self.data) // PAGE


class NewCallsMachine(RuleBasedStateMachine):
    """Subclasses pick the kernel."""

    kernel = "6.12"

    @initialize()
    def boot(self) -> None:
        self.m = pv.Machine(arch="x86_64", ram="128M", nodes=NODES, cpus=2, kernel=self.kernel,
                            cmdline="kmemleak=on")
        assert self.m.allocator_name == "kva-rbtree"  # 5.2+
        self.objs: dict[int, Obj] = {}
        self.ram_readable = has(self.m.kernel, "vread_vm_map_ram")  # 6.4+
        self.has_vrealloc = has(self.m.kernel, "vrealloc")  # 6.12+
        self.granular = has(self.m.kernel, "vrealloc_requested_size")  # 6.15+
        self.pooling = has(self.m.kernel, "vmap_node_pools")  # 6.9+

    # ---- helpers ---------------------------------------------------------------------------------
    def _live_bytes(self) -> int:
        return sum(len(o.data) for o in self.objs.values())

    def _room(self, n: int) -> bool:
        return self._live_bytes() + n <= BUDGET

    def _pick(self, pick: int, kinds: tuple[str, ...]) -> int | None:
        keys = sorted(a for a, o in self.objs.items() if o.kind in kinds)
        return keys[pick % len(keys)] if keys else None

    def _handle(self, addr: int) -> int:
        return addr - self.m.profile.page_offset

    def _state(self, whole: bool = True) -> tuple[object, ...]:
        """What a NULL-returning call must leave alone: everything when it took nothing, the
        areas and objects when it took an area and gave it back (the area then waits on the
        lazy list, maybe taken from a 6.9+ pool; page tables stay)."""
        m = self.m
        m.slab.kmem_cache_shrink()  # empty slabs kept for reuse are not frames a call took
        live = (sorted((a.addr, a.size, a.flags) for a in m.areas()), sorted(kv_objects(m.vm)))
        return live + ((tuple(va.va_start for va in m.pooled_areas()), m.meminfo()) if whole else ())

    def _vmalloc(self, addr: int | None, how: str, size: int, zeroed: bool) -> Obj:
        """Register a fresh vmalloc area (its bytes learnt from the model)."""
        assert addr is not None, f"{how}({size}) failed with memory to spare"
        m = self.m
        assert m.VMALLOC_START <= addr < m.VMALLOC_END and addr % PAGE == 0
        assert addr not in self.objs
        area = m.find_vm_area(addr)
        assert area is not None and area.addr == addr
        usable = area.size - PAGE
        assert usable >= size
        data = m.vread(addr, usable)
        assert len(data) == usable
        return self._register(addr, Obj("vmalloc", how, size, bytearray(data)), zeroed)

    def _slab(self, addr: int | None, how: str, size: int, zeroed: bool) -> Obj:
        assert addr is not None, f"{how}({size}) failed with memory to spare"
        assert not self.m.VMALLOC_START <= addr < self.m.VMALLOC_END
        assert addr >= self.m.profile.page_offset and addr not in self.objs
        data = self.m.phys.frames.read(self._handle(addr), size)
        return self._register(addr, Obj("slab", how, size, bytearray(data)), zeroed)

    def _register(self, addr: int, obj: Obj, zeroed: bool) -> Obj:
        if zeroed:
            assert obj.data.count(0) == len(obj.data), f"{obj.how}({obj.size}) handed out stale bytes"
        self.objs[addr] = obj
        return obj

    def _kv(self, addr: int | None, how: str, size: int, zeroed: bool) -> Obj:
        """kvmalloc's answer: a slab object up to KMALLOC_MAX_SIZE, else a vmalloc area with
        VM_ALLOW_HUGE_VMAP (5.18+)."""
        if size <= KMALLOC_MAX:
            return self._slab(addr, how, size, zeroed)
        obj = self._vmalloc(addr, how, size, zeroed)
        area = self.m.find_vm_area(addr)  # type: ignore[arg-type]
        assert area is not None and area.flags & VM_ALLOW_HUGE_VMAP
        return obj

    def _gone(self, addr: int) -> None:
        obj = self.objs.pop(addr)
        if obj.kind in ("vmalloc", "pfn"):
            assert self.m.find_vm_area(addr) is None, f"{obj.how} {addr:#x} still has its area"

    # ---- allocating ---------------------------------------------------------------------------------
    @rule(npages=st.integers(1, 6), trim=st.integers(0, PAGE - 1), node=st.sampled_from([None, 0, 1]))
    def vzalloc(self, npages: int, trim: int, node: int | None) -> None:
        size = npages * PAGE - trim
        if node is None:
            self._vmalloc(self.m.vzalloc(size), "vzalloc", size, True)
            return
        a = self.m.vzalloc_node(size, node)
        self._vmalloc(a, f"vzalloc_node{node}", size, True)
        line = next(x for x in self.m.vmallocinfo().splitlines() if x.startswith(f"{a:#x}-"))
        assert f"N{node}={npages}" in line.split(), line  # every page from the node asked

    @rule(n=st.integers(1, 8), each=st.integers(1, 3000), zeroed=st.booleans(),
          overflow=st.integers(0, 3))
    def vmalloc_array(self, n: int, each: int, zeroed: bool, overflow: int) -> None:
        call = self.m.vcalloc if zeroed else self.m.vmalloc_array
        how = "vcalloc" if zeroed else "vmalloc_array"
        if overflow:
            # n * size >= 2**64 with both a size_t: check_mul_overflow, NULL, nothing touched.
            each = max(each, 2)
            big = (1 << 64) // each + overflow
            assert big < 1 << 64 <= big * each
            before = self._state()
            assert call(big, each) is None and call(each, big) is None
            assert self._state() == before
            return
        self._vmalloc(call(n, each), how, n * each, zeroed)

    @rule(npages=st.integers(1, 5), align_shift=st.sampled_from([0, 12, 14, 16]),
          flags=st.sets(st.sampled_from([VM_USERMAP, VM_FLUSH_RESET_PERMS, VM_DEFER_KMEMLEAK])),
          zeroed=st.booleans(), node=st.sampled_from([-1, 0, 1]))
    def vmalloc_node_range_flags(self, npages: int, align_shift: int, flags: set[int], zeroed: bool,
                                 node: int) -> None:
        m = self.m
        vm_flags = sum(flags)
        size, align = npages * PAGE - 17, 1 << align_shift
        a = m.vmalloc_node_range_flags(size, align, m.VMALLOC_START, m.VMALLOC_END,
                                       G.GFP_KERNEL | (ZERO if zeroed else 0), None, vm_flags, node)
        obj = self._vmalloc(a, "__vmalloc_node_range", size, zeroed)
        obj.deferred = bool(vm_flags & VM_DEFER_KMEMLEAK)   # 5.16+: every kernel here
        area = m.find_vm_area(a)  # type: ignore[arg-type]
        assert area is not None and area.flags & vm_flags == vm_flags and area.addr % align == 0
        assert (a in {o.pointer for o in m.kmemleak_objects()}) != obj.deferred

    @rule(pick=st.integers(0, 10**6), exec_=st.booleans(), fresh=st.booleans(), defer=st.booleans())
    def set_memory_ro(self, pick: int, exec_: bool, fresh: bool, defer: bool) -> None:
        """What the module loader does to module text: read-only (and executable); ``fresh``
        (or no VM_FLUSH_RESET_PERMS area yet) makes a new one first, as module_alloc does,
        with VM_DEFER_KMEMLEAK if ``defer``."""
        m = self.m
        keys = [a for a, o in sorted(self.objs.items()) if o.kind == "vmalloc" and not o.ro
                and (ar := m.find_vm_area(a)) is not None and ar.flags & VM_FLUSH_RESET_PERMS]
        if fresh or not keys:
            size = (pick % 4 + 1) * PAGE - pick % 50
            flags = VM_FLUSH_RESET_PERMS | (VM_DEFER_KMEMLEAK if defer else 0)
            b = m.vmalloc_node_range_flags(size, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL,
                                           None, flags, -1)
            self._vmalloc(b, "module text", size, False).deferred = defer
            assert b is not None
            keys = [b]
        a = keys[pick % len(keys)]
        area = m.find_vm_area(a)
        assert area is not None
        n = (area.size - PAGE) // PAGE
        assert m.set_memory_ro(a, n) == 0
        if exec_:
            assert m.set_memory_x(a, n) == 0
        self.objs[a].ro = True
        assert set(area.pages.tolist()) <= set(m.direct_map_readonly())   # x86: the aliases too
        with pytest.raises(pv.PageFault):
            m.write(a, b"x")

    @rule(pick=st.integers(0, 10**6))
    def kmemleak_register(self, pick: int) -> None:
        """The deferred registration of a VM_DEFER_KMEMLEAK block (kasan_alloc_module_shadow's)."""
        m = self.m
        keys = [a for a, o in sorted(self.objs.items()) if o.deferred]
        if not keys:
            return
        a = keys[pick % len(keys)]
        area = m.find_vm_area(a)
        assert area is not None
        m.kmemleak_vmalloc(area)
        self.objs[a].deferred = False

    @rule(big=st.booleans(), pick=st.integers(0, 10**6), zeroed=st.booleans())
    def vmalloc_huge(self, big: bool, pick: int, zeroed: bool) -> None:
        size = HUGE_SIZES[pick % len(HUGE_SIZES)] if big else (pick % 5 + 1) * PAGE - pick % 97
        if not self._room(size + PMD):
            return
        a = self.m.vmalloc_huge(size, G.GFP_KERNEL | (ZERO if zeroed else 0))
        self._vmalloc(a, "vmalloc_huge", size, zeroed)
        area = self.m.find_vm_area(a)  # type: ignore[arg-type]
        assert area is not None and area.flags & VM_ALLOW_HUGE_VMAP
        # x86_64: PMD mappings when the size per online node is at least PMD_SIZE.
        if size // NODES >= PMD:
            assert area.page_order == 9 and area.addr % PMD == 0, (hex(area.addr), area.page_order)
            assert area.size == -(-size // PMD) * PMD + PAGE
        else:
            assert area.page_order == 0 and area.size == -(-size // PAGE) * PAGE + PAGE

    @rule(big=st.booleans(), pick=st.integers(0, 10**6), zeroed=st.booleans(),
          node=st.sampled_from([None, -1, 0, 1]))
    def kvmalloc(self, big: bool, pick: int, zeroed: bool, node: int | None) -> None:
        m = self.m
        size = BIG_KV[pick % len(BIG_KV)] if big else pick % (3 * PAGE) + 1
        if not self._room(size + PMD):
            return
        gfp = G.GFP_KERNEL | (ZERO if zeroed else 0)
        if node is None:
            a = m.kvzalloc(size) if zeroed else m.kvmalloc(size)
        else:
            a = m.kvmalloc_node(size, gfp, node)
        self._kv(a, "kvzalloc" if zeroed else "kvmalloc", size, zeroed)
        assert m.kvmalloc(0) == ZERO_SIZE_PTR  # kmalloc(0): nothing held

    @rule(count=st.integers(1, 4), at=st.integers(0, 1 << 20), ram=st.booleans())
    def vmap_pfn(self, count: int, at: int, ram: bool) -> None:
        m = self.m
        pfns = [DEV_PFN + at + 3 * i for i in range(count)]  # not contiguous, not RAM
        if ram:  # a pfn of RAM among them: vmap_pfn_apply WARNs, the area goes, NULL
            before = self._state(whole=False)
            page = m.alloc_page()
            assert page is not None
            pfns[-1] = page.pfn
            assert m.vmap_pfn(pfns, count) is None
            assert any("vmap_pfn_apply" in line for line in m.dmesg()[-3:])
            m.free_page(page)
            assert self._state(whole=False) == before
            return
        a = m.vmap_pfn(pfns, count)
        assert a is not None and a not in self.objs
        area = m.find_vm_area(a)
        assert area is not None and area.flags & VM_IOREMAP and area.size == (count + 1) * PAGE
        for i, p in enumerate(pfns):
            assert m.translate(a + i * PAGE + 5) == (p << 12) + 5
        self.objs[a] = Obj("pfn", "vmap_pfn", count * PAGE, bytearray(count * PAGE))

    @rule(small=st.booleans(), pick=st.integers(0, 10**6), cpu=st.integers(0, 1),
          node=st.sampled_from([-1, 0, 1]), seed=st.integers(0, 2**32))
    def vm_map_ram(self, small: bool, pick: int, cpu: int, node: int, seed: int) -> None:
        m = self.m
        count = pick % VMAP_MAX_ALLOC + 1 if small else VMAP_MAX_ALLOC + 1 + pick % 96
        if not self._room(count * PAGE):
            return
        pages = [m.alloc_page() for _ in range(count)]
        assert all(p is not None for p in pages)
        live = {p.pfn for o in self.objs.values() for p in o.pages}
        assert not live & {p.pfn for p in pages if p is not None}  # alias-free
        data = pattern(seed, count * PAGE)
        for i, p in enumerate(pages):
            m.phys.frames.write(p.phys_addr, data[i * PAGE:(i + 1) * PAGE])  # type: ignore[union-attr]
        m.current_cpu = cpu
        a = m.vm_map_ram(pages, count, node)
        assert a is not None and a % PAGE == 0 and a not in self.objs
        assert m.find_vm_area(a) is None  # no vm_struct, whatever the count
        assert [int(x) for x in m.pages_of(a, count * PAGE)] == [p.pfn for p in pages]  # type: ignore[union-attr]
        self.objs[a] = Obj("ram", "vm_map_ram", count * PAGE, bytearray(data), pages)  # type: ignore[arg-type]

    # ---- resizing -----------------------------------------------------------------------------------
    def _resize_vmalloc(self, p: int, size: int, gfp: int, ret: int | None, how: str) -> None:
        """The reference of vrealloc(p, size, gfp) (size > 0) that returned ``ret``."""
        o = self.objs[p]
        alloced = len(o.data)
        old = o.size if self.granular else alloced
        if size <= alloced:  # 6.12: size <= old_size; 6.15: shrink or grow into the area
            assert ret == p, f"{how}({p:#x}, {size}) moved an allocation that fits its area"
            if size <= old and gfp & ZERO:
                o.data[size:old] = bytes(old - size)
            o.size = size
            return
        assert ret is not None and ret != p, f"{how}({p:#x}, {size}): {ret!r}"
        self._gone(p)
        new = self._vmalloc(ret, how, size, False)
        assert new.data[:old] == o.data[:old], f"{how} did not copy the {old} old bytes"
        if gfp & ZERO:
            assert new.data[old:].count(0) == len(new.data[old:]), f"{how}: the new bytes past the copy are not zeroed"

    def _new_size(self, o: Obj, how: int, pick: int) -> int:
        alloced = len(o.data)
        return [pick % max(o.size, 1) + 1,                   # shrink (or keep)
                o.size + pick % (alloced - o.size + 1),      # grow within the area
                alloced + 1 + pick % (3 * PAGE),             # grow beyond it
                0][how]                                      # free

    @rule(pick=st.integers(0, 10**6), how=st.sampled_from([0, 0, 1, 1, 2, 3]), zeroed=st.booleans(),
          fresh=st.booleans())
    def vrealloc(self, pick: int, how: int, zeroed: bool, fresh: bool) -> None:
        m = self.m
        gfp = G.GFP_KERNEL | (ZERO if zeroed else 0)
        if not self.has_vrealloc:
            before = self._state()
            with pytest.raises(pv.ConfigError, match=r"Linux 6\.12"):
                m.vrealloc(None, PAGE)
            assert self._state() == before
            return
        p = None if fresh else self._pick(pick, ("vmalloc",))
        if p is None:  # vrealloc(NULL, size): __vmalloc
            size = pick % (4 * PAGE) + 1
            self._vmalloc(m.vrealloc(None, size, gfp), "vrealloc", size, zeroed)
            return
        o = self.objs[p]
        size = self._new_size(o, how, pick)
        if not self._room(size):
            return
        ret = m.vrealloc(p, size, gfp)
        if size == 0:
            assert ret is None
            self._gone(p)
            return
        self._resize_vmalloc(p, size, gfp, ret, "vrealloc")

    @precondition(lambda self: any(o.kind in ("vmalloc", "slab") for o in self.objs.values()))
    @rule(pick=st.integers(0, 10**6), big=st.booleans(), grow=st.booleans())
    def kvrealloc(self, pick: int, big: bool, grow: bool) -> None:
        m = self.m
        p = self._pick(pick, ("vmalloc", "slab"))
        assert p is not None
        o = self.objs[p]
        if big:
            size = BIG_KV[pick % len(BIG_KV)]
        else:
            size = o.size + 1 + pick % (2 * PAGE) if grow else pick % max(o.size, 1) + 1
        if not self._room(size + PMD):
            return
        if not self.has_vrealloc:
            # 5.15-6.11: kvrealloc(p, oldsize, newsize, flags): p when oldsize >= newsize, else
            # kvmalloc, oldsize bytes copied, kvfree(p).
            with pytest.raises(TypeError, match="oldsize"):
                m.kvrealloc(p, size)
            ret = m.kvrealloc(p, size, oldsize=o.size)
            if o.size >= size:
                assert ret == p
                return
            assert ret is not None and ret != p
            self._gone(p)
            new = self._kv(ret, "kvrealloc", size, False)
            assert new.data[:o.size] == o.data[:o.size]
            return
        if o.kind == "vmalloc":  # 6.12+: vrealloc for a vmalloc address
            self._resize_vmalloc(p, size, G.GFP_KERNEL, m.kvrealloc(p, size), "kvrealloc")
            return
        with m.vm.page_lock:
            ks = m.slab.ksize(self._handle(p))
        ret = m.kvrealloc(p, size)
        if size <= ks:  # krealloc: the object already holds it
            assert ret == p
            o.data = o.data[:size] + bytearray(m.phys.frames.read(self._handle(p) + o.size, max(size - o.size, 0)))
            o.size = size
            return
        assert ret is not None and ret != p
        self._gone(p)
        new = self._kv(ret, "kvrealloc", size, False)
        assert new.data[:o.size] == o.data[:o.size], "kvrealloc did not keep the object's bytes"

    # ---- freeing ------------------------------------------------------------------------------------
    @precondition(lambda self: bool(self.objs))
    @rule(pick=st.integers(0, 10**6), via_kvfree=st.booleans())
    def free(self, pick: int, via_kvfree: bool) -> None:
        a = self._pick(pick, ("vmalloc", "slab", "ram", "pfn"))
        assert a is not None
        area = self.m.find_vm_area(a) if self.objs[a].kind == "vmalloc" else None
        resets = self.m.stats()["vm.reset_perms"]
        self._release(a, via_kvfree)
        self._gone(a)
        if area is not None and area.flags & VM_FLUSH_RESET_PERMS:
            # vm_reset_perms: the aliases back to the default, the range purged at once.
            assert self.m.stats()["vm.reset_perms"] == resets + 1
            assert not set(area.pages.tolist()) & set(self.m.direct_map_readonly())
            assert a not in {va.va_start for va in self.m.lazy_areas()}

    def _release(self, a: int, via_kvfree: bool) -> None:
        """Free ``a`` with the call that matches what made it."""
        m = self.m
        o = self.objs[a]
        if o.kind == "slab" or (o.kind == "vmalloc" and via_kvfree):
            m.kvfree(a)
        elif o.kind == "vmalloc":
            m.vfree(a)
        elif o.kind == "pfn":
            m.vunmap(a)
        else:
            m.vm_unmap_ram(a, o.count)
            assert all(p < 0 for p in m.pages_of(a, o.count * PAGE))
            for page in o.pages:
                m.free_page(page)

    @rule()
    def purge(self) -> None:
        self.m.vm_unmap_aliases()
        assert self.m.lazy_areas() == []

    @rule()
    def run_workers(self) -> None:
        self.m.run_workers()

    @rule()
    def vmap_node_shrink(self) -> None:
        pooled = len(self.m.pooled_areas())
        assert pooled == 0 or self.pooling
        assert self.m.vmap_node_shrink() == pooled
        assert self.m.pooled_areas() == []

    # ---- reading and writing ------------------------------------------------------------------------
    @precondition(lambda self: bool(self.objs))
    @rule(pick=st.integers(0, 10**6), where=st.sampled_from(["any", "tail", "all"]), off=st.integers(0, 10**7),
          count=st.integers(1, 3 * PAGE), seed=st.integers(0, 2**32), write=st.booleans(), cpu=st.booleans())
    def access(self, pick: int, where: str, off: int, count: int, seed: int, write: bool, cpu: bool) -> None:
        m = self.m
        a = self._pick(pick, ("vmalloc", "slab", "ram", "pfn"))
        assert a is not None
        o = self.objs[a]
        if where == "all":  # the whole allocation, the bytes past the requested size too
            off, count = 0, len(o.data)
        elif where == "tail":  # across the requested size, up to the end of the area
            off = max(min(o.size, len(o.data)) - count // 2, 0)
            count = len(o.data) - off
        else:
            off %= len(o.data)
            count = min(count, len(o.data) - off)
        data = pattern(seed, count)
        if o.kind == "slab":  # a kmalloc object: through the direct map
            if write:
                m.phys.frames.write(self._handle(a) + off, data)
                o.data[off:off + count] = data
            assert m.phys.frames.read(self._handle(a) + off, count) == o.data[off:off + count]
            return
        if cpu and o.kind != "pfn":  # a CPU load/store through the area's own PTEs
            if write and o.ro:
                with pytest.raises(pv.PageFault):
                    m.write(a + off, data)
            elif write:
                m.write(a + off, data)
                o.data[off:off + count] = data
            assert m.read(a + off, count) == o.data[off:off + count]
            return
        hole = o.kind == "pfn" or (o.kind == "ram" and not self.ram_readable)
        if write:
            got = m.vwrite(a + off, data)
            if hole:
                # VM_IOREMAP: skipped (count consumed).  vm_map_ram before 6.4: not an area at
                # all to the walk, so 0 when no area ends above it.
                assert got == count or (o.kind == "ram" and got == 0), got
            else:
                assert got == count
                o.data[off:off + count] = data
        got_b = m.vread(a + off, count)
        if hole:
            assert len(got_b) <= count and got_b.count(0) == len(got_b)
            assert o.kind == "ram" or len(got_b) == count
        else:
            assert got_b == o.data[off:off + count], f"{o.how} {a:#x}+{off:#x}"

    # ---- after every step ---------------------------------------------------------------------------
    @invariant()
    def agrees_with_the_reference(self) -> None:
        if not hasattr(self, "m"):
            return
        m = self.m
        m.check()
        want = set()
        for a, o in self.objs.items():
            if o.kind in ("vmalloc", "pfn"):
                want.add(a)
                area = m.find_vm_area(a)
                assert area is not None
                if area.pages_array is not None and area.pages_array[0] == "vmalloc":
                    want.add(area.pages_array[1])  # its page array, vmalloc'ed (> PAGE_SIZE)
        assert {x.addr for x in m.areas()} == want
        assert set(kv_objects(m.vm)) == {self._handle(a) for a, o in self.objs.items() if o.kind == "slab"}
        # kmemleak: the vmalloc'ed blocks (page arrays included), less the deferred ones.
        deferred = {a for a, o in self.objs.items() if o.deferred}
        assert {o.pointer for o in m.kmemleak_objects()} == {x.addr for x in m.areas()
                                                             if x.flags & VM_ALLOC} - deferred
        for a, o in self.objs.items():
            if o.kind == "slab":
                got = m.phys.frames.read(self._handle(a), len(o.data))
            elif o.kind == "ram":
                got = m.read(a, len(o.data))
                if self.ram_readable:
                    assert m.vread(a, len(o.data)) == o.data, f"vread of vm_map_ram {a:#x}"
            else:
                got = m.vread(a, len(o.data))
            assert got == o.data, f"{o.how} {o.kind} {a:#x} differs from the reference"
        # /proc/vmallocinfo parses, shows every live allocation and no pooled area.
        lines = parse_vmallocinfo(m.vmallocinfo()).lines
        pooled = [(va.va_start, va.va_end) for va in m.pooled_areas()]
        assert not pooled or self.pooling
        for ln in lines:
            for s, e in pooled:
                assert ln.end <= s or e <= ln.start, f"pooled area {s:#x}-{e:#x} shown: {ln}"
        starts = {ln.start: ln for ln in lines}
        for a, o in self.objs.items():
            if o.kind == "vmalloc":
                assert a in starts and "vmalloc" in starts[a].kinds, f"{o.how} {a:#x} not shown"
            elif o.kind == "pfn":
                assert a in starts and "ioremap" in starts[a].kinds, f"vmap_pfn {a:#x} not shown"
            elif o.kind == "ram":
                assert any(ln.start <= a and a + len(o.data) <= ln.end and "vm_map_ram" in ln.kinds
                           and "unpurged vm_area" not in ln.kinds for ln in lines), \
                    f"vm_map_ram {a:#x} not shown"

    def teardown(self) -> None:
        if not hasattr(self, "m"):
            return
        m = self.m  # everything freed, purged and shrunk: nothing left
        for a in sorted(self.objs):
            self._release(a, False)
        self.objs.clear()
        m.vm_unmap_aliases()
        m.vmap_node_shrink()
        m.check()
        assert not list(m.areas()) and not kv_objects(m.vm) and not m.pooled_areas()


SETTINGS = settings(max_examples=12, stateful_step_count=25, deadline=None)


def _config(kernel: str) -> type[NewCallsMachine]:
    name = "NewCalls" + kernel.replace(".", "_")
    return SETTINGS(type(name, (NewCallsMachine,), {"kernel": kernel}))


TestNewCalls61 = _config("6.1").TestCase
TestNewCalls612 = _config("6.12").TestCase
TestNewCalls615 = _config("6.15").TestCase


# ---- what the machine found ---------------------------------------------------------------------
def test_615_vrealloc_counts_the_requested_size_of_a_plain_vmalloc() -> None:
    """6.15 (a0309faf1cb0): __get_vm_area_node sets ``area->requested_size`` to the size its
    caller asked for, and __vmalloc_node_range passes ``real_size``: so a vmalloc'ed area of
    5000 bytes has requested_size 5000, an in-place grow to 6000 does not zero, and a move
    copies 6000 bytes, not the area's 8192."""
    m = pv.Machine(arch="x86_64", ram="128M", nodes=NODES, cpus=2, kernel="6.15")
    p = m.vzalloc(5000)
    assert p is not None
    area = m.find_vm_area(p)
    assert area is not None and area.requested_size == 5000
    m.write(p, b"x" * (2 * PAGE))
    assert m.vrealloc(p, 6000, G.GFP_KERNEL | ZERO) == p          # grow into the area: no zeroing
    assert m.read(p, 2 * PAGE) == b"x" * (2 * PAGE)
    assert m.vrealloc(p, 100, G.GFP_KERNEL | ZERO) == p           # shrink: [100, 6000) zeroed
    assert m.read(p, 2 * PAGE) == b"x" * 100 + bytes(5900) + b"x" * (2 * PAGE - 6000)
    m.write(p, b"y" * (2 * PAGE))
    q = m.vrealloc(p, 3 * PAGE, G.GFP_KERNEL | ZERO)               # a move copies requested_size
    assert q is not None and q != p
    assert m.read(q, 3 * PAGE) == b"y" * 100 + bytes(3 * PAGE - 100)
    m.vfree(q)
    m.check()


def test_612_check_knows_vm_map_ram_areas_of_vmap_nodes() -> None:
    """6.9+: alloc_vmap_area sets ``va->flags = va_flags | vn_id``, so vm_map_ram blocks and
    large areas carry their node bits; vmalloc_info_show prints node after node, so a large
    vm_map_ram area in an odd 16-page zone (node 1) is listed after a block of node 0 at a
    higher address.  check() takes both."""
    m = pv.Machine(arch="x86_64", ram="128M", nodes=NODES, cpus=2, kernel="6.12")
    v = m.vmalloc(16 * PAGE)  # 0x0-0x11000 with its guard page: the next area is in zone 1
    small = m.vm_map_ram([m.alloc_page()], 1)
    big = m.vm_map_ram([m.alloc_page() for _ in range(VMAP_MAX_ALLOC + 1)], VMAP_MAX_ALLOC + 1)
    assert v is not None and small is not None and big is not None and big < small
    shown = [ln.start for ln in parse_vmallocinfo(m.vmallocinfo()).lines if "vm_map_ram" in ln.kinds]
    assert shown == [small & ~((1 << 20) - 1), big]
    m.check()
    m.vm_unmap_ram(big, VMAP_MAX_ALLOC + 1)
    m.vm_unmap_ram(small, 1)
    m.check()
