"""Workloads a sweep runs: generators of the churn real systems make, each seeded.

Each generator drives a machine through its public API for ``steps`` steps with its own
``random.Random(seed)``, so a run is the same on every host:

- ``module_churn``: modules loaded and unloaded (``module_alloc`` of the core image plus a
  short-lived init image, freed when the module's init has run, as ``do_free_init`` does);
- ``thread_stacks``: fork-heavy bursts of threads whose stacks are ``VMAP_STACK`` areas
  (``alloc_thread_stack_node``: THREAD_SIZE aligned to THREAD_ALIGN), with kernel/fork.c's cache
  of two freed stacks per CPU; refused where stacks are not vmalloc areas (i386; x86_64 before
  4.9, arm64 before 4.14, ARM before 5.18: ``versions.vmap_stack``);
- ``bpf_jit``: BPF programs JIT-compiled and released (``bpf_jit_binary_alloc``/``_free``);
- ``ioremap_churn``: devices opened and closed, each mapping its BAR with ``get_vm_area
  (VM_IOREMAP)`` (the ioremap alignment of the machine's kernel applies);
- ``server_day``: a mixed day of 24 "hours" whose weights move from boot (modules, devices)
  through the peak (threads, large buffers, BPF) to the night; a kernel without the BPF JIT
  allocator or without vmapped stacks lives the same day without them.

``test_vmalloc:<scenario>`` runs one scenario of ``kernel.test_vmalloc`` (``steps`` is its
``test_loop_count``).  Traces are replayed by ``scale.runner``.  A ``Recorder`` counts calls and
failures and samples the fragmentation of the range the workload uses.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyvmalloc.kernel import test_vmalloc
from pyvmalloc.phys import gfp as G
from pyvmalloc.snapshot.layout import fragmentation_index, hole_stats
from pyvmalloc.arch import arch_family
from pyvmalloc.errors import ConfigError
from pyvmalloc.versions import has, vmap_stack
from pyvmalloc.vmalloc.vm_struct import VM_IOREMAP, vm_struct

if TYPE_CHECKING:
    from pyvmalloc.facade import Machine

__all__ = ["WORKLOADS", "Recorder", "run_scenario", "run_workload", "scenario_names"]


@dataclass
class Recorder:
    """Calls, failures and the series of samples of one run (``samples`` evenly spaced)."""

    steps: int
    samples: int
    range_name: str = "vmalloc"
    calls: int = 0
    failures: int = 0
    series: list[dict[str, Any]] = field(default_factory=list)

    def span(self, m: Machine) -> tuple[int, int]:
        """The range the workload allocates from: the module area where it has one of its own."""
        for start, end, name in m.vm_ranges():
            if name == self.range_name:
                return start, end
        return m.VMALLOC_START, m.VMALLOC_END

    def call(self, ok: bool) -> None:
        """Count one allocating call and whether it got its memory."""
        self.calls += 1
        self.failures += not ok

    def sample(self, m: Machine, step: int) -> None:
        """One point of the series: free space of the range, its largest hole, fragmentation."""
        start, end = self.span(m)
        with m.vmlist_lock.read():
            holes = list(m.vmap_allocator.for_each_free(start, end))
        stats = hole_stats(holes)
        self.series.append({
            "step": step, "calls": self.calls, "failures": self.failures,
            "free_bytes": stats.total, "largest_hole": stats.largest, "holes": stats.count,
            "fragmentation": fragmentation_index(holes),
            "lazy_pages": int(m.stats()["lazy.pending_pages"]),
        })

    def due(self, step: int) -> bool:
        """Whether ``step`` (0-based, after it ran) is one of the sampled steps."""
        every = max(self.steps // self.samples, 1)
        return (step + 1) % every == 0 or step + 1 == self.steps


def _size(rng: random.Random, median: int, sigma: float, lo: int, hi: int) -> int:
    """A log-normal size around ``median`` bytes, clamped: real sizes are skewed that way."""
    return int(min(max(rng.lognormvariate(math.log(median), sigma), lo), hi))


class _Pool:
    """Live objects of one kind and the odds that a step frees one rather than allocating."""

    def __init__(self, target: int) -> None:
        self.live: list[Any] = []
        self.target = target

    def want_free(self, rng: random.Random) -> bool:
        # Past the target, frees win more often: the population hovers around it.
        if not self.live:
            return False
        return rng.random() < 0.5 * len(self.live) / self.target

    def take(self, rng: random.Random) -> Any:
        return self.live.pop(rng.randrange(len(self.live)))

    def keep(self, rec: Recorder, obj: Any) -> None:
        """Count an allocating call; hold what it returned (None: it failed)."""
        rec.call(obj is not None)
        if obj is not None:
            self.live.append(obj)


class Modules(_Pool):
    """Modules loaded and unloaded: 64 KiB median core image, a smaller init image."""

    range_name = "modules"

    def act(self, m: Machine, rng: random.Random, rec: Recorder) -> None:
        if self.want_free(rng):
            m.vfree(self.take(rng))       # module_memfree
            return
        core = m.module_alloc(_size(rng, 64 << 10, 1.0, 4 << 10, 4 << 20), caller="load_module")
        rec.call(core is not None)
        init = m.module_alloc(_size(rng, 8 << 10, 0.8, 4 << 10, 256 << 10), caller="load_module")
        rec.call(init is not None)
        m.vfree(init)                     # do_free_init once the module's init has run
        if core is not None:
            self.live.append(core)


def stacks_vmapped(m: Machine) -> bool:
    """Whether ``m``'s kernel takes thread stacks from vmalloc (CONFIG_VMAP_STACK)."""
    return vmap_stack(m.kernel, arch_family(m.profile.name))


class Stacks(_Pool):
    """Threads forked in bursts; each stack a THREAD_SIZE area aligned to THREAD_ALIGN."""

    range_name = "vmalloc"

    def __init__(self, target: int) -> None:
        super().__init__(target)
        self.cache: list[int] = []

    def act(self, m: Machine, rng: random.Random, rec: Recorder) -> None:
        # THREAD_SIZE: 16 KiB on 64-bit (x86_64, arm64), 8 KiB on 32-bit.  THREAD_ALIGN is
        # THREAD_SIZE on x86 (asm/page_*_types.h) and twice it with VMAP_STACK on arm64 and ARM
        # (asm/memory.h, asm/thread_info.h), so that overflow checks find the stack's base.
        if not stacks_vmapped(m):
            # Without CONFIG_VMAP_STACK the stacks are pages from the buddy allocator: the
            # workload would measure vmalloc traffic this kernel never makes.
            raise ConfigError(f"thread_stacks: Linux {m.kernel} on {m.profile.name} takes thread "
                              "stacks from the page allocator, not vmalloc (CONFIG_VMAP_STACK: "
                              "x86_64 4.9+, arm64 4.14+, ARM 5.18+, never i386)")
        size = (16 << 10) if m.profile.bits == 64 else (8 << 10)
        align = size * (2 if m.profile.name in ("arm64", "arm") else 1)
        cached = 2 * m.nr_cpus          # kernel/fork.c NR_CACHED_STACKS per CPU
        if self.want_free(rng):
            for _ in range(min(rng.randint(1, 16), len(self.live))):
                addr = self.take(rng)
                if len(self.cache) < cached:
                    self.cache.append(addr)   # free_thread_stack keeps it for the next fork
                else:
                    m.vfree(addr)
            return
        for _ in range(rng.randint(1, 16)):
            if self.cache:
                self.live.append(self.cache.pop())
                continue
            addr = m.vmalloc_node_range(size, align, m.VMALLOC_START, m.VMALLOC_END,
                                        G.GFP_KERNEL | getattr(G, "__GFP_ZERO"), "PAGE_KERNEL", -1,
                                        caller="alloc_thread_stack_node")
            self.keep(rec, addr)


class Bpf(_Pool):
    """BPF programs: JIT images of a few KiB, now and then a large one."""

    range_name = "modules"

    def act(self, m: Machine, rng: random.Random, rec: Recorder) -> None:
        if self.want_free(rng):
            m.bpf_jit_free(self.take(rng))
            return
        addr = m.bpf_jit_alloc(_size(rng, 3 << 10, 1.2, 64, 512 << 10), privileged=True,
                               caller="bpf_jit_binary_alloc")
        self.keep(rec, addr)


# BAR sizes a server's devices map (registers, doorbells, NVMe, GPUs' small windows), weighted.
_BARS = ((4 << 10, 30), (8 << 10, 15), (16 << 10, 15), (64 << 10, 10), (1 << 20, 10),
         (2 << 20, 10), (16 << 20, 5), (32 << 20, 5))


class Devices(_Pool):
    """Devices opened and closed, each an ioremap of its BAR while open."""

    range_name = "vmalloc"

    def act(self, m: Machine, rng: random.Random, rec: Recorder) -> None:
        if self.want_free(rng):
            area: vm_struct = self.take(rng)
            m.free_vm_area(area)          # iounmap
            return
        size = rng.choices([s for s, _ in _BARS], [w for _, w in _BARS])[0]
        got = m.get_vm_area(size, VM_IOREMAP, caller="ioremap")
        self.keep(rec, got)


class Buffers(_Pool):
    """kvmalloc-sized buffers (tables, firmware, socket maps): 1 to 256 pages."""

    range_name = "vmalloc"

    def act(self, m: Machine, rng: random.Random, rec: Recorder) -> None:
        if self.want_free(rng):
            m.vfree(self.take(rng))
            return
        addr = m.vmalloc(rng.randint(1, 256) * m.PAGE_SIZE, caller="kvmalloc_node")
        self.keep(rec, addr)


Actor = Modules | Stacks | Bpf | Devices | Buffers


def _single(make: Callable[[], Actor]) -> Callable[[Machine, random.Random, Recorder], None]:
    def run(m: Machine, rng: random.Random, rec: Recorder) -> None:
        actor = make()
        rec.range_name = actor.range_name
        for step in range(rec.steps):
            actor.act(m, rng, rec)
            if rec.due(step):
                rec.sample(m, step)
    return run


# Weights of (modules, stacks, bpf, devices, buffers) per phase of the day: boot loads modules
# and opens devices, the peak forks and buffers, the night winds down.
_DAY = (
    (0, 3, (6, 1, 1, 4, 1)),      # boot
    (3, 9, (1, 3, 1, 2, 3)),      # morning
    (9, 18, (1, 6, 3, 1, 5)),     # peak
    (18, 24, (1, 2, 1, 1, 2)),    # night
)


def _server_day(m: Machine, rng: random.Random, rec: Recorder) -> None:
    actors: list[Actor] = [Modules(60), Stacks(400), Bpf(40), Devices(30), Buffers(200)]
    # A kernel without a BPF JIT allocator (before 3.18) runs the same day without BPF, and one
    # whose thread stacks are pages, not vmalloc areas (no CONFIG_VMAP_STACK), without stacks.
    bpf = has(m.kernel, "bpf_jit_binary_alloc")
    stacks = stacks_vmapped(m)
    rec.range_name = "vmalloc"
    for step in range(rec.steps):
        hour = 24 * step // rec.steps
        weights = next(w for lo, hi, w in _DAY if lo <= hour < hi)
        if not bpf or not stacks:
            weights = (weights[0], weights[1] if stacks else 0, weights[2] if bpf else 0,
                       weights[3], weights[4])
        actor = rng.choices(actors, weights)[0]
        actor.act(m, rng, rec)
        if rec.due(step):
            rec.sample(m, step)


WORKLOADS: dict[str, Callable[[Machine, random.Random, Recorder], None]] = {
    "module_churn": _single(lambda: Modules(60)),
    "thread_stacks": _single(lambda: Stacks(500)),
    "bpf_jit": _single(lambda: Bpf(60)),
    "ioremap_churn": _single(lambda: Devices(40)),
    "server_day": _server_day,
}


def scenario_names() -> list[str]:
    """The ``test_vmalloc`` scenarios a sweep may name (every kernel's, whether or not a given
    kernel has the call: a run on one without it records the failure)."""
    return [name for _, name, _ in test_vmalloc.scenarios()]


def run_workload(name: str, m: Machine, seed: int, rec: Recorder) -> None:
    """Run generator ``name`` on ``m`` with ``random.Random(seed)``, recording into ``rec``."""
    rec.sample(m, -1)
    WORKLOADS[name](m, random.Random(seed), rec)


def run_scenario(name: str, m: Machine, seed: int, rec: Recorder) -> None:
    """Run one lib/test_vmalloc.c scenario with ``test_loop_count = rec.steps``."""
    bit = next(b for b, n, _ in test_vmalloc.scenarios() if n == name)
    rec.sample(m, -1)
    if not any(n == name for _, n, _ in test_vmalloc.scenarios(m)):
        rec.call(False)   # the kernel has no such call: the module's test fails
    else:
        report = test_vmalloc.run(m, test_vmalloc.Params(test_loop_count=rec.steps,
                                                         run_test_mask=1 << bit, seed=seed))
        for out in report.outcomes[0]:
            rec.calls += out.ops
            rec.failures += out.failed
    rec.sample(m, rec.steps - 1)
