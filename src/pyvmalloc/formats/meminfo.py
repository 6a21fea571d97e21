"""Parse and render ``/proc/meminfo`` (``fs/proc/meminfo.c``), the ``Name:  value kB`` layout.

Values are kept as the integers printed: kB for ``... kB`` lines, plain counts for the few lines
without a unit (``HugePages_Total`` and friends, from ``hugetlb_report_meminfo``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from pyvmalloc.errors import FormatError
from pyvmalloc.formats._text import lines as _lines
from pyvmalloc.formats._text import number, quote

__all__ = ["COUNT_FIELDS", "parse_meminfo", "render_meminfo"]

# mm/hugetlb.c hugetlb_report_meminfo(): "HugePages_Total:   %5lu" -- counts, no unit.
COUNT_FIELDS: frozenset[str] = frozenset(
    {"HugePages_Total", "HugePages_Free", "HugePages_Rsvd", "HugePages_Surp"})

_NAME = re.compile(r"[A-Za-z0-9_()]+\Z")
_DEC = re.compile(r"[0-9]+\Z")


def parse_meminfo(text: str, source: str = "<meminfo>") -> dict[str, int]:
    """Parse ``/proc/meminfo`` text into ``{name: value}``; FormatError(``source:line``, why)."""
    if not isinstance(text, str):
        raise FormatError(source, f"expected text, got {type(text).__name__}")
    fields: dict[str, int] = {}
    for lineno, raw in _lines(text):
        where = f"{source}:{lineno}"
        if "\x00" in raw:
            raise FormatError(where, "binary data (NUL byte), not meminfo text")
        if not raw.strip():
            continue
        name, colon, rest = raw.partition(":")
        name = name.strip()
        if not colon:
            raise FormatError(where, f"expected 'Name: value [kB]', no ':' in {quote(raw.strip())}")
        if not _NAME.match(name):
            raise FormatError(where, f"bad field name {quote(name)}")
        shown = name if len(name) <= 80 else quote(name)
        words = rest.split(None, 2)  # the value, "kB", and whatever follows (not split further)
        if not words:
            raise FormatError(where, f"truncated line: {shown} has no value")
        if not _DEC.match(words[0]):
            raise FormatError(where, f"{shown}: value is not a decimal number: {quote(words[0])}")
        if len(words) > 2 or (len(words) == 2 and words[1] != "kB"):
            raise FormatError(where, f"{shown}: expected 'kB' or nothing after the value, "
                                     f"got {quote(' '.join(words[1:]))}")
        if name in fields:
            raise FormatError(where, f"{shown} appears twice")
        # unsigned long in the kernel; read up to 128 bits (render_meminfo takes any int >= 0)
        fields[name] = number(words[0], 10, where, shown, 128)
    return fields


def _render_field(name: str, value: int) -> str:
    label = f"{name}:"
    if name in COUNT_FIELDS:
        # "HugePages_Free:    %5lu": the label padded to 19 columns, the count to 5.
        return f"{label:<19}{value:>5}" if len(label) < 19 else f"{label} {value:>5}"
    if len(label) < 16:
        # show_val_kb(): a 16-column label (name, colon, blanks), the value at least 8 wide.
        return f"{label:<16}{value:>8} kB"
    # Names too long for 16 columns are printed on their own: "HardwareCorrupted: %5lu kB".
    return f"{label} {value:>5} kB"


def render_meminfo(fields: Mapping[str, int]) -> str:
    """Render ``{name: value}`` in the kernel's layout, one ``Name:  value kB`` line each."""
    lines = []
    for name, value in fields.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise FormatError("render_meminfo", f"bad field name {name!r}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FormatError("render_meminfo", f"{name}: value must be a non-negative int, "
                                                f"not {value!r}")
        lines.append(_render_field(name, value) + "\n")
    return "".join(lines)
