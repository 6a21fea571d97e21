"""One reading of ``/proc/vmallocinfo`` (and ``/proc/meminfo``) reduced to what a series keeps.

A :class:`Sample` holds, for one moment, the totals by kind and by caller (function plus
``[module]``, offsets dropped, as :func:`pyvmalloc.analysis.summary.summarize` groups them), the
unpurged bytes, the largest hole and fragmentation of the vmalloc range (only where the
addresses are real), meminfo's VmallocTotal/VmallocUsed, and the multiset of area identities.

Identities are ``(start, end, size, caller as printed, caller group)``.  Addresses hashed by
``%pK`` are hashed with a key chosen once per boot (``ptr_to_id``: siphash), so within one boot
the same area prints the same hashed pair in every dump and identities still tell which areas
appeared and which went away; only across a reboot do they all change.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyvmalloc.analysis.summary import summarize
from pyvmalloc.errors import FormatError
from pyvmalloc.formats._text import count_lines
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.vmallocinfo import VmallocinfoLine, VmallocinfoSnapshot, parse_vmallocinfo

__all__ = ["AreaKey", "Sample", "Total", "ZERO_TOTAL", "area_key", "caller_group", "meminfo_beside", "read_sample", "read_text_file",
           "sample_from_snapshot", "totals_by_caller", "sample_from_text"]

# (start, end, size, caller as printed, caller group): the group is how callers are totalled.
AreaKey = tuple[int, int, int, str, str]


@dataclass(frozen=True)
class Total:
    """Areas and bytes (size column, guard pages included)."""

    areas: int
    bytes: int


@dataclass
class Sample:
    """What one dump says, at time ``t`` (seconds since the epoch).

    ``largest_hole``, ``free_bytes`` and ``fragmentation`` (of the vmalloc range) and
    ``module_largest_hole`` (of the module area, where the arch has one of its own: where BPF JIT
    images go on x86_64) are None when the addresses are hashed (or the range has no free
    space, for ``fragmentation``); ``vmalloc_total``/``vmalloc_used``
    (bytes) are None without a meminfo.  ``keys`` is empty for a sample read back from a store.
    """

    t: float
    source: str
    areas: int
    bytes: int
    kinds: dict[str, Total]
    callers: dict[str, Total]
    unpurged_bytes: int
    addresses_trusted: bool
    largest_hole: int | None = None
    free_bytes: int | None = None
    fragmentation: float | None = None
    module_largest_hole: int | None = None
    vmalloc_total: int | None = None
    vmalloc_used: int | None = None
    keys: Counter[AreaKey] = field(default_factory=Counter, repr=False)


ZERO_TOTAL = Total(0, 0)


def caller_group(line: VmallocinfoLine) -> str:
    """The name a caller's areas are totalled under: the function with its ``[module]``, no
    offset (``load_module``, ``osal_malloc [pvrsrvkm]``), or ``(no caller: KIND)`` -- the
    names :func:`pyvmalloc.analysis.summary.summarize` ranks."""
    if line.caller is None:
        return f"(no caller: {line.primary_kind})"
    return f"{line.function} [{line.module}]" if line.module else str(line.function)


def area_key(line: VmallocinfoLine) -> AreaKey:
    """The identity of an area across dumps of one boot (hashed addresses included)."""
    return line.start, line.end, line.size, line.caller or "", caller_group(line)


def totals_by_caller(keys: Counter[AreaKey]) -> dict[str, Total]:
    """Areas and bytes per caller group, largest first."""
    acc: dict[str, list[int]] = {}
    for key, n in keys.items():
        entry = acc.setdefault(key[4], [0, 0])
        entry[0] += n
        entry[1] += n * key[2]
    ranked = sorted(acc.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    return {name: Total(a, b) for name, (a, b) in ranked}


def sample_from_snapshot(snapshot: VmallocinfoSnapshot, t: float,
                         meminfo: Mapping[str, int] | None = None) -> Sample:
    """Reduce a parsed dump (and its meminfo fields, in kB) to a :class:`Sample` at ``t``."""
    s = summarize(snapshot, meminfo=meminfo, top=0)
    keys = Counter(area_key(ln) for ln in snapshot.lines)
    callers = totals_by_caller(keys)
    kinds = {k: Total(v.count, v.bytes) for k, v in s.by_kind.items()}
    mi = meminfo or {}
    return Sample(
        t=t, source=snapshot.source, areas=s.areas, bytes=s.bytes, kinds=kinds, callers=callers,
        unpurged_bytes=s.unpurged.bytes, addresses_trusted=s.addresses_trusted,
        largest_hole=s.hole_stats.largest if s.hole_stats else None,
        free_bytes=s.hole_stats.total if s.hole_stats else None, fragmentation=s.fragmentation,
        module_largest_hole=s.module_holes.largest if s.module_holes else None,
        vmalloc_total=mi["VmallocTotal"] * 1024 if "VmallocTotal" in mi else None,
        vmalloc_used=mi["VmallocUsed"] * 1024 if "VmallocUsed" in mi else None,
        keys=keys)


def sample_from_text(text: str, source: str, t: float, meminfo_text: str | None = None,
                     meminfo_source: str = "<meminfo>") -> Sample:
    """Parse a dump's text (and a meminfo's) into a :class:`Sample`; FormatError if malformed."""
    meminfo = None
    if meminfo_text is not None:
        meminfo = parse_meminfo(meminfo_text, meminfo_source)
    return sample_from_snapshot(parse_vmallocinfo(text, source), t, meminfo)


def read_text_file(path: str) -> str:
    """The UTF-8 text of ``path``; FormatError ``FILE:LINE`` for binary or undecodable bytes,
    OSError (with the file name) when it cannot be read."""
    if path == "-":
        # Standard input, as analyze and explain take it (`ssh host cat /proc/vmallocinfo |`).
        raw, path = sys.stdin.buffer.read(), "<stdin>"
    else:
        with open(path, "rb") as f:
            raw = f.read()
    bad = raw.find(b"\x00")
    reason = "binary data (NUL byte), not a text file"
    if bad < 0:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            bad, reason = exc.start, "bytes that are not UTF-8 text"
    raise FormatError(f"{path}:{count_lines(raw, bad)}", reason)


def meminfo_beside(path: str) -> str | None:
    """The meminfo of the same moment, if there is one: ``meminfo`` in the same folder as a file
    named ``vmallocinfo`` (``/proc``, a sosreport's ``proc/``), else ``NAME.meminfo`` next to
    ``NAME.txt`` (how ``examples/`` and the simulated series keep them)."""
    folder, name = os.path.split(path)
    candidates = [os.path.splitext(path)[0] + ".meminfo"]
    if name == "vmallocinfo":
        candidates.insert(0, os.path.join(folder, "meminfo"))
    return next((c for c in candidates if c != path and os.path.isfile(c)), None)


def read_sample(path: str, t: float | None = None, meminfo_path: str | None = None) -> Sample:
    """Read a dump file (``/proc/vmallocinfo``, a saved copy, ``-`` for standard input, read
    now) as a sample.

    ``t`` defaults to now for a file under ``/proc`` and to the file's modification time
    otherwise (when the copy was saved).  Without ``meminfo_path``, :func:`meminfo_beside`
    finds one.
    """
    text = read_text_file(path)
    if path == "-":
        path, t = "<stdin>", time.time() if t is None else t
    if not text.strip():
        # A running kernel always has areas: an empty read is a capture gone wrong (not root,
        # a truncated copy), and a sample of it would show every area gone.
        raise FormatError(path, "no vmalloc areas in this text (a running kernel always has "
                                "some: was it captured as root, and is it /proc/vmallocinfo?)")
    if t is None:
        t = time.time() if path.startswith("/proc/") else os.stat(path).st_mtime
    if meminfo_path is None:
        meminfo_path = meminfo_beside(path)
    meminfo_text = read_text_file(meminfo_path) if meminfo_path else None
    return sample_from_text(text, path, t, meminfo_text, meminfo_path or "<meminfo>")
