"""The fleet report: the devices at risk as a terminal table, and one HTML page with plots.

The page stands alone (its PNGs are inlined): the ranking, a table per kernel-and-arch group
(devices, typical request, median headroom, devices at risk), the headroom of every device per
group, and largest hole against vmalloc space in use.  Plots on matplotlib's Agg canvas.
"""

from __future__ import annotations

import base64
import html
import io
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from pyvmalloc.scale.fleet import AT_RISK
from pyvmalloc.sizes import human_bytes

__all__ = ["format_ranking", "group_table", "write_html"]


def _size(n: int | None) -> str:
    return "-" if n is None else human_bytes(int(n))


def _ranking_rows(rows: Sequence[dict[str, Any]], top: int) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [("rank", "device", "group", "largest hole", "typical request", "headroom",
            "fragmentation", "why")]
    for r in rows[:top]:
        if r["rank"] is None:
            break
        why = []
        if r["at_risk"]:
            why.append("largest hole < typical request" if r["headroom"] < 1
                       else f"fewer than {AT_RISK:g} typical requests fit")
        if r["leak_suspect"]:
            why.append(f"leak suspect: {r['leak_suspect']}")
        out.append((str(r["rank"]), r["device"] + (f"@{r['taken']}" if r["taken"] else ""),
                    r["group"], _size(r["largest_hole"]), _size(r["typical_request"]),
                    f"{r['headroom']:.2f}", ("-" if r["fragmentation"] is None else f"{r['fragmentation']:.3f}"),
                    "; ".join(why) or "ok"))
    return out


def _text_table(lines: list[tuple[str, ...]], right: set[int]) -> str:
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    out = []
    for n, row in enumerate(lines):
        out.append("  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"


def _printable(text: str) -> str:
    """``text`` on one line: an error quoting a dump's bytes cannot break the table."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def format_ranking(rows: Sequence[dict[str, Any]], top: int = 20) -> str:
    """The ``top`` devices most at risk, one line each, then how many dumps were not ranked."""
    text = _text_table(_ranking_rows(rows, top), {0, 3, 4, 5, 6})
    unranked = [r for r in rows if r["rank"] is None and r["status"] != "ok"]
    if unranked:
        kinds: dict[str, int] = defaultdict(int)
        for r in unranked:
            kinds[r["status"]] += 1
        text += ("not ranked: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
                 + (" (hashed addresses hide the holes)" if "hashed" in kinds else "") + "\n")
        # The reasons themselves, or "errors" is a count the reader cannot act on.
        errors = [r for r in unranked if r["status"] == "error"]
        text += "".join(f"  {_printable(str(r['error']))}\n" for r in errors[:5])
        if len(errors) > 5:
            text += f"  ... {len(errors) - 5} more errors (the devices table's error column)\n"
    return text


def group_table(rows: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """Per group: devices, typical request, median headroom, devices at risk."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["rank"] is not None:
            groups[r["group"]].append(r)
    out: list[tuple[str, ...]] = [("group", "devices", "typical request", "median headroom", "at risk")]
    for g, rs in sorted(groups.items()):
        out.append((g, str(len(rs)), _size(rs[0]["typical_request"]),
                    f"{statistics.median(r['headroom'] for r in rs):.2f}",
                    str(sum(bool(r["at_risk"]) for r in rs))))
    return out


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ranked = [r for r in rows if r["rank"] is not None]
    groups = sorted({r["group"] for r in ranked})
    plots = []
    fig = Figure(figsize=(11, 4))
    fig.subplots_adjust(bottom=0.2)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, g in enumerate(groups):
        rs = [r for r in ranked if r["group"] == g]
        # A fixed jitter spreads the points of a group; the same page on every run.
        ax.scatter([i + (j % 21 - 10) / 40 for j in range(len(rs))],
                   [max(r["headroom"], 1e-3) for r in rs],
                   c=["tab:red" if r["at_risk"] or r["leak_suspect"] else "tab:blue" for r in rs], s=8)
    ax.axhline(AT_RISK, color="tab:red", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)), groups, rotation=15, fontsize=8)
    ax.set_ylabel("largest hole / typical request")
    ax.set_title("headroom of every device, by kernel and arch (red: at risk or leaking)")
    plots.append(("headroom", _png(fig)))

    fig = Figure(figsize=(11, 4))
    fig.subplots_adjust(bottom=0.2)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for g in groups:
        rs = [r for r in ranked if r["group"] == g]
        ax.scatter([(r["vmalloc_bytes"] or 0) / (1 << 20) for r in rs],
                   [(r["largest_hole"] or 0) / (1 << 20) for r in rs], s=8, label=g)
    ax.set_xlabel("vmalloc space in use (MiB)")
    ax.set_ylabel("largest hole (MiB)")
    ax.set_yscale("symlog")
    if groups:      # no ranked device: no labels, and matplotlib warns on stderr
        ax.legend(fontsize=7)
    ax.set_title("largest free hole against space in use")
    plots.append(("holes", _png(fig)))
    return plots


def _html_table(lines: Sequence[tuple[str, ...]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in lines[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in lines[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write_html(rows: Sequence[dict[str, Any]], path: str, title: str, top: int = 50) -> None:
    """Write the report page to ``path``."""
    plots = "".join(f'<img alt="{name}" src="data:image/png;base64,{data}">'
                    for name, data in _plots(rows))
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:left}} img{{display:block;margin:1em 0}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>{len(rows)} dumps; a device is at risk when its largest free hole holds fewer than {AT_RISK:g}
of the requests typical for its kernel and arch (the median over the group's devices of the
99th percentile of the area sizes each holds), or when a caller grows through its series of
dumps.</p>
<h2>Devices most at risk</h2>{_html_table(_ranking_rows(rows, top))}
<h2>Groups</h2>{_html_table(group_table(rows))}
<h2>Plots</h2>{plots}
</body></html>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
