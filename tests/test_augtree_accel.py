"""The compiled free tree (``_augtree_c``) against the reference (``_augtree.py``).

Both trees and both kva allocators are driven with the same random operations; after every step
the answers, the tree shapes (a pre-order dump with heights, ``max`` and parent links), the
``visited`` counters and ``check()`` (its count or its message) must be the same.  The oracle
traces replay to the same addresses and report on either tree, and a machine keeps the same
areas, log and counters.  Where the module is not built these comparisons are skipped, except in
CI with a C compiler, where a missing build fails.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import pickle
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import pyvmalloc as pv
from pyvmalloc.errors import Inconsistency
from pyvmalloc.vmalloc import _augtree as P
from pyvmalloc.vmalloc import augtree, kva_allocator

C: ModuleType | None
try:
    from pyvmalloc.vmalloc import _augtree_c as C
except ImportError:
    C = None

SRC = Path(__file__).resolve().parent.parent / "src"
PAGE = 4096
ULONG_LIMIT = 1 << 64
requires_c = pytest.mark.skipif(
    C is None, reason="the compiled free tree is not built (pip install ., or python3 setup.py "
    "build_ext --inplace): only the reference runs")
requires_accel = pytest.mark.skipif(
    not augtree.ACCELERATED, reason="kva runs on the reference tree here (the compiled one is not "
    "built, or PYVMALLOC_PURE is set): nothing to compare it with")


# ---- which tree is in use ------------------------------------------------------------------------
def test_ci_builds_the_compiled_tree() -> None:
    """CI installs with `pip install -e '.[test]'` on a host with a C compiler: the module must
    be there, or the comparisons below would silently test the fallback only."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if os.environ.get("CI") != "true" or compiler is None:
        pytest.skip("not CI, or no C compiler: the compiled tree is optional here")
    assert C is not None, f"CI has {compiler} but pyvmalloc.vmalloc._augtree_c was not built"
    pure = os.environ.get("PYVMALLOC_PURE", "") not in ("", "0")
    assert augtree.ACCELERATED is not pure


def test_the_selector_exports_one_implementation() -> None:
    impl = C if augtree.ACCELERATED else P
    assert impl is not None
    assert (augtree.AugTree, augtree.Node, augtree.successor) == (impl.AugTree, impl.Node,
                                                                  impl.successor)
    assert type(pv.Machine(ram="64M", allocator="kva").vmap_allocator._free) is augtree.AugTree


def _which_tree(pure: str | None) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYVMALLOC_PURE"}
    if pure is not None:
        env["PYVMALLOC_PURE"] = pure
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    code = ("from pyvmalloc.vmalloc import augtree, kva_allocator\n"
            "a = kva_allocator.KvaAllocator(4096)\n"
            "print(augtree.ACCELERATED, type(a._free).__module__)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], out[1]


def test_pyvmalloc_pure_selects_the_reference() -> None:
    assert _which_tree("1") == ("False", "pyvmalloc.vmalloc._augtree")
    assert _which_tree("yes") == ("False", "pyvmalloc.vmalloc._augtree")
    built = ("True", "pyvmalloc.vmalloc._augtree_c") if C is not None else (
        "False", "pyvmalloc.vmalloc._augtree")
    assert _which_tree("0") == built
    assert _which_tree("") == built
    assert _which_tree(None) == built


# ---- helpers ----------------------------------------------------------------------------------------
def dump(tree: Any) -> list[tuple[object, ...] | None]:
    """The tree's exact shape: pre-order, None for a missing child."""
    out: list[tuple[object, ...] | None] = []
    stack = [tree.root]
    while stack:
        n = stack.pop()
        if n is None:
            out.append(None)
            continue
        out.append((n.start, n.end, n.height, n.max, None if n.parent is None else n.parent.start,
                    n.owner))
        stack.append(n.right)
        stack.append(n.left)
    return out


def outcome(fn: Any, *args: Any) -> tuple[str, object]:
    """``("ok", result)`` or ``("raised", message)`` of an Inconsistency."""
    try:
        return "ok", fn(*args)
    except Inconsistency as e:
        return "raised", str(e)


def reference_kva_module() -> ModuleType:
    """A second copy of kva_allocator.py whose tree names are the reference's: KvaAllocator on
    the pure-Python tree, beside the one in use."""
    spec = importlib.util.find_spec("pyvmalloc.vmalloc.kva_allocator")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.AugTree, mod.Node, mod.successor = P.AugTree, P.Node, P.successor
    return mod


STATEFUL = settings(max_examples=50, stateful_step_count=50, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ---- the trees, step by step ----------------------------------------------------------------------
class TwinTrees(RuleBasedStateMachine):
    """The same operations on a reference AugTree and a compiled one."""

    UNIT = 0x1000

    def __init__(self) -> None:
        super().__init__()
        assert C is not None
        self.py: Any = P.AugTree(True)
        self.c: Any = C.AugTree(True)
        self.base = 0
        self.pairs: list[tuple[Any, Any]] = []  # (reference node, compiled node), in the trees
        self.spare: list[tuple[Any, Any]] = []  # deleted: may come back, links stale
        self.twin: dict[int, Any] = {}  # id(reference node) -> compiled node

    @initialize(augment=st.booleans(),
                base=st.sampled_from([0, 0x1000, 0xFFFFC90000000000, ULONG_LIMIT - (1 << 24)]))
    def setup(self, augment: bool, base: int) -> None:
        assert C is not None
        self.py = P.AugTree(augment)
        self.c = C.AugTree(augment)
        self.base = base

    def addr(self, k: int) -> int:
        return min(self.base + k * self.UNIT, ULONG_LIMIT)

    def same(self, pn: Any, cn: Any) -> None:
        if pn is None:
            assert cn is None
        else:
            assert self.twin[id(pn)] is cn

    def same_list(self, pns: list[Any], cns: list[Any]) -> None:
        assert len(pns) == len(cns)
        for pn, cn in zip(pns, cns):
            self.same(pn, cn)

    # -- updates --
    @rule(k=st.integers(0, 4096), units=st.integers(1, 64), before=st.booleans(),
          reuse=st.booleans(), owner=st.sampled_from([None, "a", 7]))
    def add(self, k: int, units: int, before: bool, reuse: bool, owner: object) -> None:
        assert C is not None
        start = self.addr(k)
        f = self.py.floor(start)
        self.same(f, self.c.floor(start))
        if start >= ULONG_LIMIT or (f is not None and f.end > start):
            return
        prev, nxt = self.py.neighbours(start)
        cprev, cnxt = self.c.neighbours(start)
        self.same(prev, cprev)
        self.same(nxt, cnxt)
        end = min(start + units * self.UNIT, ULONG_LIMIT)
        if nxt is not None:
            end = min(end, nxt.start)
        if reuse and self.spare:
            pn, cn = self.spare.pop()
            pn.start = cn.start = start
            pn.end = cn.end = end
            pn.owner = cn.owner = owner
        else:
            pn, cn = P.Node(start, end, owner), C.Node(start, end, owner)
            self.twin[id(pn)] = cn
        if before and nxt is not None:
            self.py.insert_before(pn, nxt)
            self.c.insert_before(cn, cnxt)
        else:
            self.py.insert(pn)
            self.c.insert(cn)
        self.pairs.append((pn, cn))

    @rule(i=st.integers(0, 10**6))
    def remove(self, i: int) -> None:
        if not self.pairs:
            return
        pn, cn = self.pairs.pop(i % len(self.pairs))
        self.py.delete(pn)
        self.c.delete(cn)
        self.spare.append((pn, cn))

    @rule(i=st.integers(0, 10**6), lo=st.integers(-8, 8), hi=st.integers(-8, 8))
    def resize(self, i: int, lo: int, hi: int) -> None:
        """Move a node's start or end within its gap and propagate, as KvaAllocator's clip and
        merge do."""
        if not self.pairs:
            return
        pn, cn = self.pairs[i % len(self.pairs)]
        prev = self.py.floor(pn.start - 1)  # the in-order predecessor
        self.same(prev, self.c.floor(cn.start - 1))
        floor_ = prev.end if prev is not None else 0
        pn_next = P.successor(pn)
        self.same(pn_next, C.successor(cn))
        ceil_ = pn_next.start if pn_next is not None else ULONG_LIMIT
        start = max(floor_, pn.start + lo * self.UNIT)
        end = min(ceil_, pn.end + hi * self.UNIT)
        if start >= end:
            return
        pn.start, pn.end = start, end
        cn.start, cn.end = start, end
        self.py.propagate(pn)
        self.c.propagate(cn)

    @rule(i=st.integers(0, 10**6),
          field=st.sampled_from(["max", "height", "empty", "order", "parent", "root"]),
          delta=st.sampled_from([-1, 1, 5]))
    def corrupt(self, i: int, field: str, delta: int) -> None:
        """Break one field in both trees: check() must say the same; then put it back."""
        if not self.pairs:
            return
        pn, cn = self.pairs[i % len(self.pairs)]
        saved = [(n.start, n.end, n.height, n.max, n.parent) for n in (pn, cn)]
        for n, twin_parent in ((pn, self.pairs[0][0]), (cn, self.pairs[0][1])):
            if field == "max":
                n.max += delta
            elif field == "height":
                n.height += delta
            elif field == "empty":
                n.end = n.start
            elif field == "order":
                n.start = max(0, n.start - 64 * self.UNIT)
            elif field in ("parent", "root"):
                n.parent = twin_parent if field == "root" or n.parent is None else n
        assert outcome(self.py.check, "twin") == outcome(self.c.check, "twin")
        for n, (start, end, height, mx, parent) in zip((pn, cn), saved):
            n.start, n.end, n.height, n.max, n.parent = start, end, height, mx, parent

    # -- queries --
    @rule(units=st.integers(1, 64), align_log=st.sampled_from([0, 12, 13, 14, 16, 21, 30, 70]),
          k=st.integers(-4, 4200), off=st.sampled_from([0, 1, 100]),
          padded=st.booleans())
    def lowest_match(self, units: int, align_log: int, k: int, off: int, padded: bool) -> None:
        size = units * self.UNIT
        align = 1 << align_log
        vstart = max(0, self.base + k * self.UNIT + off)
        length = size + align - 1 if padded else size
        self.same(self.py.lowest_match(size, align, vstart, length),
                  self.c.lowest_match(size, align, vstart, length))

    @rule(k=st.integers(-2, 4200), off=st.sampled_from([0, 1, -1]))
    def lookups(self, k: int, off: int) -> None:
        key = self.base + k * self.UNIT + off
        f = self.py.floor(key)
        self.same(f, self.c.floor(key))
        prev, nxt = self.py.neighbours(key)
        cprev, cnxt = self.c.neighbours(key)
        self.same(prev, cprev)
        self.same(nxt, cnxt)
        self.same(self.py.first(), self.c.first())
        start = f if f is not None else self.py.first()
        cstart = self.twin[id(start)] if start is not None else None
        self.same_list(list(self.py.iter_from(start)), list(self.c.iter_from(cstart)))

    @invariant()
    def alike(self) -> None:
        assert dump(self.py) == dump(self.c)
        assert self.py.visited == self.c.visited
        assert self.py.height() == self.c.height()
        assert outcome(self.py.check, "twin") == outcome(self.c.check, "twin") == (
            "ok", len(self.pairs))


TestTwinTrees = requires_c(TwinTrees.TestCase)
TestTwinTrees.settings = STATEFUL


# ---- the allocators, step by step -------------------------------------------------------------------
VSTART, VEND = 0xFFFFC90000000000, 0xFFFFE8FFFFFFFFFF


class TwinKva(RuleBasedStateMachine):
    """The same requests to a KvaAllocator on the reference tree and one on the compiled tree."""

    def __init__(self) -> None:
        super().__init__()
        assert C is not None
        self.py: Any = reference_kva_module().KvaAllocator(PAGE)
        self.c: Any = kva_allocator.KvaAllocator(PAGE)
        assert type(self.c._free) is C.AugTree and type(self.py._free) is P.AugTree
        self.live: list[int] = []

    @rule(pages=st.integers(1, 40), align_log=st.sampled_from([0, 12, 13, 15, 21, 64, 80]),
          window=st.sampled_from(["narrow", "wide", "all", "exact"]), k=st.integers(0, 300))
    def alloc(self, pages: int, align_log: int, window: str, k: int) -> None:
        size = pages * PAGE
        align = 1 << align_log
        vstart, vend = {"narrow": (VSTART + k * PAGE, VSTART + (k + 200) * PAGE),
                        "wide": (VSTART, VEND), "all": (0, ULONG_LIMIT),
                        "exact": (VSTART + k * PAGE, VSTART + k * PAGE + size)}[window]
        got = self.py.alloc(size, align, vstart, vend, ("area", pages))
        assert self.c.alloc(size, align, vstart, vend, ("area", pages)) == got
        if got is not None:
            self.live.append(got)

    @rule(k=st.integers(0, 400), pages=st.integers(1, 8))
    def insert(self, k: int, pages: int) -> None:
        addr = VSTART + k * PAGE
        got = self.py.insert(addr, pages * PAGE, "early")
        assert self.c.insert(addr, pages * PAGE, "early") is got
        if got:
            self.live.append(addr)

    @rule(i=st.integers(0, 10**6))
    def remove(self, i: int) -> None:
        if not self.live:
            return
        addr = self.live.pop(i % len(self.live))
        assert self.py.remove(addr) == self.c.remove(addr) is not None

    @rule(k=st.integers(-1, 500), off=st.sampled_from([0, 1, PAGE - 1]))
    def lookups(self, k: int, off: int) -> None:
        addr = VSTART + k * PAGE + off
        assert self.py.find(addr) == self.c.find(addr)
        assert self.py.find_containing(addr) == self.c.find_containing(addr)
        assert list(self.py.for_each_busy(addr)) == list(self.c.for_each_busy(addr))
        assert (list(self.py.for_each_free(addr, addr + 64 * PAGE))
                == list(self.c.for_each_free(addr, addr + 64 * PAGE)))

    @invariant()
    def alike(self) -> None:
        for name in ("_free", "_busy_tree"):
            assert dump(getattr(self.py, name)) == dump(getattr(self.c, name))
        assert self.py.visited == self.c.visited
        assert len(self.py) == len(self.c)
        assert self.py.largest_free() == self.c.largest_free()
        assert self.py.tree_heights() == self.c.tree_heights()
        assert outcome(self.py.check) == outcome(self.c.check) == ("ok", None)


TestTwinKva = requires_accel(TwinKva.TestCase)
TestTwinKva.settings = STATEFUL


# ---- whole runs -------------------------------------------------------------------------------------
ORACLE_TRACES = sorted((Path(__file__).parent / "data" / "oracle").glob("*/*/trace_*.txt"))


def _on_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AugTree", "Node", "successor"):
        monkeypatch.setattr(kva_allocator, name, getattr(P, name))


@requires_accel
@pytest.mark.parametrize("path", ORACLE_TRACES, ids=lambda p: f"{p.parent.parent.name}/"
                         f"{p.parent.name}/{p.stem}")
def test_oracle_traces_replay_alike_on_both_trees(path: Path) -> None:
    from pyvmalloc.analysis.replay import _replay_one, workload
    from pyvmalloc.formats.trace import parse_trace

    wl = workload(parse_trace(path.read_text(), str(path)))
    compiled = _replay_one(wl, "kva", "x86_64", "6.12")
    with pytest.MonkeyPatch.context() as mp:
        _on_reference(mp)
        reference = _replay_one(wl, "kva", "x86_64", "6.12")
    for res in (compiled, reference):
        res.alloc_ns = res.free_ns = 0  # host time only
    assert compiled.allocs > 0 and compiled.addresses == reference.addresses
    assert compiled == reference


def _machine_run() -> tuple[str, list[str], list[str], dict[str, int]]:
    """A kva machine through vmalloc, vfree, vmap, ioremap-sized and aligned requests, purges."""
    m = pv.Machine(ram="256M", allocator="kva")
    m.trace_on()
    rng = random.Random(13)
    live: list[int] = []
    for step in range(600):
        if live and rng.random() < 0.45:
            m.vfree(live.pop(rng.randrange(len(live))))
        else:
            addr = m.vmalloc(rng.randint(1, 24) * PAGE) if step % 5 else m.vmalloc_32(PAGE)
            assert addr is not None
            live.append(addr)
        if step % 97 == 0:
            m.vm_unmap_aliases()
    m.check()
    return m.vmallocinfo(), m.trace(), m.dmesg(), m.stats()


@requires_accel
def test_a_machine_keeps_the_same_areas_log_and_counters() -> None:
    compiled = _machine_run()
    with pytest.MonkeyPatch.context() as mp:
        _on_reference(mp)
        reference = _machine_run()
    assert compiled[0] == reference[0] and compiled[1] == reference[1]
    assert compiled[2] == reference[2]
    assert compiled[3]["work.nodes_visited"] == reference[3]["work.nodes_visited"] > 0
    assert compiled[3] == reference[3]


# ---- the compiled tree's own edges ------------------------------------------------------------------
@requires_c
def test_addresses_up_to_2_64_and_huge_arguments() -> None:
    assert C is not None
    top = ULONG_LIMIT
    for mod in (P, C):
        n = mod.Node(top - 3 * PAGE, top, "o")
        assert (n.start, n.end, n.max, n.height, n.owner) == (top - 3 * PAGE, top, 3 * PAGE, 1, "o")
    pt, ct = P.AugTree(True), C.AugTree(True)
    pt.insert(P.Node(PAGE, top))
    ct.insert(C.Node(PAGE, top))
    assert repr(pt.root) == repr(ct.root) == "Node(0x1000, 0x10000000000000000)"
    for args in [(2**70, PAGE, 0, 2**70), (PAGE, 2**90, 0, PAGE), (PAGE, 2**200, 0, PAGE),
                 (PAGE, PAGE, 2**64, PAGE), (PAGE, PAGE, 2**300, PAGE), (PAGE, PAGE, -5, PAGE),
                 (PAGE, 2**63, PAGE + 1, PAGE), (2**64 - 2 * PAGE, PAGE, 0, 2**64 - 2 * PAGE)]:
        got_p, got_c = pt.lowest_match(*args), ct.lowest_match(*args)
        assert (got_p is None) == (got_c is None), args
        assert pt.visited == ct.visited, args
    for key in (-(2**200), -1, 0, PAGE, top, 2**64 + 1, 2**300):
        assert repr(pt.floor(key)) == repr(ct.floor(key))
        assert repr(pt.neighbours(key)) == repr(ct.neighbours(key))
    with pytest.raises(OverflowError):
        C.Node(0, 2**64 + 1)
    with pytest.raises(OverflowError):
        ct.root.start = -1
    with pytest.raises(TypeError):
        ct.root.left = "not a node"
    with pytest.raises(TypeError):
        ct.insert(P.Node(0, PAGE))


@requires_c
def test_keyword_arguments_and_misuse_errors_match_the_reference() -> None:
    assert C is not None
    for mod in (P, C):
        t = mod.AugTree(augment=True)
        t.insert(node=mod.Node(start=PAGE, end=3 * PAGE, owner=None))
        assert t.lowest_match(size=PAGE, align=PAGE, vstart=0, length=PAGE) is t.root
        assert t.floor(key=PAGE) is t.root and t.check(what="t") == 1
        with pytest.raises(TypeError):
            t.floor()  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            t.floor(PAGE, PAGE)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            t.floor(PAGE, key=PAGE)  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            t.floor(nokey=PAGE)  # type: ignore[call-arg]


@requires_c
def test_deleted_nodes_keep_the_references_stale_links_and_trees_are_collected() -> None:
    """A deleted node's links are the reference's garbage, and stay readable: a walk from it
    sees what the reference's walk sees, even once nothing else holds the tree."""
    import gc
    import weakref

    assert C is not None
    walks = []
    for mod in (P, C):
        t = mod.AugTree(True)
        for k in range(1, 200, 2):
            t.insert(mod.Node(k * PAGE, (k + 1) * PAGE, owner=[k]))
        root, first = t.root, t.first()
        t.delete(root)  # two children
        t.delete(first)  # a leaf
        t.check("t")
        t.root = None
        gc.collect()
        walks.append([(n.start, n.height, n.max) for n in
                      [*t.iter_from(root), *t.iter_from(first)]])
        assert first.owner == [1]
    assert walks[0] == walks[1] and len(walks[0]) > 2

    class Owner:
        tree: object = None

    owner = Owner()
    probe = weakref.ref(owner)
    t2 = C.AugTree(True)
    t2.insert(C.Node(PAGE, 2 * PAGE, owner))
    owner.tree = t2  # a cycle through the owner: the cyclic GC frees it
    del owner, t2
    gc.collect()
    assert probe() is None


def test_copy_and_pickle_keep_the_shape() -> None:
    """A kva allocator copies and pickles whole, on either tree."""
    a = kva_allocator.KvaAllocator(PAGE)
    for k in range(50):
        a.alloc((k % 5 + 1) * PAGE, PAGE, VSTART, VEND, k)
    for addr in [s for s, _, _ in a.for_each_busy()][::3]:
        a.remove(addr)
    b = copy.deepcopy(a)
    c = pickle.loads(pickle.dumps(a))
    for other in (b, c):
        assert dump(other._free) == dump(a._free) and dump(other._busy_tree) == dump(a._busy_tree)
        assert other.visited == a.visited
        other.check()
    want = a.alloc(3 * PAGE, PAGE, VSTART, VEND, "x")
    assert want is not None and b.alloc(3 * PAGE, PAGE, VSTART, VEND, "x") == want
    assert c.alloc(3 * PAGE, PAGE, VSTART, VEND, "x") == want
    assert dump(b._free) == dump(c._free) == dump(a._free)
