"""Parse and render the vmalloc trace events in ftrace's text format (``/sys/kernel/tracing/trace``).

Linux 6.2+ has three tracepoints in ``include/trace/events/vmalloc.h`` (TRACE_SYSTEM ``vmalloc``,
Uladzislau Rezki, 2022); their ``TP_printk`` formats are::

    alloc_vmap_area         va_start: %lu size=%lu align=%lu vstart=0x%lx vend=0x%lx failed=%d
    purge_vmap_area_lazy    start=0x%lx end=0x%lx num_purged=%u
    free_vmap_area_noflush  va_start=0x%lx nr_lazy=%lu nr_lazy_max=%lu

(``alloc_vmap_area`` prints its address in decimal; on failure the address is ``vend`` in 6.2
and an error value such as ``-ENOENT`` once alloc_vmap_area returned explicit errors, 2025.)
The model adds events of its own, which are **not kernel tracepoints**: ``vfree_area``
(``va_start=0x%lx size=%lu``), because 2.6.22 frees an area at once and no kernel traces that
free, so without it a trace of the 2.6.22 model would show allocations and never a free; and
``purge_vmap_node`` (``node=%u nr_purged=%lu``), one per node that a 6.9+ purge handed to a
helper work item, on that worker's CPU, just before the purge's ``purge_vmap_area_lazy``.

Each line starts with ftrace's context (kernel/trace/trace_output.c ``trace_print_context``,
4.19+ widths)::

    <comm %16s>-<pid %-7d> [(<tgid %7d>) ][<cpu %03d>] [<irq-info>] <secs %5lu>.<usecs %06lu>: <event>: <text>

The ``(tgid)`` column appears with the ``record-tgid`` option, the irq-info flags (``.....``,
four characters before 5.13) unless ``irq-info`` is off, and a raw ``%12llu`` counter replaces
``secs.usecs`` with a clock that is not in nanoseconds.  ``trace-cmd report`` lines have the
same shape.  Comment lines (``#``), blank lines, ``CPU:N [LOST M EVENTS]`` and other events are
skipped and counted; a line of one of the events above that does not have its exact format
raises :class:`pyvmalloc.errors.FormatError` naming ``FILE:LINE``.

This module is a pure text format: it imports nothing from the model layers, so the kernel
layer renders ``Machine.trace()`` with it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.formats._text import gc_paused
from pyvmalloc.formats._text import lines as _lines
from pyvmalloc.formats._text import number, quote

__all__ = [
    "EVENT_FORMATS",
    "KERNEL_EVENTS",
    "MODEL_EVENTS",
    "TraceEvent",
    "TraceEvents",
    "parse_trace",
    "render",
    "render_header",
    "render_line",
]

# event -> (TP_printk format, TP_STRUCT__entry field names in the order the format prints them)
EVENT_FORMATS: dict[str, tuple[str, tuple[str, ...]]] = {
    "alloc_vmap_area": ("va_start: %lu size=%lu align=%lu vstart=0x%lx vend=0x%lx failed=%d",
                        ("addr", "size", "align", "vstart", "vend", "failed")),
    "purge_vmap_area_lazy": ("start=0x%lx end=0x%lx num_purged=%u", ("start", "end", "npurged")),
    "free_vmap_area_noflush": ("va_start=0x%lx nr_lazy=%lu nr_lazy_max=%lu",
                               ("va_start", "nr_lazy", "nr_lazy_max")),
    # The model's own event, not a kernel tracepoint (see the module docstring); size includes
    # the guard page, as vm_struct.size and alloc_vmap_area's size do.
    "vfree_area": ("va_start=0x%lx size=%lu", ("va_start", "size")),
    # The model's own too: one node's purge that a 6.9+ purge_vmap_node helper work item ran,
    # on its worker's CPU (mm/vmalloc.c has no tracepoint there).
    "purge_vmap_node": ("node=%u nr_purged=%lu", ("node", "nr_purged")),
}
KERNEL_EVENTS = ("alloc_vmap_area", "purge_vmap_area_lazy", "free_vmap_area_noflush")
MODEL_EVENTS = ("vfree_area", "purge_vmap_node")

# printf conversions: (regex of the digits, base, smallest, largest).  %lu/%lx are unsigned
# long (64 bits at most), %u unsigned int, %d int.
_CONVERSIONS: dict[str, tuple[str, int, int, int]] = {
    "%lu": (r"([0-9]+)", 10, 0, (1 << 64) - 1),
    "%lx": (r"([0-9a-f]+)", 16, 0, (1 << 64) - 1),
    "%u": (r"([0-9]+)", 10, 0, (1 << 32) - 1),
    "%d": (r"(-?[0-9]+)", 10, -(1 << 31), (1 << 31) - 1),
}


def _compile(fmt: str) -> tuple[re.Pattern[str], list[str], list[str]]:
    """The regex of a TP_printk format, its conversions, and its literal pieces."""
    pieces = re.split(r"(%lu|%lx|%u|%d)", fmt)
    literals, convs = pieces[0::2], pieces[1::2]
    pattern = re.escape(literals[0]) + "".join(
        _CONVERSIONS[c][0] + re.escape(lit) for c, lit in zip(convs, literals[1:]))
    return re.compile(pattern), convs, literals


_COMPILED = {name: _compile(fmt) for name, (fmt, _names) in EVENT_FORMATS.items()}

# trace_print_context: comm, pid, optional (tgid), [cpu], optional irq-info, time, then the event.
# Matched in two steps so that the time is linear in the line's length (one regex with a lazy
# comm and a lazy body backtracks quadratically: a 100 KB line took a minute).  _CONTEXT finds,
# left to right, "-<pid> [(<tgid>) ][<cpu>] " (the comm is what precedes it, and may hold '-');
# _TAIL reads what follows it up to "<event>:"; the body is the rest of the line, stripped.
# Possessive quantifiers (Python 3.11+) keep each step from backtracking into a token.
_CONTEXT = re.compile(r"-(?P<pid>[0-9]++)\s++(?:\((?P<tgid>\s*+[0-9]++|-++)\)\s++)?"
                      r"\[(?P<cpu>[0-9]++)\]\s++")
_TAIL = re.compile(r"(?:(?P<flags>[^\s\[\]0-9][^\s\[\]]*+)\s++)?"
                   r"(?:(?P<secs>[0-9]++)\.(?P<usecs>[0-9]{6})|(?P<raw>[0-9]++)):\s++"
                   r"(?P<event>[A-Za-z_][A-Za-z0-9_]*+):")
# The fast path: one strict regex for a well-formed line of one of our events (printable ASCII,
# blanks and tabs, no brackets in the comm, numbers of bounded length).  A line it accepts reads
# exactly as _match_line + _event read it (tests/test_trace.py compares the two); any other line,
# well-formed or not, takes the general path, which also words the errors.
_FAST = re.compile(
    r"[ \t]*+(?P<comm>[!$-Z\\^-~][ -Z\\^-~]*)?-(?P<pid>[0-9]{1,9})[ \t]++"
    r"(?:\((?P<tgid>[ \t]*+[0-9]{1,9}|-++)\)[ \t]++)?\[(?P<cpu>[0-9]{1,9})\][ \t]++"
    r"(?:(?P<flags>[!-/:-Z\\^-~][!-Z\\^-~]*+)[ \t]++)?"
    r"(?:(?P<secs>[0-9]{1,19})\.(?P<usecs>[0-9]{6})|(?P<raw>[0-9]{1,19})):[ \t]++"
    r"(?P<event>" + "|".join(EVENT_FORMATS) + r"):(?:[ \t]++(?P<body>[!-~](?:[ -~]*[!-~])?))?[ \t]*+")
_FAST_BODY = {
    name: re.compile(re.escape(fmt.split("%")[0]) + "".join(
        {"%lu": r"([0-9]{1,20})", "%lx": r"([0-9a-f]{1,16})", "%u": r"([0-9]{1,10})",
         "%d": r"(-?[0-9]{1,10})"}[conv] + re.escape(lit)
        for conv, lit in zip(_COMPILED[name][1], _COMPILED[name][2][1:])))
    for name, (fmt, _names) in EVENT_FORMATS.items()}
# event -> (field names, body regex, (base, smallest, largest) of each conversion)
_FAST_SPEC = {
    name: (names, _FAST_BODY[name], tuple(_CONVERSIONS[c][1:] for c in _COMPILED[name][1]))
    for name, (_fmt, names) in EVENT_FORMATS.items()}
_LOST = re.compile(r"\s*CPU:\s*[0-9]+ \[LOST ([0-9]+) EVENTS\]\s*\Z")
_OURS = re.compile(r"\b(" + "|".join(EVENT_FORMATS) + r"):")


@dataclass(frozen=True)
class TraceEvent:
    """One line of a trace: ftrace's context and one event's fields (by TP_STRUCT name).

    ``timestamp`` is in microseconds (``secs.usecs``), or the raw clock value when
    ``raw_clock``; ``flags`` is the irq-info column (None when absent); ``tgid`` is None without
    the record-tgid column (0 prints as ``(-------)``).  ``line`` is where the event was read
    (0 for events made in memory) and takes no part in comparisons.
    """

    event: str
    fields: tuple[tuple[str, int], ...]
    comm: str = "<...>"
    pid: int = 0
    cpu: int = 0
    timestamp: int = 0
    flags: str | None = "....."
    tgid: int | None = None
    raw_clock: bool = False
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if self.event not in EVENT_FORMATS:
            raise ConfigError(f"unknown trace event {self.event!r}: one of {', '.join(EVENT_FORMATS)}")
        names = EVENT_FORMATS[self.event][1]
        if tuple(n for n, _v in self.fields) != names:
            raise ConfigError(f"{self.event} has the fields {', '.join(names)}, in that order")
        for (name, value), conv in zip(self.fields, _COMPILED[self.event][1]):
            _, _, low, high = _CONVERSIONS[conv]
            if type(value) is not int or not low <= value <= high:
                raise ConfigError(f"{self.event}: {name}={value!r} does not fit {conv}")
        if (not self.comm or self.comm != self.comm.strip() or not self.comm.isprintable()
                or self.comm.startswith("#")):
            raise ConfigError(f"comm {quote(self.comm)}: printable, not empty, no spaces at its ends, "
                              "no '#' first")
        for name in ("pid", "cpu", "timestamp"):
            if type(getattr(self, name)) is not int or getattr(self, name) < 0:
                raise ConfigError(f"{name} must be an int >= 0, not {getattr(self, name)!r}")
        if self.tgid is not None and (type(self.tgid) is not int or self.tgid < 0):
            raise ConfigError(f"tgid must be None or an int >= 0, not {self.tgid!r}")
        if self.flags is not None and not re.fullmatch(r"[^\s\[\]0-9][^\s\[\]]*", self.flags):
            raise ConfigError(f"irq-info flags {quote(self.flags)}: no spaces or brackets, not a number")

    @classmethod
    def new(cls, event: str, values: Mapping[str, int], **context: object) -> TraceEvent:
        """An event from its field values by name; ``context`` sets comm, pid, cpu, ..."""
        names = EVENT_FORMATS[event][1] if event in EVENT_FORMATS else ()
        if set(values) != set(names):
            raise ConfigError(f"{event} takes the fields {', '.join(names) or '(unknown event)'}, "
                              f"not {', '.join(sorted(values))}")
        return cls(event, tuple((n, values[n]) for n in names), **context)  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> int:
        for n, v in self.fields:
            if n == name:
                return v
        raise KeyError(f"{self.event} has no field {name!r}")

    @property
    def values(self) -> dict[str, int]:
        """The fields as a dict."""
        return dict(self.fields)

    @property
    def is_kernel_event(self) -> bool:
        """Whether a kernel has this tracepoint (False for the model's ``vfree_area``)."""
        return self.event in KERNEL_EVENTS

    def text(self) -> str:
        """The event's TP_printk text (what follows ``<event>: ``)."""
        _, convs, literals = _COMPILED[self.event]
        out = [literals[0]]
        for (_n, value), conv, lit in zip(self.fields, convs, literals[1:]):
            out.append(f"{value:x}" if conv == "%lx" else str(value))
            out.append(lit)
        return "".join(out)


class TraceEvents(list[TraceEvent]):
    """The vmalloc events of a trace, in file order, with what was skipped around them."""

    def __init__(self, events: Iterable[TraceEvent] = (), source: str = "<trace>") -> None:
        super().__init__(events)
        self.source = source
        self.comments = 0  # "#" header lines and blank lines
        self.other_events: Counter[str] = Counter()  # events of other tracepoints, by name
        self.unparsed = 0  # lines that are no ftrace event line at all
        self.lost = 0  # events the ring buffer overwrote ("CPU:N [LOST M EVENTS]")

    @property
    def skipped(self) -> int:
        """How many lines were not vmalloc events."""
        return self.comments + sum(self.other_events.values()) + self.unparsed


def render_line(ev: TraceEvent) -> str:
    """One line as ftrace prints it (trace_print_context, then ``<event>: <text>``)."""
    tgid = "" if ev.tgid is None else ("(-------) " if ev.tgid == 0 else f"({ev.tgid:7d}) ")
    if ev.raw_clock:
        when = f"{ev.timestamp:12d}"
    else:
        when = f"{ev.timestamp // 1_000_000:5d}.{ev.timestamp % 1_000_000:06d}"
    return (f"{ev.comm:>16}-{ev.pid:<7d} {tgid}[{ev.cpu:03d}] {ev.flags or ''} {when}: "
            f"{ev.event}: {ev.text()}")


def render_header(entries: int, written: int, nr_cpus: int) -> list[str]:
    """The comment lines ftrace prints above the events (6.x, irq-info on, nop tracer)."""
    return [
        "# tracer: nop",
        "#",
        f"# entries-in-buffer/entries-written: {entries}/{written}   #P:{nr_cpus}",
        "#",
        "#                                _-----=> irqs-off/BH-disabled",
        "#                               / _----=> need-resched",
        "#                              | / _---=> hardirq/softirq",
        "#                              || / _--=> preempt-depth",
        "#                              ||| / _-=> migrate-disable",
        "#                              |||| /     delay",
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION",
        "#              | |         |   |||||     |         |",
    ]


def render(events: Iterable[TraceEvent], header: bool = False, nr_cpus: int = 1) -> str:
    """The text of ``events``, one line each (with ftrace's header when asked)."""
    evs = list(events)
    lines = render_header(len(evs), len(evs), nr_cpus) if header else []
    lines += [render_line(ev) for ev in evs]
    return "".join(line + "\n" for line in lines)


def _match_line(line: str) -> dict[str, str | None] | None:
    """The columns of an ftrace event line (``comm``, ``pid``, ... ``event``, ``body``), or None.

    The first ``-<pid> [<cpu>]`` from the left after which the rest of the context follows
    wins, as the lazy comm of one whole-line regex would; each try reads a few tokens."""
    for ctx in _CONTEXT.finditer(line):
        tail = _TAIL.match(line, ctx.end())
        if tail is None:
            continue
        rest = line[tail.end():]
        if rest and not rest[0].isspace():
            continue  # "<event>:" must be followed by blanks or the end of the line
        cols: dict[str, str | None] = {"comm": line[:ctx.start()].lstrip()}
        cols.update(ctx.groupdict())
        cols.update(tail.groupdict())
        cols["body"] = rest.strip() or None
        return cols
    return None


def _int(digits: str, base: int, where: str, what: str, bits: int = 128) -> int:
    """``digits`` as an int; FormatError "number too long" long before Python's 4,300-digit
    limit.  Event fields are read up to 128 bits so that their range check (``%u``, ``%lx``)
    says which conversion a value does not fit."""
    return number(digits, base, where, what, bits)


def _body(event: str, body: str, where: str) -> tuple[tuple[str, int], ...]:
    regex, convs, _ = _COMPILED[event]
    fmt, names = EVENT_FORMATS[event]
    m = regex.fullmatch(body)
    if m is None:
        raise FormatError(where, f"{event}: expected {fmt!r}, got {quote(body)}")
    out = []
    for name, conv, digits in zip(names, convs, m.groups()):
        _, base, low, high = _CONVERSIONS[conv]
        negative = digits.startswith("-")
        value = _int(digits[negative:], base, where, f"{event}: {name}=")
        value = -value if negative else value
        if not low <= value <= high:
            shown = f"0x{digits}" if conv == "%lx" else digits  # at most 39 digits here
            raise FormatError(where, f"{event}: {name}={shown} does not fit {conv}")
        out.append((name, value))
    return tuple(out)


def _fast_event(line: str, lineno: int) -> TraceEvent | None:
    """The event of a well-formed line through the strict regexes, or None (take the general path)."""
    m = _FAST.fullmatch(line)
    if m is None:
        return None
    comm, pid, tgid, cpu, flags, secs, usecs, raw, event, body = m.groups()
    if comm is not None and comm[-1] in " \t":
        return None  # blanks at the end of the comm: the general path refuses it
    names, regex, convs = _FAST_SPEC[event]
    b = regex.fullmatch(body or "")
    if b is None:
        return None
    fields = []
    for name, (base, low, high), digits in zip(names, convs, b.groups()):
        value = int(digits, base)
        if not low <= value <= high:
            return None
        fields.append((name, value))
    ev = object.__new__(TraceEvent)
    # Every value has been checked by the regexes and the range test above: set the fields
    # without __post_init__'s checks, which cost more than the parsing.
    ev.__dict__.update(
        event=event, fields=tuple(fields), comm=comm or "<...>", pid=int(pid), cpu=int(cpu),
        timestamp=int(raw) if raw is not None else int(secs) * 1_000_000 + int(usecs),
        flags=flags, tgid=None if tgid is None else (0 if tgid.startswith("-") else int(tgid)),
        raw_clock=raw is not None, line=lineno)
    return ev


def parse_trace(text: str, source: str = "<trace>") -> TraceEvents:
    """The vmalloc events of an ftrace text capture; FormatError(``source:line``) on a malformed one."""
    out = TraceEvents(source=source)
    if not isinstance(text, str):
        raise FormatError(source, f"expected text, got {type(text).__name__}")
    with gc_paused():
        _parse_into(out, text, source)
    return out


def _parse_into(out: TraceEvents, text: str, source: str) -> None:
    """parse_trace's loop: the events of ``text`` appended to ``out``."""
    append = out.append
    for lineno, line in _lines(text):
        if line[:1] != "#":
            ev = _fast_event(line, lineno)
            if ev is not None:
                append(ev)
                continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            out.comments += 1
            continue
        lost = _LOST.match(line)
        if lost:
            out.lost += _int(lost.group(1), 10, f"{source}:{lineno}", "the lost events", 64)
            continue
        where = f"{source}:{lineno}"
        m = _match_line(line)
        if m is None:
            ours = _OURS.search(line)
            if ours:
                raise FormatError(where, f"{ours.group(1)}: not an ftrace line "
                                  "('<task>-<pid> [<cpu>] <flags> <secs>.<usecs>: <event>: ...')")
            out.unparsed += 1
            continue
        event = str(m["event"])
        if event not in EVENT_FORMATS:
            out.other_events[event] += 1
            continue
        out.append(_event(m, event, where, lineno))


def _event(m: dict[str, str | None], event: str, where: str, lineno: int) -> TraceEvent:
    def num(key: str) -> int:  # pid_t, tgid, cpu: int; secs, usecs, raw clock: u64
        return _int(str(m[key]).strip(), 10, where, key, 32 if key in ("pid", "tgid", "cpu") else 64)

    tgid = m["tgid"]
    raw = m["raw"]
    usecs = num("raw") if raw is not None else num("secs") * 1_000_000 + num("usecs")
    try:
        return TraceEvent(
            event=event,
            fields=_body(event, m["body"] or "", where),
            comm=m["comm"] or "<...>",
            pid=num("pid"),
            cpu=num("cpu"),
            timestamp=usecs,
            flags=m["flags"],
            tgid=None if tgid is None else (0 if tgid.startswith("-") else num("tgid")),
            raw_clock=raw is not None,
            line=lineno,
        )
    except ConfigError as exc:  # a context column the kernel cannot print (a comm with '#' first...)
        raise FormatError(where, str(exc)) from None
