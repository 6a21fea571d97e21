"""Options and helpers shared by the subcommands that boot a machine."""

from __future__ import annotations

import argparse

import pyvmalloc as pv
from pyvmalloc.versions import DEFAULT_KERNEL
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


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters escaped, so that an error
    message that quotes the user's input stays on one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
