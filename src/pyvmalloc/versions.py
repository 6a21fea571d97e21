"""Kernel versions: every rule that changed between Linux releases, with the commit that changed it.

One module to audit.  Each rule that differs between the kernels the model speaks for is a
:class:`Change` in :data:`CHANGES` (the release that brought it, the commit or patch that did,
what it changed); the few computations that differ are small functions below it, and the layers
ask them (``versions.has(kernel, "lazy_purge")``, ``ioremap_align(...)``...) instead of writing
their own ``if version >= ...``.  A change whose release is marked ``≈`` was dated from its merge
window or posting, not read off a tagged tree.

A machine runs one kernel: ``pv.Machine(kernel="6.1")``.  Any version from 2.6.22 to 6.15 is
accepted ("3.4.5", "4.14", "6.1.0-57-amd64"); :data:`KNOWN_VERSIONS` are the releases the model
was checked against or that a rule names.  :data:`DEFAULT_KERNEL` is 6.1: the oldest kernel still
in wide service (Debian 12, many embedded BSPs), and the one proven address for address against
real captures; 2.6.22, the seed, is one ``kernel=`` away.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from pyvmalloc.errors import ConfigError

__all__ = [
    "CHANGES",
    "DEFAULT_KERNEL",
    "KNOWN_VERSIONS",
    "Change",
    "KernelVersion",
    "allocator_for",
    "changes_between",
    "has",
    "ioremap_align",
    "ioremap_max_order",
    "parse_version",
    "resolve",
    "vmap_failure_lines",
    "gfp_value",
    "vmalloc_failure_lines",
    "arm_vmalloc_end",
    "arm_vmalloc_max",
    "arm_vmalloc_min",
    "meminfo_generation",
    "x86_32_maxmem",
    "x86_32_vmalloc_end",
    "x86_32_vmalloc_reserve",
    "x86_32_vmalloc_start",
    "X86_64_VMALLOC_2622",
]


@dataclass(frozen=True, order=True)
class KernelVersion:
    """A Linux release ``major.minor.patch`` (``2.6.22`` is (2, 6, 22); ``6.1`` is (6, 1, 0))."""

    major: int
    minor: int
    patch: int = 0
    text: str = field(default="", compare=False)

    def __str__(self) -> str:
        return self.text or (f"{self.major}.{self.minor}" + (f".{self.patch}" if self.patch else ""))

    def series(self) -> tuple[int, int, int]:
        """The release series: ``(2, 6, 22)`` for 2.6.x kernels, ``(major, minor, 0)`` after."""
        return (self.major, self.minor, self.patch) if self.major == 2 else (self.major, self.minor, 0)


_VERSION = re.compile(r"\s*(?:Linux version\s+)?v?(\d+)\.(\d+)(?:\.(\d+))?([-+.~\w]*)")


def parse_version(text: str | KernelVersion) -> KernelVersion:
    """``"6.1"``, ``"3.4.5"``, ``"6.1.0-57-amd64"``, ``"Linux version 4.14.98 ..."`` as a version.

    ConfigError when the text is no version, or one outside 2.6.22..6.15 (the list of known
    releases is in the message).
    """
    if isinstance(text, KernelVersion):
        return text
    if not isinstance(text, str):
        raise ConfigError(f"kernel={text!r}: a kernel version is a string such as '6.1'")
    m = _VERSION.match(text[:256])
    if m is None or any(len(g) > 4 for g in m.groups()[:3] if g):
        raise ConfigError(f"kernel={text!r} is not a kernel version; {_known_sentence()}")
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if major == 2 and minor == 6:
        v = KernelVersion(2, 6, patch, f"2.6.{patch}")
    else:
        v = KernelVersion(major, minor, patch, f"{major}.{minor}" + (f".{patch}" if m.group(3) else ""))
    if not _OLDEST <= v.series() <= _NEWEST:
        raise ConfigError(f"kernel={text!r} is outside what the model knows; {_known_sentence()}")
    return v


# Releases the model was checked against (real captures and dumps: 3.4, 4.1, 4.9, 6.1, 6.12) or
# that stand for an era; KNOWN_VERSIONS adds every release a rule below starts or ends at.
_CHECKED: Final[tuple[str, ...]] = ("2.6.22", "3.4", "4.1", "4.9", "4.19", "6.1", "6.6", "6.12")
_OLDEST = (2, 6, 22)
# The newest kernel stays 6.15: a kernel accepted here must give that kernel's answers, and the
# changes 6.16-6.19 make to them were not all found in sources (searched: linux-mm and LKML
# postings, akpm's mm-tree commit lists, stored copies of mm/vmalloc.c).  Known to change
# answers, each with its release and hash not read off a tree: Baoquan He's five mm/vmalloc.c
# cleanups (posted 2025-04-15: decay_va_pool_node, vmap nodes searched in reverse, the explicit
# error of alloc_vmap_area) and "execmem: enforce allocation size aligment to PAGE_SIZE" next
# to them in the mm tree; Vishal Moola's "mm/vmalloc: warn on invalid vmalloc gfp flags"
# (07003531e03c, as a later Fixes: tag names it; GFP_VMALLOC_SUPPORTED) and "mm/vmalloc: request
# large order pages from buddy allocator" (posted 2025-10-21); Rezki's "mm/vmalloc: support
# non-blocking GFP flags" v4 (posted 2025-10-07; kernel/test_vmalloc.NOT_MODELLED); and
# lib/test_vmalloc.c's own: an xfail flag per test and an "xfailed:" count in its Summary line,
# run_test_mask defaulting to 7.  Missing: a tagged 6.16..6.19 mm/vmalloc.c, mm/execmem.c and
# layout of each of the four arches, to date these and find the rest.
_NEWEST = (6, 15, 0)
DEFAULT_KERNEL: Final = "6.1"


def _release_key(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split("."))


def _known_sentence() -> str:
    return (f"the model knows Linux {KNOWN_VERSIONS[0]} to {KNOWN_VERSIONS[-1]} "
            f"(releases with rules of their own: {', '.join(KNOWN_VERSIONS)})")


def resolve(kernel: str | KernelVersion | None) -> KernelVersion:
    """The version a machine runs: ``kernel`` parsed, or :data:`DEFAULT_KERNEL` for None."""
    return parse_version(DEFAULT_KERNEL if kernel is None else kernel)


@dataclass(frozen=True)
class Change:
    """One rule that changed: from release ``since`` on (and before ``until``, if it was undone)."""

    since: str
    commit: str
    what: str
    until: str | None = None

    def applies(self, v: KernelVersion) -> bool:
        """Whether kernel ``v`` has this rule."""
        if v.series() < parse_version(self.since).series():
            return False
        return self.until is None or v.series() < parse_version(self.until).series()


# Every rule, by name.  Keep them in release order; each names its commit (or, where the hash
# was not read off a tree, the patch title and its merge window).
CHANGES: Final[dict[str, Change]] = {
    # -- the address-space allocator ---------------------------------------------------------
    "vmap_area_rbtree": Change(
        "2.6.28", "db64fe02258f (Nick Piggin, \"mm: rewrite vmap layer\")",
        "struct vmap_area in an rbtree plus a sorted list replaces vmlist; lowest fit walks the "
        "list from the tree's first candidate"),
    "lazy_purge": Change(
        "2.6.28", "db64fe02258f (\"mm: rewrite vmap layer\")",
        "freed areas keep their range until a batched TLB flush; more than lazy_max_pages() "
        "waiting triggers the purge; alloc_vmap_area purges once and retries on failure"),
    "vmap_fail_message": Change(
        "2.6.28", "db64fe02258f (\"mm: rewrite vmap layer\")",
        "running out of space logs \"vmap allocation for size N failed: use vmalloc=<size> to "
        "increase size\" (N counts the guard page)", until="6.11"),
    "free_vmap_cache": Change(
        "2.6.39", "89699605fe7c (Nick Piggin, \"mm: vmap area cache\") ≈",
        "the search resumes after the last allocation (free_vmap_cache, cached_hole_size); a "
        "request the size of the largest hole seen below the cache is placed above it",
        until="5.2"),
    "kva_allocator": Change(
        "5.2", "68ad4a330433 (Uladzislau Rezki, \"mm/vmap: keep track of free blocks for vmap "
        "allocation\")",
        "free space in an augmented rbtree; find_vmap_lowest_match descends with length "
        "size + align - 1 for aligned requests"),
    # -- freeing -----------------------------------------------------------------------------
    "vfree_deferred_in_interrupt": Change(
        "3.10", "32fcfd40715e (Al Viro, \"make vfree() safe to call from interrupt contexts\")",
        "vfree() in interrupt context defers the free to a per-CPU llist and a work item "
        "instead of hitting BUG_ON(in_interrupt()); vunmap() still BUGs"),
    "vwrite_via_kmap": Change(
        "2.6.32", "d0107eb07320 ≈ (KAMEZAWA Hiroyuki, \"kcore: fix vread/vwrite to be aware of holes\")",
        "vread/vwrite copy page by page through kmap_atomic(vmalloc_to_page()) (aligned_vwrite), "
        "a writable mapping of the frame, instead of storing through the area's own PTEs: a "
        "vwrite into a read-only vmap no longer faults"),
    "unpurged_in_vmallocinfo": Change(
        "5.4", "dd3b8353bae7 (\"mm/vmalloc: do not keep unpurged areas in the busy tree\")",
        "lazily freed areas leave the busy tree; /proc/vmallocinfo lists them after the busy "
        "ones as \"unpurged vm_area\" (show_purge_info)"),
    "purge_tree_merges": Change(
        "5.11", "96e2db456135 (Uladzislau Rezki, \"mm/vmalloc: rework the drain logic\") ≈",
        "lazily freed areas merge with their neighbours on purge_vmap_area_root, so "
        "/proc/vmallocinfo prints one \"unpurged vm_area\" line per merged range",
        until="6.9"),
    "drain_in_worker": Change(
        "5.19", "Uladzislau Rezki, \"mm/vmalloc: Move draining areas out of caller context\" "
        "(drain_vmap_work; release and hash not read off a tree; 6.1 has it) ≈",
        "free_vmap_area_noflush schedules drain_vmap_work once more than lazy_max_pages() pages "
        "wait; the purge runs in the worker, not in the freeing call"),
    "vmap_nodes": Change(
        "6.9", "Uladzislau Rezki, \"Mitigate a vmap lock contention\" v3 (vmap nodes)",
        "per-node busy trees, lazy lists (not merged) and pools of freed areas; "
        "/proc/vmallocinfo lists the areas node by node"),
    # -- vmap nodes (6.9+)
    "vmap_node_pools": Change(
        "6.9", "Uladzislau Rezki, \"mm: vmalloc: Offload free_vmap_area_lock lock\" (node_alloc, "
        "node_pool_add_va, decay_va_pool_node; 6.9 merge window) ≈",
        "a freed area of up to 256 pages requested for VMALLOC_START..VMALLOC_END goes at the next "
        "purge to its node's pool; a request of the same page count takes the pool's head if "
        "aligned, else moves it to the tail; each purge decays every pool by len >> 2 from the "
        "head (a pool of fewer than 4 empties), a purge after a failed search and the vmap-node "
        "shrinker empty them"),
    "vmallocinfo_node_order": Change(
        "6.9", "Uladzislau Rezki, \"mm: vmalloc: Support multiple nodes in vmallocinfo\" "
        "(6.9 merge window) ≈",
        "/proc/vmallocinfo prints each node's busy list in address order, node after node, then "
        "each node's lazy list (one \"unpurged vm_area\" line per area)"),
    # -- vm_map_ram and vmap blocks ---------------------------------------------------------
    "vm_map_ram": Change(
        "2.6.28", "db64fe02258f (Nick Piggin, \"mm: rewrite vmap layer\")",
        "vm_map_ram()/vm_unmap_ram(): up to BITS_PER_LONG pages from per-CPU vmap blocks of "
        "VMAP_BBMAP_BITS pages (VMAP_BLOCK_SIZE-aligned areas, power-of-two pieces), more from an "
        "area of their own without a guard page; a freed piece is unmapped and dirty, a fully "
        "dirty block is freed lazily, vm_unmap_aliases() flushes the dirty ranges"),
    "vmap_purge_fragmented_blocks": Change(
        "2.6.33", "02b709df817c ≈ (Nick Piggin, \"mm: purge fragmented percpu vmap blocks\")",
        "blocks with no live piece (free + dirty == VMAP_BBMAP_BITS, dirty < VMAP_BBMAP_BITS) are "
        "freed by vm_unmap_aliases(), by the purge alloc_vmap_area runs when it finds no room, "
        "and (before 4.0) by vb_alloc when such a block cannot serve a request"),
    "vmap_block_bump_alloc": Change(
        "4.0", "Roman Pen, \"mm/vmalloc: fix possible exhaustion of vmalloc space caused by "
        "vm_map_ram allocator\", \"occupy newly allocated vmap block just after allocation\" "
        "(cf725ce274ba ≈), \"get rid of dirty bitmap inside vmap_block structure\" (7d61bfe8fdd3 ≈)",
        "a block hands out its pieces one after the other (at VMAP_BBMAP_BITS - free) instead of "
        "the first free size-aligned region of alloc_map; a new block serves the request that "
        "made it and joins the tail of the CPU's list (the head before); dirty_min/dirty_max "
        "replace the dirty bitmap"),
    "vmap_ram_flags": Change(
        "6.4", "Baoquan He, \"mm/vmalloc.c: add used_map into vmap_block to track space of "
        "vmap_block\" (d76f99548cf0 ≈) and \"mm/vmalloc.c: add flags to mark vm_map_ram area\"",
        "vm_map_ram areas carry VMAP_RAM (blocks VMAP_RAM|VMAP_BLOCK) and blocks a used_map; "
        "/proc/vmallocinfo still prints \"vm_map_ram\" for both"),
    "vread_vm_map_ram": Change(
        "6.4", "Baoquan He, \"mm/vmalloc.c: allow vread() to read out vm_map_ram areas\" ≈",
        "vread reads vm_map_ram areas: a block's used pieces, zeros for its free and dirty pages; "
        "before, every area without a vm_struct read as a hole (the model's vwrite follows)"),
    "vmap_purge_threshold": Change(
        "6.5", "Thomas Gleixner, \"mm/vmalloc: Don't purge usable blocks unnecessarily\" and "
        "\"Prevent flushing dirty space over and over\" (6.5 merge window) ≈",
        "vm_unmap_aliases() frees a fragmented block only when less than a quarter of it is free "
        "(VMAP_PURGE_THRESHOLD) and forgets a block's dirty range once flushed"),
    # -- /proc/vmallocinfo words (what a dump can date) -----------------------------------
    "vmallocinfo_vpages_word": Change(
        "2.6.28", "the \"vpages\" word of /proc/vmallocinfo (VM_VPAGES page arrays), as the model's "
        "snapshot replay dates it ≈", "a vmalloc whose page array is over a page vmallocs the array "
        "too and /proc/vmallocinfo prints \"vpages\""),
    "vmallocinfo_lazy_lines": Change(
        "4.13", "78c72746f56b (Yisheng Xie, \"vmalloc: show lazy-purged vma info in vmallocinfo\") ≈",
        "/proc/vmallocinfo also prints the vmap areas without a vm_struct: \"unpurged vm_area\" "
        "(lazily freed) and \"vm_map_ram\" lines, in address order among the others"),
    "vmallocinfo_dma_coherent_word": Change(
        "5.5", "Christoph Hellwig, VM_DMA_COHERENT for dma_common_contiguous_remap (5.5 merge "
        "window) ≈", "/proc/vmallocinfo prints \"dma-coherent\" for VM_DMA_COHERENT areas"),
    "vmallocinfo_sparse_word": Change(
        "6.9", "Alexei Starovoitov, \"mm: Introduce VM_SPARSE kind and vm_area_[un]map_pages()\" "
        "(6.9 merge window) ≈", "/proc/vmallocinfo prints \"sparse\" for VM_SPARSE areas"),
    # -- alignment ---------------------------------------------------------------------------
    "ioremap_count_order": Change(
        "4.9", "34fe653716b0 (zijun_hu, \"mm/vmalloc.c: fix align value calculation error\") ≈",
        "VM_IOREMAP areas align to 1 << clamp(get_count_order(size), PAGE_SHIFT, "
        "IOREMAP_MAX_ORDER) of the page-aligned size; 2.6.22 took fls() of the size as given, "
        "so a power-of-two size got twice its size"),
    "x86_ioremap_max_order_pmd": Change(
        "4.1", "Toshi Kani, \"x86, mm: Support huge I/O mapping capability I/F\" (4.1 merge window)",
        "IOREMAP_MAX_ORDER is PUD_SHIFT on x86_64 and PMD_SHIFT on x86_32 (21 with PAE, 22 "
        "without) instead of the generic 7 + PAGE_SHIFT"),
    # -- layouts -----------------------------------------------------------------------------
    # -- CONFIG_VMAP_STACK: thread stacks from vmalloc (kernel/fork.c alloc_thread_stack_node)
    "vmap_stack_x86_64": Change(
        "4.9", "ba14a194a434 (Andy Lutomirski, \"fork: Add generic vmalloced stack support\"), "
        "with e37e43a497d5 (\"x86/mm/64: Enable vmapped stacks\")",
        "x86_64 thread stacks are vmalloc areas (HAVE_ARCH_VMAP_STACK is selected for X86_64 "
        "only: i386 never has them)"),
    "vmap_stack_arm64": Change(
        "4.14", "e3067861ba66 (Mark Rutland, \"arm64: add basic VMAP_STACK support\")",
        "arm64 thread stacks are vmalloc areas, aligned to twice THREAD_SIZE"),
    "vmap_stack_arm": Change(
        "5.18", "a1c510d0adc6 ≈ (Ard Biesheuvel, \"ARM: implement support for vmap'ed stacks\")",
        "32-bit ARM thread stacks are vmalloc areas, aligned to twice THREAD_SIZE"),
    "arm64_port": Change(
        "3.7", "Catalin Marinas, the arm64 port (arch/arm64, merged for 3.7)",
        "arm64 exists: the linear map in the top half of the kernel VA space (PAGE_OFFSET = "
        "~0UL << (VA_BITS - 1), 0xffff800000000000), vmalloc from VA_START = ~0UL << VA_BITS "
        "(0xffff000000000000) to PAGE_OFFSET - 16 GiB - SZ_64K (the vmemmap above it), modules "
        "in the 64 MiB below PAGE_OFFSET (memory.h: MODULES_END = PAGE_OFFSET, MODULES_VADDR = "
        "MODULES_END - SZ_64M); as read in 3.7.2 (constants for VA_BITS 39: PAGE_OFFSET "
        "0xffffffc000000000, VMALLOC_START 0xffffff8000000000), 3.10, 3.14.1 and 3.16.0 (the "
        "same in VA_BITS) trees.  A kernel of 3.7-3.17 could not be built with 48-bit VA (3.7 "
        "has 39 bits, 3.10-3.16 39 or 42, 3.17's ARM64_VA_BITS_48 depends on BROKEN; 3.18.140 "
        "offers it): the model evaluates these kernels' expressions at its VA_BITS 48"),
    # -- arm64 layouts at VA_BITS 48, 4 KiB pages, without KASAN (arch/boot.py arm64_layout) ---
    "arm64_va_bits_48": Change(
        "3.18", "ARM64_VA_BITS_48 without its 3.17 dependency on BROKEN (read off a 3.18.140 "
        "tree; the mainline release that dropped it not identified) ≈",
        "an arm64 kernel can have the 48-bit VA the model's arm64 profile has; before it, the "
        "boot log says the layout is that release's memory.h evaluated at 48 bits"),
    "arm64_vmemmap_size": Change(
        "3.17", "commit not identified (read off the 3.16.0 and 3.17.0 trees: the 4-level page "
        "table work of 3.17 made VMEMMAP_SIZE a function of VA_BITS) ≈",
        "arm64 VMALLOC_END = PAGE_OFFSET - PUD_SIZE - VMEMMAP_SIZE - SZ_64K with VMEMMAP_SIZE = "
        "ALIGN((1 << (VA_BITS - PAGE_SHIFT)) * sizeof(struct page), PUD_SIZE) (4 TiB at 48 "
        "bits: 0xffff7bffbfff0000), not PAGE_OFFSET - 0x400000000 - SZ_64K"),
    "arm64_kimage_in_vmalloc": Change(
        "4.6", "f9040773b7bb ≈ (Ard Biesheuvel, \"arm64: move kernel image to base of vmalloc "
        "area\"), with the same release's KASLR work (MODULES_VSIZE SZ_128M; read off the 4.4.155 "
        "and 4.6.5 trees)",
        "arm64 modules move from below PAGE_OFFSET to the bottom of the kernel VA space: "
        "MODULES_VADDR = VA_START + KASAN_SHADOW_SIZE (0 without KASAN), MODULES_VSIZE SZ_128M, "
        "the kernel image at KIMAGE_VADDR = MODULES_END and VMALLOC_START = MODULES_END "
        "(0xffff000008000000)"),
    "arm64_vmemmap_below_linear": Change(
        "4.7", "3e1907d5bf5a ≈ (Ard Biesheuvel, \"arm64: mm: move vmemmap region right below "
        "the linear region\"; posted for 4.7, absent from 4.6.5, present in 4.8.15)",
        "arm64 VMEMMAP_SIZE = 1 << (VA_BITS - PAGE_SHIFT - 1 + STRUCT_PAGE_MAX_SHIFT) (2 TiB), "
        "VMEMMAP_START = PAGE_OFFSET - VMEMMAP_SIZE: VMALLOC_END = PAGE_OFFSET - PUD_SIZE - "
        "VMEMMAP_SIZE - SZ_64K = 0xffff7dffbfff0000"),
    "arm64_bpf_jit_region": Change(
        "5.0", "91fc957c9b1d ≈ (Ard Biesheuvel, \"arm64/bpf: don't allocate BPF JIT programs in "
        "module memory\"; absent from 4.20.0, present in 5.1.0); removed by b89ddf4cca43 ≈ "
        "(Russell King, \"arm64/bpf: Remove 128MB limit for BPF JIT programs\", 5.16; present "
        "in 5.15.0; the stable series took it from 5.15.18, which the model does not follow)",
        "arm64 has a 128 MiB BPF JIT region where the module area began (BPF_JIT_REGION_START = "
        "VA_START + KASAN_SHADOW_SIZE, 5.4+ KASAN_SHADOW_END = _PAGE_END(VA_BITS_MIN) without "
        "KASAN); MODULES_VADDR = BPF_JIT_REGION_END; bpf_jit_alloc_exec is "
        "__vmalloc_node_range(size, PAGE_SIZE, BPF_JIT_REGION_START, BPF_JIT_REGION_END, "
        "GFP_KERNEL, ...) and bpf_jit_alloc_exec_limit its size", until="5.16"),
    "arm64_flip_va": Change(
        "5.4", "14c127c957c1 ≈ (Steve Capper, \"arm64: mm: Flip kernel VA space\"), with "
        "ce3aaed87344 ≈ (\"arm64: mm: Modify calculation of VMEMMAP_SIZE\"); read off the 5.3.1 "
        "and 5.4.214 trees",
        "arm64 PAGE_OFFSET = -(1 << VA_BITS) = 0xffff000000000000: the linear map takes the "
        "bottom half, everything else starts at _PAGE_END(VA_BITS_MIN) = 0xffff800000000000; "
        "VMEMMAP_SIZE = (_PAGE_END - PAGE_OFFSET) >> (PAGE_SHIFT - STRUCT_PAGE_MAX_SHIFT), "
        "VMALLOC_END = -PUD_SIZE - VMEMMAP_SIZE - SZ_64K = 0xfffffdffbfff0000"),
    "arm64_vmalloc_end_below_vmemmap": Change(
        "5.11", "9ad7c6d5e75b ≈ (Ard Biesheuvel, \"arm64: mm: tidy up top of kernel VA space\"), "
        "with f4693c2716b3 ≈ (\"arm64: mm: extend linear region for 52-bit VA configurations\"); "
        "read off the Debian 5.10.262 and the 5.11.0 trees",
        "arm64 VMEMMAP_START = -(1 << (VA_BITS - VMEMMAP_SHIFT)) and VMALLOC_END = "
        "VMEMMAP_START - SZ_256M = 0xfffffbfff0000000"),
    "x86_64_vmalloc_64tb_map": Change(
        "2.6.31", "Rik van Riel, \"x86: 46 bit PAE support\" (May 2009, 2.6.31 merge window)",
        "x86_64 vmalloc space moves from 0xffffc20000000000-0xffffe1ffffffffff to "
        "0xffffc90000000000-0xffffe8ffffffffff to make room for a 64 TB direct map"),
    "x86_64_kaslr_memory": Change(
        "4.8", "Thomas Garnier, \"x86/mm: Implement ASLR for kernel memory regions\" "
        "(CONFIG_RANDOMIZE_MEMORY, 4.8) ≈",
        "x86_64 randomises the direct map, vmalloc and vmemmap bases at boot"),
    "x86_64_five_level_paging": Change(
        "4.14", "Kirill A. Shutemov, x86 5-level paging (CONFIG_X86_5LEVEL, 4.14)",
        "x86_64 may run 5-level paging (LA57): vmalloc at 0xffa0000000000000, 12800 TB"),
    "x86_32_vmalloc_start_unrounded": Change(
        "2.6.25", "the x86 unification of pgtable_32.h (2.6.25 merge window) ≈",
        "i386 VMALLOC_START = high_memory + VMALLOC_OFFSET, no longer rounded to 8 MiB; "
        "MAXMEM = VMALLOC_END - PAGE_OFFSET - __VMALLOC_RESERVE"),
    "x86_32_vmalloc_param_adds_offset": Change(
        "2.6.25", "arch/x86/mm/pgtable_32.c parse_vmalloc (2.6.25 merge window) ≈",
        "vmalloc=SIZE sets __VMALLOC_RESERVE = SIZE + VMALLOC_OFFSET, so the area is SIZE"),
    "x86_32_pkmap_below_cpu_entry_area": Change(
        "4.15", "92a0f81d8957 (\"x86/cpu_entry_area: Move it out of the fixmap\") ≈",
        "PKMAP_BASE = (LDT_BASE_ADDR - PAGE_SIZE) & PMD_MASK below the cpu_entry_area, so "
        "VMALLOC_END = PKMAP_BASE - 2 * PAGE_SIZE is 0xfeffe000 with PAE"),
    "arm_vmalloc_end_ff800000": Change(
        "4.2", "arm: VMALLOC_END raised from 0xff000000 to 0xff800000 ≈ (the 4.x era)",
        "ARM VMALLOC_END is 0xff800000 (3.x kernels: 0xff000000)"),
    "arm_vmalloc_size_uniform": Change(
        "5.15", "\"arm: make the size of vmalloc in cmdline and meminfo uniform\" (2021; hash "
        "not read off a tree) ≈",
        "early_vmalloc's size is what the area gets: lowmem ends VMALLOC_OFFSET below "
        "VMALLOC_END - size; before it, vmalloc_min = VMALLOC_END - size and VMALLOC_START added "
        "VMALLOC_OFFSET and rounded, so the area came out up to 8 MiB smaller than asked"),
    # -- messages ----------------------------------------------------------------------------
    "vmalloc_alloc_failure_message": Change(
        "2.6.38", "warn_alloc_failed() in __vmalloc_node_range (2.6.38 merge window) ≈",
        "a failed vmalloc also logs \"vmalloc: allocation failure: M bytes\"", until="4.10"),
    "warn_alloc": Change(
        "4.10", "warn_alloc() replaces warn_alloc_failed() (Michal Hocko, 4.10 merge window) ≈",
        "allocation failures print \"comm: <text>, mode:%#x(%pGg), nodemask=%*pbl\" on one line"),
    "gfp_reclaim_bits": Change(
        "4.4", "d0164adc89f6 (Mel Gorman, \"mm, page_alloc: distinguish between being unable to "
        "sleep, unwilling to sleep and avoiding waking kswapd\")",
        "__GFP_WAIT becomes __GFP_DIRECT_RECLAIM|__GFP_KSWAPD_RECLAIM: GFP_KERNEL prints as 0xcc0"),
    "vmalloc_error_message": Change(
        "5.13", "Uladzislau Rezki, \"mm/vmalloc: print a warning message first on failure\" ≈",
        "a failed vmalloc logs \"vmalloc error: size M, vm_struct allocation failed, mode:...\""),
    "vmap_range_restricted_message": Change(
        "6.11", "\"mm: vmalloc: improve description of vmap node layer\" series, 6.11 ≈",
        "running out of space logs \"vmalloc_node_range for size N failed: Address range "
        "restricted to A - B\""),
    # -- /proc/meminfo -----------------------------------------------------------------------
    "meminfo_walks_vmap_area_list": Change(
        "3.10", "Joonsoo Kim, \"mm, vmalloc: iterate vmap_area_list ... in get_vmalloc_info()\" (3.10)",
        "get_vmalloc_info() walks vmap_area_list (lazily freed areas skipped), not vmlist"),
    "meminfo_vmalloc_walk_removed": Change(
        "4.4", "a5ad88ce8c7f (\"mm: get rid of 'vmalloc_info' from /proc/meminfo\")",
        "VmallocUsed and VmallocChunk print 0", until="5.3"),
    "meminfo_vmalloc_used_pages": Change(
        "5.3", "97105f0ab7b8 (\"mm: vmalloc: show number of vmalloc pages in /proc/meminfo\")",
        "VmallocUsed is the pages vmalloc allocated; VmallocChunk stays 0"),
    # -- vread / vwrite (/dev/kmem, /proc/kcore) ------------------------------------------------
    "vread_holes": Change(
        "2.6.32", "d0107eb07320 (KAMEZAWA Hiroyuki, \"kcore: fix vread/vwrite to be aware of holes\") ≈",
        "vread/vwrite copy page by page through vmalloc_to_page: unmapped pages of an area read "
        "as zeros and are not written, VM_IOREMAP areas are holes; vread zero-fills the rest of "
        "its buffer and both return count, or 0 when the range meets no area (2.6.22 copied "
        "every byte of every area, oopsing on an unmapped page, and returned what it copied)"),
    "kvfree_rcu_vmalloc": Change(
        "5.9", "Uladzislau Rezki, \"rcu/tree: Support reclaim for head-less object\" and "
        "\"mm/list_lru: ... kvfree_rcu()\" series (kvfree_rcu() of vmalloc'ed memory, 5.9 "
        "merge window) ≈",
        "kvfree_rcu(ptr) (later kvfree_rcu_mightsleep) frees kvmalloc'ed or vmalloc'ed memory "
        "after a grace period"),
    # -- today's API (vmalloc/kvmalloc.py; the methods at the end of vmalloc.api.Vmalloc) --------
    "kmemleak": Change(
        "2.6.31", "3c7b4e6b8be4 ≈ (Catalin Marinas, \"kmemleak: Add the base support\"; "
        "CONFIG_DEBUG_KMEMLEAK, the model's boot parameter kmemleak=on)",
        "__vmalloc_node_range registers each vmalloc'ed block as a kmemleak object (6.1: "
        "kmemleak_vmalloc(area, PAGE_ALIGN(size), gfp), min_count 2) and vfree() unregisters it "
        "(kmemleak_free(addr), before anything else); vmap() areas are not registered"),
    "pcpu_get_vm_areas": Change(
        "2.6.32", "ca23e405e06d ≈ (Tejun Heo, \"vmalloc: implement pcpu_get_vm_areas()\"), with "
        "the per-CPU allocator's chunks in vmalloc space (mm/percpu.c, 2.6.32 merge window)",
        "the dynamic per-CPU chunks take congruent areas, one per group, as high in the vmalloc "
        "space as they all fit (no guard pages; pcpu_free_vm_areas frees them)"),
    "vzalloc": Change(
        "2.6.37", "e1ca7788dec6 (Dave Young, \"mm: add vzalloc() and vzalloc_node() helpers\")",
        "vzalloc()/vzalloc_node(): vmalloc with __GFP_ZERO"),
    "vmalloc_vm_flags": Change(
        "4.0", "cb9e3c292d01 (Andrey Ryabinin, \"mm: vmalloc: pass additional vm_flags to "
        "__vmalloc_node_range()\") ≈",
        "__vmalloc_node_range() takes vm_flags for the area (VM_NO_GUARD came with it, 71394fe50146)"),
    "vm_no_guard": Change(
        "4.0", "71394fe50146 ≈ (Andrey Ryabinin, \"mm: vmalloc: add flag preventing guard hole "
        "allocation\")",
        "VM_NO_GUARD (0x40): __get_vm_area_node adds no guard page, get_vm_area_size() subtracts "
        "none (the area's pages fill it; the next area may start right after it)"),
    "kvmalloc": Change(
        "4.12", "a7c3e901a46f (Michal Hocko, \"mm: introduce kv[mz]alloc helpers\")",
        "kvmalloc_node(): kmalloc first (__GFP_NORETRY|__GFP_NOWARN above PAGE_SIZE), vmalloc "
        "when that fails and the request is over a page; kvfree() frees either"),
    "vm_flush_reset_perms": Change(
        "5.2", "868b104d7379 (Rick Edgecombe, \"mm/vmalloc: Add flag for freeing of special "
        "permsissions\")",
        "VM_FLUSH_RESET_PERMS (0x100) on vmalloc areas: vfree() of such an area runs "
        "vm_remove_mappings() (6.3+ vm_reset_perms()): the direct-map aliases of its lowmem pages "
        "are set invalid, one flush_tlb_kernel_range covers the direct-map range and every lazily "
        "freed range (this area's included, purged at once: _vm_unmap_aliases(start, end, 1)), "
        "then the aliases are reset to the default; vunmap() of one runs vm_unmap_aliases()"),
    "vm_defer_kmemleak": Change(
        "5.16", "60115fa54ad7 (Kefeng Wang, \"mm: defer kmemleak object creation of "
        "module_alloc()\")",
        "__vmalloc_node_range with VM_DEFER_KMEMLEAK (0x800) registers no kmemleak object: the "
        "caller does, once the area is ready to be scanned (kasan_alloc_module_shadow calls "
        "kmemleak_vmalloc after the module's KASAN shadow exists; the flag is 0 unless KASAN "
        "without KASAN_VMALLOC, and x86/arm64/s390 module_alloc pass it)"),
    "vmap_pfn": Change(
        "5.10", "3e9a9e256b1e (Christoph Hellwig, \"mm: add a vmap_pfn function\")",
        "vmap_pfn(): an area from get_vm_area_caller(count * PAGE_SIZE, VM_IOREMAP) mapping pfns "
        "that are not RAM (pfn_valid() WARNs and fails)"),
    "vm_map_put_pages": Change(
        "5.10", "b944afc9d64d (Christoph Hellwig, \"mm: add a VM_MAP_PUT_PAGES flag for vmap\"; "
        "release ≈: dated from its neighbour vmap_pfn in the same series)",
        "vmap(pages, count, VM_MAP_PUT_PAGES, prot): the area keeps the pages array and one "
        "reference per page; vfree() drops them (__free_page each) and kvfree()s the array"),
    "vm_map_put_pages_nr_pages": Change(
        "5.11", "Miaohe Lin, \"mm/vmalloc.c: Fix potential memory leak\" (Fixes: b944afc9d64d; "
        "posted January 2021, hash not read off a tree) ≈",
        "vmap(VM_MAP_PUT_PAGES) sets area->nr_pages too: before it, vfree() put none of the pages "
        "(they leaked) and /proc/vmallocinfo printed no pages="),
    "vmalloc_nr_pages_put_pages": Change(
        "6.13", "Matthew Wilcox, \"vmalloc: fix accounting with i915\" (Fixes: b944afc9d64d; "
        "posted December 2024 for 6.13-rc, hash not read off a tree) ≈",
        "vfree() of a VM_MAP_PUT_PAGES area no longer takes its pages off nr_vmalloc_pages: from "
        "5.11 (when such areas got nr_pages) to 6.12 it did, so VmallocUsed went down by pages "
        "vmalloc never counted, below zero (a huge unsigned value) once nothing else made up for them"),
    "kvmalloc_int_max": Change(
        "5.15", "7661809d493b (Linus Torvalds, \"mm: don't allow oversized kvmalloc() calls\")",
        "kvmalloc() refuses sizes above INT_MAX (WARN_ON_ONCE unless __GFP_NOWARN, NULL)"),
    "kvrealloc_oldsize": Change(
        "5.15", "de2860f46362 ≈ (Dave Chinner, \"mm: Add kvrealloc()\", 5.14/5.15 merge window)",
        "kvrealloc(p, oldsize, newsize, flags): p when oldsize >= newsize, else kvmalloc, copy "
        "oldsize bytes, kvfree", until="6.12"),
    "vmap_no_guard_refused": Change(
        "5.16", "Peter Zijlstra, \"mm/vmalloc: Don't allow VM_NO_GUARD on vmap()\" (posted "
        "September 2021, 5.16 merge window; hash not read off a tree) ≈",
        "vmap() with VM_NO_GUARD WARNs once and drops the flag: \"Your top guard is someone "
        "else's bottom guard\"; only __vmalloc_node_range and get_vm_area callers (KASAN, the "
        "arch code) may use it"),
    "vmalloc_huge": Change(
        "5.18", "559089e0a93d (Song Liu, \"vmalloc: replace VM_NO_HUGE_VMAP with "
        "VM_ALLOW_HUGE_VMAP\"); x86_64 selects HAVE_ARCH_HUGE_VMALLOC in the same release "
        "(fac54e2bfb5b ≈, \"x86/Kconfig: Select HAVE_ARCH_HUGE_VMALLOC with HAVE_ARCH_HUGE_VMAP\")",
        "vmalloc_huge()/VM_ALLOW_HUGE_VMAP (0x400): on an arch with huge vmalloc, a request of "
        "PMD_SIZE or more per node gets PMD_SHIFT: align raised to PMD_SIZE, size rounded up to "
        "it, pages allocated as split order-9 blocks and mapped with PMD leaves; any failure "
        "retries with small pages and the caller's alignment"),
    "kvmalloc_huge": Change(
        "5.18", "9becb6889130 (Song Liu, \"kvmalloc: use vmalloc_huge for vmalloc allocations\")",
        "kvmalloc()'s vmalloc fallback passes VM_ALLOW_HUGE_VMAP"),
    "vmalloc_array": Change(
        "5.18", "a8749a35c399 (Paolo Bonzini, \"mm: vmalloc: introduce array allocation functions\")",
        "vmalloc_array()/vcalloc(): n * size with an overflow check (NULL on overflow)"),
    "kvmalloc_nonblocking_only": Change(
        "5.19", "a421ef303008 ≈ (Michal Hocko, \"mm: allow !GFP_KERNEL allocations for kvmalloc\")",
        "kvmalloc() falls back to vmalloc for any blocking gfp (GFP_NOFS/GFP_NOIO too); before, "
        "a gfp without all of GFP_KERNEL got kmalloc only"),
    "vmalloc_tracepoints": Change(
        "6.2", "Uladzislau Rezki, \"mm: vmalloc: Add alloc_vmap_area trace event\", \"... "
        "purge_vmap_area_lazy trace event\", \"... free_vmap_area_noflush trace event\" (posted "
        "18 Oct 2022; hashes not read off a tree) ≈",
        "include/trace/events/vmalloc.h: the vmalloc:alloc_vmap_area, purge_vmap_area_lazy and "
        "free_vmap_area_noflush events; an older kernel has no events/vmalloc directory"),
    "vmap_reset_perms_refused": Change(
        "6.3", "Christoph Hellwig, \"mm: reject vmap with VM_FLUSH_RESET_PERMS\" (posted "
        "January 2023, 6.3 merge window; hash not read off a tree) ≈",
        "vmap() with VM_FLUSH_RESET_PERMS WARNs once and returns NULL (the flag is tied to "
        "freeing vmalloc's own pages)"),
    "vfree_reset_perms_only": Change(
        "6.3", "Christoph Hellwig, \"mm: split __vunmap\" and \"mm: refactor va_remove_mappings\" "
        "(the series of \"mm: reject vmap with VM_FLUSH_RESET_PERMS\", 6.3 merge window; hashes "
        "not read off a tree) ≈",
        "vm_remove_mappings() becomes vm_reset_perms(), called by vfree() only: vunmap() of a "
        "VM_FLUSH_RESET_PERMS area no longer runs vm_unmap_aliases()"),
    "vm_sparse": Change(
        "6.9", "e6f798225a31 ≈ (Alexei Starovoitov, \"mm: Introduce VM_SPARSE kind and "
        "vm_area_[un]map_pages().\", for the BPF arena)",
        "get_vm_area(size, VM_SPARSE) (0x1000) reserves a range whose pages come and go: "
        "vm_area_map_pages(area, start, end, pages) maps PAGE_KERNEL pages inside it, "
        "vm_area_unmap_pages() unmaps them (both -EINVAL with a WARN unless VM_SPARSE and "
        "neither VM_FLUSH_RESET_PERMS nor VM_NO_GUARD, -E2BIG over totalram_pages, -ERANGE "
        "outside the area); /proc/vmallocinfo prints \"sparse\"; vread_iter reads it as a hole"),
    "vrealloc": Change(
        "6.12", "3ddc2fefe6f3 (Danilo Krummrich, \"mm: vmalloc: implement vrealloc()\"); kvrealloc "
        "on top of it: \"mm: kvmalloc: align kvrealloc() with krealloc()\" (same series)",
        "vrealloc(p, size, flags): NULL p is vmalloc, size 0 frees; a size up to the area's "
        "(guard excluded) keeps p (the tail zeroed for __GFP_ZERO); a larger one vmallocs anew, "
        "copies the old area's bytes and vfrees p; kvrealloc(p, size, flags) is vrealloc for "
        "vmalloc addresses, krealloc (kvmalloc on failure) otherwise"),
    "vrealloc_requested_size": Change(
        "6.15", "a0309faf1cb0 (Kees Cook, \"mm: vmalloc: support more granular vrealloc() "
        "sizing\"), with \"mm: vmalloc: Only zero-init on vrealloc shrink\" (6.15 fixes)",
        "vm_struct.requested_size: vrealloc copies and shrinks from the requested size, grows "
        "in place up to the area's size; a shrink zeroes the freed tail with init_on_free or "
        "__GFP_ZERO, an in-place grow does not zero"),
    # -- the module area and executable memory ------------------------------------------------
    # (vmalloc/execmem.py; the model's kernel image is empty at KIMAGE_VADDR = MODULES_END on
    # arm64, KASLR's module offsets and KASAN's MODULE_ALIGN are not modelled)
    "arm_module_plts": Change(
        "3.19", "7d485f647c1f ≈ (Ard Biesheuvel, \"ARM: 8220/1: allow modules outside of "
        "relocation range\"; CONFIG_ARM_MODULE_PLTS, assumed =y as distribution kernels set it)",
        "ARM module_alloc tries MODULES_VADDR..MODULES_END with __GFP_NOWARN, then falls back to "
        "VMALLOC_START..VMALLOC_END (GFP_KERNEL, PAGE_KERNEL_EXEC)"),
    "bpf_jit_binary_alloc": Change(
        "3.18", "738cbe72adc5 ≈ (Daniel Borkmann, \"net: bpf: consolidate JIT binary allocator\")",
        "bpf_jit_binary_alloc(): round_up(proglen + sizeof(hdr) + 128, PAGE_SIZE) from "
        "bpf_jit_alloc_exec (module_alloc), the image at a random start in the first page's hole"),
    "x86_module_alloc_nx": Change(
        "5.2", "Nadav Amit, \"x86/modules: Avoid breaking W^X while loading modules\" (5.2, the "
        "VM_FLUSH_RESET_PERMS series) ≈",
        "x86 module_alloc maps PAGE_KERNEL (not PAGE_KERNEL_EXEC); the module loader and the BPF "
        "JIT set VM_FLUSH_RESET_PERMS on the area (set_vm_flush_reset_perms)"),
    "bpf_jit_limit": Change(
        "4.20", "ede95a63b5e8 ≈ (Daniel Borkmann, \"bpf: add bpf_jit_limit knob to restrict unpriv "
        "allocations\")",
        "JIT images are charged to bpf_jit_current; past bpf_jit_limit (default "
        "round_up(bpf_jit_alloc_exec_limit() >> 2, PAGE_SIZE): MODULES_END - MODULES_VADDR, "
        "arm64 BPF_JIT_REGION_SIZE 5.0-5.15, VMALLOC_END - VMALLOC_START from 5.16) an "
        "unprivileged load gets -EPERM"),
    "bpf_jit_limit_half": Change(
        "6.3", "10ec8ca8ec1a ≈ (Daniel Borkmann, \"bpf: Adjust insufficient default bpf_jit_limit\"; "
        "backported to the stable 4.14+ series, which the model's thresholds do not follow)",
        "the default bpf_jit_limit is round_up(bpf_jit_alloc_exec_limit() >> 1, PAGE_SIZE)"),
    "arm64_module_plts": Change(
        "4.6", "fd045f6cd98e ≈ (Ard Biesheuvel, \"arm64: add support for module PLTs\"; "
        "RANDOMIZE_BASE selects ARM64_MODULE_PLTS; read off the 4.4.155 and 4.6.5 trees)",
        "arm64 module_alloc tries [module_alloc_base, + MODULES_VSIZE) (module_alloc_base = "
        "_etext - MODULES_VSIZE = MODULES_VADDR without KASLR), then, with PLTs, the whole "
        "vmalloc area [VMALLOC_START, VMALLOC_END); before, [MODULES_VADDR, MODULES_END) only"),
    "arm64_module_alloc_nowarn": Change(
        "4.12", "commit not identified (read off the 4.11.0 and 4.12.6 trees) ≈",
        "arm64 module_alloc's first try is GFP_KERNEL | __GFP_NOWARN (\"Silence the initial "
        "allocation\") when ARM64_MODULE_PLTS can fall back"),
    "arm64_module_plt_window_4g": Change(
        "4.15", "Ard Biesheuvel, \"arm64/kernel: kaslr: reduce module randomization range to "
        "4 GB\" (hash not read; absent from 4.14.177, present in 4.15.18) ≈",
        "arm64 module_alloc's PLT fallback is [module_alloc_base, module_alloc_base + SZ_4G), "
        "not the vmalloc area"),
    "arm64_module_plt_window_2g": Change(
        "5.2", "Ard Biesheuvel, \"arm64/kernel: kaslr: reduce module randomization range to "
        "2 GB\" (posted 2019-05-23 for 5.2; hash not read; 5.1.0 has SZ_4G, 5.2.1 SZ_2G) ≈",
        "arm64 module_alloc's PLT fallback is [module_alloc_base, module_alloc_base + SZ_2G)"),
    "arm64_module_alloc_nx": Change(
        "5.3", "Ard Biesheuvel, \"arm64: module: create module allocations without exec "
        "permissions\" and \"arm64: bpf: do not allocate executable memory\" (one series, "
        "May 2019; hashes not read; 5.2.1 maps PAGE_KERNEL_EXEC, 5.3.1 PAGE_KERNEL) ≈",
        "arm64 module_alloc and the BPF JIT region map PAGE_KERNEL (not PAGE_KERNEL_EXEC)"),
    "arm64_modules_2g": Change(
        "6.5", "3e35d303ab7d ≈ (Mark Rutland, \"arm64: module: rework module VA range selection\")",
        "arm64 MODULES_VSIZE is 2 GiB (VMALLOC_START = MODULES_END moves up with it); "
        "module_alloc tries the 128 MiB below the kernel image (__GFP_NOWARN), then the 2 GiB "
        "below it, then logs \"module_alloc: unable to allocate memory\""),
    "execmem": Change(
        "6.10", "12af2b83d0b1 ≈ (Mike Rapoport, \"mm: introduce execmem_alloc() and "
        "execmem_free()\") and \"mm/execmem, arch: convert ... overrides of module_alloc to "
        "execmem\" (same series): module_alloc() is gone",
        "execmem_alloc(type, size) from per-arch ranges (EXECMEM_DEFAULT/MODULE_TEXT, KPROBES, "
        "FTRACE, BPF, MODULE_DATA) with a fallback range, GFP_KERNEL | __GFP_NOWARN, "
        "VM_FLUSH_RESET_PERMS; a failure logs \"execmem: unable to allocate memory\"; the BPF JIT "
        "allocates EXECMEM_BPF"),
    # -- 32-bit layouts read from dumps only (snapshot.layout LAYOUT_ONLY_ARCHES: no profile) ------
    "ppc32_kasan_vmalloc_end": Change(
        "5.5", "3d4247fcc938 ≈ (Christophe Leroy, \"powerpc/32: Add support of KASAN_VMALLOC\")",
        "ppc32 VMALLOC_END is ALIGN_DOWN(ioremap_bot, PAGE_SIZE << KASAN_SHADOW_SCALE_SHIFT) "
        "with CONFIG_KASAN_VMALLOC, ioremap_bot without it (book3s/32 and nohash/32 pgtable.h, "
        "as read in torvalds/linux 06f52524)"),
    "ppc32s_module_segment": Change(
        "5.10", "6ca055322da8 ≈ (Christophe Leroy, \"powerpc/32s: Use dedicated segment for "
        "modules with STRICT_KERNEL_RWX\")",
        "book3s/32 with STRICT_KERNEL_RWX and MODULES allocates modules in MODULES_VADDR.."
        "MODULES_END, the 256 MiB segment below PAGE_OFFSET (0xb0000000-0xbfffffff with "
        "PAGE_OFFSET 0xc0000000), not in the vmalloc area"),
    "ppc32_modules_near_text": Change(
        "5.13", "2ec13df16704 (Christophe Leroy, \"powerpc/modules: Load modules closer to "
        "kernel text\"; release ≈)",
        "ppc32 module_alloc tries [max(MODULES_VADDR, _etext - 32M), MODULES_END) first, then "
        "the whole module area; the 8xx gets a module area below PAGE_OFFSET too (its TASK_SIZE "
        "is 0x80000000)"),
}

# The releases the model knows by name: the checked ones and every release where a rule above
# starts or ends (any version between the first and the last is accepted: rules are thresholds).
KNOWN_VERSIONS: Final[tuple[str, ...]] = tuple(sorted(
    set(_CHECKED) | {c.since for c in CHANGES.values()}
    | {c.until for c in CHANGES.values() if c.until is not None}, key=_release_key))



def has(kernel: KernelVersion, change: str) -> bool:
    """Whether ``kernel`` has the rule called ``change`` (a key of :data:`CHANGES`)."""
    return CHANGES[change].applies(kernel)


def changes_between(old: KernelVersion, new: KernelVersion) -> list[tuple[str, Change]]:
    """The rules that one of the two kernels has and the other has not, by name."""
    return [(name, c) for name, c in CHANGES.items() if c.applies(old) != c.applies(new)]


# ---- the computations that differ ------------------------------------------------------------
def vmap_stack(kernel: KernelVersion, arch_family: str) -> bool:
    """Whether thread stacks are vmalloc areas (CONFIG_VMAP_STACK) on ``arch_family``
    (``x86_64``, ``i386``, ``arm``, ``arm64``) under ``kernel``: x86_64 from 4.9, arm64 from
    4.14, ARM from 5.18, never on i386."""
    rule = {"x86_64": "vmap_stack_x86_64", "arm64": "vmap_stack_arm64",
            "arm": "vmap_stack_arm"}.get(arch_family)
    return rule is not None and has(kernel, rule)


def allocator_for(kernel: KernelVersion) -> str:
    """The address-space allocator ``kernel`` used: ``list`` (2.6.22-2.6.27), ``rbtree``
    (2.6.28-2.6.38), ``rbtree-cache`` (2.6.39-5.1) or ``kva-rbtree`` (5.2+: the free tree with
    lib/rbtree.c's shape, so aligned requests land where the kernel's descent lands; ``kva`` is
    the same free tree with a balanced shape of its own); the names of
    ``vmalloc.allocator.ALLOCATORS``."""
    if has(kernel, "kva_allocator"):
        return "kva-rbtree"
    if has(kernel, "free_vmap_cache"):
        return "rbtree-cache"
    if has(kernel, "vmap_area_rbtree"):
        return "rbtree"
    return "list"


def ioremap_max_order(kernel: KernelVersion, arch: str, page_shift: int, pmd_shift: int,
                      pud_shift: int, arch_value: int | None) -> int:
    """IOREMAP_MAX_ORDER of ``arch`` (an arch family: ``x86_64``, ``i386``, ``arm``, ``arm64``).

    include/linux/vmalloc.h: the generic ``7 + PAGE_SHIFT`` (128 pages) unless the arch sets its
    own: x86 from 4.1 (``x86_ioremap_max_order_pmd``), ARM and arm64 always (``arch_value``).
    """
    if arch in ("x86_64", "i386") and has(kernel, "x86_ioremap_max_order_pmd"):
        return pud_shift if arch == "x86_64" else pmd_shift
    if arch_value is not None and arch not in ("x86_64", "i386"):
        return arch_value
    return 7 + page_shift


def ioremap_align(kernel: KernelVersion, size: int, page_shift: int, max_order: int) -> int:
    """The alignment ``__get_vm_area_node`` gives a VM_IOREMAP request of ``size`` bytes.

    2.6.22: ``1 << fls(size)`` of the size as given, clamped to ``[PAGE_SHIFT, max_order]``;
    later (``ioremap_count_order``): ``1 << get_count_order_long(PAGE_ALIGN(size))``, clamped.
    """
    if has(kernel, "ioremap_count_order"):
        page = 1 << page_shift
        aligned = (size + page - 1) & -page
        order = (aligned - 1).bit_length() if aligned > 1 else 0   # get_count_order_long
    else:
        order = size.bit_length()                                  # fls(size)
    return 1 << min(max(order, page_shift), max_order)


def vmap_failure_lines(kernel: KernelVersion, size: int, vstart: int, vend: int) -> list[str]:
    """What ``alloc_vmap_area`` (or 2.6.22's ``__get_vm_area_node``) logs when no hole holds
    ``size`` bytes (guard page included) in ``[vstart, vend)``, word for word."""
    if has(kernel, "vmap_range_restricted_message"):
        return [f"vmalloc_node_range for size {size} failed: Address range restricted to "
                f"{vstart:#x} - {vend:#x}"]
    if has(kernel, "vmap_fail_message"):
        return [f"vmap allocation for size {size} failed: use vmalloc=<size> to increase size"]
    return ["allocation failed: out of vmalloc space - use vmalloc=<size> to increase size."]


def vmalloc_failure_lines(kernel: KernelVersion, real_size: int, gfp_bits: list[str],
                          gfp_names: str, nodes: str = "0") -> list[str]:
    """The lines ``__vmalloc_node_range`` adds when no area could be had, word for word as each
    kernel prints them (none before 2.6.38).  ``gfp_bits`` are the model's GFP bit names
    (``phys.gfp.GFPBIT``), ``gfp_names`` what ``%pGg`` prints, ``nodes`` ``mems_allowed``.
    The comm is the model's, ``pyvmalloc``."""
    value = gfp_value(kernel, gfp_bits)
    if has(kernel, "vmalloc_error_message"):
        return [f"pyvmalloc: vmalloc error: size {real_size}, vm_struct allocation failed, "
                f"mode:{value:#x}({gfp_names}), nodemask=(null),cpuset=/,mems_allowed={nodes}"]
    if has(kernel, "warn_alloc"):
        return [f"pyvmalloc: vmalloc: allocation failure: {real_size} bytes, "
                f"mode:{value:#x}({gfp_names}), nodemask=(null)"]
    if has(kernel, "vmalloc_alloc_failure_message"):
        return [f"vmalloc: allocation failure: {real_size} bytes",
                f"pyvmalloc: page allocation failure: order:0, mode:{value:#x}"]
    return []


# include/linux/gfp.h of 6.1 (___GFP_*): the bit of each of the model's GFP flags (named as
# phys.gfp.GFPBIT names them; __GFP_WAIT became __GFP_DIRECT_RECLAIM|__GFP_KSWAPD_RECLAIM in
# 4.4, d0164adc89f6, and __GFP_REPEAT __GFP_RETRY_MAYFAIL).  Before 4.4 the model prints its
# own (2.6.22) values, which is what those kernels' low bits were.
_GFP_BITS_6X: Final[dict[str, int]] = {
    "DMA": 0x01, "HIGHMEM": 0x02, "DMA32": 0x04, "MOVABLE": 0x08, "HIGH": 0x20, "IO": 0x40,
    "FS": 0x80, "ZERO": 0x100, "WAIT": 0xC00, "NOWARN": 0x2000, "REPEAT": 0x4000,
    "NOFAIL": 0x8000, "NORETRY": 0x10000, "COMP": 0x40000, "NOMEMALLOC": 0x80000,
    "HARDWALL": 0x100000, "THISNODE": 0x200000,
}
_GFP_BITS_2622: Final[dict[str, int]] = {
    "DMA": 0x01, "HIGHMEM": 0x02, "DMA32": 0x04, "WAIT": 0x10, "HIGH": 0x20, "IO": 0x40,
    "FS": 0x80, "COLD": 0x100, "NOWARN": 0x200, "REPEAT": 0x400, "NOFAIL": 0x800,
    "NORETRY": 0x1000, "NO_GROW": 0x2000, "COMP": 0x4000, "ZERO": 0x8000,
    "NOMEMALLOC": 0x10000, "HARDWALL": 0x20000, "THISNODE": 0x40000, "MOVABLE": 0x80000,
}


def gfp_value(kernel: KernelVersion, bits: list[str]) -> int:
    """The number ``kernel`` prints as ``mode:`` for a mask made of ``bits`` (GFPBIT names);
    bits the kernel no longer has (COLD, NO_GROW) print as nothing."""
    table = _GFP_BITS_6X if has(kernel, "gfp_reclaim_bits") else _GFP_BITS_2622
    value = 0
    for name in bits:
        value |= table.get(name, 0)
    return value


# include/asm-x86_64/pgtable.h (2.6.22): [VMALLOC_START, VMALLOC_END] before
# x86_64_vmalloc_64tb_map; the end is the last byte, used as the exclusive bound the kernel's
# own searches use (as for the later layout).
X86_64_VMALLOC_2622: Final = (0xFFFFC20000000000, 0xFFFFE1FFFFFFFFFF)


def x86_32_vmalloc_end(kernel: KernelVersion, pae: bool) -> int:
    """i386 VMALLOC_END with HIGHMEM: ``PKMAP_BASE - 2 * PAGE_SIZE``.

    2.6.22 (include/asm-i386/pgtable.h): PKMAP_BASE 0xff800000 below the fixmap.  4.15+
    (``x86_32_pkmap_below_cpu_entry_area``, arch/x86/include/asm/pgtable_32_areas.h):
    PKMAP_BASE = (LDT_BASE_ADDR - PAGE_SIZE) & PMD_MASK under CPU_ENTRY_AREA_BASE: 0xff000000
    with PAE (read off a 6.1 686-pae guest: VMALLOC_END 0xfeffe000), 0xfec00000 without (the same
    arithmetic with 4 MiB PMDs).
    """
    if has(kernel, "x86_32_pkmap_below_cpu_entry_area"):
        return (0xFF000000 if pae else 0xFEC00000) - 2 * 4096
    return 0xFF800000 - 2 * 4096


def x86_32_vmalloc_start(kernel: KernelVersion, high_memory: int, offset: int) -> int:
    """i386 VMALLOC_START from ``high_memory``: 2.6.22 rounds ``high_memory + 2*OFFSET - 1``
    down to OFFSET; later (``x86_32_vmalloc_start_unrounded``) ``high_memory + OFFSET``."""
    if has(kernel, "x86_32_vmalloc_start_unrounded"):
        return high_memory + offset
    return (high_memory + 2 * offset - 1) & ~(offset - 1)


def x86_32_maxmem(kernel: KernelVersion, page_offset: int, vmalloc_end: int, reserve: int) -> int:
    """i386 MAXMEM, the most lowmem: ``4G - PAGE_OFFSET - __VMALLOC_RESERVE`` in 2.6.22,
    ``VMALLOC_END - PAGE_OFFSET - __VMALLOC_RESERVE`` later."""
    if has(kernel, "x86_32_vmalloc_start_unrounded"):
        return vmalloc_end - page_offset - reserve
    return (1 << 32) - page_offset - reserve


def x86_32_vmalloc_reserve(kernel: KernelVersion, param: int, offset: int) -> int:
    """``__VMALLOC_RESERVE`` for ``vmalloc=param``: the value itself in 2.6.22, plus
    VMALLOC_OFFSET later (``x86_32_vmalloc_param_adds_offset``)."""
    return param + offset if has(kernel, "x86_32_vmalloc_param_adds_offset") else param


def arm_vmalloc_end(kernel: KernelVersion) -> int:
    """ARM VMALLOC_END (arch/arm/include/asm/pgtable.h): 0xff000000, 0xff800000 later."""
    return 0xFF800000 if has(kernel, "arm_vmalloc_end_ff800000") else 0xFF000000


def arm_vmalloc_min(kernel: KernelVersion, vmalloc_end: int, size: int | None, default: int,
                    offset: int) -> int:
    """The virtual address where ARM lowmem must end for a ``vmalloc=size`` (None: default).

    arch/arm/mm/mmu.c: the default leaves ``default`` bytes (``VMALLOC_END - 240M -
    VMALLOC_OFFSET``).  Before ``arm_vmalloc_size_uniform`` ``vmalloc=`` set ``vmalloc_min =
    VMALLOC_END - size``, and VMALLOC_START = (high_memory + OFFSET) & ~(OFFSET - 1) then took
    up to 8 MiB of it; after, lowmem ends at ``VMALLOC_END - size - VMALLOC_OFFSET``.
    """
    if size is None:
        return vmalloc_end - default - offset
    if has(kernel, "arm_vmalloc_size_uniform"):
        return vmalloc_end - size - offset
    return vmalloc_end - size


def arm_vmalloc_max(kernel: KernelVersion, vmalloc_end: int, page_offset: int, offset: int) -> int:
    """The largest ``vmalloc=`` early_vmalloc() takes: ``VMALLOC_END - (PAGE_OFFSET + 32M)``,
    less VMALLOC_OFFSET with ``arm_vmalloc_size_uniform``."""
    top = vmalloc_end - (page_offset + (32 << 20))
    return top - offset if has(kernel, "arm_vmalloc_size_uniform") else top


def meminfo_generation(kernel: KernelVersion) -> str:
    """How /proc/meminfo's VmallocUsed/VmallocChunk are computed (formats.vmalloc_meminfo
    GENERATIONS): ``vmlist``, ``vmap_area_list``, ``zero`` or ``nr_pages``."""
    if has(kernel, "meminfo_vmalloc_used_pages"):
        return "nr_pages"
    if has(kernel, "meminfo_vmalloc_walk_removed"):
        return "zero"
    if has(kernel, "meminfo_walks_vmap_area_list"):
        return "vmap_area_list"
    return "vmlist"
