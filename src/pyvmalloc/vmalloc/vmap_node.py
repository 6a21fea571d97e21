"""vmap nodes (Linux 6.9+): per-node lazy lists and pools of freed areas, as 6.12 runs them.

Uladzislau Rezki's "Mitigate a vmap lock contention" series (6.9) split mm/vmalloc.c's global
busy and lazy trees into ``struct vmap_node``s and gave each node pools of freed areas by size.
The rules, as 6.12's mm/vmalloc.c has them (function names are the kernel's):

- ``vmap_init_nodes``: on 64-bit, ``nr_vmap_nodes = clamp(num_possible_cpus(), 1, 128)`` and,
  when that is more than 1, ``vmap_zone_size = 16 * PAGE_SIZE``; 32-bit kernels keep one node.
  ``addr_to_node_id(addr) = (addr / vmap_zone_size) % nr_vmap_nodes``.
- ``node_alloc``: only a request whose range is exactly ``[VMALLOC_START, VMALLOC_END]`` and only
  with more than one node; the node is the requesting CPU's (``raw_smp_processor_id() %
  nr_vmap_nodes``), encoded in ``va->flags`` as ``(node + 1) << BITS_PER_BYTE`` whether or not the
  pool had an area (``encode_vn_id``).  ``node_pool_del_va`` looks at the pool for the request's
  page count (``size_to_va_pool``: ``(size - 1) / PAGE_SIZE < MAX_VA_SIZE_PAGES``, guard page
  counted): its head is taken if ``IS_ALIGNED(va_start, align)``, otherwise moved to the tail
  (``list_move_tail``) and the global tree is searched.  No pool is asked on the retry after a
  purge.  A pooled area is handed out as it is: it never went back to the free tree, which a
  pool hit leaves untouched (:func:`hand_over`).
- ``free_vmap_area_noflush``: the area joins the lazy list of its encoded node, or of
  ``addr_to_node(va_start)`` when none is encoded; each lazy list is kept in address order.
- ``__purge_vmap_area_lazy(start, end, full_pool_decay)``: for every node, first
  ``decay_va_pool_node``, then the node's lazy list becomes its purge list; one TLB flush over
  all of them; ``nr_purge_helpers = clamp(vmap_lazy_nr / lazy_max_pages(), 1, nodes) - 1``:
  the first that many nodes to purge (in node order) become ``purge_work`` items on
  ``system_wq`` (``schedule_work_on(i)``: the CPU numbered like the node when it is online,
  else the local CPU), the caller purges the rest itself, then ``flush_work``s the helpers
  (:class:`PurgeWork`; the model runs them on the simulated clock, see :meth:`VmapNodes.purge`);
  ``purge_vmap_node`` walks a purge list in
  address order and ``list_add``s every area with an encoded node and a pool to the head of that
  pool (so the highest address ends first) unless ``skip_populate`` (a full decay); the others
  are ``list_add``ed to a local list, which ``reclaim_list_global`` gives back to the free tree
  in list order: each node's in descending address order (:meth:`VmapNodes.purge`,
  :func:`reclaim_list_global`).
- ``decay_va_pool_node``: each non-empty pool loses ``len >> 2`` areas from its head; the 6.9
  loop (``if (!--n_decay) break;`` after the first removal) empties a pool of fewer than 4, which
  the 6.12 captures show (Debian 6.12.95: a pool of one area was gone after the next purge).  A
  full decay (``reclaim_and_purge_vmap_areas`` after a failed search, and the ``vmap-node``
  shrinker's ``vmap_node_shrink_scan``) empties every pool.  A node's decayed areas, of all its
  pools, are first merged among themselves (``merge_or_add_vmap_area`` onto a local
  ``decay_root``/``decay_list``), then ``reclaim_list_global`` gives the merged runs back in
  address order (:meth:`VmapNodes.decay_nodes`, :func:`reclaim_decayed`).
- Pooled areas stay out of the free tree, so the allocator keeps them reserved, but they are on
  no busy or lazy list: ``/proc/vmallocinfo`` does not show them.  ``vmalloc_info_show`` prints
  the busy areas node by node (each node's list in address order), then ``show_purge_info`` the
  lazy ones node by node, one line per area.

The model keeps one :class:`VmapNodes` per machine (``Vmalloc.vmap_nodes``, None before 6.9 or
without lazy purge), made by :func:`boot_vmap_nodes`, which also takes the two what-if knobs
(``Machine(nr_vmap_nodes=, vmap_pool_max_pages=)``) that replace the node count and
MAX_VA_SIZE_PAGES; the kernel has no tunable for either.  A pooled area is a ``vmap_area``
with the model's flag :data:`VA_POOLED` (and its node bits); counters of what a real kernel
does not tell (pool hits and misses, global searches, purge batches, lock acquisitions per
node) are in :attr:`VmapNodes.stats`.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from pyvmalloc.errors import ConfigError, Inconsistency
from pyvmalloc.formats.trace import TraceEvent
from pyvmalloc.versions import KernelVersion, has
from pyvmalloc.vmalloc.allocator import VmapAllocator
from pyvmalloc.vmalloc.kva_rbtree import KvaRbtreeAllocator
from pyvmalloc.vmalloc.vm_struct import VA_POOLED, VM_LAZY_FREE, vmap_area

MAX_VA_SIZE_PAGES = 256      # mm/vmalloc.c: pools hold areas of up to 256 pages (guard included)
VMAP_ZONE_PAGES = 16         # vmap_init_nodes: "Node partition is 16 pages."
MAX_VMAP_NODES = 128         # vmap_init_nodes: clamp(num_possible_cpus(), 1, 128)
VN_ID_SHIFT = 8              # encode_vn_id: (node_id + 1) << BITS_PER_BYTE
VN_ID_MASK = 0xFF << VN_ID_SHIFT
MAX_VN_IDS = 255             # encode_vn_id: "Can store U8_MAX [0:254] nodes."

__all__ = ["MAX_VA_SIZE_PAGES", "VN_ID_MASK", "PoolState", "PurgeWork", "VmapNode", "VmapNodes", "apply_pool_state", "check_pools",
           "boot_vmap_nodes", "check_knobs", "hand_over", "nr_vmap_nodes", "pool_state_from_trace", "reclaim_decayed", "reclaim_list_global"]


def nr_vmap_nodes(cpus: int, bits: int) -> int:
    """``nr_vmap_nodes`` of a kernel with ``cpus`` possible CPUs (one node on 32-bit)."""
    return max(1, min(cpus, MAX_VMAP_NODES)) if bits == 64 else 1


def check_knobs(nr: int | None, pool_max_pages: int | None) -> None:
    """ConfigError unless ``nr`` and ``pool_max_pages`` are values :func:`boot_vmap_nodes` takes."""
    if nr is not None and (isinstance(nr, bool) or not isinstance(nr, int) or not 1 <= nr <= MAX_VN_IDS):
        raise ConfigError(f"nr_vmap_nodes={nr!r}: a number of vmap nodes from 1 to {MAX_VN_IDS} "
                          "(encode_vn_id keeps a node id in 8 bits of va->flags)")
    if pool_max_pages is not None and (isinstance(pool_max_pages, bool) or not isinstance(pool_max_pages, int)
                                       or pool_max_pages < 0):
        raise ConfigError(f"vmap_pool_max_pages={pool_max_pages!r}: a number of pages, 0 or more "
                          "(0: no pools)")


def boot_vmap_nodes(kernel: KernelVersion, lazy_purge: bool, cpus: int, bits: int, page_size: int,
                    vstart: int, vend: int, nr: int | None = None,
                    pool_max_pages: int | None = None) -> VmapNodes | None:
    """The vmap nodes a machine boots with (``vmap_init_nodes``), None before 6.9 or without
    lazy purge (the nodes' lazy lists and pools live on it).

    ``nr`` and ``pool_max_pages`` are what-if knobs for allocator experiments, not tunables:
    the kernel has no sysctl or boot parameter for either.  ``nr`` replaces ``nr_vmap_nodes``
    (the clamp of ``num_possible_cpus()``; one node on 32-bit), up to the 255 node ids
    ``encode_vn_id`` can put in ``va->flags``; ``pool_max_pages`` replaces MAX_VA_SIZE_PAGES,
    the page count (guard included) up to which ``size_to_va_pool`` gives an area a pool (0:
    no area is pooled).  None keeps the kernel's value.  ConfigError on a bad value, and on a
    kernel or machine without vmap nodes, where they would mean nothing.
    """
    check_knobs(nr, pool_max_pages)
    on = lazy_purge and has(kernel, "vmap_nodes") and has(kernel, "vmap_node_pools")
    if not on:
        if nr is not None or pool_max_pages is not None:
            knob = f"nr_vmap_nodes={nr}" if nr is not None else f"vmap_pool_max_pages={pool_max_pages}"
            why = (f"Linux {kernel} has no vmap nodes (they came in 6.9)" if not has(kernel, "vmap_nodes")
                   else "the vmap nodes live on lazy purge, which this machine has turned off")
            raise ConfigError(f"{knob}: {why}")
        return None
    return VmapNodes(nr_vmap_nodes(cpus, bits) if nr is None else nr, page_size, vstart, vend,
                     MAX_VA_SIZE_PAGES if pool_max_pages is None else pool_max_pages)


@dataclass
class PurgeWork:
    """One node's ``purge_vmap_node`` in one ``__purge_vmap_area_lazy`` (6.9+).

    ``cpu`` is the CPU whose ``system_wq`` worker ran it (a helper), None when the purging
    caller ran it itself.  On the simulated clock a purge step is one area taken off a purge
    list: helpers start together when they are scheduled, the caller's nodes run one after the
    other from the same moment, and each node's ``reclaim_list_global`` happens at its
    ``finish`` step -- the order in which the nodes' areas reach the free tree.
    """

    node: int
    nr_purged: int                 # vn->nr_purged: areas on its purge list
    back: list[vmap_area]          # its local_list, in reclaim_list_global's order
    cpu: int | None
    finish: int


class VmapNode:
    """One ``struct vmap_node``: its pools (page count -> areas, head first) and lock counts."""

    def __init__(self, node_id: int) -> None:
        self.id = node_id
        self.pools: dict[int, deque[vmap_area]] = {}
        self.locks: Counter[str] = Counter()  # acquisitions of busy.lock, lazy.lock, pool_lock

    def pooled(self) -> Iterator[vmap_area]:
        """Every pooled area of this node, by pool (page count), head first."""
        for n in sorted(self.pools):
            yield from self.pools[n]

    def __len__(self) -> int:
        return sum(len(p) for p in self.pools.values())


class VmapNodes:
    """The vmap nodes of one machine (see the module docstring for the rules)."""

    def __init__(self, nr: int, page_size: int, vstart: int, vend: int,
                 pool_max_pages: int = MAX_VA_SIZE_PAGES) -> None:
        self.nr = nr
        self.page_size = page_size
        # MAX_VA_SIZE_PAGES, or an experiment's value (boot_vmap_nodes): the pools' size limit.
        self.pool_max_pages = pool_max_pages
        self.zone_size = VMAP_ZONE_PAGES * page_size if nr > 1 else 1
        self.vstart, self.vend = vstart, vend
        self.nodes = [VmapNode(i) for i in range(nr)]
        self.stats: Counter[str] = Counter(dict.fromkeys((
            "pool_hits", "pool_misses", "pool_align_misses", "global_searches", "pooled",
            "decayed", "purge_batches", "purge_helpers", "purge_helper_areas", "purge_caller_areas",
            "purge_steps", "purge_span", "shrinker_runs"), 0))
        # The work of the last __purge_vmap_area_lazy, node by node in reclaim order.
        self.last_purge: list[PurgeWork] = []

    # -- node ids --------------------------------------------------------------------------
    def addr_to_node_id(self, addr: int) -> int:
        """``addr_to_node_id``: the node whose busy list holds an area starting at ``addr``."""
        return (addr // self.zone_size) % self.nr

    def encode(self, node_id: int) -> int:
        """``encode_vn_id``: the bits of ``va->flags`` that name ``node_id``."""
        return (node_id + 1) << VN_ID_SHIFT if 0 <= node_id < self.nr else 0

    def decode(self, flags: int) -> int | None:
        """``decode_vn_id``: the node encoded in ``flags``, or None (no valid node)."""
        node_id = ((flags & VN_ID_MASK) >> VN_ID_SHIFT) - 1
        return node_id if 0 <= node_id < self.nr else None

    def lazy_node_id(self, va: vmap_area) -> int:
        """The node whose lazy list a freed ``va`` joins (``free_vmap_area_noflush``)."""
        vn = self.decode(va.flags)
        return self.addr_to_node_id(va.va_start) if vn is None else vn

    def pool_index(self, size: int) -> int | None:
        """``size_to_va_pool``: the pool of an area of ``size`` bytes, or None (too big)."""
        idx = (size - 1) // self.page_size
        return idx if idx < self.pool_max_pages else None

    # -- allocation --------------------------------------------------------------------------
    def node_alloc(self, size: int, align: int, vstart: int, vend: int,
                   cpu: int) -> tuple[vmap_area | None, int]:
        """``node_alloc``: (the pooled area taken, or None; the node bits for ``va->flags``)."""
        if vstart != self.vstart or vend != self.vend or self.nr == 1:
            self.stats["global_searches"] += 1
            return None, 0
        node_id = cpu % self.nr
        va = self._pool_del(self.nodes[node_id], size, align, vstart, vend)
        if va is None:
            self.stats["global_searches"] += 1
        return va, self.encode(node_id)

    def _pool_del(self, vn: VmapNode, size: int, align: int, vstart: int, vend: int) -> vmap_area | None:
        """``node_pool_del_va``."""
        idx = self.pool_index(size)
        pool = vn.pools.get(idx) if idx is not None else None
        if not pool:
            self.stats["pool_misses"] += 1
            return None
        vn.locks["pool_lock"] += 1
        va = pool[0]
        if va.va_start % align:
            pool.rotate(-1)  # list_move_tail
            self.stats["pool_align_misses"] += 1
            return None
        if va.size != size or va.va_start < vstart or va.va_end > vend:  # WARN_ON_ONCE(err)
            self.stats["pool_misses"] += 1
            return None
        pool.popleft()
        if not pool:
            del vn.pools[idx]  # type: ignore[arg-type]
        self.stats["pool_hits"] += 1
        return va

    def note_busy(self, addr: int) -> None:
        """An area was inserted in (or removed from) the busy list of its node."""
        self.nodes[self.addr_to_node_id(addr)].locks["busy.lock"] += 1

    def note_lazy(self, va: vmap_area) -> None:
        """A freed area joined its node's lazy list."""
        self.nodes[self.lazy_node_id(va)].locks["lazy.lock"] += 1

    # -- purging -----------------------------------------------------------------------------
    def decay_nodes(self, full: bool) -> list[list[vmap_area]]:
        """``decay_va_pool_node`` of every node, node by node: each node's decayed areas (pool
        by pool, each from its head), which go back to the free tree merged among themselves
        (:func:`reclaim_decayed`)."""
        out: list[list[vmap_area]] = []
        for vn in self.nodes:
            decayed: list[vmap_area] = []
            for idx in sorted(vn.pools):
                pool = vn.pools[idx]
                vn.locks["pool_lock"] += 1
                n = len(pool) if full or len(pool) < 4 else len(pool) >> 2
                for _ in range(n):
                    decayed.append(pool.popleft())
                if not pool:
                    del vn.pools[idx]
            self.stats["decayed"] += len(decayed)
            out.append(decayed)
        return out

    def decay(self, full: bool) -> list[vmap_area]:
        """:meth:`decay_nodes` as one list, node by node."""
        return [va for decayed in self.decay_nodes(full) for va in decayed]

    def purge(self, purge: Sequence[vmap_area], full: bool, lazy_pages: int,
              lazy_max_pages: int, nr_cpus: int = 1, cpu: int = 0) -> list[list[vmap_area]]:
        """``__purge_vmap_area_lazy`` after the decay: every lazy area goes to its node's pool
        or back to the free tree (``purge_vmap_node``, node by node).  Returned: each purged
        node's ``local_list``, the areas to give back in the order ``reclaim_list_global``
        gives them (``list_add`` of an address-ordered walk: descending addresses), node after
        node in the order the nodes finish on the simulated clock (:class:`PurgeWork`; without
        helpers, node order).  ``lazy_pages`` is ``vmap_lazy_nr`` when the purge starts; the
        helpers' work items run on CPU ``node`` when ``node < nr_cpus``, else on ``cpu`` (the
        purging CPU: ``schedule_work``); :attr:`last_purge` tells who ran what."""
        by_node: dict[int, list[vmap_area]] = {}
        for va in purge:
            by_node.setdefault(self.lazy_node_id(va), []).append(va)
        # "One extra worker is per a lazy_max_pages() full set minus one."
        helpers = max(1, min(lazy_pages // max(lazy_max_pages, 1), len(by_node))) - 1
        self.stats["purge_helpers"] += helpers
        works: list[PurgeWork] = []
        caller_steps = 0
        for k, node_id in enumerate(sorted(by_node)):  # for_each_cpu(i, &purge_nodes)
            vn = self.nodes[node_id]
            vn.locks["lazy.lock"] += 1
            batch = sorted(by_node[node_id], key=lambda v: v.va_start)
            self.stats["purge_batches"] += 1
            self.stats[f"purge_batch_areas.node{node_id}"] += len(batch)
            local: list[vmap_area] = []
            for va in batch:
                idx = self.pool_index(va.size)
                if not full and self.decode(va.flags) is not None and idx is not None:
                    vn.locks["pool_lock"] += 1
                    va.flags = VA_POOLED | (va.flags & VN_ID_MASK)
                    vn.pools.setdefault(idx, deque()).appendleft(va)  # list_add
                    self.stats["pooled"] += 1
                else:
                    local.insert(0, va)  # list_add(&va->list, &local_list)
            nr = len(batch)
            if k < helpers:  # INIT_WORK(purge_work); schedule_work_on(i) (or schedule_work)
                wcpu = node_id if node_id < nr_cpus else cpu
                works.append(PurgeWork(node_id, nr, local, wcpu, nr))
                self.stats["purge_helper_areas"] += nr
                self.stats[f"purge_work.cpu{wcpu}"] += 1
            else:            # purge_vmap_node(&vn->purge_work) in the caller
                caller_steps += nr
                works.append(PurgeWork(node_id, nr, local, None, caller_steps))
                self.stats["purge_caller_areas"] += nr
        # flush_work() of every helper: the purge ends when the last node is done.
        works.sort(key=lambda w: (w.finish, w.node))
        self.stats["purge_steps"] += sum(w.nr_purged for w in works)
        self.stats["purge_span"] += max((w.finish for w in works), default=0)
        self.last_purge = works
        return [w.back for w in works]

    def shrink(self) -> list[list[vmap_area]]:
        """``vmap_node_shrink_scan`` (the ``vmap-node`` shrinker): every pool fully decayed,
        node by node (:meth:`decay_nodes`)."""
        self.stats["shrinker_runs"] += 1
        return self.decay_nodes(True)

    def shrink_count(self) -> int:
        """``vmap_node_shrink_count``: how many areas the pools hold."""
        return sum(len(vn) for vn in self.nodes)

    # -- what the others ask -----------------------------------------------------------------
    def pooled(self) -> Iterator[vmap_area]:
        """Every pooled area, node by node."""
        for vn in self.nodes:
            yield from vn.pooled()

    def pool_of(self, va: vmap_area) -> tuple[int, int] | None:
        """(node, pool index) of a pooled area, or None when it is in no pool."""
        for vn in self.nodes:
            for idx, pool in vn.pools.items():
                if any(p is va for p in pool):
                    return vn.id, idx
        return None

    def add_pooled(self, node_id: int, va: vmap_area) -> None:
        """Put a restored pooled area at the tail of its pool (snapshot restoring)."""
        idx = self.pool_index(va.size)
        if idx is None or not 0 <= node_id < self.nr:
            raise ValueError(f"no pool for {va!r} on node {node_id}")
        va.flags = VA_POOLED | self.encode(node_id)
        self.nodes[node_id].pools.setdefault(idx, deque()).append(va)

    def lock_counts(self) -> dict[str, int]:
        """Acquisitions of each node's locks, as ``node<N>.<lock>``."""
        return {f"node{vn.id}.{k}": int(v) for vn in self.nodes for k, v in sorted(vn.locks.items())}

    def vmallocinfo_order(self, busy: Iterable[int], lazy: Iterable[vmap_area]) -> tuple[list[int], list[int]]:
        """Orders of ``vmalloc_info_show``: indices of the busy starts node by node (each in
        address order), and of the lazy areas by lazy node (each in address order)."""
        b = sorted(enumerate(busy), key=lambda t: (self.addr_to_node_id(t[1]), t[1]))
        lz = sorted(enumerate(lazy), key=lambda t: (self.lazy_node_id(t[1]), t[1].va_start))
        return [i for i, _ in b], [i for i, _ in lz]


# ---- between the pools and the free tree ------------------------------------------------------------
def hand_over(allocator: VmapAllocator, pooled: vmap_area, va: vmap_area) -> None:
    """``node_alloc``'s pool hit: the range of ``pooled``, still reserved in ``allocator``,
    becomes ``va``'s.  The kernel hands the pooled ``vmap_area`` out as it is and its range never
    went back to the free tree: ``kva-rbtree`` keeps its tree untouched; other allocators, whose
    tree shape the kernel's is not, free the range and take it again."""
    if isinstance(allocator, KvaRbtreeAllocator):
        if allocator.hand_over(pooled.va_start, va) is not pooled:
            raise Inconsistency(f"pool hit {pooled!r} is not reserved in the address allocator")
        return
    allocator.remove(pooled.va_start)
    if not allocator.insert(pooled.va_start, pooled.size, va):
        raise Inconsistency(f"pool hit {pooled!r}: its range could not be taken again")


def reclaim_list_global(allocator: VmapAllocator, areas: Iterable[vmap_area]) -> None:
    """``reclaim_list_global``: give ``areas`` back to the free tree one by one, in list order
    (``merge_or_add_vmap_area_augment`` each)."""
    for va in areas:
        allocator.remove(va.va_start)


def reclaim_decayed(allocator: VmapAllocator, decayed: Iterable[vmap_area]) -> None:
    """``decay_va_pool_node``'s give-back of one node's decayed areas: merged among themselves
    first (``merge_or_add_vmap_area`` onto a local ``decay_root``/``decay_list``), then the runs,
    in address order, back to the free tree (``reclaim_list_global(&decay_list)``).  An
    allocator without :meth:`KvaRbtreeAllocator.release` frees the areas in address order (the
    same free space; only the kernel's tree has a shape to keep)."""
    ordered = sorted(decayed, key=lambda va: va.va_start)
    if not isinstance(allocator, KvaRbtreeAllocator):
        reclaim_list_global(allocator, ordered)
        return
    runs: list[list[int]] = []
    for va in ordered:
        got = allocator.release(va.va_start)
        if got is None:
            raise Inconsistency(f"decayed {va!r} is not reserved in the address allocator")
        start, size, _owner = got
        if runs and runs[-1][1] == start:
            runs[-1][1] = start + size
        else:
            runs.append([start, start + size])
    for start, end in runs:
        allocator.reclaim(start, end)


# ---- the pools a boot left, from its trace --------------------------------------------------------
@dataclass
class PoolState:
    """What a 6.9+ trace from boot says that ``/proc/vmallocinfo`` does not: the pooled areas,
    ``(node, start, size)`` by pool, head first, and the node of every lazily freed and busy
    area (``start -> node``, None for an area with no node encoded)."""

    pooled: list[tuple[int, int, int]]
    lazy_nodes: dict[int, int]
    busy_nodes: dict[int, int | None]
    pool_hits: int = 0

    def render(self) -> list[str]:
        """The lines of a capture's ``vmap_pools.txt``."""
        out = [f"pool node={n} start={s:#x} size={z}" for n, s, z in self.pooled]
        out += [f"lazy node={n} start={s:#x}" for s, n in sorted(self.lazy_nodes.items())]
        out += [f"busy node={'-' if n is None else n} start={s:#x}" for s, n in sorted(self.busy_nodes.items())]
        return out

    @classmethod
    def parse(cls, text: str) -> PoolState:
        """The inverse of :meth:`render` (``#`` lines are comments)."""
        st = cls([], {}, {})
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            kind, *rest = line.split()
            f = dict(t.split("=", 1) for t in rest)
            start = int(f["start"], 16)
            node = None if f["node"] == "-" else int(f["node"])
            if kind == "pool" and node is not None:
                st.pooled.append((node, start, int(f["size"])))
            elif kind == "lazy" and node is not None:
                st.lazy_nodes[start] = node
            elif kind == "busy":
                st.busy_nodes[start] = node
            else:
                raise ValueError(f"bad vmap_pools line: {line!r}")
        return st


def pool_state_from_trace(events: Iterable[TraceEvent], nr: int, page_size: int, vstart: int,
                          vend: int) -> PoolState:
    """Run the pool rules over a 6.9+ trace recorded from boot (``alloc_vmap_area``,
    ``free_vmap_area_noflush``, ``purge_vmap_area_lazy`` with their CPUs): the areas each pool
    holds at the trace's end.  A failed search's purge is a full decay and the search after it
    is the retry (no pool asked).  ValueError when a pool hit the rules predict is not the
    address the trace shows."""
    nodes = VmapNodes(nr, page_size, vstart, vend)
    live: dict[int, vmap_area] = {}
    lazy: list[vmap_area] = []
    failed = retry = False
    hits = 0
    for ev in events:
        if ev.event == "alloc_vmap_area":
            v = ev.values
            if v["failed"]:
                failed = True
                continue
            addr, size = v["addr"], v["size"]
            va = vmap_area(addr, addr + size, 0)
            if not retry:
                got, bits = nodes.node_alloc(size, max(v["align"], page_size), v["vstart"], v["vend"], ev.cpu)
                va.flags |= bits
                if got is not None:
                    if got.va_start != addr:
                        raise ValueError(f"line {ev.line}: the pool holds {got.va_start:#x}, the trace took {addr:#x}")
                    hits += 1
            else:
                va.flags |= nodes.encode(ev.cpu % nr) if (v["vstart"], v["vend"]) == (vstart, vend) and nr > 1 else 0
            retry = False
            live[addr] = va
        elif ev.event == "free_vmap_area_noflush":
            va = live.pop(ev["va_start"], vmap_area(ev["va_start"], ev["va_start"] + page_size, 0))
            va.flags = VM_LAZY_FREE | (va.flags & VN_ID_MASK)
            lazy.append(va)
        elif ev.event == "purge_vmap_area_lazy":
            nodes.decay(failed)
            nodes.purge(lazy, failed, 0, 1)
            lazy = []
            retry, failed = failed, False
    pooled = [(vn.id, va.va_start, va.size) for vn in nodes.nodes for idx in sorted(vn.pools)
              for va in vn.pools[idx]]
    return PoolState(pooled, {va.va_start: nodes.lazy_node_id(va) for va in lazy},
                     {a: nodes.decode(va.flags) for a, va in live.items()}, hits)



def check_pools(nodes: VmapNodes | None, reserved: set[int]) -> None:
    """Inconsistency unless the pools hold exactly the ``VA_POOLED`` areas the allocator
    reserves (``reserved``: their ids), each once, in the pool of its node and page count, in
    the vmalloc range, with no flag but ``VA_POOLED`` and its node bits."""
    if nodes is None:
        if reserved:
            raise Inconsistency(f"{len(reserved)} pooled areas on a kernel without vmap nodes")
        return
    seen: set[int] = set()
    for vn in nodes.nodes:
        for idx, pool in vn.pools.items():
            if not pool:
                raise Inconsistency(f"node {vn.id}: an empty pool {idx} is kept")
            for va in pool:
                where = f"node {vn.id} pool {idx + 1} pages: {va!r}"
                if id(va) in seen:
                    raise Inconsistency(f"{where} is pooled twice")
                seen.add(id(va))
                if id(va) not in reserved:
                    raise Inconsistency(f"{where} is not reserved in the address allocator")
                if va.flags != VA_POOLED | nodes.encode(vn.id) or va.vm is not None:
                    raise Inconsistency(f"{where} does not carry VA_POOLED and node {vn.id} alone")
                if nodes.pool_index(va.size) != idx:
                    raise Inconsistency(f"{where} is in the pool of another size")
                if va.va_start < nodes.vstart or va.va_end > nodes.vend + 1:
                    raise Inconsistency(f"{where} lies outside the vmalloc range")
    if reserved - seen:
        raise Inconsistency(f"{len(reserved - seen)} VA_POOLED areas reserved in the allocator are in no pool")


def apply_pool_state(nodes: VmapNodes, allocator: VmapAllocator, st: PoolState,
                     areas: Iterable[vmap_area]) -> None:
    """Give a restored snapshot what its trace says (:class:`PoolState`): the node of each busy
    and lazily freed area, and the pooled areas (reserved in ``allocator``, put in their pools
    in order).  ``areas``: the restored vmap_areas.  The caller holds vmlist_lock for write."""
    by_start = {va.va_start: va for va in areas}
    for start, node in st.lazy_nodes.items():
        va = by_start.get(start)
        if va is not None and va.flags & VM_LAZY_FREE:
            va.flags = VM_LAZY_FREE | nodes.encode(node)
    for start, bnode in st.busy_nodes.items():
        va = by_start.get(start)
        if va is not None and bnode is not None and not va.flags & VM_LAZY_FREE:
            va.flags = (va.flags & ~VN_ID_MASK) | nodes.encode(bnode)
    for node, start, size in st.pooled:
        va = vmap_area(start, start + size, 0)
        if not allocator.insert(start, size, va):
            raise ValueError(f"pooled area {start:#x}+{size:#x} overlaps a restored one")
        nodes.add_pooled(node, va)
