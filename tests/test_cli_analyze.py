"""``pyvmalloc analyze``: reports, JSON, plots, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyvmalloc.cli.main import main

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "vmallocinfo"
DATA = Path(__file__).parent / "data" / "vmallocinfo"
ZTE = EXAMPLES / "arm32-zte-router-mt7615-4.1.25.txt"
HASHED = EXAMPLES / "x86_64-rhel8-sosreport-hashed.txt"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["analyze", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_examples_ship_with_their_sources():
    txt = sorted(p.name for p in EXAMPLES.glob("*.txt"))
    assert len(txt) == 4 and "x86_64-rhel8-sosreport-hashed.txt" in txt
    assert "arm32-mediatek-goclever-i5-3.4.5.txt" in txt
    sources = (EXAMPLES / "SOURCES.md").read_text()
    for name in txt:
        assert f"| {name} |" in sources
        assert (EXAMPLES / name).read_bytes() == (DATA / name).read_bytes()


@pytest.mark.parametrize("path", sorted(DATA.glob("*.txt")), ids=lambda p: p.name)
def test_every_dump_gets_a_report(capsys, path: Path):
    code, out, err = _run(capsys, path)
    assert code == 0 and err == ""
    assert out.startswith(f"{path}: ")


def test_report_with_meminfo_matches_the_kernel(capsys):
    code, out, _ = _run(capsys, ZTE, "--meminfo", ZTE.with_suffix(".meminfo"))
    assert code == 0
    assert "VmallocTotal 647168  VmallocUsed 190068  VmallocChunk 409508" in out
    assert "warnings:" not in out


def test_json_has_the_promised_keys(capsys):
    code, out, _ = _run(capsys, ZTE, "--json", "--top", "3", "--kernel", "4.1.25")
    assert code == 0
    doc = json.loads(out)
    for key in ("arch", "areas", "bytes", "by_kind", "top_callers", "holes", "fragmentation",
                "warnings"):
        assert key in doc
    assert doc["arch"] == "arm" and doc["areas"] == 91
    assert sum(doc["by_kind"].values()) == doc["bytes"]
    assert len(doc["top_callers"]) == 3
    assert set(doc["holes"]) == {"count", "total", "largest"}
    assert doc["meminfo"]["generation"] == "vmap_area_list"


def test_json_of_a_hashed_dump(capsys):
    code, out, _ = _run(capsys, HASHED, "--json", "--meminfo", HASHED.with_suffix(".meminfo"))
    doc = json.loads(out)
    assert code == 0
    assert doc["holes"] is None and doc["fragmentation"] is None and doc["arch"] is None
    assert doc["meminfo"]["computed_kb"]["zero"]["VmallocUsed"] == 0
    assert any("hashed" in w for w in doc["warnings"])


def test_plot_writes_png_files(capsys, tmp_path: Path):
    for src in (ZTE, HASHED):
        png = tmp_path / f"{src.stem}.png"
        code, out, _ = _run(capsys, src, "--plot", png)
        assert code == 0 and f"plot written to {png}" in out
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_empty_snapshot_is_an_error(capsys, tmp_path: Path):
    # issue 14: a text with no area exits 2 naming the file (a real kernel always has areas).
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, out, err = _run(capsys, empty)
    assert code == 2 and out == ""
    assert err.startswith(f"{empty}: no vmalloc areas") and err.count("\n") == 1


@pytest.mark.parametrize(("content", "expected"), [
    (b"0xbf000000-0xbf002000    8192 f+0x1/0x2 pages=1 vmalloc\n0xbf002000-0xbf00", "{}:2: "
     "truncated line: no size after the address range"),
    (b"0xbf000000-0xbf002000    8192 f+0x1/0x2 vmalloc\n\n"
     b"0xbf0q2000-0xbf004000    8192 g+0x1/0x2\n",
     "{}:3: bad hex in start address: 'bf0q2000'"),
    (b"0xc0000000-0xc0004000   16384 f+0x1/0x2 ioremap\n0xc0002000-0xc0004000    8192 g+0x1/0x2 "
     b"ioremap\n", "{}:2: area 0xc0002000-0xc0004000 overlaps line 1 (0xc0000000-0xc0004000)"),
    (b"\x7fELF\x02\x01\x01\x00\x00\x00", "{}:1: binary data (NUL byte), not a text file"),
    (b"0xc0000000-0xc0004000   16384 f\xe9+0x1/0x2 ioremap\n",
     "{}:1: bytes that are not UTF-8 text"),
])
def test_malformed_files_give_one_line_and_exit_2(capsys, tmp_path: Path, content: bytes,
                                                  expected: str):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    code, out, err = _run(capsys, bad)
    assert code == 2 and out == ""
    assert _one_error_line(err) == expected.format(bad)


def test_unreadable_inputs(capsys, tmp_path: Path):
    missing = tmp_path / "nope.txt"
    code, _, err = _run(capsys, missing)
    assert code == 2 and _one_error_line(err) == f"{missing}: No such file or directory"
    code, _, err = _run(capsys, tmp_path)
    assert code == 2 and _one_error_line(err) == f"{tmp_path}: Is a directory"
    code, _, err = _run(capsys, ZTE, "--meminfo", missing)
    assert code == 2 and _one_error_line(err) == f"{missing}: No such file or directory"
    bad_meminfo = tmp_path / "meminfo"
    bad_meminfo.write_text("MemTotal:  12 kB\nVmallocTotal  540672 kB\n")
    code, _, err = _run(capsys, ZTE, "--meminfo", bad_meminfo)
    assert code == 2 and _one_error_line(err).startswith(f"{bad_meminfo}:2: expected 'Name: value")


def test_wrong_arch_and_bad_options(capsys, tmp_path: Path):
    code, _, err = _run(capsys, ZTE, "--arch", "x86_64")
    assert code == 2
    assert _one_error_line(err) == (f"{ZTE}:1: address 0xbf000000 is not a kernel address on "
                                    f"x86_64 (kernel space begins at 0xffff800000000000)")
    for argv in (("--top", "-1"), ("--top", "many"), ("--kernel", "linux")):
        with pytest.raises(SystemExit) as info:
            _run(capsys, ZTE, *argv)
        assert info.value.code == 2
        assert _one_error_line(capsys.readouterr().err).startswith("pyvmalloc analyze: error:")
    code, _, err = _run(capsys, ZTE, "--plot", tmp_path / "no" / "such" / "dir.png")
    assert code == 2 and "No such file or directory" in _one_error_line(err)
    code, _, err = _run(capsys, ZTE, "--plot", tmp_path / "plot.xyz")
    assert code == 2 and "xyz" in _one_error_line(err)


# ---- --fits, --plan, --headroom, --cmdline ----------------------------------------------------
TABLET = EXAMPLES / "arm32-mediatek-goclever-i5-3.4.5.txt"


def test_fits_and_plan_in_text(capsys):
    code, out, err = _run(capsys, TABLET, "--meminfo", TABLET.with_suffix(".meminfo"),
                          "--fits", "8M,200M", "--plan", "64M,128M", "--headroom", "25%")
    assert code == 0 and err == ""
    assert "fits (8M,200M): each request is evaluated after the ones before it" in out
    assert "#1     8M: fits: at 0x" in out
    assert "#2   200M: FAILS: largest hole" in out
    assert "plan (64M,128M, headroom 25%):" in out
    assert "  vmalloc=" in out and "now (the snapshot's layout)" in out and "assumed:" in out


def test_fits_and_plan_in_json(capsys):
    code, out, _ = _run(capsys, ZTE, "--meminfo", ZTE.with_suffix(".meminfo"), "--json",
                        "--cmdline", "console=ttyS1,57600 mem=128M", "--fits", "16k,64M", "--plan", "32M",
                        "--headroom", "0.2", "--kernel", "4.1.25")
    doc = json.loads(out)
    assert code == 0 and doc["arch"] == "arm"
    fit = doc["fits"]
    assert fit["trusted"] and [a["ok"] for a in fit["answers"]] == [True, True]
    assert fit["vmalloc_start"] == "0xc8800000" and fit["vmalloc_end"] == "0xf0000000"
    assert [a["size"] for a in fit["answers"]] == [16 << 10, 64 << 20]
    plan = doc["plan"]
    # The router's own layout already holds 32M with 20% free: no vmalloc= is needed.
    assert plan["ok"] and not plan["needed"] and plan["param"] is None and plan["headroom"] == 0.2
    assert plan["reason"].startswith("no vmalloc= needed") and plan["kernel"] == "Linux 4.1.25"
    assert plan["current"]["vmalloc_start"] == "0xc8800000" and plan["assumptions"]


def test_what_if_on_hashed_or_unknown_arch_answers_without_failing(capsys):
    code, out, _ = _run(capsys, HASHED, "--json", "--fits", "8M", "--plan", "8M")
    doc = json.loads(out)
    assert code == 0
    assert not doc["fits"]["trusted"] and "cannot be trusted" in doc["fits"]["error"]
    assert "cannot be trusted" in doc["plan"]["error"]
    code, out, err = _run(capsys, ZTE, "--arch", "mips", "--fits", "8M")
    assert code == 2 and "unknown arch; known: x86_64" in err and "mips32" in err
    code, out, _ = _run(capsys, ZTE, "--arch", "mips32", "--fits", "8M")
    assert code == 0 and "mips32 has no machine profile" in out


@pytest.mark.parametrize(("argv", "expected"), [
    (("--fits", "8Q"), "pyvmalloc analyze: --fits: '8Q' is not a size"),
    (("--plan", "8M,,9M"), "pyvmalloc analyze: --plan: empty size in '8M,,9M'"),
    (("--plan", "8M", "--headroom", "100%"),
     "pyvmalloc analyze: --headroom: headroom '100%' must be at least 0% and below 100%"),
    (("--plan", "8M", "--cmdline", "console=ttyS0 vmalloc=lots"),
     "pyvmalloc analyze: vmalloc=lots: 'lots' is not a size"),
    (("--fits", "8M", "--arch", "i386"),
     "{}:1: area 0xbf000000 lies below i386's kernel space (PAGE_OFFSET 0xc0000000): "
     "is the arch right?"),
])
def test_bad_what_if_options_give_one_line_and_exit_2(capsys, argv, expected: str):
    code, out, err = _run(capsys, ZTE, *argv)
    assert code == 2 and out == ""
    assert _one_error_line(err) == expected.format(ZTE)
