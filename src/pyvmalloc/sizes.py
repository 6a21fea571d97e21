"""Sizes as text, both ways: the kernel's ``memparse()``, ``parse_size()`` for users, and the byte formatters.

Every layer formats byte counts through this module (a leaf: it imports only ``errors``).
"""

from __future__ import annotations

from pyvmalloc.errors import ConfigError

_U64 = (1 << 64) - 1

# lib/cmdline.c: memparse() shifts by 10 once per step from the suffix down to K.
_SUFFIX_SHIFT = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def _strtoull(text: str) -> tuple[int, int]:
    """lib/vsprintf.c simple_strtoull(s, &end, 0): (value, characters consumed).

    Base 0 means: ``0x`` followed by a hex digit selects hex, a leading ``0`` octal, else
    decimal (lib/kstrtox.c _parse_integer_fixup_radix).  No sign, no leading blanks.  The
    value wraps at 64 bits as the C arithmetic does.
    """
    pos, base = 0, 10
    if text[:1] == "0":
        if text[1:2] in ("x", "X") and text[2:3] != "" and text[2] in "0123456789abcdefABCDEF":
            base, pos = 16, 2
        else:
            base = 8
    value = 0
    while pos < len(text):
        ch = text[pos].lower()
        digit = "0123456789abcdef".find(ch)
        if digit < 0 or digit >= base:
            break
        value = (value * base + digit) & _U64
        pos += 1
    return value, pos


def memparse(s: str) -> tuple[int, str]:
    """lib/cmdline.c memparse(): a number with an optional K/M/G/T/P/E suffix (either case).

    Returns ``(bytes, rest)`` where ``rest`` is the text after what was parsed, like the
    kernel's ``retptr``.  Like the kernel, text that is not a number parses as 0 with
    ``rest == s``; a leading ``0`` means octal, ``0x`` hex; results wrap at 64 bits.
    """
    if not isinstance(s, str):
        raise ConfigError(f"memparse needs text, not {type(s).__name__}")
    value, used = _strtoull(s)
    rest = s[used:]
    shift = _SUFFIX_SHIFT.get(rest[:1].lower())
    if shift is not None:
        value = (value << shift) & _U64
        rest = rest[1:]
    return value, rest


def parse_size(text: str | int) -> int:
    """A size a user typed: ``"16k"``, ``"512M"``, ``"64G"``, ``"1T"``, ``"4096"``, ``"0x1000"``.

    Stricter than memparse: the whole text must be the size (an optional ``B``/``iB`` may
    follow the suffix, e.g. ``"512MiB"``), leading zeros are decimal (users do not mean
    octal), and no wrap-around.  Ints pass through if non-negative.  Anything else raises
    ConfigError "... is not a size".
    """
    if isinstance(text, bool):
        raise ConfigError(f"{text!r} is not a size")
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"{text!r} is not a size")
        return text
    if not isinstance(text, str):
        raise ConfigError(f"{text!r} is not a size")
    t = text.strip()
    if t[:2].lower() == "0x":
        digits, base = t[2:], 16
        allowed = "0123456789abcdefABCDEF"
    else:
        digits, base = t, 10
        allowed = "0123456789"
    n = 0
    while n < len(digits) and digits[n] in allowed:
        n += 1
    number, rest = digits[:n], digits[n:]
    if not number:
        raise ConfigError(f"{text!r} is not a size")
    value = int(number, base)
    shift = _SUFFIX_SHIFT.get(rest[:1].lower()) if rest else None
    if shift is not None:
        value <<= shift
        rest = rest[1:]
        if rest in ("B", "iB", "b"):
            rest = ""
    elif rest in ("B", "b"):
        rest = ""
    if rest:
        raise ConfigError(f"{text!r} is not a size")
    return value


def format_size(n: int) -> str:
    """``n`` bytes in the largest binary unit that divides it exactly (``"240M"``, ``"4096"``)."""
    for suffix, shift in (("E", 60), ("P", 50), ("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    return str(n)


def human_bytes(n: int) -> str:
    """``n`` bytes in binary units with one decimal: ``144.3 MiB``; below 1 KiB in bytes."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def exact_bytes(n: int) -> str:
    """Bytes for a sentence: whole MiB exactly (``592 MiB``), whole KiB below a MiB
    (``8 KiB``), else :func:`human_bytes` (``95.8 MiB``)."""
    if n and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n and n % 1024 == 0 and n < 1 << 20:
        return f"{n >> 10} KiB"
    return human_bytes(n)


def bytes_and_human(n: int) -> str:
    """``n`` exactly, with the human figure beside it from 1 KiB on: ``151552 B (148.0 KiB)``."""
    return f"{n} B ({human_bytes(n)})" if n >= 1024 else f"{n} B"
