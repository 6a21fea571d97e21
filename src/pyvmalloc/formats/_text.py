"""Helpers every parser of this package shares: lines as an editor counts them, numbers of any
length, and quoting that never copies a whole hostile line into a message.

- :func:`lines` splits on ``\\n``, ``\\r\\n`` and ``\\r`` only, so ``FILE:LINE`` is the line an
  editor shows; ``str.splitlines()`` also splits on form feed, ``\\x1c``-``\\x1e``, ``\\x85``,
  U+2028 and U+2029, which would shift every line number after one of them.
- :func:`number` turns digits into an int or raises FormatError: a number wider than its
  C type is "number too long", never the bare ValueError Python raises past 4,300 digits
  (``sys.get_int_max_str_digits``), and never a conversion of megabytes of digits.
- :func:`quote` is ``repr`` cut to :data:`QUOTE_LIMIT` characters, so messages and warnings stay
  short however long the input line is.
- :func:`gc_paused` holds the cyclic garbage collector off while a parser (or a restore) builds
  its objects.

Every function here runs in time linear in its input.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager

from pyvmalloc.errors import FormatError

__all__ = ["QUOTE_LIMIT", "count_lines", "gc_paused", "lines", "number", "quote"]

QUOTE_LIMIT = 80
_BREAK = re.compile(r"\r\n?|\n")


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off (and restore it as it was).

    A parser keeps every object it makes until it returns, so each collection the allocations
    set off walks all of them again: on a 150,000-event trace that was 40% of the parse.  What
    parsers make holds no reference cycles, so reference counting alone frees it; a cycle made
    in the block (``from_snapshot``'s machine has some) waits for the next collection after it.
    """
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def lines(text: str) -> Iterator[tuple[int, str]]:
    """``(lineno, line)`` for each line of ``text``, numbered from 1, without the line break.

    A text that ends with a line break has no empty last line (as ``splitlines``)."""
    pos = 0
    lineno = 0
    for m in _BREAK.finditer(text):
        lineno += 1
        yield lineno, text[pos:m.start()]
        pos = m.end()
    if pos < len(text):
        yield lineno + 1, text[pos:]


def count_lines(data: bytes | str, end: int) -> int:
    """The line number (from 1) that offset ``end`` of ``data`` lies on, breaks as :func:`lines`."""
    if isinstance(data, bytes):
        return data.count(b"\n", 0, end) + data.count(b"\r", 0, end) - data.count(b"\r\n", 0, end) + 1
    return data.count("\n", 0, end) + data.count("\r", 0, end) - data.count("\r\n", 0, end) + 1


def quote(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``repr(text)``, cut after ``limit`` characters of ``text`` (the length is then said)."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


# How many digits a number below 2**bits can have, by base (leading zeros left out).
def _max_digits(bits: int, base: int) -> int:
    return len(format((1 << bits) - 1, "x" if base == 16 else "d"))


def number(digits: str, base: int, where: str, what: str, bits: int = 64,
           inclusive: bool = False) -> int:
    """The value of ``digits`` (already checked to be digits of ``base``) or FormatError.

    The value must be below ``2**bits`` (``inclusive``: at most ``2**bits``, for an end address
    one past the top of the address space).  Longer digit strings are refused before they are
    converted: "number too long" names ``where`` and ``what``.
    """
    if digits == "":
        raise FormatError(where, f"truncated line: {what} has no digits")
    significant = digits.lstrip("0") or "0"
    width = _max_digits(bits, base) + (1 if inclusive else 0)
    kind = "hex" if base == 16 else "decimal"
    if len(significant) > width:
        raise FormatError(where, f"number too long: {what} has {len(significant)} {kind} digits, "
                                 f"more than a {bits}-bit value can have")
    value = int(significant, base)
    limit = (1 << bits) + (1 if inclusive else 0)
    if value >= limit:
        raise FormatError(where, f"number too long: {what} {quote(digits)} does not fit "
                                 f"{bits} bits")
    return value
