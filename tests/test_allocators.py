"""Properties of the list (2.6.22) and kva (5.2+) allocators, checked side by side and against
brute-force references computed from an independent model of the busy blocks."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from pyvmalloc.errors import ConfigError
from pyvmalloc.vmalloc._augtree import AugTree, Node
from pyvmalloc.vmalloc.allocator import ALLOCATORS, VmapAllocator, make_allocator
from pyvmalloc.vmalloc.kva_allocator import KvaAllocator
from pyvmalloc.vmalloc.list_allocator import ListAllocator

P = 4096
LOW, HIGH = P, 2**64 - P  # the address space both allocators hand out from
TOP = 2**64


# -- references ----------------------------------------------------------------------------------
def align_up(x: int, align: int) -> int:
    return -(-x // align) * align


Busy = dict[int, tuple[int, object]]  # start -> (size, owner)
Holes = list[tuple[int, int]]


def holes_of(busy: Busy) -> Holes:
    """``(start, end)`` of the free space around the model's busy blocks."""
    out = []
    cursor = LOW
    for start in sorted(busy):
        if start > cursor:
            out.append((cursor, start))
        cursor = start + busy[start][0]
    if cursor < HIGH:
        out.append((cursor, HIGH))
    return out


def first_fit(holes: Holes, size: int, align: int, vstart: int, vend: int) -> int | None:
    """Strict first fit: the lowest aligned address whose ``size`` bytes are free in the window."""
    for s, e in holes:
        a = align_up(max(s, vstart), align)
        if a + size <= e:
            return a if a + size <= vend else None
    return None


def kva_rule(holes: Holes, size: int, align: int, vstart: int, vend: int) -> int | None:
    """5.2+ __alloc_vmap_area over a plain list of free blocks: only blocks of at least
    ``size + align - 1`` count when ``align`` exceeds a page, unless the window is ``size`` long."""
    length = size + align - 1 if align > P and vend - vstart != size else size
    for s, e in holes:
        if e - s < length:
            continue
        a = align_up(max(s, vstart), align)
        if a + size <= e:
            return a if a + size <= vend else None
    return None


def busy_view(a: VmapAllocator, start: int = 0) -> list[tuple[int, int, object]]:
    return list(a.for_each_busy(start))


def free_view(a: VmapAllocator, vstart: int = 0, vend: int = TOP) -> list[tuple[int, int]]:
    return list(a.for_each_free(vstart, vend))


def model_free_view(busy: Busy, vstart: int, vend: int) -> Holes:
    out = []
    for s, e in holes_of(busy):
        lo, hi = max(s, vstart), min(e, vend)
        if lo < hi:
            out.append((lo, hi - lo))
    return out


def check_against_model(busy: Busy, *allocs: VmapAllocator) -> None:
    """Every allocator agrees with the model: same busy blocks, the exact complement free,
    internal invariants, never two busy blocks overlapping, free holes never adjacent."""
    want_busy = [(s, busy[s][0], busy[s][1]) for s in sorted(busy)]
    want_free = model_free_view(busy, 0, TOP)
    for a in allocs:
        a.check()  # type: ignore[attr-defined]
        assert len(a) == len(busy)
        got = busy_view(a)
        assert got == want_busy
        for (s1, z1, _), (s2, _, _) in zip(got, got[1:]):
            assert s1 + z1 <= s2
        holes = free_view(a)
        assert holes == want_free
        for (s1, z1), (s2, _) in zip(holes, holes[1:]):
            assert s1 + z1 < s2, "two free holes touch: a free did not merge"
        # busy + free tile the space exactly
        pieces = sorted([(s, z) for s, z, _ in got] + holes)
        assert sum(z for _, z in pieces) == HIGH - LOW
        assert pieces[0][0] == LOW and pieces[-1][0] + pieces[-1][1] == HIGH
        assert all(s1 + z1 == s2 for (s1, z1), (s2, _) in zip(pieces, pieces[1:]))


def big_align_step(lst: ListAllocator, kva: KvaAllocator, busy: Busy,
                   size: int, align: int, vstart: int, vend: int, owner: object) -> None:
    """One request with ``align > page`` on both; check each against its rule, then move the
    list's area to where kva put it so that both keep the same state."""
    holes = holes_of(busy)
    ff = first_fit(holes, size, align, vstart, vend)
    rule_answer = kva_rule(holes, size, align, vstart, vend)
    l_addr = lst.alloc(size, align, vstart, vend, owner)
    k_addr = kva.alloc(size, align, vstart, vend, owner)
    assert l_addr == ff
    assert k_addr == rule_answer
    if k_addr is not None:
        assert k_addr % align == 0
        assert vstart <= k_addr and k_addr + size <= vend
        assert l_addr is not None and k_addr >= l_addr
    elif l_addr is not None:
        # kva fails where list succeeds only when it searched for size + align - 1 and no free
        # block that long can serve: each starts below vstart or its aligned start runs past vend
        # (a block that long starting at or after vstart always has room for any alignment).
        length = size + align - 1
        assert vend - vstart != size
        for s, e in holes:
            if e - s >= length and s >= vstart:
                assert align_up(s, align) + size > vend
    if l_addr is not None:
        assert lst.remove(l_addr) is owner
    if k_addr is not None:
        assert lst.insert(k_addr, size, owner)
        busy[k_addr] = (size, owner)


# -- strategies ----------------------------------------------------------------------------------
def addr_st() -> st.SearchStrategy[int]:
    """Addresses in a crowded low region, at the edges of the space, and just past them."""
    return st.one_of(
        st.integers(0, 40).map(lambda n: n * P),
        st.integers(0, 6).map(lambda n: HIGH - n * P),
    )


def window_st() -> st.SearchStrategy[tuple[int, int]]:
    def build(v: tuple[int, int, int, bool]) -> tuple[int, int]:
        start, offset, span, to_top = v
        vstart = start + offset
        return vstart, (TOP if to_top else min(TOP, vstart + span * P))

    return st.tuples(addr_st(), st.sampled_from([0, 0, 0, 0, 512]), st.integers(1, 48),
                     st.booleans()).map(build)


sizes = st.integers(1, 8).map(lambda n: n * P)
small_aligns = st.sampled_from([1, P])
big_aligns = st.sampled_from([2 * P, 4 * P, 8 * P, 16 * P])

op_st = st.one_of(
    st.tuples(st.just("alloc"), sizes, small_aligns, window_st()),
    st.tuples(st.just("remove"), st.integers(0, 10**6), st.booleans()),
    st.tuples(st.just("insert"), addr_st(), sizes),
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_small_align_ops(ops: list[tuple], lst: ListAllocator, kva: KvaAllocator,
                        busy: Busy) -> None:
    for i, op in enumerate(ops):
        owner = ("owner", i)
        if op[0] == "alloc":
            _, size, align, (vstart, vend) = op
            a = lst.alloc(size, align, vstart, vend, owner)
            b = kva.alloc(size, align, vstart, vend, owner)
            assert a == b == first_fit(holes_of(busy), size, align, vstart, vend)
            if a is not None:
                busy[a] = (size, owner)
            assert free_view(lst, vstart, vend) == free_view(kva, vstart, vend)
        elif op[0] == "remove":
            _, pick, known = op
            addr = sorted(busy)[pick % len(busy)] if known and busy else LOW + pick * P
            want = busy.pop(addr)[1] if addr in busy else None
            assert lst.remove(addr) is want
            assert kva.remove(addr) is want
        else:
            _, addr, size = op
            ok = LOW <= addr and addr + size <= HIGH and all(
                s + z <= addr or addr + size <= s for s, (z, _) in busy.items())
            assert lst.insert(addr, size, owner) is ok
            assert kva.insert(addr, size, owner) is ok
            if ok:
                busy[addr] = (size, owner)
        assert busy_view(lst) == busy_view(kva)


# -- properties ----------------------------------------------------------------------------------
@FAST
@given(st.lists(op_st, max_size=40))
def test_list_and_kva_agree_for_page_alignments(ops: list[tuple]) -> None:
    lst, kva = ListAllocator(P), KvaAllocator(P)
    busy: Busy = {}
    run_small_align_ops(ops, lst, kva, busy)
    check_against_model(busy, lst, kva)


@FAST
@given(st.lists(op_st, max_size=30),
       st.lists(st.tuples(sizes, big_aligns, window_st()), min_size=1, max_size=8))
def test_kva_large_alignment_follows_kernel_search_length_rule(
        ops: list[tuple], requests: list[tuple[int, int, tuple[int, int]]]) -> None:
    lst, kva = ListAllocator(P), KvaAllocator(P)
    busy: Busy = {}
    run_small_align_ops(ops, lst, kva, busy)
    for i, (size, align, (vstart, vend)) in enumerate(requests):
        big_align_step(lst, kva, busy, size, align, vstart, vend, ("big", i))
    check_against_model(busy, lst, kva)


def test_kva_large_alignment_examples() -> None:
    """A free hole of 4 pages between busy blocks serves a 4-page, 4-page-aligned request only
    when the window is exactly that hole; list first fit takes it either way."""
    for cls in (ListAllocator, KvaAllocator):
        a = cls(P)
        assert a.insert(LOW, 7 * P, "low") and a.insert(12 * P, 100 * P, "high")
        exact = a.alloc(4 * P, 4 * P, 8 * P, 12 * P, "x")
        assert exact == 8 * P
        assert a.remove(8 * P) == "x"
        wider = a.alloc(4 * P, 4 * P, 8 * P, 13 * P, "y")
        assert wider == (8 * P if cls is ListAllocator else None)


def seed_get_vm_area_walk(busy: list[tuple[int, int]], size: int, align: int,
                          start: int, end: int) -> int | None:
    """2.6.22 __get_vm_area_node's walk, transcribed with its missing end check."""
    addr = align_up(start, align)
    for t_addr, t_size in busy:
        if t_addr < addr:
            if t_addr + t_size >= addr:
                addr = align_up(t_addr + t_size, align)
            continue
        if addr + size <= t_addr:
            return addr
        addr = align_up(t_addr + t_size, align)
        if addr > end - size:
            return None
    return addr


@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 4)), max_size=6),
       sizes, small_aligns, st.integers(1, 30), st.integers(1, 12))
@FAST
def test_list_allocator_never_runs_past_end_seed_bug_fixed(
        blocks: list[tuple[int, int]], size: int, align: int, vstart_pg: int, span: int) -> None:
    """2.6.22 returns the walk's address unchecked when it runs off the list (or is pushed
    past ``end`` by an area starting below ``start``); 2.6.28 checks ``addr + size > vend``."""
    lst = ListAllocator(P)
    for pg, n in blocks:
        lst.insert(pg * P, n * P, None)
    busy = [(s, z) for s, z, _ in lst.for_each_busy()]
    vstart, vend = vstart_pg * P, (vstart_pg + span) * P
    seed = seed_get_vm_area_walk(busy, size, align, vstart, vend)
    got = lst.alloc(size, align, vstart, vend, None)
    if seed is not None and seed + size <= vend:
        assert got == seed  # the seed's answer, wherever it was right
    else:
        assert got is None
    if got is not None:
        assert vstart <= got and got + size <= vend


def test_seed_bug_example_empty_vmlist() -> None:
    # With an empty vmlist the seed returns ALIGN(start) for any size, even past end.
    assert seed_get_vm_area_walk([], 4 * P, 1, 2 * P, 4 * P) == 2 * P
    assert ListAllocator(P).alloc(4 * P, 1, 2 * P, 4 * P, None) is None
    assert KvaAllocator(P).alloc(4 * P, 1, 2 * P, 4 * P, None) is None


class TwoAllocators(RuleBasedStateMachine):
    """Both allocators driven by the same calls, checked against a model after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.lst = ListAllocator(P)
        self.kva = KvaAllocator(P)
        self.busy: Busy = {}
        self.step = 0

    def owner(self) -> object:
        self.step += 1
        return ("owner", self.step)

    @rule(size=sizes, align=small_aligns, window=window_st())
    def alloc_page_aligned(self, size: int, align: int, window: tuple[int, int]) -> None:
        vstart, vend = window
        owner = self.owner()
        a = self.lst.alloc(size, align, vstart, vend, owner)
        b = self.kva.alloc(size, align, vstart, vend, owner)
        assert a == b == first_fit(holes_of(self.busy), size, align, vstart, vend)
        if a is not None:
            self.busy[a] = (size, owner)

    @rule(size=sizes, align=big_aligns, window=window_st())
    def alloc_large_alignment(self, size: int, align: int, window: tuple[int, int]) -> None:
        big_align_step(self.lst, self.kva, self.busy, size, align, *window, self.owner())

    @rule(pick=st.integers(0, 10**6))
    def remove_busy(self, pick: int) -> None:
        if not self.busy:
            return
        addr = sorted(self.busy)[pick % len(self.busy)]
        owner = self.busy.pop(addr)[1]
        assert self.lst.remove(addr) is owner
        assert self.kva.remove(addr) is owner

    @rule(addr=addr_st(), offset=st.sampled_from([0, 1, P // 2]))
    def remove_unknown_changes_nothing(self, addr: int, offset: int) -> None:
        addr += offset
        if addr in self.busy:
            return
        assert self.lst.remove(addr) is None
        assert self.kva.remove(addr) is None

    @rule(addr=addr_st(), size=sizes)
    def insert(self, addr: int, size: int) -> None:
        owner = self.owner()
        ok = LOW <= addr and addr + size <= HIGH and all(
            s + z <= addr or addr + size <= s for s, (z, _) in self.busy.items())
        assert self.lst.insert(addr, size, owner) is ok
        assert self.kva.insert(addr, size, owner) is ok
        if ok:
            self.busy[addr] = (size, owner)

    @rule(pick=st.integers(0, 10**6), back=st.integers(0, 3), size=sizes)
    def insert_overlapping_changes_nothing(self, pick: int, back: int, size: int) -> None:
        if not self.busy:
            return
        start = sorted(self.busy)[pick % len(self.busy)]
        addr = max(LOW, start - back * P)
        size = max(size, start - addr + P)  # reaches into the busy block
        assert self.lst.insert(addr, size, None) is False
        assert self.kva.insert(addr, size, None) is False

    @rule(addr=addr_st(), offset=st.integers(0, 2 * P), span=st.integers(1, 30))
    def lookups(self, addr: int, offset: int, span: int) -> None:
        addr = min(addr + offset, TOP)
        vend = min(addr + span * P, TOP)
        want_find = self.busy[addr][1] if addr in self.busy else None
        want_containing = next(((s, z, o) for s, (z, o) in self.busy.items() if s <= addr < s + z),
                               None)
        want_after = [(s, self.busy[s][0], self.busy[s][1]) for s in sorted(self.busy)
                      if s + self.busy[s][0] > addr]
        want_free = model_free_view(self.busy, addr, vend)
        for a in (self.lst, self.kva):
            assert a.find(addr) is want_find
            assert a.find_containing(addr) == want_containing
            assert busy_view(a, addr) == want_after
            assert free_view(a, addr, vend) == want_free

    @invariant()
    def agree_with_model(self) -> None:
        check_against_model(self.busy, self.lst, self.kva)


TwoAllocators.TestCase.settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                                          suppress_health_check=[HealthCheck.too_slow])
test_two_allocators_state_machine = TwoAllocators.TestCase


# -- scale, interface and bad input --------------------------------------------------------------
def test_kva_trees_stay_logarithmic_under_churn() -> None:
    rnd = random.Random(5)
    kva = KvaAllocator(P)
    live = []
    for i in range(4000):
        addr = kva.alloc(rnd.choice([2, 2, 3, 101]) * P, 1, LOW, LOW + 2**36, i)
        assert addr is not None
        live.append(addr)
    rnd.shuffle(live)
    for addr in live[:2000]:
        kva.remove(addr)
    kva.check()
    free_h, busy_h = kva.tree_heights()
    n_free = len(list(kva.for_each_free(0, TOP)))
    # AVL: height < 1.4405 log2(n + 2)
    assert busy_h < 1.4405 * math.log2(len(kva) + 2)
    assert free_h < 1.4405 * math.log2(n_free + 2)
    assert kva.largest_free() == max(z for _, z in kva.for_each_free(0, TOP))


def test_make_allocator_builds_both_implementations() -> None:
    for name in ALLOCATORS:
        a = make_allocator(name, P)
        assert isinstance(a, VmapAllocator)
        assert a.name == name and len(a) == 0
        assert free_view(a) == [(LOW, HIGH - LOW)]
    with pytest.raises(ConfigError):
        make_allocator("buddy", P)


@pytest.mark.parametrize("cls", [ListAllocator, KvaAllocator])
def test_bad_arguments_raise_config_error(cls: type) -> None:
    a = cls(P)
    for size, align, vstart, vend in [(0, 1, LOW, HIGH), (P + 1, 1, LOW, HIGH), (P, 3, LOW, HIGH),
                                      (P, 0, LOW, HIGH), (float(P), 1, LOW, HIGH),
                                      (P, 1, -P, HIGH), (P, 1, LOW, TOP + 1), (P, 1, "0", HIGH)]:
        with pytest.raises(ConfigError):
            a.alloc(size, align, vstart, vend, None)
    for addr, size in [(LOW, 0), (LOW, 100), (-P, P), (None, P)]:
        with pytest.raises(ConfigError):
            a.insert(addr, size, None)
    with pytest.raises(ConfigError):
        a.find_containing("0x1000")
    with pytest.raises(ConfigError):
        list(a.for_each_busy(-1))
    with pytest.raises(ConfigError):
        list(a.for_each_free(0, 2**65))
    assert a.find("0x1000") is None and a.remove(None) is None  # no such area, as vfree says
    for page in (0, 3000, -4096, 4096.0):
        with pytest.raises(ConfigError):
            cls(page)
    assert len(a) == 0 and free_view(a) == [(LOW, HIGH - LOW)]


@pytest.mark.parametrize("cls", [ListAllocator, KvaAllocator])
def test_empty_or_outside_windows_find_nothing(cls: type) -> None:
    a = cls(P)
    assert a.alloc(P, 1, 8 * P, 8 * P, None) is None
    assert a.alloc(P, 1, 9 * P, 8 * P, None) is None
    assert a.alloc(P, 1, 0, P, None) is None  # page 0 is NULL
    assert a.alloc(P, 1, HIGH, TOP, None) is None  # the last page is never handed out
    assert a.alloc(P, 1, 0, TOP, None) == LOW
    assert a.alloc(P, 1, HIGH - P, TOP, None) == HIGH - P
    assert not a.insert(0, P, None) and not a.insert(HIGH, P, None)


def test_kva_lowest_match_on_a_fragmented_tree() -> None:
    """Thousands of free blocks (deeper trees than the properties above build): every request,
    of any alignment and window, lands where the rule over the plain free list says."""
    rnd = random.Random(7)
    kva = KvaAllocator(P)
    busy: Busy = {}
    for i in range(3000):
        addr, size = LOW + rnd.randint(0, 60000) * P, rnd.randint(1, 12) * P
        if kva.insert(addr, size, i):
            busy[addr] = (size, i)
    holes = holes_of(busy)
    assert len(holes) > 2000
    for _ in range(2000):
        size = rnd.randint(1, 16) * P
        align = rnd.choice([1, P, 2 * P, 4 * P, 8 * P, 16 * P, 64 * P])
        vstart = LOW + rnd.randint(0, 60000) * P + rnd.choice([0, 0, 100])
        vend = rnd.choice([vstart + rnd.randint(1, 2000) * P, vstart + size, TOP])
        addr = kva.alloc(size, align, vstart, vend, "q")
        assert addr == kva_rule(holes, size, align, vstart, vend)
        if addr is not None:
            assert kva.remove(addr) == "q"
    kva.check()


@FAST
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 300), st.integers(1, 40)), max_size=150))
def test_augmented_avl_tree_keeps_balance_and_subtree_max(ops: list[tuple[bool, int, int]]) -> None:
    """The tree under kva on its own: links, order, balance and subtree_max_size after every
    insert and delete, including deletes of nodes with two children."""
    tree = AugTree(augment=True)
    nodes: dict[int, Node] = {}
    for add, key, size in ops:
        if add:
            start = key * 64
            if start in nodes or (tree.floor(start) and tree.floor(start).end > start):
                continue
            nxt = tree.neighbours(start)[1]
            node = Node(start, min(start + size, nxt.start) if nxt else start + size)
            if nxt is not None and key % 2:
                tree.insert_before(node, nxt)
            else:
                tree.insert(node)
            nodes[start] = node
        elif nodes:
            victim = sorted(nodes)[key % len(nodes)]
            tree.delete(nodes.pop(victim))
        assert tree.check("t") == len(nodes)
        assert [n.start for n in tree.iter_from(tree.first())] == sorted(nodes)
        want_max = max((n.end - n.start for n in nodes.values()), default=0)
        assert (tree.root.max if tree.root else 0) == want_max
