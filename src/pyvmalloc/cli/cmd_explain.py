"""``pyvmalloc explain [LOG|-]``: what a vmalloc failure in a kernel log means and what to do.

Reads pasted kernel log text (dmesg, journalctl -k, syslog, a forum post or bug report) and
answers each failure verdict first (analysis/explain.py).  Without LOG on a Linux host it reads
the running kernel's log (``dmesg``'s /dev/kmsg is often root-only: then it says so).  Any
error is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from pyvmalloc.analysis.explain import explain, format_explanations, to_json
from pyvmalloc.cli.common import live_arch, live_kernel, read_kmsg, report_error
from pyvmalloc.errors import ConfigError, FormatError, PyvmallocError
from pyvmalloc.formats.kernel_log import parse_kernel_log
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.dumps import read_dump
from pyvmalloc.formats.vmallocinfo import VmallocinfoSnapshot
from pyvmalloc.snapshot.layout import guess_arch
from pyvmalloc.sizes import memparse, parse_size

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add the ``explain`` subcommand."""
    p = subparsers.add_parser(
        "explain", help="explain vmalloc failures in a kernel log",
        description="Find every vmalloc failure in kernel log text (dmesg, journalctl -k, a "
                    "pasted bug report) and say, verdict first, which range it was for, "
                    "whether vmalloc= can help, and what to do.")
    p.add_argument("log", metavar="LOG", nargs="?",
                   help="kernel log text ('-': stdin; default on Linux: the running kernel's "
                        "log via /dev/kmsg)")
    p.add_argument("--arch", metavar="A", help="the device's arch (default: told by the log)")
    p.add_argument("--kernel", metavar="VERSION", help="the device's Linux version")
    p.add_argument("--ram", metavar="SIZE", help="the device's RAM (512M, 2G)")
    p.add_argument("--meminfo", metavar="FILE", help="the device's /proc/meminfo")
    p.add_argument("--vmallocinfo", metavar="FILE",
                   help="the device's /proc/vmallocinfo, taken near the failure: vmalloc= is "
                        "then planned on it")
    p.add_argument("--cmdline", metavar="'vmalloc=240M'", help="the device's kernel command line")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _explain(args: argparse.Namespace) -> int:
    from pyvmalloc.cli.cmd_analyze import read_text

    if args.log is None:
        # This host: its kernel, arch and RAM unless given.
        if args.kernel is None:
            args.kernel, note = live_kernel()
            if note:
                print(f"note: {note}", file=sys.stderr)
        if args.arch is None:
            args.arch = live_arch()[0]
        if args.meminfo is None and os.path.exists("/proc/meminfo"):
            args.meminfo = "/proc/meminfo"
        try:
            text, source = read_kmsg()
        except PermissionError:
            raise ConfigError("no LOG given and the running kernel's log (/dev/kmsg) is not "
                              "readable by this user (kernel.dmesg_restrict=1): run as root, "
                              "or save `sudo dmesg` to a file and give it") from None
        except FileNotFoundError:
            raise ConfigError("no LOG given and this host has no /dev/kmsg: give a file or '-'") from None
    else:
        text = read_text(args.log)
        source = "<stdin>" if args.log == "-" else args.log
    ram = None
    if args.ram is not None:
        try:
            ram = parse_size(args.ram)
        except ConfigError as exc:
            raise ConfigError(f"--ram: {exc}") from None
        if ram == 0:
            raise ConfigError("--ram 0: a device has some RAM (512M, 2G)")
    for word in (args.cmdline or "").split():
        # The boot parameters the model sizes its layout with: a value it cannot read would
        # only turn into a note and an answer computed without it.
        key, eq, value = word.partition("=")
        if eq and key in ("vmalloc", "mem"):
            _, rest = memparse(value)
            if not value or (rest and not (key == "mem" and rest.startswith("@"))):
                raise ConfigError(f"--cmdline {word}: {value!r} is not a size")
    meminfo = parse_meminfo(read_text(args.meminfo), args.meminfo) if args.meminfo else None
    snapshot = None
    if args.vmallocinfo:
        snapshot = read_dump(read_text(args.vmallocinfo), args.vmallocinfo)[0]
        if not snapshot.lines:
            raise FormatError(args.vmallocinfo, "no vmalloc areas in this text (a running kernel "
                                                "always has some: was it captured as root?)")
    log = parse_kernel_log(text, source)
    mf, answers = explain(log, text, arch=args.arch, kernel=args.kernel, ram=ram,
                          meminfo=meminfo, cmdline=args.cmdline, snapshot=snapshot)
    if snapshot is not None:
        _check_dump_fits_log(args.vmallocinfo, snapshot, mf.arch)
    if args.json:
        print(json.dumps(to_json(mf, answers), indent=2))
    else:
        sys.stdout.write(format_explanations(log, mf, answers))
    return 0


def _check_dump_fits_log(path: str, snapshot: VmallocinfoSnapshot, arch: str | None) -> None:
    """A --vmallocinfo that cannot be the log's machine's: planned on anyway, it gave "no
    vmalloc= needed" for an i386 failure from an ARM dump, and a hashed one was passed over
    without a word."""
    if not snapshot.addresses_trusted:
        raise ConfigError(f"--vmallocinfo {path}: {snapshot.address_reason}: nothing to plan on "
                          f"(read /proc/vmallocinfo as root with kernel.kptr_restrict=1)")
    dump_arch, why = guess_arch(snapshot)
    if arch is not None and dump_arch is not None and \
            dump_arch.split("-")[0] != arch.split("-")[0]:
        raise ConfigError(f"--vmallocinfo {path}: a dump of an {dump_arch} machine ({why}), but "
                          f"the log's is {arch}: give the dump of the machine that logged")


def run(args: argparse.Namespace) -> int:
    """Run ``explain``; every failure is one line on stderr and exit code 2."""
    try:
        return _explain(args)
    except (PyvmallocError, OSError) as exc:
        return report_error("explain", exc, args.log)
