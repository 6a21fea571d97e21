"""Parse and render ``/proc/vmallocinfo`` in every format the kernel has written since 2.6.26.

One line per area (``mm/vmalloc.c``: ``s_show`` up to 6.8, ``vmalloc_info_show`` from 6.9)::

    0x<start>-0x<end> <size %7ld> [caller %pS] [pages=N] [phys=ADDR] [flag words] [N<node>=n ...]

``size`` is ``vm->size`` and includes the guard page.  Lines are parsed exactly; what cannot be a
vmallocinfo line raises :class:`pyvmalloc.errors.FormatError` naming ``FILE:LINE``.  Two things are
*properties of the snapshot*, not errors: addresses hashed by ``%pK`` (kptr_restrict) and flag
words this parser does not know (vendor kernels add some, e.g. ``lowmem``); both are kept and said
in :attr:`VmallocinfoSnapshot.warnings` / :attr:`VmallocinfoSnapshot.addresses_trusted`.

This module is a pure text format: it imports nothing from the model layers, so the kernel layer
can use :func:`render_vmallocinfo` for ``Machine.vmallocinfo()``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from pyvmalloc.errors import FormatError
from pyvmalloc.formats._text import lines as _lines
from pyvmalloc.formats._text import number, quote

__all__ = [
    "KNOWN_FLAG_WORDS",
    "UNPURGED",
    "VM_MAP_RAM",
    "VmallocinfoLine",
    "VmallocinfoSnapshot",
    "format_caller",
    "parse_vmallocinfo",
    "render_vmallocinfo",
]

# The flag words in the order the kernel prints them (mm/vmalloc.c s_show/vmalloc_info_show):
# VM_IOREMAP, VM_SPARSE (6.9+), VM_ALLOC, VM_MAP, VM_USERMAP, VM_DMA_COHERENT (5.5+), then
# "vpages" (the page array itself was vmalloc'ed: VM_VPAGES before 3.x, is_vmalloc_addr() now).
KNOWN_FLAG_WORDS: tuple[str, ...] = (
    "ioremap", "sparse", "vmalloc", "vmap", "user", "dma-coherent", "vpages",
)
# VAs without a vm_struct (4.13+; VMAP_RAM in 6.4+): "0x..-0x.. <size> vm_map_ram".
VM_MAP_RAM = "vm_map_ram"
# Unknown words and keys named one by one in the warnings; the rest are counted in one more.
MAX_WORD_WARNINGS = 20
# include/linux/numa.h: MAX_NUMNODES = 1 << NODES_SHIFT, and NODES_SHIFT is at most 10.
MAX_NUMNODES = 1 << 10
# Lazily freed VAs printed after the busy ones (show_purge_info, 5.4+; the word appeared in 4.13).
UNPURGED = "unpurged vm_area"

_PRIMARY_ORDER: tuple[tuple[str, str], ...] = (
    (UNPURGED, "unpurged"), (VM_MAP_RAM, "vm_map_ram"), ("ioremap", "ioremap"),
    ("sparse", "sparse"), ("vmalloc", "vmalloc"), ("vmap", "vmap"),
    ("dma-coherent", "dma-coherent"), ("user", "user"),
)

_HEX = re.compile(r"[0-9a-fA-F]+\Z")
_DEC = re.compile(r"[0-9]+\Z")
# %pS: "symbol+0xoff/0xsize"; symbols may carry compiler suffixes (".constprop.5", ".isra.0").
_SYMBOL_CALLER = re.compile(r"[^\s+\[\]=]+\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+\Z")
# %pS of an address kallsyms cannot name (or a kernel without kallsyms): a raw "0x..." address.
_RAW_CALLER = re.compile(r"0x[0-9a-fA-F]+\Z")
_MODULE = re.compile(r"\[[^\s\[\]]+\]\Z")
_NUMA = re.compile(r"N([0-9]+)=(.*)\Z", re.DOTALL)
_KEYVAL = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)=(.*)\Z", re.DOTALL)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
# A whole caller as the parser reads it back: %pS with an optional module, or a raw address.
_CALLER = re.compile(r"(?:[^\s+\[\]=]+\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+(?: \[[^\s\[\]]+\])?"
                     r"|0x[0-9a-fA-F]+)")


@dataclass(frozen=True)
class VmallocinfoLine:
    """One area line of ``/proc/vmallocinfo``.

    ``kinds`` holds the flag words in the order they were printed, including ``vm_map_ram``,
    ``unpurged vm_area`` (one entry) and vendor words; ``unknown_words`` repeats the vendor words
    and holds unknown ``key=value`` tokens (both kept, and warned about).  ``lineno`` is where the
    line was read and takes no part in equality, so a rendered and re-parsed record compares equal.
    """

    start: int
    end: int
    size: int
    caller: str | None = None
    nr_pages: int | None = None
    phys: int | None = None
    kinds: tuple[str, ...] = ()
    numa: dict[int, int] = field(default_factory=dict)
    unknown_words: tuple[str, ...] = ()
    lineno: int = field(default=0, compare=False)

    @property
    def primary_kind(self) -> str:
        """The one kind this area counts under, so that every byte is counted once.

        The first of: ``unpurged`` (lazily freed, not yet purged), ``vm_map_ram``, ``ioremap``,
        ``sparse``, ``vmalloc``, ``vmap``, ``dma-coherent``, ``user``; else the first vendor
        word (e.g. ``lowmem``); else ``other`` (a line with no flag word).  ``vpages`` says how
        the page array was allocated and is never a kind of its own.
        """
        for word, kind in _PRIMARY_ORDER:
            if word in self.kinds:
                return kind
        for word in self.kinds:
            if word != "vpages":
                return word
        return "other"

    @property
    def caller_at_entry(self) -> bool:
        """True when the caller is a function's own address (``+0x0/``), not a return address.

        Early and fixed maps record the function itself: ``vm_area_add_early()`` areas of ARM
        ``iotable_init``/``pmd_empty_section_gap``/``pci_reserve_io``, ``pcpu_get_vm_areas``.
        """
        return self.caller is not None and "+0x0/" in self.caller

    @property
    def has_guard_page(self) -> bool:
        """Whether the last page of the area is the guard page ``__get_vm_area_node`` adds.

        Not for vm_map_ram blocks (no vm_struct) nor for early fixed maps (sized exactly).
        """
        return VM_MAP_RAM not in self.kinds and not self.caller_at_entry

    @property
    def module(self) -> str | None:
        """The module name of the caller (``[pvrsrvkm]`` -> ``pvrsrvkm``), or None."""
        if self.caller and self.caller.endswith("]") and " [" in self.caller:
            return self.caller.rsplit(" [", 1)[1][:-1]
        return None

    @property
    def function(self) -> str | None:
        """The caller without offset and module: ``osal_malloc`` or a raw ``0xbf00e11c``."""
        if self.caller is None:
            return None
        return self.caller.split(" ", 1)[0].split("+", 1)[0]


@dataclass
class VmallocinfoSnapshot:
    """A parsed ``/proc/vmallocinfo``: the lines in file order and what was learnt about them.

    ``addresses_trusted`` is False when the addresses are not real (hashed by ``%pK`` or printed
    as zeros); ``address_reason`` says why either way.  ``address_bits`` is 64 when addresses were
    printed with 16 hex digits, 32 for 8 digits.
    """

    source: str
    lines: list[VmallocinfoLine]
    addresses_trusted: bool
    address_reason: str
    address_bits: int
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.lines)

    def __iter__(self) -> Iterator[VmallocinfoLine]:
        return iter(self.lines)


def _hex(text: str, where: str, what: str, bits: int = 64, inclusive: bool = False) -> int:
    if not _HEX.match(text):
        if text == "":
            raise FormatError(where, f"truncated line: {what} has no digits")
        raise FormatError(where, f"bad hex in {what}: {quote(text)}")
    return number(text, 16, where, what, bits, inclusive)


def _dec(text: str, where: str, what: str, bits: int) -> int:
    return number(text, 10, where, what, bits)


def _digits(text: str, value: int) -> int:
    """The pointer width a printed address shows: its digits, except for an end address one
    past the top of a 32- or 64-bit address space (``0x100000000``: the last page's end)."""
    if value in (1 << 32, 1 << 64):
        return (value.bit_length() - 1) // 4
    return len(text)


def _parse_range(token: str, where: str) -> tuple[int, int, int]:
    """Parse ``0xSTART-0xEND``; return start, end and the widest digit count."""
    if "-" not in token:
        if token.startswith("0x") and _HEX.match(token[2:]):
            raise FormatError(where, "truncated line: expected 0xSTART-0xEND, got no end address")
        raise FormatError(where, f"expected 0xSTART-0xEND at the start of the line, "
                                 f"got {quote(token)}")
    left, right = token.split("-", 1)
    for part, name in ((left, "start address"), (right, "end address")):
        if not part.startswith("0x"):
            if part == "":
                raise FormatError(where, f"truncated line: no {name}")
            raise FormatError(where, f"{name} {quote(part)} does not begin with 0x")
    start = _hex(left[2:], where, "start address")
    # An area may end at the top of the address space: its end is one past ULONG_MAX.
    end = _hex(right[2:], where, "end address", inclusive=True)
    return start, end, max(_digits(left[2:], start), _digits(right[2:], end))


def _parse_line(raw: str, lineno: int, source: str, unknown: dict[str, list[int]]
                ) -> tuple[VmallocinfoLine, int]:
    where = f"{source}:{lineno}"
    tokens = raw.split()
    start, end, digits = _parse_range(tokens[0], where)
    if len(tokens) < 2:
        raise FormatError(where, "truncated line: no size after the address range")
    if not _DEC.match(tokens[1]):
        raise FormatError(where, f"size is not a decimal number: {quote(tokens[1])}")
    size = _dec(tokens[1], where, "size", 63)  # %7ld of vm->size
    tail = _parse_tail(tokens[2:], where)
    for key in tail[6]:
        unknown.setdefault(key, []).append(lineno)
    line = VmallocinfoLine(start=start, end=end, size=size, caller=tail[0], nr_pages=tail[1],
                           phys=tail[2], kinds=tail[3], numa=dict(tail[4]),
                           unknown_words=tail[5], lineno=lineno)
    return line, digits


# What follows the size column, parsed: caller, pages=, phys=, kinds, numa, unknown words, and
# the keys under which the unknown words are reported (in token order).
_Tail = tuple[str | None, int | None, int | None, tuple[str, ...], dict[int, int],
              tuple[str, ...], tuple[str, ...]]


def _parse_tail(rest: list[str], where: str) -> _Tail:
    """The tokens after the size column; a pure function of the tokens (``where`` only names
    the line in a FormatError), so that equal tails parse once (see :func:`_parse_fast`)."""
    i = 0
    caller: str | None = None
    # The caller comes first when the kernel had one (``if (v->caller)``); "vm_map_ram" and
    # "unpurged vm_area" lines have none.
    if rest and (_SYMBOL_CALLER.match(rest[0]) or _RAW_CALLER.match(rest[0])):
        caller = rest[0]
        i = 1
        if i < len(rest) and _MODULE.match(rest[i]):
            caller = f"{caller} {rest[i]}"
            i += 1

    nr_pages: int | None = None
    phys: int | None = None
    kinds: list[str] = []
    seen: set[str] = set()  # kinds, for membership in constant time on long lines
    unknown_words: list[str] = []
    unknown_keys: list[str] = []
    numa: dict[int, int] = {}
    while i < len(rest):
        tok = rest[i]
        i += 1
        if tok == "unpurged" and i < len(rest) and rest[i] == "vm_area":
            i += 1
            kinds.append(UNPURGED)
            seen.add(UNPURGED)
            continue
        if tok in KNOWN_FLAG_WORDS or tok == VM_MAP_RAM:
            if tok in seen:
                raise FormatError(where, f"flag word {tok!r} printed twice")
            kinds.append(tok)
            seen.add(tok)
            continue
        numa_match = _NUMA.match(tok)
        if numa_match:
            node, count = numa_match.groups()
            if count == "":
                raise FormatError(where, f"truncated line: {quote(tok)} has no page count")
            if not _DEC.match(count):
                raise FormatError(where, f"bad page count in {quote(tok)}")
            nid = _dec(node, where, "node number", 32)
            if nid >= MAX_NUMNODES:
                raise FormatError(where, f"node N{nid} is beyond MAX_NUMNODES ({MAX_NUMNODES})")
            if nid in numa:
                raise FormatError(where, f"node N{nid} printed twice")
            numa[nid] = _dec(count, where, f"the page count of N{nid}", 32)
            continue
        keyval = _KEYVAL.match(tok)
        if keyval:
            key, value = keyval.groups()
            if key in ("pages", "phys"):
                if value == "":
                    raise FormatError(where, f"truncated line: {key}= has no value")
                if (nr_pages if key == "pages" else phys) is not None:
                    raise FormatError(where, f"{key}= printed twice")
                if key == "pages":
                    if not _DEC.match(value):
                        raise FormatError(where, f"pages= is not a decimal number: {quote(value)}")
                    nr_pages = _dec(value, where, "pages=", 32)  # unsigned int nr_pages
                else:
                    # phys=%lx / %llx (no 0x) before %pa (0x, zero-padded) in newer kernels.
                    digits_ = value[2:] if value.startswith("0x") else value
                    phys = _hex(digits_, where, "phys=")
                continue
            unknown_words.append(tok)
            unknown_keys.append(tok.split("=", 1)[0] + "=")
            continue
        if _WORD.match(tok):
            # A flag word this parser does not know: a vendor kernel's (e.g. "lowmem") or a
            # future kernel's.  Kept as a kind, and reported.
            if tok in seen:
                raise FormatError(where, f"flag word {quote(tok)} printed twice")
            kinds.append(tok)
            seen.add(tok)
            unknown_words.append(tok)
            unknown_keys.append(tok)
            continue
        if _SYMBOL_CALLER.match(tok) or _RAW_CALLER.match(tok) or _MODULE.match(tok):
            raise FormatError(where, f"caller {quote(tok)} after the flag words")
        raise FormatError(where, f"unexpected {quote(tok)}")
    # Canonical order, the one render_vmallocinfo prints: vendor flag words, then unknown
    # key=value tokens (so that a re-rendered line parses back to an equal record).
    unknown_words.sort(key=lambda w: w not in seen)
    return (caller, nr_pages, phys, tuple(kinds), numa, tuple(unknown_words),
            tuple(unknown_keys))


# The usual line, whose head needs none of _parse_range's checks: 0x<1-16 hex>-0x<1-16 hex>,
# spaces, a size of at most 18 digits (below 2**63), then the tail.  Anything else (leading
# blanks, tabs, longer numbers, errors) goes through _parse_line.
_FAST_HEAD = re.compile(r"0x([0-9a-fA-F]{1,16})-0x([0-9a-fA-F]{1,16}) +([0-9]{1,18})(?:[ \t]+(.*))?\Z",
                        re.DOTALL)


_TWO32 = 1 << 32


def _parse_lines(numbered: Iterable[tuple[int, str]], source: str,
                 unknown: dict[str, list[int]]) -> tuple[list[VmallocinfoLine], int]:
    """Every non-blank line parsed, and the widest address width; exactly what a loop of
    :func:`_parse_line` gives, with each distinct tail (caller, words, counts) parsed once."""
    lines: list[VmallocinfoLine] = []
    append = lines.append
    digits = 0
    tails: dict[str, _Tail] = {}
    head = _FAST_HEAD.match
    new = VmallocinfoLine.__new__
    for lineno, raw in numbered:
        if "\x00" in raw:
            raise FormatError(f"{source}:{lineno}", "binary data (NUL byte), not vmallocinfo text")
        m = head(raw)
        if m is None:
            if not raw.strip():
                continue
            line, width = _parse_line(raw, lineno, source, unknown)
            append(line)
            if width > digits:
                digits = width
            continue
        left, right, size_text, rest = m.groups()
        start = int(left, 16)
        end = int(right, 16)
        # _digits of each: at most 16 digits here, so only 2**32 is printed wider than it is.
        width = len(left) if start != _TWO32 else 8
        w2 = len(right) if end != _TWO32 else 8
        if w2 > width:
            width = w2
        if width > digits:
            digits = width
        text = rest or ""
        tail = tails.get(text)
        if tail is None:
            tail = _parse_tail(text.split(), f"{source}:{lineno}")
            tails[text] = tail
        for key in tail[6]:
            unknown.setdefault(key, []).append(lineno)
        # VmallocinfoLine(...): the same fields in the same order, without the frozen
        # dataclass's __init__ (one object.__setattr__ call per field).
        line = new(VmallocinfoLine)
        line.__dict__.update(start=start, end=end, size=int(size_text), caller=tail[0],
                             nr_pages=tail[1], phys=tail[2], kinds=tail[3], numa=dict(tail[4]),
                             unknown_words=tail[5], lineno=lineno)
        append(line)
    return lines, digits


def _judge_addresses(lines: Sequence[VmallocinfoLine]) -> tuple[bool, str]:
    """Decide whether the addresses are real; the reason says what was seen."""
    if not lines:
        return True, "no areas"
    if all(ln.start == 0 and ln.end == 0 for ln in lines):
        return False, ("every address printed as 0: %pK hides pointers "
                       "(kptr_restrict=2, or a reader without CAP_SYSLOG)")
    consistent = sum(1 for ln in lines if ln.end - ln.start == ln.size)
    if 2 * consistent < len(lines):
        backwards = sum(1 for ln in lines if ln.end < ln.start)
        return False, (f"addresses hashed by %pK (kptr_restrict): end - start equals the size "
                       f"column on only {consistent} of {len(lines)} lines, {backwards} end "
                       f"below their start")
    return True, f"end - start equals the size column on {consistent} of {len(lines)} lines"


def _check_trusted(lines: Sequence[VmallocinfoLine], source: str) -> None:
    """In a snapshot with real addresses every line must be a range and no two may overlap."""
    for ln in lines:
        if ln.end < ln.start:
            raise FormatError(f"{source}:{ln.lineno}",
                              f"end 0x{ln.end:x} below start 0x{ln.start:x}")
        if ln.end - ln.start != ln.size:
            raise FormatError(f"{source}:{ln.lineno}", f"size {ln.size} does not match "
                                                       f"end - start = {ln.end - ln.start}")
    ordered: Sequence[VmallocinfoLine] = lines
    if any(a.start > b.start or (a.start == b.start and a.end > b.end)
           for a, b in zip(lines, lines[1:])):  # a dump is printed in address order
        ordered = sorted(lines, key=lambda ln: (ln.start, ln.end))
    reach: VmallocinfoLine | None = None
    for ln in ordered:
        if reach is not None and ln.start < reach.end and ln.size > 0:
            first, second = sorted((reach, ln), key=lambda x: x.lineno)
            raise FormatError(
                f"{source}:{second.lineno}",
                f"area 0x{second.start:x}-0x{second.end:x} overlaps line {first.lineno} "
                f"(0x{first.start:x}-0x{first.end:x})")
        if ln.size > 0 and (reach is None or ln.end > reach.end):
            reach = ln


def _numbered(text: str) -> Iterable[tuple[int, str]]:
    """``_text.lines(text)``: with no carriage return, a split on line feeds is the same."""
    if "\r" in text:
        return _lines(text)
    parts = text.split("\n")
    if parts[-1] == "":
        parts.pop()
    return enumerate(parts, 1)


def parse_vmallocinfo(text: str, source: str = "<vmallocinfo>") -> VmallocinfoSnapshot:
    """Parse the text of ``/proc/vmallocinfo``; FormatError(``source:line``, why) if malformed.

    Blank lines are skipped; an empty text is a valid snapshot with no areas.
    """
    if not isinstance(text, str):
        raise FormatError(source, f"expected text, got {type(text).__name__}")
    unknown: dict[str, list[int]] = {}
    lines, digits = _parse_lines(_numbered(text), source, unknown)
    trusted, reason = _judge_addresses(lines)
    if trusted:
        _check_trusted(lines, source)
    # The end is exclusive: 0xfffff000-0x100000000 is a 32-bit area (its last byte 0xffffffff).
    widest = max((max(ln.start, ln.end - 1) for ln in lines), default=0)
    bits = 64 if digits > 8 or widest >= 1 << 32 else 32
    warnings = []
    for n, (word, where) in enumerate(unknown.items()):
        if n == MAX_WORD_WARNINGS:
            more = len(unknown) - n
            warnings.append(f"{source}:{where[0]}: {more} more unknown words and keys kept "
                            f"(not listed)")
            break
        kind = "key" if word.endswith("=") else "flag word"
        count = f"{len(where)} lines" if len(where) > 1 else "1 line"
        warnings.append(f"{source}:{where[0]}: unknown {kind} {quote(word)} kept "
                        f"({count}; a vendor or newer kernel's)")
    if not trusted:
        warnings.append(f"{source}: {reason}; only address-free results are given")
    return VmallocinfoSnapshot(source=source, lines=lines, addresses_trusted=trusted,
                               address_reason=reason, address_bits=bits, warnings=warnings)


def _caller_char(c: str, keep_plus: bool) -> str:
    if c.isprintable() and not c.isspace() and c not in "[]=" and (keep_plus or c != "+"):
        return c
    return "_"


def format_caller(caller: str | None) -> str | None:
    """``caller`` as this module prints it: a text that parses back as the caller, unchanged.

    ``%pS`` prints ``symbol+0xoff/0xsize [module]`` or a raw ``0x...`` address, and a kallsyms
    name never holds blanks, line breaks, control characters, ``+``, ``[``, ``]`` or ``=``.  A
    caller already in one of those forms (every caller read from a snapshot) is printed as it is.
    Any other (a name given to the model, ``caller="a=b"``) is sanitised the way %pS would
    never print it: each such character becomes ``_`` -- and, when the text is still not
    symbol+offset, ``+0x0/0x0`` is appended -- so a caller can never read as a flag word, a
    ``key=value`` token, a second line or a module.  Empty or None: no caller printed.
    """
    if not caller:
        return None
    if caller.isprintable() and _CALLER.fullmatch(caller):
        return caller
    kept = "".join(_caller_char(c, True) for c in caller)
    if _CALLER.fullmatch(kept):
        return kept
    return "".join(_caller_char(c, False) for c in caller) + "+0x0/0x0"


def _render_line(ln: VmallocinfoLine, digits: int, phys_digits: int) -> str:
    parts = [f"0x{ln.start:0{digits}x}-0x{ln.end:0{digits}x} {ln.size:7d}"]
    caller = format_caller(ln.caller)
    if caller is not None:
        parts.append(caller)
    if ln.nr_pages is not None:
        parts.append(f"pages={ln.nr_pages}")
    if ln.phys is not None:
        parts.append(f"phys=0x{ln.phys:0{phys_digits}x}")  # %pa: 0x, zero-padded
    parts.extend(ln.kinds)
    parts.extend(w for w in ln.unknown_words if w not in ln.kinds)
    parts.extend(f"N{node}={count}" for node, count in sorted(ln.numa.items()))
    return " ".join(parts)


def render_vmallocinfo(records: Iterable[VmallocinfoLine], bits: int | None = None,
                       phys_bits: int | None = None) -> str:
    """Render areas in the current kernel's format (``0x%px-0x%px %7ld %pS pages=%d phys=%pa ...``).

    ``bits`` is the pointer width (64: 16 hex digits, 32: 8); by default 64 if any address needs
    it, else 32.  ``phys_bits`` is ``sizeof(phys_addr_t)*8`` and defaults to ``bits``.  Records
    print in the order given; their ``kinds`` print in their own order, so a parsed snapshot
    renders back to the same records.  Callers print through :func:`format_caller`, so whatever
    the caller text, the output parses back (render then parse is the identity on callers
    already in %pS form, which every parsed and every model-printed caller is).
    """
    recs = list(records)
    if bits is None:
        bits = 64 if any(max(r.start, r.end - 1) >= 1 << 32 for r in recs) else 32
    if bits not in (32, 64):
        raise FormatError("render_vmallocinfo", f"bits must be 32 or 64, not {bits}")
    phys_bits = bits if phys_bits is None else phys_bits
    if phys_bits not in (32, 64):
        raise FormatError("render_vmallocinfo", f"phys_bits must be 32 or 64, not {phys_bits}")
    out = []
    for r in recs:
        # The end may be one past the last address (an area ending at the top page).
        if r.start >= 1 << bits or r.end > 1 << bits or min(r.start, r.end, r.size) < 0:
            raise FormatError(f"render_vmallocinfo:{r.lineno}",
                              f"area 0x{r.start:x}-0x{r.end:x} does not fit {bits}-bit addresses")
        if r.phys is not None and not 0 <= r.phys < 1 << phys_bits:
            raise FormatError(f"render_vmallocinfo:{r.lineno}",
                              f"phys 0x{r.phys:x} does not fit {phys_bits} bits")
        out.append(_render_line(r, bits // 4, phys_bits // 4) + "\n")
    return "".join(out)
