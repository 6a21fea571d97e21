"""Eight threads at once: random vmalloc/vmap, vwrite/vread, vfree/vunmap, no byte lost or crossed.

Each thread fills its areas with bytes only it could have written (random under a seed made of
its id and a counter), rewrites random pieces, and verifies every byte before freeing.  At the
end the machine is checked and every frame is back.  The locking model this exercises is
documented in ``pyvmalloc.vmalloc.api`` (vmlist_lock, the page lock, the page-table lock).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

import pyvmalloc as pv
from pyvmalloc.phys import Page

PAGE = 4096
THREADS = 8


@dataclass
class Owned:
    """One area a thread owns and the bytes it must hold."""

    addr: int
    kind: str
    data: bytearray
    pages: list[Page] = field(default_factory=list)


def run_stress(m: pv.Machine, ops: int, seed: int) -> dict[str, int]:
    """``THREADS`` threads doing ``ops`` random operations each; returns operation counts.
    Raises AssertionError with every thread's first problem."""
    errors: list[str] = []
    counts: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def fill(tid: int, k: int, n: int) -> bytearray:
        return bytearray(np.random.default_rng((seed, tid, k)).integers(0, 256, n, dtype=np.uint8).tobytes())

    def verify(tid: int, own: Owned) -> None:
        got = m.vread(own.addr, len(own.data))
        if got != own.data:
            bad = next(i for i, (x, y) in enumerate(zip(got, own.data)) if x != y) if len(got) == len(own.data) else -1
            raise AssertionError(f"thread {tid}: {own.kind} area {own.addr:#x} lost its bytes "
                                 f"(first difference at offset {bad}, {len(got)} bytes read)")

    def release(own: Owned) -> None:
        if own.kind == "vmap":
            m.vunmap(own.addr)
            # The pages outlive the mapping and still hold what was written through it.
            for i, page in enumerate(own.pages):
                if m.phys.frames.read(page.phys_addr, PAGE) != own.data[i * PAGE:(i + 1) * PAGE]:
                    raise AssertionError(f"vmap page {page.pfn:#x} changed after vunmap")
                m.free_page(page)
        else:
            m.vfree(own.addr)

    def worker(tid: int) -> None:
        rng = random.Random(seed * 1000 + tid)
        mine: list[Owned] = []
        done: dict[str, int] = {}
        start.wait()
        try:
            for k in range(ops):
                op = rng.choices(["alloc", "vmap", "write", "read", "free"], [4, 1, 3, 2, 3])[0]
                if op in ("write", "read", "free") and not mine:
                    op = "alloc"
                if op == "alloc":
                    kind = rng.choice(["vmalloc", "vmalloc", "vmalloc_user", "vmalloc_node", "vpages"])
                    npages = 600 if kind == "vpages" else rng.randint(1, 12)
                    size = npages * PAGE - rng.randrange(PAGE)
                    a = (m.vmalloc_node(size, tid % 2) if kind == "vmalloc_node"
                         else m.vmalloc_user(size) if kind == "vmalloc_user" else m.vmalloc(size))
                    assert a is not None, f"thread {tid}: {kind}({size}) failed"
                    own = Owned(a, kind, fill(tid, k, size))
                    assert m.vwrite(a, own.data) == size
                    mine.append(own)
                elif op == "vmap":
                    n = rng.randint(1, 6)
                    pages = [m.alloc_page() for _ in range(n)]
                    a = m.vmap(pages, n)
                    assert a is not None, f"thread {tid}: vmap of {n} pages failed"
                    own = Owned(a, "vmap", fill(tid, k, n * PAGE), pages)
                    m.vwrite(a, own.data)
                    mine.append(own)
                elif op == "write":
                    own = rng.choice(mine)
                    off = rng.randrange(len(own.data))
                    piece = fill(tid, ops + k, rng.randint(1, len(own.data) - off))
                    assert m.vwrite(own.addr + off, piece) == len(piece)
                    own.data[off:off + len(piece)] = piece
                elif op == "read":
                    verify(tid, rng.choice(mine))
                else:
                    own = mine.pop(rng.randrange(len(mine)))
                    verify(tid, own)
                    release(own)
                done[op] = done.get(op, 0) + 1
            for own in mine:
                verify(tid, own)
                release(own)
        except Exception as exc:  # every thread's failure is reported
            with lock:
                errors.append(f"thread {tid}: {type(exc).__name__}: {exc}")
        with lock:
            for op, n in done.items():
                counts[op] = counts.get(op, 0) + n

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, "\n".join(errors)
    return counts


def free_and_tables(m: pv.Machine) -> int:
    m.slab.kmem_cache_shrink()  # empty slabs kept for reuse are not lost frames
    return m.phys.nr_free() + m.init_mm.nr_table_frames


@pytest.mark.parametrize("allocator,lazy", [("list", False), ("kva", True)])
def test_eight_threads_lose_and_cross_no_byte(allocator: str, lazy: bool) -> None:
    m = pv.Machine(arch="x86_64", ram="256M", nodes=2, cpus=8, allocator=allocator, lazy_purge=lazy)
    before = free_and_tables(m)
    reads_before = m.vmlist_lock.read_acquisitions
    counts = run_stress(m, ops=60, seed=1)
    assert sum(counts.values()) == THREADS * 60
    assert list(m.areas()) == []
    m.check()
    m.vm_unmap_aliases()
    m.check()
    assert free_and_tables(m) == before
    # Every operation walked the area list under vmlist_lock for read: vwrite after each
    # allocation and each write, vread for each read and before each free.
    assert m.stats()["vmlist_lock.read"] - reads_before >= sum(counts.values())
