"""Every dump format of formats/dumps.py, from the samples in tests/data/dumps (SOURCES says
which are real and which were built from the tool's source), and analyze on top of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyvmalloc.cli.main import main
from pyvmalloc.errors import FormatError
from pyvmalloc.formats.dumps import read_dump
from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo

DUMPS = Path(__file__).parent / "data" / "dumps"
PLAIN = Path(__file__).parent / "data" / "vmallocinfo"
ZTE = PLAIN / "arm32-zte-router-mt7615-4.1.25.txt"
QCOM = PLAIN / "arm32-qcom-mdm9607-jmr540-3.18.20.txt"


def _text(path: Path) -> str:
    return path.read_bytes().decode()


@pytest.mark.parametrize("name,fmt,areas", [
    ("android-bugreport-zte.txt", "android-bugreport", 91),
    ("crash-kmem-v.txt", "crash-kmem-v", 6),
    ("drgn-vmallocinfo.txt", "drgn-vmallocinfo", 3),
    ("gdb-lx-vmallocinfo.txt", "gdb-lx-vmallocinfo", 40),
    ("ramdump-parser-vmalloc.txt", "ramdump-parser", 117),
    ("ramdump-parser-table-vmalloc.txt", "ramdump-parser-table", 117),
    ("proc-with-prompts-crlf.txt", "proc-in-text", 97),
])
def test_every_format_is_found_and_named(name, fmt, areas):
    snap, got = read_dump(_text(DUMPS / name), name)
    assert got == fmt and len(snap.lines) == areas and snap.addresses_trusted
    assert snap.warnings[0] == f"{name}: read as {fmt} ({areas} areas)"


def test_converted_formats_keep_the_real_dumps_areas():
    zte = parse_vmallocinfo(ZTE.read_text())
    android, _ = read_dump(_text(DUMPS / "android-bugreport-zte.txt"))
    assert [(a.start, a.end, a.size, a.caller, a.kinds) for a in android.lines] == \
        [(a.start, a.end, a.size, a.caller, a.kinds) for a in zte.lines]
    gdb, _ = read_dump(_text(DUMPS / "gdb-lx-vmallocinfo.txt"))
    assert [(a.start, a.size, a.function, a.nr_pages) for a in gdb.lines] == \
        [(a.start, a.size, a.function, a.nr_pages) for a in zte.lines[:40]]
    assert gdb.lines[0].caller == "module_alloc_update_bounds+0xc"   # <...+12>: decimal
    qcom = parse_vmallocinfo(QCOM.read_text())
    for name in ("ramdump-parser-vmalloc.txt", "ramdump-parser-table-vmalloc.txt"):
        rd, _ = read_dump(_text(DUMPS / name))
        assert [(a.start, a.end, a.size, a.function, a.phys) for a in rd.lines] == \
            [(a.start, a.end, a.size, a.function, a.phys) for a in qcom.lines]


def test_crash_rows_are_ranges_without_callers():
    snap, _ = read_dump(_text(DUMPS / "crash-kmem-v.txt"))
    assert snap.lines[0].start == 0xffffab3ec0000000 and snap.lines[0].size == 20480
    assert all(a.caller is None for a in snap.lines)


def test_plain_file_is_parsed_strictly():
    with pytest.raises(FormatError, match=r"x:2: truncated line"):
        read_dump("0xbf000000-0xbf002000    8192 f+0x1/0x2 vmalloc\n0xbf002000-0xbf00\n", "x")
    with pytest.raises(FormatError, match=r"x: no vmalloc areas found"):
        read_dump("------ VMALLOC INFO (/proc/vmallocinfo) ------\n------ 0.1s was the\n", "x")


def _analyze(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["analyze", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_opens_with_the_verdict(capsys):
    code, out, _ = _analyze(capsys, DUMPS / "android-bugreport-zte.txt", "--kernel", "4.1.25",
                            "--fits", "8M,module:416K")
    first = out.splitlines()[:5]
    assert code == 0
    assert first[0].startswith(f"{DUMPS / 'android-bugreport-zte.txt'}: 91 areas, ")
    assert "% used" in first[0] and "largest hole" in first[0]
    assert first[1].startswith("module area 0xbf000000-0xbfe00000: ")
    assert first[2].startswith("fits now: ") and "#2 module:416.0 KiB fits" in first[2]
    assert first[3].startswith("do: ")
    assert first[4].startswith("read as android-bugreport; arch arm")


def test_the_verdict_says_when_the_space_fits_but_the_ram_does_not(capsys):
    # 200M finds a hole in the ZTE router's vmalloc area, but not the pages of its RAM.
    code, out, _ = _analyze(capsys, ZTE, "--kernel", "4.1.25", "--fits", "200M,8M")
    first = out.splitlines()[:5]
    assert code == 0
    assert "--fits: #1 200.0 MiB fits, but RAM is short, #2 8.0 MiB fits" in first[2]
    assert first[3].startswith("do: the address space is there, the pages are not: free RAM does "
                               "not cover #1's pages")
    assert "vmalloc would fail for lack of pages" in out


def test_a_request_that_fails_on_every_kernel_allowed_is_said_to_fail(capsys):
    # No --kernel: the dump allows two layouts; 500M fails under each (largest hole 399.9 MiB),
    # so the verdict is that, and "do:" is not "nothing needed".
    code, out, _ = _analyze(capsys, ZTE, "--fits", "500M")
    first = out.splitlines()[:5]
    assert code == 0 and out.count("FAILS: largest hole") == 2
    assert first[2].endswith("--fits: #1 500.0 MiB FAILS (on every kernel version below)")
    assert first[3].startswith("do: a larger vmalloc=")


def test_one_layout_per_run(capsys):
    # Without meminfo the summary and the plan use the same VMALLOC_END (the kernel's).
    code, out, _ = _analyze(capsys, ZTE, "--kernel", "4.1.25", "--json", "--plan", "8M")
    doc = json.loads(out)
    assert code == 0
    assert doc["bounds"]["end"] == doc["plan"]["current"]["vmalloc_end"] == "0xff000000"


def test_fits_kinds(capsys):
    code, out, _ = _analyze(capsys, ZTE, "--kernel", "4.1.25", "--json",
                            "--fits", "module:13M,bpf:64K,ioremap:16M")
    answers = json.loads(out)["fits"]["answers"]
    assert code == 0
    assert [(a["kind"], a["ok"]) for a in answers] == [("module", False), ("bpf", True),
                                                       ("ioremap", True)]
    assert "total free 6.6 MiB is smaller than 13 MiB" in answers[0]["reason"]
    assert 0xbf000000 <= int(answers[1]["address"], 16) < 0xbfe00000
    code, _, err = _analyze(capsys, ZTE, "--fits", "stack:8K")
    assert code == 2 and "unknown kind 'stack'" in err and "module" in err


def test_fits_of_mixed_kinds_is_one_sequence(capsys):
    # 659 MiB free, the largest hole 399.9 MiB: one 300M fits, and then neither an ioremap of
    # 300M (vmalloc space too) nor another vmalloc of 300M does.
    code, out, _ = _analyze(capsys, ZTE, "--kernel", "4.1.25", "--json",
                            "--fits", "300M,ioremap:300M,300M")
    answers = json.loads(out)["fits"]["answers"]
    assert code == 0
    assert [(a["step"], a["kind"], a["ok"]) for a in answers] == [
        (1, "vmalloc", True), (2, "ioremap", False), (3, "vmalloc", False)]
    assert all("largest hole 170 MiB" in a["reason"] for a in answers[1:])


@pytest.mark.parametrize("argv,words", [
    (["--arch", "ppc"], "unknown arch; known: x86_64"),
    (["--plot", "somewhere/"], "give a file name"),
])
def test_bad_options(capsys, tmp_path, argv, words):
    code, out, err = _analyze(capsys, ZTE, *argv)
    assert code == 2 and out == "" and words in err and err.count("\n") == 1


def test_ppc32_is_layout_only(capsys):
    code, out, _ = _analyze(capsys, ZTE, "--arch", "ppc32", "--fits", "8M")
    assert code == 0 and "ppc32 has no machine profile" in out


def test_json_into_a_closed_pipe_is_quiet():
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1] / "src"))
    cmd = f"{sys.executable} -m pyvmalloc analyze {ZTE} --json | head -1"
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0 and r.stdout == "{\n" and r.stderr == ""


@pytest.mark.skipif(not os.path.exists("/proc/vmallocinfo"), reason="not a Linux host")
def test_live_host(capsys):
    # This machine's own /proc/vmallocinfo, meminfo and kernel: read for real.
    code, out, err = _analyze(capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("/proc/vmallocinfo: ") and " areas, " in lines[0]
    if "addresses not usable" in lines[0]:
        assert "kptr_restrict=1" in lines[3] and "kernel.kptr_restrict is" in out
    assert "kernel log" in out
    assert "kernel Linux " in lines[4]


def test_a_request_too_large_for_a_64_bit_area_is_not_nothing_about_the_size(capsys, tmp_path):
    import pyvmalloc as pv

    m = pv.Machine(arch="x86_64", ram="256M", kernel="6.1")
    for i in range(3):
        m.vmalloc(8192 * (i + 1))
    dump = tmp_path / "x86.txt"
    dump.write_text(m.vmallocinfo())
    code, out, _ = _analyze(capsys, dump, "--arch", "x86_64", "--kernel", "6.1", "--fits", "40T")
    first = out.splitlines()[:5]
    assert code == 0 and first[2].endswith("--fits: #1 40.0 TiB FAILS")
    assert first[3] == ("do: the request is larger than the largest hole of a 64-bit vmalloc "
                        "area: the size is wrong (a 64-bit kernel has no vmalloc= to enlarge it)")
    code, out, _ = _analyze(capsys, dump, "--arch", "x86_64", "--kernel", "6.1", "--fits", "8M")
    assert out.splitlines()[3].startswith("do: nothing about the size")
