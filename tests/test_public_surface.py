"""The public surface as static tools (mypy, IDEs, the reader) see it, pinned: a change to any
of these lists is a change of the API and shows up here in review."""

from __future__ import annotations

import inspect

import pytest
from types import FunctionType

import pyvmalloc as pv
from pyvmalloc.vmalloc.api import KERNEL_NAMES

ALL = [
    "ConfigError",
    "FormatError",
    "Inconsistency",
    "KernelBug",
    "Machine",
    "PageFault",
    "PyvmallocError",
    "VM_ALLOC",
    "VM_IOREMAP",
    "VM_MAP",
    "VM_RESERVED",
    "VM_USERMAP",
    "VM_VPAGES",
    "vm_struct",
]

# Methods of pv.Machine, classmethods included (the kernel's functions and the machine's own).
METHODS = {
    "PAGE_ALIGN",
    "WARN_ON",
    "alloc_page",
    "alloc_vm_area",
    "areas",
    "bpf_jit_alloc",
    "bpf_jit_current",
    "bpf_jit_free",
    "bpf_jit_limit",
    "check",
    "dmesg",
    "execmem_alloc",
    "execmem_free",
    "find_vm_area",
    "find_vm_area_locked",
    "find_vmap_area",
    "for_each_vmap_area",
    "flush_tlb_kernel_range",
    "free_page",
    "free_vm_area",
    "from_snapshot",
    "get_vm_area",
    "get_vm_area_node",
    "get_vm_area_node_range",
    "get_vm_area_range",
    "in_interrupt",
    "inject",
    "inject_clear",
    "interrupt",
    "ioremap_align",
    "lazy_areas",
    "lazy_areas_kept",
    "map_vm_area",
    "meminfo",
    "module_alloc",
    "pages_of",
    "printk",
    "printk_ratelimit",
    "profiles",
    "read",
    "remap_vmalloc_range",
    "remove_vm_area",
    "rcu_barrier",
    "remove_vm_area_locked",
    "reserve_vmap_area",
    "run_workers",
    "stats",
    "trace",
    "trace_events",
    "trace_off",
    "trace_on",
    "translate",
    "unmap_kernel_range",
    "user_mm",
    "vfree",
    "vm_map_ram",
    "vm_area_map_pages",    # 6.9 VM_SPARSE (issue 12)
    "pcpu_get_vm_areas",    # the per-CPU allocator's areas and the allocator (issue 12)
    "pcpu_free_vm_areas",
    "alloc_percpu",
    "free_percpu",
    "per_cpu_ptr",
    "vm_area_unmap_pages",
    "set_memory_ro",        # vmalloc/reset_perms.py: VM_FLUSH_RESET_PERMS made real (issue 12)
    "set_memory_rw",
    "set_memory_x",
    "set_memory_nx",
    "direct_map_readonly",
    "kmemleak_objects",     # kernel/kmemleak.py: VM_DEFER_KMEMLEAK made real (issue 12)
    "kmemleak_vmalloc",
    "vm_unmap_aliases",
    "vmap_node_shrink",
    "pooled_areas",
    "vm_unmap_ram",
    "vmalloc",
    "vmalloc_32",
    "vmalloc_32_user",
    "vmalloc_area",
    "vmalloc_area_node",
    "vmalloc_exec",
    "vmalloc_gfp",
    "vmalloc_node",
    "vmalloc_node_gfp",
    "vmalloc_node_range",
    "vmalloc_sync_all",
    "vmalloc_to_page",
    "vmalloc_to_pfn",
    "vm_ranges",
    "vmalloc_user",
    "vmallocinfo",
    "vmap",
    "vread",
    "vread_into",
    "vunmap",
    "vunmap_area",
    "vwrite",
    "walk",
    "write",
    # today's API (vmalloc/kvmalloc.py)
    "kvfree",
    "kvfree_rcu",
    "kvmalloc",
    "kvmalloc_node",
    "kvrealloc",
    "kvzalloc",
    "vcalloc",
    "vmalloc_array",
    "vmalloc_huge",
    "vmalloc_node_range_flags",
    "vmap_pfn",
    "vrealloc",
    "vzalloc",
    "vzalloc_node",
}

# layout, VMALLOC_START/END and lazy_max_pages were instance attributes until mm/vmalloc.c became
# a component behind the facade (issue 12): properties now, since the core owns them (a restored
# snapshot moves the range through ``m.vm.set_vmalloc_range``); lazy_max_pages alone has a setter,
# the knob sweeps turn.
PROPERTIES = {"GFP_VMALLOC32", "current_cpu", "num_physpages",
              "layout", "VMALLOC_START", "VMALLOC_END", "lazy_max_pages"}


# pv.Machine(...)'s parameters, in order; "*" marks where the keyword-only ones start.  The
# vmap-node knobs (issue 17) are keyword-only: what-if knobs for experiments, not kernel
# tunables, which no positional call should reach by accident.
CONSTRUCTOR = ["arch", "ram", "nodes", "cpus", "cmdline", "allocator", "lazy_purge", "kaslr_seed",
               "kernel", "*", "nr_vmap_nodes", "vmap_pool_max_pages"]


def public_members(kind: type | tuple[type, ...]) -> set[str]:
    """Public names of pv.Machine whose class-level object (MRO included) is of ``kind``."""
    return {name for name in dir(pv.Machine) if not name.startswith("_")
            and isinstance(inspect.getattr_static(pv.Machine, name), kind)}


def test_all_is_exactly_the_facade() -> None:
    assert pv.__all__ == ALL
    assert all(hasattr(pv, name) for name in pv.__all__)


def test_machine_methods_and_properties() -> None:
    assert public_members((FunctionType, classmethod, staticmethod)) == METHODS
    assert public_members(property) == PROPERTIES


def test_machine_constructor_parameters() -> None:
    got: list[str] = []
    for p in list(inspect.signature(pv.Machine).parameters.values()):
        if p.kind is inspect.Parameter.KEYWORD_ONLY and "*" not in got:
            got.append("*")
        got.append(p.name)
    assert got == CONSTRUCTOR


def test_kernel_names_resolve_to_the_method_they_name() -> None:
    # ``__x`` would be mangled inside a class body, so the aliases are set on the class at
    # import time: static tools do not see them, only their Python spellings.
    assert set(KERNEL_NAMES.values()) <= METHODS
    m = pv.Machine(ram="64M")
    for kernel_name, python_name in KERNEL_NAMES.items():
        assert kernel_name.startswith("__")
        assert getattr(pv.Machine, kernel_name) is getattr(pv.Machine, python_name), kernel_name
        assert getattr(m, kernel_name) == getattr(m, python_name), kernel_name


def test_lazy_max_pages_is_a_checked_knob() -> None:
    m = pv.Machine(arch="x86_64", ram="64M")
    m.lazy_max_pages = 64
    assert m.lazy_max_pages == m.vm.lazy_max_pages == 64
    for bad in (0, -1, 1.5, True, "64"):
        with pytest.raises(pv.ConfigError):
            m.lazy_max_pages = bad  # type: ignore[assignment]
    assert m.lazy_max_pages == 64
