"""Soak: run the stress and fault-injection workloads for a given time; nothing may leak.

Rounds alternate until the time is up:

- stress: eight threads of random vmalloc/vmap/vwrite/vread/vfree/vunmap (``tests/test_stress``)
  on a random profile, allocator and lazy-purge setting; then everything is freed and purged;
- random faults: every injection point armed with a random probability under a seed, a few
  hundred random allocations and frees; each failed call must leave free + page-table frames
  and the area list as they were; at the end everything is freed;
- one deterministic sweep (``tests/test_inject_sweep``): fail the Nth call at one point for
  N = 1, 2, ... until the call succeeds, cycling through calls and points.

After each round ``check()`` must pass and every frame must be back.  The report gives the
operations survived, the faults injected, and the leaks found (frames or areas not back, or a
broken invariant, or bytes lost between threads); the exit code is 1 if any was found.

Run: ``python3 benchmarks/soak.py --seconds 60`` (``--seed`` picks another sequence).

``--fuzz SECONDS`` runs, instead, the parser fuzz targets of ``tests/test_hostile_input_two``
(vmallocinfo, meminfo, trace, the ``--version-file`` reader) on random hostile texts for that
long: only FormatError/ConfigError naming ``FILE:LINE`` may come out; anything else is counted
and printed, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import pyvmalloc as pv
from pyvmalloc.kernel.inject import POINTS
from test_inject_sweep import CALLS, sweep
from test_stress import THREADS, run_stress
from test_hostile_input_two import FUZZ_TARGETS, check_target, hostile_text

PAGE = 4096
PROFILES = ["x86_64", "x86_64-la57", "i386", "i386-pae", "arm", "arm64"]


def frames_back(m: pv.Machine) -> int:
    """Free frames plus page-table frames (tables stay allocated once built, as in the kernel)."""
    return m.phys.nr_free() + m.init_mm.nr_table_frames


def areas(m: pv.Machine) -> list[tuple[int, int]]:
    return [(a.addr, a.size) for a in m.areas()]


class Tally:
    """What the soak survived and found."""

    def __init__(self) -> None:
        self.ops = 0
        self.faults = 0
        self.leaks: list[str] = []
        self.rounds = {"stress": 0, "faults": 0, "sweep": 0}

    def leak(self, what: str) -> None:
        self.leaks.append(what)
        print(f"LEAK: {what}", file=sys.stderr, flush=True)


def finish(m: pv.Machine, baseline: int, tally: Tally, what: str) -> None:
    """Purge, check, and count a leak unless every frame is back."""
    m.vm_unmap_aliases()
    try:
        m.check()
    except pv.Inconsistency as exc:
        tally.leak(f"{what}: check(): {exc}")
    if frames_back(m) != baseline:
        tally.leak(f"{what}: {baseline - frames_back(m)} frames not back")
    if areas(m):
        tally.leak(f"{what}: {len(areas(m))} areas left")
    tally.faults += m.stats()["inject.total"]


def stress_round(rng: random.Random, seed: int, tally: Tally) -> None:
    allocator = rng.choice(["list", "kva"])
    m = pv.Machine(arch=rng.choice(["x86_64", "arm64"]), ram="256M", nodes=2, cpus=rng.choice([2, 8]),
                   allocator=allocator, lazy_purge=rng.random() < 0.5)
    baseline = frames_back(m)
    ops = 40
    try:
        run_stress(m, ops=ops, seed=seed)
        tally.ops += THREADS * ops
    except AssertionError as exc:
        tally.leak(f"stress seed {seed} ({allocator}): {exc}")
    finish(m, baseline, tally, f"stress seed {seed}")


def fault_round(rng: random.Random, seed: int, tally: Tally) -> None:
    arch = rng.choice(PROFILES)
    m = pv.Machine(arch=arch, ram="128M", allocator=rng.choice(["list", "kva"]), lazy_purge=rng.random() < 0.5)
    baseline = frames_back(m)
    for i, point in enumerate(sorted(POINTS)):
        m.inject(point, probability=rng.uniform(0.005, 0.15), seed=seed * 8 + i)
    live: list[tuple[str, object, list[object]]] = []
    for step in range(rng.randint(50, 250)):
        if live and rng.random() < 0.4:
            kind, handle, pages = live.pop(rng.randrange(len(live)))
            release(m, kind, handle, pages)
            tally.ops += 1
            continue
        kind = rng.choice(["vmalloc", "vmalloc_user", "vmalloc_32", "vmap", "alloc_vm_area", "vpages"])
        pages: list[object] = []
        if kind == "vmap":
            pages = [m.alloc_page() for _ in range(rng.randint(1, 8))]
            if any(p is None for p in pages):
                for p in pages:
                    if p is not None:
                        m.free_page(p)
                continue
        before, busy = frames_back(m), areas(m)
        npages = 600 if kind == "vpages" else rng.randint(1, 32)
        handle = allocate(m, kind, npages * PAGE, pages)
        tally.ops += 1
        if handle is not None:
            live.append((kind, handle, pages))
            continue
        if frames_back(m) != before or areas(m) != busy:
            tally.leak(f"faults seed {seed} ({arch}) step {step}: a failed {kind} did not give back "
                       f"{before - frames_back(m)} frames / left {len(areas(m)) - len(busy)} areas")
        for p in pages:
            m.free_page(p)
    m.inject_clear()
    for kind, handle, pages in live:
        release(m, kind, handle, pages)
    finish(m, baseline, tally, f"faults seed {seed} ({arch})")


def allocate(m: pv.Machine, kind: str, size: int, pages: list[object]) -> object | None:
    if kind == "vmap":
        return m.vmap(pages, len(pages))
    if kind == "alloc_vm_area":
        return m.alloc_vm_area(size)
    if kind == "vpages":
        return m.vmalloc(size)
    return getattr(m, kind)(size)


def release(m: pv.Machine, kind: str, handle: object, pages: list[object]) -> None:
    if kind == "vmap":
        m.vunmap(handle)  # type: ignore[arg-type]
        for p in pages:
            m.free_page(p)
    elif kind == "alloc_vm_area":
        m.free_vm_area(handle)  # type: ignore[arg-type]
    else:
        m.vfree(handle)  # type: ignore[arg-type]


def fuzz(seconds: float, seed: int) -> int:
    """The parser fuzz targets on random texts for ``seconds``; 1 if any failed."""
    rng = random.Random(seed)
    names = sorted(FUZZ_TARGETS)
    runs = failures = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        text = hostile_text(rng)
        for name in names:
            runs += 1
            try:
                check_target(name, text)
            except Exception as exc:  # every escape is a finding
                failures += 1
                print(f"FUZZ: {name}: {type(exc).__name__}: {str(exc)[:200]} "
                      f"(text {text[:120]!r}..., {len(text)} chars)", file=sys.stderr, flush=True)
    print(f"fuzz: {time.perf_counter() - start:.1f} s, {runs} parser runs, {failures} failures")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Run the soak; returns 1 if anything leaked, else 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to run (default 60)")
    ap.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    ap.add_argument("--fuzz", type=float, metavar="SECONDS", default=None,
                    help="fuzz the parsers for SECONDS instead of the soak rounds")
    args = ap.parse_args(argv)
    if args.fuzz is not None:
        return fuzz(args.fuzz, args.seed)
    rng = random.Random(args.seed)
    tally = Tally()
    # The cheap sweeps, cycled; the VM_VPAGES page_alloc sweep alone walks 519 calls.
    sweeps = itertools.cycle([(c, p) for c in sorted(CALLS) for p in sorted(POINTS)])
    start = time.perf_counter()
    deadline = start + args.seconds
    for r in itertools.count():
        if time.perf_counter() >= deadline:
            break
        seed = args.seed * 100_000 + r
        if r % 3 == 0:
            stress_round(rng, seed, tally)
            tally.rounds["stress"] += 1
        elif r % 3 == 1:
            fault_round(rng, seed, tally)
            tally.rounds["faults"] += 1
        else:
            call, point = next(sweeps)
            try:
                failed = sweep(call, point)
                tally.ops += failed + 1
                tally.faults += failed
            except (AssertionError, pv.Inconsistency) as exc:
                tally.leak(f"sweep {call} at {point}: {exc}")
            tally.rounds["sweep"] += 1
    elapsed = time.perf_counter() - start
    rounds = ", ".join(f"{n} {k}" for k, n in tally.rounds.items())
    print(f"soak: {elapsed:.1f} s, {sum(tally.rounds.values())} rounds ({rounds})")
    print(f"operations survived: {tally.ops}")
    print(f"faults injected:     {tally.faults}")
    print(f"leaks found:         {len(tally.leaks)}")
    return 1 if tally.leaks else 0


if __name__ == "__main__":
    sys.exit(main())
