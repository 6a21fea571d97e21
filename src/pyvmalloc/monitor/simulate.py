"""A series of ``/proc/vmallocinfo`` dumps from a model machine that leaks BPF JIT images.

The machine boots, loads a few modules, keeps per-boot buffers, and then, at each step of
simulated time: kernel thread stacks come and go (``kernel_clone``, the churn every host shows),
a short-lived BPF program is loaded and the previous one freed, and ``leak_per_step`` programs
are loaded and never freed -- what a container host whose agent reloads its programs without
closing the old ones looks like.  Each step's dump is the machine's own ``/proc`` rendering,
written with its meminfo next to it and the file's modification time set to the simulated time
(which is what ``pyvmalloc diff`` reads when no times are given).

``hashed=True`` prints addresses as ``%pK`` does with ``kptr_restrict=0``: each pointer through
one keyed hash for the whole series (the kernel keys it once per boot), 32 bits wide.

Run as ``python3 -m pyvmalloc.monitor.simulate OUTDIR`` to write the default series.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sys
from collections.abc import Sequence

import pyvmalloc as pv

__all__ = ["BPF_CALLER", "STACK_CALLER", "bpf_leak_series", "hash_addresses"]

# What x86_64 5.x-6.9 kernels print for a JIT image: module_alloc() records its caller.
BPF_CALLER = "bpf_jit_alloc_exec+0xe/0x20"
STACK_CALLER = "kernel_clone+0xb8/0x400"
_MODULE_CALLERS = ("load_module+0x1ec3/0x2bb0", "load_module+0x1ec3/0x2bb0",
                   "load_module+0x2042/0x2bb0")
_BOOT_CALLERS = (("alloc_large_system_hash+0x16b/0x25e", 1 << 20),
                 ("pcpu_mem_zalloc+0x2b/0x70", 64 << 10),
                 ("bpf_prog_alloc_no_stats+0x4a/0x230", 8 << 10))
_RANGE = re.compile(r"^0x([0-9a-f]+)-0x([0-9a-f]+)", re.MULTILINE)


def hash_addresses(text: str, key: bytes) -> str:
    """``text`` with every area's two addresses replaced as ``%pK`` prints them (keyed hash)."""
    def one(hexdigits: str) -> str:
        digest = hashlib.blake2b(bytes.fromhex(hexdigits.zfill(16)), key=key, digest_size=4)
        return f"0x{int.from_bytes(digest.digest(), 'big'):016x}"

    return _RANGE.sub(lambda m: f"{one(m.group(1))}-{one(m.group(2))}", text)


def bpf_leak_series(outdir: str, steps: int = 6, interval: float = 600.0, *,
                    leak_per_step: int = 3, prog_size: int = 6000, arch: str = "x86_64",
                    ram: str = "2G", kernel: str | None = None, start: float = 1_767_225_600.0,
                    hashed: bool = False, seed: int = 1) -> list[str]:
    """Write ``steps + 1`` dumps (``vmallocinfo-NNN.txt`` and ``.meminfo``) to ``outdir``.

    Sample ``i`` is at ``start + i * interval`` seconds (default: 2026-01-01 00:00 UTC, one
    every 10 minutes).  ``leak_per_step`` images of ``prog_size`` bytes of program each leak per
    step.  Returns the dump paths in time order.
    """
    os.makedirs(outdir, exist_ok=True)
    rng = random.Random(seed)
    m = pv.Machine(arch=arch, ram=ram, kernel=kernel)
    for caller in _MODULE_CALLERS:
        m.module_alloc(rng.randrange(20_000, 200_000), caller=caller)
    for caller, size in _BOOT_CALLERS:
        m.vmalloc(size, caller=caller)
    stacks = [a for a in (m.vmalloc(16 << 10, caller=STACK_CALLER) for _ in range(12)) if a]
    # One short-lived program is always loaded, from before the first dump on.
    transient = m.bpf_jit_alloc(rng.randrange(500, 3000), privileged=True, caller=BPF_CALLER)
    key = seed.to_bytes(8, "little")
    paths: list[str] = []
    for step in range(steps + 1):
        if step:
            # Thread stacks: a random walk around a dozen, up and down.
            for _ in range(rng.randrange(0, 6)):
                a = m.vmalloc(16 << 10, caller=STACK_CALLER)
                if a is not None:
                    stacks.append(a)
            for _ in range(rng.randrange(0, 6)):
                if stacks:
                    m.vfree(stacks.pop(rng.randrange(len(stacks))))
            if transient is not None:
                m.bpf_jit_free(transient)
            transient = m.bpf_jit_alloc(rng.randrange(500, 3000), privileged=True,
                                        caller=BPF_CALLER)
            for _ in range(leak_per_step):
                m.bpf_jit_alloc(prog_size, privileged=True, caller=BPF_CALLER)
        text = m.vmallocinfo()
        if hashed:
            text = hash_addresses(text, key)
        path = os.path.join(outdir, f"vmallocinfo-{step:03d}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        meminfo = os.path.splitext(path)[0] + ".meminfo"
        with open(meminfo, "w", encoding="utf-8") as f:
            f.write(m.meminfo())
        when = start + step * interval
        os.utime(path, (when, when))
        os.utime(meminfo, (when, when))
        paths.append(path)
    return paths


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python3 -m pyvmalloc.monitor.simulate OUTDIR", file=sys.stderr)
        return 2
    for path in bpf_leak_series(argv[0]):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
