"""Every vmalloc dump format found in the field, read as one ``/proc/vmallocinfo`` snapshot.

:func:`read_dump` finds the areas inside a larger text and says which format it read:

- ``/proc/vmallocinfo`` (every version, :mod:`pyvmalloc.formats.vmallocinfo`), alone or inside a
  larger text (shell prompts, ``cat`` commands, markdown fences, CRLF line ends): the block of
  area lines, whatever surrounds it;
- an Android bugreport's section ``------ VMALLOC INFO (/proc/vmallocinfo) ------`` (dumpstate's
  ``DumpFile("VMALLOC INFO", "/proc/vmallocinfo")``), up to the next ``------`` line;
- crash's ``kmem -v`` table (crash-utility/crash ``memory.c`` ``dump_vmlist()``): ``VMAP_AREA
  VM_STRUCT ADDRESS RANGE SIZE`` and one row per area, ``START - END SIZE`` (no caller, no
  flags);
- the kernel's gdb command ``lx-vmallocinfo`` (scripts/gdb/linux/vmalloc.py, 6.6+) and drgn's
  ``contrib/vmallocinfo.py``: the kernel's own line, with the caller as gdb prints a pointer
  (``<func+291>``, a decimal offset) or as a bare symbol name (drgn);
- Qualcomm's linux-ramdump-parser-v2 ``vmalloc.txt``: the 2012-2014 parser's lines
  (``start-end size``, all hex without ``0x``, caller ``func+0xoff[/0xsize] [mod.ko]``,
  ``phys=`` hex) and the 2023+ parser's table (``v.v (struct vm_struct)0x... 0xSTART-0xEND
  0xSIZE 0xPHYS flags PAGES func file:line``);
- Amlogic's ``dump_vmalloc`` lines, printed to the kernel log by their vendor kernels when a
  vmap allocation fails (``mm/vmalloc.c`` under ``CONFIG_AMLOGIC_MODIFY``, e.g.
  CoreELEC/linux-amlogic 0f03d8f5: ``pr_info("%s, va:%lx-%lx, size:%08ld KB, alloc:%pf\n",
  __func__, va->va_start, va->va_end, (va->va_end - va->va_start) >> 10, va->vm->caller)``):
  hex without ``0x``, the size in KiB (rounded down: the bytes are ``end - start``), the caller
  a bare symbol (``%pf``: no offset) with its module, no pages, phys or flag words; whatever
  printk prefix (``[ 1795.599602@3]``, syslog) stands before them.

Each format's lines are rewritten as the kernel's own line, in place (the other lines of the
text become blank), so ``FILE:LINE`` in an error is still the line of the original text, then
parsed by :func:`pyvmalloc.formats.vmallocinfo.parse_vmallocinfo` with its checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from pyvmalloc.errors import FormatError
from pyvmalloc.formats._text import lines
from pyvmalloc.formats.vmallocinfo import VmallocinfoSnapshot, parse_vmallocinfo

__all__ = ["FORMATS", "read_dump"]

FORMATS = ("proc", "proc-in-text", "android-bugreport", "crash-kmem-v", "gdb-lx-vmallocinfo",
           "drgn-vmallocinfo", "ramdump-parser", "ramdump-parser-table", "amlogic-dump-vmalloc")

_AREA = re.compile(r"^\s*0x[0-9a-fA-F]+-0x[0-9a-fA-F]+\s+\d+")
# A line that begins like an area line: part of the block, parsed strictly (a truncated or
# malformed area line is an error, not text around the block).
_AREA_START = re.compile(r"^\s*0x[0-9a-fA-F]")
_ANDROID_HEAD = re.compile(r"^------ VMALLOC INFO \(/proc/vmallocinfo\)(?: ------)?\s*$")
_ANDROID_END = re.compile(r"^------ ")
_CRASH_HEAD = re.compile(r"^\s*VMAP_AREA\s+VM_STRUCT\s+ADDRESS RANGE(?:\s+SIZE)?\s*$")
_CRASH_ROW = re.compile(r"^\s*[0-9a-fA-F]+\s+[0-9a-fA-F]+\s+([0-9a-fA-F]+)\s+-\s+([0-9a-fA-F]+)"
                        r"(?:\s+(\d+))?\s*$")
_CRASH_SIZE = re.compile(r"^\s*SIZE:\s+(\d+)\s*$")
_RAMDUMP_ROW = re.compile(r"^([0-9a-fA-F]+)-([0-9a-fA-F]+) ([0-9a-fA-F]+)(?: (.*))?$")
_RAMDUMP_CALLER = re.compile(r"^([^\s+]+)\+0x([0-9a-fA-F]+)(?:/0x([0-9a-fA-F]+))?$")
_TABLE_HEAD = re.compile(r"^VM_STRUCT\s+ADDRESS_RANGE\s+SIZE\s+PHYS_ADDR")
_TABLE_ROW = re.compile(r"^v\.v \(struct vm_struct\)0x[0-9a-fA-F]+ 0x([0-9a-fA-F]+)-0x([0-9a-fA-F]+)"
                        r" 0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(.*?)\s+(\d+)\s+(\S+)?(?:\s+.*)?$")
# Amlogic's dump_vmalloc line (see the module docstring); the caller is %pf, which prints a
# symbol without offset, a module's in brackets after it, or the raw pointer when none matches.
_AMLOGIC_ROW = re.compile(r"\bdump_vmalloc, va:([0-9a-fA-F]+)-([0-9a-fA-F]+), size:\s*(\d+) KB, "
                          r"alloc:(\S+)(?: \[([^\]\s]+)\])?\s*$")
_GDB_CALLER = re.compile(r"^<([^\s+<>]+)\+(\d+)>$")
_BARE_SYMBOL = re.compile(r"^[A-Za-z_][\w.]*$")
# Callers of early, fixed areas (vm_area_add_early, percpu's first chunk): their areas record
# the function itself, printed "+0x0/" wherever an offset is printed.
_SELF_CALLERS = frozenset({"iotable_init", "map_lowmem", "pmd_empty_section_gap", "pci_reserve_io",
                           "debug_ll_io_init", "pcpu_get_vm_areas", "atomic_pool_init"})
_FLAG_WORDS = {"ioremap", "sparse", "vmalloc", "vmap", "user", "dma-coherent", "vpages",
               "vm_map_ram", "unpurged", "vm_area"}

def _blank_outside(text: str, keep: Callable[[int, str], str | None]) -> tuple[str, int]:
    """The text with each line replaced by ``keep(lineno, line)`` (None: blank), and how many
    lines were kept."""
    out: list[str] = []
    kept = 0
    for lineno, raw in lines(text):
        new = keep(lineno, raw)
        if new is not None:
            kept += 1
        out.append(new or "")
    return "\n".join(out) + "\n", kept


def _android(text: str) -> tuple[str, int] | None:
    inside = False
    seen = False

    def keep(_: int, raw: str) -> str | None:
        nonlocal inside, seen
        if _ANDROID_HEAD.match(raw):
            inside, seen = True, True
            return None
        if inside and _ANDROID_END.match(raw):
            inside = False
            return None
        return raw if inside and raw.strip() else None

    result = _blank_outside(text, keep)
    return result if seen else None


def _crash(text: str) -> tuple[str, int] | None:
    if not any(_CRASH_HEAD.match(raw) for _, raw in lines(text[:1 << 20])):
        return None
    pending: list[tuple[int, int]] = []
    rows: dict[int, str] = {}
    for lineno, raw in lines(text):
        m = _CRASH_ROW.match(raw)
        if m:
            start, end = int(m.group(1), 16), int(m.group(2), 16)
            if m.group(3) is not None:
                rows[lineno] = f"0x{m.group(1)}-0x{m.group(2)} {m.group(3)}"
            else:
                pending.append((lineno, end - start))
                rows[lineno] = f"0x{m.group(1)}-0x{m.group(2)} {end - start}"
            continue
        s = _CRASH_SIZE.match(raw)
        if s and pending:
            # "SIZE: N" on its own line (the one-address form, ``kmem -v ADDR``).
            at, _ = pending.pop()
            head = rows[at].rsplit(" ", 1)[0]
            rows[at] = f"{head} {s.group(1)}"
    return _blank_outside(text, lambda n, _r: rows.get(n))


def _rows(text: str,
          find: Callable[[str], re.Match[str] | None]) -> list[tuple[int, re.Match[str]]]:
    """The ``(lineno, match)`` of the lines where ``find`` matches."""
    return [(n, m) for n, raw in lines(text) if (m := find(raw)) is not None]


def _ramdump(text: str, callers: dict[int, str]) -> tuple[str, int] | None:
    rows = _rows(text, _RAMDUMP_ROW.match)
    if not rows:
        return None
    out: dict[int, str] = {}
    for lineno, m in rows:
        start, end, size = m.group(1), m.group(2), int(m.group(3), 16)
        rest = (m.group(4) or "").split()
        words: list[str] = []
        for i, tok in enumerate(rest):
            if i == 0 and _RAMDUMP_CALLER.match(tok):
                # "func+0xoff" (2012) or "func+0xoff/0xsize" (2014): kept as printed, beside
                # the line (the kernel's %pS always has the size).
                callers[lineno] = tok
                continue
            if tok.startswith("[") and tok.endswith(".ko]") and lineno in callers:
                callers[lineno] += f" [{tok[1:-4]}]"
                continue
            words.append(tok)
        out[lineno] = " ".join([f"0x{start}-0x{end} {size}", *words])
    return _blank_outside(text, lambda n, _r: out.get(n))


def _table(text: str, callers: dict[int, str]) -> tuple[str, int] | None:
    if not any(_TABLE_HEAD.match(raw) for _, raw in lines(text[:1 << 20])):
        return None
    out: dict[int, str] = {}
    for lineno, raw in lines(text):
        m = _TABLE_ROW.match(raw)
        if m is None:
            continue
        start, end, size, phys, flags, pages, func = m.groups()
        words = [f"0x{start}-0x{end} {int(size, 16)}"]
        if int(pages):
            words.append(f"pages={pages}")
        if int(phys, 16):
            words.append(f"phys=0x{phys}")
        words += flags.split()
        if func and _BARE_SYMBOL.match(func):
            # The table drops the offset that tells a fixed early map (the function's own
            # address, "+0x0/") from an allocation: without it ARM's map_lowmem (lowmem
            # itself) was taken for the start of the vmalloc area.  These functions only ever
            # record themselves; the function's size is not known ("/0x0").
            callers[lineno] = f"{func}+0x0/0x0" if func in _SELF_CALLERS else func
        out[lineno] = " ".join(words)
    return _blank_outside(text, lambda n, _r: out.get(n))


def _amlogic(text: str, callers: dict[int, str], source: str) -> tuple[str, int] | None:
    rows = _rows(text, _AMLOGIC_ROW.search)
    if not rows:
        return None
    out: dict[int, str] = {}
    for lineno, m in rows:
        start, end, kib, func, module = m.groups()
        size = int(end, 16) - int(start, 16)
        if size >> 10 != int(kib):
            raise FormatError(f"{source}:{lineno}", f"dump_vmalloc size:{kib} KB but va:{start}-"
                                                     f"{end} spans {size} bytes")
        if _BARE_SYMBOL.match(func):
            callers[lineno] = f"{func} [{module}]" if module else func
        out[lineno] = f"0x{start}-0x{end} {size}"
    return _blank_outside(text, lambda n, _r: out.get(n))


def _kernel_shaped(text: str, callers: dict[int, str]) -> tuple[str, int, str, bool]:
    """The block of kernel-shaped area lines (plain, gdb's, drgn's): (text, lines kept, format,
    whether anything around the block was dropped)."""
    area_lines = [n for n, raw in lines(text) if _AREA_START.match(raw)]
    first, last = (area_lines[0], area_lines[-1]) if area_lines else (0, -1)
    fmt = "proc"
    dropped = False

    def keep(lineno: int, raw: str) -> str | None:
        nonlocal fmt, dropped
        if not first <= lineno <= last:
            if raw.strip():
                dropped = True
            return None
        tokens = raw.split()
        if len(tokens) > 2:
            g = _GDB_CALLER.match(tokens[2])
            if g:
                # gdb prints a code pointer as "<func+291>": the offset in decimal.
                fmt = "gdb-lx-vmallocinfo"
                callers[lineno] = f"{g.group(1)}+0x{int(g.group(2)):x}"
                del tokens[2]
            elif _BARE_SYMBOL.match(tokens[2]) and tokens[2] not in _FLAG_WORDS \
                    and "=" not in tokens[2]:
                fmt = "drgn-vmallocinfo"
                callers[lineno] = tokens[2]
                del tokens[2]
        return " ".join(tokens)

    out, kept = _blank_outside(text, keep)
    return out, kept, fmt, dropped


def read_dump(text: str, source: str = "<vmallocinfo>") -> tuple[VmallocinfoSnapshot, str]:
    """The snapshot in ``text`` (any format of :data:`FORMATS`) and the name of its format.

    A text that is one plain ``/proc/vmallocinfo`` parses exactly as
    :func:`~pyvmalloc.formats.vmallocinfo.parse_vmallocinfo` parses it; otherwise the first
    format whose marks the text carries is read, and the name says so.  FormatError names the
    line of a malformed area line (in the original text) or says that no area was found.
    """
    if not isinstance(text, str):
        raise FormatError(source, f"expected text, got {type(text).__name__}")
    callers: dict[int, str] = {}
    found = _android(text)
    fmt = "android-bugreport"
    if found is None:
        found, fmt = _crash(text), "crash-kmem-v"
    if found is None:
        found, fmt = _table(text, callers), "ramdump-parser-table"
    if found is None:
        found, fmt = _amlogic(text, callers, source), "amlogic-dump-vmalloc"
    if found is None and not any(_AREA.match(raw) for _, raw in lines(text[:1 << 16])):
        found, fmt = _ramdump(text, callers), "ramdump-parser"
    if found is None:
        body, kept, fmt, dropped = _kernel_shaped(text, callers)
        if not dropped:
            # A plain file: every line is parsed, so a malformed one is named.
            return _with_callers(parse_vmallocinfo(text, source), callers), fmt
        if fmt == "proc":
            fmt = "proc-in-text"
        found = (body, kept)
    body, kept = found
    if kept == 0:
        raise FormatError(source, f"no vmalloc areas found in this {fmt} text")
    snap = _with_callers(parse_vmallocinfo(body, source), callers)
    snap.warnings.insert(0, f"{source}: read as {fmt} ({len(snap.lines)} areas)")
    return snap, fmt


def _with_callers(snap: VmallocinfoSnapshot, callers: dict[int, str]) -> VmallocinfoSnapshot:
    """Put back the callers that the kernel's line cannot hold (a bare symbol name)."""
    if not callers:
        return snap
    import dataclasses

    snap.lines = [dataclasses.replace(ln, caller=callers[ln.lineno]) if ln.lineno in callers
                  and ln.caller is None else ln for ln in snap.lines]
    return snap
