"""The scenarios of the kernel's lib/test_vmalloc.c (5.1+), run on a ``Machine``.

Each scenario does what the kernel module's test of the same name does, with the module's
parameter names (``nr_threads``, ``test_repeat_count``, ``test_loop_count``, ``run_test_mask``,
``sequential_test_order``, ``nr_pages``).  ``test_loop_count`` defaults to 1,000 here instead
of the kernel's 1,000,000: the model runs about a thousand times slower than a kernel.

Tests of the module that need what the model does not have are listed in ``NOT_MODELLED``
with the reason, rather than faked.

Each outcome carries the machine's work counters over the scenario (``kernel/work.py``: nodes
visited, pages, PTEs, locks, TLB flushes; exact per scenario with one thread).  ``run`` stops
early, with what was done so far, when ``stop`` is set (the bench sets it on Ctrl-C): the
running scenario's next ``vmalloc`` raises ``Stopped`` and its cleanup still frees what it holds.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyvmalloc.kernel.work import WorkCounters, work_counters
from pyvmalloc.phys import gfp as G
from pyvmalloc.versions import has

if TYPE_CHECKING:
    from pyvmalloc.kernel.machine import Machine

GFP_KERNEL_ZERO = G.GFP_KERNEL | getattr(G, "__GFP_ZERO")


@dataclass
class Params:
    """lib/test_vmalloc.c module parameters (same names, same clamping)."""

    nr_threads: int = 1
    test_repeat_count: int = 1
    test_loop_count: int = 1000
    run_test_mask: int = 0x7F  # the seven address-space scenarios below
    sequential_test_order: bool = True
    nr_pages: int = 1
    use_huge: bool = False   # 6.9+: fix_size_alloc_test allocates with vmalloc_huge()
    nr_pcpu_objects: int = 35000  # pcpu_alloc_test's objects (the module's default)
    seed: int = 0

    def normalised(self) -> Params:
        """The values the module really uses: <=0 counts become 1 (as module init does)."""
        return Params(
            nr_threads=min(max(self.nr_threads, 1), 0xFFFF),
            test_repeat_count=max(self.test_repeat_count, 1),
            test_loop_count=max(self.test_loop_count, 1),
            run_test_mask=self.run_test_mask,
            sequential_test_order=self.sequential_test_order,
            nr_pages=max(self.nr_pages, 1),
            use_huge=self.use_huge,
            nr_pcpu_objects=max(self.nr_pcpu_objects, 1),
            seed=self.seed,
        )


@dataclass
class Outcome:
    """One scenario on one thread: ``ops`` counts every vmalloc and vfree call (setup included,
    since the kernel times the whole test), ``failed`` unexpected NULLs."""

    name: str
    ops: int = 0
    failed: int = 0
    xfailed: int = 0
    seconds: float = 0.0
    repeats: int = 0
    work: WorkCounters = field(default_factory=WorkCounters)
    stop: threading.Event | None = field(default=None, repr=False, compare=False)

    @property
    def usec_per_op(self) -> float:
        """Microseconds of host time per operation."""
        return self.seconds * 1e6 / self.ops if self.ops else 0.0


def _touch(m: Machine, addr: int | None) -> bool:
    """``*((u8 *)ptr) = 0``: the scenarios write one byte of each allocation."""
    if addr is None:
        return False
    m.vwrite(addr, b"\0")
    return True


class Stopped(Exception):
    """The run was asked to stop (Ctrl-C): raised at the next allocation of a scenario."""


def _check_stop(out: Outcome) -> None:
    if out.stop is not None and out.stop.is_set():
        raise Stopped


def _vmalloc(m: Machine, out: Outcome, size: int) -> int | None:
    _check_stop(out)
    out.ops += 1
    return m.vmalloc(size, caller=out.name)


def _vmalloc_node(m: Machine, out: Outcome, size: int, align: int, gfp: int) -> int | None:
    """``__vmalloc_node(size, align, gfp, node 0)`` of later kernels."""
    _check_stop(out)
    out.ops += 1
    return m.vmalloc_node_range(size, align, m.VMALLOC_START, m.VMALLOC_END, gfp, "PAGE_KERNEL", 0,
                                caller=out.name)


def _vfree(m: Machine, out: Outcome, addr: int | None) -> None:
    out.ops += 1
    m.vfree(addr)


def fix_size_alloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """Loop: vmalloc(nr_pages pages) -- vmalloc_huge() with ``use_huge`` -- write, vfree."""
    size = p.nr_pages * m.PAGE_SIZE
    for _ in range(p.test_loop_count):
        if p.use_huge:
            out.ops += 1
            a = m.vmalloc_huge(size, G.GFP_KERNEL, caller=out.name)
        else:
            a = _vmalloc(m, out, size)
        out.failed += not _touch(m, a)
        _vfree(m, out, a)


def full_fit_alloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """Fill the space with lazy_max_pages one-page pairs, free every second, then loop on 1 page."""
    junk = m.lazy_max_pages
    ps = m.PAGE_SIZE
    ptrs = junk_ptrs = None
    keep: list[int | None] = []
    try:
        ptrs = _vmalloc(m, out, junk * m.vm.ptr_size)
        junk_ptrs = _vmalloc(m, out, junk * m.vm.ptr_size)
        if ptrs is None or junk_ptrs is None:
            out.failed += 1
            return
        for _ in range(junk):
            keep.append(_vmalloc(m, out, ps))
            _vfree(m, out, _vmalloc(m, out, ps))  # leaves a one-page hole
        for _ in range(p.test_loop_count):
            a = _vmalloc(m, out, ps)
            out.failed += not _touch(m, a)
            _vfree(m, out, a)
    finally:
        for a in keep:
            _vfree(m, out, a)
        _vfree(m, out, ptrs)
        _vfree(m, out, junk_ptrs)


def long_busy_list_alloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome, live: int = 15000) -> None:
    """Keep ``live`` (15000) one-page areas busy; loop: vmalloc 100 pages + 1 page, write, free both."""
    ps = m.PAGE_SIZE
    busy: list[int | None] = []
    try:
        for _ in range(live):
            busy.append(_vmalloc(m, out, ps))
        if any(a is None for a in busy):
            out.failed += 1
            return
        for _ in range(p.test_loop_count):
            a = _vmalloc(m, out, 100 * ps)
            b = _vmalloc(m, out, ps)
            out.failed += (not _touch(m, a)) + (not _touch(m, b))
            _vfree(m, out, a)
            _vfree(m, out, b)
    finally:
        for a in busy:
            _vfree(m, out, a)


def random_size_alloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """Loop: vmalloc of 1..100 random pages, write, vfree."""
    for _ in range(p.test_loop_count):
        a = _vmalloc(m, out, rng.randint(1, 100) * m.PAGE_SIZE)
        out.failed += not _touch(m, a)
        _vfree(m, out, a)


def _thread_align(m: Machine) -> int:
    # THREAD_ALIGN is THREAD_SIZE: 16 KiB on x86_64 and arm64 (4 KiB pages), 8 KiB on 32-bit.
    return (16 << 10) if m.profile.bits == 64 else (8 << 10)


def fix_align_alloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """Loop: zeroed ``__vmalloc_node`` of 5 pages aligned to THREAD_ALIGN << 1 on node 0, vfree."""
    align = _thread_align(m) << 1
    for _ in range(p.test_loop_count):
        a = _vmalloc_node(m, out, 5 * m.PAGE_SIZE, align, GFP_KERNEL_ZERO)
        out.failed += a is None
        _vfree(m, out, a)


def random_size_align_alloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """Loop: rnd = random u8; align 1 << (rnd % 23), size (rnd % 10 + 1) pages, zeroed, vfree."""
    for _ in range(p.test_loop_count):
        rnd = rng.getrandbits(8)
        a = _vmalloc_node(m, out, (rnd % 10 + 1) * m.PAGE_SIZE, 1 << (rnd % 23), GFP_KERNEL_ZERO)
        out.failed += a is None
        _vfree(m, out, a)


def align_shift_alloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """One page at every alignment 1 << i, i < BITS_PER_LONG: expected to fail (xfail) at the top."""
    for i in range(m.profile.bits):
        a = _vmalloc_node(m, out, m.PAGE_SIZE, 1 << i, G.GFP_KERNEL)
        if a is None:
            out.xfailed += 1
            return
        _vfree(m, out, a)


def vrealloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """Loop: vrealloc(NULL, 1 page), write 'a'; grow to 4 pages (a new area), shrink to 1 page
    and to half a page, grow back to 1 page (in place); the byte must survive each step; vfree.
    A NULL or a lost byte fails the scenario (``goto error``: vfree what is held, stop)."""
    ps = m.PAGE_SIZE
    for _ in range(p.test_loop_count):
        out.ops += 1
        ptr = m.vrealloc(None, ps, G.GFP_KERNEL, caller=out.name)
        if ptr is None:
            out.failed += 1
            return
        m.vwrite(ptr, b"a")
        ok = True
        for size in (4 * ps, ps, ps // 2, ps):
            out.ops += 1
            nxt = m.vrealloc(ptr, size, G.GFP_KERNEL, caller=out.name)
            if nxt is None or m.vread(nxt, 1) != b"a":
                ok = False
                break
            ptr = nxt
        _vfree(m, out, ptr)
        if not ok:
            out.failed += 1
            return


def _kvfree_rcu_vmalloc_test(m: Machine, p: Params, out: Outcome) -> None:
    """Loop: ``p = vmalloc(1 * PAGE_SIZE)``, ``p->array[0] = 'a'``, ``kvfree_rcu(p)``.  The module
    leaves the frees to RCU; ``rcu_barrier()`` at the end stands for its unload waiting."""
    if not has(m.kernel, "kvfree_rcu_vmalloc"):
        out.failed += 1
        return
    try:
        for _ in range(p.test_loop_count):
            ptr = _vmalloc(m, out, m.PAGE_SIZE)
            if ptr is None:
                out.failed += 1
                break
            m.vwrite(ptr, b"a")
            m.kvfree_rcu(ptr)
            out.ops += 1
    finally:
        m.rcu_barrier()


def kvfree_rcu_1_arg_vmalloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """lib/test_vmalloc.c: ``kvfree_rcu_mightsleep(p)`` (the head-less form) of vmalloc'ed pages."""
    _kvfree_rcu_vmalloc_test(m, p, out)


def kvfree_rcu_2_arg_vmalloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """lib/test_vmalloc.c: ``kvfree_rcu(p, rcu)`` with an rcu_head inside the object; the model
    frees both forms alike (the head only says where RCU keeps its list)."""
    _kvfree_rcu_vmalloc_test(m, p, out)


def vm_map_ram_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """Bulk-allocate ``nr_pages`` pages; loop: ``vm_map_ram(pages, nr_pages, NUMA_NO_NODE)``,
    write 'a', ``vm_unmap_ram``; free the pages (6.4+ lib/test_vmalloc.c, id 1024).  A kernel
    without vm_map_ram (before 2.6.28) fails it."""
    n = p.nr_pages
    if not has(m.kernel, "vm_map_ram"):
        out.failed += 1
        return
    pages = [m.alloc_page() for _ in range(n)]
    try:
        if any(pg is None for pg in pages):
            out.failed += 1
            return
        for _ in range(p.test_loop_count):
            out.ops += 1
            v = m.vm_map_ram(pages, n, -1)
            if v is None:  # the module would write through NULL; count it failed
                out.failed += 1
                continue
            m.write(v, b"a")  # *v_ptr = 'a': a store through the new mapping
            out.ops += 1
            m.vm_unmap_ram(v, n)
    finally:
        for pg in pages:
            if pg is not None:
                m.free_page(pg)


def pcpu_alloc_test(m: Machine, p: Params, rng: random.Random, out: Outcome) -> None:
    """vmalloc an array of ``nr_pcpu_objects`` pointers; ``__alloc_percpu`` each with a size of
    1..PAGE_SIZE/4 bytes and an alignment of ``1 << (1..PAGE_SHIFT - 1)``; ``free_percpu`` each;
    vfree the array.  A NULL fails the scenario but the loop goes on (``rv = -1``), as the
    module's does.  The chunks come from ``pcpu_get_vm_areas`` (kernel/percpu.py)."""
    n = p.nr_pcpu_objects
    arr = _vmalloc(m, out, n * m.vm.ptr_size)
    if arr is None:
        out.failed += 1
        return
    objs: list[int] = []
    for _ in range(n):
        size = rng.randint(1, m.PAGE_SIZE // 4)
        align = 1 << rng.randint(1, m.PAGE_SHIFT - 1)
        out.ops += 1
        ptr = m.alloc_percpu(size, align)
        if ptr is None:
            out.failed += 1
        else:
            objs.append(ptr)
    for ptr in objs:
        out.ops += 1
        m.free_percpu(ptr)
    _vfree(m, out, arr)


Scenario = Callable[["Machine", Params, random.Random, Outcome], None]

# lib/test_vmalloc.c: test_case_array with each test's run_test_mask bit (ids 1..64; the later
# ones are LATER_SCENARIOS).
SCENARIOS: tuple[tuple[str, Scenario], ...] = (
    ("fix_size_alloc_test", fix_size_alloc_test),
    ("full_fit_alloc_test", full_fit_alloc_test),
    ("long_busy_list_alloc_test", long_busy_list_alloc_test),
    ("random_size_alloc_test", random_size_alloc_test),
    ("fix_align_alloc_test", fix_align_alloc_test),
    ("random_size_align_alloc_test", random_size_align_alloc_test),
    ("align_shift_alloc_test", align_shift_alloc_test),
)

# Tests of the module whose bit is past the seven above: (bit, name, function, the rule of
# versions.py the kernel needs).  pcpu_alloc_test is bit 7 (128), the kvfree_rcu tests bits 8
# and 9, vm_map_ram_test bit 10 (1024), vrealloc_test bit 12 (4096) in lib/test_vmalloc.c.
# vrealloc_test is numbered after 6.19's no_block_alloc_test (2048), so the module gained it in
# 6.19 or later, while vrealloc() itself is 6.12's: bench runs the scenario on every kernel that
# has the call (the question it asks is about vrealloc, not about which module shipped it).
LATER_SCENARIOS: tuple[tuple[int, str, Scenario, str], ...] = (
    (7, "pcpu_alloc_test", pcpu_alloc_test, "pcpu_get_vm_areas"),
    (8, "kvfree_rcu_1_arg_vmalloc_test", kvfree_rcu_1_arg_vmalloc_test, "kvfree_rcu_vmalloc"),
    (9, "kvfree_rcu_2_arg_vmalloc_test", kvfree_rcu_2_arg_vmalloc_test, "kvfree_rcu_vmalloc"),
    (10, "vm_map_ram_test", vm_map_ram_test, "vm_map_ram"),
    (12, "vrealloc_test", vrealloc_test, "vrealloc"),
)


def scenarios(m: Machine | None = None) -> list[tuple[int, str, Scenario]]:
    """Every modelled scenario as ``(run_test_mask bit, name, function)``; with a machine, only
    those its kernel can run (vrealloc_test needs 6.12)."""
    out = [(i, name, fn) for i, (name, fn) in enumerate(SCENARIOS)]
    out += [(bit, name, fn) for bit, name, fn, rule in LATER_SCENARIOS if m is None or has(m.kernel, rule)]
    return out


# Tests of the module the model cannot run, with the reason bench prints.
NOT_MODELLED = {
    "no_block_alloc_test": (
        "id 2048 came with Linux 6.19, in Uladzislau Rezki's series \"mm/vmalloc: support "
        "non-blocking GFP flags\" (v4, 10 patches, posted 2025-10-07; mainline hashes not read "
        "off a tree): test_loop_count times, __vmalloc(nr_pages pages, GFP_ATOMIC or GFP_NOWAIT "
        "at random) between preempt_disable() and preempt_enable(), write a byte, vfree; a NULL "
        "fails it.  It needs that series' rules: alloc_vmap_area neither sleeping nor purging "
        "and retrying for a gfp without __GFP_DIRECT_RECLAIM (it fails silently instead), page "
        "tables under memalloc_apply_gfp_scope (noreclaim), no __GFP_NOFAIL retry loop, "
        "deferred freeing of a partly built vm_struct.  The model's newest kernel is 6.15 and "
        "stays so: not every change 6.16-6.19 makes to the model's answers (mm/vmalloc.c, "
        "execmem, the arch layouts, lib/test_vmalloc.c itself) could be established from "
        "sources, so the model cannot claim 6.19 and does not run it"),
}


@dataclass
class Report:
    """What one run of the module printed, per thread and scenario."""

    params: Params
    outcomes: list[list[Outcome]] = field(default_factory=list)  # [thread][scenario]
    interrupted: bool = False  # stopped early: the outcomes are what was done until then

    def summary_lines(self) -> list[str]:
        """The module's ``Summary:`` lines (pr_info), one per thread and scenario."""
        lines = []
        for outs in self.outcomes:
            for o in outs:
                avg = o.seconds * 1e6 / max(o.repeats, 1)
                x = f" xfailed: {o.xfailed}" if o.xfailed else ""
                lines.append(
                    f"Summary: {o.name} passed: {o.repeats if not o.failed else 0} failed: "
                    f"{1 if o.failed else 0}{x} repeat: {o.repeats} loops: {self.params.test_loop_count} "
                    f"avg: {avg:.0f} usec"
                )
        return lines


def run(m: Machine, params: Params, progress: Callable[[int, int], None] | None = None,
        stop: threading.Event | None = None) -> Report:
    """Run the enabled scenarios on ``m`` with ``params.nr_threads`` threads; a Report.

    Setting ``stop`` (another thread, or this one on KeyboardInterrupt) ends the run at the
    next allocation of each thread; the Report then has ``interrupted`` set and holds the
    scenarios run so far, the interrupted one with the operations it did."""
    stop = stop if stop is not None else threading.Event()
    p = params.normalised()
    chosen = [(i, name, fn) for i, name, fn in scenarios(m) if p.run_test_mask & (1 << i)]
    report = Report(p, [[] for _ in range(p.nr_threads)])
    total = len(chosen) * p.test_repeat_count * p.nr_threads
    done = [0]
    lock = threading.Lock()

    finished = [threading.Event() for _ in range(p.nr_threads)]

    def worker(tid: int) -> None:
        try:
            scenarios_of(tid)
        finally:
            finished[tid].set()

    def scenarios_of(tid: int) -> None:
        rng = random.Random(p.seed * 1_000_003 + tid)
        order = list(chosen)
        if not p.sequential_test_order:
            rng.shuffle(order)  # the module shuffles unless sequential_test_order is set
        for _i, name, fn in order:
            if stop.is_set():
                return
            out = Outcome(name, stop=stop)
            report.outcomes[tid].append(out)
            for _ in range(p.test_repeat_count):
                before = work_counters(m)
                t0 = time.perf_counter()
                try:
                    fn(m, p, rng, out)
                except Stopped:
                    return
                finally:
                    out.seconds += time.perf_counter() - t0
                    out.work = out.work + (work_counters(m) - before)
                out.repeats += 1
                with lock:
                    done[0] += 1
                    if progress:
                        progress(done[0], total)

    threads = [threading.Thread(target=worker, args=(t,), name=f"vmalloc_test/{t}") for t in range(p.nr_threads)]
    for t in threads:
        t.start()
    # Wait on events of our own: a join() that Ctrl-C interrupts can take a running thread for
    # finished (CPython's _wait_for_tstate_lock), and the cleanup of the scenario that was
    # running must be over before anyone looks at the machine.
    try:
        for ev in finished:
            while not ev.wait(0.2):  # a bare wait() would not see Ctrl-C until the thread ends
                pass
    except KeyboardInterrupt:
        stop.set()
        for ev in finished:
            ev.wait()
    for t in threads:
        t.join()
    report.interrupted = stop.is_set()
    return report
