"""Benchmark of booting a whole ``pv.Machine`` (issue 2): x86_64 with 64 GiB of RAM.

Each boot runs in a fresh Python process (so one boot's memory does not hide the next) and
reports the wall time of ``Machine(...)`` and the growth of host RSS, against the empty case:
the same process importing pyvmalloc and booting nothing.  Goal: < 1 s and < 150 MiB.

Run: ``python3 benchmarks/bench_machine.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
import pyvmalloc as pv
from pyvmalloc.kernel.machine import Machine
before = rss()
t0 = time.perf_counter()
m = Machine(arch=sys.argv[1], ram=sys.argv[2], nodes=int(sys.argv[3])) if sys.argv[2] != "0" else None
t = time.perf_counter() - t0
if m is not None:
    a = m.vmalloc(1 << 20)
    assert a is not None
print(json.dumps({"seconds": t, "rss_kib": rss() - before}))
"""


def boot(arch: str, ram: str, nodes: int = 1) -> dict[str, float]:
    """Boot in a child process; its seconds and RSS growth (KiB)."""
    out = subprocess.run([sys.executable, "-c", CHILD, arch, ram, str(nodes)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    """Print boot figures for a few machines and the 64 GiB goal."""
    empty = min((boot("x86_64", "0") for _ in range(3)), key=lambda r: r["rss_kib"])
    print(f"empty case (import only): RSS +{empty['rss_kib'] / 1024:.1f} MiB")
    for arch, ram, nodes in [("x86_64", "64G", 1), ("x86_64", "64G", 4), ("x86_64", "1T", 1),
                             ("i386", "4G", 1), ("arm", "1G", 1), ("arm64", "64G", 2)]:
        r = min((boot(arch, ram, nodes) for _ in range(3)), key=lambda r: r["seconds"])
        goal = "   (goal < 1 s, < 150 MiB)" if (arch, ram, nodes) == ("x86_64", "64G", 1) else ""
        print(f"{arch:<8} {ram:>4} {nodes} node(s): boot {r['seconds'] * 1e3:8.1f} ms, "
              f"RSS +{r['rss_kib'] / 1024:7.1f} MiB{goal}")


if __name__ == "__main__":
    main()
