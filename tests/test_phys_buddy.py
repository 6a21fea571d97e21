"""The buddy allocator of pyvmalloc.phys: invariants under random use, bulk == loop, fallback, zeroing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pyvmalloc.errors import ConfigError, Inconsistency, KernelBug
from pyvmalloc.phys import OWNER_PGTABLE, OWNER_SLAB, OWNER_VMALLOC, PG_buddy, PG_pgtable, PG_slab, PhysMem
from pyvmalloc.phys import gfp as G

PAGE = 64  # tiny frames keep byte checks cheap
HIGHMEM = G.GFPBIT.HIGHMEM
GFPS = [G.GFP_KERNEL, G.GFP_KERNEL | HIGHMEM, G.GFP_DMA32, G.GFP_DMA, G.GFP_ATOMIC,
        G.GFP_KERNEL | G.GFPBIT.THISNODE, G.GFP_KERNEL | HIGHMEM | G.GFPBIT.ZERO]


class Budget:
    """A fail_hook: lets ``remaining`` page allocations through, fails the next one, disarms."""

    def __init__(self) -> None:
        self.remaining: int | None = None
        self.calls: list[tuple[str, int]] = []

    def __call__(self, point: str, n: int) -> int:
        self.calls.append((point, n))
        if self.remaining is None:
            return n
        ok = min(n, self.remaining)
        self.remaining = None if ok < n else self.remaining - n
        return ok


def snapshot(mem: PhysMem) -> dict[str, object]:
    """Everything that makes two allocators behave the same from now on."""
    heads = np.flatnonzero(mem.flags & PG_buddy)
    return {
        "lists": [[list(d) for d in z.free_area] for z in mem._zones],
        "nr_free": [z.nr_free for z in mem._zones],
        "flags": mem.flags.tobytes(),
        "owner": mem.owner.tobytes(),
        "refcount": mem.refcount.tobytes(),
        "orders": (heads.tolist(), mem.order[heads].tolist()),
        "stats": mem.statistics(),
        "bytes": mem.frames.gather(np.arange(mem.nr_frames)).tobytes(),
    }


zones_strategy = st.sampled_from([
    (("DMA", 0, 16), ("NORMAL", 16, 75)),
    (("DMA", 0, 5), ("DMA32", 5, 40), ("NORMAL", 40, 99), ("HIGHMEM", 99, 130)),
    (("DMA32", 3, 50), ("HIGHMEM", 57, 90)),  # a hole below and one between zones
    (("NORMAL", 0, 64),),
])


class BuddyMachine(RuleBasedStateMachine):
    """Random alloc/free on twin allocators: ``a`` takes the bulk paths, ``b`` the equivalent
    loops of single calls.  After every step both must be identical and consistent."""

    @initialize(zones=zones_strategy, nodes=st.integers(1, 3), max_order=st.integers(1, 4),
                reserved=st.lists(st.tuples(st.integers(0, 120), st.integers(1, 6)), max_size=2))
    def boot(self, zones: tuple[tuple[str, int, int], ...], nodes: int, max_order: int,
             reserved: list[tuple[int, int]]) -> None:
        end = zones[-1][2]
        res = [(s, min(s + n, end)) for s, n in reserved if s < end]
        self.hooks = (Budget(), Budget())
        try:
            self.a, self.b = (PhysMem(PAGE, zones, nodes, hook, max_order, reserved=res)
                              for hook in self.hooks)
        except ConfigError:
            assume(False)
        self.boot_lists = [[sorted(d) for d in z.free_area] for z in self.a._zones]
        self.held: dict[int, int] = {}  # head pfn -> order, for every live allocation
        self.extra_refs: dict[int, int] = {}
        self.reserved = int(sum(z.reserved for z in self.a.zone_info()))

    def _both(self, fn: object) -> tuple[object, object]:
        return fn(self.a), fn(self.b)  # type: ignore[operator]

    @rule(gfp=st.sampled_from(GFPS), order=st.integers(0, 3), node=st.integers(-1, 2))
    def alloc(self, gfp: int, order: int, node: int) -> None:
        node = min(node, len(self.a.nodes) - 1)
        ra, rb = self._both(lambda m: m.alloc_pages_node(node, gfp, order))
        assert ra == rb
        if ra is not None:
            assert ra not in self.held and ra % (1 << order) == 0
            self.held[ra] = order

    @rule(gfp=st.sampled_from(GFPS), nr=st.integers(0, 40), node=st.integers(-1, 2),
          owner=st.sampled_from([OWNER_VMALLOC, OWNER_SLAB, OWNER_PGTABLE]))
    def alloc_bulk(self, gfp: int, nr: int, node: int, owner: str) -> None:
        node = min(node, len(self.a.nodes) - 1)
        got = self.a.alloc_pages_bulk(gfp, nr, node, owner=owner)
        loop = []
        for _ in range(nr):
            pfn = self.b.alloc_pages_node(node, gfp, 0, owner=owner)
            if pfn is None:
                break
            loop.append(pfn)
        assert got.tolist() == loop
        assert len(set(loop)) == len(loop)
        for pfn in loop:
            assert pfn not in self.held
            self.held[pfn] = 0

    @rule(n=st.integers(0, 12))
    def arm_failure(self, n: int) -> None:
        for hook in self.hooks:
            hook.remaining = n

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def free_one(self, data: st.DataObject) -> None:
        pfn = data.draw(st.sampled_from(sorted(self.held)))
        order = self.held[pfn]
        self._both(lambda m: m.free_pages(pfn, order))
        if self.extra_refs.get(pfn):
            self.extra_refs[pfn] -= 1
        else:
            del self.held[pfn]

    @precondition(lambda self: any(o == 0 for o in self.held.values()))
    @rule(data=st.data())
    def free_bulk(self, data: st.DataObject) -> None:
        singles = sorted(p for p, o in self.held.items() if o == 0)
        chosen = data.draw(st.lists(st.sampled_from(singles), unique=True, max_size=30))
        chosen = data.draw(st.permutations(chosen))
        self.a.free_pages_bulk(np.array(chosen, dtype=np.int64))
        for pfn in chosen:
            self.b.free_page(pfn)
        for pfn in chosen:
            if self.extra_refs.get(pfn):
                self.extra_refs[pfn] -= 1
            else:
                del self.held[pfn]

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def get_page(self, data: st.DataObject) -> None:
        pfn = data.draw(st.sampled_from(sorted(self.held)))
        self._both(lambda m: m.get_page(pfn))
        self.extra_refs[pfn] = self.extra_refs.get(pfn, 0) + 1

    @precondition(lambda self: self.held)
    @rule(data=st.data(), fill=st.integers(1, 255))
    def scribble(self, data: st.DataObject, fill: int) -> None:
        pfn = data.draw(st.sampled_from(sorted(self.held)))
        self._both(lambda m: m.frames.write(pfn * PAGE, bytes([fill]) * PAGE))

    @precondition(lambda self: self.a.nr_free() > 0)
    @rule(data=st.data())
    def double_free_is_a_bug(self, data: st.DataObject) -> None:
        free = np.flatnonzero((self.a.owner == 0) & (self.a.zone_ids(slice(0, self.a.nr_frames)) != 0xFF))
        pfn = int(data.draw(st.sampled_from(free.tolist())))
        before = snapshot(self.a)
        with pytest.raises(KernelBug):
            self.a.free_page(pfn)
        with pytest.raises(KernelBug):
            self.a.free_pages_bulk(np.array([pfn], dtype=np.int64))
        assert snapshot(self.a) == before  # a refused free changes nothing

    @invariant()
    def consistent_and_identical(self) -> None:
        if not hasattr(self, "a"):
            return
        self.a.check()
        assert snapshot(self.a) == snapshot(self.b)
        used = sum(1 << o for o in self.held.values())
        assert self.a.nr_free() + used + self.reserved == self.a.nr_total()
        # no frame in two live allocations
        cover = np.zeros(self.a.nr_frames, dtype=np.int64)
        for pfn, order in self.held.items():
            cover[pfn:pfn + (1 << order)] += 1
        assert cover.max(initial=0) <= 1

    def teardown(self) -> None:
        if not hasattr(self, "a"):
            return
        for pfn, order in sorted(self.held.items()):
            for _ in range(self.extra_refs.get(pfn, 0) + 1):
                self.a.free_pages(pfn, order)
        self.a.check()
        assert [[sorted(d) for d in z.free_area] for z in self.a._zones] == self.boot_lists


TestBuddyMachine = BuddyMachine.TestCase
TestBuddyMachine.settings = settings(max_examples=120, stateful_step_count=30, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow,
                                                            HealthCheck.filter_too_much])


# -- zone and node fallback ---------------------------------------------------------------------
def three_zone_mem(nodes: int = 1, hook: Budget | None = None) -> PhysMem:
    return PhysMem(PAGE, [("DMA", 0, 16), ("DMA32", 16, 48), ("NORMAL", 48, 96)], nodes, hook,
                   max_order=3)


@pytest.mark.parametrize("gfp,expected", [
    (G.GFP_KERNEL | HIGHMEM, ["NORMAL", "DMA32", "DMA"]),
    (G.GFP_KERNEL, ["NORMAL", "DMA32", "DMA"]),
    (G.GFP_DMA32 | G.GFP_KERNEL, ["DMA32", "DMA"]),
    (G.GFP_DMA | G.GFP_KERNEL, ["DMA"]),
])
def test_zone_fallback_order_until_oom(gfp: int, expected: list[str]) -> None:
    mem = three_zone_mem()
    zones = []
    while (pfn := mem.alloc_page(gfp)) is not None:
        zones.append(mem.zone_of(pfn))
    # each zone is drained completely before the next one in the zonelist is touched
    assert [z for i, z in enumerate(zones) if i == 0 or zones[i - 1] != z] == expected
    assert len(zones) == sum(mem.nr_total(zone=z) for z in expected)
    assert mem.statistics().failures == 1
    mem.check()


def test_node_fallback_ring_order_and_thisnode() -> None:
    mem = PhysMem(PAGE, [("NORMAL", 0, 48)], nodes=3, max_order=4)
    assert mem.zonelist(1, G.GFP_KERNEL) == [(1, "NORMAL"), (2, "NORMAL"), (0, "NORMAL")]
    only1 = mem.alloc_pages_bulk(G.GFP_KERNEL | G.GFPBIT.THISNODE, 100, node=1)
    assert {mem.node_of(int(p)) for p in only1} == {1} and len(only1) == 16
    assert mem.alloc_pages_node(1, G.GFP_KERNEL | G.GFPBIT.THISNODE, 0) is None
    rest = [mem.node_of(mem.alloc_pages_node(1, G.GFP_KERNEL, 0)) for _ in range(32)]
    assert rest == [2] * 16 + [0] * 16
    mem.check()


def test_empty_zones_are_not_populated() -> None:
    mem = PhysMem(PAGE, [("DMA", 0, 16), ("DMA32", 16, 16), ("NORMAL", 16, 64)], max_order=3)
    assert mem.zones_of_node(0) == ["DMA", "NORMAL"]
    assert mem.zonelist(0, G.GFP_DMA32) == [(0, "DMA")]


def test_dma_lives_on_node_zero_and_nodes_split_evenly() -> None:
    mem = PhysMem(4096, [("DMA", 0, 4096), ("DMA32", 4096, 1 << 18)], nodes=4)
    assert mem.zones_of_node(0) == ["DMA", "DMA32"]
    assert all(mem.zones_of_node(n) == ["DMA32"] for n in (1, 2, 3))
    assert [mem.nr_total(n) for n in range(4)] == [1 << 16] * 4


@given(gfp=st.integers(0, G.__GFP_BITS_MASK), nr=st.integers(0, 200), allow=st.integers(0, 200))
@settings(max_examples=60, deadline=None)
def test_bulk_respects_fail_hook(gfp: int, nr: int, allow: int) -> None:
    gfp &= ~G.GFPBIT.NOFAIL  # never injected: see test_nofail_is_never_injected
    hook = Budget()
    mem = three_zone_mem(hook=hook)
    hook.remaining = allow
    pfns = mem.alloc_pages_bulk(gfp, nr)
    avail = sum(mem.nr_total(zone=z) for z in G.gfp_zonelist(gfp, ["DMA", "DMA32", "NORMAL"]))
    assert len(pfns) == min(nr, allow, avail)
    assert len(np.unique(pfns)) == len(pfns)
    if nr:
        assert hook.calls == [("page_alloc", min(nr, avail + 1))]
    stats = mem.statistics()
    assert stats.injected_failures == (1 if allow < min(nr, avail + 1) else 0)
    assert stats.failures == (1 if len(pfns) < nr else 0)
    mem.check()


def test_nofail_is_never_injected() -> None:
    hook = Budget()
    mem = three_zone_mem(hook=hook)
    hook.remaining = 0
    assert mem.alloc_page(G.GFP_KERNEL | G.GFPBIT.NOFAIL) is not None
    assert hook.calls == []
    assert mem.alloc_page(G.GFP_KERNEL) is None
    assert mem.statistics().injected_failures == 1


# -- bytes --------------------------------------------------------------------------------------
@given(data=st.binary(min_size=1, max_size=PAGE), order=st.integers(0, 2), bulk=st.booleans())
@settings(max_examples=40, deadline=None)
def test_gfp_zero_clears_stale_bytes_and_plain_keeps_them(data: bytes, order: int, bulk: bool) -> None:
    mem = three_zone_mem()
    n = 1 if bulk else 1 << order
    pfn = int(mem.alloc_pages_bulk(G.GFP_KERNEL, 1)[0]) if bulk else mem.alloc_pages(G.GFP_KERNEL, order)
    for i in range(n):
        mem.frames.write((pfn + i) * PAGE, data)
    if bulk:
        mem.free_pages_bulk(np.array([pfn]))
        again = int(mem.alloc_pages_bulk(G.GFP_KERNEL, 1)[0])
    else:
        mem.free_pages(pfn, order)
        again = mem.alloc_pages(G.GFP_KERNEL, order)
    assert again == pfn  # LIFO: the block just freed heads its list
    assert mem.frames.read(pfn * PAGE, len(data)) == data  # stale, as in real RAM
    if bulk:
        mem.free_pages_bulk(np.array([pfn]))
        again = int(mem.alloc_pages_bulk(G.GFP_KERNEL | G.GFPBIT.ZERO, 1)[0])
    else:
        mem.free_pages(pfn, order)
        again = mem.alloc_pages(G.GFP_KERNEL | G.GFPBIT.ZERO, order)
    assert again == pfn
    assert mem.frames.read(pfn * PAGE, n * PAGE) == bytes(n * PAGE)


# -- misuse and configuration -------------------------------------------------------------------
def test_bad_frees_raise_kernel_bug_and_change_nothing() -> None:
    mem = three_zone_mem()
    pfn = mem.alloc_pages(G.GFP_KERNEL, 2)
    for bad in (lambda: mem.free_pages(pfn + 1, 0),      # tail of a block: count 0
                lambda: mem.free_pages(pfn + 1, 1),      # misaligned
                lambda: mem.free_pages(96, 0),           # outside memory
                lambda: mem.free_pages(-1, 0),
                lambda: mem.free_pages_bulk(np.array([pfn, pfn])),  # twice in one call
                lambda: mem.free_pages_bulk(np.array([[pfn]])),
                lambda: mem.free_pages_bulk(np.array([pfn, 10_000])),
                lambda: mem.alloc_pages_node(5, G.GFP_KERNEL, 0)):
        with pytest.raises(KernelBug):
            bad()
    mem.check()
    mem.free_pages(pfn, 2)
    mem.check()
    assert mem.alloc_pages(G.GFP_KERNEL, 3) is None  # order >= MAX_ORDER: NULL
    assert mem.alloc_pages(G.GFP_KERNEL, 2) is not None


def test_reserved_pages_stay_out_and_cannot_be_freed() -> None:
    mem = PhysMem(PAGE, [("NORMAL", 0, 32)], reserved=[(0, 3)], max_order=3)
    assert mem.nr_free() == 29 and mem.page(1).owner == "reserved"
    with pytest.raises(KernelBug):
        mem.free_page(1)
    got = set(mem.alloc_pages_bulk(G.GFP_KERNEL, 100).tolist())
    assert got == set(range(3, 32))
    mem.check()


@pytest.mark.parametrize("kwargs", [
    dict(nodes=0), dict(nodes=65), dict(nodes=3), dict(page_size=1000), dict(max_order=0),
    dict(zones=[]), dict(zones=[("NORMAL", 0, 0)]), dict(zones=[("NORMAL", 0, 64), ("DMA", 64, 80)]),
    dict(zones=[("NORMAL", 0, 64), ("HIGHMEM", 60, 80)]), dict(zones=[("BOGUS", 0, 64)]),
    dict(zones=[("NORMAL", 0)]), dict(reserved=[(5, 5000)]), dict(reserved=[(9, 3)]),
])
def test_bad_configurations_raise_config_error(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = dict(page_size=4096, zones=[("NORMAL", 0, 2048)], nodes=1)
    args.update(kwargs)
    with pytest.raises(ConfigError):
        PhysMem(**args)  # type: ignore[arg-type]


# -- the checker catches what it claims to --------------------------------------------------------
def _corrupt_cases() -> list[tuple[str, object]]:
    def owner_on_free(m: PhysMem) -> None:
        m.owner[40] = 2

    def lost_buddy_flag(m: PhysMem) -> None:
        head = next(iter(m._zones[0].free_area[3]))
        m.flags[head] = 0

    def stray_buddy_flag(m: PhysMem) -> None:
        m.flags[m.alloc_page(G.GFP_KERNEL)] = PG_buddy

    def counter(m: PhysMem) -> None:
        m._zones[0].nr_free += 1

    def unmerged(m: PhysMem) -> None:
        z = m._zones[0]
        head = z.free_area[3].popitem()[0]
        for half in (head, head + 4):
            z.free_area[2][half] = None
            m.flags[half] = PG_buddy
            m.order[half] = 2

    def misaligned(m: PhysMem) -> None:
        z = m._zones[0]
        head = z.free_area[3].popitem()[0]
        z.free_area[3][head + 1] = None

    def twice(m: PhysMem) -> None:
        z = m._zones[0]
        inner = next(iter(z.free_area[3])) + 1
        z.free_area[0][inner] = None
        m.flags[inner] = PG_buddy
        m.order[inner] = 0
        z.nr_free += 1

    def flag_owner(m: PhysMem) -> None:
        m.flags[m.alloc_page(G.GFP_KERNEL, owner=OWNER_VMALLOC)] = PG_slab | PG_pgtable

    return [("owner", owner_on_free), ("PG_buddy", lost_buddy_flag), ("PG_buddy", stray_buddy_flag),
            ("counter", counter), ("not merged", unmerged), ("aligned", misaligned),
            ("two free blocks", twice), ("flags", flag_owner)]


@pytest.mark.parametrize("words,corrupt", _corrupt_cases())
def test_check_names_broken_invariants(words: str, corrupt: object) -> None:
    mem = PhysMem(PAGE, [("NORMAL", 0, 64)], max_order=4)
    mem.check()
    corrupt(mem)  # type: ignore[operator]
    with pytest.raises(Inconsistency, match=words):
        mem.check()


# -- scale --------------------------------------------------------------------------------------
def test_64_gib_boots_and_bulk_allocates() -> None:
    zones = [("DMA", 0, 4096), ("DMA32", 4096, 1 << 20), ("NORMAL", 1 << 20, 1 << 24)]
    mem = PhysMem(4096, zones, nodes=4)
    assert mem.nr_pages == 1 << 24 and mem.nr_free() == 1 << 24
    pfns = mem.alloc_pages_bulk(G.GFP_KERNEL | HIGHMEM, 16384, owner=OWNER_VMALLOC)
    assert len(np.unique(pfns)) == 16384 and mem.zone_of(int(pfns[0])) == "NORMAL"
    assert len(mem.pfns_owned_by(OWNER_VMALLOC)) == 16384
    mem.free_pages_bulk(pfns)
    assert mem.nr_free() == 1 << 24
    assert mem.zone_info()[-1].free_per_order[-1] == (1 << 22) // 1024


def test_page_handle() -> None:
    mem = three_zone_mem(nodes=1)
    pfn = mem.alloc_page(G.GFP_KERNEL, owner=OWNER_PGTABLE)
    page = mem.page(pfn)
    assert page == mem.pfn_to_page(pfn) and hash(page) == hash(pfn)
    assert page.page_to_pfn() == mem.page_to_pfn(page) == pfn
    assert (page.zone, page.node, page.refcount, page.owner) == ("NORMAL", 0, 1, "pgtable")
    assert page.flag_names == "PG_pgtable" and page.phys_addr == pfn * PAGE
    mem.get_page(pfn)
    mem.put_page(pfn)
    assert mem.page(pfn).refcount == 1
    mem.free_page(pfn)
    assert mem.page(pfn).owner == "free"
    with pytest.raises(KernelBug):
        mem.page(96)


# -- sparse boot: sections filled on first touch ----------------------------------------------------
def test_sparse_sections_behave_as_if_filled_at_boot() -> None:
    # Two nodes, three zones, a reserved range and 2**15-frame sections: one machine whose
    # boot heads are filled up front (reading .flags fills every section), one that fills
    # them as the allocator reaches them.  Same pfns, same lists, same metadata throughout;
    # check() of the lazy one reads through the pending sections without filling them.
    zones = [("DMA", 16, 1 << 12), ("DMA32", 1 << 12, 1 << 17), ("NORMAL", 1 << 17, 3 << 17)]
    args = dict(page_size=PAGE, zones=zones, nodes=2, reserved=[(100, 300), (1 << 17, (1 << 17) + 5)])
    eager, lazy = PhysMem(**args), PhysMem(**args)  # type: ignore[arg-type]
    eager.flags  # noqa: B018 (fills every section)
    assert eager._npending == 0 and lazy._npending > 1
    pending = lazy._npending
    lazy.check()
    assert lazy._npending == pending
    assert lazy.zone_ids(slice(0, lazy.nr_frames)).tolist() == [
        lazy.zone_id(p) for p in range(lazy.nr_frames)]
    rng = np.random.default_rng(5)
    held: list[int] = []
    for step in range(300):
        if held and rng.random() < 0.4:
            i = int(rng.integers(len(held)))
            pfn = held.pop(i)
            for m in (eager, lazy):
                m.free_pages(pfn, 0)
        elif rng.random() < 0.2:
            nr, node = int(rng.integers(1, 3000)), int(rng.integers(-1, 2))
            got = [m.alloc_pages_bulk(G.GFP_KERNEL, nr, node) for m in (eager, lazy)]
            assert got[0].tolist() == got[1].tolist()
            for m in (eager, lazy):
                m.free_pages_bulk(got[0][::2])
            held += got[0][1::2].tolist()
        else:
            node = int(rng.integers(-1, 2))
            got = [m.alloc_pages_node(node, G.GFP_KERNEL, 0) for m in (eager, lazy)]
            assert got[0] == got[1]
            if got[0] is not None:
                held.append(got[0])
        if step % 50 == 0:
            lazy.check()
    lazy.check()
    assert lazy._npending > 0  # some sections were never reached
    assert snapshot(lazy) == snapshot(eager)


def test_boot_free_list_is_a_dict_in_list_order() -> None:
    # The top-order free list keeps boot's blocks as an array until taken; every operation
    # the allocator and check() use gives what a plain dict built at boot gives.
    from pyvmalloc.phys.memory import _FreeList

    rng = np.random.default_rng(7)
    boot = np.arange(0, 64 * 1024, 1024, dtype=np.int64)
    lazy, plain = _FreeList(boot), dict.fromkeys(boot.tolist())
    for _ in range(400):
        op = int(rng.integers(5))
        if op == 0 and plain:
            assert lazy.popitem() == plain.popitem()
        elif op == 1:
            key = int(rng.integers(64)) * 1024
            lazy[key] = plain[key] = None
        elif op == 2:
            key = int(rng.integers(64)) * 1024
            if key in plain:
                del lazy[key], plain[key]
            else:
                assert key not in lazy
        elif op == 3:
            key = int(rng.integers(64)) * 1024 + 2048 * 64
            lazy[key] = plain[key] = None
        assert len(lazy) == len(plain) and bool(lazy) == bool(plain)
        assert list(lazy) == list(plain)
    assert lazy == plain
