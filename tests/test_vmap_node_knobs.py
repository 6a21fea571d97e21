"""The vmap nodes' what-if knobs (6.9+): ``nr_vmap_nodes`` and ``vmap_pool_max_pages`` on
``Machine`` and in sweep specs.  Not kernel tunables (mm/vmalloc.c has no sysctl for either):
the defaults are the kernel's values and change nothing; a bad value, or a knob on a machine
without vmap nodes, is one ConfigError; any valid setting keeps check() clean."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.scale.runner import execute
from pyvmalloc.scale.spec import parse_spec
from pyvmalloc.vmalloc.vmap_node import MAX_VA_SIZE_PAGES, nr_vmap_nodes

PS = 4096


def machine(cpus: int = 2, **knobs: Any) -> pv.Machine:
    return pv.Machine(arch="x86_64", kernel="6.12", ram="64M", cpus=cpus, **knobs)


def pooled_sizes(m: pv.Machine) -> set[int]:
    """Page counts (guard included) of the areas the pools hold."""
    assert m.vmap_nodes is not None
    return {idx + 1 for vn in m.vmap_nodes.nodes for idx in vn.pools}


def test_defaults_are_the_kernels() -> None:
    # mm/vmalloc.c, 6.9+ vmap_init_nodes: n = clamp(num_possible_cpus(), 1, 128) on 64-bit;
    # MAX_VA_SIZE_PAGES = 256 (areas above it are never pooled).
    for cpus, nr in ((1, 1), (2, 2), (4, 4)):
        nodes = machine(cpus).vmap_nodes
        assert nodes is not None
        assert (nodes.nr, nodes.pool_max_pages) == (nr, 256)
    assert [nr_vmap_nodes(c, 64) for c in (1, 127, 128, 129, 4096)] == [1, 127, 128, 128, 128]
    assert nr_vmap_nodes(8, 32) == 1  # 32-bit: one node (the #if BITS_PER_LONG == 64 branch)
    explicit = machine(2, nr_vmap_nodes=2, vmap_pool_max_pages=MAX_VA_SIZE_PAGES)
    plain = machine(2)
    for m in (explicit, plain):
        addrs = [m.vmalloc(n * PS) for n in (1, 7, 7, 300, 3)]
        for a in addrs:
            m.vfree(a)
        m.vm_unmap_aliases()
        addrs += [m.vmalloc(n * PS) for n in (7, 3, 1)]
    assert explicit.stats() == plain.stats()
    assert explicit.vmallocinfo() == plain.vmallocinfo()


def test_pool_limit_decides_what_is_pooled() -> None:
    for limit, kept in ((0, set()), (2, {2}), (8, {2, 8}), (None, {2, 8, 256})):
        m = machine(vmap_pool_max_pages=limit)
        for pages in (1, 7, 255, 256):     # 2, 8, 256 and 257 pages with the guard
            m.vfree(m.vmalloc(pages * PS))
        m.vm_unmap_aliases()
        assert pooled_sizes(m) == kept, limit
        m.check()


def test_node_count_knob_spreads_zones_and_cpus() -> None:
    m = machine(2, nr_vmap_nodes=4)
    nodes = m.vmap_nodes
    assert nodes is not None and nodes.nr == 4 and nodes.zone_size == 16 * PS
    m.current_cpu = 1
    addr = m.vmalloc(3 * PS)
    assert addr
    va = m.find_vmap_area(addr)
    assert va is not None and nodes.decode(va.flags) == 1   # node_alloc: cpu % nr_vmap_nodes
    one = machine(4, nr_vmap_nodes=1)                       # one node: the global heap only
    one.vfree(one.vmalloc(3 * PS))
    one.vm_unmap_aliases()
    assert one.vmap_nodes is not None and one.vmap_nodes.shrink_count() == 0
    # What if a 32-bit kernel had nodes (vmap_init_nodes keeps one there):
    m32 = pv.Machine(arch="i386-pae", kernel="6.12", ram="64M", cpus=2, nr_vmap_nodes=2)
    m32.vfree(m32.vmalloc(3 * PS))
    m32.vm_unmap_aliases()
    assert m32.vmap_nodes is not None and m32.vmap_nodes.shrink_count() == 1
    m32.check()


@pytest.mark.parametrize("kw, says", [
    ({"nr_vmap_nodes": 0}, "nr_vmap_nodes=0: a number of vmap nodes from 1 to 255"),
    ({"nr_vmap_nodes": 256}, "nr_vmap_nodes=256"),
    ({"nr_vmap_nodes": True}, "nr_vmap_nodes=True"),
    ({"nr_vmap_nodes": 2.0}, "nr_vmap_nodes=2.0"),
    ({"vmap_pool_max_pages": -1}, "vmap_pool_max_pages=-1: a number of pages, 0 or more"),
    ({"vmap_pool_max_pages": "256"}, "vmap_pool_max_pages='256'"),
    ({"kernel": "6.6", "nr_vmap_nodes": 2}, "Linux 6.6 has no vmap nodes (they came in 6.9)"),
    ({"kernel": "2.6.22", "vmap_pool_max_pages": 8}, "Linux 2.6.22 has no vmap nodes"),
    ({"lazy_purge": False, "vmap_pool_max_pages": 8}, "lazy purge"),
])
def test_bad_knobs_are_one_config_error(kw: dict[str, Any], says: str) -> None:
    args: dict[str, Any] = {"arch": "x86_64", "ram": "64M", "kernel": "6.12", **kw}
    with pytest.raises(pv.ConfigError) as info:
        pv.Machine(**args)
    assert says in str(info.value)


# Mostly a few small sizes, so that freed areas come back from the pools, and one past the
# kernel's limit (256 pages and the guard).  Small: check()'s cost is in the mapped pages.
PAGES = st.one_of(st.sampled_from([1, 3, 7]), st.integers(1, 64), st.just(256))
OPS = st.lists(st.one_of(
    st.tuples(st.just("alloc"), PAGES, st.integers(0, 3)),                 # pages, cpu
    st.tuples(st.just("free"), st.integers(0, 63), st.just(0)),            # which live area
    st.tuples(st.just("purge"), st.just(0), st.just(0)),
    st.tuples(st.just("shrink"), st.just(0), st.just(0)),
    st.tuples(st.just("reuse"), PAGES, st.integers(0, 3)),  # alloc, free, purge, alloc again
), min_size=10, max_size=40)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cpus=st.integers(1, 4), nr=st.one_of(st.none(), st.integers(1, 9)),
       limit=st.one_of(st.none(), st.integers(0, 70)), lazy_max=st.sampled_from([None, 8, 64]),
       ops=OPS)
def test_any_valid_knobs_keep_check_clean(cpus: int, nr: int | None, limit: int | None,
                                          lazy_max: int | None, ops: list[tuple[str, int, int]]) -> None:
    m = machine(cpus, nr_vmap_nodes=nr, vmap_pool_max_pages=limit)
    if lazy_max is not None:
        m.lazy_max_pages = lazy_max   # purges (and so pools) within a few frees
    live: list[int] = []
    for op, n, cpu in ops:
        if op == "alloc":
            m.current_cpu = cpu % cpus
            addr = m.vmalloc(n * PS)
            if addr:
                live.append(addr)
        elif op == "free" and live:
            m.vfree(live.pop(n % len(live)))
        elif op == "purge":
            m.vm_unmap_aliases()
        elif op == "shrink":
            m.vmap_node_shrink()
        elif op == "reuse":         # a pool hit when the knobs leave a pool for n pages
            m.current_cpu = cpu % cpus
            m.vfree(m.vmalloc(n * PS))
            m.vm_unmap_aliases()
            again = m.vmalloc(n * PS)
            if again:
                live.append(again)
        m.check()
    for addr in live:
        m.vfree(addr)
    m.vm_unmap_aliases()
    m.check()


# ---- sweeps ---------------------------------------------------------------------------------------
SPEC = """
[sweep]
steps = 300
samples = 2
[axes]
kernels = ["6.12"]
workloads = ["ioremap_churn"]
[axes.params]
cpus = [4]
nr_vmap_nodes = [1, 4]
vmap_pool_max_pages = [0, 8, 256]
"""


def test_sweep_turns_the_knobs() -> None:
    runs = parse_spec(SPEC, "k.toml").runs
    rows = {(r.param("nr_vmap_nodes"), r.param("vmap_pool_max_pages")): execute(r)[0] for r in runs}
    assert all(row["status"] == "ok" for row in rows.values())
    hits = {k: row["pool_hits"] for k, row in rows.items()}
    # One node: node_alloc never asks a pool, whatever the limit.
    assert hits[1, 0] == hits[1, 8] == hits[1, 256] == 0
    # Four nodes: no pools, then the small areas, then all up to 256 pages.
    assert 0 == hits[4, 0] < hits[4, 8] < hits[4, 256]
    assert rows[4, 8]["vmap_pool_max_pages"] == 8 and rows[4, 8]["nr_vmap_nodes"] == 4
    # The kernel's values written out are the run without the knobs, counter for counter.
    plain = parse_spec(SPEC.split("nr_vmap_nodes")[0], "k.toml").runs[0]
    row = execute(plain)[0]
    assert row["nr_vmap_nodes"] is None and row["run_id"] != rows[4, 256]["run_id"]
    skip = {"run_id", "nr_vmap_nodes", "vmap_pool_max_pages", "host_seconds"}
    assert {k: v for k, v in row.items() if k not in skip} == \
        {k: v for k, v in rows[4, 256].items() if k not in skip}


def test_knob_free_specs_keep_their_run_ids() -> None:
    # The knobs are no default params: a restarted pre-knob sweep finds its runs again.
    run = parse_spec("[axes]\nworkloads = ['module_churn']", "k.toml").runs[0]
    assert dict(run.params).keys() == {"arch", "ram", "cpus", "steps"}


_K = "[axes]\nworkloads = ['module_churn']\nkernels = ['6.12']\n[axes.params]\n"


@pytest.mark.parametrize("text, says", [
    (_K + "nr_vmap_nodes = [0]", "axes.params.nr_vmap_nodes: nr_vmap_nodes=0"),
    (_K + "nr_vmap_nodes = [300]", "axes.params.nr_vmap_nodes: nr_vmap_nodes=300"),
    (_K + "nr_vmap_nodes = [true]", "axes.params.nr_vmap_nodes: True is not a int"),
    (_K + "vmap_pool_max_pages = [-1]", "axes.params.vmap_pool_max_pages: vmap_pool_max_pages=-1"),
    (_K + "vmap_pool_max_pages = ['8']", "axes.params.vmap_pool_max_pages: '8' is not a int"),
    (_K.replace("'6.12'", "'6.6', '6.12'") + "nr_vmap_nodes = [2]",
     "axes.params.nr_vmap_nodes: kernel 6.6 has no vmap nodes (6.9+)"),
    (_K + "vmap_pool_max_pages = [8]\nlazy_purge = [true, false]",
     "axes.params.vmap_pool_max_pages: the vmap nodes live on lazy purge"),
    (_K.replace("'module_churn'", "'trace:x.trace'") + "nr_vmap_nodes = [2]",
     "axes.params.nr_vmap_nodes: a trace: workload"),
])
def test_knob_spec_errors_name_file_and_key(text: str, says: str) -> None:
    with pytest.raises(pv.ConfigError, match=r"^my\.toml: ") as info:
        parse_spec(text, "my.toml")
    assert says in str(info.value)


def test_parts_written_before_the_knobs_still_read(tmp_path: Any) -> None:
    pytest.importorskip("pyarrow")
    from pyvmalloc.scale.runner import RUN_COLUMNS
    from pyvmalloc.scale.store import Table, schema

    old_columns = [c for c in RUN_COLUMNS if c not in ("nr_vmap_nodes", "vmap_pool_max_pages")]
    Table(str(tmp_path), "runs", schema(old_columns)).append([{"run_id": "a", "seed": 1}])
    new = Table(str(tmp_path), "runs", schema(RUN_COLUMNS))
    new.append([{"run_id": "b", "seed": 2, "nr_vmap_nodes": 4}])
    rows = {r["run_id"]: r for r in new.read().to_pylist()}
    assert rows["a"]["nr_vmap_nodes"] is None and rows["a"]["seed"] == 1
    assert rows["b"]["nr_vmap_nodes"] == 4 and new.keys() == {"a", "b"}
