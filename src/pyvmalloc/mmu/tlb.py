"""Per-CPU TLBs and the CPU's view of memory: accesses go through the TLB, then the walk.

A ``Tlb`` caches translations per (address space id, virtual page number) in LRU order, as
a translation cache does: a page unmapped without a flush keeps its stale translation, and
an access through it reaches the old frame.  ``Mmu`` performs loads and stores of the
current CPU, raising ``PageFault`` where the hardware would, and implements the flush calls
(``flush_tlb_kernel_range`` & co.) on every CPU, counting them in ``stats``.

Address spaces: every ``PageTables`` has an ``asid``; ``Mmu.read/write/probe`` use the
kernel's tables (the ones given to the constructor) unless ``page_tables=`` names another
(a user mm).  Entries are tagged with the asid, so no translation leaks between spaces.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from pyvmalloc.errors import ConfigError, PageFault
from pyvmalloc.mmu.pagetable import PageTables, access_fault_reason
from pyvmalloc.phys.frames import FrameStore

# Below this many pages a range invalidation probes each page of each address space;
# above it, scanning the whole TLB is cheaper.
_PROBE_LIMIT = 64


class TlbEntry(NamedTuple):
    """One cached translation: frame, the leaf entry it came from, its effective rights,
    and the level of the leaf (for fault reasons)."""

    pfn: int
    pte: int
    perms: int
    level: str


class Tlb:
    """One CPU's TLB: ``capacity`` translations (asid, vpn) -> TlbEntry, least recently used
    out first (1536 is the second-level TLB of recent x86 cores)."""

    def __init__(self, capacity: int = 1536) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigError(f"TLB capacity must be a positive int, not {capacity!r}")
        self.capacity = capacity
        self._entries: OrderedDict[tuple[int, int], TlbEntry] = OrderedDict()
        self._per_asid: dict[int, int] = {}
        # Python threads stand in for CPUs and IPIs: a remote flush and a local fill of the
        # same TLB must not interleave inside one operation.
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def items(self) -> list[tuple[tuple[int, int], TlbEntry]]:
        """``((asid, vpn), entry)`` pairs, least recently used first."""
        with self._lock:
            return list(self._entries.items())

    def lookup(self, asid: int, vpn: int) -> TlbEntry | None:
        with self._lock:
            key = (asid, vpn)
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def insert(self, asid: int, vpn: int, entry: TlbEntry) -> None:
        with self._lock:
            key = (asid, vpn)
            if key not in self._entries:
                if len(self._entries) >= self.capacity:
                    (old_asid, _vpn), _e = self._entries.popitem(last=False)
                    self._count(old_asid, -1)
                self._count(asid, 1)
            self._entries[key] = entry
            self._entries.move_to_end(key)

    def _count(self, asid: int, delta: int) -> None:
        n = self._per_asid.get(asid, 0) + delta
        if n:
            self._per_asid[asid] = n
        else:
            self._per_asid.pop(asid, None)

    def invalidate_range(self, vpn_start: int, vpn_end: int, asid: int | None = None) -> int:
        """Drop translations of pages ``[vpn_start, vpn_end)`` (of ``asid``, or of every
        address space); how many were dropped."""
        with self._lock:
            if vpn_end <= vpn_start or not self._entries:
                return 0
            asids = list(self._per_asid) if asid is None else [asid]
            dropped = 0
            if (vpn_end - vpn_start) * len(asids) <= _PROBE_LIMIT:
                for a in asids:
                    for vpn in range(vpn_start, vpn_end):
                        if self._entries.pop((a, vpn), None) is not None:
                            self._count(a, -1)
                            dropped += 1
                return dropped
            doomed = [k for k in self._entries
                      if vpn_start <= k[1] < vpn_end and (asid is None or k[0] == asid)]
            for k in doomed:
                del self._entries[k]
                self._count(k[0], -1)
            return len(doomed)

    def flush(self, asid: int | None = None) -> int:
        """Drop everything (or everything of ``asid``); how many entries were dropped."""
        with self._lock:
            if asid is None:
                n = len(self._entries)
                self._entries.clear()
                self._per_asid.clear()
                return n
            doomed = [k for k in self._entries if k[0] == asid]
            for k in doomed:
                del self._entries[k]
            self._per_asid.pop(asid, None)
            return len(doomed)


class Mmu:
    """The CPUs' memory management units over ``page_tables`` (init_mm) and ``frames``."""

    def __init__(self, page_tables: PageTables, frames: FrameStore, cpus: int,
                 tlb_capacity: int = 1536) -> None:
        if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
            raise ConfigError(f"cpus must be a positive int, not {cpus!r}")
        self.page_tables = page_tables
        self.profile = page_tables.profile
        self.frames = frames
        self.cpus = cpus
        self.tlbs = [Tlb(tlb_capacity) for _ in range(cpus)]
        self._cpu = 0
        self._spaces: weakref.WeakValueDictionary[int, PageTables] = weakref.WeakValueDictionary()
        self._spaces[page_tables.asid] = page_tables
        self.stats: dict[str, int] = {"flushes": 0, "full_flushes": 0, "pages_flushed": 0,
                                      "entries_dropped": 0, "tlb_hits": 0, "tlb_misses": 0,
                                      "walks": 0}

    @property
    def current_cpu(self) -> int:
        """The CPU whose TLB accesses use (settable)."""
        return self._cpu

    @current_cpu.setter
    def current_cpu(self, cpu: int) -> None:
        if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < self.cpus:
            raise ConfigError(f"no CPU {cpu!r} (this machine has {self.cpus})")
        self._cpu = cpu

    # -- translation --------------------------------------------------------------------------
    def _space(self, page_tables: PageTables | None) -> PageTables:
        if page_tables is None:
            return self.page_tables
        if not isinstance(page_tables, PageTables) or page_tables.profile is not self.profile:
            raise ConfigError("page_tables must be a PageTables of this machine's profile")
        self._spaces[page_tables.asid] = page_tables
        return page_tables

    def _resolve(self, pt: PageTables, vpn: int, addr: int, access: str, user: bool) -> int:
        """pfn backing page ``vpn`` for this access: the TLB if it holds a usable entry, else
        a walk that fills it.  Raises PageFault."""
        tlb = self.tlbs[self._cpu]
        hit = tlb.lookup(pt.asid, vpn)
        fmt = pt.fmt
        # A store through an entry whose dirty state the hardware must still record walks
        # again (x86 D bit, arm64 DBM), as the real walker does.
        if hit is not None and not (access == "write" and fmt.hw_update(hit.pte, True) != hit.pte):
            self.stats["tlb_hits"] += 1
            reason = access_fault_reason(hit.perms, access, user, hit.level)
            if reason is not None:
                raise PageFault(addr, access, reason)
            return hit.pfn
        self.stats["tlb_misses"] += 1
        self.stats["walks"] += 1
        page_addr = vpn << self.profile.page_shift
        try:
            pfn, pte, perms, level = pt.hw_walk(page_addr, access, user)
        except PageFault as fault:
            raise PageFault(addr, access, fault.reason) from None
        tlb.insert(pt.asid, vpn, TlbEntry(pfn, pte, perms, level))
        return pfn

    def _pages(self, pt: PageTables, addr: int, n: int, access: str,
               user: bool) -> tuple[list[int], PageFault | None]:
        """pfns of the pages ``[addr, addr + n)`` touches, up to the first fault."""
        shift = self.profile.page_shift
        first, last = addr >> shift, (addr + n - 1) >> shift
        pfns: list[int] = []
        for vpn in range(first, last + 1):
            at = addr if vpn == first else vpn << shift
            if not self.profile.canonical(at):
                return pfns, PageFault(at, access, "non-canonical address")
            try:
                pfns.append(self._resolve(pt, vpn, at, access, user))
            except PageFault as fault:
                return pfns, fault
        return pfns, None

    @staticmethod
    def _check_args(addr: int, n: int) -> None:
        if isinstance(addr, bool) or not isinstance(addr, (int, np.integer)) or addr < 0:
            raise ConfigError(f"address must be a non-negative int, not {addr!r}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"length must be a non-negative int, not {n!r}")

    def probe(self, addr: int, access: str = "read", *, user: bool = False,
              page_tables: PageTables | None = None) -> int:
        """The physical address one access of ``access`` ("read", "write", "exec") at
        ``addr`` reaches on the current CPU; raises PageFault like a real access."""
        if access not in ("read", "write", "exec"):
            raise ConfigError(f"access must be read, write or exec, not {access!r}")
        self._check_args(addr, 1)
        pt = self._space(page_tables)
        pfns, fault = self._pages(pt, int(addr), 1, access, user)
        if fault is not None:
            raise fault
        return (pfns[0] << self.profile.page_shift) | (int(addr) & (self.profile.page_size - 1))

    def read(self, addr: int, n: int, *, user: bool = False,
             page_tables: PageTables | None = None) -> bytes:
        """``n`` bytes loaded from virtual ``addr`` by the current CPU (all ones where the
        physical address has no RAM behind it)."""
        self._check_args(addr, n)
        if n == 0:
            return b""
        addr, n = int(addr), int(n)
        pt = self._space(page_tables)
        pfns, fault = self._pages(pt, addr, n, "read", user)
        if fault is not None:
            raise fault
        ps = self.profile.page_size
        off = addr & (ps - 1)
        if len(pfns) == 1 and pfns[0] < self.frames.nr_frames:
            return self.frames.read(pfns[0] * ps + off, n)
        arr = np.asarray(pfns, dtype=np.int64)
        ram = arr < self.frames.nr_frames
        # Physical addresses without RAM behind them (ioremap of device memory) read as
        # all ones, as an unclaimed bus cycle does on PCs.
        rows = np.full((len(arr), ps), 0xFF, dtype=np.uint8)
        if ram.any():   # (FrameStore.gather of an empty array fails)
            rows[ram] = self.frames.gather(arr[ram])
        return rows.reshape(-1)[off:off + n].tobytes()

    def write(self, addr: int, data: bytes | bytearray | memoryview, *, user: bool = False,
              page_tables: PageTables | None = None) -> None:
        """Store ``data`` at virtual ``addr`` from the current CPU.  Bytes before a faulting
        page are stored, as the stores that precede a faulting one retire, then PageFault.
        Stores to physical addresses beyond RAM (device memory) are dropped."""
        try:
            src = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        except TypeError:
            raise ConfigError(f"data must be bytes-like, not {type(data).__name__}") from None
        self._check_args(addr, len(src))
        if len(src) == 0:
            return
        addr = int(addr)
        pt = self._space(page_tables)
        pfns, fault = self._pages(pt, addr, len(src), "write", user)
        ps = self.profile.page_size
        off = addr & (ps - 1)
        n_ok = len(src) if fault is None else max(0, min(len(src), len(pfns) * ps - off))
        if n_ok and max(pfns) >= self.frames.nr_frames:
            # Stores to physical addresses without RAM go nowhere; store page by page.
            for i, pfn in enumerate(pfns):
                lo = max(0, i * ps - off)
                hi = min(n_ok, (i + 1) * ps - off)
                if lo < hi and pfn < self.frames.nr_frames:
                    self.frames.write(pfn * ps + (off + lo) % ps, src[lo:hi].tobytes())
        elif n_ok:
            head = min(n_ok, ps - off)
            self.frames.write(pfns[0] * ps + off, src[:head].tobytes())
            full = (n_ok - head) // ps
            if full:
                body = src[head:head + full * ps].reshape(full, ps)
                self.frames.scatter(np.asarray(pfns[1:1 + full], dtype=np.int64), body)
            tail = n_ok - head - full * ps
            if tail:
                self.frames.write(pfns[1 + full] * ps, src[n_ok - tail:n_ok].tobytes())
        if fault is not None:
            raise fault

    # -- flushes ------------------------------------------------------------------------------
    def _pages_of(self, start: int, end: int) -> tuple[int, int]:
        if not (isinstance(start, (int, np.integer)) and isinstance(end, (int, np.integer))):
            raise ConfigError(f"flush range must be ints, not {start!r}..{end!r}")
        if end < start:
            raise ConfigError(f"flush range {start:#x}..{end:#x} ends before it starts")
        shift = self.profile.page_shift
        return int(start) >> shift, (int(end) + (1 << shift) - 1) >> shift

    def flush_tlb_kernel_range(self, start: int, end: int) -> None:
        """Invalidate ``[start, end)`` on every CPU and in every address space.  Ranges above
        the architecture's ceiling flush everything, as the kernel does (x86: more than 33
        pages; arm64: more than 512; i386 in 2.6.22: always)."""
        vs, ve = self._pages_of(start, end)
        self.stats["flushes"] += 1
        self.stats["pages_flushed"] += ve - vs
        ceiling = self.profile.tlb_flush_ceiling
        if ceiling is not None and ve - vs > ceiling:
            self.stats["full_flushes"] += 1
            dropped = sum(t.flush() for t in self.tlbs)
        else:
            dropped = sum(t.invalidate_range(vs, ve) for t in self.tlbs)
        self.stats["entries_dropped"] += dropped

    def flush_tlb_all(self) -> None:
        """Invalidate every translation on every CPU."""
        self.stats["flushes"] += 1
        self.stats["full_flushes"] += 1
        self.stats["entries_dropped"] += sum(t.flush() for t in self.tlbs)

    def flush_tlb_range(self, page_tables: PageTables, start: int, end: int) -> None:
        """flush_tlb_range() of a user mm: ``[start, end)`` of that address space only."""
        pt = self._space(page_tables)
        vs, ve = self._pages_of(start, end)
        self.stats["flushes"] += 1
        self.stats["pages_flushed"] += ve - vs
        self.stats["entries_dropped"] += sum(t.invalidate_range(vs, ve, pt.asid) for t in self.tlbs)

    def flush_tlb_mm(self, page_tables: PageTables) -> None:
        """flush_tlb_mm(): every translation of one address space."""
        pt = self._space(page_tables)
        self.stats["flushes"] += 1
        self.stats["entries_dropped"] += sum(t.flush(pt.asid) for t in self.tlbs)

    # -- coherence ----------------------------------------------------------------------------
    def stale_entries(self) -> list[tuple[int, int, int, int, int | None]]:
        """TLB entries that disagree with the page tables now: ``(cpu, asid, vaddr,
        cached pfn, current pfn or None)``.  Empty after every needed flush."""
        out = []
        shift = self.profile.page_shift
        for cpu, tlb in enumerate(self.tlbs):
            for (asid, vpn), entry in tlb.items():
                pt = self._spaces.get(asid)
                phys = None if pt is None else pt.translate(vpn << shift)
                now = None if phys is None else phys >> shift
                if now != entry.pfn:
                    out.append((cpu, asid, vpn << shift, entry.pfn, now))
        return out
