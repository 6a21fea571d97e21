"""Options and helpers shared by the subcommands that boot a machine."""

from __future__ import annotations

import argparse
import os

import pyvmalloc as pv
from pyvmalloc.errors import ConfigError, FormatError, PyvmallocError
from pyvmalloc.versions import DEFAULT_KERNEL, KNOWN_VERSIONS, parse_version
from pyvmalloc.vmalloc.allocator import ALLOCATORS


def add_machine_args(p: argparse.ArgumentParser, default_arch: str = "x86_64", default_ram: str = "1G") -> None:
    """``--arch --ram --nodes --cpus --cmdline --allocator``."""
    p.add_argument("--arch", default=default_arch, help=f"machine profile (default {default_arch}); "
                   "see `pyvmalloc machine --list`")
    p.add_argument("--ram", default=default_ram, help=f"RAM size like 512M, 64G (default {default_ram})")
    p.add_argument("--nodes", type=int, default=1, help="NUMA nodes (default 1)")
    p.add_argument("--cpus", type=int, default=1, help="CPUs (default 1)")
    p.add_argument("--cmdline", default="", help="boot parameters, e.g. 'vmalloc=384M'")
    p.add_argument("--kernel", default=None,
                   help=f"Linux version the machine runs, e.g. 2.6.22, 3.4.5, 6.1 (default "
                        f"{DEFAULT_KERNEL}); every rule that changed between releases follows it")
    p.add_argument("--allocator", default=None, choices=list(ALLOCATORS),
                   help="override the kernel's address-space allocator: list (2.6.22), rbtree "
                        "(2.6.28), rbtree-cache (2.6.39-5.1), kva-rbtree (5.2+, the kernel's tree "
                        "shape) or kva (5.2+'s free tree, balanced its own way)")


def boot_from_args(args: argparse.Namespace) -> pv.Machine:
    """A machine booted from the parsed options (ConfigError on bad ones)."""
    return pv.Machine(arch=args.arch, ram=args.ram, nodes=args.nodes, cpus=args.cpus,
                      cmdline=args.cmdline, allocator=args.allocator, kernel=args.kernel)


def report_error(command: str, exc: Exception, name: str | None) -> int:
    """Print ``exc`` as the one line a subcommand ends with and return exit code 2:
    ``FILE:LINE: what`` for a FormatError, ``pyvmalloc COMMAND: what`` for the other model
    errors, ``NAME: strerror`` for a file that cannot be read.  A closed stdout pipe is raised
    again for main(), which ends quietly."""
    import os
    import sys

    if isinstance(exc, BrokenPipeError):
        raise exc
    if isinstance(exc, PyvmallocError):
        # FormatError already reads "FILE:LINE: what"; the others name no file.
        prefix = "" if isinstance(exc, FormatError) else f"pyvmalloc {command}: "
        print(one_line(f"{prefix}{exc}"), file=sys.stderr)
    elif isinstance(exc, OSError):
        fname = exc.filename if exc.filename is not None else name
        print(one_line(f"{os.fspath(fname or '-')}: {exc.strerror or exc}"), file=sys.stderr)
    else:
        print(one_line(f"{name}: {exc}"), file=sys.stderr)
    return 2


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so that an error
    message that quotes the user's input stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def live_kernel() -> tuple[str | None, str | None]:
    """This host's kernel version for the model (``uname -r``) and a note when the model has to
    use another: a kernel newer than the newest it knows gets that one's rules."""
    import platform

    release = platform.release()
    try:
        parse_version(release)
        return release, None
    except ConfigError:
        pass
    newest = KNOWN_VERSIONS[-1]
    try:
        major, minor = (int(x) for x in release.split("-")[0].split(".")[:2])
    except ValueError:
        return None, f"this host's kernel {release!r} is not a version the model can read"
    if (major, minor) > tuple(int(x) for x in newest.split(".")[:2]):
        return newest, (f"this host runs Linux {release}, newer than the model knows: the rules "
                        f"of Linux {newest}, the newest it has, are used")
    return None, f"this host's kernel {release!r} is older than the model knows"


def live_arch() -> tuple[str | None, str]:
    """This host's arch as a profile name (``uname -m``), and how it was told."""
    import platform

    machine = platform.machine()
    arch = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64",
            "i386": "i386", "i586": "i386", "i686": "i386"}.get(machine)
    if arch is None and machine.startswith("armv"):
        arch = "arm"
    return arch, f"this host (uname -m: {machine})"


def read_kmsg() -> tuple[str, str]:
    """The running kernel's log: /dev/kmsg read without blocking (records "pri,seq,ts,-;text")."""
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    out: list[str] = []
    try:
        while True:
            try:
                rec = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == 32:      # EPIPE: a record was overwritten; keep reading
                    continue
                raise
            if not rec:
                break
            head, _, body = rec.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            ts = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else 0
            out.append(f"[{ts // 1000000:5d}.{ts % 1000000:06d}] {body.splitlines()[0] if body else ''}")
    finally:
        os.close(fd)
    return "\n".join(out) + "\n", "/dev/kmsg"
