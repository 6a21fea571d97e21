"""Today's API (vmalloc/kvmalloc.py): vzalloc, vmalloc_array/vcalloc, huge vmalloc, vmap_pfn,
vrealloc (6.12, 6.15) and kvmalloc/kvfree/kvrealloc, each at the release that brought it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pyvmalloc as pv
from pyvmalloc.analysis import oracle as O
from pyvmalloc.kernel import test_vmalloc as tv
from pyvmalloc.phys import gfp as G
from pyvmalloc.vmalloc.kvmalloc import ZERO_SIZE_PTR
from pyvmalloc.vmalloc.vm_struct import (
    VM_ALLOW_HUGE_VMAP,
    VM_FLUSH_RESET_PERMS,
    VM_IOREMAP,
    VM_NO_GUARD,
    VM_VPAGES,
)

PAGE = 4096
PMD = 2 << 20
ZERO = getattr(G, "__GFP_ZERO")
NOWARN = getattr(G, "__GFP_NOWARN")
KINDS612 = Path("/work/shared/data/oracle/linux-6.12-amd64/kinds612")


def machine(kernel: str = "6.12", **kw: object) -> pv.Machine:
    return pv.Machine(ram=kw.pop("ram", "512M"), kernel=kernel, **kw)  # type: ignore[arg-type]


# ---- version gates --------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,call,since,commit", [
    ("2.6.36", lambda m: m.vzalloc(PAGE), "2.6.37", "e1ca7788dec6"),
    ("4.11", lambda m: m.kvmalloc(PAGE), "4.12", "a7c3e901a46f"),
    ("5.9", lambda m: m.vmap_pfn([1 << 30], 1), "5.10", "3e9a9e256b1e"),
    ("5.17", lambda m: m.vmalloc_huge(PMD), "5.18", "559089e0a93d"),
    ("5.17", lambda m: m.vcalloc(2, PAGE), "5.18", "a8749a35c399"),
    ("6.1", lambda m: m.vrealloc(None, PAGE), "6.12", "3ddc2fefe6f3"),
    ("3.19", lambda m: m.vmalloc_node_range_flags(PAGE, 1, m.VMALLOC_START, m.VMALLOC_END,
                                                  G.GFP_KERNEL, None, 0, -1), "4.0", "cb9e3c292d01"),
])
def test_each_function_exists_from_its_release(kernel: str, call, since: str, commit: str) -> None:  # type: ignore[no-untyped-def]
    m = machine(kernel, ram="256M")
    with pytest.raises(pv.ConfigError, match=rf"not in Linux {kernel}: it came with Linux {since} \({commit}"):
        call(m)
    m.check()


def test_kernel_615_is_accepted() -> None:
    assert str(machine("6.15").kernel) == "6.15"


# ---- vzalloc, vmalloc_array, vcalloc --------------------------------------------------------
def test_vzalloc_and_vzalloc_node_are_zeroed() -> None:
    m = machine("2.6.37", ram="256M")
    a = m.vmalloc(3 * PAGE)
    assert a is not None
    m.write(a, b"\xff" * 3 * PAGE)
    m.vfree(a)
    z = m.vzalloc(3 * PAGE)
    zn = m.vzalloc_node(2 * PAGE, 0)
    assert z is not None and zn is not None
    assert m.read(z, 3 * PAGE) == bytes(3 * PAGE) and m.read(zn, 2 * PAGE) == bytes(2 * PAGE)
    m.check()
    m.vfree(z)
    m.vfree(zn)
    m.check()


def test_vmalloc_array_and_vcalloc_check_overflow() -> None:
    m = machine("5.18")
    a = m.vmalloc_array(3, 1000)
    c = m.vcalloc(5, PAGE)
    assert a is not None and c is not None
    assert m.find_vm_area(a).size == PAGE + PAGE  # type: ignore[union-attr]
    assert m.read(c, 5 * PAGE) == bytes(5 * PAGE)
    assert m.vmalloc_array(1 << 33, 1 << 31) is None       # 2**64: size_t overflow
    assert m.vcalloc(2, (1 << 63)) is None
    assert m.vmalloc_array(-1, 2) is None                  # (size_t)-1 * 2 overflows
    assert m.vcalloc(0, PAGE) is None                      # 0 bytes: vmalloc's NULL
    m.check()
    m.vfree(a)
    m.vfree(c)
    m.check()
    m32 = pv.Machine(arch="i386-pae", ram="256M", kernel="6.1")
    assert m32.vmalloc_array(1 << 16, 1 << 16) is None     # 2**32 overflows a 32-bit size_t
    m32.check()


# ---- huge vmalloc ----------------------------------------------------------------------------
def test_vmalloc_huge_aligns_rounds_and_maps_pmd_leaves() -> None:
    m = machine("6.12")
    small = m.vmalloc(PAGE)                                  # push the next fit off 2 MiB
    h = m.vmalloc_huge(600 * PAGE)
    assert small is not None and h is not None
    area = m.find_vm_area(h)
    assert area is not None
    assert h % PMD == 0 and area.size == 2 * PMD + PAGE and area.nr_pages == 1024
    assert area.flags & VM_ALLOW_HUGE_VMAP and area.flags & VM_VPAGES and area.page_order == 9
    assert area.requested_size == 600 * PAGE
    for off in (0, PMD):
        leaf = m.walk(h + off)[-1]
        assert leaf.level == "pmd" and "PS" in leaf.flags
    pfns = m.pages_of(h, 1024 * PAGE)
    assert list(pfns) == list(area.pages) and pfns[0] % 512 == 0
    assert np.all(np.diff(pfns[:512]) == 1)                 # one order-9 block, split
    m.write(h + PMD + 7, b"huge")
    assert m.read(h + PMD + 7, 4) == b"huge"
    assert "vmalloc_huge" in m.vmallocinfo() and "pages=1024" in m.vmallocinfo()
    m.check()
    m.vfree(h)
    m.vfree(small)
    m.vm_unmap_aliases()
    m.check()


def test_vmalloc_huge_below_pmd_size_or_on_other_arches_is_plain() -> None:
    m = machine("6.12")
    a = m.vmalloc(PAGE)
    h = m.vmalloc_huge(4 * PAGE)
    assert a is not None and h == a + 2 * PAGE             # the next fit, no 2 MiB alignment
    assert m.find_vm_area(h).size == 5 * PAGE               # type: ignore[union-attr]
    m.check()
    for arch in ("i386-pae", "arm64"):
        mm = pv.Machine(arch=arch, ram="256M", kernel="6.12")
        x = mm.vmalloc(PAGE)
        y = mm.vmalloc_huge(PMD)
        assert x is not None and y == x + 2 * PAGE and mm.find_vm_area(y).page_order == 0  # type: ignore[union-attr]
        mm.check()


def test_vmalloc_huge_per_node_size_decides() -> None:
    # 6.1: size_per_node = size / num_online_nodes() for NUMA_NO_NODE.
    m = pv.Machine(ram="512M", nodes=2, kernel="6.12")
    m.vmalloc(PAGE)
    h = m.vmalloc_huge(PMD)
    assert h is not None and h % PMD != 0
    h2 = m.vmalloc_huge(2 * PMD)
    assert h2 is not None and h2 % PMD == 0
    m.check()


def test_vmalloc_huge_falls_back_to_small_pages_without_order9_blocks() -> None:
    m = machine("6.12", ram="64M")
    # Take every free block of order 9 or more one page at a time, then give back every
    # other page: plenty of free memory, no order-9 block.
    held = []
    while True:
        pfn = m.phys.alloc_pages_node(-1, G.GFP_KERNEL | NOWARN, 0)
        if pfn is None:
            break
        held.append(pfn)
    for pfn in held[::2]:
        m.phys.free_page(pfn)
    m.vmalloc(PAGE)
    h = m.vmalloc_huge(PMD)
    assert h is not None
    area = m.find_vm_area(h)
    assert area is not None and area.page_order == 0 and area.size == PMD + PAGE
    assert h % PMD != 0                                     # the caller's alignment again
    assert m.walk(h)[-1].level == "pte"
    m.vfree(h)
    for pfn in held[1::2]:
        m.phys.free_page(pfn)
    m.check()


def test_vmalloc_node_range_flags() -> None:
    m = machine("6.12")
    a = m.vmalloc_node_range_flags(PMD, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL, None,
                                   VM_ALLOW_HUGE_VMAP | VM_FLUSH_RESET_PERMS, 0)
    assert a is not None and a % PMD == 0
    assert m.find_vm_area(a).flags & VM_FLUSH_RESET_PERMS  # type: ignore[union-attr]
    ng = m.vmalloc_node_range_flags(PAGE, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL, None,
                                    VM_NO_GUARD, -1)  # 4.0+: no guard page (tests/test_vm_flags.py)
    assert ng is not None and m.find_vm_area(ng).size == PAGE  # type: ignore[union-attr]
    m.vfree(ng)
    with pytest.raises(ValueError, match="vm_flags"):
        m.vmalloc_node_range_flags(PAGE, 1, m.VMALLOC_START, m.VMALLOC_END, G.GFP_KERNEL, None,
                                   VM_IOREMAP, -1)
    m.vfree(a)
    m.check()


# ---- vmap_pfn ----------------------------------------------------------------------------------
def test_vmap_pfn_maps_device_pfns_in_an_ioremap_area() -> None:
    m = machine("6.1")
    dev = 1 << 28                                            # 1 TiB: no RAM there
    a = m.vmap_pfn([dev + i for i in range(3)], 3)
    assert a is not None
    area = m.find_vm_area(a)
    assert area is not None and area.flags & VM_IOREMAP and a % (4 * PAGE) == 0
    assert m.translate(a + PAGE + 5) == ((dev + 1) << 12) + 5
    assert "ioremap" in m.vmallocinfo()
    m.check()
    ram = m.alloc_page()
    assert m.vmap_pfn([dev, ram.pfn], 2) is None             # type: ignore[union-attr]
    assert any("vmap_pfn_apply" in line for line in m.dmesg())
    m.vunmap(a)
    m.free_page(ram)
    m.check()


# ---- vrealloc ----------------------------------------------------------------------------------
def test_vrealloc_612_keeps_the_address_within_the_area_and_moves_beyond() -> None:
    m = machine("6.12")
    p = m.vmalloc(3 * PAGE)
    assert p is not None
    m.write(p, bytes(range(256)) * 48)
    assert m.vrealloc(p, 2 * PAGE) == p                     # shrink: same area
    assert m.vrealloc(p, 3 * PAGE) == p                     # 6.12: the area's size counts
    q = m.vrealloc(p, 4 * PAGE)
    assert q is not None and q != p
    assert m.read(q, 3 * PAGE) == bytes(range(256)) * 48    # old_size bytes copied
    assert m.find_vm_area(p) is None                        # the old area was freed after
    m.check()
    assert m.vrealloc(q, 0) is None and m.find_vm_area(q) is None
    n = m.vrealloc(None, 100)
    assert n is not None and m.find_vm_area(n).size == 2 * PAGE  # type: ignore[union-attr]
    assert m.vrealloc(n + PAGE * 1000, PAGE) is None        # unknown area: WARN and NULL
    assert any("Trying to vrealloc() nonexistent vm area" in line for line in m.dmesg())
    m.vfree(n)
    m.check()


def test_vrealloc_612_zeroes_the_tail_with_gfp_zero_only() -> None:
    m = machine("6.12")
    p = m.vmalloc(2 * PAGE)
    assert p is not None
    m.write(p, b"x" * 2 * PAGE)
    assert m.vrealloc(p, 100) == p
    assert m.read(p, 2 * PAGE) == b"x" * 2 * PAGE           # init_on_alloc off: nothing zeroed
    assert m.vrealloc(p, 100, G.GFP_KERNEL | ZERO) == p
    assert m.read(p, 2 * PAGE) == b"x" * 100 + bytes(2 * PAGE - 100)
    m.vfree(p)
    m.check()


def test_vrealloc_615_requested_size_grows_in_place_and_zeroes_on_shrink() -> None:
    m = machine("6.15")
    p = m.vrealloc(None, 100)
    assert p is not None and m.find_vm_area(p).requested_size == 100  # type: ignore[union-attr]
    m.write(p, b"y" * PAGE)
    assert m.vrealloc(p, PAGE) == p                          # grow within the area: in place
    assert m.find_vm_area(p).requested_size == PAGE          # type: ignore[union-attr]
    assert m.read(p, PAGE) == b"y" * PAGE                    # an in-place grow does not zero
    assert m.vrealloc(p, 10, G.GFP_KERNEL | ZERO) == p
    assert m.read(p, PAGE) == b"y" * 10 + bytes(PAGE - 10)   # the freed tail zeroed
    q = m.vrealloc(p, 2 * PAGE)
    assert q is not None and q != p
    assert m.read(q, 10) == b"y" * 10                        # requested_size bytes copied
    m.vfree(q)
    m.check()


def test_vrealloc_test_scenario_runs_from_612_only() -> None:
    names612 = [n for _b, n, _f in tv.scenarios(machine("6.12", ram="256M"))]
    assert "vrealloc_test" in names612 and "vrealloc_test" not in tv.NOT_MODELLED
    assert "vrealloc_test" not in [n for _b, n, _f in tv.scenarios(machine("6.1", ram="256M"))]
    m = machine("6.12", ram="256M")
    rep = tv.run(m, tv.Params(run_test_mask=1 << 12, test_loop_count=5))
    (out,) = rep.outcomes[0]
    assert out.name == "vrealloc_test" and out.failed == 0 and out.ops == 5 * 6
    assert not list(m.areas())
    m.vm_unmap_aliases()
    m.check()


# ---- kvmalloc / kvfree / kvrealloc -----------------------------------------------------------
def test_kvmalloc_uses_the_slab_first_and_vmalloc_beyond_it() -> None:
    m = machine("6.1")
    small = m.kvmalloc(100)
    mid = m.kvmalloc(64 * PAGE)                              # a kmalloc order-6 block
    big = m.kvmalloc(8 << 20)                                # over KMALLOC_MAX_SIZE (4 MiB)
    assert small is not None and mid is not None and big is not None
    assert small >= m.profile.page_offset and not m.VMALLOC_START <= small < m.VMALLOC_END
    assert not m.VMALLOC_START <= mid < m.VMALLOC_END
    assert m.VMALLOC_START <= big < m.VMALLOC_END
    area = m.find_vm_area(big)
    assert area is not None and area.flags & VM_ALLOW_HUGE_VMAP and big % PMD == 0  # 5.18+
    assert m.kvmalloc(0) == ZERO_SIZE_PTR
    z = m.kvzalloc(3 * PAGE)
    assert z is not None and m.phys.frames.read(z - m.profile.page_offset, 3 * PAGE) == bytes(3 * PAGE)
    m.check()
    for a in (small, mid, big, z, ZERO_SIZE_PTR, None):
        m.kvfree(a)
    m.check()


def test_kvmalloc_gfp_rules() -> None:
    m = machine("6.1")
    assert m.kvmalloc(1 << 31, G.GFP_KERNEL | NOWARN) is None       # > INT_MAX (5.15+)
    assert m.kvmalloc(8 << 20, G.GFP_ATOMIC) is None                 # vmalloc would sleep
    nofs = m.kvmalloc(8 << 20, G.GFP_NOFS)                           # 5.19+: vmalloc'ed
    assert nofs is not None
    m.kvfree(nofs)
    old = machine("5.10")
    assert old.kvmalloc(8 << 20, G.GFP_NOFS) is None                 # 4.12-5.18: kmalloc only
    big = old.kvmalloc(8 << 20)
    assert big is not None and old.find_vm_area(big).page_order == 0  # type: ignore[union-attr]
    old.kvfree(big)
    m.check()
    old.check()


def test_kvrealloc_612_slab_and_vmalloc() -> None:
    m = machine("6.12")
    p = m.kvmalloc(100)
    assert p is not None
    m.phys.frames.write(p - m.profile.page_offset, b"slab!")
    assert m.kvrealloc(p, 120) == p                          # ksize (128) holds it: krealloc keeps it
    q = m.kvrealloc(p, 3 * PAGE)
    assert q is not None and q != p
    r = m.kvrealloc(q, 8 << 20)                              # over the slab: vmalloc
    assert r is not None and m.VMALLOC_START <= r < m.VMALLOC_END
    assert m.read(r, 5) == b"slab!"
    assert m.kvrealloc(r, PAGE) == r                         # vrealloc: fits the area
    m.check()
    m.kvfree(r)
    m.check()


def test_kvrealloc_before_612_takes_oldsize() -> None:
    m = machine("6.1")
    p = m.kvmalloc(PAGE)
    assert p is not None
    with pytest.raises(TypeError, match="oldsize"):
        m.kvrealloc(p, 2 * PAGE)
    assert m.kvrealloc(p, 100, oldsize=PAGE) == p
    q = m.kvrealloc(p, 8 << 20, oldsize=PAGE)
    assert q is not None and m.VMALLOC_START <= q < m.VMALLOC_END
    m.kvfree(q)
    m.check()


# ---- the oracle harness: hN, yN, wK:N of the 6.12 kinds612 capture -----------------------------
@pytest.mark.skipif(not KINDS612.exists(), reason="oracle captures not available")
def test_kinds612_parses_and_its_huge_ops_follow_the_rule() -> None:
    (script,) = O.parse_module_res((KINDS612 / "module.res").read_text())
    res = script.results
    ops = [r.op for r in res]
    assert {"h512", "h600", "y5", "w1:4"} <= set(ops)
    m = machine("6.12", ram="1G")
    for r in res:
        if r.op.startswith("h"):
            n = int(r.op[1:])
            addr = r.addr()
            assert addr is not None
            if n * PAGE >= PMD:                               # aligned to 2 MiB, size rounded up
                assert addr % PMD == 0
                h = m.vmalloc_huge(n * PAGE)
                assert h is not None and h % PMD == 0
                assert m.find_vm_area(h).size == -(-n * PAGE // PMD) * PMD + PAGE  # type: ignore[union-attr]
                m.vfree(h)
    after = (KINDS612 / "after.txt").read_text()
    assert "0xffffc90000800000-0xffffc90000a01000 2101248" in after   # h512: 2 MiB + guard
    m.check()


@pytest.mark.skipif(not KINDS612.exists(), reason="oracle captures not available")
def test_kinds612_replays_huge_32_and_realloc_ops() -> None:
    rep = O.replay_capture(KINDS612)
    by = {o.index: o for o in rep.ops}
    for o in rep.ops:
        if o.token[0] in "hyw" and o.index < 16:                 # before the first purge: no pools
            assert o.status == "exact", o.line()
    assert [o.status for o in rep.ops if o.token.startswith("w")] == ["exact"] * 6
    assert by[26].token == "h512" and by[26].status == "exact"


def test_kvfree_rcu_frees_after_a_grace_period_and_bench_runs_its_tests() -> None:
    """kvfree_rcu_vmalloc (5.9): the object stays until a grace period (the model: the work
    items, or rcu_barrier()); lib/test_vmalloc.c's two kvfree_rcu tests run on 5.9+."""

    from pyvmalloc.kernel import test_vmalloc as tv

    m = pv.Machine(ram="128M", kernel="6.1")
    a = m.vmalloc(4096)
    assert a is not None
    m.kvfree_rcu(a)
    assert m.find_vm_area(a) is not None          # not before the grace period
    m.rcu_barrier()
    assert m.find_vm_area(a) is None
    m.check()
    for bit in (8, 9):
        rep = tv.run(m, tv.Params(run_test_mask=1 << bit, test_loop_count=30))
        (out,) = rep.outcomes[0]
        assert out.failed == 0 and out.ops == 60
    assert not list(m.areas())
    m.check()
    with pytest.raises(pv.ConfigError, match=r"5\.9"):
        pv.Machine(ram="128M", kernel="5.4").kvfree_rcu(a)
    old = pv.Machine(ram="128M", kernel="5.4")   # not a test that kernel's module has
    assert tv.run(old, tv.Params(run_test_mask=1 << 8, test_loop_count=3)).outcomes == [[]]


def test_bench_use_huge_allocates_fix_size_with_vmalloc_huge(capsys: pytest.CaptureFixture[str]) -> None:
    """lib/test_vmalloc.c's use_huge: fix_size_alloc_test calls vmalloc_huge() (5.18+)."""
    from pyvmalloc.cli.main import main
    from pyvmalloc.kernel import test_vmalloc as tv

    m = pv.Machine(ram="256M", kernel="6.1")
    seen: list[int] = []
    real = m.vmalloc_huge

    def spy(size: int, gfp: int = G.GFP_KERNEL, caller: str | None = None) -> int | None:
        addr = real(size, gfp, caller)
        seen.append(addr or 0)
        return addr

    m.vmalloc_huge = spy  # type: ignore[method-assign]
    (out,) = tv.run(m, tv.Params(run_test_mask=1, test_loop_count=4, nr_pages=512,
                                 use_huge=True)).outcomes[0]
    assert out.failed == 0 and len(seen) == 4 and all(a % (2 << 20) == 0 for a in seen)
    assert main(["bench", "run_test_mask=1", "test_loop_count=2", "use_huge=1", "nr_pages=512",
                 "--ram", "256M", "--allocator", "kva", "--json"]) == 0
    capsys.readouterr()
