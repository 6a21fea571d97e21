"""The dumps of a fleet: found in files, folders, globs and tar archives, and cut out of bug reports.

What counts as one dump (a ``Dump``):

- a plain ``/proc/vmallocinfo`` file, with ``NAME.meminfo`` and ``NAME.version`` beside
  ``NAME.txt`` when they are there;
- a file named ``vmallocinfo`` (as under a sosreport's ``proc/``), with ``meminfo`` and
  ``version`` in the same folder: the device is the folder above ``proc`` (or the folder);
- a bug report: Android's ``dumpstate`` sections ``------ VMALLOC INFO (/proc/vmallocinfo) ------``
  and ``------ MEMORY INFO (/proc/meminfo) ------``, the kernel from its ``Linux version``
  line;
- any other file that ``formats.dumps.read_dump`` reads as a dump (crash ``kmem -v``, drgn,
  gdb's ``lx-vmallocinfo``, Qualcomm's ramdump-parser, Amlogic's ``dump_vmalloc``, a
  ``/proc/vmallocinfo`` pasted inside other text).

The same rules apply inside a tar archive (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.xz``,
``.tar.bz2``).  A device that left several dumps names them ``DEVICE@WHEN`` (``node7@0930.txt``):
they form its series, in ``WHEN`` order.  Files that are none of these (READMEs, other
sections) are counted as skipped, never an error; a path that does not exist, a glob that matches
nothing or an unreadable archive is a ``ConfigError`` naming it.
"""

from __future__ import annotations

import glob
import os
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.formats.dumps import read_dump

__all__ = ["Dump", "Found", "collect", "split_bugreport"]

_SECTION = re.compile(r"^------ (.+?) ------\s*$", re.MULTILINE)
_VERSION = re.compile(r"Linux version (\S+)")
_TAR = (".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2", ".tbz2", ".txz")
_SIDE = (".meminfo", ".version")
MAX_FILE = 64 << 20  # a dump or bug report larger than this is not read (a core file by mistake)


@dataclass(frozen=True)
class Dump:
    """One snapshot of one device: its vmallocinfo text and what came with it."""

    device: str
    taken: str            # the ``@WHEN`` part of the name ('' when the device has one dump)
    source: str           # the file (or ``ARCHIVE:MEMBER``) it came from
    vmallocinfo: str
    meminfo: str | None = None
    version: str | None = None   # the kernel version text (``/proc/version`` or ``uname -r``)


@dataclass
class Found:
    """The dumps found and the files passed over."""

    dumps: list[Dump]
    skipped: list[str]


def split_bugreport(text: str) -> tuple[str | None, str | None, str | None]:
    """``(vmallocinfo, meminfo, version)`` of a dumpstate bug report (None for what is not in it)."""
    sections: dict[str, str] = {}
    heads = list(_SECTION.finditer(text))
    for i, h in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        sections.setdefault(h.group(1), text[h.end():end].lstrip("\n"))

    def find(path: str) -> str | None:
        return next((body for name, body in sections.items() if f"({path})" in name), None)

    version = _VERSION.search(text)
    return find("/proc/vmallocinfo"), find("/proc/meminfo"), version.group(1) if version else None


def _version(text: str | None) -> str | None:
    """The release of a ``/proc/version`` line, or the ``uname -r`` text itself."""
    if text is None:
        return None
    match = _VERSION.search(text)
    return match.group(1) if match else (text.strip() or None)


def _looks_like_vmallocinfo(text: str) -> bool:
    first = next((ln for ln in text.split("\n", 20)[:20] if ln.strip()), "")
    return first.startswith("0x") and "-0x" in first


def _device(name: str) -> tuple[str, str]:
    """``(device, taken)`` from a path: its stem, split at ``@``."""
    stem = os.path.basename(name)
    for ext in (".txt", ".log", ".bugreport"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
    device, _, taken = stem.partition("@")
    return device, taken


def _decode(data: bytes, where: str) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None if b"\0" in data[:4096] else data.decode("latin-1")


def _classify(files: dict[str, bytes], label: str) -> Iterator[Dump | str]:
    """Dumps (or the names of skipped files) among ``files`` (name -> bytes) of one place."""
    for name in sorted(files):
        base = os.path.basename(name)
        if any(base.endswith(s) for s in _SIDE) or base in ("meminfo", "version"):
            continue   # read with the dump they belong to
        where = f"{label}:{name}" if label else name
        text = _decode(files[name], where)
        if text is None:
            yield where
            continue
        if base == "vmallocinfo":
            folder = os.path.dirname(name)
            side = {k: _decode(files[os.path.join(folder, k)], where)
                    for k in ("meminfo", "version") if os.path.join(folder, k) in files}
            owner = os.path.dirname(folder) if os.path.basename(folder) == "proc" else folder
            device, taken = _device(owner or label or name)
            yield Dump(device, taken, where, text, side.get("meminfo"), _version(side.get("version")))
        elif "------ VMALLOC INFO" in text or "(/proc/vmallocinfo) ------" in text:
            vm, mem, ver = split_bugreport(text)
            device, taken = _device(name)
            if vm is None:
                yield where
            else:
                yield Dump(device, taken, where, vm, mem, ver)
        elif _looks_like_vmallocinfo(text):
            stem = os.path.splitext(name)[0]
            side = {ext: _decode(files[stem + ext], where) for ext in _SIDE if stem + ext in files}
            device, taken = _device(name)
            yield Dump(device, taken, where, text, side.get(".meminfo"), _version(side.get(".version")))
        elif _other_format(text, where):
            # crash `kmem -v`, drgn, gdb's lx-vmallocinfo, ramdump-parser, Amlogic: the dump
            # reader of `analyze` finds the block; the device's side files do not apply.
            device, taken = _device(name)
            yield Dump(device, taken, where, text, None, _version(text))
        else:
            yield where


def _other_format(text: str, where: str) -> bool:
    """Whether ``text`` holds a dump in one of the other tools' formats ``read_dump`` reads."""
    try:
        read_dump(text, where)
    except FormatError:
        return False
    return True


def _read(path: str) -> bytes:
    if os.path.getsize(path) > MAX_FILE:
        raise ConfigError(f"{path}: larger than {MAX_FILE >> 20} MiB: not a dump")
    with open(path, "rb") as f:
        return f.read()


def _tar(path: str) -> Iterator[Dump | str]:
    try:
        with tarfile.open(path) as tar:
            files = {}
            for member in tar:
                if not member.isfile() or member.size > MAX_FILE:
                    continue
                f = tar.extractfile(member)
                if f is not None:
                    files[member.name] = f.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not a readable tar archive ({exc})") from None
    yield from _classify(files, path)


def _expand(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if any(c in p for c in "*?[") and not os.path.exists(p):
            matches = sorted(glob.glob(p, recursive=True))
            if not matches:
                raise ConfigError(f"{p}: the pattern matches no file")
            out.extend(matches)
        elif not os.path.exists(p):
            raise ConfigError(f"{p}: no such file or folder")
        else:
            out.append(p)
    return out


def collect(paths: Iterable[str]) -> Found:
    """Every dump under ``paths`` (files, folders, globs, tar archives), in a stable order."""
    found = Found([], [])
    for path in _expand(paths):
        if os.path.isdir(path):
            for folder, dirs, names in os.walk(path):
                dirs.sort()
                plain = {}
                for n in sorted(names):
                    full = os.path.join(folder, n)
                    if n.endswith(_TAR):
                        _add(found, _tar(full))
                    else:
                        plain[full] = _read(full)
                _add(found, _classify(plain, ""))
        elif path.endswith(_TAR) or (os.path.isfile(path) and tarfile.is_tarfile(path)):
            _add(found, _tar(path))
        else:
            files = {path: _read(path)}
            stem = os.path.splitext(path)[0]
            folder = os.path.dirname(path)
            for extra in [stem + s for s in _SIDE] + [os.path.join(folder, s) for s in ("meminfo", "version")]:
                if os.path.isfile(extra):
                    files[extra] = _read(extra)
            _add(found, _classify(files, ""))
    return found


def _add(found: Found, items: Iterable[Dump | str]) -> None:
    for item in items:
        if isinstance(item, Dump):
            found.dumps.append(item)
        else:
            found.skipped.append(item)
