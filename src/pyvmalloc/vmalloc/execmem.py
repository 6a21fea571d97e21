"""The module area and executable memory: ``module_alloc`` per arch and version, BPF JIT
images (``bpf_jit_binary_alloc`` with ``bpf_jit_limit``) and 6.10's ``execmem_alloc``.

Every rule is a :data:`pyvmalloc.versions.CHANGES` entry of the block "the module area and
executable memory"; the methods of ``vmalloc.api.Vmalloc`` check their arguments and call here.

What the model assumes (one configuration per arch, no knob):

- **x86_64, x86_64-la57** (arch/x86/kernel/module.c, 6.10+ arch/x86/mm/init.c
  ``execmem_arch_setup``): ``[MODULES_VADDR, MODULES_END)``; a request whose PAGE_ALIGN is
  over MODULES_LEN is NULL; MODULE_ALIGN is PAGE_SIZE (no KASAN) and the KASLR load offset
  (``get_module_load_offset``, 1..1024 pages) is 0 (``nokaslr``).
- **i386, i386-pae**: the same code with MODULES_VADDR = VMALLOC_START and MODULES_END =
  VMALLOC_END (arch/x86/include/asm/pgtable_32_areas.h; 2.6.22: ``vmalloc_exec``).
- **arm** (arch/arm/kernel/module.c; 6.10+ arch/arm/mm/init.c): ``[MODULES_VADDR,
  MODULES_END)``, PAGE_KERNEL_EXEC; with CONFIG_ARM_MODULE_PLTS (3.19+, assumed =y) the first
  try is ``__GFP_NOWARN`` and a failure falls back to ``[VMALLOC_START, VMALLOC_END)``.
- **arm64** (arch/arm64/kernel/module.c; 6.10+ arch/arm64/mm/init.c), the module area of the
  release (``arch.boot.arm64_layout``), no KASAN, no KASLR, and from 4.6 the kernel image taken
  as empty at KIMAGE_VADDR = MODULES_END (``_etext`` = ``_end`` = MODULES_END: the model maps
  no vmlinux).  3.7-4.5: ``[MODULES_VADDR, MODULES_END)`` (the 64 MiB below PAGE_OFFSET),
  GFP_KERNEL, no fallback.  4.6-6.4 (``arm64_module_plts``, CONFIG_ARM64_MODULE_PLTS=y as
  RANDOMIZE_BASE selects it): ``module_alloc_base = _etext - MODULES_VSIZE`` = MODULES_VADDR,
  the first try ``[base, base + MODULES_VSIZE)`` (``__GFP_NOWARN`` from 4.12), the fallback
  the vmalloc area, from 4.15 the window ``[base, base + 4G)``, from 5.2 ``[base, base + 2G)``
  (both run into the vmalloc area); PAGE_KERNEL_EXEC until 5.2, PAGE_KERNEL from 5.3
  (``arm64_module_alloc_nx``).  6.5+ (MODULES_VSIZE 2 GiB): ``[_end - 128M, _end)`` then
  ``[_end - 2G, _end)`` = the whole module area, both ``__GFP_NOWARN``.  BPF JIT images:
  module_alloc until 4.20, the 128 MiB BPF JIT region 5.0-5.15 (``arm64_bpf_jit_region``:
  ``__vmalloc_node_range(size, PAGE_SIZE, BPF_JIT_REGION_START, BPF_JIT_REGION_END,
  GFP_KERNEL, ...)``, bpf_jit_limit from its size), ``vmalloc()`` from 5.16 (bpf_jit_limit from
  the vmalloc area's size).

From 6.10 ``module_alloc`` is gone: the model's ``module_alloc`` then does what the module
loader does for module text, ``execmem_alloc(EXECMEM_MODULE_TEXT, size)``.  Pages come with
GFP_KERNEL | __GFP_HIGHMEM everywhere (vmalloc adds __GFP_HIGHMEM itself from 4.12, x86 passed
it before; ARM kernels before 4.12 took lowmem pages for modules, which the model does not).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvmalloc.arch.pte import A64_PXN
from pyvmalloc.errors import ConfigError
from pyvmalloc.phys import gfp as G
from pyvmalloc.versions import CHANGES, has
from pyvmalloc.vmalloc.vm_struct import VM_FLUSH_RESET_PERMS

if TYPE_CHECKING:
    from pyvmalloc.vmalloc.api import Vmalloc

__all__ = ["EXECMEM_TYPES", "ExecmemRange", "bpf_jit_alloc", "bpf_jit_free", "default_bpf_jit_limit",
           "execmem_alloc", "execmem_free", "execmem_ranges", "module_alloc", "module_windows"]

KERN_WARNING = 4
SZ_128M, SZ_2G, SZ_4G = 128 << 20, 2 << 30, 4 << 30
_GFP_HIGHMEM = getattr(G, "__GFP_HIGHMEM")
_GFP_NOWARN = getattr(G, "__GFP_NOWARN")
GFP_MODULE = G.GFP_KERNEL | _GFP_HIGHMEM

# include/linux/execmem.h (6.10): EXECMEM_MODULE_TEXT is EXECMEM_DEFAULT.
EXECMEM_TYPES = ("EXECMEM_DEFAULT", "EXECMEM_MODULE_TEXT", "EXECMEM_KPROBES", "EXECMEM_FTRACE",
                 "EXECMEM_BPF", "EXECMEM_MODULE_DATA")

# struct bpf_binary_header: a u32 before image[] __aligned(BPF_IMAGE_ALIGNMENT = 8).
BPF_HDR_SIZE = 8
# The JITs' bpf_jit_binary_alloc alignment: x86 1, ARM/arm64 sizeof(u32).
_BPF_ALIGN = {"x86": 1, "arm": 4, "arm64": 4}
LONG_MAX = {32: (1 << 31) - 1, 64: (1 << 63) - 1}


@dataclass(frozen=True)
class ExecmemRange:
    """struct execmem_range: where one execmem type is allocated (``end`` exclusive)."""

    start: int
    end: int
    pgprot: str | int
    alignment: int = 1
    fallback_start: int = 0
    fallback_end: int = 0


@dataclass
class ExecmemState:
    """bpf_jit_current / bpf_jit_limit and the live JIT images (header address: charged bytes)."""

    limit: int
    current: int = 0
    images: dict[int, int] = field(default_factory=dict)
    rng: random.Random = field(default_factory=lambda: random.Random(0))


def _family(m: Vmalloc) -> str:
    name = m.profile.name
    if name.startswith("x86_64") or name.startswith("i386"):
        return "x86"
    return "arm64" if name.startswith("arm64") else "arm" if name.startswith("arm") else "other"


def _modules(m: Vmalloc) -> tuple[int, int]:
    """MODULES_VADDR, MODULES_END (the vmalloc area where the arch has no range of its own)."""
    lay = m.layout
    if lay.modules_end > lay.modules_start:
        return lay.modules_start, lay.modules_end
    return m.VMALLOC_START, m.VMALLOC_END


def _arm64_plt_window(m: Vmalloc) -> tuple[int, int] | None:
    """arm64 module_alloc's PLT fallback range before 6.5 (None: no fallback, 3.7-4.5)."""
    if not has(m.kernel, "arm64_module_plts"):
        return None
    base, _end = _modules(m)                                   # module_alloc_base
    if has(m.kernel, "arm64_module_plt_window_2g"):
        return base, base + SZ_2G
    if has(m.kernel, "arm64_module_plt_window_4g"):
        return base, base + SZ_4G
    return m.VMALLOC_START, m.VMALLOC_END


def module_windows(m: Vmalloc) -> list[tuple[int, int, str]]:
    """Windows module text and JIT images may use beyond the vmalloc and module areas
    (``check()`` allows them): arm64's PLT window 4.15-6.4 (``[MODULES_VADDR, + 4G)``, 5.2+
    ``+ 2G``) and its BPF JIT region 5.0-5.15."""
    out: list[tuple[int, int, str]] = []
    if _family(m) == "arm64" and not has(m.kernel, "arm64_modules_2g"):
        win = _arm64_plt_window(m)
        if win is not None and win != (m.VMALLOC_START, m.VMALLOC_END):
            out.append((win[0], win[1], "module PLT window"))
        lay = m.layout
        if lay.bpf_jit_end > lay.bpf_jit_start:
            out.append((lay.bpf_jit_start, lay.bpf_jit_end, "BPF JIT region"))
    return out


def _arm64_rox(m: Vmalloc) -> int:
    # PAGE_KERNEL_ROX (arch/arm64/include/asm/pgtable-prot.h): read-only, PXN clear.
    return m.profile.pgprot("PAGE_KERNEL_RO") & ~A64_PXN


def execmem_ranges(m: Vmalloc) -> dict[str, ExecmemRange]:
    """The execmem_info of the machine (6.10), every type filled in as
    ``execmem_init_missing`` does: a type the arch leaves unset copies EXECMEM_DEFAULT, with
    PAGE_KERNEL for EXECMEM_MODULE_DATA."""
    fam = _family(m)
    mstart, mend = _modules(m)
    own: dict[str, ExecmemRange] = {}
    if fam == "x86":
        own["EXECMEM_DEFAULT"] = ExecmemRange(mstart, mend, "PAGE_KERNEL")
    elif fam == "arm":
        own["EXECMEM_DEFAULT"] = ExecmemRange(mstart, mend, "PAGE_KERNEL_EXEC", 1,
                                              m.VMALLOC_START, m.VMALLOC_END)
    elif fam == "arm64":
        # module_init_limits() without KASLR: kernel_end - 128M, kernel_end - 2G.
        own["EXECMEM_DEFAULT"] = ExecmemRange(mend - SZ_128M, mend, "PAGE_KERNEL", 1, mend - SZ_2G, mend)
        own["EXECMEM_KPROBES"] = ExecmemRange(m.VMALLOC_START, m.VMALLOC_END, _arm64_rox(m))
        own["EXECMEM_BPF"] = ExecmemRange(m.VMALLOC_START, m.VMALLOC_END, "PAGE_KERNEL")
    else:
        # mm/execmem.c __execmem_init(): no execmem_arch_setup, the whole vmalloc area.
        own["EXECMEM_DEFAULT"] = ExecmemRange(m.VMALLOC_START, m.VMALLOC_END, "PAGE_KERNEL_EXEC")
    default = own["EXECMEM_DEFAULT"]
    out = {}
    for name in EXECMEM_TYPES:
        r = own.get(name)
        if name == "EXECMEM_MODULE_TEXT":
            r = default
        elif r is None:
            prot = "PAGE_KERNEL" if name == "EXECMEM_MODULE_DATA" else default.pgprot
            r = ExecmemRange(default.start, default.end, prot, default.alignment,
                             default.fallback_start, default.fallback_end)
        out[name] = r
    return out


def _require(m: Vmalloc, change: str, fn: str) -> None:
    if not has(m.kernel, change):
        c = CHANGES[change]
        raise ConfigError(f"{fn}() is not in Linux {m.kernel}: it came with Linux {c.since} ({c.commit})")


def _set_flush_reset_perms(m: Vmalloc, addr: int | None) -> int | None:
    """``set_vm_flush_reset_perms`` (5.2+): the area's flag, kept in area.flags."""
    if addr is not None and has(m.kernel, "vm_flush_reset_perms"):
        with m.vmlist_lock.write():
            area = m.find_vm_area_locked(addr)
            assert area is not None
            area.flags |= VM_FLUSH_RESET_PERMS
    return addr


def _warn(m: Vmalloc, text: str) -> None:
    if m.printk_ratelimit():
        m.printk(KERN_WARNING, text)


# ---- 6.10: execmem ----------------------------------------------------------------------
def execmem_alloc(m: Vmalloc, type_: str, size: int, caller: str) -> int | None:
    """mm/execmem.c ``execmem_alloc``: the type's range, then its fallback range, both
    GFP_KERNEL | __GFP_NOWARN with VM_FLUSH_RESET_PERMS; NULL logs "execmem: unable to
    allocate memory"."""
    _require(m, "execmem", "execmem_alloc")
    r = execmem_ranges(m)[type_]
    gfp = GFP_MODULE | _GFP_NOWARN
    p = m.vmalloc_node_range(size, r.alignment, r.start, r.end, gfp, r.pgprot, -1, caller)
    if p is None and r.fallback_start:
        p = m.vmalloc_node_range(size, r.alignment, r.fallback_start, r.fallback_end, gfp, r.pgprot,
                                 -1, caller)
    if p is None:
        if size > 0:
            _warn(m, "execmem: unable to allocate memory")
        return None
    return _set_flush_reset_perms(m, p)


def execmem_free(m: Vmalloc, addr: int | None) -> None:
    """``execmem_free``: WARN_ON(in_interrupt()), then vfree."""
    _require(m, "execmem", "execmem_free")
    m.WARN_ON(m.in_interrupt(), "mm/execmem.c: execmem_free")
    m.vfree(addr)


# ---- module_alloc ----------------------------------------------------------------------
def module_alloc(m: Vmalloc, size: int, caller: str) -> int | None:
    """``module_alloc(size)`` of the machine's arch and kernel (see the module docstring)."""
    if has(m.kernel, "execmem"):
        return execmem_alloc(m, "EXECMEM_MODULE_TEXT", size, caller)
    fam = _family(m)
    mstart, mend = _modules(m)
    if fam == "x86":
        if m.PAGE_ALIGN(max(size, 0)) > mend - mstart:   # MODULES_LEN
            return None
        prot = "PAGE_KERNEL" if has(m.kernel, "x86_module_alloc_nx") else "PAGE_KERNEL_EXEC"
        p = m.vmalloc_node_range(size, 1, mstart, mend, GFP_MODULE, prot, -1, caller)
        return _set_flush_reset_perms(m, p)
    if fam == "arm":
        plts = has(m.kernel, "arm_module_plts")
        gfp = GFP_MODULE | (_GFP_NOWARN if plts else 0)
        p = m.vmalloc_node_range(size, 1, mstart, mend, gfp, "PAGE_KERNEL_EXEC", -1, caller)
        if p is None and plts and size > 0:
            p = m.vmalloc_node_range(size, 1, m.VMALLOC_START, m.VMALLOC_END, GFP_MODULE,
                                     "PAGE_KERNEL_EXEC", -1, caller)
        return _set_flush_reset_perms(m, p)
    if fam == "arm64":
        if has(m.kernel, "arm64_modules_2g"):
            p = m.vmalloc_node_range(size, 1, mend - SZ_128M, mend, GFP_MODULE | _GFP_NOWARN,
                                     "PAGE_KERNEL", -1, caller)
            if p is None and size > 0:
                p = m.vmalloc_node_range(size, 1, mend - SZ_2G, mend, GFP_MODULE | _GFP_NOWARN,
                                         "PAGE_KERNEL", -1, caller)
            if p is None and size > 0:
                _warn(m, "module_alloc: unable to allocate memory")
            return _set_flush_reset_perms(m, p)
        prot = "PAGE_KERNEL" if has(m.kernel, "arm64_module_alloc_nx") else "PAGE_KERNEL_EXEC"
        win = _arm64_plt_window(m)
        first = GFP_MODULE | (_GFP_NOWARN if has(m.kernel, "arm64_module_alloc_nowarn") else 0)
        base = mstart                                          # _etext - MODULES_VSIZE
        p = m.vmalloc_node_range(size, 1, base, mend, first, prot, -1, caller)
        if p is None and size > 0 and win is not None:
            p = m.vmalloc_node_range(size, 1, win[0], win[1], GFP_MODULE, prot, -1, caller)
        return _set_flush_reset_perms(m, p)
    # The generic __weak module_alloc: the vmalloc area.
    return m.vmalloc_node_range(size, 1, m.VMALLOC_START, m.VMALLOC_END, GFP_MODULE,
                                "PAGE_KERNEL_EXEC", -1, caller)


# ---- BPF JIT images ----------------------------------------------------------------------
def default_bpf_jit_limit(m: Vmalloc) -> int:
    """``bpf_jit_charge_init()``: round_up(bpf_jit_alloc_exec_limit() >> 2 (>> 1 from 6.3),
    PAGE_SIZE), at most LONG_MAX; the exec limit is MODULES_END - MODULES_VADDR (the vmalloc
    area's size on i386 and, by arm64's own bpf_jit_alloc_exec_limit, on arm64)."""
    lay = m.layout
    if _family(m) == "arm64" and lay.bpf_jit_end > lay.bpf_jit_start:
        limit_max = lay.bpf_jit_end - lay.bpf_jit_start        # BPF_JIT_REGION_SIZE (5.0-5.15)
    elif _family(m) == "arm64" and has(m.kernel, "arm64_flip_va"):
        limit_max = m.VMALLOC_END - m.VMALLOC_START            # 5.16+ bpf_jit_alloc_exec_limit
    else:
        start, end = _modules(m)
        limit_max = end - start
    shift = 1 if has(m.kernel, "bpf_jit_limit_half") else 2
    return min(m.PAGE_ALIGN(limit_max >> shift), LONG_MAX[m.profile.bits])


def state(m: Vmalloc) -> ExecmemState:
    """The machine's BPF JIT accounting, made at first use."""
    st = m.execmem_state
    if st is None:
        st = m.execmem_state = ExecmemState(default_bpf_jit_limit(m))
    return st


def _bpf_jit_alloc_exec(m: Vmalloc, size: int, caller: str) -> int | None:
    if has(m.kernel, "execmem"):
        return execmem_alloc(m, "EXECMEM_BPF", size, caller)
    lay = m.layout
    if _family(m) == "arm64" and lay.bpf_jit_end > lay.bpf_jit_start:
        # arch/arm64/net/bpf_jit_comp.c (5.0-5.15): the BPF JIT region, PAGE_SIZE aligned;
        # PAGE_KERNEL_EXEC until 5.2 ("arm64: bpf: do not allocate executable memory", 5.3).
        prot = "PAGE_KERNEL" if has(m.kernel, "arm64_module_alloc_nx") else "PAGE_KERNEL_EXEC"
        return m.vmalloc_node_range(size, m.PAGE_SIZE, lay.bpf_jit_start, lay.bpf_jit_end,
                                    GFP_MODULE, prot, -1, caller)
    if _family(m) == "arm64" and has(m.kernel, "arm64_flip_va"):
        # arch/arm64/net/bpf_jit_comp.c (5.16+): kasan_reset_tag(vmalloc(size)).
        return m.vmalloc_node_range(size, 1, m.VMALLOC_START, m.VMALLOC_END, GFP_MODULE,
                                    "PAGE_KERNEL", -1, caller)
    return module_alloc(m, size, caller)


def bpf_jit_alloc(m: Vmalloc, proglen: int, privileged: bool, caller: str) -> int | None:
    """kernel/bpf/core.c ``bpf_jit_binary_alloc``: the image address (the header is the
    page below it: ``addr & PAGE_MASK``), or None when the charge is refused (-EPERM for an
    unprivileged caller past bpf_jit_limit) or no memory could be had."""
    _require(m, "bpf_jit_binary_alloc", "bpf_jit_alloc")
    if proglen < 0 or proglen >= 1 << 32:
        raise ValueError(f"bpf_jit_alloc(): proglen {proglen} is not an unsigned int")
    st = state(m)
    size = m.PAGE_ALIGN(proglen + BPF_HDR_SIZE + 128)
    charged = 0
    if has(m.kernel, "bpf_jit_limit"):
        # bpf_jit_charge_modmem(): atomic_long_add_return, then refuse unless capable.
        if st.current + size > st.limit and not privileged:
            return None
        st.current += size
        charged = size
    hdr = _bpf_jit_alloc_exec(m, size, caller)
    if hdr is None:
        st.current -= charged
        return None
    _set_flush_reset_perms(m, hdr)
    st.images[hdr] = charged
    hole = min(size - (proglen + BPF_HDR_SIZE), m.PAGE_SIZE - BPF_HDR_SIZE)
    align = _BPF_ALIGN.get(_family(m), 1)
    start = (st.rng.getrandbits(32) % hole) & ~(align - 1)
    return hdr + BPF_HDR_SIZE + start


def bpf_jit_free(m: Vmalloc, addr: int) -> None:
    """``bpf_jit_binary_free``: uncharge and free the image whose header is ``addr & PAGE_MASK``."""
    st = state(m)
    hdr = addr & ~(m.PAGE_SIZE - 1)
    if hdr not in st.images:
        raise ValueError(f"bpf_jit_free(): {addr:#x} is not a live BPF JIT image")
    charged = st.images.pop(hdr)
    if has(m.kernel, "execmem"):
        execmem_free(m, hdr)
    else:
        m.vfree(hdr)                      # module_memfree / arm64 vfree
    st.current -= charged
