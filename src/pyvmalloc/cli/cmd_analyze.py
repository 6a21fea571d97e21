"""``pyvmalloc analyze SNAPSHOT``: where did the vmalloc space go, read from /proc/vmallocinfo.

Any error is one line ``FILE[:LINE]: what is wrong`` on stderr and exit code 2.  An empty
snapshot is not an error: it parses to no areas (as the model's freshly booted machine prints),
and the report warns that a real kernel always has some.  ``--fits`` and ``--plan`` run on a
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

from pyvmalloc.analysis.plan import (
    FitAnswer,
    PlanAnswer,
    Trial,
    fits,
    parse_headroom,
    parse_sizes,
    plan,
)
from pyvmalloc.analysis.summary import format_summary, summarize, to_json
from pyvmalloc.sizes import format_size
from pyvmalloc.cli.common import one_line
from pyvmalloc.errors import ConfigError, FormatError, PyvmallocError
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.vmalloc_meminfo import parse_kernel_version
from pyvmalloc.formats.vmallocinfo import VmallocinfoSnapshot, parse_vmallocinfo

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
        lineno = data.count(b"\n", 0, nul) + 1
        raise FormatError(f"{name}:{lineno}", "binary data (NUL byte), not a text file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        lineno = data.count(b"\n", 0, exc.start) + 1
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
        parse_kernel_version(text)
    except PyvmallocError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    p = subparsers.add_parser(
        "analyze", help="summarize a /proc/vmallocinfo snapshot",
        description="Summarize a /proc/vmallocinfo snapshot: bytes by kind, top callers, pages "
                    "per node, free holes, fragmentation and VmallocUsed/VmallocChunk.")
    p.add_argument("snapshot", metavar="SNAPSHOT", help="a /proc/vmallocinfo dump ('-': stdin)")
    p.add_argument("--meminfo", metavar="FILE",
                   help="the /proc/meminfo of the same machine (VmallocTotal gives VMALLOC_END)")
    p.add_argument("--arch", metavar="A",
                   help="x86_64, x86_64-la57, i386, i386-pae, arm or arm64 (default: guessed)")
    p.add_argument("--kernel", metavar="VERSION", type=_kernel,
                   help="kernel version, e.g. 3.4.5: whose VmallocUsed/VmallocChunk rules apply")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--plot", metavar="FILE.png", help="draw the address space and hole sizes")
    p.add_argument("--top", metavar="N", type=_top, default=10, help="callers listed (10)")
    p.add_argument("--cmdline", metavar="'vmalloc=240M'", default="",
                   help="the device's kernel command line (vmalloc=, mem=) for --fits/--plan")
    p.add_argument("--fits", metavar="SIZE[,SIZE...]",
                   help="would these vmalloc sizes (16k, 8M, 1G) fit now, one after the other")
    p.add_argument("--plan", metavar="SIZE[,SIZE...]",
                   help="smallest vmalloc= at which the snapshot plus these sizes fit")
    p.add_argument("--headroom", metavar="PCT", default="0%",
                   help="free share of the vmalloc area --plan must leave (e.g. 25%%; default 0%%)")
    p.set_defaults(func=run)


def _hex(n: int | None) -> str | None:
    return None if n is None else f"0x{n:x}"


def _fit_json(a: FitAnswer) -> dict[str, Any]:
    return {"step": a.step, "size": a.size, "reserved": a.reserved, "ok": a.ok,
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
            "notes": list(p.notes)}


_SEQUENCE = ("each request is evaluated after the ones before it succeeded, with the machine's "
             "own allocator; all are undone afterwards")


def _what_if(args: argparse.Namespace, snapshot: VmallocinfoSnapshot,
             meminfo: dict[str, int] | None) -> tuple[dict[str, Any], PlanAnswer | None]:
    """The ``fits``/``plan`` JSON objects (and the plan); ConfigError for bad sizes, headroom or
    command line (exit 2); answers with ``error`` when the snapshot cannot be placed on a machine."""
    import pyvmalloc as pv
    from pyvmalloc.snapshot.restore import resolve_arch

    out: dict[str, Any] = {}
    def option(name: str, value: Any, parse: Any) -> Any:
        try:
            return None if value is None else parse(value)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    fit_sizes = option("--fits", args.fits, parse_sizes)
    plan_sizes = option("--plan", args.plan, parse_sizes)
    headroom = option("--headroom", args.headroom, parse_headroom)
    if fit_sizes is None and plan_sizes is None:
        return out, None
    error = None
    if not snapshot.addresses_trusted:
        error = (f"addresses cannot be trusted ({snapshot.address_reason}): what-if answers "
                 f"need the real addresses")
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
        m = pv.Machine.from_snapshot(snapshot, meminfo, arch=args.arch, cmdline=args.cmdline)
        out["fits"] = {"trusted": True, "sequence": _SEQUENCE, "kind": "vmalloc",
                       "vmalloc_start": _hex(m.VMALLOC_START), "vmalloc_end": _hex(m.VMALLOC_END),
                       "answers": [_fit_json(a) for a in fits(m, fit_sizes)]}
    answer = None
    if plan_sizes is not None:
        answer = plan(snapshot, plan_sizes, headroom, args.arch, args.cmdline, meminfo)
        out["plan"] = _plan_json(answer)
    return out, answer


def _format_trial(label: str, t: Trial | None) -> list[str]:
    if t is None:
        return []
    return [f"  {label}: 0x{t.vmalloc_start:x}-0x{t.vmalloc_end:x} "
            f"({format_size(t.area_size)}): {'ok' if t.ok else 'NOT enough'}: {t.why}"]


def format_what_if(doc: dict[str, Any], args: argparse.Namespace) -> str:
    """The human text of the ``fits``/``plan`` answers."""
    out: list[str] = []
    fit = doc.get("fits")
    if fit is not None:
        out += ["", f"fits ({args.fits}): {fit.get('error') or _SEQUENCE}"]
        for a in fit["answers"]:
            verdict = "fits" if a["ok"] else "FAILS"
            out.append(f"  #{a['step']} {format_size(a['size']):>6}: {verdict}: {a['reason']}")
    pl = doc.get("plan")
    if pl is not None:
        out += ["", f"plan ({args.plan}, headroom {args.headroom}):"]
        if "error" in pl:
            out.append(f"  {pl['error']}")
        else:
            out.append(f"  {pl['reason']}")
    return "\n".join(out) + ("\n" if out else "")


def _format_plan_details(p: PlanAnswer) -> str:
    out = _format_trial("now (the snapshot's layout)", p.current)
    if p.smaller is not None:
        out += _format_trial(f"one step smaller, {p.smaller.param}", p.smaller)
    out += [f"  note: {n}" for n in p.notes]
    out += ["  assumed:"] + [f"    - {r}" for r in p.assumptions]
    return "\n".join(out) + "\n"


def _analyze(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.snapshot == "-" else args.snapshot
    snapshot = parse_vmallocinfo(read_text(args.snapshot), source)
    meminfo = None
    if args.meminfo is not None:
        meminfo = parse_meminfo(read_text(args.meminfo), args.meminfo)
    summary = summarize(snapshot, args.arch, meminfo=meminfo, kernel=args.kernel, top=args.top)
    what_if, answer = _what_if(args, snapshot, meminfo)
    if args.plot:
        from pyvmalloc.viz.plot import plot_snapshot

        bounds = (summary.bounds.start, summary.bounds.end) if summary.bounds else None
        plot_snapshot(snapshot, args.plot, bounds, summary.holes, summary.page_size)
    if args.json:
        doc = to_json(summary)
        doc.update(what_if)
        print(json.dumps(doc, indent=2))
    else:
        text = format_summary(summary) + format_what_if(what_if, args)
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
    except PyvmallocError as exc:
        # FormatError already reads "FILE:LINE: what"; the others name no file.
        prefix = "" if isinstance(exc, FormatError) else "pyvmalloc analyze: "
        print(one_line(f"{prefix}{exc}"), file=sys.stderr)
    except OSError as exc:
        name = exc.filename if exc.filename is not None else args.snapshot
        print(one_line(f"{os.fspath(name)}: {exc.strerror or exc}"), file=sys.stderr)
    except ValueError as exc:
        # matplotlib refuses a --plot suffix it cannot write ("Format 'xyz' is not supported").
        print(one_line(f"{args.plot or args.snapshot}: {exc}"), file=sys.stderr)
    return 2
