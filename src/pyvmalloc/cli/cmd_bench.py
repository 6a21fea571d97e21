"""``pyvmalloc bench``: the kernel's lib/test_vmalloc.c scenarios on the list and kva allocators.

Beside host time per operation it prints the deterministic work counters per operation
(``kernel/work.py``), which do not vary between runs.  A progress bar goes to a terminal's
stderr; Ctrl-C stops the run and prints what was measured so far (exit code 130).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from dataclasses import asdict
from typing import Any

import pyvmalloc as pv
from pyvmalloc.versions import DEFAULT_KERNEL
from pyvmalloc.vmalloc.allocator import ALLOCATORS
from pyvmalloc.errors import ConfigError
from pyvmalloc.kernel import test_vmalloc as tv
from pyvmalloc.kernel.work import FIELDS, WorkCounters
from pyvmalloc.vmalloc.pcpu_areas import PcpuArea

PARAM_NAMES = ("nr_threads", "test_repeat_count", "test_loop_count", "run_test_mask",
               "sequential_test_order", "nr_pages", "use_huge", "nr_pcpu_objects")
_BOOL_PARAMS = ("sequential_test_order", "use_huge")
# lib/test_vmalloc.c declares every parameter ``int``: insmod refuses a value over INT_MAX
# (kstrtoint: -ERANGE).  The model runs in Python, so it also bounds the work of one scenario
# (nr_threads x test_repeat_count x test_loop_count) to what finishes in minutes, not years.
INT_MAX = 2**31 - 1
MAX_LOOPS = 10**7


def register(sub: Any) -> None:
    """Add the ``bench`` subcommand."""
    p = sub.add_parser(
        "bench", description=__doc__,
        help="run lib/test_vmalloc.c's scenarios on both allocators",
        epilog="Module parameters go as key=value, as with insmod test_vmalloc.ko: "
               + ", ".join(PARAM_NAMES) + ". Scenarios (run_test_mask bits): "
               + ", ".join(f"{1 << i}={name}" for i, name, _f in tv.scenarios()) + ".",
    )
    p.add_argument("params", nargs="*", metavar="key=value", help="test_vmalloc module parameters")
    p.add_argument("--arch", default="x86_64", help="machine profile (default x86_64)")
    p.add_argument("--ram", default="1G", help="RAM (default 1G)")
    p.add_argument("--cpus", type=int, default=1, help="CPUs: lazy_max_pages grows with them (default 1)")
    p.add_argument("--allocator", choices=["both", "all", *ALLOCATORS], default="both",
                   help="both (list and kva, the default), all, or one allocator")
    p.add_argument("--kernel", default=None,
                   help=f"Linux version the machines run (default {DEFAULT_KERNEL}); the "
                        "allocator named overrides its own")
    p.add_argument("-s", "--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run)


def parse_params(items: list[str]) -> tv.Params:
    """``key=value`` module parameters; ConfigError for unknown names or values that are not > 0
    (as tools/testing/selftests/mm/test_vmalloc.sh checks them)."""
    p = tv.Params()
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in PARAM_NAMES:
            raise ConfigError(f"{item!r} is not a test_vmalloc parameter (key=value with key in {', '.join(PARAM_NAMES)})")
        try:
            number = int(value, 0)
        except ValueError:
            raise ConfigError(f"{key}={value!r}: not a number") from None
        if number <= 0 and key not in _BOOL_PARAMS:
            raise ConfigError(f"{key}={value}: must be greater than 0")
        if number > INT_MAX:
            raise ConfigError(f"{key}={value}: over INT_MAX ({INT_MAX}), as insmod would refuse it")
        setattr(p, key, bool(number) if key in _BOOL_PARAMS else number)
    n = p.normalised()
    if n.nr_threads * n.test_repeat_count * n.test_loop_count > MAX_LOOPS:
        raise ConfigError(f"nr_threads x test_repeat_count x test_loop_count = "
                          f"{n.nr_threads * n.test_repeat_count * n.test_loop_count}: the model runs at most "
                          f"{MAX_LOOPS} loops per scenario")
    return p


def _progress(label: str) -> Any:
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r{label:<5} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def run(args: argparse.Namespace) -> int:
    """Run the scenarios; print a table (or JSON); returns the exit code."""
    params = parse_params(args.params)
    params.seed = args.seed
    allocators = {"both": ["list", "kva"], "all": list(ALLOCATORS)}.get(
        args.allocator, [args.allocator])
    results: dict[str, tv.Report] = {}
    stop = threading.Event()
    for name in allocators:
        try:
            m = pv.Machine(arch=args.arch, ram=args.ram, cpus=args.cpus, allocator=name,
                           kernel=args.kernel)
        except KeyboardInterrupt:
            stop.set()
        if stop.is_set():
            break
        results[name] = tv.run(m, params, None if args.json else _progress(name), stop)
        # What the run may leave is the per-CPU allocator's one empty chunk (pcpu_balance_free
        # keeps one), as a kernel would after the module's pcpu_alloc_test.
        if any(not isinstance(a, PcpuArea) for a in m.areas()):
            raise ConfigError(f"{name}: areas left behind after the run (a leak in the model)")
    interrupted = stop.is_set()
    allocators = list(results)
    rows = []
    names = [n for i, n, _f in tv.scenarios() if params.run_test_mask & (1 << i)]
    if interrupted:  # the scenarios the run reached
        reached = {o.name for rep in results.values() for per_thread in rep.outcomes for o in per_thread}
        names = [n for n in names if n in reached]
    for scen in names:
        row: dict[str, Any] = {"scenario": scen}
        for name, rep in results.items():
            outs = [o for per_thread in rep.outcomes for o in per_thread if o.name == scen]
            ops = sum(o.ops for o in outs)
            secs = sum(o.seconds for o in outs)
            work = sum((o.work for o in outs), WorkCounters())
            row[name] = {"ops": ops, "usec_per_op": secs * 1e6 / ops if ops else None,
                         "failed": sum(o.failed for o in outs), "xfailed": sum(o.xfailed for o in outs),
                         "work": work.as_dict(), "work_per_op": work.per_op(ops)}
        if "list" in row and "kva" in row and row["kva"]["usec_per_op"]:
            row["list_over_kva"] = row["list"]["usec_per_op"] / row["kva"]["usec_per_op"]
        rows.append(row)
    if args.json:
        print(json.dumps({"params": asdict(params.normalised()), "arch": args.arch, "results": rows,
                          "not_modelled": tv.NOT_MODELLED, "interrupted": interrupted}, indent=2))
        return 130 if interrupted else 0
    p = params.normalised()
    print(f"test_vmalloc on {args.arch}: nr_threads={p.nr_threads} test_repeat_count={p.test_repeat_count} "
          f"test_loop_count={p.test_loop_count} run_test_mask={p.run_test_mask:#x}")
    head = f"{'scenario':<30}" + "".join(f"{n + ' ops':>10}{n + ' us/op':>12}" for n in allocators)
    print(head + (f"{'list/kva':>10}" if len(allocators) == 2 else ""))
    for row in rows:
        line = f"{row['scenario']:<30}"
        for n in allocators:
            r = row[n]
            us = f"{r['usec_per_op']:.1f}" if r["usec_per_op"] is not None else "-"
            line += f"{r['ops']:>10}{us:>12}"
        if "list_over_kva" in row:
            line += f"{row['list_over_kva']:>9.2f}x"
        print(line)
    print("work per op (deterministic: " + ", ".join(FIELDS) + ")")
    for row in rows:
        cells = []
        for n in allocators:
            w = row[n]["work_per_op"]
            cells.append(f"{n}: " + " ".join(f"{w[f]:.1f}" for f in FIELDS))
        print(f"  {row['scenario']:<30}" + "   ".join(cells))
    for name, rep in results.items():
        for line in rep.summary_lines():
            print(f"  [{name}] {line}")
    for scen, why in tv.NOT_MODELLED.items():
        print(f"  not run: {scen}: {why}")
    if interrupted:
        print("interrupted (Ctrl-C): the figures above are what was measured until then")
        return 130
    return 0
