"""kmalloc/kfree of pyvmalloc.phys.slab: objects with real bytes in slab pages of the buddy allocator."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pyvmalloc.errors import KernelBug
from pyvmalloc.phys import OWNER_SLAB, PG_slab, Kmalloc, PhysMem
from pyvmalloc.phys.slab import min_partial
from pyvmalloc.phys import gfp as G

PAGE = 256
ZERO = G.GFPBIT.ZERO


def machine(nodes: int = 1, hook: object = None, page_offset: int = 0) -> tuple[PhysMem, Kmalloc]:
    mem = PhysMem(PAGE, [("DMA", 0, 16), ("NORMAL", 16, 64)], nodes, hook, max_order=3)  # type: ignore[arg-type]
    return mem, Kmalloc(mem, page_offset)


class KmallocMachine(RuleBasedStateMachine):
    """Random kmalloc/kfree: objects never overlap, each reads back what was written into it,
    slab pages are exactly the pages kmalloc holds, and freeing all gives every page back."""

    @initialize(nodes=st.integers(1, 2), page_offset=st.sampled_from([0, 0xC0000000]))
    def boot(self, nodes: int, page_offset: int) -> None:
        self.mem, self.k = machine(nodes, page_offset=page_offset)
        self.live: dict[int, tuple[int, bytes]] = {}  # handle -> (size, contents)
        self.free0 = self.mem.nr_free()

    @rule(size=st.integers(0, 3 * PAGE), zero=st.booleans(), dma=st.booleans(),
          node=st.integers(-1, 1), fill=st.integers(1, 255))
    def kmalloc(self, size: int, zero: bool, dma: bool, node: int, fill: int) -> None:
        node = min(node, len(self.mem.nodes) - 1)
        gfp = G.GFP_KERNEL | (ZERO if zero else 0) | (G.GFP_DMA if dma else 0)
        h = self.k.kmalloc(size, gfp, node)
        if h is None:  # only when no zone it may use has a block large enough
            order = max(self.k.size_class(max(size, 1)) // PAGE, 1).bit_length() - 1
            zones = ["DMA"] if dma else ["NORMAL", "DMA"]
            assert not any(any(z.free_per_order[order:]) for z in self.mem.zone_info()
                           if z.zone in zones)
            return
        assert h != 0 and h not in self.live
        assert self.k.ksize(h) >= max(size, 1)
        phys = self.k.phys_of(h)
        if zero:
            assert self.mem.frames.read(phys, size) == bytes(size)
        pfn = phys // PAGE
        assert self.mem.owner_of(pfn) == OWNER_SLAB and self.mem.page(pfn).flags & PG_slab
        if dma:
            assert self.mem.zone_of(pfn) == "DMA"
        data = bytes([fill]) * size
        self.mem.frames.write(phys, data)
        self.live[h] = (size, data)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def kfree(self, data: st.DataObject) -> None:
        h = data.draw(st.sampled_from(sorted(self.live)))
        self.k.kfree(h)
        del self.live[h]
        with pytest.raises(KernelBug):
            self.k.kfree(h)  # double free

    @invariant()
    def objects_hold_their_bytes_and_pages_add_up(self) -> None:
        spans = sorted((self.k.phys_of(h), self.k.phys_of(h) + self.k.ksize(h))
                       for h in self.live)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
        for h, (size, data) in self.live.items():
            assert self.mem.frames.read(self.k.phys_of(h), size) == data
        stats = self.k.statistics()
        assert stats.objects == len(self.live)
        assert stats.bytes_requested == sum(s for s, _ in self.live.values())
        assert stats.slab_pages == len(self.mem.pfns_owned_by(OWNER_SLAB))
        assert stats.slab_pages == self.free0 - self.mem.nr_free()
        self.mem.check()

    def teardown(self) -> None:
        if not hasattr(self, "k"):
            return
        for h in list(self.live):
            self.k.kfree(h)
        kept = self.k.empty_slabs()
        assert self.k.kmem_cache_shrink() == kept  # the kept empty slabs go back on a shrink
        pinned = sum(1 << o for _, o in self.k._pinned)
        assert self.k.statistics().slab_pages == pinned
        assert self.mem.nr_free() == self.free0 - pinned


TestKmallocMachine = KmallocMachine.TestCase
TestKmallocMachine.settings = settings(max_examples=40, stateful_step_count=40, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])


def test_zeroing_is_what_gfp_zero_does() -> None:
    mem, k = machine()
    h = k.kmalloc(100, G.GFP_KERNEL)
    mem.frames.write(k.phys_of(h), b"\xaa" * 128)
    k.kfree(h)
    stale = k.kmalloc(100, G.GFP_KERNEL)
    assert stale == h and mem.frames.read(k.phys_of(h), 100) == b"\xaa" * 100
    k.kfree(stale)
    fresh = k.kmalloc(100, G.GFP_KERNEL | ZERO)
    assert fresh == h and mem.frames.read(k.phys_of(h), 128) == bytes(128)


def test_fail_hook_and_nofail() -> None:
    calls = []

    def hook(point: str, n: int) -> int:
        calls.append(point)
        return 0 if point == "kmalloc" else n

    _mem, k = machine(hook=hook)
    assert k.kmalloc(64, G.GFP_KERNEL) is None
    assert calls == ["kmalloc"]
    assert k.statistics().injected_failures == 1
    assert k.kmalloc(64, G.GFP_KERNEL | G.GFPBIT.NOFAIL) is not None


def test_zone_modifiers_bug_only_when_a_slab_must_grow() -> None:
    # mm/slab.c 2.6.22 cache_grow(): the flag check runs only when a new slab is needed, which
    # is why mm/vmalloc.c masks kmalloc_node()'s flags with GFP_LEVEL_MASK.
    _mem, k = machine()
    with pytest.raises(KernelBug):
        k.kmalloc(64, G.GFP_KERNEL | G.GFPBIT.HIGHMEM)
    assert k.kmalloc(64, G.GFP_KERNEL) is not None
    assert k.kmalloc(64, G.GFP_KERNEL | G.GFPBIT.HIGHMEM) is not None  # partial slab: no check
    assert k.kmalloc(64, (G.GFP_KERNEL | G.GFPBIT.HIGHMEM) & G.GFP_LEVEL_MASK | ZERO) is not None


def test_misuse() -> None:
    mem, k = machine()
    k.kfree(0)
    assert k.ksize(0) == 0
    assert k.kmalloc(-1, G.GFP_KERNEL) is None
    assert k.kmalloc(PAGE << 3, G.GFP_KERNEL) is None  # larger than the largest block
    h = k.kmalloc(64, G.GFP_KERNEL)
    for bad in (h + 1, h + PAGE, 12345 * PAGE):
        with pytest.raises(KernelBug):
            k.kfree(bad)
    big = k.kmalloc(PAGE + 1, G.GFP_KERNEL)
    assert k.ksize(big) == 2 * PAGE
    with pytest.raises(KernelBug):
        k.kfree(big + 64)
    k.kfree(big)
    k.kfree(h)
    assert k.statistics().slab_pages == 1 == k.empty_slabs()  # kept for the next kmalloc(64)
    assert k.kmem_cache_shrink() == 1
    assert k.statistics().slab_pages == 0
    mem.check()


def test_empty_slabs_are_kept_up_to_min_partial_and_shrink_gives_them_back() -> None:
    # mm/slub.c: an empty slab stays on the partial list while the node holds fewer than
    # min_partial (ilog2(size) / 2 clamped to 5..10) of them; kmem_cache_shrink() frees them.
    assert [min_partial(s) for s in (32, 256, 1 << 12, 1 << 20, 1 << 30)] == [5, 5, 6, 10, 10]
    mem, k = machine()
    free0 = mem.nr_free()
    h = k.kmalloc(PAGE, G.GFP_KERNEL)  # one object per slab page
    pfn = k.phys_of(h) // PAGE
    k.kfree(h)
    assert k.empty_slabs() == 1 and mem.owner_of(pfn) == OWNER_SLAB
    allocs = mem.statistics().allocs
    assert k.kmalloc(PAGE, G.GFP_KERNEL) == h  # the kept slab, no page allocation
    assert mem.statistics().allocs == allocs and k.empty_slabs() == 0
    k.kfree(h)
    many = [k.kmalloc(PAGE, G.GFP_KERNEL) for _ in range(8)]
    for x in many:
        k.kfree(x)  # type: ignore[arg-type]
    assert k.empty_slabs() == min_partial(PAGE) == 5
    assert k.statistics().slab_pages == 5 == free0 - mem.nr_free()  # meminfo's Slab counts them
    mem.check()
    assert k.kmem_cache_shrink(64) == 0  # another class: nothing to give back
    assert k.kmem_cache_shrink(PAGE) == 5
    assert mem.nr_free() == free0 and k.statistics().slab_pages == 0
    mem.check()


def test_node_preference() -> None:
    mem, k = machine(nodes=2)
    h = k.kmalloc(64, G.GFP_KERNEL, node=1)
    assert mem.node_of(k.phys_of(h) // PAGE) == 1
