"""What a vmalloc failure in a kernel log means: which range, whether ``vmalloc=`` helps, what to do.

``explain(log, ...)`` takes the facts :func:`pyvmalloc.formats.kernel_log.parse_kernel_log`
found and answers each failure, verdict first:

- **the range** the request was for: the vmalloc area, the module area (``module_alloc``,
  ``execmem_alloc``: ARM, arm64 and x86_64 load modules there; i386 loads them in the vmalloc
  area), the BPF JIT (``bpf_jit_binary_alloc``: module_alloc's range; arm64's own BPF JIT
  region 5.0-5.15 and vmalloc area from 5.16; 6.10+'s EXECMEM_BPF), a
  restricted range (6.11+'s message names it), told by the call trace, the message, the task
  (insmod, modprobe, kmodloader), or words of the paste around it — each clue said;
- **the size** as printed (``vmap allocation for size N``: N is PAGE_ALIGN(size) plus the
  guard page) and the size asked (``vmalloc: allocation failure: M bytes``);
- **whether it could ever fit**: a zero size, or one larger than the whole range (for the
  vmalloc area on 32-bit: the largest the kernel's ``vmalloc=`` gives) means the size is wrong;
- **whether ``vmalloc=`` helps**: only on 32-bit kernels (i386, ARM) and only for the vmalloc
  area (and i386's modules, which live there); never for the module area on ARM/arm64, never on
  64-bit, never for a failure to get pages;
- **what to do**: a ``vmalloc=`` computed for that kernel version and RAM, then proven by
  booting the model with it, filling as much of the area as was full on the device and placing
  the request (:func:`pyvmalloc.analysis.plan.fits`); with the device's ``/proc/vmallocinfo``,
  the planner's answer (:func:`pyvmalloc.analysis.plan.plan`) instead; for the module area, the
  module options; for the JIT, ``net.core.bpf_jit_limit``; for failures repeated over a long
  uptime, a leak to watch;
- **how sure**: ``high`` when the trace or the message names the range, ``medium`` when the
  task, the paste's words or a guessed arch do, ``low`` when nothing does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyvmalloc.arch import PROFILES, arch_family, boot_layout, get_profile
from pyvmalloc.errors import ConfigError, PyvmallocError
from pyvmalloc.formats._text import lines
from pyvmalloc.formats.kernel_log import KernelLogFacts, LogFailure, strip_prefix
from pyvmalloc.formats.vmallocinfo import VmallocinfoSnapshot
from pyvmalloc.kernel.machine import Machine
from pyvmalloc.sizes import exact_bytes, format_size
from pyvmalloc.snapshot.layout import KNOWN_ARCHES, LAYOUT_ONLY_ARCHES
from pyvmalloc.versions import CHANGES, KernelVersion, has, parse_version
from pyvmalloc.vmalloc.vm_struct import VM_ALLOC

__all__ = ["RANGES", "Explanation", "MachineFacts", "explain", "format_explanations",
           "machine_facts", "to_json"]

MiB = 1 << 20
PAGE = 4096
RANGES = ("vmalloc", "module", "bpf", "restricted", "other")

# Call-trace functions that say which allocator asked.
_MODULE_FRAMES = ("module_alloc", "load_module", "move_module", "layout_and_allocate",
                  "execmem_alloc", "sys_init_module", "SyS_init_module", "__do_sys_init_module",
                  "__do_sys_finit_module", "sys_finit_module", "SyS_finit_module",
                  "module_memory_alloc", "alloc_module_mem")
_BPF_FRAMES = ("bpf_jit_binary_alloc", "bpf_jit_alloc_exec", "bpf_int_jit_compile",
               "bpf_prog_pack_alloc", "bpf_jit_binary_pack_alloc")
_IOREMAP_FRAMES = ("ioremap", "__ioremap", "__ioremap_caller", "ioremap_prot", "ioremap_wc",
                   "ioremap_cache", "devm_ioremap", "devm_ioremap_resource", "pci_ecam_create",
                   "acpi_os_map_iomem", "acpi_os_map_memory", "memremap", "__arm_ioremap_caller",
                   "__arm_ioremap_pfn_caller", "generic_ioremap_prot", "ioremap_page_range")
_LOADER_TASKS = ("insmod", "modprobe", "kmodloader", "rmmod", "systemd-modules-load")
_MODULE_WORDS = re.compile(r"\b(insmod|modprobe|kmodloader|\w+\.ko)\b|loading (?:the |a |my )?"
                           r"(?:kernel )?module", re.IGNORECASE)
# In the user's own words (a line that is not a kernel message): "the module", "a module".
_PROSE_MODULE = re.compile(r"\b(?:the|a|my|this|latest|kernel) (?:\w+ )?modules?\b", re.IGNORECASE)
_LOG_LINE = re.compile(r"^\s*(?:\[\s*\d+\.\d+\]|<\d>|\w{3} [ \d]\d \d\d:|\[\w{3} \w{3} |"
                       r"kern\s*:\s*\w+\s*:\s)")


@dataclass(frozen=True)
class MachineFacts:
    """The machine a log came from, as far as the log and the options tell; each ``*_how``
    says where the value came from (None: not known)."""

    arch: str | None
    arch_how: str
    kernel: KernelVersion | None
    kernel_how: str
    ram: int | None
    ram_how: str
    cmdline: str
    cmdline_how: str


@dataclass(frozen=True)
class Explanation:
    """The answer for one failure (see the module docstring); ``verdict`` is one line."""

    failure: LogFailure
    line: str                  # FILE:LINE
    size: int | None           # as printed: N (guard included) or M (asked)
    asked: int | None          # the caller's size, when known
    range: str                 # one of RANGES
    request: str               # vmalloc, module_alloc, bpf_jit, ioremap, vmap, unknown
    range_bounds: tuple[int, int] | None
    fits_ever: bool | None
    vmalloc_param_helps: bool
    cmdline: str | None
    verdict: str
    advice: tuple[str, ...]
    confidence: str
    clues: tuple[str, ...]
    proof: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    # False when whether vmalloc= helps turns on what the log does not tell (32 or 64 bits):
    # ``vmalloc_param_helps`` is then False only for want of proof.
    helps_known: bool = True


# ---- the machine ----------------------------------------------------------------------------
_MACHINE_WORDS = {"armv": "arm", "aarch64": "arm64", "arm64": "arm64", "i386": "i386",
                  "i486": "i386", "i586": "i386", "i686": "i386", "x86_64": "x86_64"}


# Distribution and vendor kernel release suffixes that name the arch ("4.19.0-5-686-pae",
# "5.10.0-8-amd64", "5.10.17-v7l+" of the Raspberry Pi kernels, Debian's "-armmp").
_RELEASE_ARCH = (("686-pae", "i386-pae"), ("-686", "i386"), ("-486", "i386"), ("amd64", "x86_64"),
                 ("x86_64", "x86_64"), ("aarch64", "arm64"), ("-arm64", "arm64"), ("-v8", "arm64"),
                 ("armmp", "arm"), ("-v7", "arm"), ("armv7", "arm"), ("i686", "i386"))
_ARM_UNWIND = re.compile(r"^\s*(?:\S+\s+)?[A-Za-z_][\w.]* from [A-Za-z_][\w.]*\+0x[0-9a-f]+/0x")


def _arch_from_log(log: KernelLogFacts, text_lines: Sequence[str]) -> tuple[str | None, str]:
    if log.machine:
        for word, arch in _MACHINE_WORDS.items():
            if log.machine.startswith(word):
                return arch, f"the log's `uname -a`: {log.machine}"
    for word, arch in _RELEASE_ARCH:
        if log.version and word in log.version:
            return arch, f"the kernel release {log.version} ({word!r})"
    body = [strip_prefix(ln) for ln in text_lines]
    if any(ln.lstrip().startswith("EIP:") for ln in body):
        return "i386", "the call trace's i386 format (EIP)"
    arm_style = any(") from [<" in ln for ln in body)
    if log.trace_bits == 32 and arm_style:
        return "arm", "the call trace's ARM unwinder format ('(func) from [<...>]'), 32-bit addresses"
    if any(_ARM_UNWIND.match(ln) for ln in body):
        return "arm", "the call trace's ARM unwinder format of 5.18+ ('func from caller+0x...')"
    if any("Function entered at [<" in ln for ln in body):
        return "arm", "the call trace's old ARM format ('Function entered at [<...>]')"
    if any("Call trace:" in ln for ln in body) or (
            log.trace_bits == 64 and any("dump_backtrace" in ln for ln in body)):
        return "arm64", "the call trace's arm64 format ('Call trace:', dump_backtrace)"
    if any(ln.lstrip().startswith(("RIP:", "RIP ")) or "Call Trace:" in ln for ln in body) \
            and log.trace_bits != 32:
        return "x86_64", "the call trace's x86_64 format (RIP, 'Call Trace:')"
    if log.highmem_pages and log.ram and log.ram >= 2 << 30:
        return "i386", ("guessed: a 32-bit kernel with highmem (pages HighMem) and "
                        f"{format_size(log.ram)} of RAM, no ARM trace; give --arch if not")
    return None, "not told by the log: give --arch"


def machine_facts(log: KernelLogFacts, text_lines: Sequence[str], *, arch: str | None = None,
                  kernel: str | None = None, ram: int | None = None,
                  meminfo: Mapping[str, int] | None = None, cmdline: str | None = None
                  ) -> MachineFacts:
    """The arch, kernel, RAM and command line to reason with: the options first, then the log.

    ConfigError for an unknown ``arch`` (the message lists the known ones) or ``kernel``."""
    a: str | None
    if arch is not None:
        if arch not in KNOWN_ARCHES:
            raise ConfigError(f"--arch {arch}: unknown arch; known: {', '.join(KNOWN_ARCHES)}")
        a, a_how = arch, f"given: --arch {arch}"
    else:
        a, a_how = _arch_from_log(log, text_lines)
    k: KernelVersion | None = None
    if kernel is not None:
        k, k_how = parse_version(kernel), f"given: --kernel {kernel}"
    elif log.version:
        try:
            k = parse_version(log.version)
            k_how = f"{log.version_where}: Linux {log.version}"
        except ConfigError as exc:
            k_how = f"{log.version_where}: Linux {log.version}, which the model cannot use ({exc})"
    else:
        k, k_how = _kernel_from_messages(log)
    r, r_how = ram, "given: --ram"
    if r is None and meminfo and "MemTotal" in meminfo:
        r, r_how = meminfo["MemTotal"], "--meminfo MemTotal"
    if r is None and log.ram is not None:
        r, r_how = log.ram, log.ram_how or "the log"
    if r is None:
        r_how = "not told: give --ram"
    c, c_how = cmdline, "given: --cmdline"
    if c is None:
        c, c_how = (log.cmdline, "the log's Kernel command line") if log.cmdline else \
            ("", "not told (assumed: no vmalloc=)")
    return MachineFacts(a, a_how, k, k_how, r, r_how, c, c_how)


# The message forms that date a kernel (versions.CHANGES): each failure kind, the rule whose
# release range printed it.
_KIND_RULES = {"vmap": "vmap_fail_message", "restricted": "vmap_range_restricted_message",
               "vm_struct": "vmalloc_error_message", "pages": "vmalloc_error_message",
               "execmem": "execmem"}


def _kernel_from_messages(log: KernelLogFacts) -> tuple[KernelVersion | None, str]:
    """The oldest kernel whose messages look like the log's: the failure lines' forms date it
    (``versions.CHANGES``); None when they do not."""
    lo, hi, why = parse_version("2.6.22"), None, []
    for f in log.failures:
        for kind in f.kinds:
            rule = _KIND_RULES.get(kind)
            if kind == "alloc":
                # warn_alloc_failed's two lines (2.6.38-4.9) or warn_alloc's one (4.10+).
                rule = "warn_alloc" if ", mode:" in f.text or (f.asked is not None and f.comm) \
                    else "vmalloc_alloc_failure_message"
            if kind == "old":
                hi = parse_version(CHANGES["vmap_fail_message"].since)
                why.append("'out of vmalloc space' (before 2.6.28)")
                continue
            if rule is None:
                continue
            c = CHANGES[rule]
            since = parse_version(c.since)
            if since.series() > lo.series():
                lo = since
            if c.until is not None and (hi is None or parse_version(c.until).series() < hi.series()):
                hi = parse_version(c.until)
            why.append(f"{kind!r} message (Linux {c.since}{'-' + c.until if c.until else '+'})")
    if not why:
        return None, "not told by the log: give --kernel (the model's default, Linux 6.1, is used)"
    span = f"{lo}" + (f" up to before {hi}" if hi else " or later")
    return lo, (f"not told; the messages' form dates it to Linux {span} "
                f"({', '.join(dict.fromkeys(why))}): the model used Linux {lo}; give --kernel")


# ---- one failure ----------------------------------------------------------------------------
def _module_context(failure: LogFailure, text_lines: Sequence[str]) -> str | None:
    """A word of the paste near the failure that says a module was being loaded."""
    lo = max(0, failure.lineno - 8)
    for i in range(lo, min(len(text_lines), failure.lineno + 3)):
        m = _MODULE_WORDS.search(text_lines[i])
        if m is None and not _LOG_LINE.match(text_lines[i]):
            m = _PROSE_MODULE.search(text_lines[i])
        if m:
            return f"line {i + 1} of the paste mentions {m.group(0)!r}"
    return None


def _classify(f: LogFailure, text_lines: Sequence[str]
              ) -> tuple[str, list[str], bool]:
    """(request, clues, strong): what asked, by which evidence, and whether that evidence is
    the kernel's own (trace or message) rather than a guess."""
    trace = set(f.trace)
    if f.kind == "pages":
        return "vmalloc", [f"the message: {f.text[:60]!r} (pages, not address space)"], True
    if trace & set(_BPF_FRAMES):
        fn = next(x for x in f.trace if x in _BPF_FRAMES)
        return "bpf_jit", [f"the call trace: {fn}"], True
    if trace & set(_MODULE_FRAMES) or f.kind == "execmem":
        fn = next((x for x in f.trace if x in _MODULE_FRAMES), "execmem")
        return "module_alloc", [f"the call trace: {fn}" if f.trace else f"the message {f.text!r}"], True
    if trace & set(_IOREMAP_FRAMES) or f.kind == "ioremap":
        fn = next((x for x in f.trace if x in _IOREMAP_FRAMES), "ioremap")
        return "ioremap", [f"the call trace: {fn}" if fn != "ioremap" or f.trace else
                           f"the message {f.text[:60]!r}"], True
    if f.comm in _LOADER_TASKS:
        return "module_alloc", [f"the task {f.comm!r} loads modules"], False
    ctx = _module_context(f, text_lines)
    if ctx is not None:
        return "module_alloc", [ctx], False
    if f.trace and ("__vmalloc" in trace or "vmalloc" in trace or "__vmalloc_node" in trace):
        return "vmalloc", ["the call trace: vmalloc"], True
    return "unknown", ["no call trace names the caller"], False


def _layout(arch: str, ram: int | None, kernel: KernelVersion | None, cmdline: str) -> Any:
    prof = get_profile(arch)
    r = ram if ram is not None else min(max(prof.min_ram, 4 << 30), prof.max_ram)
    r = min(max(r, prof.min_ram), prof.max_ram)
    base = " ".join(w for w in cmdline.split() if w.split("=")[0] in ("vmalloc", "mem"))
    return boot_layout(prof, r, base, kernel=kernel)


def _largest_vmalloc(arch: str, ram: int | None, kernel: KernelVersion | None, cmdline: str,
                     step: int) -> int:
    """The largest vmalloc area a ``vmalloc=`` gives on this 32-bit machine."""
    prof = get_profile(arch)
    r = ram if ram is not None else min(max(prof.min_ram, 4 << 30), prof.max_ram)
    base = [w for w in cmdline.split() if w.startswith("mem=")]
    def area(value: int) -> int | None:
        try:
            lay = boot_layout(prof, r, " ".join(base + [f"vmalloc={value >> 20}M"]), kernel=kernel)
        except ConfigError:
            return None
        return int(lay.vmalloc_end - lay.vmalloc_start)

    best, good, value = 0, 0, step
    while value < 4096 * MiB:         # coarse steps first, then every step past the last good
        got = area(value)
        if got is None:
            break
        best, good, value = max(best, got), value, value + 16 * step
    for fine in range(good + step, min(value, 4096 * MiB), step):
        got = area(fine)
        if got is None:
            break
        best = max(best, got)
    return best


def _prove(arch: str, ram: int | None, kernel: KernelVersion | None, cmdline: str,
           full: int, asked: int) -> tuple[str | None, str]:
    """The smallest ``vmalloc=`` (in the arch's steps) whose area holds what was full on the
    device (``full`` bytes, the device's whole area) plus the request, proven on a booted model:
    ``(param, how)``; None when no value the kernel takes is enough."""
    from pyvmalloc.analysis.plan import fits

    prof = get_profile(arch)
    r = ram if ram is not None else min(max(prof.min_ram, 4 << 30), prof.max_ram)
    step = prof.vmalloc_offset if prof.name == "arm" else MiB
    base = [w for w in cmdline.split() if w.startswith("mem=")]
    need = full + ((asked + PAGE - 1) & -PAGE) + PAGE
    value = (need + step - 1) // step * step
    while value < 4096 * MiB:
        text = " ".join(base + [f"vmalloc={value >> 20}M"])
        try:
            lay = boot_layout(prof, r, text, kernel=kernel)
        except ConfigError:
            return None, (f"no vmalloc= the kernel takes with {format_size(r)} of RAM gives "
                          f"{exact_bytes(need)}")
        used = lay.params.get("vmalloc_size", lay.params.get("vmalloc"))
        if used != value:        # clamped: the kernel would not give more
            return None, (f"the kernel clamps vmalloc= below {format_size(value)} with "
                          f"{format_size(r)} of RAM: the request cannot be added to a full area")
        if lay.vmalloc_end - lay.vmalloc_start >= need:
            m = Machine(arch=prof, ram=r, cmdline=text, kernel=kernel)
            with m.vmlist_lock.read():
                busy = sum(va.va_end - va.va_start for va in m.for_each_vmap_area()
                           if m.VMALLOC_START <= va.va_start < m.VMALLOC_END)
            filler = max(full - busy - PAGE, 0)
            if filler:
                # What the device had in its area when the request failed (the machine is
                # thrown away afterwards).
                m.get_vm_area_node_range(filler, VM_ALLOC, m.VMALLOC_START, m.VMALLOC_END,
                                         caller="the device's full area")
            answer = fits(m, [asked])[0]
            if answer.ok:
                return (f"vmalloc={value >> 20}M",
                        f"booted Linux {m.kernel} {arch} with {format_size(r)} and "
                        f"vmalloc={value >> 20}M: area 0x{m.VMALLOC_START:x}-0x{m.VMALLOC_END:x} "
                        f"({exact_bytes(m.VMALLOC_END - m.VMALLOC_START)}); with "
                        f"{exact_bytes(full)} taken (the device's whole area, full when it "
                        f"failed) the request {answer.reason}")
        value += step
    return None, "no vmalloc= value below 4 GiB is enough"


def _uptime_days(f: LogFailure, text_lines: Sequence[str]) -> float | None:
    if not 0 < f.lineno <= len(text_lines):
        return None
    m = re.search(r"\[\s*(\d+)\.\d+\]", text_lines[f.lineno - 1])
    return int(m.group(1)) / 86400 if m else None


def _explain_one(f: LogFailure, mf: MachineFacts, log: KernelLogFacts,
                 text_lines: Sequence[str], snapshot: VmallocinfoSnapshot | None,
                 meminfo: Mapping[str, int] | None) -> Explanation:
    arch, kernel = mf.arch, mf.kernel
    request, clues, strong = _classify(f, text_lines)
    clues.append(f"arch {arch or 'unknown'} ({mf.arch_how})")
    notes: list[str] = []
    guard = f.kind in ("vmap", "restricted")
    asked = f.asked if f.asked is not None else (None if guard else f.size)
    if asked is None and guard and f.size is not None:
        asked = f.size - PAGE      # N counts one guard page; the caller asked at most N - 4096
    bits = 64 if arch in ("x86_64", "x86_64-la57", "arm64") else 32 if arch else None
    if bits is None and log.trace_bits:
        bits = log.trace_bits
    lay = None
    if arch is not None and arch not in LAYOUT_ONLY_ARCHES:
        try:
            lay = _layout(arch, mf.ram, kernel, mf.cmdline)
        except ConfigError as exc:
            notes.append(f"the layout could not be computed: {exc}")
    family = arch_family(arch or "")
    # Which range.
    if f.kind == "restricted" and f.range is not None:
        rng = "restricted"
        bounds: tuple[int, int] | None = f.range
        if lay is not None and f.range == (lay.vmalloc_start, lay.vmalloc_end):
            rng = "vmalloc"
        elif lay is not None and f.range == (lay.modules_start, lay.modules_end) \
                and lay.modules_start != lay.vmalloc_start:
            rng = "module"
        elif lay is not None and lay.bpf_jit_end > lay.bpf_jit_start \
                and f.range == (lay.bpf_jit_start, lay.bpf_jit_end):
            rng = "bpf"                  # arm64 5.0-5.15 BPF_JIT_REGION_START..END
        elif request in ("module_alloc", "bpf_jit"):
            rng = "module" if request == "module_alloc" else "bpf"
        elif f.range[1] - f.range[0] >= 16 << 30:
            # Only a 64-bit vmalloc area is that large (module areas are 2 GiB at most).
            rng = "vmalloc"
        elif f.range[0] >= 0xFFFFFFFF80000000 or (f.range[1] <= 0xC0000000 <= f.range[1] + (256 << 20)):
            # x86_64's module map above __START_KERNEL_map; a 32-bit range that ends at or
            # just below PAGE_OFFSET (ARM's, ppc32's module areas).
            rng = "module"
        clues.append(f"the message names the range 0x{f.range[0]:x} - 0x{f.range[1]:x}")
        strong = True
    elif request == "module_alloc":
        rng = "vmalloc" if family == "i386" else "module"
        bounds = None
    elif request == "bpf_jit":
        rng = "bpf"
        bounds = None
    else:
        rng = "vmalloc"
        bounds = None
    modules_in_vmalloc = family == "i386"
    if modules_in_vmalloc and rng == "vmalloc" and not strong:
        strong = True
        clues.append("on i386 modules, BPF images and ioremaps all come from the vmalloc area")
    # arm64's bpf_jit_alloc_exec (arch/arm64/net/bpf_jit_comp.c): module_alloc until 4.20, the
    # BPF JIT region 5.0-5.15 (arm64_bpf_jit_region), vmalloc() from 5.16 (and EXECMEM_BPF, the
    # vmalloc area, from 6.10); the layout is the log's kernel's (6.1 when none is known).
    arm64_bpf = None
    if family == "arm64" and rng == "bpf" and "module_alloc" not in f.trace:
        kv = lay.kernel if lay is not None else kernel
        if lay is not None and lay.bpf_jit_end > lay.bpf_jit_start:
            arm64_bpf = "region"
        elif kv is None or has(kv, "arm64_flip_va"):
            arm64_bpf = "vmalloc"
    in_vmalloc_area = rng == "vmalloc" or (rng == "bpf" and modules_in_vmalloc) or \
        arm64_bpf == "vmalloc"
    if lay is not None and bounds is None:
        bounds = (lay.vmalloc_start, lay.vmalloc_end) if in_vmalloc_area else \
            (lay.bpf_jit_start, lay.bpf_jit_end) if arm64_bpf == "region" else \
            (lay.modules_start, lay.modules_end)
    # Could it ever fit?
    whole = None
    if lay is not None:
        if in_vmalloc_area and bits == 32 and get_profile(arch or "arm").accepts_vmalloc_param:
            step = get_profile(arch or "arm").vmalloc_offset or MiB
            whole = _largest_vmalloc(arch or "arm", mf.ram, kernel, mf.cmdline, step)
        elif bounds is not None:
            whole = bounds[1] - bounds[0]
    elif f.kind == "restricted" and bounds is not None:
        # The message gives the range: no layout is needed to know the request is larger.
        whole = bounds[1] - bounds[0]
    # The span the request takes (__get_vm_area_node: PAGE_ALIGN(size) plus the guard page):
    # N as printed counts both already; a size asked (M bytes) gets them added.
    size_for_fit = None if f.size is None else f.size if guard else \
        ((f.size + PAGE - 1) & -PAGE) + PAGE
    fits_ever: bool | None
    if f.size == 0 or (asked == 0):
        fits_ever = False
    elif size_for_fit is not None and whole is not None:
        fits_ever = size_for_fit <= whole
    else:
        fits_ever = None
    # Does vmalloc= help?
    helps = bool(in_vmalloc_area and bits == 32 and f.kind != "pages" and fits_ever is not False
                 and arch not in LAYOUT_ONLY_ARCHES)
    if arch in LAYOUT_ONLY_ARCHES:
        # arch/powerpc and arch/mips parse no vmalloc=: the split is a build-time choice.
        notes.append(f"{arch} has no vmalloc= parameter: the kernel/vmalloc split is chosen at "
                     f"build time ({'CONFIG_LOWMEM_SIZE and CONFIG_PAGE_OFFSET (ADVANCED_OPTIONS)' if arch == 'ppc32' else 'KSEG2 is fixed; HIGHMEM moves lowmem out of it'}); "
                     f"the model has no profile to boot it")
    helps_known = not (bits is None and in_vmalloc_area and f.kind != "pages"
                       and fits_ever is not False)
    if not helps_known:
        notes.append("vmalloc= helps only if this is a 32-bit kernel (i386 or ARM): give --arch")
    param, proof = None, None
    if helps and arch is not None and f.size is not None and asked:
        if snapshot is not None and snapshot.addresses_trusted:
            param, proof = _plan_with_snapshot(snapshot, asked, arch, mf, meminfo)
        elif lay is not None:
            full = lay.vmalloc_end - lay.vmalloc_start
            param, proof = _prove(arch, mf.ram, kernel, mf.cmdline, full, asked)
            if mf.ram is None:
                notes.append("RAM not told: assumed 4 GiB (lowmem at its largest); give --ram "
                             "for the value your machine needs")
    # Advice and verdict.
    advice = _advice(f, rng, request, family, kernel, helps, param, proof, fits_ever, asked,
                     whole, lay, _uptime_days(f, text_lines), arm64_bpf)
    if log.suppressed:
        notes.append(f"the kernel suppressed {log.suppressed} more such warnings (printk "
                     f"ratelimit): it failed more often than the log shows")
    if snapshot is not None and snapshot.addresses_trusted and rng in ("module", "bpf") \
            and bounds is not None:
        notes.append(_module_area_in_dump(snapshot, bounds, f.size))
    if "use vmalloc=" in f.text and not helps:
        change = CHANGES["vmap_range_restricted_message"]
        notes.append(f"the log's \"use vmalloc=<size>\" is the kernel's generic hint, printed "
                     f"for every range until Linux {change.since} replaced it ({change.commit})")
    arch_sure = arch is not None and not mf.arch_how.startswith("guessed")
    confidence = "high" if strong and arch_sure else \
        "medium" if strong or (arch is not None and request != "unknown") else "low"
    if request == "unknown" and arch is not None and f.trace == () and rng == "vmalloc":
        notes.append("no call trace: if this happened while loading a module, the request was "
                     "module_alloc's" + ("" if modules_in_vmalloc else
                                         ", in the module area, where vmalloc= changes nothing"))
    if family == "arm" and rng in ("module", "bpf"):
        notes.append("ARM with CONFIG_ARM_MODULE_PLTS (3.19+) retries a failed module_alloc in "
                     "the vmalloc area silently: a logged failure then means both were full "
                     "(zgrep ARM_MODULE_PLTS /proc/config.gz); without it the module area is all "
                     "there is")
    if family == "arm64" and rng == "module" and lay is not None:
        notes.append(_arm64_module_note(lay.kernel))
    verdict = _verdict(f, rng, request, helps, param, fits_ever, asked, bounds)
    if not helps_known:
        verdict = verdict.replace("vmalloc= cannot help", "vmalloc= helps only on a 32-bit "
                                                          "kernel (give --arch)")
    return Explanation(failure=f, line=f"{log.source}:{f.lineno}", size=f.size, asked=asked,
                       range=rng, request=request, range_bounds=bounds, fits_ever=fits_ever,
                       vmalloc_param_helps=helps, cmdline=param, verdict=verdict,
                       advice=tuple(advice), confidence=confidence, clues=tuple(clues),
                       proof=proof, notes=tuple(notes), helps_known=helps_known)


def _module_area_in_dump(snapshot: VmallocinfoSnapshot, bounds: tuple[int, int],
                         size: int | None) -> str:
    """How full the dump's module area is, and whether the failed size has a hole there."""
    from pyvmalloc.snapshot.layout import find_holes, hole_stats

    start, end = bounds
    inside = [(ln.start, ln.end) for ln in snapshot.lines if start <= ln.start < end]
    stats = hole_stats(find_holes(inside, start, end))
    used = (end - start) - stats.total
    text = (f"the dump's module area 0x{start:x}-0x{end:x}: {len(inside)} areas, "
            f"{100.0 * used / (end - start):.1f}% used, largest hole {exact_bytes(stats.largest)}")
    if size:
        text += ("; the failed request fits in it now (the dump was taken at another moment)"
                 if stats.largest >= size else "; the failed request does not fit in it")
    return text


def _plan_with_snapshot(snapshot: VmallocinfoSnapshot, asked: int, arch: str, mf: MachineFacts,
                        meminfo: Mapping[str, int] | None) -> tuple[str | None, str]:
    from pyvmalloc.analysis.plan import plan

    try:
        answer = plan(snapshot, [asked], 0.0, arch, mf.cmdline, meminfo, ram=mf.ram,
                      kernel=mf.kernel)
    except PyvmallocError as exc:
        return None, f"the planner could not use --vmallocinfo: {exc}"
    return answer.param, f"the planner on --vmallocinfo: {answer.reason}"


_RANGE_WORDS = {"vmalloc": "the vmalloc area", "module": "the module area",
                "bpf": "the BPF JIT's range", "restricted": "a restricted range",
                "other": "another range"}


def _arm64_module_note(kernel: KernelVersion) -> str:
    """What a logged module_alloc failure means on arm64 ``kernel`` (arch/arm64/kernel/module.c;
    versions.py arm64_module_plts, arm64_module_alloc_nowarn, arm64_modules_2g)."""
    if not has(kernel, "arm64_module_plts"):
        return ("arm64 before 4.6 has no fallback: the 64 MiB module area below PAGE_OFFSET is "
                "all module_alloc tries")
    if not has(kernel, "arm64_module_alloc_nowarn"):
        return ("arm64 4.6-4.11 logs the module area's failure even when module_alloc then "
                "succeeds in the vmalloc area (ARM64_MODULE_PLTS, selected by RANDOMIZE_BASE): "
                "check whether the module loaded")
    if not has(kernel, "arm64_modules_2g"):
        return ("arm64 4.12-6.4 tries the module area with __GFP_NOWARN: a logged failure is "
                "the PLT fallback's (the vmalloc area; 4.15+ 4 GiB, 5.2+ 2 GiB from "
                "MODULES_VADDR), or a kernel without ARM64_MODULE_PLTS")
    return ("arm64 6.5+ tries the 128 MiB below the kernel image, then the 2 GiB module area, "
            "both silently, and logs \"module_alloc: unable to allocate memory\" "
            "(6.10+: \"execmem: unable to allocate memory\") when both fail")


def _verdict(f: LogFailure, rng: str, request: str, helps: bool, param: str | None,
             fits_ever: bool | None, asked: int | None, bounds: tuple[int, int] | None) -> str:
    what = {"module_alloc": "a module load (module_alloc)", "bpf_jit": "a BPF JIT image",
            "ioremap": "an ioremap", "vmalloc": "a vmalloc", "unknown": "a request"}[request]
    where = _RANGE_WORDS[rng]
    if bounds is not None:
        where += f" 0x{bounds[0]:x}-0x{bounds[1]:x}"
    size = f" of {exact_bytes(asked)}" if asked else " of 0 bytes" if asked == 0 else ""
    if asked == 0:
        return (f"{what} of 0 bytes was refused before any range was searched; it can never "
                f"fit: the size itself is wrong")
    if fits_ever is False:
        tail = "it can never fit: the size itself is wrong"
    elif helps:
        tail = f"vmalloc= helps: {param}" if param else "vmalloc= helps"
    else:
        tail = "vmalloc= cannot help"
    return f"{what}{size} failed in {where}; {tail}"


def _advice(f: LogFailure, rng: str, request: str, family: str, kernel: KernelVersion | None,
            helps: bool, param: str | None, proof: str | None, fits_ever: bool | None,
            asked: int | None, whole: int | None, lay: Any, days: float | None,
            arm64_bpf: str | None = None) -> list[str]:
    out: list[str] = []
    if f.kind == "pages":
        out.append("the address space was found, the pages were not: this is a memory "
                   "shortage (free RAM, fragmentation), not the vmalloc area; vmalloc= cannot help")
        return out
    if asked == 0:
        out.append("the caller asked for 0 bytes: vmalloc(0) always fails (and warns), so the "
                   "size computed by the caller is wrong — a kernel or module bug, not a lack of "
                   "space")
        return out
    if fits_ever is False and whole is not None:
        plus = "" if f.kind in ("vmap", "restricted") else " and its guard page"
        out.append(f"the request ({exact_bytes(f.size or 0)}{plus}) is larger than the whole range "
                   f"({exact_bytes(whole)}): the size is wrong, or this allocation needs "
                   f"another allocator (kvmalloc, CMA, a 64-bit kernel)")
        return out
    if helps:
        if param:
            out.append(f"boot with {param} (added to the kernel command line; it takes lowmem "
                       f"away, so check the rest still fits)")
            if proof:
                out.append(f"proof: {proof}")
        else:
            out.append("a larger vmalloc= (the model could not give a value: "
                       f"{proof or 'give --arch, --kernel and --ram'})")
    elif arm64_bpf == "region":
        out.append(f"arm64's BPF JIT region ({exact_bytes(lay.bpf_jit_end - lay.bpf_jit_start)}, "
                   f"Linux 5.0-5.15) is fixed by the architecture: vmalloc= does not change it; "
                   f"5.16 lifted the limit (JIT images come from the vmalloc area)")
    elif arm64_bpf == "vmalloc":
        out.append("arm64 JIT images come from the vmalloc area (5.16+), terabytes on a 64-bit "
                   "kernel: running out means a leak or an absurd size")
    elif rng == "module" or (rng == "bpf" and family != "i386"):
        size = ""
        if lay is not None and lay.modules_end > lay.modules_start and rng == "module":
            size = f" ({exact_bytes(lay.modules_end - lay.modules_start)})"
        out.append(f"the module area{size} is fixed by the architecture: vmalloc= does not change "
                   f"it; unload unused modules, build large ones into the kernel (=y)"
                   + (", or enable CONFIG_ARM_MODULE_PLTS so module_alloc can fall back to the "
                      "vmalloc area" if family == "arm" else ""))
    elif family in ("x86_64", "arm64"):
        out.append("a 64-bit kernel has no vmalloc= (its vmalloc area is terabytes): running out "
                   "means a leak or an absurd size")
    if rng == "bpf" or request == "bpf_jit":
        limit = "net.core.bpf_jit_limit" if kernel is None or has(kernel, "bpf_jit_limit") else \
            "an upgrade to 4.20+ (bpf_jit_limit)"
        out.append(f"BPF JIT images fill it: lower {limit} so unprivileged JIT loads fail before "
                   f"module loads do, or set net.core.bpf_jit_enable=0 (the interpreter needs no "
                   f"executable memory); a program that loads filters again and again without "
                   f"closing them leaks JIT images")
    if f.count > 1:
        when = f" after {days:.1f} days of uptime" if days is not None and days >= 1 else ""
        out.append(f"failed {f.count} times in a row{when}: something fills the range over time "
                   f"— a leak: compare two /proc/vmallocinfo dumps taken hours apart "
                   f"(`pyvmalloc analyze` on each) to see which caller grows")
    return out


# ---- every failure -----------------------------------------------------------------------------
def explain(log: KernelLogFacts, text: str, *, arch: str | None = None,
            kernel: str | None = None, ram: int | None = None,
            meminfo: Mapping[str, int] | None = None, cmdline: str | None = None,
            snapshot: VmallocinfoSnapshot | None = None
            ) -> tuple[MachineFacts, list[Explanation]]:
    """The machine and one :class:`Explanation` per failure of ``log`` (``text`` is the log's
    text, for the words around each failure)."""
    text_lines = [ln for _, ln in lines(text)]
    mf = machine_facts(log, text_lines, arch=arch, kernel=kernel, ram=ram, meminfo=meminfo,
                       cmdline=cmdline)
    return mf, [_explain_one(f, mf, log, text_lines, snapshot, meminfo) for f in log.failures]


def _hex(n: int | None) -> str | None:
    return None if n is None else f"0x{n:x}"


def to_json(mf: MachineFacts, answers: Sequence[Explanation]) -> dict[str, Any]:
    """The ``--json`` document: ``{"machine": ..., "failures": [...]}``."""
    return {
        "machine": {"arch": mf.arch, "arch_how": mf.arch_how,
                    "kernel": None if mf.kernel is None else str(mf.kernel),
                    "kernel_how": mf.kernel_how, "ram": mf.ram, "ram_how": mf.ram_how,
                    "cmdline": mf.cmdline, "known_arches": sorted(PROFILES)},
        "failures": [{
            "line": a.line, "message": a.failure.text, "kind": a.failure.kind,
            "count": a.failure.count, "size": a.size, "size_counts_guard_page":
                a.failure.kind in ("vmap", "restricted"), "asked": a.asked,
            "range": a.range, "request": a.request,
            "range_start": _hex(a.range_bounds[0]) if a.range_bounds else None,
            "range_end": _hex(a.range_bounds[1]) if a.range_bounds else None,
            "fits_ever": a.fits_ever, "vmalloc_param_helps": a.vmalloc_param_helps,
            "cmdline": a.cmdline, "verdict": a.verdict, "advice": list(a.advice),
            "proof": a.proof, "confidence": a.confidence, "clues": list(a.clues),
            "notes": list(a.notes), "trace": list(a.failure.trace)}
            for a in answers],
    }


def format_explanations(log: KernelLogFacts, mf: MachineFacts,
                        answers: Sequence[Explanation]) -> str:
    """The human text: one block per failure, the verdict on its first line."""
    out: list[str] = []
    if not answers:
        return (f"{log.source}: no vmalloc failure found in {log.lines_read} lines (looked for: "
                f"vmap allocation for size, vmalloc: allocation failure, vmalloc error, "
                f"vmalloc_node_range ... restricted, out of vmalloc space, execmem, ioremap "
                f"failures)\n")
    for i, a in enumerate(answers, 1):
        rep = f" (x{a.failure.count})" if a.failure.count > 1 else ""
        out.append(f"#{i} {a.line}{rep}: {a.verdict}")
        helps = "yes" if a.vmalloc_param_helps else "no" if a.helps_known else "unknown"
        out.append(f"   range: {a.range}; vmalloc= helps: {helps}"
                   f"; fits ever: {_yn(a.fits_ever)}; confidence: {a.confidence}")
        if a.size is not None:
            guard = (" (N counts the 4 KiB guard page: PAGE_ALIGN(size) + PAGE_SIZE)"
                     if a.failure.kind in ("vmap", "restricted") else " (the size asked)")
            out.append(f"   size: {a.size}{guard}"
                       + (f"; asked {a.asked}" if a.asked is not None and a.asked != a.size else ""))
        out += [f"   do: {x}" for x in a.advice]
        out.append(f"   because: {'; '.join(a.clues)}")
        out += [f"   note: {n}" for n in a.notes]
        out.append("")
    out.append(f"machine: arch {mf.arch or 'unknown'} ({mf.arch_how}); kernel "
               f"{mf.kernel or 'unknown'} ({mf.kernel_how}); RAM "
               f"{format_size(mf.ram) if mf.ram else 'unknown'} ({mf.ram_how})")
    return "\n".join(out) + "\n"


def _yn(v: bool | None) -> str:
    return "unknown" if v is None else "yes" if v else "no"
