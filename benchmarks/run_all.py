"""Run every benchmark of the project, one after the other: ``python3 benchmarks/run_all.py``.

Each script prints its own figures and the ratios measured in the same run; ``--quick``
passes a smaller size where a script has one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["bench_machine.py", "bench_phys.py", "bench_mmu.py", "bench_allocators.py", "bench_vmalloc.py",
         "bench_scale.py", "soak.py"]


def main() -> int:
    """Run the scripts; the exit code is the first failure's, else 0."""
    quick = "--quick" in sys.argv[1:]
    status = 0
    for name in ORDER:
        print(f"\n##### {name}", flush=True)
        args = [sys.executable, str(HERE / name)]
        if quick and name in ("bench_vmalloc.py", "bench_scale.py"):
            args.append("--quick")
        if name == "soak.py":  # a short soak here; run it alone for longer (--seconds N)
            args += ["--seconds", "10" if quick else "30"]
        rc = subprocess.call(args)
        status = status or rc
    return status


if __name__ == "__main__":
    sys.exit(main())
