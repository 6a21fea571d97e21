"""Real-kernel captures replayed on the model: parse module.res, replay each op with the matching
API call, compare addresses and the final /proc/vmallocinfo.

A capture folder (``data/oracle/linux-6.1-amd64/seq`` and the like, see its README) holds
``before.txt`` (``/proc/vmallocinfo`` before a script ran in a probe module), ``module.res`` (the
script and the real address of every operation), ``after.txt`` and ``meminfo.txt``; some hold a
second script (``before2.txt``, ``after2.txt``, ``meminfo2.txt``; ``SCRIPT n=2`` in module.res)
that ran after the first on the same boot.

:func:`replay_capture` restores ``before.txt`` on a machine (``from_snapshot`` with the capture's
arch, kernel and CPU count), runs every operation with the API call the capture's README names
for it, and compares:

- every address an operation returned (``RES ... addr=``, ``FILL`` runs, the ``vmap_alias`` of
  a check) with the model's;
- after each script, the model's ``/proc/vmallocinfo`` with ``after.txt``: the busy ranges
  (start, end, size) and the lazily freed ("unpurged vm_area") ranges; callers are not compared.

Each operation gets one status:

``exact``
    the model returned the kernel's address (or, for an operation that returns none, did what
    the kernel did: a free of the same address, a purge).
``tree_shape``
    an aligned request (``i``) where the lowest free block that fits the aligned request and the
    lowest free block of ``size + align - 1`` bytes differ, and the kernel's address is one of
    the fitting blocks between the two: 6.1's ``find_vmap_lowest_match`` returns the first node
    *on its search path* that fits, which depends on the red-black tree's shape, which no
    snapshot shows.  Both candidates are recorded; the replay then places the area where the
    kernel did (a ``__get_vm_area`` whose window is exactly that range), so that the operations
    after it are judged on the kernel's state.
``not_modelled``
    an operation the model has no call for (none since ``rN``, ``vm_map_ram``, is modelled:
    ``vmalloc.vmap_block``).  The operations after one are still compared; the report says
    which ones touch an address range it took.
``mismatch``
    anything else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyvmalloc.errors import FormatError
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.vmallocinfo import UNPURGED, VM_MAP_RAM, parse_vmallocinfo
from pyvmalloc.kernel.machine import Machine
from pyvmalloc.phys import gfp as G
from pyvmalloc.snapshot.restore import machine_from_snapshot
from pyvmalloc.vmalloc.list_allocator import space_bounds
from pyvmalloc.vmalloc.vm_struct import VM_IOREMAP, VM_MAP, vm_struct
from pyvmalloc.vmalloc.vmap_node import PoolState, apply_pool_state

__all__ = [
    "ARCHES",
    "STATUSES",
    "Capture",
    "CaptureReport",
    "OpResult",
    "Record",
    "Script",
    "ScriptReport",
    "VmallocinfoDiff",
    "capture_folders",
    "format_report",
    "load_capture",
    "parse_module_res",
    "replay_capture",
]

STATUSES = ("exact", "mismatch", "tree_shape", "not_modelled")

# The folder names' arch suffix -> the model's profile (Debian's 686-pae kernel runs PAE).
ARCHES: dict[str, str] = {"amd64": "x86_64", "i386": "i386-pae"}

_GFP_ZERO = getattr(G, "__GFP_ZERO")


# ---- module.res --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One ``RES``, ``FILL`` or ``CHK`` line of module.res: its kind and its ``key=value`` fields."""

    kind: str
    fields: dict[str, str]
    lineno: int

    @property
    def op(self) -> str:
        """The operation token (``a5``, ``f2``, ``e256``, ``p``...)."""
        return self.fields.get("op", "")

    def addr(self, key: str = "addr") -> int | None:
        """A hex address field (no ``0x`` in module.res), or None when absent."""
        v = self.fields.get(key)
        return None if v is None else int(v, 16)

    def int(self, key: str, default: int | None = None) -> int | None:
        """A decimal (or ``0x`` hex) field, or ``default``."""
        v = self.fields.get(key)
        return default if v is None else int(v, 0)


@dataclass
class Script:
    """One ``SCRIPT n=K begin ... end`` block: the range the kernel reported, the script text (cut
    by printk's record limit on long scripts) and its records in order."""

    n: int
    vmalloc_start: int
    vmalloc_end: int
    text: str
    records: list[Record] = field(default_factory=list)
    end_fields: dict[str, str] = field(default_factory=dict)

    @property
    def results(self) -> list[Record]:
        """The ``RES`` lines: one per operation, complete and in order."""
        return [r for r in self.records if r.kind == "RES"]

    @property
    def ops(self) -> list[str]:
        """The operations, read off the ``RES`` lines (the text may be cut)."""
        return [r.op for r in self.results]


def _fields(tokens: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in tokens:
        k, sep, v = t.partition("=")
        if sep:
            out[k] = v
    return out


def parse_module_res(text: str, source: str = "module.res") -> list[Script]:
    """The scripts of a module.res, in order.  Lines other than SCRIPT/RES/FILL/CHK (dmesg's own
    warning lines around a failed allocation) are skipped."""
    scripts: list[Script] = []
    cur: Script | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        kind, _, rest = line.partition(" ")
        if kind == "SCRIPT":
            head, _, txt = rest.partition(" text=")
            toks = head.split()
            f = _fields(toks)
            if "begin" in toks:
                if cur is not None:
                    raise FormatError(f"{source}:{lineno}", "SCRIPT begin inside another script")
                cur = Script(n=int(f.get("n", len(scripts) + 1)),
                             vmalloc_start=int(f["vmalloc_start"], 16),
                             vmalloc_end=int(f["vmalloc_end"], 16), text=txt)
            elif "end" in toks:
                if cur is None:
                    raise FormatError(f"{source}:{lineno}", "SCRIPT end without begin")
                cur.end_fields = f
                scripts.append(cur)
                cur = None
        elif kind in ("RES", "FILL", "CHK"):
            if cur is None:
                raise FormatError(f"{source}:{lineno}", f"{kind} line outside a script")
            cur.records.append(Record(kind, _fields(rest.split()), lineno))
    if cur is not None:
        raise FormatError(source, f"SCRIPT n={cur.n} has no end line")
    return scripts


def fill_addresses(records: Sequence[Record], op_index: int) -> dict[int, int]:
    """Chunk index -> address of the fill whose ``RES`` is ``records[op_index]``, from the
    run-length ``FILL`` lines just before it (``i=a..b addr=X step=S``)."""
    out: dict[int, int] = {}
    j = op_index - 1
    while j >= 0 and records[j].kind == "FILL":
        r = records[j]
        a, _, b = r.fields["i"].partition("..")
        lo, hi = int(a), int(b or a)
        addr = int(r.fields["addr"], 16)
        step = int(r.fields.get("step", "0"), 0)
        for k in range(lo, hi + 1):
            out[k] = addr + (k - lo) * step
        j -= 1
    return out


# ---- capture folders -----------------------------------------------------------------------------
@dataclass
class Capture:
    """A capture folder read: its scripts and, per script, the snapshots around it."""

    path: Path
    name: str
    arch: str
    kernel: str
    kernel_txt: str
    scripts: list[Script]
    before: list[str]           # before.txt, before2.txt...
    after: list[str]
    meminfo: list[str]


_KERNEL = re.compile(r"\(Linux (\d+\.\d+)\)")


def load_capture(path: str | Path) -> Capture:
    """Read a capture folder (the arch from the folder name ``linux-<ver>-<arch>``, the kernel
    from kernel.txt)."""
    p = Path(path)
    parent = p.parent.name  # linux-6.1-amd64
    arch_key = parent.rsplit("-", 1)[-1]
    if arch_key not in ARCHES:
        raise FormatError(str(p), f"unknown arch {arch_key!r} in folder name {parent!r}")
    ktxt = (p / "kernel.txt").read_text()
    m = _KERNEL.search(ktxt)
    kernel = m.group(1) if m else parent.split("-")[1]
    scripts = parse_module_res((p / "module.res").read_text(), str(p / "module.res"))

    def nth(stem: str, i: int) -> str:
        f = p / (f"{stem}.txt" if i == 1 else f"{stem}{i}.txt")
        return f.read_text() if f.exists() else ""

    n = len(scripts)
    return Capture(path=p, name=f"{parent}/{p.name}", arch=ARCHES[arch_key], kernel=kernel,
                   kernel_txt=ktxt.strip(), scripts=scripts,
                   before=[nth("before", i) for i in range(1, n + 1)],
                   after=[nth("after", i) for i in range(1, n + 1)],
                   meminfo=[nth("meminfo", i) for i in range(1, n + 1)])


def capture_folders(root: str | Path, kernel_prefix: str = "linux-6.1-") -> list[Path]:
    """Every capture folder under ``root`` (``root/linux-*/<name>/module.res``) whose kernel
    folder starts with ``kernel_prefix``, sorted."""
    r = Path(root)
    return sorted(d.parent for d in r.glob(f"{kernel_prefix}*/*/module.res"))


# ---- the report ------------------------------------------------------------------------------
@dataclass
class OpResult:
    """One operation compared: the token, its slot (or fill chunk), the kernel's and the model's
    address (None for none), the status, and a note (the candidates of a tree-shape case)."""

    index: int
    token: str
    slot: int | str | None
    expected: int | None
    got: int | None
    status: str
    note: str = ""
    returns_address: bool = True
    # False for a request aligned above a page (an ``i`` of more than one page): only those
    # depend on the free tree's shape; every other search is determined by the snapshot.
    page_aligned: bool = True

    def line(self) -> str:
        def h(x: int | None) -> str:
            return "-" if x is None else f"{x:#x}"
        return (f"#{self.index} {self.token} slot={self.slot} kernel={h(self.expected)} "
                f"model={h(self.got)} {self.status}" + (f" ({self.note})" if self.note else ""))


Range = tuple[int, int, int]


@dataclass
class VmallocinfoDiff:
    """The model's /proc/vmallocinfo against the kernel's: busy ranges (start, end, size) and
    lazily freed ranges only in one of them; vm_map_ram ranges of not-modelled operations are
    set apart.  ``kinds`` lists ranges present in both whose flag words differ (not asserted)."""

    busy_only_kernel: list[Range] = field(default_factory=list)
    busy_only_model: list[Range] = field(default_factory=list)
    unpurged_only_kernel: list[Range] = field(default_factory=list)
    unpurged_only_model: list[Range] = field(default_factory=list)
    not_modelled: list[Range] = field(default_factory=list)
    kinds: list[tuple[Range, tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)
    busy_compared: int = 0
    unpurged_compared: int = 0

    @property
    def busy_equal(self) -> bool:
        return not self.busy_only_kernel and not self.busy_only_model

    @property
    def unpurged_equal(self) -> bool:
        return not self.unpurged_only_kernel and not self.unpurged_only_model

    @property
    def equal(self) -> bool:
        return self.busy_equal and self.unpurged_equal


@dataclass
class ScriptReport:
    """One script replayed: its operations and the vmallocinfo comparisons."""

    n: int
    ops: list[OpResult] = field(default_factory=list)
    before: VmallocinfoDiff | None = None   # the model's state against beforeN.txt (N > 1)
    after: VmallocinfoDiff | None = None


@dataclass
class CaptureReport:
    """A capture replayed: per script, per operation; :meth:`counts` sums them."""

    name: str
    arch: str
    kernel: str
    scripts: list[ScriptReport] = field(default_factory=list)
    not_modelled_ranges: list[tuple[int, int]] = field(default_factory=list)
    later_ops_touching_not_modelled: list[int] = field(default_factory=list)
    machine: Machine | None = field(default=None, repr=False)  # the machine after the replay

    @property
    def ops(self) -> list[OpResult]:
        return [o for s in self.scripts for o in s.ops]

    def counts(self, address_ops_only: bool = False) -> dict[str, int]:
        """``total`` and one count per status (only ops that return an address, if asked)."""
        ops = [o for o in self.ops if o.returns_address or not address_ops_only]
        c = {"total": len(ops)}
        for s in STATUSES:
            c[s] = sum(1 for o in ops if o.status == s)
        return c

    @property
    def mismatches(self) -> list[OpResult]:
        return [o for o in self.ops if o.status == "mismatch"]

    @property
    def after_equal(self) -> bool:
        return all(s.after is not None and s.after.equal for s in self.scripts)


# ---- replaying ---------------------------------------------------------------------------------
@dataclass
class _Slot:
    kind: str                     # vmalloc, vmap, ioremap, vm_map_ram
    addr: int | None
    pages: list[Any] = field(default_factory=list)
    area: vm_struct | None = None


class _Replayer:
    def __init__(self, cap: Capture, m: Machine, memtotal: int, follow_kernel: bool) -> None:
        self.cap = cap
        self.follow_kernel = follow_kernel
        self.m = m
        self.memtotal = memtotal
        self.slots: dict[int, _Slot] = {}
        self.nslots = 0
        self.fill_chunks: list[int] = []
        self.report = CaptureReport(cap.name, cap.arch, cap.kernel)
        self.index = 0

    # -- helpers ---------------------------------------------------------------------------
    def _new_slot(self, slot: _Slot, rec: Record) -> int:
        self.nslots += 1
        self.slots[self.nslots] = slot
        want = rec.int("slot")
        if want is not None and want != self.nslots:
            raise FormatError(f"module.res:{rec.lineno}",
                              f"slot {want} but this is the {self.nslots}th allocation")
        return self.nslots

    def _result(self, out: list[OpResult], token: str, slot: int | str | None,
                expected: int | None, got: int | None, status: str | None = None,
                note: str = "", returns_address: bool = True) -> OpResult:
        self.index += 1
        if status is None:
            status = "exact" if expected == got else "mismatch"
        r = OpResult(self.index, token, slot, expected, got, status, note, returns_address)
        out.append(r)
        return r

    def _free_blocks(self) -> list[tuple[int, int]]:
        """Every free block of the address space, unclipped (the kernel's free tree covers the
        whole space: a block's length is its full length)."""
        lo, hi = space_bounds(self.m.PAGE_SIZE)
        return list(self.m.vmap_allocator.for_each_free(lo, hi))

    def _aligned_candidates(self, size: int, align: int) -> tuple[list[tuple[int, int, int]], int | None, int | None]:
        """For an aligned request of ``size`` bytes (guard included) in the vmalloc range: the
        free blocks (start, end, aligned address) that fit it, the index of the lowest one, and
        the index of the lowest one at least ``size + align - 1`` long."""
        vs, ve = self.m.VMALLOC_START, self.m.VMALLOC_END
        fits: list[tuple[int, int, int]] = []
        lowest_len: int | None = None
        for start, length in self._free_blocks():
            end = start + length
            if end <= vs:
                continue
            if start >= ve:
                break
            s = max(start, vs)
            a = (s + align - 1) & -align
            if a + size <= end and a + size <= ve:
                fits.append((start, end, a))
                if lowest_len is None and length >= size + align - 1:
                    lowest_len = len(fits) - 1
        return fits, (0 if fits else None), lowest_len

    # -- the operations --------------------------------------------------------------------
    def run_script(self, script: Script) -> ScriptReport:
        sr = ScriptReport(script.n)
        recs = script.records
        for i, rec in enumerate(recs):
            if rec.kind != "RES":
                continue
            self._op(rec, recs, i, sr.ops)
        return sr

    def _op(self, rec: Record, recs: Sequence[Record], i: int, out: list[OpResult]) -> None:
        m = self.m
        tok = rec.op
        code, arg = tok[:1], tok[1:]
        ps = m.PAGE_SIZE
        exp = rec.addr()
        if code in "abzu" and arg:
            n = int(arg)
            size = n if code == "b" else n * ps
            if code == "a" or code == "b":
                got = m.vmalloc(size, caller="oracle")
            elif code == "z":
                # vzalloc(): __vmalloc_node(size, 1, GFP_KERNEL | __GFP_ZERO, ...) (6.1)
                got = m.vmalloc_gfp(size, G.GFP_KERNEL | _GFP_ZERO, "PAGE_KERNEL", caller="oracle")
            else:
                got = m.vmalloc_user(size, caller="oracle")
            slot = self._new_slot(_Slot("vmalloc", got), rec)
            self._result(out, tok, slot, exp, got)
        elif code in "hy" and arg:
            # 6.12 captures: vmalloc_huge(N * PAGE_SIZE, GFP_KERNEL), vmalloc_32(N * PAGE_SIZE)
            n = int(arg)
            got = (m.vmalloc_huge(n * ps, G.GFP_KERNEL, caller="oracle") if code == "h"
                   else m.vmalloc_32(n * ps, caller="oracle"))
            slot = self._new_slot(_Slot("vmalloc", got), rec)
            self._result(out, tok, slot, exp, got)
        elif code == "w":
            self._realloc(rec, tok, out)
        elif code == "m":
            n = int(arg)
            pages = [m.alloc_page() for _ in range(n)]
            got = m.vmap(pages, n, VM_MAP, "PAGE_KERNEL", caller="oracle")
            slot = self._new_slot(_Slot("vmap", got, pages), rec)
            self._result(out, tok, slot, exp, got)
        elif code == "r":
            n = int(arg)
            pages = [m.alloc_page() for _ in range(n)]
            got = m.vm_map_ram(pages, n, -1)
            slot = self._new_slot(_Slot("vm_map_ram", got, pages), rec)
            self._result(out, tok, slot, exp, got)
        elif code == "i":
            self._ioremap(rec, int(arg), out)
        elif code == "f":
            self._free(rec, int(arg), out)
        elif code == "c":
            self._check(rec, int(arg), out)
        elif tok == "F":
            m.vfree(None)
            self._result(out, tok, None, None, None, "exact", returns_address=False)
        elif tok == "V":
            m.vunmap(None)
            self._result(out, tok, None, None, None, "exact", returns_address=False)
        elif tok == "p":
            m.vm_unmap_aliases()
            self._result(out, tok, None, None, None, "exact", returns_address=False)
        elif code == "e":
            self._fill(rec, recs, i, int(arg), out)
        elif tok == "E":
            for addr in reversed(self.fill_chunks):
                m.vfree(addr)
            self.fill_chunks.clear()
            self._result(out, tok, None, None, None, "exact", returns_address=False)
        else:
            raise FormatError(f"module.res:{rec.lineno}", f"unknown operation {tok!r}")

    def _realloc(self, rec: Record, tok: str, out: list[OpResult]) -> None:
        """``wK:N``: kvrealloc() of slot K's vmalloc address to N pages (vrealloc on 6.12); the
        slot keeps its number and takes the returned address."""
        k_text, _, n_text = tok[1:].partition(":")
        k, n = int(k_text), int(n_text)
        slot = self.slots.get(k)
        if slot is None or slot.kind != "vmalloc":
            raise FormatError(f"module.res:{rec.lineno}", f"{tok}: slot {k} is no vmalloc slot")
        got = self.m.kvrealloc(slot.addr, n * self.m.PAGE_SIZE, G.GFP_KERNEL, caller="oracle")
        if got is not None:
            slot.addr = got
        self._result(out, tok, k, rec.addr(), got)

    def _ioremap(self, rec: Record, n: int, out: list[OpResult]) -> None:
        """``iN``: get_vm_area_caller(N * PAGE_SIZE, VM_IOREMAP) (vmap_pfn maps pfns outside RAM
        in it; the model maps nothing, which changes no address)."""
        m = self.m
        exp = rec.addr()
        nbytes = n * m.PAGE_SIZE
        size = m.PAGE_ALIGN(nbytes) + m.PAGE_SIZE
        align = max(m.ioremap_align(nbytes), m.PAGE_SIZE)
        note = ""
        status: str | None = None
        area: vm_struct | None = None
        got: int | None = None
        fits, lo, hi = self._aligned_candidates(size, align)
        if align > m.PAGE_SIZE and lo is not None and hi is not None and lo != hi:
            model_addr = fits[hi][2]
            addrs = [f[2] for f in fits[lo: hi + 1]]
            note = (f"align {align:#x}: lowest fit {fits[lo][2]:#x}, lowest block of "
                    f"size+align-1 {model_addr:#x}")
            if exp in addrs:
                status = "tree_shape"
            if status == "tree_shape" and self.follow_kernel and exp is not None:
                # Follow the kernel: a window exactly the area's size is searched with length
                # ``size`` (adjust_search_size is false), so the area lands at ``exp``.
                area = m.get_vm_area_range(nbytes, VM_IOREMAP, exp, exp + size, caller="oracle")
                va = None if area is None or m.vmap_nodes is None else m.find_vmap_area(area.addr)
                if va is not None and m.vmap_nodes is not None:
                    # 6.9+: the kernel's request was for VMALLOC_START..END: node_alloc encoded
                    # the CPU's node, so the area goes to that node's pool when freed.
                    va.flags |= m.vmap_nodes.encode(m.current_cpu % m.vmap_nodes.nr)
                got = model_addr
                note += (f"; kernel took {exp:#x}, model would take {model_addr:#x}"
                         + (" (the same)" if exp == model_addr else ""))
        if area is None:
            area = m.get_vm_area(nbytes, VM_IOREMAP, caller="oracle")
            got = None if area is None else area.addr
        slot = self._new_slot(_Slot("ioremap", None if area is None else area.addr, area=area), rec)
        r = self._result(out, f"i{n}", slot, exp, got, status, note)
        r.page_aligned = align <= m.PAGE_SIZE
        if status == "tree_shape" and area is not None and area.addr != exp:
            r.status = "mismatch"
            r.note += f"; could not follow the kernel (area at {area.addr:#x})"

    def _free(self, rec: Record, k: int, out: list[OpResult]) -> None:
        m = self.m
        slot = self.slots.get(k)
        exp = rec.addr()
        if slot is None:
            raise FormatError(f"module.res:{rec.lineno}", f"f{k}: no slot {k}")
        del self.slots[k]
        got = slot.addr
        status: str | None = None
        note = ""
        if slot.kind == "vmalloc":
            m.vfree(slot.addr)
        elif slot.kind == "vmap":
            m.vunmap(slot.addr)
            for p in slot.pages:
                if p is not None:
                    m.free_page(p)
        elif slot.kind == "ioremap":
            if slot.area is not None:
                m.free_vm_area(slot.area)
        else:
            if slot.addr is not None:
                m.vm_unmap_ram(slot.addr, len(slot.pages))
            for p in slot.pages:
                if p is not None:
                    m.free_page(p)
        self._result(out, f"f{k}", k, exp, got, status, note, returns_address=False)

    def _check(self, rec: Record, k: int, out: list[OpResult]) -> None:
        """``cK``: translate and write/read back each page, then vmap the same pages once more
        (a temporary alias) and vunmap it: a lazily freed area is left."""
        m = self.m
        slot = self.slots.get(k)
        exp = rec.addr("vmap_alias")
        if slot is None or slot.addr is None or slot.kind not in ("vmalloc", "vmap", "vm_map_ram"):
            self._result(out, f"c{k}", k, exp, None)
            return
        if slot.kind == "vm_map_ram":
            npages = len(slot.pages)
        else:
            area = m.find_vm_area(slot.addr)
            assert area is not None
            npages = (area.size >> m.PAGE_SHIFT) - 1
        pfns = m.pages_of(slot.addr, npages * m.PAGE_SIZE)
        bad = int(np.count_nonzero(pfns < 0))
        note = "" if bad == 0 else f"{bad} pages not translated"
        alias = m.vmap(pfns, npages, VM_MAP, "PAGE_KERNEL", caller="oracle")
        if alias is not None:
            m.write(alias, b"oracle")
            if m.read(slot.addr, 6) != b"oracle":
                note += " alias write not seen"
            m.vunmap(alias)
        self._result(out, f"c{k}", k, exp, alias, None, note.strip())

    def _fill(self, rec: Record, recs: Sequence[Record], i: int, n: int, out: list[OpResult]) -> None:
        m = self.m
        want = fill_addresses(recs, i)
        nchunks = rec.int("chunks", len(want))
        limit = self.memtotal // 2
        total = 0
        k = 0
        stop = "failure"
        while True:
            if total >= limit:
                stop = "half_ram"
                break
            k += 1
            addr = m.vmalloc(n * m.PAGE_SIZE, caller="oracle")
            if addr is None:
                break
            self.fill_chunks.append(addr)
            total += n * m.PAGE_SIZE
            self._result(out, f"e{n}", f"fill{k}", want.get(k), addr)
        if nchunks is not None and k - 1 < nchunks:
            for j in range(k if stop == "failure" else k + 1, nchunks + 1):
                self._result(out, f"e{n}", f"fill{j}", want.get(j), None,
                             note="the model's fill stopped earlier")
        # The call that ended the fill: the kernel's failed (stopped_by=failure) too.
        kstop = rec.fields.get("stopped_by", "failure")
        if stop == "failure":
            self._result(out, f"e{n}", f"fill{k}:stop", None, None,
                         None if kstop == "failure" else "mismatch",
                         note=f"kernel stopped by {kstop}, model by {stop}")


def _ranges(text: str, source: str) -> tuple[dict[Range, tuple[str, ...]], set[Range], set[Range]]:
    """(busy -> kinds, unpurged, vm_map_ram) ranges of a vmallocinfo text."""
    busy: dict[Range, tuple[str, ...]] = {}
    unpurged: set[Range] = set()
    vmr: set[Range] = set()
    for ln in parse_vmallocinfo(text, source).lines:
        r = (ln.start, ln.end, ln.size)
        if UNPURGED in ln.kinds:
            unpurged.add(r)
        else:
            busy[r] = ln.kinds
            if VM_MAP_RAM in ln.kinds:
                vmr.add(r)
    return busy, unpurged, vmr


def compare_vmallocinfo(model_text: str, kernel_text: str, before_text: str = "",
                        not_modelled: Sequence[tuple[int, int]] = ()) -> VmallocinfoDiff:
    """Busy and unpurged ranges of the model's vmallocinfo against the kernel's.  A vm_map_ram
    range of the kernel's that ``before_text`` lacks and that holds a not-modelled operation's
    range is set apart (``not_modelled``), not counted as a difference."""
    mb, mu, _ = _ranges(model_text, "<model>")
    kb, ku, kvmr = _ranges(kernel_text, "<kernel>")
    bb = _ranges(before_text, "<before>")[0] if before_text else {}
    d = VmallocinfoDiff()
    for r in sorted(kvmr):
        if r not in bb and r not in mb and any(r[0] <= s and e <= r[1] for s, e in not_modelled):
            d.not_modelled.append(r)
            del kb[r]
    d.busy_only_kernel = sorted(set(kb) - set(mb))
    d.busy_only_model = sorted(set(mb) - set(kb))
    d.unpurged_only_kernel = sorted(ku - mu)
    d.unpurged_only_model = sorted(mu - ku)
    d.busy_compared = len(kb)
    d.unpurged_compared = len(ku)
    for r in sorted(set(kb) & set(mb)):
        mk = tuple(w for w in mb[r])
        kk = tuple(w for w in kb[r])
        if sorted(mk) != sorted(kk):
            d.kinds.append((r, kk, mk))
    return d


def _meminfo_total(text: str) -> int:
    """MemTotal in bytes (meminfo prints kB)."""
    return parse_meminfo(text).get("MemTotal", 0) * 1024 if text else 0


def replay_capture(path: str | Path | Capture, follow_kernel: bool = True) -> CaptureReport:
    """Restore a capture's ``before.txt``, replay its scripts, and compare (module docstring).

    The machine: ``from_snapshot(before.txt, meminfo.txt, arch, kernel, cpus=2)`` (the captures'
    guests had 2 CPUs), then ``run_workers()``.  A second script continues on the same machine;
    its ``before2.txt`` is compared with the model's state first.
    """
    cap = path if isinstance(path, Capture) else load_capture(path)
    m, _layout, _report = machine_from_snapshot(
        Machine, cap.before[0], cap.meminfo[0] or None, cap.arch, kernel=cap.kernel, cpus=2,
        source=str(cap.path / "before.txt"), meminfo_source=str(cap.path / "meminfo.txt"))
    pools = cap.path / "vmap_pools.txt"
    if m.vmap_nodes is not None and pools.exists():
        # 6.9+: what the boot's trace says of the vmap nodes and that before.txt cannot show.
        with m.vmlist_lock.write():
            apply_pool_state(m.vmap_nodes, m.vmap_allocator, PoolState.parse(pools.read_text()),
                             list(m.for_each_vmap_area()))
    m.run_workers()
    memtotal = _meminfo_total(cap.meminfo[0])
    rp = _Replayer(cap, m, memtotal, follow_kernel)
    for si, script in enumerate(cap.scripts):
        before_cmp = None
        if si > 0 and cap.before[si]:
            m.run_workers()
            before_cmp = compare_vmallocinfo(m.vmallocinfo(), cap.before[si])
        sr = rp.run_script(script)
        sr.before = before_cmp
        m.run_workers()
        if cap.after[si]:
            sr.after = compare_vmallocinfo(m.vmallocinfo(), cap.after[si], cap.before[si],
                                           rp.report.not_modelled_ranges)
        rp.report.scripts.append(sr)
    # Which later operations' kernel addresses fall in a range a not-modelled operation took.
    nm = rp.report.not_modelled_ranges
    for o in rp.report.ops:
        if o.status != "not_modelled" and o.expected is not None and any(s <= o.expected < e for s, e in nm):
            rp.report.later_ops_touching_not_modelled.append(o.index)
    rp.report.machine = m
    return rp.report


def _fmt_ranges(rs: Sequence[Range], limit: int = 5) -> str:
    s = ", ".join(f"{a:#x}-{b:#x} ({z})" for a, b, z in rs[:limit])
    return s + (f" ... (+{len(rs) - limit})" if len(rs) > limit else "")


def format_report(rep: CaptureReport, examples: int = 5) -> str:
    """A few lines: the counts, the first mismatches and tree-shape cases, the vmallocinfo diff."""
    c = rep.counts()
    ca = rep.counts(address_ops_only=True)
    same = sum(1 for o in rep.ops if o.status == "tree_shape" and o.got == o.expected)
    lines = [(f"{rep.name} ({rep.arch}, Linux {rep.kernel}): {c['total']} ops: {c['exact']} exact, "
              f"{c['tree_shape']} tree_shape ({same} where the model's own choice was the "
              f"kernel's), {c['not_modelled']} not_modelled, {c['mismatch']} mismatch; "
              f"address-returning ops {ca['exact']}/{ca['total']} exact")]
    for o in rep.mismatches[:examples]:
        lines.append("  mismatch " + o.line())
    for o in [o for o in rep.ops if o.status == "tree_shape"][:examples]:
        lines.append("  tree_shape " + o.line())
    for s in rep.scripts:
        for what, d in ((f"before{s.n}", s.before), (f"after{'' if s.n == 1 else s.n}", s.after)):
            if d is None:
                continue
            lines.append(f"  {what}.txt: busy {'equal' if d.busy_equal else 'DIFFERENT'} "
                         f"({d.busy_compared} ranges), unpurged "
                         f"{'equal' if d.unpurged_equal else 'DIFFERENT'} ({d.unpurged_compared})"
                         + (f", {len(d.not_modelled)} vm_map_ram range(s) of not-modelled ops set apart"
                            if d.not_modelled else ""))
            for label, rs in (("busy only in kernel", d.busy_only_kernel),
                              ("busy only in model", d.busy_only_model),
                              ("unpurged only in kernel", d.unpurged_only_kernel),
                              ("unpurged only in model", d.unpurged_only_model)):
                if rs:
                    lines.append(f"    {label}: {_fmt_ranges(rs)}")
            if d.kinds:
                lines.append(f"    flag words differ on {len(d.kinds)} ranges, e.g. "
                             f"{d.kinds[0][0][0]:#x}: kernel {d.kinds[0][1]} model {d.kinds[0][2]}")
    return "\n".join(lines)


def iter_reports(root: str | Path, kernel_prefix: str = "linux-6.1-") -> Iterator[CaptureReport]:
    """:func:`replay_capture` of every capture folder under ``root``."""
    for d in capture_folders(root, kernel_prefix):
        yield replay_capture(d)
