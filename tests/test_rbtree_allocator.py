"""The 2.6.28 - 5.1 allocators (``rbtree``, ``rbtree-cache``) against independent references:
2.6.28's first fit with one extra page after every busy area, strict lowest fit (``list``) for
the cache whenever it was just reset, and the one case where the cache answers higher."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from test_allocators import (  # tests/ is on sys.path under pytest's default import mode
    FAST,
    HIGH,
    LOW,
    TOP,
    Busy,
    Holes,
    align_up,
    big_aligns,
    check_against_model,
    first_fit,
    free_view,
    holes_of,
    op_st,
    sizes,
    small_aligns,
    test_bad_arguments_raise_config_error,
    test_empty_or_outside_windows_find_nothing,
    window_st,
)

from pyvmalloc.vmalloc.allocator import ALLOCATORS, VmapAllocator, make_allocator
from pyvmalloc.vmalloc.list_allocator import ListAllocator
from pyvmalloc.vmalloc.rbtree_allocator import RbtreeAllocator, RbtreeCacheAllocator

P = 4096


def clip(vstart: int, vend: int) -> tuple[int, int]:
    return max(vstart, LOW), min(vend, HIGH)


def rule_2628(busy: Busy, size: int, align: int, vstart: int, vend: int) -> int | None:
    """2.6.28 by brute force, not by its walk: the lowest candidate, ``ALIGN(vstart)`` or
    ``ALIGN(va_end + PAGE_SIZE)`` of some area, that no area blocks, where an area blocks
    ``a`` when ``va_start < a + size`` and ``va_end >= a``."""
    vstart, vend = clip(vstart, vend)
    base = align_up(vstart, align)
    cands = {base} | {align_up(s + z + P, align) for s, (z, _) in busy.items()}
    for a in sorted(c for c in cands if c >= base):
        if a + size > vend:
            return None
        if not any(s < a + size and s + z >= a for s, (z, _) in busy.items()):
            return a
    return None


all_aligns = st.one_of(small_aligns, big_aligns)
mixed_op_st = st.one_of(
    op_st,
    st.tuples(st.just("alloc"), sizes, big_aligns, window_st()),
)


def run_ops(a: RbtreeAllocator, ops: list[tuple], on_alloc) -> Busy:  # type: ignore[no-untyped-def]
    """Drive ``a`` with ``ops``; ``on_alloc(busy, size, align, vstart, vend, got)`` checks each
    answer against the state before it; check() and the model after every step."""
    busy: Busy = {}
    for i, op in enumerate(ops):
        run_ops_one(a, op, i, on_alloc, busy)
        check_against_model(busy, a)
    return busy


# -- rbtree: 2.6.28 ------------------------------------------------------------------------------
@FAST
@given(st.lists(mixed_op_st, max_size=40))
def test_rbtree_is_first_fit_with_a_page_after_each_area(ops: list[tuple]) -> None:
    """Every answer, at any alignment, is the brute-force 2.6.28 rule, for windows that start
    on a page as every kernel caller's do (VMALLOC_START, MODULES_VADDR): an unaligned window
    leaves areas at unaligned addresses, which no kernel has and the rule does not cover."""

    def on_alloc(busy, size, align, vstart, vend, got):  # type: ignore[no-untyped-def]
        if vstart % P or any(s % P for s in busy):
            return
        assert got == rule_2628(busy, size, align, vstart, vend)

    run_ops(RbtreeAllocator(P), ops, on_alloc)


@FAST
@given(st.lists(mixed_op_st, max_size=40))
def test_rbtree_equals_list_over_areas_one_page_longer(ops: list[tuple]) -> None:
    """For page-aligned windows 2.6.28 answers as 2.6.22's walk would if every busy area
    reached one page further: the list allocator, fed the same areas each one page longer,
    gives the same address (or both fail)."""

    def on_alloc(busy, size, align, vstart, vend, got):  # type: ignore[no-untyped-def]
        if vstart % P or any(s % P for s in busy):  # an earlier unaligned window placed one
            return
        lst = ListAllocator(P)
        merged: list[list[int]] = []  # areas one page longer, touching ones merged
        for s in sorted(busy):
            e = min(s + busy[s][0] + P, HIGH)
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        for s, e in merged:
            assert lst.insert(s, e - s, None)
        want = lst.alloc(size, align, vstart, vend, None)
        assert got == want

    run_ops(RbtreeAllocator(P), ops, on_alloc)


def test_rbtree_differs_from_list_the_extra_page() -> None:
    """2.6.28 mm/vmalloc.c alloc_vmap_area: ``addr = ALIGN(first->va_end + PAGE_SIZE, align)``.
    Two 2-page requests (1 page + guard each) land 3 pages apart, not 2 as with vmlist::

        list:    |AAgBBg......       (A, B: data page, g: guard page in the size)
        rbtree:  |AAg.BBg.....       (.: the page the walk leaves after each area)
    """
    lst, rb = ListAllocator(P), RbtreeAllocator(P)
    assert [lst.alloc(2 * P, P, 0, TOP, n) for n in "AB"] == [LOW, LOW + 2 * P]
    assert [rb.alloc(2 * P, P, 0, TOP, n) for n in "AB"] == [LOW, LOW + 3 * P]
    # the page after A is free space (no vmap_area covers it) but no search uses it
    assert free_view(rb, LOW, LOW + 5 * P) == [(LOW + 2 * P, P)]
    assert rb.alloc(P, P, LOW, LOW + 5 * P, "C") is None
    assert rb.alloc(P, P, LOW + 2 * P, LOW + 5 * P, "C") is None  # va_end == addr blocks too
    # fixed areas may touch: insert does not add a page
    assert rb.insert(LOW + 2 * P, P, "D")
    rb.check()


def test_rbtree_unaligned_vstart_inside_the_extra_page() -> None:
    """The descent takes the first area with ``va_end >= addr``: a start that is not
    page-aligned, inside the page after an area, is not pushed past it::

        |AAg.....B|     A: 2 pages at LOW, B: fixed at LOW + 8 pages
    """
    rb = RbtreeAllocator(P)
    assert rb.alloc(2 * P, P, 0, TOP, "A") == LOW and rb.insert(LOW + 8 * P, P, "B")
    assert rb.alloc(P, P, LOW + 2 * P, TOP, "C") == LOW + 3 * P  # page-aligned: skipped
    assert rb.remove(LOW + 3 * P) == "C"
    assert rb.alloc(P, 1, LOW + 2 * P + 512, TOP, "C") == LOW + 2 * P + 512


# -- rbtree-cache: 2.6.39 - 5.1 ------------------------------------------------------------------
def cache_will_reset(a: RbtreeCacheAllocator, size: int, align: int, vstart: int) -> bool:
    """alloc_vmap_area's reset test, plus ``goto nocache`` when the cache lies below vstart."""
    if (a.free_vmap_cache is None or size < a.cached_hole_size or vstart < a.cached_vstart
            or align < a.cached_align):
        return True
    end = next(s + z for s, z, _ in a.for_each_busy(a.free_vmap_cache))
    return align_up(end, align) < vstart


def hole_usable(holes: Holes, addr: int, size: int, align: int, vstart: int) -> int:
    """Usable aligned length of the hole holding ``[addr, addr + size)``."""
    s, e = next((s, e) for s, e in holes if s <= addr and addr + size <= e)
    return e - align_up(max(s, vstart), align)


def check_cache_claim(ops: list[tuple]) -> Counter[str]:
    """Run ``ops`` on ``rbtree-cache``: after a reset every answer is strict lowest fit
    (``list``); from the cache it is never below the cache, and differs from lowest fit only
    when that is a hole below the cache whose usable length is exactly ``size ==
    cached_hole_size`` (then the answer is above the cache, or None).  Counts the cases."""
    a = RbtreeCacheAllocator(P)
    seen: Counter[str] = Counter()
    pending: list[tuple[bool, int, int | None]] = []
    original_alloc = a.alloc

    def spying_alloc(size, align, vstart, vend, owner):  # type: ignore[no-untyped-def]
        cache = a.free_vmap_cache
        cache_end = None if cache is None else next(s + z for s, z, _ in a.for_each_busy(cache))
        reset = cache_will_reset(a, size, align, clip(vstart, vend)[0])
        pending.append((reset, a.cached_hole_size, cache_end))
        return original_alloc(size, align, vstart, vend, owner)

    a.alloc = spying_alloc  # type: ignore[method-assign]

    def on_alloc(busy, size, align, vstart, vend, got):  # type: ignore[no-untyped-def]
        reset, hole, cache_end = pending.pop()
        ff = first_fit(holes_of(busy), size, align, vstart, vend)
        seen["from scratch" if reset else "from the cache"] += 1
        if reset:
            assert got == ff
            return
        assert cache_end is not None and (got is None or got >= align_up(cache_end, align))
        if got != ff:
            seen["above an exact-size hole" if got is not None else "failed, hole below"] += 1
            assert ff is not None and ff < align_up(cache_end, align)
            cv = clip(vstart, vend)[0]
            assert size == hole == hole_usable(holes_of(busy), ff, size, align, cv)

    run_ops(a, ops, on_alloc)
    return seen


# Small requests in a crowded low region, mostly page-aligned: exact-size holes are common.
crowded_op_st = st.one_of(
    st.tuples(st.just("alloc"), st.integers(1, 3).map(lambda n: n * P),
              st.sampled_from([P, P, P, 1, 2 * P]),
              st.tuples(st.integers(0, 6).map(lambda n: n * P), st.sampled_from([TOP, 60 * P]))),
    st.tuples(st.just("remove"), st.integers(0, 10**6), st.just(True)),
    st.tuples(st.just("insert"), st.integers(1, 40).map(lambda n: n * P),
              st.integers(1, 3).map(lambda n: n * P)),
)


@FAST
@given(st.one_of(st.lists(mixed_op_st, max_size=60), st.lists(crowded_op_st, max_size=60)))
def test_rbtree_cache_is_lowest_fit_except_for_an_exact_cached_hole(ops: list[tuple]) -> None:
    for what, n in check_cache_claim(ops).items():
        event(f"{what}: {min(n, 3)}{'+' if n >= 3 else ''}")


def test_rbtree_cache_claim_on_long_random_runs() -> None:
    """The same claim over long seeded runs, which do reach the exact-size case."""
    rnd = random.Random(3)
    total: Counter[str] = Counter()
    for _ in range(40):
        ops: list[tuple] = []
        for _ in range(300):
            r = rnd.random()
            if r < 0.55:
                ops.append(("alloc", rnd.randint(1, 3) * P, rnd.choice([P, P, P, 1, 2 * P]),
                            (rnd.randint(0, 6) * P, rnd.choice([TOP, 200 * P]))))
            elif r < 0.9:
                ops.append(("remove", rnd.randint(0, 10**6), True))
            else:
                ops.append(("insert", rnd.randint(1, 150) * P, rnd.randint(1, 3) * P))
        total += check_cache_claim(ops)
    assert total["from scratch"] and total["from the cache"]
    assert total["above an exact-size hole"] > 0


def test_rbtree_cache_places_an_exact_fit_above_the_cache() -> None:
    """A hole of exactly ``cached_hole_size`` bytes below the cache, and a request that size.

    3.x-5.1 mm/vmalloc.c alloc_vmap_area: the reset test is ``size < cached_hole_size`` (strict),
    so the search starts at ``ALIGN(first->va_end, align)`` of the cache; the walk had recorded
    the hole with ``if (addr + cached_hole_size < first->va_start) cached_hole_size =
    first->va_start - addr``.  Pages from LOW (one column per page)::

        step 1  |AA..BBBB|            A, B inserted (fixed areas; the cache untouched)
        step 2  |AA..BBBBCCC|         C: 3 pages, fresh search; the 2-page hole after A is
                                      too small, recorded: cached_hole_size = 2 pages; cache = C
        step 3  |AA..BBBBCCCDD|       D: 2 pages, 2 < 2 is false: search from C, above it
        list    |AADDBBBBCCC|         lowest fit would have used the hole
    """
    a, lst = RbtreeCacheAllocator(P), ListAllocator(P)
    for x in (a, lst):
        assert x.insert(LOW, 2 * P, "A") and x.insert(LOW + 4 * P, 4 * P, "B")
        assert x.alloc(3 * P, P, 0, TOP, "C") == LOW + 8 * P
    assert a.free_vmap_cache == LOW + 8 * P and a.cached_hole_size == 2 * P
    assert a.alloc(2 * P, P, 0, TOP, "D") == LOW + 11 * P
    assert lst.alloc(2 * P, P, 0, TOP, "D") == LOW + 2 * P
    # a request one page smaller is below cached_hole_size: reset, lowest fit
    assert a.alloc(P, P, 0, TOP, "E") == LOW + 2 * P
    assert a.cached_hole_size == 0 and a.free_vmap_cache == LOW + 2 * P
    a.check()


def test_rbtree_cache_fails_with_an_exact_hole_free_below() -> None:
    """The same hole, but nothing above the cache fits below vend: ``goto overflow`` (the
    kernel's -EBUSY after its purge-and-retry), though the hole below would have taken it.
    The cache is left as it was (overflow undoes nothing)::

        |AA..BBBBCCC|   vend right after C
    """
    a = RbtreeCacheAllocator(P)
    vend = LOW + 11 * P
    assert a.insert(LOW, 2 * P, "A") and a.insert(LOW + 4 * P, 4 * P, "B")
    assert a.alloc(3 * P, P, 0, vend, "C") == LOW + 8 * P
    assert a.alloc(2 * P, P, 0, vend, "D") is None
    assert a.alloc(2 * P, P, 0, vend, "D") is None  # the retry fails the same way
    assert (a.free_vmap_cache, a.cached_hole_size) == (LOW + 8 * P, 2 * P)
    lst = ListAllocator(P)
    assert lst.insert(LOW, 2 * P, "A") and lst.insert(LOW + 4 * P, 4 * P, "B")
    assert lst.insert(LOW + 8 * P, 3 * P, "C") and lst.alloc(2 * P, P, 0, vend, "D") == LOW + 2 * P
    # a free below the cache moves it below the freed area: the next search sees the hole
    assert a.remove(LOW + 4 * P) == "B"
    assert a.free_vmap_cache == LOW
    assert a.alloc(2 * P, P, 0, vend, "D") == LOW + 2 * P
    a.check()


def test_rbtree_cache_free_rules() -> None:
    """__free_vmap_area: below cached_vstart drops the cache; at or below the cache moves it to
    rb_prev (none for the lowest area); above it changes nothing."""
    a = RbtreeCacheAllocator(P)
    x, y, z = (a.alloc(P, P, LOW + 10 * P, TOP, n) for n in "xyz")
    assert (x, y, z) == (LOW + 10 * P, LOW + 11 * P, LOW + 12 * P) and a.free_vmap_cache == z
    assert a.insert(LOW, P, "low")  # below cached_vstart
    assert a.remove(LOW) == "low" and a.free_vmap_cache is None
    assert a.alloc(P, P, LOW + 10 * P, TOP, "w") == LOW + 13 * P
    assert a.remove(LOW + 13 * P) == "w" and a.free_vmap_cache == z  # the cache itself: prev
    assert a.remove(y) == "y" and a.free_vmap_cache == x
    assert a.remove(z) == "z" and a.free_vmap_cache == x  # above the cache
    assert a.remove(x) == "x" and a.free_vmap_cache is None  # lowest: rb_prev is NULL
    a.check()


# -- accounting and the interface ----------------------------------------------------------------
@pytest.mark.parametrize("cls", [RbtreeAllocator, RbtreeCacheAllocator])
@FAST
@given(ops=st.lists(mixed_op_st, max_size=50))
def test_accounting_matches_the_list_allocator(cls: type, ops: list[tuple]) -> None:
    """The list allocator mirrors every placement (by insert) and every free: both report the
    same busy areas, the same holes in any window, and the same containment answers."""
    a, lst = cls(P), ListAllocator(P)
    rnd = random.Random(len(ops))

    def on_alloc(*_):  # type: ignore[no-untyped-def]
        pass

    busy: Busy = {}
    for i, op in enumerate(ops):
        before = {s for s, _, _ in a.for_each_busy()}
        run_ops_one(a, op, i, on_alloc, busy)
        after = {s for s, _, _ in a.for_each_busy()}
        for gone in before - after:
            assert lst.remove(gone) is not None
        for s, z, _ in a.for_each_busy():
            if lst.find_containing(s) is None:
                assert lst.insert(s, z, ("mirror", s))
        lo = LOW + rnd.randint(0, 40) * P
        hi = lo + rnd.randint(1, 60) * P
        assert free_view(a, lo, hi) == free_view(lst, lo, hi)
        assert [(s, z) for s, z, _ in a.for_each_busy(lo)] == \
               [(s, z) for s, z, _ in lst.for_each_busy(lo)]
        probe = lo + rnd.randint(0, 3) * P // 2
        got, want = a.find_containing(probe), lst.find_containing(probe)
        assert (got is None) == (want is None) and (got is None or got[:2] == want[:2])
        assert len(a) == len(lst)
        a.check()
        lst.check()


def run_ops_one(a: RbtreeAllocator, op: tuple, i: int, on_alloc, busy: Busy) -> None:  # type: ignore[no-untyped-def]
    """One step of ``run_ops`` on a shared model."""
    owner = ("owner", i)
    if op[0] == "alloc":
        _, size, align, (vstart, vend) = op
        state = dict(busy)
        got = a.alloc(size, align, vstart, vend, owner)
        on_alloc(state, size, align, vstart, vend, got)
        if got is not None:
            busy[got] = (size, owner)
    elif op[0] == "remove":
        _, pick, known = op
        addr = sorted(busy)[pick % len(busy)] if known and busy else LOW + pick * P
        want = busy.pop(addr)[1] if addr in busy else None
        assert a.remove(addr) is want
    else:
        _, addr, size = op
        ok = LOW <= addr and addr + size <= HIGH and all(
            s + z <= addr or addr + size <= s for s, (z, _) in busy.items())
        assert a.insert(addr, size, owner) is ok
        if ok:
            busy[addr] = (size, owner)


def test_registered_and_protocol() -> None:
    assert "rbtree" in ALLOCATORS and "rbtree-cache" in ALLOCATORS
    for name, cls in (("rbtree", RbtreeAllocator), ("rbtree-cache", RbtreeCacheAllocator)):
        a = make_allocator(name, P)
        assert type(a) is cls and a.name == name and isinstance(a, VmapAllocator)
        assert free_view(a) == [(LOW, HIGH - LOW)] and len(a) == 0


@pytest.mark.parametrize("cls", [RbtreeAllocator, RbtreeCacheAllocator])
def test_bad_arguments_and_empty_windows(cls: type) -> None:
    """The list and kva allocators' argument and window checks, on the new ones."""
    test_bad_arguments_raise_config_error(cls)
    test_empty_or_outside_windows_find_nothing(cls)


@pytest.mark.parametrize("cls", [RbtreeAllocator, RbtreeCacheAllocator])
def test_many_areas_churn(cls: type) -> None:
    """Thousands of areas: check() holds and every answer follows its rule."""
    rnd = random.Random(11)
    a = cls(P)
    busy: Busy = {}
    for i in range(1500):
        if busy and rnd.random() < 0.4:
            addr = rnd.choice(sorted(busy))
            assert a.remove(addr) == busy.pop(addr)[1]
            continue
        size, align = rnd.randint(1, 6) * P, rnd.choice([P, P, 4 * P])
        got = a.alloc(size, align, LOW, LOW + 2**30, i)
        if cls is RbtreeAllocator and i % 150 == 0:
            assert got == rule_2628({k: v for k, v in busy.items()}, size, align, LOW,
                                    LOW + 2**30)
        if got is not None:
            busy[got] = (size, i)
    check_against_model(busy, a)
