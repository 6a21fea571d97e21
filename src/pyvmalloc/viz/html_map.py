"""The address space as one self-contained HTML page: an SVG map to zoom, pan and hover, and
the page-table walk of one address drawn from the top table to the byte.

No network, no files beside it: the SVG and a small script are inline.  The map has one row per
range (the vmalloc area, the module area where it is separate); each row shows the areas and
the holes between them.  Sizes run from one page to terabytes, so the map opens in a *log*
layout (each block as wide as the log of its size: a 16 KiB area beside a 32 TiB hole both
show) and switches to a *linear* one (widths proportional to bytes); wheel zooms, drag pans,
a double click zooms onto a block.  Hovering a block shows the area, its caller, size, pages
and guard page, or the hole's extent.  ``map_data`` reads a machine; the page takes plain data,
so a dump or a replay at a step draws the same way.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field

from pyvmalloc.kernel.machine import Machine
from pyvmalloc.mmu.pagetable import WalkStep
from pyvmalloc.sizes import human_bytes
from pyvmalloc.vmalloc.vm_struct import VM_LAZY_FREE, VM_WORDS, VMAP_RAM

__all__ = ["Block", "MapData", "Row", "WalkData", "map_data", "render_fragment", "render_page", "walk_data"]

COLORS: dict[str, str] = {
    "vmalloc": "#4c78a8", "ioremap": "#f58518", "vmap": "#54a24b", "user": "#b279a2",
    "vm_map_ram": "#72b7b2", "unpurged": "#bab0ac", "module": "#e45756", "other": "#9d755d",
    "hole": "url(#hatch)",
}
_W = 1000.0    # drawing width of a row, in SVG units
_MODULE_CALLERS = ("module_alloc", "load_module", "execmem_alloc", "move_module")
_ROW_H = 46.0  # height of one row


@dataclass(frozen=True)
class Block:
    """One area (or hole) of a row: ``[start, end)``, what it is, and its hover text."""

    start: int
    end: int
    kind: str
    caller: str = ""
    pages: int = 0
    guard: int | None = None

    def tip(self) -> str:
        """The hover text."""
        size = self.end - self.start
        if self.kind == "hole":
            return f"hole {self.start:#x}-{self.end:#x}\nsize {human_bytes(size)} ({size} bytes)"
        lines = [f"{self.kind} area {self.start:#x}-{self.end:#x}",
                 f"caller {self.caller or '-'}",
                 f"size {human_bytes(size)} ({size} bytes)",
                 f"pages {self.pages}"]
        lines.append(f"guard page {self.guard:#x}" if self.guard is not None else "guard page: none")
        return "\n".join(lines)


@dataclass
class Row:
    """One range of the map and its blocks (holes are filled in by the page)."""

    name: str
    start: int
    end: int
    blocks: list[Block] = field(default_factory=list)
    note: str = ""


@dataclass
class WalkData:
    """The walk of ``addr``: its steps, then the physical address and the byte there (or None)."""

    addr: int
    steps: list[WalkStep]
    phys: int | None
    byte: int | None
    page_size: int


@dataclass
class MapData:
    """Everything the page draws."""

    title: str
    rows: list[Row]
    walk: WalkData | None = None
    notes: list[str] = field(default_factory=list)


# ---- from a machine -------------------------------------------------------------------------
def _kind(flags: int, vm_flags: int | None) -> str:
    if flags & VM_LAZY_FREE:
        return "unpurged"
    if vm_flags is None:
        return "vm_map_ram" if flags & VMAP_RAM else "other"
    return next((word for bit, word in VM_WORDS if vm_flags & bit), "other")


def map_data(m: Machine, title: str = "", walk_addr: int | None = None) -> MapData:
    """The map of ``m``: its vmalloc range and, where it is separate, its module area, with
    every vmap_area; the walk of ``walk_addr`` (default: the first page of the first vmalloc area)."""
    lay = m.layout
    ps = m.PAGE_SIZE
    rows = [Row("vmalloc", lay.vmalloc_start, lay.vmalloc_end)]
    shared = (lay.modules_start, lay.modules_end) == (lay.vmalloc_start, lay.vmalloc_end)
    if lay.modules_end > lay.modules_start and not shared:
        rows.append(Row("modules", lay.modules_start, lay.modules_end, note="the module area"))
    elif shared:
        rows[0].note = "modules are loaded in the vmalloc range on this machine"
    first_vmalloc: int | None = None
    with m.vmlist_lock.read():
        for va in m.for_each_vmap_area():
            vm = va.vm
            kind = _kind(va.flags, None if vm is None else vm.flags)
            row = next((r for r in rows[::-1] if r.start <= va.va_start < r.end), None)
            if row is None:
                continue
            caller = "" if vm is None else vm.caller
            # In the module area every vmalloc is a module; where modules share the vmalloc
            # range, only the caller tells them apart.
            if kind in ("vmalloc", "other") and (row.name == "modules" or caller.startswith(_MODULE_CALLERS)):
                kind = "module"
            guard = va.va_end - ps if vm is not None else None
            row.blocks.append(Block(va.va_start, va.va_end, kind, caller,
                                    0 if vm is None else vm.nr_pages, guard))
            if kind == "vmalloc" and first_vmalloc is None and vm is not None and vm.nr_pages:
                first_vmalloc = va.va_start
    addr = walk_addr if walk_addr is not None else first_vmalloc
    name = title or f"{m.profile.name}, Linux {m.kernel}"
    return MapData(name, rows, None if addr is None else walk_data(m, addr))


def walk_data(m: Machine, addr: int) -> WalkData:
    """The page-table walk of ``addr`` on ``m``, and the byte it reaches."""
    phys = m.translate(addr)
    byte = None
    if phys is not None:
        byte = m.vread(addr, 1)[0] if m.find_vmap_area(addr) is not None else None
    return WalkData(addr, m.walk(addr), phys, byte, m.PAGE_SIZE)


# ---- the page -------------------------------------------------------------------------------
def _with_holes(row: Row) -> list[Block]:
    out: list[Block] = []
    at = row.start
    for b in sorted(row.blocks, key=lambda b: b.start):
        if b.start > at:
            out.append(Block(at, b.start, "hole"))
        out.append(b)
        at = max(at, b.end)
    if at < row.end:
        out.append(Block(at, row.end, "hole"))
    return out


def _row_svg(i: int, row: Row) -> str:
    """One row: a label, then a <rect> per block with both layouts' positions as data."""
    blocks = _with_holes(row)
    span = max(1, row.end - row.start)
    weights = [1.0 + math.log2(max(1, b.end - b.start) / 4096 + 1) for b in blocks]
    total = sum(weights) or 1.0
    y = 30 + i * (_ROW_H + 34)
    parts = [f'<text x="0" y="{y - 8:.0f}" class="lbl">{html.escape(row.name)} '
             f'{row.start:#x}-{row.end:#x} ({human_bytes(row.end - row.start)})'
             f'{" - " + html.escape(row.note) if row.note else ""}</text>']
    at = 0.0
    for b, w in zip(blocks, weights):
        l0, l1 = at / total, (at + w) / total
        at += w
        a0, a1 = (b.start - row.start) / span, (b.end - row.start) / span
        tip = html.escape(b.tip())
        cls = "hole" if b.kind == "hole" else "area"
        parts.append(
            f'<rect class="{cls}" x="{l0 * _W:.3f}" y="{y:.0f}" width="{(l1 - l0) * _W:.3f}" '
            f'height="{_ROW_H:.0f}" fill="{COLORS.get(b.kind, COLORS["other"])}" '
            f'data-l0="{l0:.9g}" data-l1="{l1:.9g}" data-a0="{a0:.17g}" data-a1="{a1:.17g}" '
            f'data-tip="{tip}"><title>{tip}</title></rect>')
        if b.guard is not None and b.end > b.start:
            g = 1 - (b.end - b.guard) / (b.end - b.start)
            parts.append(
                f'<rect class="guard" x="{(l0 + (l1 - l0) * max(g, 0.85)) * _W:.3f}" y="{y:.0f}" '
                f'width="{(l1 - l0) * (1 - max(g, 0.85)) * _W:.3f}" height="{_ROW_H:.0f}" '
                f'data-l0="{l0 + (l1 - l0) * max(g, 0.85):.9g}" data-l1="{l1:.9g}" '
                f'data-a0="{a0 + (a1 - a0) * g:.17g}" data-a1="{a1:.17g}" data-tip="{tip}">'
                f'<title>guard page {b.guard:#x}</title></rect>')
    return "\n".join(parts)


def _walk_svg(w: WalkData) -> str:
    """The walk as boxes from the top table to the byte, joined by arrows."""
    boxes: list[list[str]] = []
    for s in w.steps:
        boxes.append([f"{s.level.upper()} table", f"@ phys {s.table_phys:#x}", f"index {s.index}",
                      f"entry {s.entry:#x}", " ".join(s.flags) or "(none: not present)"])
    if w.phys is not None:
        last = [f"frame {w.phys // w.page_size}", f"+ offset {w.addr % w.page_size:#x}",
                f"phys {w.phys:#x}"]
        if w.byte is not None:
            shown = chr(w.byte) if 32 <= w.byte < 127 else "."
            last.append(f"byte {w.byte:#04x} '{html.escape(shown)}'")
        boxes.append(last)
    else:
        boxes.append(["no page:", "the walk stops", "a store here faults"])
    bw, gap, bh = 170, 34, 96
    width = len(boxes) * (bw + gap)
    out = [f'<svg id="walk" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{bh + 40}" '
           f'viewBox="0 0 {width} {bh + 40}">',
           f'<text x="0" y="14" class="lbl">the page-table walk of {w.addr:#x}</text>']
    for k, lines in enumerate(boxes):
        x = k * (bw + gap)
        leaf = k == len(boxes) - 1
        out.append(f'<rect class="wbox" x="{x}" y="24" width="{bw}" height="{bh}" '
                   f'fill="{"#fde7c8" if leaf else "#e4ecf7"}" stroke="#333"/>')
        for j, line in enumerate(lines):
            out.append(f'<text x="{x + 6}" y="{42 + j * 17}" class="wt">{html.escape(line)}</text>')
        if not leaf:
            out.append(f'<path d="M{x + bw} {24 + bh / 2} h{gap - 6}" stroke="#333" marker-end="url(#arr)"/>')
    out.insert(1, '<defs><marker id="arr" markerWidth="8" markerHeight="8" refX="6" refY="4" orient="auto">'
                  '<path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker></defs>')
    out.append("</svg>")
    return "\n".join(out)


def _map_svg(data: MapData) -> str:
    height = 30 + len(data.rows) * (_ROW_H + 34)
    body = "\n".join(_row_svg(i, r) for i, r in enumerate(data.rows))
    # Holes are hatched, so that a hole reads as "nothing here" and not as an area.
    hatch = ('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
             'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f4f4f4"/>'
             '<line x1="0" y1="0" x2="0" y2="6" stroke="#cfcfcf" stroke-width="2"/></pattern></defs>')
    return (f'<svg id="map" xmlns="http://www.w3.org/2000/svg" width="100%" height="{height:.0f}" '
            f'viewBox="0 0 {_W:.0f} {height:.0f}" preserveAspectRatio="none">\n{hatch}\n{body}\n</svg>')


_STYLE = """
body{font:13px system-ui,sans-serif;margin:16px;color:#222}
.lbl{font:12px monospace;fill:#222}.wt{font:11px monospace;fill:#222}
rect.area{stroke:#fff;stroke-width:0.5}rect.hole{stroke:#ccc;stroke-width:0.5}
rect.guard{fill:#222;opacity:.75}rect.hi{stroke:#000;stroke-width:2}
#tip{position:fixed;pointer-events:none;background:#ffe;border:1px solid #999;padding:4px 6px;
font:12px monospace;white-space:pre;display:none}
.legend span{display:inline-block;padding:1px 6px;margin-right:4px;border-radius:3px}
"""

_SCRIPT = """
(function(){
var svg=document.getElementById('map'),tip=document.getElementById('tip'),W=%(W)s;
var mode='l',lo=0,hi=1,drag=null;
var rects=Array.prototype.slice.call(svg.querySelectorAll('rect[data-l0]'));
function draw(){rects.forEach(function(r){var a=+r.dataset[mode+'0'],b=+r.dataset[mode+'1'];
 var x0=(a-lo)/(hi-lo)*W,x1=(b-lo)/(hi-lo)*W;if(x1<-W||x0>2*W){r.setAttribute('width',0);return;}
 x0=Math.max(x0,-W);x1=Math.min(x1,2*W);r.setAttribute('x',x0);r.setAttribute('width',Math.max(x1-x0,0));});
 document.getElementById('view').textContent=(mode=='l'?'log':'linear')+' layout, showing '+
 (100*(hi-lo)).toPrecision(3)+'%% of each range';}
function frac(ev){var b=svg.getBoundingClientRect();return (ev.clientX-b.left)/b.width;}
svg.addEventListener('wheel',function(ev){ev.preventDefault();var f=frac(ev),c=lo+f*(hi-lo);
 var k=ev.deltaY<0?0.8:1.25,span=Math.min(1,Math.max(1e-15,(hi-lo)*k));
 lo=Math.max(0,Math.min(1-span,c-f*span));hi=lo+span;draw();},{passive:false});
svg.addEventListener('mousedown',function(ev){drag={x:frac(ev),lo:lo,hi:hi};});
window.addEventListener('mouseup',function(){drag=null;});
svg.addEventListener('mousemove',function(ev){if(!drag)return;var d=(frac(ev)-drag.x)*(drag.hi-drag.lo);
 var span=drag.hi-drag.lo;lo=Math.max(0,Math.min(1-span,drag.lo-d));hi=lo+span;draw();});
rects.forEach(function(r){
 r.addEventListener('mouseover',function(ev){tip.textContent=r.dataset.tip;tip.style.display='block';
  r.classList.add('hi');});
 r.addEventListener('mousemove',function(ev){tip.style.left=(ev.clientX+14)+'px';tip.style.top=(ev.clientY+14)+'px';});
 r.addEventListener('mouseout',function(){tip.style.display='none';r.classList.remove('hi');});
 r.addEventListener('dblclick',function(){var a=+r.dataset[mode+'0'],b=+r.dataset[mode+'1'],p=(b-a)*0.25;
  lo=Math.max(0,a-p);hi=Math.min(1,b+p);draw();});});
document.getElementById('layout').addEventListener('click',function(){mode=mode=='l'?'a':'l';draw();});
document.getElementById('reset').addEventListener('click',function(){lo=0;hi=1;draw();});
draw();
})();
"""


def _legend(data: MapData) -> str:
    kinds = sorted({b.kind for r in data.rows for b in r.blocks} | {"hole"})
    return '<div class="legend">' + "".join(
        f'<span style="background:{"#e8e8e8" if k == "hole" else COLORS.get(k, COLORS["other"])}">'
        f'{html.escape(k)}</span>' for k in kinds
    ) + '<span style="background:#222;color:#fff">guard page</span></div>'


def _area_table(data: MapData, limit: int = 16) -> str:
    """The areas as a table (the first ``limit``), for a notebook where hovering is not obvious."""
    blocks = [(r.name, b) for r in data.rows for b in r.blocks]
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{b.start:#x}-{b.end:#x}</td><td>{html.escape(b.kind)}</td>"
        f"<td>{html.escape(b.caller)}</td><td>{human_bytes(b.end - b.start)}</td><td>{b.pages}</td>"
        f"<td>{'' if b.guard is None else hex(b.guard)}</td></tr>" for name, b in blocks[:limit])
    more = f"<p>... and {len(blocks) - limit} more areas</p>" if len(blocks) > limit else ""
    return ("<table><tr><th>range</th><th>area</th><th>kind</th><th>caller</th><th>size</th>"
            f"<th>pages</th><th>guard page</th></tr>{rows}</table>{more}")


def render_fragment(data: MapData) -> str:
    """The map and walk as an HTML fragment with no script (Jupyter's ``_repr_html_``): the log
    layout, hover text as SVG titles."""
    parts = [f"<div><b>{html.escape(data.title)}</b>", _legend(data), _map_svg(data), _area_table(data)]
    if data.walk is not None:
        parts.append(_walk_svg(data.walk))
    return "\n".join(parts) + "</div>"


def render_page(data: MapData) -> str:
    """The whole page: map, legend, controls, walk diagram and the script, in one file."""
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in data.notes)
    walk = "" if data.walk is None else f"<h2>Page-table walk</h2>\n{_walk_svg(data.walk)}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(data.title)} - pyvmalloc map</title>
<style>{_STYLE}</style></head>
<body>
<h1>{html.escape(data.title)}</h1>
{notes}
<p><button id="layout">log / linear</button> <button id="reset">whole range</button>
<span id="view"></span> &mdash; wheel: zoom, drag: pan, double click: zoom onto a block, hover: details</p>
{_legend(data)}
{_map_svg(data)}
<div id="tip"></div>
{walk}
<script>{_SCRIPT % {"W": json.dumps(_W)}}</script>
</body></html>
"""

