"""Kernel log text as people paste it, read for vmalloc failures and the facts around them.

A pasted ``dmesg`` (with or without ``[ 12.345678]`` timestamps), ``journalctl -k`` or syslog
lines (``Jun  6 16:14:57 host kernel: ...``, OpenWrt's ``logread``), a forum post with shell
prompts and prose around the lines, a bug report: :func:`parse_kernel_log` finds each line of a
vmalloc failure of every era (:data:`MESSAGES`), the call trace after it, and the lines that say
what machine it was (``Linux version``, ``CPU: ... Not tainted 4.14.107``, ``Hardware name``,
``Kernel command line``, ``N pages RAM``, ``Memory: .../...K available``, ``MemTotal``).

Pure text, as the rest of this package: which range a failure was for and what to do is
``analysis/explain.py``'s business.  A text with no failure in it is not an error here (the
caller decides); a text that is not text (NUL bytes) is refused by the reader that decoded it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyvmalloc.formats._text import lines

__all__ = ["MESSAGES", "LogFailure", "KernelLogFacts", "parse_kernel_log", "strip_prefix"]

# The failure messages, each with the kernel source that prints it and what its number counts.
# ``vmap``: alloc_vmap_area() (mm/vmalloc.c, 2.6.28-6.10), N = PAGE_ALIGN(size) + guard page.
# ``restricted``: alloc_vmap_area() from 6.11 (vmap_range_restricted_message), N as ``vmap``.
# ``old``: __get_vm_area_node() of 2.6.22-2.6.27, no size printed.
# ``alloc``: warn_alloc_failed() "vmalloc: allocation failure: M bytes" (2.6.38-4.9) and
#   warn_alloc()'s "comm: vmalloc: allocation failure: M bytes, mode:..." (4.10-5.12): M is the
#   size the caller asked (real_size), no guard page.
# ``vm_struct``: 5.13+'s "vmalloc error: size M, vm_struct allocation failed" (address space).
# ``pages``: 5.13+'s "vmalloc error: size M, failed to allocate pages" / "failed to map pages"
#   (page allocation failed: the address space was there).
# ``execmem``: "execmem: unable to allocate memory" (mm/execmem.c, 6.10+) and arm64's
#   "module_alloc: unable to allocate memory" (6.5-6.9).
# ``ioremap``: a driver's failed ioremap (drivers/pci/ecam.c "ECAM ioremap failed", or any line
#   that says ioremap failed).
MESSAGES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("restricted", re.compile(r"vmalloc_node_range for size (\d+) failed: Address range "
                              r"restricted to (0x[0-9a-fA-F]+) - (0x[0-9a-fA-F]+)")),
    ("vmap", re.compile(r"vmap allocation for size (\d+) failed")),
    ("old", re.compile(r"allocation failed: out of vmalloc space")),
    ("vm_struct", re.compile(r"vmalloc error: size (\d+), vm_struct allocation failed")),
    ("pages", re.compile(r"vmalloc error: size (\d+), failed to (?:allocate|map) pages")),
    ("alloc", re.compile(r"vmalloc: allocation failure: (\d+) bytes")),
    ("execmem", re.compile(r"(?:execmem|module_alloc): unable to allocate memory")),
    ("ioremap", re.compile(r"\bioremap(?:_\w+)? failed|failed to ioremap|\bioremap\b.*\bfailed\b",
                           re.IGNORECASE)),
)

# The kinds that start an event; ``alloc``/``vm_struct``/``pages`` lines right after a ``vmap``
# or ``restricted`` line belong to it (the same request, seen by __vmalloc_node_range).
_FOLLOWERS = {"alloc", "vm_struct", "pages"}
_JOIN_WINDOW = 4      # lines: warn_alloc follows alloc_vmap_area's line at once

# Line prefixes: syslog/journalctl "Mon DD HH:MM:SS host kernel: ", logread's
# "Sun Jun  6 16:14:57 2021 kern.warn kernel: ", printk levels "<4>", timestamps "[ 1.23]",
# and the caller id "[T123]"/"[C1]" of CONFIG_PRINTK_CALLER.
_PREFIXES = (
    re.compile(r"^(?:\w{3}\s+)?\w{3}\s+\d{1,2}\s+\d\d:\d\d:\d\d(?:\s+\d{4})?\s+"
               r"(?:[\w.-]+\s+)?(?:kern\.\w+\s+)?kernel:\s?"),
    re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:?\d\d|Z)?\s+[\w.-]+\s+kernel:\s?"),
    re.compile(r"^<\d>"),
    re.compile(r"^(?:kern|user|daemon|syslog)\s*:\s*(?:emerg|alert|crit|err|warn|notice|info|"
               r"debug)\s*:\s"),                                           # dmesg -x
    re.compile(r"^\s*\[\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}\]\s?"),    # dmesg -T
    re.compile(r"^\s*\[\s*\d+\.\d+\]\s?"),
    re.compile(r"^\s*\[\s*[TC]\d+\]\s?"),
)

# Function names in call traces: x86/arm64 "func+0x1a/0x40", ARM "(func) from [<...>]".
_FRAME = re.compile(r"(?:^|[\s(>\]])([A-Za-z_][\w.]*)\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+|"
                    r"\(([A-Za-z_][\w.]*)\) from \[<|"
                    # ARM's unwinder from 5.18 on, without addresses: "f from g+0x10/0x14"
                    r"(?:^|\s)([A-Za-z_][\w.]*) from [A-Za-z_][\w.]*\+0x")
_TRACE_ADDR = re.compile(r"\[<([0-9a-fA-F]{8,16})>\]")
_VERSION = re.compile(r"Linux version (\S+)")
_TAINT = re.compile(r"\bComm: \S+ (?:Not tainted|Tainted: [A-Z ]+?)\s+(\d+\.\d+\S*)")
_UNAME = re.compile(r"^Linux \S+ (\d+\.\d+\S*) #.*? (armv\d\w*|aarch64|i[3-6]86|x86_64|mips\w*|"
                    r"ppc\w*)\b")
_HARDWARE = re.compile(r"Hardware name: (.*\S)")
_CMDLINE = re.compile(r"Kernel command line: (.*\S)")
_PAGES_RAM = re.compile(r"^(\d+) pages RAM\b")
_HIGHMEM_PAGES = re.compile(r"^(\d+) pages HighMem")
_MEMORY = re.compile(r"^Memory: \d+K/(\d+)K available")
_MEMTOTAL = re.compile(r"^MemTotal:\s+(\d+) kB")
_COMM = re.compile(r"^(\S+): (?:vmalloc|page allocation failure|vmalloc error)")
_SUPPRESSED = re.compile(r"(\d+) callbacks suppressed")
_PROMPT = re.compile(r"^(?:\S+@\S+[:~][^#$]*[#$]|[#$])\s")


def strip_prefix(line: str) -> str:
    """``line`` without the syslog/journal/printk prefixes in front of the kernel's text."""
    text = line
    for _ in range(3):
        before = text
        for rx in _PREFIXES:
            text = rx.sub("", text, count=1)
        if text == before:
            break
    return text


@dataclass
class LogFailure:
    """One failed request: the line(s) that say so, its size, the call trace after it.

    ``kind`` is the first message's kind (:data:`MESSAGES`); ``size`` the number it printed
    (``vmap``/``restricted``: the reserved size, page-rounded with the guard page;
    ``alloc``/``vm_struct``/``pages``: the size asked); ``asked`` the size asked when a follow-up
    line gives it; ``range`` the ``A - B`` of a 6.11+ message; ``trace`` the function names of
    the call trace that follows, innermost first; ``count`` how many identical lines in a row
    this one stands for.  :func:`parse_kernel_log` fills them in as it reads on.
    """

    lineno: int
    text: str
    kind: str
    size: int | None
    asked: int | None = None
    range: tuple[int, int] | None = None
    trace: tuple[str, ...] = ()
    trace_bits: int | None = None
    comm: str | None = None
    count: int = 1
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class KernelLogFacts:
    """What a kernel log says: its failures and the machine around them (None: not said)."""

    source: str
    failures: tuple[LogFailure, ...]
    version: str | None = None
    version_where: str | None = None
    hardware: str | None = None
    machine: str | None = None           # `uname -m` word of a pasted `uname -a` (armv7l, i686)
    cmdline: str | None = None
    ram: int | None = None
    ram_how: str | None = None
    highmem_pages: int | None = None
    trace_bits: int | None = None        # 32 or 64: the width of the trace's addresses
    suppressed: int = 0
    lines_read: int = 0
    evidence: tuple[str, ...] = field(default_factory=tuple)


def _frames(text: str) -> list[str]:
    out = []
    for m in _FRAME.finditer(text):
        name = m.group(1) or m.group(2) or m.group(3)
        if name and name not in out:
            out.append(name)
    return out


def _match(text: str) -> tuple[str, re.Match[str]] | None:
    for kind, rx in MESSAGES:
        m = rx.search(text)
        if m is not None:
            return kind, m
    return None


def _size(m: re.Match[str]) -> int | None:
    return int(m.group(1)) if m.groups() and m.group(1) and len(m.group(1)) <= 20 else None


def parse_kernel_log(text: str, source: str = "<log>") -> KernelLogFacts:
    """The failures and machine facts of a kernel log (any of the shapes the module docstring
    lists).  Identical failure lines in a row are one failure with ``count``; a call trace through
    ``__vmalloc_node_range`` with no message before it (the message scrolled off, or the paste
    began after it) is a failure of unknown size."""
    events: list[LogFailure] = []
    last: list[int] = []          # the last line that belongs to each event
    facts: dict[str, str] = {}
    ram: int | None = None
    highmem: int | None = None
    evidence: list[str] = []
    suppressed = 0
    bits: int | None = None
    n = 0
    for lineno, raw in lines(text):
        n = lineno
        line = strip_prefix(raw.rstrip())
        body = line.strip()
        if not body or (_PROMPT.match(body) and "Linux" not in body):
            continue
        hit = _match(body)
        cur = events[-1] if events else None
        cur_last = last[-1] if last else 0
        if hit is not None:
            kind, m = hit
            size = _size(m) if kind not in ("old", "execmem", "ioremap") else None
            if (cur is not None and kind in _FOLLOWERS and cur.kind in ("vmap", "restricted")
                    and lineno - cur_last <= _JOIN_WINDOW and cur.asked is None):
                cur.asked, last[-1] = size, lineno
                cur.kinds += (kind,)
                c = _COMM.match(body)
                cur.comm = cur.comm or (c.group(1) if c else None)
            elif (cur is not None and kind == cur.kind and size == cur.size and body == cur.text
                  and not cur.trace):
                cur.count += 1
                last[-1] = lineno
            else:
                rng = None
                if kind == "restricted":
                    rng = (int(m.group(2), 16), int(m.group(3), 16))
                    if rng[1] <= rng[0]:
                        # The kernel prints vstart - vend; a range that ends before it starts
                        # was edited or garbled and tells nothing.
                        rng = None
                c = _COMM.match(body)
                events.append(LogFailure(lineno, body, kind, size, range=rng,
                                         comm=c.group(1) if c else None, kinds=(kind,)))
                last.append(lineno)
            continue
        s = _SUPPRESSED.search(body)
        if s:
            suppressed += int(s.group(1))
        frames = _frames(body)
        addr = _TRACE_ADDR.search(body)
        if addr:
            width = 64 if len(addr.group(1)) > 8 else 32
            bits = bits or width
        if frames:
            if cur is None or (lineno - cur_last > 80):
                if "__vmalloc_node_range" in frames or "__get_vm_area_node" in frames:
                    # A trace through the vmalloc core with its message missing.
                    cur = LogFailure(lineno, body, "trace", None, kinds=("trace",))
                    events.append(cur)
                    last.append(lineno)
                else:
                    cur = None
            if cur is not None:
                cur.trace += tuple(f for f in frames if f not in cur.trace)
                last[-1] = lineno
                if addr:
                    cur.trace_bits = cur.trace_bits or (64 if len(addr.group(1)) > 8 else 32)
        elif addr and cur is not None and lineno - cur_last <= 80:
            last[-1] = lineno          # an old ARM "Function entered at [<...>]" frame
            cur.trace_bits = cur.trace_bits or (64 if len(addr.group(1)) > 8 else 32)
        for key, rx in (("version", _VERSION), ("version", _TAINT), ("hardware", _HARDWARE),
                        ("cmdline", _CMDLINE)):
            mm = rx.search(body)
            if mm and key not in facts:
                facts[key] = mm.group(1)
                if key == "version":
                    facts["version_where"] = f"{source}:{lineno}"
                evidence.append(f"{source}:{lineno}: {body[:100]}")
        u = _UNAME.match(body)
        if u:
            facts.setdefault("version", u.group(1))
            facts.setdefault("version_where", f"{source}:{lineno}")
            facts.setdefault("machine", u.group(2))
            evidence.append(f"{source}:{lineno}: {body[:100]}")
        for rx, mult, how in ((_PAGES_RAM, 4096, "pages RAM (4 KiB pages)"),
                              (_MEMORY, 1024, "Memory: line"), (_MEMTOTAL, 1024, "MemTotal")):
            mm = rx.match(body)
            if mm and ram is None and len(mm.group(1)) <= 15:
                ram = int(mm.group(1)) * mult
                facts["ram_how"] = f"{source}:{lineno}: {how}"
                evidence.append(f"{source}:{lineno}: {body[:100]}")
        h = _HIGHMEM_PAGES.match(body)
        if h and len(h.group(1)) <= 15:
            highmem = int(h.group(1))
            evidence.append(f"{source}:{lineno}: {body[:100]}")
    return KernelLogFacts(
        source=source, failures=tuple(events),
        version=facts.get("version"), version_where=facts.get("version_where"),
        hardware=facts.get("hardware"), machine=facts.get("machine"),
        cmdline=facts.get("cmdline"), ram=ram, ram_how=facts.get("ram_how"),
        highmem_pages=highmem, trace_bits=bits, suppressed=suppressed, lines_read=n, evidence=tuple(evidence))
