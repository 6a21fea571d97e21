"""Kernel versions: every rule of versions.py at work, each test naming the commit it follows."""

from __future__ import annotations

import pytest

import pyvmalloc as pv
from pyvmalloc import versions as V
from pyvmalloc.arch import PROFILES
from pyvmalloc.phys import gfp as G

PAGE = 4096


# ---- the version axis ------------------------------------------------------------------------
@pytest.mark.parametrize("text,want", [
    ("6.1", (6, 1, 0)), ("3.4.5", (3, 4, 5)), ("2.6.22", (2, 6, 22)),
    ("6.1.0-57-amd64", (6, 1, 0)), ("Linux version 4.14.98-g1234 (gcc)", (4, 14, 98)),
    ("v5.10", (5, 10, 0)), ("6.12.95+deb12-amd64", (6, 12, 95)),
])
def test_versions_parse_as_uname_and_proc_version_print_them(text: str, want: tuple[int, int, int]) -> None:
    v = V.parse_version(text)
    assert (v.major, v.minor, v.patch) == want


@pytest.mark.parametrize("bad", ["7.0", "2.6.21", "2.4.37", "banana", "", "6", "3." + "9" * 50,
                                 "6.00000000001"])
def test_an_unknown_version_is_a_config_error_that_lists_the_known_ones(bad: str) -> None:
    with pytest.raises(pv.ConfigError) as info:
        pv.Machine(ram="64M", kernel=bad)
    msg = str(info.value)
    assert repr(bad) in msg and "2.6.22" in msg and "6.12" in msg and "6.1," in msg


@pytest.mark.parametrize("kernel,ok", [("6.15", True), ("6.15.11", True), ("6.16", False),
                                       ("6.19", False), ("6.19.0-1-amd64", False)])
def test_the_newest_kernel_is_6_15_until_every_later_change_is_known(kernel: str, ok: bool) -> None:
    # 6.16-6.19's changes to the model's answers are not all established (versions._NEWEST):
    # claiming 6.19 would give 6.15's answers under 6.19's name.
    if ok:
        assert pv.Machine(ram="64M", kernel=kernel).kernel.series() == (6, 15, 0)
    else:
        with pytest.raises(pv.ConfigError, match="outside what the model knows"):
            pv.Machine(ram="64M", kernel=kernel)


def test_a_version_must_be_text() -> None:
    with pytest.raises(pv.ConfigError, match="string"):
        pv.Machine(ram="64M", kernel=6.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("kernel", V.KNOWN_VERSIONS)
@pytest.mark.parametrize("arch", sorted(PROFILES))
def test_every_listed_version_boots_every_arch_and_allocates(kernel: str, arch: str) -> None:
    if arch == "x86_64-la57" and not V.has(V.parse_version(kernel), "x86_64_five_level_paging"):
        with pytest.raises(pv.ConfigError, match=r"5-level paging came with Linux 4\.14"):
            pv.Machine(arch=arch, ram="64M", kernel=kernel)
        return
    if arch == "arm64" and not V.has(V.parse_version(kernel), "arm64_port"):
        with pytest.raises(pv.ConfigError, match=r"arm64: the port came with Linux 3\.7"):
            pv.Machine(arch=arch, ram="64M", kernel=kernel)
        return
    m = pv.Machine(arch=arch, ram="64M", kernel=kernel)
    assert str(m.kernel) == kernel and f"Linux version {kernel}-pyvmalloc" in m.dmesg()[0]
    a = m.vmalloc(3 * PAGE)
    assert a is not None and m.VMALLOC_START <= a < m.VMALLOC_END
    m.vfree(a)
    m.check()


def test_every_change_names_its_commit_and_parses() -> None:
    for name, change in V.CHANGES.items():
        assert change.commit and change.what, name
        since = V.parse_version(change.since)
        assert V.has(since, name)
        if change.until is not None:
            assert not V.has(V.parse_version(change.until), name)


def test_the_default_kernel_is_6_1() -> None:
    assert str(pv.Machine(ram="64M").kernel) == V.DEFAULT_KERNEL == "6.1"


# ---- the allocator -----------------------------------------------------------------------------
@pytest.mark.parametrize("kernel,want", [
    ("2.6.22", "list"), ("2.6.27", "list"),
    ("2.6.28", "rbtree"),          # db64fe02258f "mm: rewrite vmap layer"
    ("2.6.39", "rbtree-cache"),    # 89699605fe7c "mm: vmap area cache"
    ("4.19", "rbtree-cache"), ("5.1", "rbtree-cache"),
    ("5.2", "kva-rbtree"),         # 68ad4a330433 "keep track of free blocks for vmap allocation"
    ("6.12", "kva-rbtree"),
])
def test_each_kernel_runs_its_own_allocator(kernel: str, want: str) -> None:
    assert pv.Machine(ram="64M", kernel=kernel).allocator_name == want
    assert pv.Machine(ram="64M", kernel=kernel, allocator="list").allocator_name == "list"


# ---- messages ------------------------------------------------------------------------------------
def _fail(kernel: str) -> list[str]:
    m = pv.Machine(arch="i386", ram="1G", kernel=kernel)
    assert m.vmalloc(500 << 20) is None
    return [line.split("] ", 1)[1] for line in m.dmesg()[-3:]]


def test_the_2_6_22_message() -> None:
    assert _fail("2.6.22")[-1] == ("allocation failed: out of vmalloc space - use vmalloc=<size> "
                                   "to increase size.")


def test_the_2_6_28_message_counts_the_guard_page_db64fe02258f() -> None:
    """vmap_fail_message: alloc_vmap_area's line, with the guard page in the size."""
    assert _fail("2.6.30")[-1] == ("vmap allocation for size 524292096 failed: use "
                                   "vmalloc=<size> to increase size")


def test_6_1_adds_the_vmalloc_error_line_with_6_1_gfp_bits() -> None:
    """vmalloc_error_message: "mm/vmalloc: print a warning message first on failure" (5.13),
    and 6.1's GFP bits (gfp_reclaim_bits, d0164adc89f6: GFP_KERNEL is 0xcc0)."""
    lines = _fail("6.1")
    assert lines[-2] == "vmap allocation for size 524292096 failed: use vmalloc=<size> to increase size"
    assert lines[-1] == ("pyvmalloc: vmalloc error: size 524288000, vm_struct allocation failed, "
                         "mode:0xcc2(GFP_KERNEL|__GFP_HIGHMEM), nodemask=(null),cpuset=/,"
                         "mems_allowed=0")


def test_3_x_prints_the_allocation_failure_then_the_page_allocation_line() -> None:
    """vmalloc_alloc_failure_message (2.6.38: warn_alloc_failed), before warn_alloc (4.10)."""
    assert _fail("3.4")[-2:] == ["vmalloc: allocation failure: 524288000 bytes",
                                 "pyvmalloc: page allocation failure: order:0, mode:0xd2"]


def test_4_14_prints_one_warn_alloc_line() -> None:
    """warn_alloc (4.10): "comm: <text>, mode:%#x(%pGg), nodemask=%*pbl" on one line."""
    assert _fail("4.14")[-1] == ("pyvmalloc: vmalloc: allocation failure: 524288000 bytes, "
                                 "mode:0xcc2(GFP_KERNEL|__GFP_HIGHMEM), nodemask=(null)")


def test_6_11_names_the_restricted_range() -> None:
    """vmap_range_restricted_message (6.11) replaces the vmalloc= hint."""
    m = pv.Machine(arch="i386", ram="1G", kernel="6.12")
    assert m.vmalloc(500 << 20) is None
    assert any(f"vmalloc_node_range for size 524292096 failed: Address range restricted to "
               f"{m.VMALLOC_START:#x} - {m.VMALLOC_END:#x}" in line for line in m.dmesg())


def test_no_message_with_gfp_nowarn() -> None:
    m = pv.Machine(arch="i386", ram="1G", kernel="6.1")
    before = len(m.dmesg())
    nowarn = G.GFP_KERNEL | getattr(G, "__GFP_HIGHMEM") | getattr(G, "__GFP_NOWARN")
    assert m.vmalloc_gfp(500 << 20, nowarn) is None
    assert len(m.dmesg()) == before


# ---- freeing -------------------------------------------------------------------------------------
def test_vfree_in_interrupt_context_is_deferred_from_3_10_32fcfd40715e() -> None:
    m = pv.Machine(ram="64M", kernel="3.10")
    a = m.vmalloc(PAGE)
    with m.interrupt():
        m.vfree(a)                      # no BUG: queued for a work item
        with pytest.raises(pv.KernelBug):
            m.vunmap(a)                 # vunmap() still BUGs
    assert m.find_vm_area(a) is not None
    m.run_workers()
    assert m.find_vm_area(a) is None
    m.check()
    old = pv.Machine(ram="64M", kernel="3.9")
    b = old.vmalloc(PAGE)
    with old.interrupt(), pytest.raises(pv.KernelBug):
        old.vfree(b)


def _unpurged(kernel: str) -> list[str]:
    m = pv.Machine(ram="64M", kernel=kernel)
    a, b, _c = (m.vmalloc(PAGE) for _ in range(3))
    m.vfree(a)
    m.vfree(b)
    return [line for line in m.vmallocinfo().splitlines() if "unpurged" in line]


def test_unpurged_lines_merge_from_5_11_96e2db456135_until_the_6_9_vmap_nodes() -> None:
    assert len(_unpurged("6.1")) == 1 and "16384 unpurged vm_area" in _unpurged("6.1")[0]
    assert len(_unpurged("5.4")) == 2        # dd3b8353bae7: one line each, after the busy ones
    assert len(_unpurged("6.12")) == 2       # per-node lazy lists: one line each again


def test_before_5_4_lazily_freed_areas_sit_among_the_busy_ones_from_4_13_78c72746f56b() -> None:
    m = pv.Machine(ram="64M", kernel="4.19")
    a, b = m.vmalloc(PAGE), m.vmalloc(PAGE)
    m.vfree(a)
    lines = m.vmallocinfo().splitlines()
    assert "unpurged vm_area" in lines[0] and f"0x{b:016x}" in lines[1]
    m.check()
    old = pv.Machine(ram="64M", kernel="4.12")   # lazily freed, and not shown at all
    a = old.vmalloc(PAGE)
    old.vfree(a)
    assert old.lazy_areas() and "unpurged" not in old.vmallocinfo()
    old.check()


# meminfo_walks_vmap_area_list (3.10), meminfo_vmalloc_walk_removed, meminfo_vmalloc_used_pages
@pytest.mark.parametrize("kernel,gen", [("2.6.22", "vmlist"), ("3.10", "vmap_area_list"),
                                        ("4.4", "zero"), ("5.3", "nr_pages"), ("6.1", "nr_pages")])
def test_meminfo_vmalloc_lines_by_version_a5ad88ce8c7f_97105f0ab7b8(kernel: str, gen: str) -> None:
    assert V.meminfo_generation(V.parse_version(kernel)) == gen


@pytest.mark.parametrize("word,rule", [("vpages", "vmallocinfo_vpages_word"),
                                       ("dma-coherent", "vmallocinfo_dma_coherent_word"),
                                       ("sparse", "vmallocinfo_sparse_word")])
def test_a_word_of_proc_vmallocinfo_dates_a_dump(word: str, rule: str) -> None:
    """The words a release brought (vmallocinfo_vpages_word, vmallocinfo_dma_coherent_word,
    vmallocinfo_sparse_word) put a floor under the kernel that printed a dump."""
    from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo
    from pyvmalloc.snapshot.layout import infer_kernel

    text = (f"0xffffc90000000000-0xffffc90000003000   12288 f+0x1/0x2 pages=2 vmalloc {word}\n"
            if word == "vpages" else
            f"0xffffc90000000000-0xffffc90000003000   12288 f+0x1/0x2 {word}\n")
    span, why = infer_kernel(parse_vmallocinfo(text, "t"))
    assert span.lo == V.parse_version(V.CHANGES[rule].since) and word in why


def test_the_x86_32_and_arm_layout_helpers_name_their_rules() -> None:
    """x86_32_vmalloc_start_unrounded, x86_32_vmalloc_param_adds_offset (2.6.25),
    arm_vmalloc_end_ff800000 (4.2), arm_vmalloc_size_uniform (5.15)."""
    old, new = V.parse_version("2.6.22"), V.parse_version("6.1")
    hm = 0xF6FFE000
    assert V.x86_32_vmalloc_start(old, hm, 8 << 20) == 0xF7800000
    assert V.x86_32_vmalloc_start(new, hm, 8 << 20) == 0xF77FE000
    assert V.x86_32_vmalloc_reserve(new, 256 << 20, 8 << 20) == 264 << 20
    assert V.arm_vmalloc_end(V.parse_version("3.4")) == 0xFF000000
    assert V.arm_vmalloc_end(new) == 0xFF800000
    end = 0xFF000000
    assert V.arm_vmalloc_min(V.parse_version("3.4"), end, 592 << 20, 240 << 20, 8 << 20) == end - (592 << 20)
    assert V.arm_vmalloc_min(new, end, 592 << 20, 240 << 20, 8 << 20) == end - (600 << 20)


def test_x86_64_layouts_by_version() -> None:
    """x86_64_vmalloc_64tb_map (Rik van Riel, "x86: 46 bit PAE support", 2.6.31) and
    x86_64_kaslr_memory (CONFIG_RANDOMIZE_MEMORY, 4.8)."""
    old = pv.Machine(ram="64M", kernel="2.6.22")
    assert (old.VMALLOC_START, old.VMALLOC_END) == V.X86_64_VMALLOC_2622
    assert pv.Machine(ram="64M", kernel="2.6.31").VMALLOC_START == 0xFFFFC90000000000
    assert not pv.Machine(ram="64M", kernel="4.7", kaslr_seed=3).layout.params["kaslr"]
    assert pv.Machine(ram="64M", kernel="4.8", kaslr_seed=3).layout.params["kaslr"]
