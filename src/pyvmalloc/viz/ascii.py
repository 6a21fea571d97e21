"""An ASCII strip map of an address range: one letter per column for the kind that fills it most.

Each column covers an equal share of ``[start, end)``.  An upper-case letter means areas cover at
least half of the column, a lower-case one less than half, ``.`` nothing at all (a hole).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyvmalloc.errors import FormatError
from pyvmalloc.sizes import human_bytes
from pyvmalloc.formats.vmallocinfo import VmallocinfoLine

__all__ = ["KIND_LETTERS", "legend", "strip_map", "strip_rows"]

KIND_LETTERS: dict[str, str] = {
    "vmalloc": "V", "ioremap": "I", "vmap": "M", "user": "U", "vm_map_ram": "R",
    "unpurged": "P", "sparse": "S", "dma-coherent": "D",
}
_OTHER_LETTER = "O"  # vendor words and lines without a flag word


def _letter(kind: str) -> str:
    return KIND_LETTERS.get(kind, _OTHER_LETTER)


def strip_rows(areas: Iterable[VmallocinfoLine | tuple[int, int, str]], start: int, end: int,
               width: int = 72, rows: int = 1) -> list[str]:
    """The map of ``[start, end)`` in ``rows`` lines of ``width`` columns (no labels).

    ``areas`` are parsed lines or ``(start, end, kind)`` tuples; parts outside the range are cut.
    """
    if width < 1 or rows < 1:
        raise FormatError("strip_map", f"width and rows must be positive, not {width}x{rows}")
    if end <= start:
        raise FormatError("strip_map", f"empty range 0x{start:x}-0x{end:x}")
    cells = width * rows
    span = end - start
    # cell i covers [start + span*i//cells, start + span*(i+1)//cells)
    edges = [start + span * i // cells for i in range(cells + 1)]
    fill: list[dict[str, int]] = [{} for _ in range(cells)]
    for area in areas:
        if isinstance(area, VmallocinfoLine):
            a_start, a_end, kind = area.start, area.end, area.primary_kind
        else:
            a_start, a_end, kind = area
        a_start, a_end = max(a_start, start), min(a_end, end)
        if a_end <= a_start:
            continue
        first = (a_start - start) * cells // span
        last = min(cells - 1, ((a_end - 1) - start) * cells // span)
        for i in range(first, last + 1):
            overlap = min(a_end, edges[i + 1]) - max(a_start, edges[i])
            if overlap > 0:
                fill[i][kind] = fill[i].get(kind, 0) + overlap
    chars = []
    for i, kinds in enumerate(fill):
        used = sum(kinds.values())
        if used == 0:
            chars.append(".")
            continue
        letter = _letter(max(kinds.items(), key=lambda kv: (kv[1], kv[0]))[0])
        chars.append(letter if 2 * used >= edges[i + 1] - edges[i] else letter.lower())
    text = "".join(chars)
    return [text[r * width:(r + 1) * width] for r in range(rows)]


def legend(kinds: Iterable[str]) -> str:
    """One line naming the letters used for ``kinds``, and the meaning of '.' and lower case."""
    seen: dict[str, list[str]] = {}
    for kind in kinds:
        seen.setdefault(_letter(kind), [])
        if kind not in seen[_letter(kind)]:
            seen[_letter(kind)].append(kind)
    parts = [f"{letter}={'/'.join(names)}" for letter, names in sorted(seen.items())]
    return "  ".join(parts + [".=free", "lower case: under half the column used"])


def strip_map(areas: Iterable[VmallocinfoLine | tuple[int, int, str]], start: int, end: int,
              width: int = 72, rows: int = 1) -> str:
    """The strip map with each row labelled by its first address, then the legend."""
    areas = list(areas)
    lines = strip_rows(areas, start, end, width, rows)
    digits = 8 if end <= 1 << 32 else 16
    span = end - start
    out = [f"0x{start + span * r // rows:0{digits}x} {row}" for r, row in enumerate(lines)]
    out.append(f"{'':{digits + 2}} end 0x{end:0{digits}x}; each column "
               f"{human_bytes(span // (width * rows))}")
    kinds = [a.primary_kind if isinstance(a, VmallocinfoLine) else a[2] for a in areas]
    out.append(legend(kinds))
    return "\n".join(out)

