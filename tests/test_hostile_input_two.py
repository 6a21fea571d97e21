"""Hostile input, part two: nothing lost, nothing slow, every error one ``FILE:LINE: what``.

- snapshots: every line kind with ``pages=`` restores a machine that passes ``check()``;
  ``vpages`` on a small area; areas ending at the top page; callers the model prints always
  parse back (render then parse is the identity);
- the parsers (vmallocinfo, meminfo, trace, ``--version-file``) under fuzzing: only FormatError
  or ConfigError escape, errors name ``source:line`` as an editor counts lines, numbers of any
  length are reported, and a 1 MB line parses at once (the parsers are linear);
- ``analyze`` and ``replay`` print one line and exit 2, never a traceback.

``FUZZ_TARGETS`` and ``hostile_text`` are shared with ``benchmarks/soak.py --fuzz``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.cli.cmd_analyze import read_version_file
from pyvmalloc.cli.main import main
from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.formats._text import count_lines, lines
from pyvmalloc.formats.meminfo import parse_meminfo
from pyvmalloc.formats.trace import parse_trace
from pyvmalloc.formats.vmallocinfo import format_caller, parse_vmallocinfo, render_vmallocinfo
from pyvmalloc.kernel.proc import vmallocinfo_records
from pyvmalloc.vmalloc.vm_struct import VM_IOREMAP

PAGE = 4096
V64 = 0xffffc90000000000


# ---- snapshots: pages= on every line kind ---------------------------------------------------------
@pytest.mark.parametrize("words", ["vmalloc", "vmap", "ioremap", "user", "lowmem", "dma-coherent",
                                   "sparse", "vmap user", "vmalloc vpages", "vmalloc user vpages",
                                   "vmap vpages", ""])
def test_pages_on_every_line_kind_restore_consistently(words: str) -> None:
    text = (f"0x{V64:x}-0x{V64 + 5 * PAGE:x}   20480 foo+0x10/0x20 pages=4 {words}\n"
            f"0x{V64 + 5 * PAGE:x}-0x{V64 + 7 * PAGE:x}    8192 bar+0x1/0x2 pages=2 {words}\n")
    m = pv.Machine.from_snapshot(text, None, arch="x86_64")
    m.check()
    assert parse_vmallocinfo(m.vmallocinfo()).lines == parse_vmallocinfo(text).lines
    assert m.snapshot_report.pages == 6
    m.vfree(V64)  # a vmap(VM_MAP_PUT_PAGES) area gives its pages back too
    m.check()


@pytest.mark.parametrize("word", ["vm_map_ram", "unpurged vm_area"])
def test_pages_on_lines_without_vm_struct_are_refused(word: str) -> None:
    text = f"0x{V64:x}-0x{V64 + 2 * PAGE:x}    8192 pages=1 {word}\n"
    with pytest.raises(FormatError, match=r"^<vmallocinfo>:1: pages= on a"):
        pv.Machine.from_snapshot(text, None, arch="x86_64")


def test_an_area_ending_at_the_top_of_32_bits_is_no_overlap() -> None:
    text = ("0xf0000000-0xf0002000    8192 foo+0x10/0x20 pages=1 vmalloc\n"
            "0xffffe000-0xfffff000    4096 bar+0x0/0x10 ioremap\n"
            "0xfffff000-0x100000000    4096 baz+0x0/0x10 ioremap\n")
    snap = parse_vmallocinfo(text)
    assert snap.address_bits == 32 and snap.addresses_trusted
    m = pv.Machine.from_snapshot(text, None, arch="arm")
    m.check()
    assert m.vmallocinfo() == text


def test_an_area_ending_at_two_to_the_64_is_refused_for_what_it_is() -> None:
    text = (f"0x{V64:x}-0x{V64 + 2 * PAGE:x}    8192 foo+0x10/0x20 pages=1 vmalloc\n"
            "0xfffffffffffff000-0x10000000000000000    4096 bar+0x0/0x10 ioremap\n")
    assert parse_vmallocinfo(text).addresses_trusted
    with pytest.raises(FormatError, match=r"^<vmallocinfo>:2: .*last page") as exc:
        pv.Machine.from_snapshot(text, None, arch="x86_64")
    assert "overlap" not in str(exc.value)


# ---- callers: what the model prints parses back ------------------------------------------------------
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["vmalloc", "vmap", "get_vm_area", "vmalloc_user"]),
                          st.integers(1, 3), st.text(max_size=12)), min_size=1, max_size=5),
       st.sampled_from(["x86_64", "i386", "arm64"]))
def test_render_then_parse_is_the_identity_for_any_caller(ops: list[tuple[str, int, str]],
                                                          arch: str) -> None:
    m = pv.Machine(arch=arch, ram="64M", nodes=1)
    for kind, npages, caller in ops:
        if kind == "vmalloc":
            m.vmalloc(npages * PAGE, caller=caller)
        elif kind == "vmalloc_user":
            m.vmalloc_user(npages * PAGE, caller=caller)
        elif kind == "vmap":
            pages = [m.alloc_page() for _ in range(npages)]
            m.vmap(pages, npages, caller=caller)
        else:
            m.get_vm_area(npages * PAGE, VM_IOREMAP, caller=caller)
    text = m.vmallocinfo()
    snap = parse_vmallocinfo(text)
    assert render_vmallocinfo(snap.lines, bits=m.profile.bits) == text
    records = vmallocinfo_records(m)
    assert [ln.caller for ln in snap.lines] == [format_caller(r.caller) for r in records]
    # A caller in %pS form prints as it is, and sanitising is idempotent.
    for ln in snap.lines:
        assert format_caller(ln.caller) == ln.caller


@pytest.mark.parametrize("caller", ["a=b", "x\ny", "x\ry", "[mod]", "N0=3", "pages=3", "phys=1",
                                    "  ", "\x85", "a\u2028b", "\x00", "foo+0x1/0x2 [m=x]", "vmalloc"])
def test_a_caller_can_never_break_a_line(caller: str) -> None:
    from pyvmalloc.formats.vmallocinfo import VmallocinfoLine

    rec = VmallocinfoLine(start=V64, end=V64 + 2 * PAGE, size=2 * PAGE, caller=caller,
                          nr_pages=1, kinds=("vmalloc",))
    text = render_vmallocinfo([rec])
    (back,) = parse_vmallocinfo(text).lines
    assert back.caller == format_caller(caller) and back.kinds == ("vmalloc",)
    assert back.nr_pages == 1 and text.count("\n") == 1


# ---- the parsers under fuzzing ------------------------------------------------------------------
def _version(text: str, source: str) -> object:
    import os
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8",
                                     newline="") as f:
        f.write(text)
    try:
        try:
            return read_version_file(f.name)
        except FormatError as exc:
            raise FormatError(exc.where.replace(f.name, source, 1), exc.what) from None
    finally:
        os.unlink(f.name)


FUZZ_TARGETS: dict[str, Callable[[str, str], object]] = {
    "vmallocinfo": parse_vmallocinfo,
    "meminfo": parse_meminfo,
    "trace": parse_trace,
    "version-file": _version,
}

_PIECES = [
    "0xffffc90000000000-0xffffc90000002000", "0xc0000000-0xc0002000", " ", "  ", "\t", "8192",
    "foo+0x10/0x20", "[mod]", "pages=", "phys=", "N0=", "vmalloc", "vmap", "ioremap", "vpages",
    "unpurged vm_area", "vm_map_ram", "lowmem", "=", "-", "0x", "MemTotal:", "kB", ":", "1",
    "  kworker/0:1-42    [000] .....  12.000001: ", "alloc_vmap_area: ", "vfree_area: ",
    "va_start=0x1000 size=8192", "va_start: 4096 size=8192 align=4096 vstart=0x1000 vend=0x2000 "
    "failed=0", "(-------)", "CPU:0 [LOST 3 EVENTS]", "#", "Linux version ", "3.4.5", "6.1.0-rc1",
    "\n", "\r\n", "\r", "\x0c", "\x0b", "\x1c", "\x85", "\u2028", "\u2029", "\x00", "é", "٣",
]


def hostile_text(rng: random.Random) -> str:
    """A random text of the parsers' own pieces, odd line breaks, huge numbers and long lines."""
    out = []
    for _ in range(rng.randint(0, 30)):
        r = rng.random()
        if r < 0.05:
            out.append(rng.choice("0123456789abcdef") * rng.randint(20, 6000))  # huge numbers
        elif r < 0.08:
            out.append(rng.choice([" ", "a", "-1 ", "a=", "x "]) * rng.randint(100, 20000))
        else:
            out.append(rng.choice(_PIECES))
    return "".join(out)


def check_target(name: str, text: str) -> None:
    """Run one parser on ``text``: a result, or an error naming ``<fuzz>:LINE`` of a real line."""
    source = "<fuzz>"
    try:
        FUZZ_TARGETS[name](text, source)
    except (FormatError, ConfigError) as exc:
        if isinstance(exc, FormatError):
            m = re.fullmatch(rf"{re.escape(source)}:([0-9]+)", exc.where)
            assert m, f"{name}: error without {source}:LINE: {exc}"
            assert 1 <= int(m.group(1)) <= max(1, sum(1 for _ in lines(text))), str(exc)
        assert len(str(exc)) < 1000, f"{name}: a {len(str(exc))}-character message"


_TEXTS = st.one_of(
    st.text(max_size=300),
    st.builds(lambda seed: hostile_text(random.Random(seed)), st.integers(0, 2**32)),
    st.lists(st.sampled_from(_PIECES), max_size=40).map("".join),
)


@pytest.mark.parametrize("name", sorted(FUZZ_TARGETS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_TEXTS)
def test_fuzz_only_format_errors_naming_file_and_line(name: str, text: str) -> None:
    check_target(name, text)


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_bytes_through_the_command_line_decoder(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    for name in FUZZ_TARGETS:
        check_target(name, text)


# ---- line numbers as an editor counts them ----------------------------------------------------
@pytest.mark.parametrize("odd", ["\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"])
def test_only_cr_lf_and_crlf_break_lines(odd: str) -> None:
    text = f"a{odd}b\r\nc\rd\ne"
    assert [n for n, _ in lines(text)] == [1, 2, 3, 4]
    assert count_lines(text.encode(), len(text.encode())) == 4
    bad = f"MemTotal: 1 kB{odd}\r\nMemFree: 1 kB\rjunk\n"
    with pytest.raises(FormatError, match=r"^f:3: "):
        parse_meminfo(bad, "f")
    vmi = f"0xc0000000-0xc0002000 8192 foo+0x1/0x2 vmalloc{odd}\r0xc0002000-0xc0003000 oops\n"
    with pytest.raises(FormatError, match=r"^f:2: size is not"):
        parse_vmallocinfo(vmi, "f")
    trace = f"# x{odd}y\r\n  a-1 [000] ..... 1.000000: vfree_area: nonsense\n"
    with pytest.raises(FormatError, match=r"^f:2: vfree_area"):
        parse_trace(trace, "f")


# ---- numbers of any length ------------------------------------------------------------------
BIG = "9" * 5000


@pytest.mark.parametrize("name,text", [
    ("vmallocinfo", f"0xc0000000-0xc0002000 {BIG} vmalloc\n"),
    ("vmallocinfo", f"\n0xc0000000-0xc0002000 8192 foo+0x1/0x2 pages={BIG} vmalloc\n"),
    ("vmallocinfo", f"0xc0000000-0x{BIG} 8192 vmalloc\n"),
    ("vmallocinfo", f"0xc0000000-0xc0002000 8192 N{BIG}=1 vmalloc\n"),
    ("vmallocinfo", f"0xc0000000-0xc0002000 8192 N0={BIG} vmalloc\n"),
    ("vmallocinfo", "0xc0000000-0xc0002000 " + "9" * 400 + " vmalloc\n"),
    ("meminfo", f"MemTotal: {BIG} kB\n"),
    ("trace", f"a-1 [000] ..... 1.000000: vfree_area: va_start=0x1000 size={BIG}\n"),
    ("trace", f"a-{BIG} [000] ..... 1.000000: vfree_area: va_start=0x1000 size=8192\n"),
    ("trace", f"a-1 [000] ..... {BIG}.000000: vfree_area: va_start=0x1000 size=8192\n"),
    ("trace", f"CPU:0 [LOST {BIG} EVENTS]\n"),
], ids=lambda v: v if len(v) < 20 else f"{len(v)}-chars")
def test_no_number_is_too_long_to_report(name: str, text: str) -> None:
    with pytest.raises(FormatError, match=r"^<fuzz>:[12]: number too long"):
        FUZZ_TARGETS[name](text, "<fuzz>")


# ---- linear time: one 1 MB line each (quadratic parsers took minutes on 100 KB) ------------------
@pytest.mark.parametrize("name,text", [
    ("vmallocinfo", "0xc0000000-0xc0002000 8192 foo+0x1/0x2 vmalloc "
     + " ".join(f"w{i}" for i in range(200_000)) + "\n"),
    ("vmallocinfo", "0xc0000000-0xc0002000 8192 " + " ".join(f"k{i}=1" for i in range(150_000))),
    ("vmallocinfo", "0xc0000000-0xc0002000 8192 " + " " * 1_000_000 + "x\n"),
    ("meminfo", "MemTotal: " + " " * 1_000_000 + "1 kB\n"),
    ("meminfo", "MemTotal: 1 " + "kB " * 300_000 + "\n"),
    ("trace", " " * 1_000_000 + "x\n"),
    ("trace", "a-1 [000] ..... 1.000000: vfree_area: " + " " * 1_000_000 + "x\n"),
    ("trace", "a-1 " * 250_000 + "\n"),
    ("trace", "-1 [0] " * 150_000 + "\n"),
    ("version-file", "Linux version " + "3" * 1_000_000 + "\n"),
], ids=lambda v: v if len(v) < 20 else f"{len(v)}-chars")
def test_a_one_megabyte_line_parses_at_once(name: str, text: str) -> None:
    try:
        result = FUZZ_TARGETS[name](text, "<fuzz>")
    except FormatError as exc:
        assert len(str(exc)) < 1000
        return
    # Warnings stay short: unknown words are listed up to a limit, each quoted briefly.
    warnings = getattr(result, "warnings", [])
    assert len(warnings) <= 25 and sum(map(len, warnings)) < 10_000


# ---- the command line: one line, exit 2 ------------------------------------------------------
@pytest.mark.parametrize("argv,files", [
    (["analyze", "s.txt"], {"s.txt": "".join(
        f"0x{i:016x}-0x{i * 7:016x} {'9' * 400 if i == 3 else 8192} foo+0x1/0x2 vmalloc\n"
        for i in range(1, 6))}),
    (["analyze", "s.txt"], {"s.txt": f"0xc0000000-0xc0002000 {BIG} vmalloc\n"}),
    (["analyze", "s.txt", "--meminfo", "m.txt"], {
        "s.txt": "0xc0000000-0xc0002000 8192 foo+0x1/0x2 vmalloc\n",
        "m.txt": f"MemTotal: 1 kB\x0c\r\nVmallocTotal: {BIG} kB\n"}),
    (["analyze", "s.txt", "--version-file", "v.txt"], {
        "s.txt": "0xc0000000-0xc0002000 8192 foo+0x1/0x2 vmalloc\n",
        "v.txt": f"\n\rLinux version 3.{BIG}\n"}),
    (["analyze", "s.txt", "--arch", "x86_64", "--fits", "8k"], {"s.txt": (
        f"0x{V64:x}-0x{V64 + 2 * PAGE:x}    8192 foo+0x10/0x20 pages=1 vmalloc\n"
        "0xfffffffffffff000-0x10000000000000000    4096 bar+0x0/0x10 ioremap\n")}),
    (["analyze", "s.txt"], {"s.txt": "\r\r\x85\u2028\x00"}),
    (["replay", "t.txt"], {"t.txt": f"# x\x0cy\n  a-1 [000] ..... 1.000000: vfree_area: "
                                    f"va_start=0x1000 size={BIG}\n"}),
    (["replay", "t.txt"], {"t.txt": f"a-1 [000] ..... 1.000000: alloc_vmap_area: {'x' * 100_000}\n"}),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "files")
def test_cli_prints_one_line_and_exits_2(argv: list[str], files: dict[str, str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8", newline="")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert re.match(r"[a-z]\.txt:[0-9]+: ", err), err
    assert len(err) < 1000
