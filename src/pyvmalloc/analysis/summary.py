"""Where did the vmalloc space go: the summary of one ``/proc/vmallocinfo`` snapshot.

Counts every area once under its primary kind (:attr:`VmallocinfoLine.primary_kind`), ranks the
callers, adds up pages per NUMA node, finds the free holes of the vmalloc range and its
fragmentation, and gives VmallocUsed/VmallocChunk as each kernel generation computes them.  When
the addresses are hashed, only the address-free parts are given (holes, bounds and fragmentation
are None).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyvmalloc.snapshot.layout import (
    ARCH_NAMES,
    KNOWN_ARCHES,
    LAYOUT_ONLY_ARCHES,
    Bounds,
    HoleStats,
    KaslrGuess,
    check_arch,
    find_holes,
    fragmentation_index,
    guess_arch,
    hole_stats,
    infer_bounds,
    infer_kaslr,
    infer_page_size,
    layout_contradiction,
    module_range,
)
from pyvmalloc.formats.vmalloc_meminfo import (
    GENERATIONS,
    VmallocMeminfo,
    generation_for,
    vmalloc_meminfo,
)
from pyvmalloc.errors import ConfigError
from pyvmalloc.versions import KernelVersion, parse_version
from pyvmalloc.formats.vmallocinfo import VmallocinfoLine, VmallocinfoSnapshot
from pyvmalloc.sizes import bytes_and_human, human_bytes
from pyvmalloc.viz.ascii import strip_map

__all__ = ["CallerTotal", "KindTotal", "Summary", "format_summary", "format_verdict", "summarize",
           "to_json"]

_MEMINFO_KEYS = ("VmallocTotal", "VmallocUsed", "VmallocChunk")


@dataclass(frozen=True)
class KindTotal:
    """How many areas and how many bytes (size column, guard pages included)."""

    count: int
    bytes: int


@dataclass(frozen=True)
class CallerTotal:
    """One caller (function, with its ``[module]`` if any) and what it holds."""

    caller: str
    module: str | None
    count: int
    bytes: int


@dataclass
class Summary:
    """The result of :func:`summarize`; :func:`to_json` and :func:`format_summary` present it."""

    source: str
    arch: str | None
    arch_reason: str
    addresses_trusted: bool
    address_reason: str
    areas: int
    bytes: int
    by_kind: dict[str, KindTotal]
    top_callers: list[CallerTotal]
    top_callers_by_count: list[CallerTotal]
    pages: int
    pages_by_node: dict[int, int]
    page_size: int
    page_size_reason: str
    bounds: Bounds | None
    inside: KindTotal | None
    holes: list[tuple[int, int]] | None
    hole_stats: HoleStats | None
    fragmentation: float | None
    modules: Bounds | None
    module_holes: HoleStats | None
    kaslr: KaslrGuess | None
    unpurged: KindTotal
    meminfo_published: dict[str, int]
    generation: str | None
    generation_reason: str
    meminfo_figures: dict[str, VmallocMeminfo]
    warnings: list[str]
    lines: list[VmallocinfoLine] = field(repr=False, default_factory=list)
    kernel: str | None = None   # "Linux 3.4.5", a range ("Linux 2.6.28 to before 4.2"), "unknown"
    kernel_how: str = ""        # given / from version text / inferred (why) / unknown (why)


def _caller_key(line: VmallocinfoLine) -> tuple[str, str | None]:
    if line.caller is None:
        return f"(no caller: {line.primary_kind})", None
    module = line.module
    return (f"{line.function} [{module}]" if module else str(line.function)), module


def _rank_callers(lines: list[VmallocinfoLine], top: int) -> tuple[list[CallerTotal],
                                                                   list[CallerTotal]]:
    totals: dict[str, list[Any]] = {}
    for ln in lines:
        key, module = _caller_key(ln)
        entry = totals.setdefault(key, [module, 0, 0])
        entry[1] += 1
        entry[2] += ln.size
    everyone = [CallerTotal(k, m, c, b) for k, (m, c, b) in totals.items()]
    by_bytes = sorted(everyone, key=lambda t: (-t.bytes, -t.count, t.caller))[:top]
    by_count = sorted(everyone, key=lambda t: (-t.count, -t.bytes, t.caller))[:top]
    return by_bytes, by_count


def _choose_generation(kernel: str | None, published: Mapping[str, int]) -> tuple[str | None, str]:
    if kernel is not None:
        return generation_for(kernel), f"kernel {kernel}"
    if "VmallocUsed" in published and "VmallocChunk" in published:
        used, chunk = published["VmallocUsed"], published["VmallocChunk"]
        if chunk > 0:
            return "vmlist", ("meminfo's VmallocChunk is not 0, so a 2.6.x-4.3 kernel (the "
                              "vmlist and vmap_area_list walks agree without vm_map_ram lines)")
        if used > 0:
            return "nr_pages", "meminfo's VmallocChunk is 0 and VmallocUsed is not: a 5.3+ kernel"
        return "zero", "meminfo's VmallocUsed and VmallocChunk are 0: a 4.4-5.2 kernel"
    return None, "kernel version unknown (give --kernel or --meminfo): every generation shown"


def _version(kernel: str | None) -> KernelVersion | None:
    """``kernel`` as one version, or None when it is none or not one version."""
    if kernel is None:
        return None
    try:
        return parse_version(kernel)
    except ConfigError:
        return None


def summarize(snapshot: VmallocinfoSnapshot, arch: str | None = None, *,
              bounds: tuple[int, int] | Bounds | None = None,
              meminfo: Mapping[str, int] | None = None, kernel: str | None = None,
              top: int = 10) -> Summary:
    """Summarize a parsed snapshot.

    ``arch``: a profile name (guessed from the addresses when None).  ``bounds``: the vmalloc
    range (VMALLOC_START, VMALLOC_END) when known from a machine profile; otherwise inferred from
    the addresses and meminfo's VmallocTotal, as ``Summary.bounds.how`` says.  ``meminfo``:
    parsed ``/proc/meminfo`` fields.  ``kernel``: version whose VmallocUsed definitions apply.
    """
    if top < 0:
        raise ConfigError(f"top must be 0 or more, not {top}")
    lines = list(snapshot.lines)
    warnings = list(snapshot.warnings)
    trusted = snapshot.addresses_trusted
    if not lines:
        warnings.append(f"{snapshot.source}: no areas: every booted kernel has some, "
                        f"was the file captured as root?")
    total_kb = (meminfo or {}).get("VmallocTotal") or None
    if arch is None:
        arch, arch_reason = guess_arch(snapshot, total_kb)
    else:
        arch_reason = "given"
        if arch in ARCH_NAMES:
            check_arch(snapshot, arch)
        elif arch in LAYOUT_ONLY_ARCHES:
            check_arch(snapshot, arch)
            warnings.append(f"{arch} ({LAYOUT_ONLY_ARCHES[arch]}) has no machine profile: its "
                            f"dump is read with its layout rules, but the model cannot boot it "
                            f"(no --fits/--plan answers)")
        else:
            raise ConfigError(f"unknown arch {arch!r}: known: {', '.join(KNOWN_ARCHES)}")
        contradiction = layout_contradiction(snapshot, arch, vmalloc_total_kb=total_kb)
        if contradiction is not None:
            # Kept as asked, but said: the answers use a layout the addresses do not fit.
            warnings.append(f"the addresses do not fit the {arch} layout ({contradiction}): "
                            f"is --arch right?")
    published = {k: v for k, v in (meminfo or {}).items() if k in _MEMINFO_KEYS}
    if meminfo is not None and "VmallocTotal" not in published:
        warnings.append("meminfo has no VmallocTotal line")

    by_kind: dict[str, KindTotal] = {}
    for ln in lines:
        old = by_kind.get(ln.primary_kind, KindTotal(0, 0))
        by_kind[ln.primary_kind] = KindTotal(old.count + 1, old.bytes + ln.size)
    by_kind = dict(sorted(by_kind.items(), key=lambda kv: (-kv[1].bytes, kv[0])))
    top_bytes, top_count = _rank_callers(lines, top)
    pages_by_node: dict[int, int] = {}
    for ln in lines:
        for node, count in ln.numa.items():
            pages_by_node[node] = pages_by_node.get(node, 0) + count
    page_size, page_size_reason = infer_page_size(snapshot)
    unpurged = by_kind.get("unpurged", KindTotal(0, 0))

    if isinstance(bounds, tuple):
        bounds = Bounds(bounds[0], bounds[1], "given")
    if bounds is not None and bounds.end <= bounds.start:
        raise ConfigError(f"empty vmalloc range 0x{bounds.start:x}-0x{bounds.end:x}")
    kver = _version(kernel)
    if bounds is None and trusted:
        bounds = infer_bounds(snapshot, arch, published.get("VmallocTotal"), kver)
    holes = stats = frag = inside = modules = module_holes = None
    if trusted and bounds is not None:
        ranges = [(ln.start, ln.end) for ln in lines]
        holes = find_holes(ranges, bounds.start, bounds.end)
        stats = hole_stats(holes)
        frag = fragmentation_index(holes)
        within = [ln for ln in lines if bounds.start <= ln.start < bounds.end]
        inside = KindTotal(len(within), sum(ln.size for ln in within))
        modules = module_range(snapshot, arch, kver)
        if modules is not None:
            module_holes = hole_stats(find_holes(ranges, modules.start, modules.end))
        if "VmallocTotal" in published and published["VmallocTotal"] != bounds.size >> 10:
            warnings.append(f"meminfo VmallocTotal {published['VmallocTotal']} kB but the vmalloc "
                            f"range used here is {bounds.size >> 10} kB")

    generation, generation_reason = _choose_generation(kernel, published)
    figures: dict[str, VmallocMeminfo] = {}
    wanted = [generation] if generation else list(GENERATIONS)
    span = (bounds.start, bounds.end) if bounds is not None and bounds.exact else None
    for gen in wanted:
        if gen in ("vmlist", "vmap_area_list") and (span is None or not trusted):
            if generation:
                warnings.append(f"VmallocUsed/VmallocChunk of a {gen} kernel need real addresses "
                                f"and VMALLOC_START/END (give --meminfo for VmallocTotal): "
                                f"not computed")
            continue
        figures[gen] = vmalloc_meminfo(lines, span, gen, page_size,
                                       64 if snapshot.address_bits == 64 else 32)
    for gen, fig in figures.items():
        for key, ours in (("VmallocUsed", fig.used_kb), ("VmallocChunk", fig.chunk_kb)):
            if generation == gen and key in published and published[key] != ours:
                warnings.append(f"{key}: meminfo says {published[key]} kB, the snapshot gives "
                                f"{ours} kB under {gen} rules (taken at another moment?)")

    return Summary(
        source=snapshot.source, arch=arch, arch_reason=arch_reason, addresses_trusted=trusted,
        address_reason=snapshot.address_reason, areas=len(lines),
        bytes=sum(ln.size for ln in lines), by_kind=by_kind, top_callers=top_bytes,
        top_callers_by_count=top_count, pages=sum(ln.nr_pages or 0 for ln in lines),
        pages_by_node=dict(sorted(pages_by_node.items())), page_size=page_size,
        page_size_reason=page_size_reason, bounds=bounds if trusted else None, inside=inside,
        holes=holes, hole_stats=stats, fragmentation=frag, modules=modules,
        module_holes=module_holes, kaslr=infer_kaslr(snapshot, arch), unpurged=unpurged,
        meminfo_published=published, generation=generation, generation_reason=generation_reason,
        meminfo_figures=figures, warnings=warnings, lines=lines)


def _hex(n: int | None) -> str | None:
    return None if n is None else f"0x{n:x}"


def to_json(summary: Summary) -> dict[str, Any]:
    """A JSON-ready dict: sizes are ints (bytes unless the key says kB), addresses hex strings."""
    def caller(t: CallerTotal) -> dict[str, Any]:
        return {"caller": t.caller, "module": t.module, "count": t.count, "bytes": t.bytes}

    def bounds(b: Bounds | None) -> dict[str, Any] | None:
        return None if b is None else {"start": _hex(b.start), "end": _hex(b.end), "how": b.how}

    def holes(h: HoleStats | None) -> dict[str, int] | None:
        return None if h is None else {"count": h.count, "total": h.total, "largest": h.largest}

    return {
        "source": summary.source,
        "arch": summary.arch,
        "arch_reason": summary.arch_reason,
        "kernel": summary.kernel,
        "kernel_how": summary.kernel_how,
        "addresses_trusted": summary.addresses_trusted,
        "address_reason": summary.address_reason,
        "areas": summary.areas,
        "bytes": summary.bytes,
        "by_kind": {k: v.bytes for k, v in summary.by_kind.items()},
        "by_kind_count": {k: v.count for k, v in summary.by_kind.items()},
        "top_callers": [caller(t) for t in summary.top_callers],
        "top_callers_by_count": [caller(t) for t in summary.top_callers_by_count],
        "pages": summary.pages,
        "pages_by_node": {str(k): v for k, v in summary.pages_by_node.items()},
        "page_size": summary.page_size,
        "bounds": bounds(summary.bounds),
        "inside": None if summary.inside is None else {"areas": summary.inside.count,
                                                       "bytes": summary.inside.bytes},
        "holes": holes(summary.hole_stats),
        "fragmentation": summary.fragmentation,
        "modules": bounds(summary.modules),
        "module_holes": holes(summary.module_holes),
        "kaslr_vmalloc_base": None if summary.kaslr is None else _hex(summary.kaslr.vmalloc_base),
        "unpurged": {"areas": summary.unpurged.count, "bytes": summary.unpurged.bytes},
        "meminfo": {
            "published_kb": summary.meminfo_published,
            "generation": summary.generation,
            "generation_reason": summary.generation_reason,
            "computed_kb": {g: {"VmallocTotal": f.total_kb, "VmallocUsed": f.used_kb,
                                "VmallocChunk": f.chunk_kb}
                            for g, f in summary.meminfo_figures.items()},
        },
        "warnings": summary.warnings,
    }




def format_summary(summary: Summary, map_rows: int = 4) -> str:
    """The human report: totals, kinds, callers, pages, holes, meminfo figures and a strip map."""
    s = summary
    out = [f"{s.source}: {s.areas} areas, {bytes_and_human(s.bytes)} (size column, guard pages included)",
           f"arch: {s.arch or 'unknown'} ({s.arch_reason})",
           *([f"kernel: {s.kernel} ({s.kernel_how})"] if s.kernel else []),
           f"addresses: {'real' if s.addresses_trusted else 'NOT usable'} ({s.address_reason})",
           f"page size: {s.page_size_reason}", "", "by kind (each area once, under its first of "
           "unpurged, vm_map_ram, ioremap, sparse, vmalloc, vmap, dma-coherent, user, vendor word, "
           "other):"]
    for kind, t in s.by_kind.items():
        share = 100.0 * t.bytes / s.bytes if s.bytes else 0.0
        out.append(f"  {kind:<14} {t.count:6d} areas {t.bytes:14d} B {human_bytes(t.bytes):>11} "
                   f"{share:5.1f}%")
    for title, ranked in (("top callers by bytes:", s.top_callers),
                          ("top callers by count:", s.top_callers_by_count)):
        out += ["", title]
        out += [f"  {t.bytes:14d} B {human_bytes(t.bytes):>11} {t.count:6d}x  {t.caller}"
                for t in ranked]
    out += ["", f"pages (pages= column): {s.pages} ({human_bytes(s.pages * s.page_size)})"]
    if s.pages_by_node:
        out.append("  per node: " + "  ".join(f"N{n}={c}" for n, c in s.pages_by_node.items()))
    if s.unpurged.count:
        out.append(f"unpurged (lazily freed, reusable after the next purge): {s.unpurged.count} "
                   f"areas, {bytes_and_human(s.unpurged.bytes)}")
    out.append("")
    if s.bounds is None:
        out.append("vmalloc range, holes, fragmentation: not available (addresses not usable)")
    else:
        b = s.bounds
        out.append(f"vmalloc range 0x{b.start:x}-0x{b.end:x} ({human_bytes(b.size)}): {b.how}")
        if s.kaslr is not None:
            out.append(f"  KASLR: {s.kaslr.reason}")
        if s.inside is not None:
            out.append(f"  areas inside: {s.inside.count}, {bytes_and_human(s.inside.bytes)}; outside: "
                       f"{s.areas - s.inside.count}, {bytes_and_human(s.bytes - s.inside.bytes)}")
        if s.hole_stats is not None:
            h = s.hole_stats
            frag = "n/a (no free space)" if s.fragmentation is None else f"{s.fragmentation:.3f}"
            out.append(f"  holes: {h.count}, total {bytes_and_human(h.total)}, largest {bytes_and_human(h.largest)}")
            out.append(f"  fragmentation (1 - largest/total free): {frag}")
        if s.modules is not None and s.module_holes is not None:
            m, h = s.modules, s.module_holes
            out.append(f"module area 0x{m.start:x}-0x{m.end:x} ({m.how}): {h.count} holes, "
                       f"total {bytes_and_human(h.total)}, largest {bytes_and_human(h.largest)}")
    out += ["", f"/proc/meminfo Vmalloc* in kB ({s.generation_reason}):"]
    for gen, fig in s.meminfo_figures.items():
        total = "?" if fig.total_kb is None else str(fig.total_kb)
        out.append(f"  {GENERATIONS[gen]}\n    VmallocTotal {total}  VmallocUsed {fig.used_kb}  "
                   f"VmallocChunk {fig.chunk_kb}")
    if s.meminfo_published:
        out.append("  meminfo file: "
                   + "  ".join(f"{k} {v}" for k, v in s.meminfo_published.items()))
    if s.bounds is not None:
        out += ["", "map of the vmalloc range:",
                strip_map(s.lines, s.bounds.start, s.bounds.end, rows=map_rows)]
        within = [ln for ln in s.lines if s.bounds.start <= ln.start < s.bounds.end]
        if within:
            lo, hi = min(ln.start for ln in within), max(ln.end for ln in within)
            if 4 * (hi - lo) < s.bounds.size:
                out += ["map of the occupied part of the range:",
                        strip_map(within, lo, hi, rows=map_rows)]
        if s.modules is not None:
            out += ["map of the module area:", strip_map(s.lines, s.modules.start, s.modules.end)]
    if s.warnings:
        out += ["", "warnings:"] + [f"  {w}" for w in s.warnings]
    return "\n".join(out) + "\n"


def _frag_word(frag: float | None) -> str:
    if frag is None:
        return "no free space"
    return "low" if frag < 0.5 else "moderate" if frag < 0.9 else "high"


def format_verdict(summary: Summary, fmt: str, fits: Mapping[str, Any] | None = None,
                   plan: Mapping[str, Any] | None = None,
                   module_area: tuple[int, int] | None = None) -> list[str]:
    """The five lines ``analyze`` opens with: how full and fragmented, the module area, what
    fits, what to do, and what the answer rests on (format, arch, kernel, range).

    ``fits``/``plan`` are the what-if JSON documents when asked; ``module_area`` the arch's
    module area when the layout knows it and the dump has no module in it."""
    s = summary
    head = f"{s.source}: {s.areas} areas, {bytes_and_human(s.bytes)}"
    b, h = s.bounds, s.hole_stats
    if b is None or h is None:
        line1 = (f"{head}: addresses not usable ({s.address_reason}): no holes, fill or fit "
                 f"answers; the counts below are address-free")
    else:
        used = b.size - h.total
        frag = "n/a" if s.fragmentation is None else f"{s.fragmentation:.2f}"
        line1 = (f"{head}: the vmalloc area is {100.0 * used / b.size:.1f}% used "
                 f"({human_bytes(h.total)} free of {human_bytes(b.size)}), largest hole "
                 f"{human_bytes(h.largest)}, fragmentation {frag} ({_frag_word(s.fragmentation)})")
    if s.modules is not None and s.module_holes is not None:
        m, mh = s.modules, s.module_holes
        line2 = (f"module area 0x{m.start:x}-0x{m.end:x}: {100.0 * (m.size - mh.total) / m.size:.1f}% "
                 f"used, largest hole {human_bytes(mh.largest)} (vmalloc= does not change it)")
    elif module_area is not None and module_area[1] > module_area[0] and b is not None \
            and module_area != (b.start, b.end):
        line2 = (f"module area 0x{module_area[0]:x}-0x{module_area[1]:x}: no area of the dump in "
                 f"it (empty, or modules built in)")
    elif s.arch in ("i386", "i386-pae", "mips32"):
        line2 = f"module area: none on {s.arch}: modules are allocated in the vmalloc area"
    else:
        line2 = "module area: not seen in the dump"
    if h is None:
        line3 = "fits now: unknown (addresses not usable)"
    else:
        largest = max(h.largest - s.page_size, 0)
        line3 = (f"fits now: a vmalloc of up to {human_bytes(largest)} (the largest hole less "
                 f"the guard page)")
    groups = _fit_groups(fits)
    if groups and all([_fit_word(a) for a in g] == [_fit_word(a) for a in groups[0]]
                      for g in groups):
        # One answer (one kernel, or every kernel the dump allows answers alike).
        said = [f"#{a['step']} {'' if a['kind'] == 'vmalloc' else a['kind'] + ':'}"
                f"{human_bytes(a['size'])} {_fit_word(a)}" for a in groups[0]]
        line3 += "; --fits: " + ", ".join(said) + ("" if len(groups) == 1 else
                                                   " (on every kernel version below)")
    elif fits and fits.get("error"):
        line3 += f"; --fits: {fits['error']}"
    elif groups:
        line3 += "; --fits: the answer depends on the kernel version (below)"
    line4 = "do: " + _what_to_do(s, plan, fits)
    line5 = (f"read as {fmt}; arch {s.arch or 'unknown'} ({s.arch_reason}); kernel "
             f"{s.kernel or 'unknown'}; range {b.how if b is not None else 'unknown'}")
    return [line1, line2, line3, line4, line5]


def _fit_groups(fits: Mapping[str, Any] | None) -> list[list[Mapping[str, Any]]]:
    """The --fits answers of each kernel version the dump allows (one list when one kernel)."""
    if not fits:
        return []
    by_kernel = [g["answers"] for g in fits.get("by_kernel", []) if g.get("answers")]
    return by_kernel or ([fits["answers"]] if fits.get("answers") else [])


def _fit_word(a: Mapping[str, Any]) -> str:
    # The address space is found but the free pages (of the RAM the machine has, or is inferred
    # to have) do not cover it: the call would still fail, as the detail line says.
    if not a["ok"]:
        return "FAILS"
    return "fits" if a.get("pages_ok", True) else "fits, but RAM is short"


def _what_to_do(s: Summary, plan: Mapping[str, Any] | None, fits: Mapping[str, Any] | None
                ) -> str:
    if not s.addresses_trusted:
        return ("read /proc/vmallocinfo as root (CAP_SYSLOG) with `sysctl kernel.kptr_restrict=1`: "
                "%pK then prints real addresses to root (with 0 it hashes them for everyone, "
                "with 2 it prints zeros)")
    if plan is not None and plan.get("reason"):
        return str(plan["reason"])
    answers = [a for g in _fit_groups(fits) for a in g]   # of every kernel version allowed
    failed = [a for a in answers if not a["ok"]]
    b, h = s.bounds, s.hole_stats
    if b is None or h is None:
        return "give --arch and --meminfo so the vmalloc range can be told"
    bits64 = s.arch in ("x86_64", "x86_64-la57", "arm64")
    full = (b.size - h.total) / b.size if b.size else 0.0
    # The requests this system makes are best told by the areas it already holds: when the
    # largest hole is smaller than the largest of them (the size column counts its guard page,
    # as the hole must), another request of that size fails now, however much is free in all.
    held = [ln.size for ln in s.lines if b.start <= ln.start < b.end and ln.caller is not None]
    biggest = max(held, default=0)
    tight = biggest > h.largest
    if failed and any(a["kind"] in ("module", "bpf") for a in failed):
        return ("the module area is full for that request: unload modules or build them in; "
                "vmalloc= does not change the module area")
    short = [a for a in answers if a["ok"] and not a.get("pages_ok", True)]
    if short and not failed:
        return ("the address space is there, the pages are not: free RAM does not cover "
                f"#{short[0]['step']}'s pages (vmalloc= cannot help; free memory, or ask less)")
    if bits64 and failed:
        return ("the request is larger than the largest hole of a 64-bit vmalloc area: the size "
                "is wrong (a 64-bit kernel has no vmalloc= to enlarge it)")
    if bits64:
        return ("nothing about the size: a 64-bit vmalloc area does not run out; if a caller "
                "keeps growing between two dumps, it leaks")
    crowded = failed or tight or full > 0.9 or (s.fragmentation or 0) > 0.9
    lead = (f"the largest hole ({human_bytes(h.largest)}) is smaller than the largest area "
            f"already held ({human_bytes(biggest)}): another like it fails now; "
            if tight and not failed else "")
    if crowded and s.arch in LAYOUT_ONLY_ARCHES:
        # arch/powerpc and arch/mips parse no vmalloc=: the split is chosen when building.
        how = ("a smaller lowmem (CONFIG_LOWMEM_SIZE, or CONFIG_HIGHMEM so RAM above it moves "
               "out), so VMALLOC_START = high_memory + 16M comes down; modules go to the "
               "module segment below PAGE_OFFSET on book3s/32 5.10+" if s.arch == "ppc32" else
               "nothing moves KSEG2's bounds (VMALLOC_START 0xc0000000 is fixed)")
        return (f"{lead}{s.arch} has no vmalloc= parameter: {how}; or find the caller that "
                f"grows between two dumps (a leak)")
    if crowded:
        return (f"{lead}a larger vmalloc= (ask `--plan SIZE[,SIZE]` for the smallest value, proven "
                "by booting the model), or find the caller that grows between two dumps (a leak)")
    return f"nothing needed: {human_bytes(h.total)} free, largest hole {human_bytes(h.largest)}"
