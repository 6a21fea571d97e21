"""Quiz problems in the OSTEP manner: a seeded run of the model, its questions, and each answer
with the rule that produced it, read from the model's own decision.

A quiz is a stream of operations on one machine (``vmalloc``, ``vfree``, an ioremap, a store).
Some operations are *probes*: the reader is asked what happens before the model does it.  The
answer is what the model then did, and the rule is read from what the model recorded while doing
it (the ``alloc_vmap_area`` trace event's range and alignment, the free space the allocator
held just before, the page-table frames it took, the ``PageFault`` the MMU raised, the lazy
purge's events), never from a second formula that could disagree with the model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pyvmalloc as pv
from pyvmalloc.errors import ConfigError
from pyvmalloc.formats.trace import TraceEvent
from pyvmalloc.sizes import human_bytes, parse_size
from pyvmalloc.versions import CHANGES, has
from pyvmalloc.vmalloc.vm_struct import vmap_area

__all__ = ["TOPICS", "Op", "Question", "QuizConfig", "parse_ops", "make_quiz", "render", "replay"]

TOPICS: tuple[str, ...] = ("placement", "pagetable", "fault", "lazy", "fits")


@dataclass(frozen=True)
class Op:
    """One operation: ``a`` vmalloc(size), ``i`` ioremap (get_vm_area VM_IOREMAP) of size,
    ``f`` free area number ``index``, ``w`` a one-byte store at ``p<index> + offset``."""

    kind: str
    size: int = 0
    index: int = 0
    offset: int = 0

    def text(self) -> str:
        """How the transcript writes the operation."""
        if self.kind == "a":
            return f"vmalloc({self.size})"
        if self.kind == "i":
            return f"ioremap({human_bytes(self.size)})"
        if self.kind == "f":
            return f"free(p{self.index})"
        return f"store p{self.index}+{self.offset:#x}"


@dataclass(frozen=True)
class QuizConfig:
    """Every parameter of a quiz; :func:`render` echoes them all."""

    seed: int = 0
    num: int = 5
    ops: tuple[Op, ...] | None = None
    arch: str = "x86_64"
    ram: str = "128M"
    kernel: str | None = None
    allocator: str | None = None
    topic: str = "all"


@dataclass
class Question:
    """One question: the operations before it, the probe, the question, the answer and its rule.

    ``facts`` are the answer as values (addresses, fault reasons) for tests that re-run the model.
    """

    number: int
    topic: str
    history: list[Op]
    probe: Op
    asked: list[str]
    answer: list[str] = field(default_factory=list)
    rule: list[str] = field(default_factory=list)
    function: str = ""
    facts: dict[str, object] = field(default_factory=dict)


def parse_ops(text: str) -> tuple[Op, ...]:
    """``-A`` text: comma-separated ``aSIZE`` (vmalloc), ``iSIZE`` (ioremap), ``fN`` (free pN);
    sizes like ``16k``, ``10000``, ``6M``.  ConfigError naming the bad item."""
    ops: list[Op] = []
    made = 0
    freed: set[int] = set()
    for item in (t.strip() for t in text.split(",")):
        if len(item) < 2 or item[0] not in "aif":
            raise ConfigError(f"-A: {item!r} is not aSIZE, iSIZE or fN (e.g. -A a16k,a10000,f0,i6M)")
        if item[0] == "f":
            if not item[1:].isdigit() or int(item[1:]) >= made:
                raise ConfigError(f"-A: {item!r} frees p{item[1:]}, which no earlier a/i item made")
            if int(item[1:]) in freed:
                # A second vfree of one area is a kernel WARN, not a question with an answer.
                raise ConfigError(f"-A: {item!r} frees p{item[1:]}, which an earlier item freed")
            freed.add(int(item[1:]))
            ops.append(Op("f", index=int(item[1:])))
            continue
        try:
            size = parse_size(item[1:])
        except ValueError as exc:   # ConfigError and FormatError are ValueErrors too
            raise ConfigError(f"-A: {item!r}: {exc}") from None
        if not 0 < size <= 1 << 40:
            raise ConfigError(f"-A: {item!r}: size must be between 1 byte and 1 TiB")
        ops.append(Op(item[0], size=size))
        made += 1
    if not ops:
        raise ConfigError("-A: no operations given")
    return tuple(ops)


# ---- the machine and its operations ---------------------------------------------------------
def boot(cfg: QuizConfig, lazy_purge: bool | None = None) -> pv.Machine:
    """The quiz's machine, with the vmalloc tracepoints recording (the answers read them)."""
    m = pv.Machine(arch=cfg.arch, ram=cfg.ram, kernel=cfg.kernel, allocator=cfg.allocator,
                   lazy_purge=lazy_purge)
    m.trace_on(buffer_size=1 << 16)
    return m


class _Run:
    """A machine and the areas its operations made (``p0``, ``p1``...), by number."""

    def __init__(self, m: pv.Machine) -> None:
        self.m = m
        self.addrs: list[int | None] = []
        self.kinds: list[str] = []
        self.freed: set[int] = set()

    def apply(self, op: Op) -> object:
        """Do ``op``; the address (or None) for a/i, the PageFault or None for a store."""
        m = self.m
        if op.kind == "a":
            self.addrs.append(m.vmalloc(op.size, caller="quiz"))
            self.kinds.append("a")
            return self.addrs[-1]
        if op.kind == "i":
            area = m.get_vm_area(op.size, pv.VM_IOREMAP, caller="quiz_ioremap")
            self.addrs.append(None if area is None else area.addr)
            self.kinds.append("i")
            return self.addrs[-1]
        addr = self.addrs[op.index]
        if op.kind == "f":
            self.freed.add(op.index)
            if addr is not None:
                (m.vfree if self.kinds[op.index] == "a" else m.vunmap)(addr)
            return None
        assert addr is not None
        try:
            m.write(addr + op.offset, b"\x5a")
        except pv.PageFault as fault:
            return fault
        return None


def replay(cfg: QuizConfig, ops: list[Op], lazy_purge: bool | None = None) -> tuple[pv.Machine, list[int | None]]:
    """A fresh machine of ``cfg`` after ``ops``: the machine and the address of each p<i>."""
    run = _Run(boot(cfg, lazy_purge))
    for op in ops:
        run.apply(op)
    return run.m, run.addrs


# ---- what the model recorded ----------------------------------------------------------------
def _searches(events: list[TraceEvent]) -> list[TraceEvent]:
    return [e for e in events if e.event == "alloc_vmap_area"]


def _search_function(m: pv.Machine) -> str:
    """The mm/vmalloc.c function that searched, for the allocator the machine runs."""
    name = m.allocator_name
    if name == "list":
        return "__get_vm_area_node (2.6.22: walks vmlist, sorted by address, first fit)"
    if name.startswith("rbtree"):
        cache = ", starting from free_vmap_cache" if name == "rbtree-cache" else ""
        return f"alloc_vmap_area (2.6.28+: rbtree of busy vmap_areas, first fit{cache})"
    return "alloc_vmap_area -> __alloc_vmap_area -> find_vmap_lowest_match (5.2+: free tree, lowest fit)"


def _holes(m: pv.Machine) -> list[tuple[int, int]]:
    return list(m.vmap_allocator.for_each_free(m.VMALLOC_START, m.VMALLOC_END))


def _placement_rule(m: pv.Machine, holes: list[tuple[int, int]], events: list[TraceEvent],
                    asked: int, waiting: list[vmap_area]) -> list[str]:
    """Why the area went where it did, from the search events and the free space before."""
    out: list[str] = []
    searches = _searches(events)
    if not searches:
        return ["no address search ran (the request was refused before alloc_vmap_area)"]
    first = searches[0]
    size, align = first["size"], first["align"]
    pages = size // m.PAGE_SIZE
    out.append(f"size {asked} -> PAGE_ALIGN: {pages - 1} page(s), + 1 guard page = {size:#x} bytes, "
               f"searched for at alignment {human_bytes(align)} in [{first['vstart']:#x}, {m.VMALLOC_END:#x})")
    if waiting:
        out.append(f"{len(waiting)} lazily freed area(s) still hold their ranges until the purge: "
                   + ", ".join(f"[{va.va_start:#x}, {va.va_end:#x})" for va in waiting[:4])
                   + (" ..." if len(waiting) > 4 else ""))
    if len(searches) > 1:
        out.append(f"the first search failed, so alloc_vmap_area purged the lazily freed areas "
                   f"(purge_vmap_area_lazy) and searched again: {CHANGES['lazy_purge'].since}+ rule "
                   f"\"lazy_purge\"")
    last = searches[-1]
    if last["failed"]:
        # The free space as the last search saw it (after any purge), not as it was before.
        largest = max((n for _, n in _holes(m)), default=0)
        out.append(f"no hole holds it: the largest free block is {human_bytes(largest)}"
                   + (", big enough but not at that alignment" if largest >= size else ""))
        return out
    addr = last["addr"]
    fit = next(((s, n) for s, n in holes if s <= addr < s + n), None)
    if fit is None:
        out.append("taken from the vmap node's pool of freed areas (6.9+ node_alloc), not the free tree")
        return out
    lower = [h for h in holes if h[0] < fit[0]]
    out.append(f"the fit found: the hole [{fit[0]:#x}, {fit[0] + fit[1]:#x}) ({human_bytes(fit[1])}), "
               f"the lowest of {len(holes)} free block(s) that holds {human_bytes(size)} at that alignment"
               + (f" ({len(lower)} lower one(s) too small or misaligned)" if lower else ""))
    if addr != fit[0]:
        out.append(f"{addr:#x} is the hole's start rounded up to {human_bytes(align)}")
    return out


@dataclass
class _Seen:
    """What an allocating probe did: its result and area number, and what the model held and
    recorded around it (the free blocks and lazy areas before, the trace events during)."""

    addr: object
    n: int
    holes: list[tuple[int, int]]
    waiting: list[vmap_area]
    events: list[TraceEvent]


def _watch(run: _Run, op: Op) -> _Seen:
    """Do the allocating ``op`` on ``run``, recording what the answer's rule is read from."""
    m = run.m
    holes, waiting = _holes(m), m.lazy_areas()
    mark = len(m.trace_events())
    addr = run.apply(op)
    return _Seen(addr, len(run.addrs) - 1, holes, waiting, m.trace_events()[mark:])


# ---- the topics -----------------------------------------------------------------------------
def _ask_placement(q: Question, run: _Run) -> None:
    m = run.m
    seen = _watch(run, q.probe)
    addr, n = seen.addr, seen.n
    if not isinstance(addr, int):
        q.answer = [f"p{n} = NULL: the allocation fails"]
    else:
        area = m.find_vm_area(addr)
        assert area is not None
        guard = area.addr + area.size - m.PAGE_SIZE
        q.answer = [f"p{n} = {addr:#x}: area [{area.addr:#x}, {area.end:#x}), {area.nr_pages} page(s) "
                    f"mapped, guard page at {guard:#x}"]
        q.facts["guard"] = guard
    q.rule = _placement_rule(m, seen.holes, seen.events, q.probe.size, seen.waiting)
    q.function = _search_function(m)
    q.facts["addr"] = addr


def _ask_pagetable(q: Question, run: _Run) -> None:
    m = run.m
    ps = m.PAGE_SIZE
    before = set(m.phys.pfns_owned_by("pgtable").tolist())
    addr = run.apply(q.probe)
    n = len(run.addrs) - 1
    if not isinstance(addr, int):
        q.answer = [f"p{n} = NULL: no entries are made"]
        q.function = _search_function(m)
        q.facts["addr"] = addr
        return
    area = m.find_vm_area(addr)
    assert area is not None
    new_tables = sorted(set(m.phys.pfns_owned_by("pgtable").tolist()) - before)
    q.answer = [f"p{n} = {addr:#x} ({area.nr_pages} page(s) + guard page)"]
    upper: list[str] = []
    ptes: list[tuple[int, int, int]] = []
    for i in range(area.nr_pages + 1):
        steps = m.walk(addr + i * ps)
        for s, below in zip(steps, steps[1:]):
            line = (f"  {s.level:<4} index {s.index:>3}: entry {s.entry:#x} [{' '.join(s.flags)}] -> "
                    f"NEW table at frame {below.table_phys // ps}")
            if below.table_phys // ps in new_tables and line not in upper:
                upper.append(line)
        leaf = steps[-1]
        if i < area.nr_pages:
            q.answer.append(f"  {leaf.level:<4} index {leaf.index:>3}: entry {leaf.entry:#x} "
                            f"[{' '.join(leaf.flags)}] -> frame {int(area.pages[i])}")
            ptes.append((addr + i * ps, leaf.entry, int(area.pages[i])))
        else:
            q.answer.append(f"  {leaf.level:<4} index {leaf.index:>3}: entry {leaf.entry:#x} (the guard "
                            f"page {addr + i * ps:#x}: no entry)")
    if len(q.answer) > 12:   # a big area: its first and last entries say it all
        q.answer[7:-3] = [f"  ... {len(q.answer) - 10} more {leaf.level} entries like these ..."]
    q.answer[1:1] = upper or ["  (every upper-level table was already there)"]
    q.rule = [
        f"vmap_pte_range writes one {m.walk(addr)[-1].level} entry per page with PAGE_KERNEL: the bits "
        f"above are the model's {m.profile.name} entry layout",
        "the guard page counts in the area's size but not in nr_pages, so it gets no entry",
        f"{len(new_tables)} new table frame(s): pmd_alloc/pte_alloc_kernel make a table only where "
        f"the walk found none",
    ]
    q.function = "map_vm_area -> vmap_pud_range -> vmap_pmd_range -> vmap_pte_range (5.8+: vmap_pages_range)"
    q.facts.update(addr=addr, ptes=ptes, new_tables=len(new_tables))


def _ask_fault(q: Question, run: _Run, rng: random.Random, asked_stores: list[Op]) -> None:
    m = run.m
    addr = run.addrs[q.probe.index]
    assert addr is not None
    results: list[tuple[str, int, str]] = []
    freed_result = None
    for store in asked_stores:
        label = _store_label(run, store)
        base = run.addrs[store.index]
        assert base is not None
        fault = run.apply(store)
        result = "no fault" if fault is None else f"faults: {fault.reason}"  # type: ignore[attr-defined]
        results.append((label, base + store.offset, result))
        if store.index in run.freed:
            freed_result = (store.index, fault is None)
    q.answer = [f"({chr(97 + i)}) {t}: {r}" for i, (t, w, r) in enumerate(results)]
    area = m.find_vm_area(addr)
    nr = area.nr_pages if area is not None else 0
    q.rule = [f"p{q.probe.index} maps {nr} page(s) with PAGE_KERNEL (kernel read/write): stores inside them "
              "go through"]
    if any(s.offset == nr * m.PAGE_SIZE for s in asked_stores):
        q.rule.append("the page after them is the guard page: __get_vm_area_node adds PAGE_SIZE to every "
                      "area and vmap_pte_range leaves it unmapped, so the walk finds a none pte")
    if freed_result is not None:
        k, went_through = freed_result
        q.rule.append(
            f"p{k} was vfree'd: its ptes were cleared at once, but the TLB flush waits for the lazy purge; "
            + (f"this CPU still held p{k}'s old translation, so the store went through to a freed frame "
               "(a stale TLB entry)" if went_through else
               "this CPU held no translation of it, so the walk met the cleared pte"))
    q.rule.append("a fault names the level where the walk met a none entry: a pte in a table that "
                  "exists, or a whole upper-level entry where no area ever was")
    q.function = "__get_vm_area_node (size += PAGE_SIZE: the guard page); the fault is the CPU's walk"
    q.facts["stores"] = results


def _ask_lazy(q: Question, cfg: QuizConfig) -> None:
    got: dict[bool, int | None] = {}
    lines: dict[bool, list[str]] = {}
    for lazy in (True, False):
        m, addrs = replay(cfg, q.history, lazy_purge=lazy)
        before = m.trace_events()
        run = _Run(m)
        run.addrs, run.kinds = list(addrs), ["a"] * len(addrs)
        seen = _watch(run, q.probe)
        waiting = seen.waiting
        got[lazy] = seen.addr if isinstance(seen.addr, int) else None
        why = _placement_rule(m, seen.holes, seen.events, q.probe.size, [])[1:]
        if lazy:
            frees = [e for e in before if e.event == "free_vmap_area_noflush"]
            purges = [e for e in before if e.event == "purge_vmap_area_lazy"]
            note = (f"{len(waiting)} freed area(s) still wait for the lazy purge "
                    f"(free_vmap_area_noflush: nr_lazy {frees[-1]['nr_lazy']} of nr_lazy_max "
                    f"{frees[-1]['nr_lazy_max']} pages)" if frees and waiting else
                    f"no freed area waits ({len(purges)} purge(s) ran)")
            lines[lazy] = [note] + why
        else:
            lines[lazy] = ["vfree gave the range back to the free space at once"] + why
    n = sum(1 for op in q.history if op.kind in "ai")
    fmt = {k: "NULL" if v is None else f"{v:#x}" for k, v in got.items()}
    q.answer = [f"lazy purge on:  p{n} = {fmt[True]}", f"lazy purge off: p{n} = {fmt[False]}"]
    kernel_says = "on" if has(replay(cfg, [])[0].kernel, "lazy_purge") else "off"
    q.rule = ([f"on:  {t}" for t in lines[True]] + [f"off: {t}" for t in lines[False]]
              + [f"this kernel runs with lazy purge {kernel_says} (rule \"lazy_purge\", "
                 f"{CHANGES['lazy_purge'].since}+, {CHANGES['lazy_purge'].commit})"])
    q.function = "free_vmap_area_noflush / purge_vmap_area_lazy (2.6.28+); 2.6.22's __remove_vm_area frees at once"
    q.facts.update(lazy_on=got[True], lazy_off=got[False])


def _ask_fits(q: Question, run: _Run) -> None:
    m = run.m
    seen = _watch(run, q.probe)
    addr, n = seen.addr, seen.n
    searches = _searches(seen.events)
    q.answer = [f"p{n} = {addr:#x}: it fits" if isinstance(addr, int) else f"p{n} = NULL: it does not fit"]
    q.rule = _placement_rule(m, seen.holes, seen.events, q.probe.size, seen.waiting)
    if searches:
        rule = "ioremap_count_order" if has(m.kernel, "ioremap_count_order") else None
        how = ("1 << get_count_order(PAGE_ALIGN(size))" if rule else "1 << fls(size)")
        change = CHANGES["ioremap_count_order"]
        q.rule.insert(1, f"VM_IOREMAP aligns to {how}, clamped to IOREMAP_MAX_ORDER = "
                         f"{m.layout.ioremap_max_order}: {human_bytes(searches[0]['align'])} on Linux "
                         f"{m.kernel} (rule \"ioremap_count_order\" {'applies' if rule else 'not yet'}: "
                         f"{change.since}+, {change.commit})")
    search = _search_function(m)
    q.function = search if search.startswith("__get_vm_area_node") else "__get_vm_area_node -> " + search
    q.facts["addr"] = addr


# ---- making a quiz --------------------------------------------------------------------------
def _size(rng: random.Random, ps: int) -> int:
    """A request size as people write them: a page count, an odd byte count or a round one."""
    return rng.choice([rng.randrange(1, 5) * ps, rng.randrange(ps, 6 * ps),
                       rng.choice([4096, 8192, 10000, 16384, 20000, 30000])])


def _setup(rng: random.Random, made: int, live: list[int], ps: int) -> list[Op]:
    """One to three random operations before a question: vmallocs, and frees of live areas."""
    ops: list[Op] = []
    for _ in range(rng.randrange(1, 4)):
        if live and rng.random() < 0.35:
            ops.append(Op("f", index=live.pop(rng.randrange(len(live)))))
        else:
            ops.append(Op("a", size=_size(rng, ps)))
            live.append(made)
            made += 1
    return ops


def _lazy_setup(rng: random.Random, made: int, live: list[int], ps: int) -> tuple[list[Op], int]:
    """Two vmallocs and a free of the first, and a request of the freed one's size: where the
    freed range can be reused at once, or cannot while it waits for the purge."""
    first = _size(rng, ps)
    live.append(made + 1)
    return [Op("a", size=first), Op("a", size=_size(rng, ps)), Op("f", index=made)], first


def make_quiz(cfg: QuizConfig) -> tuple[pv.Machine, list[Question]]:
    """Run the quiz on the model: the machine it ran on and its questions, answered."""
    if cfg.topic != "all" and cfg.topic not in TOPICS:
        raise ConfigError(f"--topic {cfg.topic!r}: choose one of {', '.join(TOPICS)} or all")
    rng = random.Random(cfg.seed)
    run = _Run(boot(cfg))
    ps = run.m.PAGE_SIZE
    history: list[Op] = []
    questions: list[Question] = []
    live: list[int] = []

    def ask(topic: str, probe: Op, setup: list[Op]) -> None:
        for op in setup:
            run.apply(op)
        history.extend(setup)
        q = Question(len(questions) + 1, topic, list(history), probe, [])
        n = len(run.addrs)
        if topic == "lazy":
            q.asked = [f"p{n} = {probe.text()}: where does it land with lazy purge on, and with it off?"]
            _ask_lazy(q, cfg)
            run.apply(probe)
        elif topic == "pagetable":
            q.asked = [f"p{n} = {probe.text()}: which page-table entries does it create, with which bits?"]
            _ask_pagetable(q, run)
        elif topic == "fits":
            q.asked = [f"p{n} = {probe.text()}: will it fit, and where?"]
            _ask_fits(q, run)
        else:
            q.asked = [f"p{n} = {probe.text()}: where does it land, and where is its guard page?"]
            _ask_placement(q, run)
        history.append(probe)
        if topic == "fault" and isinstance(run.addrs[-1], int):
            stores = _fault_stores(rng, run, n, probe.size)
            q.topic, q.probe = "fault", Op("a", size=probe.size, index=n)
            q.asked = [f"p{n} = {probe.text()} = {run.addrs[-1]:#x}. Which of these one-byte stores "
                       f"fault, and at which level of the page tables?"]
            q.asked += [f"  ({chr(97 + i)}) {_store_label(run, s)}" for i, s in enumerate(stores)]
            q.answer, q.rule, q.facts = [], [], {"addr": run.addrs[-1]}
            _ask_fault(q, run, rng, stores)
            history.extend(stores)
        questions.append(q)

    if cfg.ops is not None:
        for op in cfg.ops:
            if op.kind == "f":
                run.apply(op)
                history.append(op)
                continue
            topic = "fits" if op.kind == "i" else (cfg.topic if cfg.topic not in ("all", "fits") else "placement")
            ask(topic, op, [])
        return run.m, questions
    for _ in range(cfg.num):
        topic = cfg.topic if cfg.topic != "all" else rng.choice(TOPICS)
        made = len(run.addrs)
        if topic == "fits":
            space = run.m.VMALLOC_END - run.m.VMALLOC_START
            unit = max(1 << 20, min(space // 16, 256 << 20) >> 20 << 20)
            setup = [Op("i", size=rng.randrange(2, 5) * unit + rng.choice([0, 1 << 20]))
                     for _ in range(rng.randrange(1, 4))]
            live.extend(range(made, made + len(setup)))
            probe = Op("i", size=rng.choice([3, 6, 12]) * unit // 4)
        elif topic == "lazy":
            setup, size = _lazy_setup(rng, made, live, ps)
            probe = Op("a", size=size)
        else:
            setup = _setup(rng, made, live, ps)
            probe = Op("a", size=_size(rng, ps))
        ask(topic, probe, setup)
        live.append(len(run.addrs) - 1)
    return run.m, questions


def _fault_stores(rng: random.Random, run: _Run, n: int, size: int) -> list[Op]:
    """Stores around p<n> (first byte, last asked-for byte, the guard page, the range's last
    page) and, when a freed vmalloc area waits for the lazy purge, its first byte."""
    m = run.m
    addr = run.addrs[n]
    assert addr is not None
    area = m.find_vm_area(addr)
    assert area is not None
    guard = area.nr_pages * m.PAGE_SIZE
    far = ((m.VMALLOC_END - m.PAGE_SIZE) & -m.PAGE_SIZE) - addr   # the last whole page of the range
    stores = [Op("w", index=n, offset=0), Op("w", index=n, offset=size - 1),
              Op("w", index=n, offset=guard), Op("w", index=n, offset=far)]
    lazy = {va.va_start for va in m.lazy_areas()}
    waiting = [i for i in sorted(run.freed) if run.kinds[i] == "a" and run.addrs[i] in lazy]
    if waiting:
        stores.append(Op("w", index=waiting[-1], offset=0))
    rng.shuffle(stores)
    return stores


def _store_label(run: _Run, store: Op) -> str:
    """``store at ADDR (pN+OFF)``, saying when pN is a freed area."""
    where = run.addrs[store.index]
    assert where is not None
    freed = ", freed, waiting for the lazy purge" if store.index in run.freed else ""
    return f"store at {where + store.offset:#x} (p{store.index}+{store.offset:#x}{freed})"


# ---- the transcript -------------------------------------------------------------------------
def render(cfg: QuizConfig, m: pv.Machine, questions: list[Question], compute: bool) -> str:
    """The transcript: every parameter, the machine, then each question (and answer with -c)."""
    ops = "none (random, from the seed)" if cfg.ops is None else ",".join(
        f"{o.kind}{o.size if o.kind != 'f' else o.index}" for o in cfg.ops)
    out = [
        f"ARG seed {cfg.seed}",
        f"ARG numQuestions {cfg.num}" + (" (ignored: -A gives the operations)" if cfg.ops is not None else ""),
        f"ARG ops {ops}",
        # With -A the operations choose: an iSIZE asks fits, an aSIZE placement unless the topic
        # is one an aSIZE can be asked about; say so rather than echo a topic not followed.
        f"ARG topic {cfg.topic}" + (" (with -A: aSIZE items ask placement, iSIZE items fits)"
                                    if cfg.ops is not None and cfg.topic == "fits" else ""),
        f"ARG arch {cfg.arch}",
        f"ARG ram {cfg.ram}",
        f"ARG kernel {m.kernel}",
        f"ARG allocator {m.allocator_name}",
        f"ARG lazy_purge {m.lazy_purge}",
        f"ARG compute {compute}",
        "",
        f"Machine: {m.profile.description}, Linux {m.kernel}. The vmalloc area is "
        f"[{m.VMALLOC_START:#x}, {m.VMALLOC_END:#x}) ({human_bytes(m.VMALLOC_END - m.VMALLOC_START)}), "
        f"pages of {m.PAGE_SIZE} bytes.",
        "Areas are named p0, p1, ... in the order they are asked for; free(pN) is vfree, or iounmap for an ioremap.",
    ]
    shown = 0
    for q in questions:
        out.append("")
        out.append(f"Question {q.number} ({q.topic})")
        for op in q.history[shown:]:
            if op.kind != "w":
                out.append(f"  {_name(q.history, op)}{op.text()}")
        shown = len(q.history) + 1
        out += [f"  {line}" for line in q.asked]
        if compute:
            out += [f"  ANSWER {line}" if i == 0 else f"         {line}" for i, line in enumerate(q.answer)]
            out += [f"  RULE   {line}" for line in q.rule]
            out.append(f"  FOLLOWS mm/vmalloc.c: {q.function}")
        else:
            out.append("  ANSWER ? (run with -c to see it, with the rule that produced it)")
    return "\n".join(out) + "\n"


def _name(history: list[Op], op: Op) -> str:
    """``pN = `` for an operation that makes an area, nothing for the others."""
    if op.kind not in "ai":
        return ""
    i = next(k for k, o in enumerate(history) if o is op)
    return f"p{sum(1 for o in history[:i] if o.kind in 'ai')} = "
