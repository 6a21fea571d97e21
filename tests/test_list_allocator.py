"""The 2.6.22 list allocator: its bisecting search gives the seed walk's answer and count."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyvmalloc.vmalloc.list_allocator import ListAllocator

PAGE = 4096
BASE = 0xFFFFC90000000000
SPAN = 64  # pages in the window the operations use


def _pages(n: int) -> int:
    return n * PAGE


ops = st.lists(
    st.one_of(
        st.tuples(st.just("alloc"), st.integers(1, 12), st.integers(0, SPAN), st.integers(0, SPAN)),
        st.tuples(st.just("free"), st.integers(0, 40)),
        st.tuples(st.just("insert"), st.integers(0, SPAN), st.integers(1, 6)),
    ),
    max_size=80,
)


@settings(max_examples=300)
@given(ops, st.sampled_from([0, ListAllocator.scan_min]))
def test_search_gives_the_walks_answer_and_count(seq: list[tuple[int | str, ...]], scan_min: int) -> None:
    """For every request, the bisecting search and the seed's walk over the same vmlist give the
    same address, the same vmlist position and the same number of entries walked; and the
    allocator stays consistent (arrays equal to the lists).  ``scan_min=0`` sends every hole
    search through the numpy scan."""
    a = ListAllocator(PAGE)
    a.scan_min = scan_min
    for op in seq:
        if op[0] == "alloc":
            _, npages, lo, width = op
            vstart, vend = BASE + _pages(int(lo)), BASE + _pages(int(lo) + int(width))
            size = _pages(int(npages))
            walk = a._walk(size, PAGE - 1, vstart, vend)
            assert a._search(size, vstart, vend) == walk
            before = a.visited
            got = a.alloc(size, PAGE, vstart, vend, op)
            assert a.visited - before == walk[2]
            assert got == (walk[0] if walk[0] is not None and walk[0] + size <= vend else None)
        elif op[0] == "free":
            busy = [start for start, _size, _owner in a.for_each_busy()]
            if busy:
                start = busy[int(op[1]) % len(busy)]
                assert a.remove(start) is not None
                assert a.find(start) is None
        else:
            _, at, npages = op
            a.insert(BASE + _pages(int(at)), _pages(int(npages)), op)
        a.check()


def test_long_list_scans_the_holes_in_one_pass() -> None:
    """A list of 200 packed areas with one hole near its end: the search (numpy scan) and the
    walk agree on the address and on walking up to the hole."""
    a = ListAllocator(PAGE)
    for i in range(200):
        assert a.insert(BASE + _pages(2 * i), _pages(2 if i != 150 else 1), i)
    size = _pages(1)
    walk = a._walk(size, PAGE - 1, BASE, BASE + _pages(1000))
    assert walk == (BASE + _pages(301), 151, 152)
    assert a._search(size, BASE, BASE + _pages(1000)) == walk
    assert a.alloc(size, PAGE, BASE, BASE + _pages(1000), "x") == BASE + _pages(301)
    a.check()


def test_unaligned_insert_falls_back_to_the_walk() -> None:
    """An area that is not page-aligned turns the bisecting search off: the walk still answers."""
    a = ListAllocator(PAGE)
    assert a.insert(BASE + 100, PAGE, "odd")
    assert a.alloc(PAGE, PAGE, BASE, BASE + _pages(8), "y") == BASE + _pages(2)
    a.check()
