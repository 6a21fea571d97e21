"""``kva-rbtree``: the kernel's augmented red-black free tree, proved against real 6.12 traces.

The 6.12 captures (tests/data/oracle/linux-6.12-amd64/<capture>/) carry the kernel's own
``vmalloc:*`` trace from boot, so the free tree's whole history is known: replayed from an empty
address space, every traced ``alloc_vmap_area`` must come out at the traced address, the aligned
ones (thread stacks with ``align=16384``, ioremaps) included, which only the kernel's exact tree
shape gives.  The replay driver below models what 6.12 (6.9+) puts between the free tree and the
trace, as tests/data/oracle/README.md and mm/vmalloc.c describe it:

- two vmap nodes (2 CPUs); a request in ``[VMALLOC_START, VMALLOC_END)`` belongs to the node of
  its CPU (``node_alloc``: ``raw_smp_processor_id() % nr_vmap_nodes``) and first looks at that
  node's pool of its page count: the head (highest address) is taken if aligned, else moved to
  the tail; other requests have no node (``vn_id`` 0);
- a free (``free_vmap_area_noflush``) puts the area on the lazy list of its node (or of
  ``addr_to_node`` when it has none);
- a purge first decays every pool of node 0 then node 1 (``decay_va_pool_node``: ``len >> 2``
  areas from the head, all of them when that is 0 or after a failed search), merging the decayed
  areas among themselves before giving them back in address order; then each node's lazy areas,
  in address order, go to the node's pool (at most 256 pages, with a node, not after a failed
  search) or onto a list given back in reverse (``purge_vmap_node``'s ``list_add``);
- the one 2 MiB percpu area (``pcpu_get_vm_areas``, untraced) is clipped out of the free tree
  right after the traced allocation that precedes it in ``pcpu_create_chunk``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvmalloc.analysis import replay as exact_replay
from pyvmalloc.errors import Inconsistency
from pyvmalloc.formats.trace import TraceEvent, parse_trace
from pyvmalloc.kernel.machine import Machine
from pyvmalloc.vmalloc.allocator import make_allocator
from pyvmalloc.vmalloc.vm_struct import vm_struct, vmap_area
from pyvmalloc.vmalloc.kva_allocator import KvaAllocator
from pyvmalloc.vmalloc.kva_rbtree import KvaRbtreeAllocator

P = 4096
DATA = Path(__file__).parent / "data" / "oracle" / "linux-6.12-amd64"
VMALLOC_START, VMALLOC_END = 0xFFFFC90000000000, 0xFFFFE8FFFFFFFFFF  # x86_64 4-level, as traced
NR_NODES = 2  # clamp(num_possible_cpus(), 1, 128) with 2 CPUs
ZONE = 16 * P  # vmap_zone_size
MAX_POOL_PAGES = 256  # MAX_VA_SIZE_PAGES


# -- the 6.12 replay driver ------------------------------------------------------------------------
@dataclass
class Area:
    """A ``vmap_area`` between alloc and reclaim: its range and its node (None: no ``vn_id``)."""

    start: int
    size: int
    node: int | None


@dataclass
class Replay:
    """What a replay reproduced: traced allocations, how many came out at the traced address
    (and of those, the ones with ``align`` above a page), and the first misses."""

    allocs: int = 0
    same: int = 0
    aligned: int = 0
    aligned_same: int = 0
    pool_hits: int = 0
    purges: int = 0
    # aligned requests where strict first fit and the lowest block of size + align - 1 differ:
    # how often the kernel took the first fit, that block, or one in between
    ambiguous: dict[str, int] = field(default_factory=lambda: {"first fit": 0, "kva rule": 0,
                                                                 "between": 0})
    misses: list[str] = field(default_factory=list)


class Kernel612:
    """The free tree (``kva-rbtree``) with 6.12's vmap nodes around it."""

    def __init__(self) -> None:
        self.alloc = KvaRbtreeAllocator(P)
        self.areas: dict[int, Area] = {}  # busy, lazy and pooled areas by start
        self.lazy: list[list[Area]] = [[] for _ in range(NR_NODES)]
        self.pools: list[dict[int, list[Area]]] = [{} for _ in range(NR_NODES)]
        self.pool_hits = 0

    def alloc_vmap_area(self, size: int, align: int, vstart: int, vend: int, cpu: int) -> int | None:
        node = None
        if vstart == VMALLOC_START and vend == VMALLOC_END:  # node_alloc
            node = cpu % NR_NODES
            pool = self.pools[node].get((size - 1) // P)
            if pool:
                va = pool[0]  # node_pool_del_va: the head
                if va.start % align == 0:
                    del pool[0]
                    va.node = node
                    self.pool_hits += 1
                    return va.start
                pool.append(pool.pop(0))  # list_move_tail
        addr = self.alloc.alloc(size, align, vstart, vend, "busy")
        if addr is not None:
            self.areas[addr] = Area(addr, size, node)
        return addr

    def free_vmap_area_noflush(self, start: int) -> int:
        va = self.areas[start]
        node = va.node if va.node is not None else (start // ZONE) % NR_NODES
        self.lazy[node].append(va)
        return sum(a.size for lazy in self.lazy for a in lazy) // P

    def _give_back(self, ranges: list[tuple[int, int]]) -> None:
        for start, end in ranges:  # reclaim_list_global, in list order
            self.alloc.reclaim(start, end)

    def _take(self, va: Area) -> None:
        del self.areas[va.start]
        assert self.alloc.release(va.start) is not None

    def purge(self, full: bool) -> int:
        """``__purge_vmap_area_lazy``: the number of purged areas."""
        for node in range(NR_NODES):  # decay_va_pool_node
            decayed: list[Area] = []
            for idx in sorted(self.pools[node]):
                pool = self.pools[node][idx]
                n = len(pool) if full else len(pool) >> 2
                if n == 0:
                    n = len(pool)  # 6.12: n_decay 0 wraps, so the whole (small) pool goes
                decayed += pool[:n]
                del pool[:n]
            for va in decayed:
                self._take(va)
            runs: list[list[int]] = []  # merge_or_add_vmap_area into decay_root
            for va in sorted(decayed, key=lambda a: a.start):
                if runs and runs[-1][1] == va.start:
                    runs[-1][1] = va.start + va.size
                else:
                    runs.append([va.start, va.start + va.size])
            self._give_back([(s, e) for s, e in runs])
        purged = 0
        for node in range(NR_NODES):  # purge_vmap_node
            local: list[tuple[int, int]] = []
            for va in sorted(self.lazy[node], key=lambda a: a.start):
                purged += 1
                if va.node is not None and not full and va.size <= MAX_POOL_PAGES * P:
                    self.pools[node].setdefault((va.size - 1) // P, []).insert(0, va)
                    continue
                self._take(va)
                local.insert(0, (va.start, va.start + va.size))
            self.lazy[node] = []
            self._give_back(local)
        return purged


def pcpu_area(capture: str) -> tuple[int, int]:
    """``(start, size)`` of the percpu area ``pcpu_get_vm_areas`` placed, from before.txt."""
    text = (DATA / capture / "before.txt").read_text()
    m = re.search(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+\d+ pcpu_get_vm_areas", text, re.M)
    assert m, "before.txt has no pcpu_get_vm_areas line"
    start, end = int(m.group(1), 16), int(m.group(2), 16)
    return start, end - start


def events_of(capture: str) -> list[TraceEvent]:
    """The kernel's events from boot to the second snapshot: trace_after.txt, which begins with
    every event of trace_before.txt (the ring buffer lost nothing)."""
    before = parse_trace((DATA / capture / "trace_before.txt").read_text(), "trace_before.txt")
    after = parse_trace((DATA / capture / "trace_after.txt").read_text(), "trace_after.txt")
    assert before.lost == after.lost == 0
    assert list(after[:len(before)]) == list(before)
    return list(after)


def pcpu_position(events: list[TraceEvent]) -> int:
    """Index of the event after which ``pcpu_create_chunk`` called ``pcpu_get_vm_areas``: its
    chunk's 2 MiB + guard map, the first vmalloc-range allocation of that size."""
    for i, ev in enumerate(events):
        if ev.event == "alloc_vmap_area" and ev["size"] == 2 * 1024 * 1024 + P \
                and ev["vstart"] == VMALLOC_START:
            return i
    raise AssertionError("no pcpu_create_chunk allocation in the trace")


def lowest_fit(holes: list[tuple[int, int]], size: int, align: int, length: int) -> int | None:
    """The aligned address in the lowest hole of at least ``length`` bytes that holds ``size``."""
    for start, hole in holes:
        addr = -(-start // align) * align
        if hole >= length and addr + size <= start + hole:
            return addr
    return None


def replay(capture: str, pcpu_after: int | None = None, check_every: int = 0,
           shapes: list[tuple[str, object]] | None = None) -> Replay:
    """Replay a capture's trace on ``kva-rbtree`` with 6.12's nodes around it; ``shapes``
    collects ``(event, free tree shape)`` after every allocation, free and purge."""
    events = events_of(capture)
    pcpu_start, pcpu_size = pcpu_area(capture)
    if pcpu_after is None:
        pcpu_after = pcpu_position(events)
    k = Kernel612()
    out = Replay()
    moved: dict[int, int] = {}  # traced address -> the model's, after a miss
    failed = False
    for i, ev in enumerate(events):
        if ev.event == "alloc_vmap_area":
            if ev["failed"]:
                failed = True
                continue
            traced = ev["addr"]
            if ev["align"] > P:
                holes = list(k.alloc.for_each_free(ev["vstart"], ev["vend"]))
                first = lowest_fit(holes, ev["size"], ev["align"], ev["size"])
                rule = lowest_fit(holes, ev["size"], ev["align"], ev["size"] + ev["align"] - 1)
                if first != rule:
                    kind = "first fit" if traced == first else "kva rule" if traced == rule else "between"
                    out.ambiguous[kind] += 1
            got = k.alloc_vmap_area(ev["size"], ev["align"], ev["vstart"], ev["vend"], ev.cpu)
            out.allocs += 1
            aligned = ev["align"] > P
            out.aligned += aligned
            if got == traced:
                out.same += 1
                out.aligned_same += aligned
            else:
                out.misses.append(f"line {ev.line}: size={ev['size']} align={ev['align']} traced "
                                  f"{traced:#x}, model {got if got is None else hex(got)}")
                if got is not None:
                    moved[traced] = got
            if shapes is not None:
                shapes.append((ev.event, k.alloc.shape()))
        elif ev.event == "free_vmap_area_noflush":
            nr_lazy = k.free_vmap_area_noflush(moved.pop(ev["va_start"], ev["va_start"]))
            assert nr_lazy == ev["nr_lazy"], f"line {ev.line}: {nr_lazy} lazy pages"
            if shapes is not None:
                shapes.append((ev.event, k.alloc.shape()))
        elif ev.event == "purge_vmap_area_lazy":
            purged = k.purge(failed)
            failed = False
            out.purges += 1
            assert purged == ev["npurged"], f"line {ev.line}: purged {purged}"
            if shapes is not None:
                shapes.append((ev.event, k.alloc.shape()))
        if i == pcpu_after:
            assert k.alloc.insert(pcpu_start, pcpu_size, "pcpu")
        if check_every and i % check_every == 0:
            k.alloc.check()
    k.alloc.check()
    out.pool_hits = k.pool_hits
    return out


# -- the traces ------------------------------------------------------------------------------------
# capture -> (traced allocations, of which align > PAGE_SIZE, pool hits, aligned requests where
# the kernel took the first fit / the kva rule's block / a block in between)
EXPECTED = {
    "seq": (130, 89, 0, (0, 0, 0)),
    "rand1": (276, 139, 20, (2, 15, 4)),
    "pools": (155, 98, 9, (0, 0, 0)),
    "kinds612": (156, 111, 3, (0, 0, 0)),
}


@pytest.mark.parametrize("capture", sorted(EXPECTED))
def test_every_traced_address_comes_out_exactly(capture: str) -> None:
    r = replay(capture, check_every=1)
    assert r.misses == []
    allocs, aligned, pool_hits, (first, rule, between) = EXPECTED[capture]
    assert (r.allocs, r.same) == (allocs, allocs)
    assert (r.aligned, r.aligned_same) == (aligned, aligned)
    assert r.pool_hits == pool_hits
    assert r.ambiguous == {"first fit": first, "kva rule": rule, "between": between}


def test_the_tree_shape_decides_aligned_requests() -> None:
    """In rand1 the kernel's answer to 6 aligned requests is not the kva rule's (the lowest block
    of size + align - 1), 4 of them not the first fit either: only the real tree gives them."""
    r = replay("rand1")
    assert r.ambiguous["first fit"] + r.ambiguous["between"] == 6 and r.misses == []


def test_the_percpu_clip_comes_after_the_chunk_map() -> None:
    events = events_of("seq")
    i = pcpu_position(events)
    assert events[i]["vstart"] == VMALLOC_START and events[i]["size"] == 2 * 1024 * 1024 + P
    assert pcpu_area("seq") == (0xFFFFE8FFFFC00000, 2 * 1024 * 1024)


def model_shapes(capture: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[tuple[str, object]], Machine]:
    """``replay_exact`` of a capture (src/pyvmalloc/analysis/replay.py: the model's own pools,
    purges and free tree) with ``(event, free tree shape)`` after every allocation, free and
    purge, as :func:`replay` collects them; and the machine at the end."""
    shapes: list[tuple[str, object]] = []

    def shape(m: Machine) -> object:
        assert isinstance(m.vmap_allocator, KvaRbtreeAllocator)
        return m.vmap_allocator.shape()

    class Recording(Machine):
        """The core's search, area removal and purge, each followed by a look at the tree (the
        core calls them itself too: they are wrapped on the core, not on the facade)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            core = self.vm
            alloc, remove, purge = core.alloc_vmap_range, core.remove_vm_area, core.vm_unmap_aliases

            def alloc_vmap_range(size: int, align: int, start: int, end: int, va: vmap_area) -> int | None:
                got = alloc(size, align, start, end, va)
                shapes.append(("alloc_vmap_area", shape(self)))
                return got

            def remove_vm_area(addr: int) -> vm_struct | None:
                got = remove(addr)
                shapes.append(("free_vmap_area_noflush", shape(self)))
                return got

            def vm_unmap_aliases() -> None:
                purge()
                shapes.append(("purge_vmap_area_lazy", shape(self)))

            core.alloc_vmap_range = alloc_vmap_range  # type: ignore[method-assign]
            core.remove_vm_area = remove_vm_area  # type: ignore[method-assign]
            core.vm_unmap_aliases = vm_unmap_aliases  # type: ignore[method-assign]

    monkeypatch.setattr(exact_replay, "Machine", Recording)
    path = DATA / capture / "trace_after.txt"
    r = exact_replay.replay_exact(parse_trace(path.read_text(), str(path)), "6.12", percpu=2 * 1024 * 1024)
    assert r.exact and r.misses == [] and r.retries == 0 and r.machine is not None
    return shapes, r.machine


@pytest.mark.parametrize("capture", sorted(EXPECTED))
def test_the_models_free_tree_has_the_drivers_shape_at_every_step(
        capture: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The model's replay (``replay_exact``) builds the very tree this driver builds, node for
    node and colour for colour, after every traced allocation, free and purge: a pool hit leaves
    the free tree alone, each node's purged areas go back highest first, decayed ones merged
    first.  (Before, rand1's tree took another shape at its first pool hit, line 240.)"""
    mine: list[tuple[str, object]] = []
    r = replay(capture, shapes=mine)
    assert r.misses == []
    theirs, m = model_shapes(capture, monkeypatch)
    assert [kind for kind, _ in theirs] == [kind for kind, _ in mine]
    diff = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
    assert diff == [], f"{capture}: first different tree after step {diff[0]} ({mine[diff[0]][0]})"
    assert isinstance(m.vmap_allocator, KvaRbtreeAllocator) and m.vmap_allocator.shape() == mine[-1][1]
    assert sum(kind == "purge_vmap_area_lazy" for kind, _ in mine) == r.purges > 0


# -- properties ------------------------------------------------------------------------------------
WINDOWS = [(P, 2**64 - P), (64 * P, 4096 * P), (VMALLOC_START, VMALLOC_END), (16 * P, 48 * P)]
Op = tuple[str, int, int, int]
ops = st.lists(st.one_of(
    st.tuples(st.just("alloc"), st.integers(1, 24), st.integers(0, 4), st.integers(0, len(WINDOWS) - 1)),
    st.tuples(st.just("free"), st.integers(0, 2**16), st.just(0), st.just(0)),
    st.tuples(st.just("insert"), st.integers(1, 4000), st.integers(1, 8), st.just(0)),
), max_size=120)


def run(a: object, script: list[Op], aligns: bool, out: list[int | None]) -> None:
    """Run ``script`` on allocator ``a`` (check() after every step), answers into ``out``."""
    assert isinstance(a, (KvaRbtreeAllocator, KvaAllocator))
    live: list[int] = []
    for kind, x, y, z in script:
        if kind == "alloc":
            vstart, vend = WINDOWS[z]
            align = P << y if aligns else P
            got = a.alloc(x * P, align, vstart, vend, "o")
            if got is not None:
                live.append(got)
        elif kind == "free":
            got = live.pop(x % len(live)) if live else None
            if got is not None:
                assert a.remove(got) == "o"
        else:
            got = x * P if a.insert(x * P, y * P, "o") else None
            if got is not None:
                live.append(got)
        out.append(got)
        a.check()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=ops)
def test_page_aligned_requests_match_kva(script: list[Op]) -> None:
    """For align <= PAGE_SIZE the search length is the size: every tree answers lowest fit."""
    mine: list[int | None] = []
    theirs: list[int | None] = []
    run(KvaRbtreeAllocator(P), script, False, mine)
    run(KvaAllocator(P), script, False, theirs)
    assert mine == theirs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=ops)
def test_aligned_answers_lie_between_first_fit_and_the_kva_rule(script: list[Op]) -> None:
    a = KvaRbtreeAllocator(P)
    live: list[int] = []
    for kind, x, y, z in script:
        if kind != "alloc":
            continue
        vstart, vend = WINDOWS[z]
        size, align = x * P, P << y
        holes = list(a.for_each_free(vstart, vend))
        first = lowest_fit(holes, size, align, size)
        length = size + align - 1 if align > P and vend - vstart != size else size
        rule = lowest_fit(holes, size, align, length)
        got = a.alloc(size, align, vstart, vend, "o")
        a.check()
        if got is None:
            assert rule is None or rule + size > vend
            continue
        live.append(got)
        assert got % align == 0 and vstart <= got and got + size <= vend
        assert first is not None and first <= got
        assert rule is None or got <= rule
        assert a.find_containing(got) == (got, size, "o")


@given(seed=st.integers(0, 2**32 - 1))
@settings(max_examples=40, deadline=None)
def test_release_and_reclaim_in_any_order_free_the_same_space(seed: int) -> None:
    rng = random.Random(seed)
    a, b = KvaRbtreeAllocator(P), KvaRbtreeAllocator(P)
    addrs = [a.alloc(rng.randint(1, 5) * P, P, 16 * P, 4096 * P, "o") for _ in range(30)]
    for x in addrs:
        assert x is not None and b.insert(x, a.find_containing(x)[1], "o")  # type: ignore[index]
    gone = rng.sample(addrs, 12)
    taken = [a.release(x) for x in gone]
    for start, size, _owner in sorted(t for t in taken if t is not None)[::-1]:
        a.reclaim(start, start + size)
    for x in gone:
        b.remove(x)
    a.check()
    b.check()
    assert list(a.for_each_free(0, 2**64)) == list(b.for_each_free(0, 2**64))
    assert list(a.for_each_busy()) == list(b.for_each_busy())


def test_check_finds_a_broken_tree() -> None:
    a = KvaRbtreeAllocator(P)
    for i in range(40):
        a.alloc(P, P, (1 + 2 * i) * P * 8, 2**40, "o")
    a.check()
    assert a.root is not None and a.root.kid[0] is not None
    a.root.red = True
    with pytest.raises(Inconsistency, match="root is red"):
        a.check()
    a.root.red = False
    a.root.max += P
    with pytest.raises(Inconsistency, match="subtree_max_size"):
        a.check()
    a.root.max -= P
    leaf = a.root
    while leaf.kid[0] is not None:
        leaf = leaf.kid[0]
    leaf.red = not leaf.red
    with pytest.raises(Inconsistency):
        a.check()


def test_kva_rbtree_is_an_allocator_choice() -> None:
    a = make_allocator("kva-rbtree", P)
    assert isinstance(a, KvaRbtreeAllocator) and a.name == "kva-rbtree"
    assert a.largest_free() == 2**64 - 2 * P and a.shape() == (P, 2**64 - P, "b", None, None)
    assert a.alloc(2 * P, P, P, 2**64 - P, "x") == P and a.find(P) == "x"
    assert a.remove(P) == "x" and a.remove(P) is None and a.release(P) is None
    assert a.insert(P, P, "y") and not a.insert(P, P, "z")
