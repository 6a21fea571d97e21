"""What-if answers on a snapshot's machine: would these allocations fit, and which ``vmalloc=`` fits them.

``fits(machine, sizes)`` asks the machine's own allocator, one request after the other (each sees
the ones before it), and undoes everything afterwards.  ``plan(snapshot, sizes, headroom)`` finds
the smallest ``vmalloc=`` boot value at which the snapshot's areas plus those allocations fit and
leave ``headroom`` of the vmalloc area free, by booting a machine for each candidate value,
replaying the snapshot on it and allocating; the answer lists the rules it assumed
(:data:`PLAN_RULES`) for areas that cannot move.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from pyvmalloc.snapshot.layout import KernelRange, hole_stats, is_static_area
from pyvmalloc.arch import boot_layout, vmalloc_end_for
from pyvmalloc.sizes import exact_bytes, format_size, parse_size
from pyvmalloc.errors import ConfigError
from pyvmalloc.kernel.machine import Machine
from pyvmalloc.snapshot.restore import (
    SnapshotLayout,
    boot_snapshot_machine,
    read_meminfo,
    read_snapshot,
    replay_snapshot,
    resolve_arch,
    snapshot_layout,
    vmalloc_bounds,
)
from pyvmalloc.formats.vmallocinfo import VmallocinfoLine, VmallocinfoSnapshot
from pyvmalloc.versions import CHANGES, KernelVersion, has, parse_version
from pyvmalloc.vmalloc.vm_struct import VM_ALLOC, VM_IOREMAP, vm_struct

__all__ = ["FIT_KINDS", "PLAN_RULES", "FitAnswer", "PlanAnswer", "Trial", "fits",
           "fits_requests", "parse_fit_requests", "parse_headroom", "parse_sizes", "plan", "plan_by_kernel", "rules_between",
           "version_rules"]

MiB = 1 << 20

# What each kind of request reserves, and where (mm/vmalloc.c: vmalloc and ioremap use
# VMALLOC_START..END, ioremap with its alignment; module_alloc the arch's module area; a BPF JIT
# image module_alloc's range, or on arm64 its BPF JIT region (5.0-5.15) or the vmalloc area
# (5.16+; arch.boot.arm64_layout).
FIT_KINDS = ("vmalloc", "ioremap", "module", "bpf")
# kernel/bpf/core.c bpf_jit_binary_alloc(): size = round_up(proglen + sizeof(*hdr) + 128,
# PAGE_SIZE): the header (vmalloc/execmem.py BPF_HDR_SIZE) and up to 128 bytes of random start.
_BPF_EXTRA = 8 + 128

PLAN_RULES: tuple[str, ...] = (
    "areas outside the snapshot's vmalloc range (modules, static and vendor maps) keep their "
    "addresses: they are not allocated from the vmalloc area",
    "early static areas (caller +0x0: iotable_init, pmd_empty_section_gap, pci_reserve_io, "
    "pcpu_get_vm_areas) and vendor-word maps keep their addresses, inside the new range or not: "
    "the platform fixes them",
    "every other area keeps its address when it lies wholly inside the new range; the rest are "
    "placed again after all kept ones, in address order, by the allocator of the machine's "
    "kernel (2.6.22's list, 2.6.28's tree, 2.6.39-5.1's cached tree, 5.2+'s free tree, which "
    "looks for a hole of size + alignment - 1 for aligned requests), ioremap lines at that "
    "kernel's VM_IOREMAP alignment; one that fits nowhere fails the candidate",
    "lazily freed (unpurged) areas outside the new range are dropped: a purge frees them",
    "the requested sizes are then reserved one after the other as vmalloc(size) reserves "
    "address space (size rounded up to pages, plus the guard page, lowest address first, then "
    "its page array when that is over a page and vmalloc'ed too); RAM is not taken",
    "headroom: the bytes of [VMALLOC_START, VMALLOC_END) covered by no area, guard page, "
    "vm_map_ram block or unpurged area after all that, as a fraction of VMALLOC_END - "
    "VMALLOC_START, must be at least the headroom asked",
)


@dataclass(frozen=True)
class FitAnswer:
    """One request of :func:`fits`: ``step`` is its place in the sequence (1-based).

    ``reserved`` is what the allocator looks for (size rounded up to pages plus the guard
    page); ``largest_hole``/``total_free``/``holes`` describe the range just before the request;
    ``pages_ok`` says whether free RAM would also cover the pages a vmalloc of it needs.
    """

    step: int
    size: int
    reserved: int
    ok: bool
    address: int | None
    reason: str
    largest_hole: int
    total_free: int
    holes: int
    pages_ok: bool


@dataclass(frozen=True)
class Trial:
    """One machine booted for the plan: the snapshot replayed and the sizes reserved on it."""

    param: str | None           # "vmalloc=264M", or None for the snapshot's own layout
    vmalloc_start: int
    vmalloc_end: int
    ok: bool
    why: str
    free: int
    area_size: int
    largest_hole: int
    kept: int
    relocated: int
    unplaced: int
    fits: tuple[FitAnswer, ...]

    @property
    def free_fraction(self) -> float:
        return self.free / self.area_size if self.area_size else 0.0


@dataclass(frozen=True)
class PlanAnswer:
    """The result of :func:`plan`.  ``value``/``param`` is the planned ``vmalloc=`` (None when
    there is none to give); ``ok`` whether the requirement is met with it; ``reason`` says why in
    words; ``current`` is the snapshot's own layout, ``planned`` the booted plan and ``smaller``
    the boot one step below it (which fails)."""

    arch: str | None
    trusted: bool
    sizes: tuple[int, ...]
    headroom: float
    value: int | None
    param: str | None
    ok: bool
    reason: str
    step: int | None = None
    current: Trial | None = None
    planned: Trial | None = None
    smaller: Trial | None = None
    assumptions: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    needed: bool = True         # False: the snapshot's own layout already meets the requirement
    kernel: str | None = None   # the kernel version whose arithmetic was used




def _need(need: int, page: int) -> str:
    return f"{exact_bytes(need - page)} + {exact_bytes(page)} guard page"


# ---- arguments ----------------------------------------------------------------------------------
def parse_sizes(text: str | Sequence[int | str]) -> list[int]:
    """``"8M,64M"`` (or a list of sizes) as byte counts; ConfigError names a bad one."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            raise ConfigError(f"empty size in {text!r}")
        out.append(parse_size(item.strip() if isinstance(item, str) else item))
    return out


def parse_fit_requests(text: str) -> list[tuple[str, int]]:
    """``"8M,module:416K,bpf:64K,ioremap:16M"`` as ``(kind, bytes)`` pairs (no kind: vmalloc);
    ConfigError names a bad kind (with the known ones) or size."""
    out = []
    for item in text.split(","):
        kind, sep, size = item.strip().rpartition(":")
        kind = kind.strip() if sep else "vmalloc"
        if kind not in FIT_KINDS:
            raise ConfigError(f"unknown kind {kind!r} in {item.strip()!r}: one of "
                              f"{', '.join(FIT_KINDS)} (e.g. module:8M)")
        out += [(kind, n) for n in parse_sizes(size)]
    return out


def parse_headroom(text: str | float) -> float:
    """``"25%"`` or ``0.25`` as a fraction in [0, 1); ConfigError otherwise."""
    if isinstance(text, bool):
        raise ConfigError(f"headroom {text!r} is not a fraction")
    if isinstance(text, str):
        t = text.strip()
        try:
            value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
        except ValueError:
            raise ConfigError(f"headroom {text!r} is not a percentage like 25%") from None
    else:
        value = float(text)
    if not 0 <= value < 1:
        raise ConfigError(f"headroom {text!r} must be at least 0% and below 100%")
    return value


# ---- fits ---------------------------------------------------------------------------------------
def _kind_range(m: Machine, kind: str) -> tuple[int, int, int]:
    if kind not in FIT_KINDS:
        raise ConfigError(f"unknown kind {kind!r}: one of {', '.join(FIT_KINDS)}")
    family = m.profile.name.split("-")[0]
    if kind == "bpf" and family == "arm64":
        # arch/arm64/net/bpf_jit_comp.c bpf_jit_alloc_exec: module_alloc until 4.20, the BPF
        # JIT region 5.0-5.15, vmalloc() from 5.16.
        if m.layout.bpf_jit_end > m.layout.bpf_jit_start:
            return m.layout.bpf_jit_start, m.layout.bpf_jit_end, VM_ALLOC
        if has(m.kernel, "arm64_flip_va"):
            kind = "vmalloc"
    if kind in ("module", "bpf") and m.layout.modules_end > m.layout.modules_start:
        return m.layout.modules_start, m.layout.modules_end, VM_ALLOC
    start, end = vmalloc_bounds(m)
    return start, end, VM_IOREMAP if kind == "ioremap" else VM_ALLOC


def _free_blocks(m: Machine, start: int, end: int) -> list[tuple[int, int]]:
    with m.vmlist_lock.read():
        return list(m.vmap_allocator.for_each_free(start, end))


def _why_not(need: int, page: int, align: int, blocks: list[tuple[int, int]]) -> str:
    stats = hole_stats(blocks)
    if stats.total < need:
        return f"total free {exact_bytes(stats.total)} is smaller than {_need(need, page)}"
    if stats.largest < need:
        return (f"largest hole {exact_bytes(stats.largest)} is smaller than {_need(need, page)}: the free "
                f"{exact_bytes(stats.total)} is split in {stats.count} holes")
    return (f"no hole holds {_need(need, page)} at {exact_bytes(align)} alignment (largest hole "
            f"{exact_bytes(stats.largest)})")


def _release(m: Machine, areas: Sequence[vm_struct]) -> None:
    """Give reserved ranges straight back (no lazy purge: nothing was ever mapped there)."""
    with m.vmlist_lock.write():
        for area in areas:
            m.vmap_allocator.remove(area.addr)
    for area in areas:
        m.vm.kfree(area.handle)


def _reserve(m: Machine, size: int, flags: int, start: int, end: int, caller: str
             ) -> tuple[list[vm_struct], int]:
    """The address space ``vmalloc(size)`` (or ioremap, or module_alloc) takes: the area, then,
    as mm/vmalloc.c ``__vmalloc_area_node`` does, a vmalloc'ed page array when the array of
    page pointers is over a page (VM_VPAGES), itself recursively.  ``([], need)`` with the
    reservation that failed (size + guard) when one does; what was taken is given back."""
    area = m.get_vm_area_node_range(size, flags, start, end, caller=caller)
    if area is None:
        return [], m.PAGE_ALIGN(size) + m.PAGE_SIZE
    made = [area]
    if flags & VM_ALLOC:
        array = ((area.size - m.PAGE_SIZE) >> m.PAGE_SHIFT) * m.vm.ptr_size
        if array > m.PAGE_SIZE:
            vstart, vend = vmalloc_bounds(m)
            sub, need = _reserve(m, array, VM_ALLOC, vstart, vend, caller + " page array")
            if not sub:
                _release(m, made)
                return [], need
            made += sub
    return made, 0


def _reserve_sequence(m: Machine, sizes: Sequence[int], kind: str | Sequence[str]
                      ) -> tuple[list[FitAnswer], list[vm_struct]]:
    """Reserve ``sizes`` one after the other with the machine's allocator; nothing is undone.
    ``kind`` is every request's, or one kind per request (a mixed sequence)."""
    kinds = [kind] * len(sizes) if isinstance(kind, str) else list(kind)
    answers: list[FitAnswer] = []
    made: list[vm_struct] = []
    pages_left = m.phys.nr_free()
    for step, (asked, kind) in enumerate(zip(sizes, kinds), start=1):
        start, end, flags = _kind_range(m, kind)
        size = m.PAGE_ALIGN(asked + _BPF_EXTRA) if kind == "bpf" and asked > 0 else asked
        need = m.PAGE_ALIGN(size) + m.PAGE_SIZE
        align = m.ioremap_align(size) if flags & VM_IOREMAP else m.PAGE_SIZE
        before = _free_blocks(m, start, end)
        stats = hole_stats(before)
        areas: list[vm_struct] = []
        failed = need
        if size > 0:
            areas, failed = _reserve(m, size, flags, start, end, f"pyvmalloc fits #{step}")
        npages = m.PAGE_ALIGN(size) >> m.PAGE_SHIFT
        pages_ok = kind == "ioremap" or npages <= pages_left
        if areas:
            made += areas
            addr = areas[0].addr
            hole = next((s for a, s in before if a <= addr < a + s), 0)
            reason = (f"at 0x{addr:x}, the lowest place that holds {_need(need, m.PAGE_SIZE)}, "
                      f"in a hole of {exact_bytes(hole)}")
            if len(areas) > 1:
                reason += (f"; its page array (vmalloc'ed, VM_VPAGES) at 0x{areas[1].addr:x}")
            if not pages_ok:
                reason += (f"; but only {pages_left} pages of RAM are free: vmalloc would fail "
                           f"for lack of pages")
            if kind != "ioremap" and pages_ok:
                pages_left -= npages
        elif size <= 0:
            reason = "size 0: the kernel returns NULL"
        else:
            # A failed search may have purged lazily freed areas first: judge what is left now.
            vstart, vend = vmalloc_bounds(m)
            if failed != need:
                reason = ("the area fits, but its page array (vmalloc'ed too, VM_VPAGES) does "
                          "not: " + _why_not(failed, m.PAGE_SIZE, m.PAGE_SIZE,
                                             _free_blocks(m, vstart, vend)))
            else:
                reason = _why_not(need, m.PAGE_SIZE, align, _free_blocks(m, start, end))
        if size != asked:
            reason += (f" (a BPF image of {exact_bytes(asked)} takes {exact_bytes(size)}: "
                       f"round_up(proglen + header + 128, PAGE_SIZE), bpf_jit_binary_alloc)")
        answers.append(FitAnswer(step=step, size=asked, reserved=need if size > 0 else 0,
                                 ok=bool(areas), address=areas[0].addr if areas else None,
                                 reason=reason, largest_hole=stats.largest, total_free=stats.total,
                                 holes=stats.count, pages_ok=pages_ok))
    return answers, made


def fits(machine: Machine, sizes: Sequence[int | str], kind: str = "vmalloc") -> list[FitAnswer]:
    """Would each of ``sizes`` get address space now, where, and if not why.

    The requests are evaluated as a sequence: each one after the ones before it succeeded (as
    if the program made them in that order), with the machine's own allocator and the kernel's
    rules (page rounding, guard page, lowest-address fit, a purge of lazily freed areas before
    giving up; ``kind="ioremap"`` with its alignment, ``"module"`` in the module area, ``"bpf"``
    a JIT image of that program size where bpf_jit_binary_alloc puts it).
    Afterwards every reservation is released and lazily freed areas that a failed search purged
    are put back, so the machine's areas are as before (counters and the kernel's warning for a
    failed request in dmesg remain, as they would).  Only address space is taken: ``pages_ok``
    tells whether free RAM would cover the pages as well.
    """
    return fits_requests(machine, [(kind, n) for n in parse_sizes(sizes)])


def fits_requests(machine: Machine, requests: Sequence[tuple[str, int]]) -> list[FitAnswer]:
    """:func:`fits` of ``(kind, bytes)`` requests of any kinds, as one sequence: each request
    after every one before it, of its kind or another (an ioremap takes vmalloc space too)."""
    m = machine
    made: list[vm_struct] = []
    with m.lazy_areas_kept():
        try:
            answers, made = _reserve_sequence(m, [n for _, n in requests], [k for k, _ in requests])
        finally:
            _release(m, made)
    return answers


# ---- plan ---------------------------------------------------------------------------------------
def _busy_free(m: Machine) -> tuple[int, int, int]:
    """(free bytes, range size, largest hole) of [VMALLOC_START, VMALLOC_END): every busy block
    (areas, guard pages, vm_map_ram, unpurged) counts as taken."""
    start, end = vmalloc_bounds(m)
    stats = hole_stats(_free_blocks(m, start, end))
    return stats.total, end - start, stats.largest


def _keep_rule(old: tuple[int, int], new: tuple[int, int]) -> Callable[[VmallocinfoLine], bool]:
    """PLAN_RULES as a predicate: which lines keep their address on a machine with range ``new``."""
    def keep(ln: VmallocinfoLine) -> bool:
        if not (old[0] <= ln.start and ln.end <= old[1]):
            return True
        if is_static_area(ln):
            return True
        return new[0] <= ln.start and ln.end <= new[1]
    return keep


def _trial(m: Machine, snapshot: VmallocinfoSnapshot, sizes: Sequence[int], headroom: float,
           param: str | None, old: tuple[int, int]) -> Trial:
    new = vmalloc_bounds(m)
    report = replay_snapshot(m, snapshot.lines, snapshot.source, keep=_keep_rule(old, new))
    answers, _made = _reserve_sequence(m, sizes, "vmalloc")
    free, span, largest = _busy_free(m)
    problems = []
    if report.unplaced:
        problems.append(f"{len(report.unplaced)} of the snapshot's areas fit nowhere "
                        f"(first: line {report.unplaced[0][0]})")
    failed = [a for a in answers if not a.ok]
    if failed:
        problems.append(f"the {exact_bytes(failed[0].size)} request #{failed[0].step} fails: "
                        f"{failed[0].reason}")
    if free < headroom * span:
        problems.append(f"{exact_bytes(free)} free is {100 * free / span:.1f}% of the "
                        f"{exact_bytes(span)} area, below the {100 * headroom:g}% headroom")
    ok = not problems
    why = "; ".join(problems) if problems else (
        f"everything fits; {exact_bytes(free)} free = {100 * free / span:.1f}% of the "
        f"{exact_bytes(span)} area (largest hole {exact_bytes(largest)})")
    return Trial(param=param, vmalloc_start=new[0], vmalloc_end=new[1], ok=ok, why=why, free=free,
                 area_size=span, largest_hole=largest,
                 kept=report.placed - len(report.relocated), relocated=len(report.relocated),
                 unplaced=len(report.unplaced), fits=tuple(answers))


def _without_vmalloc(cmdline: str) -> list[str]:
    return [tok for tok in cmdline.split() if not tok.startswith("vmalloc=")]


def _param(value: int) -> str:
    return f"vmalloc={format_size(value)}"


def _candidates(layout: SnapshotLayout, base: list[str], step: int) -> list[int]:
    """Every ``vmalloc=`` multiple of ``step`` the layout's kernel takes as given (no clamping,
    no refusal), in increasing order."""
    prof = layout.profile
    out = []
    for k in range(1, ((1 << prof.bits) - prof.page_offset) // step + 1):
        value = k * step
        try:
            lay = boot_layout(prof, layout.ram, " ".join(base + [_param(value)]),
                              kernel=layout.kernel)
        except ConfigError:
            continue
        # ARM clamps the size (vmalloc_size); i386 takes memparse's value (vmalloc).
        used = lay.params.get("vmalloc_size", lay.params.get("vmalloc"))
        if used == value:
            out.append(value)
    return out


def plan(snapshot: str | VmallocinfoSnapshot, sizes: Sequence[int | str] = (),
         headroom: float | str = 0.0, arch: str | None = None, cmdline: str = "",
         meminfo: str | Mapping[str, int] | None = None, *, ram: int | str | None = None,
         source: str = "<vmallocinfo>",
         kernel: str | KernelVersion | None = None) -> PlanAnswer:
    """The smallest ``vmalloc=`` at which the snapshot plus ``sizes`` fit with ``headroom`` free.

    ``kernel`` (default ``versions.DEFAULT_KERNEL``) is the device's Linux version: every machine
    booted here runs it, so ``vmalloc=`` means what it meant there (ARM before 5.15 gave an area
    up to 8 MiB smaller than asked, ``arm_vmalloc_size_uniform``).  When the snapshot's own
    layout already meets the requirement the answer says so (``needed`` False, no value).
    Candidates are multiples of the step at which the kernel's layout changes (ARM: VMALLOC_OFFSET,
    8 MiB: ``VMALLOC_START`` is rounded to it, so ``vmalloc=8kM`` gives an area of exactly that
    size from 5.15 and 8 MiB less before; i386: 1 MiB, as memparse takes the value as it is);
    each is checked by booting the arch with the snapshot's RAM and VMALLOC_END, replaying the
    snapshot by :data:`PLAN_RULES` and reserving the sizes.  The search bisects between a failing and a passing value, so the answer
    passes and one step below fails (both kept in the answer).  64-bit arches have no
    ``vmalloc=``: the answer says so, with the current layout's figures.  Hashed snapshots get an
    answer that says their addresses cannot be trusted.  ConfigError for an arch that cannot be
    told or has no profile, bad sizes or headroom.
    """
    snap = read_snapshot(snapshot, source)
    byte_sizes = tuple(parse_sizes(sizes))
    room = parse_headroom(headroom)
    rules = PLAN_RULES
    if not snap.addresses_trusted:
        return PlanAnswer(arch=arch, trusted=False, sizes=byte_sizes, headroom=room, value=None,
                          param=None, ok=False,
                          reason=f"addresses cannot be trusted ({snap.address_reason}): no plan "
                                 f"can be made from them")
    fields = read_meminfo(meminfo)
    layout = snapshot_layout(snap, fields, arch, cmdline, ram=ram, kernel=kernel)
    kver = layout.kernel
    cur_m = boot_snapshot_machine(Machine, layout)
    old = vmalloc_bounds(cur_m)
    current = _trial(cur_m, snap, byte_sizes, room, None, old)
    prof = layout.profile
    if not prof.accepts_vmalloc_param:
        reason = (f"{layout.arch} has no vmalloc= boot parameter (the kernel passes it to user "
                  f"space as unknown): the vmalloc area is fixed at "
                  f"{exact_bytes(current.area_size)}. With the snapshot's layout: "
                  f"{current.why}")
        return PlanAnswer(arch=layout.arch, trusted=True, sizes=byte_sizes, headroom=room,
                          value=None, param=None, ok=current.ok, reason=reason, current=current,
                          assumptions=rules, needed=False, kernel=str(kver))
    if current.ok:
        given = [w for w in layout.cmdline.split() if w.startswith("vmalloc=")]
        keep = (f" (keep the device's {given[-1]})" if given else
                " (keep the command line the device booted with)")
        reason = (f"no vmalloc= needed{keep}: the snapshot's own layout 0x{current.vmalloc_start:x}-"
                  f"0x{current.vmalloc_end:x} ({exact_bytes(current.area_size)}) already "
                  f"meets it: {current.why}")
        return PlanAnswer(arch=layout.arch, trusted=True, sizes=byte_sizes, headroom=room,
                          value=None, param=None, ok=True, reason=reason, current=current,
                          assumptions=rules, needed=False, kernel=str(kver))

    step = prof.vmalloc_offset if prof.name == "arm" else MiB
    base = _without_vmalloc(layout.cmdline)
    values = _candidates(layout, base, step)
    if not values:
        raise ConfigError(f"{layout.arch}: no vmalloc= value boots with RAM "
                          f"{format_size(layout.ram)}")
    trials: dict[int, Trial] = {}

    def run(value: int) -> Trial:
        if value not in trials:
            m = Machine(arch=prof, ram=layout.ram, nodes=layout.nodes, cpus=layout.cpus or 1,
                        cmdline=" ".join(base + [_param(value)]), kernel=kver)
            trials[value] = _trial(m, snap, byte_sizes, room, _param(value), old)
        return trials[value]

    notes = [f"each vmalloc= is booted as Linux {kver} computes it on {layout.arch} "
             f"({prof.kernel_version}) with RAM {format_size(layout.ram)} ({layout.ram_how}) "
             f"and VMALLOC_END 0x{vmalloc_end_for(prof, kver):x}"]
    top = run(values[-1])
    if not top.ok:
        return PlanAnswer(arch=layout.arch, trusted=True, sizes=byte_sizes, headroom=room,
                          value=None, param=None, ok=False,
                          reason=f"even {top.param}, the largest the kernel takes with "
                                 f"{format_size(layout.ram)} of RAM, is not enough: {top.why}",
                          step=step, current=current, planned=top, assumptions=rules,
                          notes=tuple(notes), kernel=str(kver))
    lo, hi = -1, len(values) - 1          # values[lo] fails (or is below the first), values[hi] passes
    if run(values[0]).ok:
        hi = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(values[mid]).ok:
            hi = mid
        else:
            lo = mid
    planned = trials[values[hi]]
    smaller = trials[values[lo]] if lo >= 0 else None
    value = values[hi]
    if hi == 0:
        same = [v for v in values
                if boot_layout(prof, layout.ram, " ".join(base + [_param(v)]),
                               kernel=kver).vmalloc_start
                == planned.vmalloc_start]
        notes.append(f"{_param(value)} is the smallest value the kernel takes; with "
                     f"{format_size(layout.ram)} of RAM every value up to "
                     f"{format_size(same[-1])} gives the same vmalloc area (lowmem is bounded by "
                     f"RAM, not by vmalloc=)")
    else:
        notes.append(f"found by bisection in steps of {format_size(step)}: {_param(value)} "
                     f"passes, {_param(values[lo])} fails")
    reason = (f"{_param(value)}: vmalloc area 0x{planned.vmalloc_start:x}-"
              f"0x{planned.vmalloc_end:x} ({exact_bytes(planned.area_size)}); {planned.why}")
    return PlanAnswer(arch=layout.arch, trusted=True, sizes=byte_sizes, headroom=room, value=value,
                      param=_param(value), ok=True, reason=reason, step=step, current=current,
                      planned=planned, smaller=smaller, assumptions=rules, notes=tuple(notes),
                      kernel=str(kver))


# ---- answers per kernel ------------------------------------------------------------------------
# The rules of versions.CHANGES that change a what-if answer, per arch family: the vmalloc range
# and vmalloc= arithmetic, and the allocator that places the areas.
_ALLOCATOR_RULES = ("vmap_area_rbtree", "free_vmap_cache", "kva_allocator")
_LAYOUT_RULES = {
    "arm": ("arm_vmalloc_end_ff800000", "arm_vmalloc_size_uniform"),
    "i386": ("x86_32_vmalloc_start_unrounded", "x86_32_vmalloc_param_adds_offset",
             "x86_32_pkmap_below_cpu_entry_area"),
    # arch.boot.arm64_layout: every rule moves the vmalloc, module or BPF JIT range.
    "arm64": ("arm64_vmemmap_size", "arm64_kimage_in_vmalloc", "arm64_vmemmap_below_linear",
              "arm64_bpf_jit_region", "arm64_flip_va", "arm64_vmalloc_end_below_vmemmap",
              "arm64_modules_2g"),
}
# The layout rules a ``fits`` answer depends on (the range's ends; not vmalloc= arithmetic).
_FITS_RULES = frozenset({"arm_vmalloc_end_ff800000", "x86_32_pkmap_below_cpu_entry_area"}
                        | set(_LAYOUT_RULES["arm64"]))


def version_rules(arch: str | None, what: str = "plan") -> tuple[str, ...]:
    """The names of the rules (versions.CHANGES) a ``plan`` (or ``fits``) answer on ``arch``
    depends on: ``fits`` only on the allocator and VMALLOC_END, ``plan`` on the layout too."""
    family = "i386" if (arch or "").startswith("i386") else (arch or "")
    layout = _LAYOUT_RULES.get(family, ())
    if what == "fits":
        layout = tuple(r for r in layout if r in _FITS_RULES)
    return _ALLOCATOR_RULES + layout


def rules_between(before: KernelRange, after: KernelRange, names: Sequence[str]) -> list[str]:
    """The rules among ``names`` that start or end where ``after`` begins (``before`` ends), each
    as "commit, Linux release" text: why the answers on the two sides differ."""
    out = []
    for name in names:
        change = CHANGES[name]
        for edge in (change.since, change.until):
            if edge is not None and parse_version(edge).series() == after.lo.series():
                out.append(f"{change.commit}, Linux {edge}")
    return out


def _same(a: PlanAnswer, b: PlanAnswer) -> bool:
    return (a.param, a.ok, a.needed) == (b.param, b.ok, b.needed) and (
        (a.planned is None) == (b.planned is None)) and (
        a.planned is None or b.planned is None
        or (a.planned.vmalloc_start, a.planned.vmalloc_end)
        == (b.planned.vmalloc_start, b.planned.vmalloc_end))


def plan_by_kernel(snapshot: str | VmallocinfoSnapshot, sizes: Sequence[int | str] = (),
                   headroom: float | str = 0.0, arch: str | None = None, cmdline: str = "",
                   meminfo: str | Mapping[str, int] | None = None, *,
                   kernels: KernelRange, ram: int | str | None = None,
                   source: str = "<vmallocinfo>") -> list[tuple[KernelRange, PlanAnswer]]:
    """:func:`plan` under every rule set ``kernels`` allows: the range is cut where a rule the
    answer depends on changes (:func:`version_rules`), each part planned with its oldest kernel,
    and neighbouring parts with the same answer merged.  One element: the answer does not depend
    on which of those kernels the device runs."""
    snap = read_snapshot(snapshot, source)
    fields = read_meminfo(meminfo)
    if arch is None and snap.addresses_trusted and snap.lines:
        try:
            arch = resolve_arch(snap, None)[0]
        except ConfigError:
            arch = None
    out: list[tuple[KernelRange, PlanAnswer]] = []
    for part in kernels.split(version_rules(arch)):
        answer = plan(snap, sizes, headroom, arch, cmdline, fields, ram=ram, kernel=part.lo)
        if out and _same(out[-1][1], answer):
            prev, first = out[-1]
            out[-1] = (KernelRange(prev.lo, part.hi), first)
        else:
            out.append((part, answer))
    return out
