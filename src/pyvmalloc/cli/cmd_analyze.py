"""``pyvmalloc analyze [SNAPSHOT]``: where did the vmalloc space go, verdict first.

The snapshot is any dump format of ``formats/dumps.py`` (plain /proc/vmallocinfo, an Android
bugreport, crash ``kmem -v``, gdb/drgn, Qualcomm ramdump-parser), found inside a larger text;
without SNAPSHOT on Linux the running kernel's /proc/vmallocinfo and /proc/meminfo are read.
The first five lines are the verdict (how full and fragmented, the largest hole, the module
area, what fits, what to do); the tables follow.  The device's layout (arch, VMALLOC_START/END,
kernel) is worked out once (``snapshot_layout``) and used by the summary and every what-if.
Any error is one line ``FILE[:LINE]: what is wrong`` on stderr and exit code 2; a text with no
area in it is an error (a real kernel always has some).  ``--fits`` and ``--plan`` run on a
machine rebuilt from the snapshot (``Machine.from_snapshot``); a snapshot whose addresses are
hashed, or whose arch has no profile, still gets its summary and what-if answers that say why
they cannot be given.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from dataclasses import dataclass

from pyvmalloc.analysis.plan import (
    FitAnswer,
    parse_fit_requests,
    PlanAnswer,
    Trial,
    fits_requests,
    parse_headroom,
    parse_sizes,
    plan_by_kernel,
    rules_between,
    version_rules,
)
from pyvmalloc.analysis.summary import format_summary, format_verdict, summarize, to_json
from pyvmalloc.arch.profiles import PROFILES
from pyvmalloc.sizes import format_size
from pyvmalloc.cli.common import live_arch, live_kernel, read_kmsg, report_error
from pyvmalloc.errors import ConfigError, FormatError, PyvmallocError
from pyvmalloc.formats._text import count_lines, lines, quote
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.dumps import read_dump
from pyvmalloc.formats.vmallocinfo import VmallocinfoSnapshot
from pyvmalloc.snapshot.layout import (
    KNOWN_ARCHES,
    LAYOUT_ONLY_ARCHES,
    Bounds,
    KernelRange,
    infer_kernel,
)
from pyvmalloc.versions import KernelVersion, parse_version

__all__ = ["read_text", "register", "run"]


def read_text(path: str) -> str:
    """The text of ``path`` (``-``: standard input); FormatError naming the line of a NUL byte or
    of bytes that are not UTF-8; OSError for files that cannot be read."""
    if path == "-":
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        with open(path, "rb") as f:
            data = f.read()
        name = path
    nul = data.find(b"\x00")
    if nul >= 0:
        lineno = count_lines(data, nul)
        raise FormatError(f"{name}:{lineno}", "binary data (NUL byte), not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = count_lines(data, exc.start)
        raise FormatError(f"{name}:{lineno}", "bytes that are not UTF-8 text") from None


def _top(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _kernel(text: str) -> str:
    try:
        parse_version(text)
    except PyvmallocError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


@dataclass(frozen=True)
class KernelChoice:
    """The device's kernel as far as it is known: ``exact`` when given (``--kernel``,
    ``--version-file``), else the range the dump allows; ``how`` says which and how sure."""

    kernels: KernelRange
    exact: KernelVersion | None
    how: str

    @property
    def text(self) -> str:
        if self.exact is not None:
            return f"Linux {self.exact}"
        return str(self.kernels) if self.kernels.known else "unknown"


_UTS_LEN = 64  # include/uapi/linux/utsname.h __NEW_UTS_LEN


def read_version_file(path: str) -> tuple[KernelVersion, str]:
    """The version of a saved ``/proc/version`` ("Linux version 3.4.5 (...)") or ``uname -r``
    output ("3.4.5-g1a2b3c4"): the first non-empty line that is one.  FormatError ``FILE:LINE``
    when there is none, or when it is outside what the model knows."""
    text = read_text(path)
    name = "<stdin>" if path == "-" else path
    first = None
    for lineno, line in lines(text):
        line = line.strip()
        if not line:
            continue
        first = first or (lineno, line)
        at = line.find("Linux version ")
        # The release is one word (utsname.release: at most __NEW_UTS_LEN = 64 characters).
        words = (line[at + len("Linux version "):] if at >= 0 else line).split(None, 1)
        release = words[0] if words else ""
        if len(release) > _UTS_LEN:
            if at >= 0 or release[:1].isdigit():
                raise FormatError(f"{name}:{lineno}", f"release {quote(release)} is longer than "
                                                      f"a kernel release can be ({_UTS_LEN} characters)")
            continue
        candidate = f"Linux version {release}" if at >= 0 else release
        try:
            v = parse_version(candidate)
        except ConfigError as exc:
            if at >= 0 or candidate[:1].isdigit():
                raise FormatError(f"{name}:{lineno}", str(exc)) from None
            continue
        return v, f"{name}:{lineno}: {line[:72]!r}"
    where = f"{name}:{first[0]}" if first else f"{name}:1"
    raise FormatError(where, "no kernel version here: give /proc/version ('Linux version "
                             "3.4.5 ...') or the output of `uname -r` ('3.4.5-g1a2b3c4')")


def choose_kernel(args: argparse.Namespace, snapshot: VmallocinfoSnapshot,
                  meminfo: dict[str, int] | None) -> KernelChoice:
    """``--kernel``, ``--version-file``, or what the dump tells (``infer_kernel``)."""
    arch = args.arch if args.arch else None
    try:
        inferred, reason = infer_kernel(snapshot, meminfo, arch=arch, cmdline=args.cmdline or "")
    except PyvmallocError:
        inferred, reason = KernelRange.everything(), "the dump could not be read for it"
    exact = None
    if args.kernel is not None:
        exact, how = parse_version(args.kernel), f"given: --kernel {args.kernel}"
    elif args.version_file is not None:
        exact, where = read_version_file(args.version_file)
        how = f"from version text: {where}"
    if exact is not None:
        if inferred.known and not inferred.contains(exact):
            how += (f"; the dump suggests {inferred} ({reason}): check the version")
        return KernelChoice(KernelRange.only(exact), exact, how)
    if inferred.known:
        return KernelChoice(inferred, None, f"inferred from the dump: {reason}")
    return KernelChoice(inferred, None, f"unknown: {reason}; give --kernel or --version-file. "
                                        f"Answers that depend on it are given for each rule")


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    p = subparsers.add_parser(
        "analyze", help="where the vmalloc space went, verdict first (any vmalloc dump format)",
        description="Summarize a /proc/vmallocinfo snapshot: bytes by kind, top callers, pages "
                    "per node, free holes, fragmentation and VmallocUsed/VmallocChunk.")
    p.add_argument("snapshot", metavar="SNAPSHOT", nargs="?",
                   help="a vmalloc dump in any format (/proc/vmallocinfo, Android bugreport, crash "
                        "kmem -v, gdb/drgn, ramdump-parser), alone or inside a larger text ('-': "
                        "stdin; none: this host's /proc/vmallocinfo and /proc/meminfo)")
    p.add_argument("--meminfo", metavar="FILE",
                   help="the /proc/meminfo of the same machine (VmallocTotal gives VMALLOC_END)")
    p.add_argument("--arch", metavar="A",
                   help=f"{', '.join(KNOWN_ARCHES)} (default: guessed; ppc32 and mips32 have no "
                        f"machine profile: address-based results only)")
    ver = p.add_mutually_exclusive_group()
    ver.add_argument("--kernel", metavar="VERSION", type=_kernel,
                     help="the device's Linux version: a release (3.4.5) or `uname -r` output "
                          "(3.4.5-g1a2b3c4). It decides VmallocUsed/VmallocChunk and the "
                          "vmalloc= arithmetic of --fits/--plan. Without it (or --version-file) "
                          "the version is inferred from the dump and meminfo, and answers that "
                          "depend on what cannot be told are given for each candidate rule")
    ver.add_argument("--version-file", metavar="FILE",
                     help="a saved /proc/version ('Linux version 3.4.5 ...') or `uname -r` "
                          "output of the device, instead of --kernel")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="draw the address space and hole sizes")
    p.add_argument("--top", metavar="N", type=_top, default=10, help="callers listed (10)")
    p.add_argument("--cmdline", metavar="'vmalloc=240M'", default="",
                   help="the device's kernel command line (vmalloc=, mem=) for --fits/--plan")
    p.add_argument("--fits", metavar="[KIND:]SIZE[,...]",
                   help="would these requests fit now, one after the other: vmalloc sizes (16k, "
                        "8M) or module:416K, bpf:64K (a JIT image), ioremap:16M")
    p.add_argument("--plan", metavar="SIZE[,SIZE...]",
                   help="smallest vmalloc= at which the snapshot plus these sizes fit")
    p.add_argument("--headroom", metavar="PCT", default="0%",
                   help="free share of the vmalloc area --plan must leave (e.g. 25%%; default 0%%)")
    p.set_defaults(func=run)


def _hex(n: int | None) -> str | None:
    return None if n is None else f"0x{n:x}"


def _fit_json(a: FitAnswer, kind: str = "vmalloc") -> dict[str, Any]:
    return {"step": a.step, "kind": kind, "size": a.size, "reserved": a.reserved, "ok": a.ok,
            "address": _hex(a.address), "reason": a.reason, "largest_hole": a.largest_hole,
            "total_free": a.total_free, "holes": a.holes, "pages_ok": a.pages_ok}


def _trial_json(t: Trial | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"param": t.param, "vmalloc_start": _hex(t.vmalloc_start),
            "vmalloc_end": _hex(t.vmalloc_end), "ok": t.ok, "why": t.why, "free": t.free,
            "area_size": t.area_size, "free_fraction": t.free_fraction,
            "largest_hole": t.largest_hole, "kept": t.kept, "relocated": t.relocated,
            "unplaced": t.unplaced, "fits": [_fit_json(a) for a in t.fits]}


def _plan_json(p: PlanAnswer) -> dict[str, Any]:
    return {"trusted": p.trusted, "arch": p.arch, "sizes": list(p.sizes), "headroom": p.headroom,
            "value": p.value, "param": p.param, "ok": p.ok, "reason": p.reason, "step": p.step,
            "current": _trial_json(p.current), "planned": _trial_json(p.planned),
            "smaller": _trial_json(p.smaller), "assumptions": list(p.assumptions),
            "notes": list(p.notes), "needed": p.needed, "kernel_rules": p.kernel}


_SEQUENCE = ("each request is evaluated after the ones before it succeeded, with the machine's "
             "own allocator; all are undone afterwards")


def _fits_kinds(m: Any, requests: list[tuple[str, int]]) -> list[tuple[str, FitAnswer]]:
    """fits() of requests of mixed kinds, one sequence: each sees every one before it."""
    return [(kind, a) for (kind, _), a in zip(requests, fits_requests(m, requests))]


def _fits_by_kernel(args: argparse.Namespace, snapshot: VmallocinfoSnapshot,
                    meminfo: dict[str, int] | None, requests: list[tuple[str, int]],
                    choice: KernelChoice
                    ) -> list[tuple[KernelRange, Any, list[tuple[str, FitAnswer]]]]:
    """fits() on the snapshot's machine under each rule set the kernel choice allows (the
    allocator, VMALLOC_END); neighbouring kernels with the same answers merged."""
    import pyvmalloc as pv

    out: list[tuple[KernelRange, Any, list[tuple[str, FitAnswer]]]] = []
    arch = args.arch
    if arch is None:
        from pyvmalloc.snapshot.restore import resolve_arch
        arch = resolve_arch(snapshot, None)[0]
    for part in choice.kernels.split(version_rules(arch, "fits")):
        m = pv.Machine.from_snapshot(snapshot, meminfo, arch=args.arch, cmdline=args.cmdline,
                                     kernel=choice.exact or part.lo)
        answers = _fits_kinds(m, requests)
        key = [(a.ok, a.address, a.reason) for _, a in answers]
        if out and [(a.ok, a.address, a.reason) for _, a in out[-1][2]] == key \
                and (out[-1][1].VMALLOC_START, out[-1][1].VMALLOC_END) == (m.VMALLOC_START,
                                                                           m.VMALLOC_END):
            out[-1] = (KernelRange(out[-1][0].lo, part.hi), out[-1][1], out[-1][2])
        else:
            out.append((part, m, answers))
    return out


def _kernels_label(choice: KernelChoice, part: KernelRange, whole: bool) -> str:
    if choice.exact is not None:
        return f"Linux {choice.exact}"
    if whole:
        return f"{part} (every kernel the dump allows)" if choice.kernels.known else \
            "any kernel (the answer is the same under every rule)"
    return str(part)


def _what_if(args: argparse.Namespace, snapshot: VmallocinfoSnapshot,
             meminfo: dict[str, int] | None, choice: KernelChoice
             ) -> tuple[dict[str, Any], list[tuple[KernelRange, PlanAnswer]] | None]:
    """The ``fits``/``plan`` JSON objects (and the plan); ConfigError for bad sizes, headroom or
    command line (exit 2); answers with ``error`` when the snapshot cannot be placed on a machine."""
    from pyvmalloc.snapshot.restore import resolve_arch

    out: dict[str, Any] = {}
    def option(name: str, value: Any, parse: Any) -> Any:
        try:
            return None if value is None else parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    fit_sizes = option("--fits", args.fits, parse_fit_requests)
    plan_sizes = option("--plan", args.plan, parse_sizes)
    headroom = option("--headroom", args.headroom, parse_headroom)
    if fit_sizes is None and plan_sizes is None:
        return out, None
    error = None
    if not snapshot.addresses_trusted:
        error = (f"addresses cannot be trusted ({snapshot.address_reason}): what-if answers "
                 f"need the real addresses")
    elif args.arch in LAYOUT_ONLY_ARCHES:
        error = (f"{args.arch} has no machine profile ({LAYOUT_ONLY_ARCHES[args.arch]}): the "
                 f"model cannot boot it, so no what-if answer; the summary is read from the "
                 f"dump alone")
    else:
        try:
            resolve_arch(snapshot, args.arch)
        except ConfigError as exc:
            error = str(exc)
    if error is not None:
        if fit_sizes is not None:
            out["fits"] = {"trusted": snapshot.addresses_trusted, "error": error, "answers": []}
        if plan_sizes is not None:
            out["plan"] = {"trusted": snapshot.addresses_trusted, "error": error}
        return out, None
    if fit_sizes is not None:
        groups = _fits_by_kernel(args, snapshot, meminfo, fit_sizes, choice)
        by_kernel = [{"kernels": _kernels_label(choice, part, len(groups) == 1),
                      "vmalloc_start": _hex(m.VMALLOC_START), "vmalloc_end": _hex(m.VMALLOC_END),
                      "modules_start": _hex(m.layout.modules_start),
                      "modules_end": _hex(m.layout.modules_end),
                      "answers": [_fit_json(a, kind) for kind, a in answers]}
                     for part, m, answers in groups]
        kinds = sorted({k for k, _ in fit_sizes})
        out["fits"] = {"trusted": True, "sequence": _SEQUENCE,
                       "kind": kinds[0] if len(kinds) == 1 else "mixed",
                       "kernel": choice.text, "by_kernel": by_kernel}
        if len(by_kernel) == 1:
            out["fits"].update({k: by_kernel[0][k] for k in ("vmalloc_start", "vmalloc_end",
                                                             "answers")})
    answers = None
    if plan_sizes is not None:
        answers = plan_by_kernel(snapshot, plan_sizes, headroom, args.arch, args.cmdline,
                                 meminfo, kernels=choice.kernels)
        rules = version_rules(answers[0][1].arch)
        by_kernel = []
        for i, (part, a) in enumerate(answers):
            doc = _plan_json(a)
            doc["kernels"] = _kernels_label(choice, part, len(answers) == 1)
            if i:
                doc["differs_by"] = rules_between(answers[i - 1][0], part, rules)
            by_kernel.append(doc)
        if len(by_kernel) == 1:
            out["plan"] = dict(by_kernel[0], kernel=choice.text)
        else:
            out["plan"] = {"trusted": True, "kernel": choice.text, "value": None, "param": None,
                           "ok": all(d["ok"] for d in by_kernel),
                           "reason": "the answer depends on the kernel version",
                           "by_kernel": by_kernel}
    return out, answers



def _format_trial(label: str, t: Trial | None) -> list[str]:
    if t is None:
        return []
    return [f"  {label}: 0x{t.vmalloc_start:x}-0x{t.vmalloc_end:x} "
            f"({format_size(t.area_size)}): {'ok' if t.ok else 'NOT enough'}: {t.why}"]


def format_what_if(doc: dict[str, Any], args: argparse.Namespace) -> str:
    """The human text of the ``fits``/``plan`` answers: one answer when the kernel's rules do not
    change it, else one per kernel range with the rule (commit) that makes the difference."""
    out: list[str] = []
    fit = doc.get("fits")
    if fit is not None:
        out += ["", f"fits ({args.fits}): {fit.get('error') or _SEQUENCE}"]
        groups = fit.get("by_kernel", [])
        if len(groups) == 1:
            out.append(f"  kernel: {groups[0]['kernels']}")
        for g in groups:
            indent = "  "
            if len(groups) > 1:
                out.append(f"  on {g['kernels']} (vmalloc {g['vmalloc_start']}-{g['vmalloc_end']}):")
                indent = "    "
            for a in g["answers"]:
                verdict = "fits" if a["ok"] else "FAILS"
                kind = "" if a["kind"] == "vmalloc" else f"{a['kind']}:"
                out.append(f"{indent}#{a['step']} {kind}{format_size(a['size']):>6}: {verdict}: "
                           f"{a['reason']}")
    pl = doc.get("plan")
    if pl is not None:
        out += ["", f"plan ({args.plan}, headroom {args.headroom}):"]
        if "error" in pl:
            out.append(f"  {pl['error']}")
        elif "by_kernel" not in pl:
            out.append(f"  {pl['reason']}")
            out.append(f"  kernel: {pl['kernels']}")
        else:
            out.append(f"  the answer depends on the kernel version ({pl['kernel']}):")
            for g in pl["by_kernel"]:
                rule = f" ({'; '.join(g['differs_by'])})" if g.get("differs_by") else ""
                out.append(f"  on {g['kernels']}{rule}: {g['reason']}")
    return "\n".join(out) + ("\n" if out else "")


def _format_plan_details(answers: list[tuple[KernelRange, PlanAnswer]]) -> str:
    first = answers[0][1]
    out = _format_trial("now (the snapshot's layout)", first.current)
    for part, p in answers:
        if p.smaller is not None:
            on = f" on {part}" if len(answers) > 1 else ""
            out += _format_trial(f"one step smaller{on}, {p.smaller.param}", p.smaller)
    notes: list[str] = []
    for _, p in answers:
        notes += [n for n in p.notes if n not in notes]
    out += [f"  note: {n}" for n in notes]
    out += ["  assumed:"] + [f"    - {r}" for r in first.assumptions]
    return "\n".join(out) + "\n"


def _check_arch(arch: str | None) -> None:
    if arch is not None and arch not in KNOWN_ARCHES:
        raise ConfigError(f"--arch {arch}: unknown arch; known: {', '.join(KNOWN_ARCHES)}")


def _check_plot(path: str | None) -> None:
    if path is None:
        return
    base = os.path.basename(path)
    if path.endswith(("/", os.sep)) or os.path.isdir(path) or (base.startswith(".") and \
            base.count(".") == 1):
        raise ConfigError(f"--plot {path}: give a file name (e.g. {os.path.join(path, 'vmalloc.png')}"
                          f"), not a directory")


def _live_inputs(args: argparse.Namespace) -> tuple[str, str]:
    """No SNAPSHOT: the running kernel's /proc/vmallocinfo (and /proc/meminfo, its version)."""
    if not os.path.exists("/proc/vmallocinfo"):
        raise ConfigError("no SNAPSHOT given and this host has no /proc/vmallocinfo: give a file "
                          "or '-'")
    with open("/proc/vmallocinfo", encoding="utf-8", errors="replace") as f:
        text = f.read()
    if args.meminfo is None and os.path.exists("/proc/meminfo"):
        args.meminfo = "/proc/meminfo"
    args.live_note = None
    if args.kernel is None and args.version_file is None:
        args.kernel, args.live_note = live_kernel()
    if args.arch is None:
        args.arch, args.arch_how = live_arch()
    try:
        with open("/proc/sys/kernel/kptr_restrict", encoding="ascii") as f:
            args.kptr_restrict = f.read().strip()
    except OSError:
        args.kptr_restrict = None
    return text, "/proc/vmallocinfo"


def _live_log_note() -> str:
    """What this host's kernel log says about vmalloc failures, in one sentence."""
    from pyvmalloc.formats.kernel_log import parse_kernel_log

    try:
        text, where = read_kmsg()
    except OSError as exc:
        return (f"this host's kernel log (/dev/kmsg) is not readable ({exc.strerror or exc}; "
                f"kernel.dmesg_restrict): its vmalloc failures, if any, are not shown")
    log = parse_kernel_log(text, where)
    if not log.failures:
        return f"this host's kernel log ({log.lines_read} lines) has no vmalloc failure"
    last = log.failures[-1]
    return (f"this host's kernel log has {len(log.failures)} vmalloc failures, the last "
            f"{where}:{last.lineno}: {last.text[:80]!r}: `pyvmalloc explain` says what they mean")


def _one_layout(args: argparse.Namespace, snapshot: VmallocinfoSnapshot,
                meminfo: dict[str, int] | None, choice: KernelChoice) -> Any:
    """The device's layout, worked out once (arch, VMALLOC_START/END for the chosen kernel):
    None when the addresses are hashed or the arch has no machine profile."""
    from pyvmalloc.snapshot.restore import snapshot_layout

    if not snapshot.addresses_trusted or (args.arch is not None and args.arch not in PROFILES):
        return None
    try:
        return snapshot_layout(snapshot, meminfo, args.arch, args.cmdline,
                               kernel=choice.exact or (choice.kernels.lo if choice.kernels.known
                                                       else None))
    except ConfigError:
        return None


def _analyze(args: argparse.Namespace) -> int:
    _check_arch(args.arch)
    _check_plot(args.plot)
    if args.snapshot is None:
        text, source = _live_inputs(args)
    else:
        source = "<stdin>" if args.snapshot == "-" else args.snapshot
        text = read_text(args.snapshot)
    snapshot, fmt = read_dump(text, source)
    if not snapshot.lines:
        raise FormatError(source, "no vmalloc areas in this text (a running kernel always has "
                                  "some: was it captured as root, and is it /proc/vmallocinfo?)")
    meminfo = None
    if args.meminfo is not None:
        meminfo = parse_meminfo(read_text(args.meminfo), args.meminfo)
    choice = choose_kernel(args, snapshot, meminfo)
    layout = _one_layout(args, snapshot, meminfo, choice)
    bounds = None
    if layout is not None:
        bounds = Bounds(layout.vmalloc_start, layout.vmalloc_end, layout.bounds_how)
    summary = summarize(snapshot, args.arch or (layout.arch if layout is not None else None),
                        bounds=bounds, meminfo=meminfo,
                        kernel=None if choice.exact is None else str(choice.exact), top=args.top)
    if layout is not None and args.arch is None:
        summary.arch_reason = next((m.split("(", 1)[1].split("), Linux")[0]
                                    for m in layout.messages[:1] if "(" in m), summary.arch_reason)
    summary.kernel, summary.kernel_how = choice.text, choice.how
    if getattr(args, "arch_how", None) and summary.arch == args.arch:
        summary.arch_reason = args.arch_how
    if source == "/proc/vmallocinfo" and args.snapshot is None:
        summary.warnings.append(_live_log_note())
    if getattr(args, "live_note", None):
        summary.warnings.append(args.live_note)
        summary.kernel_how += f" ({args.live_note})"
    if "hashed" in snapshot.address_reason and source == "/proc/vmallocinfo":
        now = getattr(args, "kptr_restrict", None)
        summary.warnings.append(f"this host hashes the addresses (%pK; kernel.kptr_restrict is "
                                f"{now if now is not None else 'unreadable'}, uid {os.getuid()}): "
                                f"run as root with `sysctl kernel.kptr_restrict=1` (root then sees "
                                f"real ones) for holes and what-if answers")
    what_if, answer = _what_if(args, snapshot, meminfo, choice)
    module_area = None
    if layout is not None:
        module_area = (layout.profile.modules_start or 0, layout.profile.modules_end or 0)
    verdict = format_verdict(summary, fmt, what_if.get("fits"), what_if.get("plan"), module_area)
    if args.plot:
        from pyvmalloc.viz.plot import plot_snapshot

        b = (summary.bounds.start, summary.bounds.end) if summary.bounds else None
        plot_snapshot(snapshot, args.plot, b, summary.holes, summary.page_size)
    if args.json:
        doc = {"verdict": verdict, "format": fmt}
        doc.update(to_json(summary))
        doc.update(what_if)
        print(json.dumps(doc, indent=2))
    else:
        text = "\n".join(verdict) + "\n\n" + format_summary(summary) + format_what_if(what_if, args)
        if answer is not None:
            text += _format_plan_details(answer)
        sys.stdout.write(text)
    if args.plot:
        print(f"plot written to {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``analyze``; every failure is one line on stderr and exit code 2."""
    try:
        return _analyze(args)
    except (PyvmallocError, OSError) as exc:
        return report_error("analyze", exc, args.snapshot)
    except ValueError as exc:
        # matplotlib refuses a --plot suffix it cannot write ("Format 'xyz' is not supported").
        return report_error("analyze", exc, args.plot or args.snapshot)
