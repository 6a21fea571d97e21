"""Hostile input: bytes that must never leak, and parsers and the command line under fuzzing.

- Frames recycled with stale data are zero when vmalloc_user, vmalloc_32_user or __GFP_ZERO
  hand them out (and in a VM_VPAGES page array); remap_vmalloc_range refuses areas without
  VM_USERMAP; vread of holes, guard pages and lazily freed areas returns zeros.
- Every parser (vmallocinfo, meminfo, parse_size, memparse, the boot command line, kernel
  versions) and ``pyvmalloc`` itself, run in-process, get random and mutated input: a result
  or the project's error, never a traceback; the command line exits 2 with one line.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import pyvmalloc as pv
from pyvmalloc.arch import PROFILES, boot_layout
from pyvmalloc.sizes import memparse, parse_size
from pyvmalloc.cli.main import main
from pyvmalloc.errors import ConfigError, FormatError
from pyvmalloc.phys import gfp as G
from pyvmalloc.formats.meminfo import parse_meminfo, render_meminfo
from pyvmalloc.formats.vmalloc_meminfo import parse_kernel_version
from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo

PAGE = 4096
GFP_ZERO = getattr(G, "__GFP_ZERO")
DUMPS = sorted((Path(__file__).parent / "data" / "vmallocinfo").glob("*.txt"))


def area(m: pv.Machine, addr: int | None) -> pv.vm_struct:
    assert addr is not None
    found = m.find_vm_area(addr)
    assert found is not None
    return found


# ---- bytes that must never leak -------------------------------------------------------------------
def zeroed_alloc(m: pv.Machine, kind: str, size: int) -> int | None:
    if kind == "vmalloc_user":
        return m.vmalloc_user(size)
    if kind == "vmalloc_32_user":
        return m.vmalloc_32_user(size)
    return m.vmalloc_gfp(size, G.GFP_KERNEL | GFP_ZERO, "PAGE_KERNEL")


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["vmalloc_user", "vmalloc_32_user", "__GFP_ZERO"]), st.integers(1, 40),
       st.sampled_from(["x86_64", "i386", "arm64"]), st.integers(1, 255))
def test_recycled_frames_come_back_zeroed(kind: str, npages: int, arch: str, stale: int) -> None:
    m = pv.Machine(arch=arch, ram="64M", allocator="list")
    size = npages * PAGE
    dirty = m.vmalloc_32(size) if kind == "vmalloc_32_user" else m.vmalloc(size)
    m.vwrite(dirty, bytes([stale]) * size)
    m.vfree(dirty)
    # Every free frame holds what an earlier user left there, as RAM does.
    free = m.phys.pfns_owned_by("free")
    m.phys.frames.scatter(free, np.full((len(free), PAGE), stale, dtype=np.uint8))
    a = zeroed_alloc(m, kind, size)
    pages = area(m, a).pages
    assert m.vread(a, size) == bytes(size)
    assert not m.phys.frames.gather(pages).any()
    if kind != "__GFP_ZERO":
        mm = m.user_mm()
        vma = mm.mmap(size)
        assert m.remap_vmalloc_range(vma, a) == 0
        assert mm.read(vma.start, size) == bytes(size)
    m.check()


def test_a_vmalloced_page_array_has_no_stale_tail() -> None:
    m = pv.Machine(ram="64M", allocator="list")
    big = 600 * PAGE  # 4800 bytes of pfns: a two-page array, 3392 bytes of it unused
    dirty = [m.vmalloc(big) for _ in range(3)]
    for a in dirty:
        m.vwrite(a, b"\x5a" * big)
    for a in dirty:
        m.vfree(a)
    a = m.vmalloc(big)
    where = area(m, a).pages_array[1]
    tail = m.vread(where + 600 * 8, 2 * PAGE - 600 * 8)
    assert tail == bytes(len(tail))


@pytest.mark.parametrize("kind", ["vmalloc", "vmalloc_32", "vmalloc_exec", "vmap", "alloc_vm_area", "module_alloc"])
def test_remap_vmalloc_range_refuses_areas_without_vm_usermap(kind: str) -> None:
    m = pv.Machine(ram="64M")
    if kind == "vmap":
        addr = m.vmap([m.alloc_page(), m.alloc_page()], 2)
    elif kind == "alloc_vm_area":
        addr = m.alloc_vm_area(2 * PAGE).addr
    else:
        addr = getattr(m, kind)(2 * PAGE)
    mm = m.user_mm()
    vma = mm.mmap(2 * PAGE)
    assert m.remap_vmalloc_range(vma, addr) == -22
    with pytest.raises(pv.PageFault):
        mm.read(vma.start, 1)
    m.check()


def test_remap_vmalloc_range_refuses_bad_offsets_and_unknown_addresses() -> None:
    m = pv.Machine(ram="64M")
    a = m.vmalloc_user(2 * PAGE)
    mm = m.user_mm()
    assert m.remap_vmalloc_range(mm.mmap(2 * PAGE), a + 1) == -22
    assert m.remap_vmalloc_range(mm.mmap(2 * PAGE), a + PAGE) == -22  # not the start of an area
    assert m.remap_vmalloc_range(mm.mmap(3 * PAGE), a) == -22  # would map the guard page
    assert m.remap_vmalloc_range(mm.mmap(2 * PAGE), a, pgoff=1) == -22
    assert m.remap_vmalloc_range(mm.mmap(PAGE), a, pgoff=-1) == -22
    m.vfree(a)
    assert m.remap_vmalloc_range(mm.mmap(PAGE), a) == -22  # freed
    m.check()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.booleans()), min_size=1, max_size=12), st.booleans(),
       st.sampled_from(["list", "kva"]))
def test_vread_of_holes_guard_pages_and_freed_areas_is_zeros(
        plan: list[tuple[int, bool]], lazy: bool, allocator: str) -> None:
    m = pv.Machine(ram="64M", allocator=allocator, lazy_purge=lazy)
    made = []
    for npages, keep in plan:
        a = m.vmalloc(npages * PAGE)
        m.vwrite(a, b"\xff" * npages * PAGE)  # freed areas' frames keep these bytes
        made.append((a, npages, keep))
    for a, _n, keep in made:
        if not keep:
            m.vfree(a)
    start = m.VMALLOC_START
    span = max(a + (n + 1) * PAGE for a, n, _ in made) - start
    want = bytearray(span)
    for a, n, keep in made:
        if keep:
            want[a - start:a - start + n * PAGE] = b"\xff" * n * PAGE
    got = m.vread(start, span)
    # The read stops after the last live area: what follows it is not returned at all.
    assert got == bytes(want[:len(got)]) and not any(want[len(got):])


# ---- parsers ----------------------------------------------------------------------------------------
def mutate(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply ``(op, position, piece)`` edits: delete, insert, replace, duplicate a line, truncate."""
    for op, pos, piece in edits:
        if not text:
            text = piece
            continue
        pos %= len(text)
        if op == 0:
            text = text[:pos] + text[pos + len(piece) + 1:]
        elif op == 1:
            text = text[:pos] + piece + text[pos:]
        elif op == 2:
            text = text[:pos] + piece + text[pos + len(piece):]
        elif op == 3:
            lines = text.splitlines(keepends=True)
            i = pos % len(lines)
            text = "".join(lines[:i + 1] + lines[i:])
        else:
            text = text[:pos]
    return text


EDITS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10**6),
                           st.text(alphabet=st.sampled_from(list("0x123456789abcdefgz-=+/ \t\nNpages[]\x00é")) | st.characters(),
                                   max_size=12)),
                 min_size=1, max_size=6)


def parses_or_says_where(parse: object, text: str, source: str) -> None:
    try:
        parse(text, source)  # type: ignore[operator]
    except FormatError as exc:
        assert exc.where.startswith(source) and exc.what


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(DUMPS), EDITS)
def test_parse_vmallocinfo_of_mutated_real_dumps(dump: Path, edits: list[tuple[int, int, str]]) -> None:
    parses_or_says_where(parse_vmallocinfo, mutate(dump.read_text(), edits), "dump")


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=400))
def test_parse_vmallocinfo_of_random_text(text: str) -> None:
    parses_or_says_where(parse_vmallocinfo, text, "random")


MEMINFO = pv.Machine(arch="i386", ram="1G").meminfo()


@settings(max_examples=100, deadline=None)
@given(EDITS, st.booleans())
def test_parse_meminfo_of_mutated_and_random_text(edits: list[tuple[int, int, str]], rendered: bool) -> None:
    text = mutate(MEMINFO if rendered else "", edits)
    try:
        fields = parse_meminfo(text, "meminfo")
    except FormatError as exc:
        assert exc.where.startswith("meminfo")
        return
    assert parse_meminfo(render_meminfo(fields)) == fields  # what parses renders back the same


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=20), st.integers(-(2**70), 2**70), st.none(), st.floats(), st.binary(max_size=8)))
def test_parse_size_answers_a_size_or_config_error(text: object) -> None:
    try:
        value = parse_size(text)  # type: ignore[arg-type]
    except ConfigError as exc:
        assert "is not a size" in str(exc)
        return
    assert isinstance(value, int) and value >= 0


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_memparse_never_fails_on_text_and_wraps_at_64_bits(text: str) -> None:
    value, rest = memparse(text)
    assert 0 <= value < 2**64 and text.endswith(rest)


CMDLINE_WORDS = ["vmalloc=", "vmalloc=128M", "vmalloc=0", "vmalloc=-1", "vmalloc=16E", "mem=", "mem=64M",
                 "mem=0", "mem=1G@0", "mem=1G@4k", "mem=nopentium", "nokaslr", "nokaslr=1", "\"vmalloc=", "quiet"]


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(PROFILES)), st.sampled_from(["16M", "64M", "1G", "5G", "64G"]),
       st.lists(st.sampled_from(CMDLINE_WORDS) | st.text(max_size=8), max_size=4), st.none() | st.integers(-5, 2**40))
def test_boot_command_line_boots_or_says_why(arch: str, ram: str, words: list[str], seed: int | None) -> None:
    cmdline = " ".join(words)
    try:
        lay = boot_layout(arch, parse_size(ram), cmdline, seed)
    except ConfigError as exc:
        assert str(exc)
        return
    assert lay.vmalloc_start < lay.vmalloc_end and lay.ram_bytes <= parse_size(ram)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(sorted(PROFILES)) | st.text(max_size=6), st.sampled_from(["64M", "0", "x", "-1", "2G"]),
       st.integers(-1, 3), st.integers(-1, 3), st.sampled_from(["list", "kva", "slab"]),
       st.lists(st.sampled_from(CMDLINE_WORDS), max_size=2))
def test_machine_boots_or_raises_config_error(arch: str, ram: str, nodes: int, cpus: int, allocator: str,
                                              words: list[str]) -> None:
    try:
        m = pv.Machine(arch=arch, ram=ram, nodes=nodes, cpus=cpus, allocator=allocator, cmdline=" ".join(words))
    except ConfigError as exc:
        assert str(exc)
        return
    m.check()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=16))
@example("4.18.0-80.11.2.el8_0")
@example(" v2.6")
def test_parse_kernel_version_answers_or_says_why(text: str) -> None:
    try:
        major, minor, patch = parse_kernel_version(text)
    except ConfigError:
        return
    # The numbers are the text's own leading MAJOR.MINOR[.PATCH], and read back the same.
    major_text, minor_text = text.lstrip().removeprefix("v").split(".")[:2]
    minor_digits = re.match("[0-9]+", minor_text)
    assert minor_digits and (int(major_text), int(minor_digits[0])) == (major, minor)
    assert parse_kernel_version(f"{major}.{minor}.{patch}") == (major, minor, patch)


# ---- the command line, in-process ------------------------------------------------------------------
def run_cli(argv: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    """``pyvmalloc ARGV`` in this process: (exit code, stdout, stderr).  Any exception other
    than SystemExit propagates and fails the test: that is the traceback a user would see."""
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


def assert_clean_exit(code: int, out: str, err: str, argv: list[str] = ()) -> None:  # type: ignore[assignment]
    assert "Traceback" not in out + err
    assert code in (0, 2), (code, err)
    # An argument with a line break in it is echoed as given: count lines without it.
    echoed = "".join(a for a in argv if len("".join(a.splitlines())) != len(a))
    if code == 2 and not echoed:
        lines = err.strip().splitlines()
        if lines:
            assert len(lines) == 1, err
        else:
            assert "usage:" in out  # no command: the help, and exit 2


OPTIONS = ["--arch", "--ram", "--nodes", "--cpus", "--cmdline", "--allocator", "--list", "--dmesg", "--json",
           "--top", "--kernel", "--meminfo", "--seed", "-s"]  # no --plot: it would write files here
VALUES = ["x86_64", "arm", "i386-pae", "arm64", "64M", "128M", "0", "-1", "3", "kva", "list", "zz", "vmalloc=64M",
          "mem=1", "2.6.22", "x.y", "", "-", "/nonexistent", "/"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["machine", "tour", "analyze", "nope", "--version", "-h"]),
       st.lists(st.sampled_from(OPTIONS + VALUES) | st.text(max_size=10), max_size=7), st.binary(max_size=64))
def test_cli_never_shows_a_traceback(command: str, rest: list[str], stdin: bytes) -> None:
    argv = [command, *rest]
    assert_clean_exit(*run_cli(argv, stdin), argv)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from(["--arch", "zz", "--ram", "x", "--cpus", "1", "--allocator", "list", "--json"]),
                max_size=4), st.text(max_size=10).filter(lambda t: "=" not in t or t.split("=")[0] not in
                                                          {"nr_threads", "test_repeat_count", "test_loop_count",
                                                           "run_test_mask", "sequential_test_order", "nr_pages"}))
def test_cli_bench_refuses_bad_parameters_before_running(opts: list[str], param: str) -> None:
    # A bad key=value makes bench refuse before it runs anything (a real run takes a minute).
    assert_clean_exit(*run_cli(["bench", *opts, "--", f"bogus_{param}"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(DUMPS), st.just([]) | EDITS, st.booleans(), st.booleans(), st.just(b"") | st.binary(max_size=20))
def test_cli_analyze_of_mutated_dumps(dump: Path, edits: list[tuple[int, int, str]], as_json: bool,
                                      via_stdin: bool, junk: bytes) -> None:
    data = mutate(dump.read_text(), edits).encode("utf-8", "surrogatepass") + junk
    flags = ["--json"] if as_json else []
    if via_stdin:
        code, out, err = run_cli(["analyze", "-", *flags], data)
        where = "<stdin>"
    else:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "dump.txt"
            path.write_bytes(data)
            code, out, err = run_cli(["analyze", str(path), *flags])
            where = str(path)
    assert_clean_exit(code, out, err)
    if code == 2:
        assert err.startswith(where) or err.startswith("pyvmalloc analyze:"), err


def test_cli_analyze_of_binary_and_non_utf8_files_names_the_line(tmp_path: Path) -> None:
    for data, what in ((b"0x1-0x2 4096 x\n\x00\x01", "NUL"), (b"\n\n\xff\xfe garbage", "UTF-8")):
        path = tmp_path / "bad.txt"
        path.write_bytes(data)
        code, _out, err = run_cli(["analyze", str(path)])
        assert code == 2 and err.startswith(f"{path}:") and len(err.strip().splitlines()) == 1
        assert what in err, err
