"""/proc/vmallocinfo: every shipped real dump parses, renders back, and malformed text is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvmalloc.errors import FormatError
from pyvmalloc.formats.vmallocinfo import (
    KNOWN_FLAG_WORDS,
    UNPURGED,
    VM_MAP_RAM,
    VmallocinfoLine,
    parse_vmallocinfo,
    render_vmallocinfo,
)

DATA = Path(__file__).parent / "data" / "vmallocinfo"
DUMPS = sorted(DATA.glob("*.txt"))
HASHED = "x86_64-rhel8-sosreport-hashed.txt"


def _sources_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (DATA / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].endswith(".txt"):
            rows[cells[0]] = cells
    return rows


def _load(name: str):
    return parse_vmallocinfo((DATA / name).read_text(), name)


def test_all_seven_dumps_are_shipped():
    assert len(DUMPS) == 7
    assert set(_sources_rows()) == {p.name for p in DUMPS}


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_real_dump_parses_every_line(path: Path):
    snap = parse_vmallocinfo(path.read_text(), path.name)
    assert len(snap) == int(_sources_rows()[path.name][1])
    assert snap.addresses_trusted == (path.name != HASHED), snap.address_reason
    assert [ln.lineno for ln in snap] == list(range(1, len(snap) + 1))


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name)
def test_real_dump_renders_back_to_the_same_records(path: Path):
    snap = parse_vmallocinfo(path.read_text(), path.name)
    again = parse_vmallocinfo(render_vmallocinfo(snap.lines, snap.address_bits), "rendered")
    assert again.lines == snap.lines
    assert again.addresses_trusted == snap.addresses_trusted


def test_current_kernel_format_renders_byte_for_byte():
    # Lines as a 4.18 kernel wrote them (%pK, phys=%pa, N%d=%u): rendering them reproduces the text.
    text = "".join(line for line in (DATA / HASHED).read_text().splitlines(keepends=True)[:40])
    assert render_vmallocinfo(parse_vmallocinfo(text).lines, 64) == text


def test_hashed_snapshot_is_detected_and_said():
    snap = _load(HASHED)
    assert not snap.addresses_trusted
    assert "%pK" in snap.address_reason
    assert snap.address_bits == 64
    assert any("only address-free" in w for w in snap.warnings)
    kinds = [ln.kinds for ln in snap]
    assert kinds.count((UNPURGED,)) == 42
    assert kinds.count((VM_MAP_RAM,)) == 1
    ram = next(ln for ln in snap if ln.kinds == (VM_MAP_RAM,))
    assert ram.caller is None and ram.primary_kind == "vm_map_ram"
    assert ram.has_guard_page is False
    first = snap.lines[0]
    assert first.phys == 0xF7FF8000 and first.kinds == ("ioremap",)
    assert snap.lines[8].numa == {0: 1}


def test_zeroed_pointers_are_not_trusted():
    text = "0x0000000000000000-0x0000000000000000    8192 foo+0x1/0x2 pages=1 vmalloc\n" * 3
    snap = parse_vmallocinfo(text)
    assert not snap.addresses_trusted and "as 0" in snap.address_reason


def test_old_format_details_are_kept():
    snap = _load("arm32-fullhan-fh8852-asecam-3.0.8.txt")
    assert snap.address_bits == 32
    raw = [ln for ln in snap if ln.caller and ln.caller.startswith("0x")]
    assert raw and raw[0].caller == "0xbf00e11c" and raw[0].kinds == ("ioremap",)
    bare = [ln for ln in snap if not ln.kinds]
    assert len(bare) == 1
    assert bare[0].caller == "firmware_loading_store+0x150/0x1c4"
    assert bare[0].primary_kind == "other"
    module = next(ln for ln in snap if ln.module == "hevc")
    assert module.caller == "hevc_chn_mem_init+0x6ac/0xb7c [hevc]"
    assert module.function == "hevc_chn_mem_init"


def test_phys_without_0x_and_vendor_words():
    jieuno = _load("arm32-fullhan-fh8856v200-jieuno-4.9.129.txt")
    line = next(ln for ln in jieuno if ln.caller and ln.caller.startswith("fh_axi_dma"))
    assert line.phys == 0xE0300000
    qcom = _load("arm32-qcom-mdm9607-jmr540-3.18.20.txt")
    lowmem = [ln for ln in qcom if "lowmem" in ln.kinds]
    assert len(lowmem) == 2
    assert all(ln.unknown_words == ("lowmem",) and ln.primary_kind == "lowmem" for ln in lowmem)
    assert qcom.addresses_trusted
    assert any("'lowmem'" in w and "2 lines" in w for w in qcom.warnings)


def test_vpages_is_never_a_kind_of_its_own():
    text = "0xde151000-0xde153000    8192 f+0x8c/0x14c [m] vmalloc vpages\n"
    line = parse_vmallocinfo(text).lines[0]
    assert line.primary_kind == "vmalloc" and line.kinds == ("vmalloc", "vpages")
    only = parse_vmallocinfo("0xde151000-0xde153000    8192 f+0x8c/0x14c vpages\n").lines[0]
    assert only.primary_kind == "other"


def test_empty_text_is_a_valid_snapshot():
    for text in ("", "\n", "   \n\n"):
        snap = parse_vmallocinfo(text)
        assert len(snap) == 0 and snap.addresses_trusted


MALFORMED = [
    ("0xbf000000-0xbf003000\n", 1, "truncated line: no size"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2\n0xbf003000-\n", 2, "truncated line: no end address"),
    ("0xbf000000\n", 1, "truncated line: expected 0xSTART-0xEND"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2 pages=\n", 1, "truncated line: pages= has no value"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2 phys=0x\n", 1, "truncated line: phys= has no digits"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2 N0=\n", 1, "truncated line: 'N0=' has no page count"),
    ("0xbf00g000-0xbf003000   12288 f+0x1/0x2 ioremap\n", 1,
     "bad hex in start address: 'bf00g000'"),
    ("0xbf000000-0xbf0030z0   12288 f+0x1/0x2 ioremap\n", 1, "bad hex in end address"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2 phys=12q4 ioremap\n", 1, "bad hex in phys="),
    ("0xbf000000-0xbf003000   12x88 f+0x1/0x2 ioremap\n", 1, "size is not a decimal number"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2 pages=3x vmalloc\n", 1, "pages= is not a decimal"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2 pages=2 pages=2 vmalloc\n", 1,
     "pages= printed twice"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2 vmalloc vmalloc\n", 1, "'vmalloc' printed twice"),
    ("0xbf000000-0xbf003000   12288 vmalloc f+0x1/0x2\n", 1,
     "caller 'f+0x1/0x2' after the flag words"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2 (ptrval)\n", 1, "unexpected '(ptrval)'"),
    ("bf000000-0xbf003000   12288 f+0x1/0x2 ioremap\n", 1,
     "start address 'bf000000' does not begin with 0x"),
    ("0xbf000000-0xbf003000   12288 f+0x1/0x2\x00 ioremap\n", 1, "binary data (NUL byte)"),
]


@pytest.mark.parametrize(("text", "lineno", "message"), MALFORMED)
def test_malformed_lines_are_named(text: str, lineno: int, message: str):
    with pytest.raises(FormatError) as info:
        parse_vmallocinfo(text, "dump.txt")
    assert info.value.where == f"dump.txt:{lineno}"
    assert message in info.value.what


def test_end_below_start_and_wrong_size_in_a_real_snapshot():
    good = (DATA / "arm32-zte-router-mt7615-4.1.25.txt").read_text().splitlines(keepends=True)
    backwards = good[:5] + ["0xc9000000-0xc8fff000    4096 f+0x1/0x2 ioremap\n"] + good[5:]
    with pytest.raises(FormatError, match=r"x:6: end 0xc8fff000 below start 0xc9000000"):
        parse_vmallocinfo("".join(backwards), "x")
    wrong = good[:7] + ["0xc9000000-0xc9002000    4096 f+0x1/0x2 ioremap\n"] + good[7:]
    with pytest.raises(FormatError, match=r"x:8: size 4096 does not match end - start = 8192"):
        parse_vmallocinfo("".join(wrong), "x")


def test_overlapping_areas_name_both_lines():
    text = ("0xc8804000-0xc8a05000 2101248 atomic_pool_init+0x0/0x12c user\n"
            "0xd0000000-0xd0002000    8192 f+0x1/0x2 ioremap\n"
            "0xc8a04000-0xc8a08000   16384 g+0x38/0xd8 user\n")
    with pytest.raises(FormatError) as info:
        parse_vmallocinfo(text, "dump.txt")
    assert info.value.where == "dump.txt:3"
    assert info.value.what == ("area 0xc8a04000-0xc8a08000 overlaps line 1 "
                               "(0xc8804000-0xc8a05000)")


def test_overlap_is_not_judged_in_a_hashed_snapshot():
    # Hashed values chain (end of one line = start of the next) and cross; that is not an error.
    snap = _load(HASHED)
    assert any(ln.end < ln.start for ln in snap)


# -- properties ---------------------------------------------------------------------------

_symbols = st.from_regex(r"[a-z_][a-z0-9_]{0,12}(\.constprop\.[0-9])?", fullmatch=True)
_callers = st.one_of(
    st.builds(lambda s, o, z, m: f"{s}+0x{o:x}/0x{z:x}" + (f" [{m}]" if m else ""),
              _symbols, st.integers(0, 0xFFF), st.integers(1, 0xFFFF),
              st.one_of(st.none(), st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True))),
    st.integers(0, 2**32 - 1).map(lambda a: f"0x{a:x}"),
)
_flag_sets = st.lists(st.sampled_from(KNOWN_FLAG_WORDS), unique=True).map(
    lambda ws: tuple(w for w in KNOWN_FLAG_WORDS if w in ws))


@st.composite
def _areas(draw, bits: int) -> list[VmallocinfoLine]:
    n = draw(st.integers(0, 12))
    cursor = draw(st.integers(1, 1 << (bits - 14))) << 12  # kernel addresses are never 0
    out = []
    for i in range(n):
        cursor += draw(st.integers(0, 64)) * 4096
        size = draw(st.integers(0, 64)) * 4096
        if cursor + size >= 1 << bits:
            break
        special = draw(st.sampled_from((None, None, None, VM_MAP_RAM, UNPURGED)))
        if special:
            line = VmallocinfoLine(cursor, cursor + size, size, kinds=(special,), lineno=i + 1)
        else:
            line = VmallocinfoLine(
                cursor, cursor + size, size,
                caller=draw(st.one_of(st.none(), _callers)),
                nr_pages=draw(st.one_of(st.none(), st.integers(1, 1 << 20))),
                phys=draw(st.one_of(st.none(), st.integers(1, (1 << bits) - 1))),
                kinds=draw(_flag_sets) + draw(st.sampled_from(((), ("lowmem",)))),
                numa=draw(st.dictionaries(st.integers(0, 7), st.integers(1, 1 << 16), max_size=3)),
                lineno=i + 1)
            if "lowmem" in line.kinds:
                line = VmallocinfoLine(**{**line.__dict__, "unknown_words": ("lowmem",)})
        out.append(line)
        cursor += size
    return out


@settings(max_examples=150, deadline=None)
@given(st.sampled_from((32, 64)).flatmap(lambda b: st.tuples(st.just(b), _areas(b))))
def test_render_then_parse_is_the_identity(case):
    bits, areas = case
    text = render_vmallocinfo(areas, bits)
    snap = parse_vmallocinfo(text)
    assert snap.lines == areas
    assert snap.addresses_trusted
    assert snap.address_bits == bits or not areas
    for line in text.splitlines():
        start = line.split("-", 1)[0]
        assert len(start) == 2 + bits // 4


_SEED = (DATA / "arm32-fullhan-fh8852-asecam-3.0.8.txt").read_text()
_ALPHABET = "0123456789abcdefx-+/=[] \n\tNvmalocpegusrhy.\x00\u00e9"


@st.composite
def _mutated(draw) -> str:
    text = _SEED
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(("delete", "insert", "replace", "truncate", "dup", "swap")))
        pos = draw(st.integers(0, len(text)))
        if op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)):]
        elif op == "insert":
            text = text[:pos] + draw(st.text(_ALPHABET, min_size=1, max_size=6)) + text[pos:]
        elif op == "replace":
            text = text[:pos] + draw(st.sampled_from(_ALPHABET)) + text[pos + 1:]
        elif op == "truncate":
            text = text[:pos]
        else:
            lines = text.splitlines(keepends=True)
            if len(lines) >= 2:
                i = draw(st.integers(0, len(lines) - 2))
                if op == "dup":
                    lines.insert(i, lines[i])
                else:
                    lines[i], lines[i + 1] = lines[i + 1], lines[i]
                text = "".join(lines)
    return text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutated())
def test_mutated_input_raises_nothing_but_format_error(text: str):
    try:
        snap = parse_vmallocinfo(text, "m.txt")
    except FormatError as exc:
        assert re.fullmatch(r"m\.txt:[0-9]+", exc.where), exc.where
        assert exc.what and "\n" not in exc.what
        return
    # What parses renders back to the same records.
    assert parse_vmallocinfo(render_vmallocinfo(snap.lines, snap.address_bits)).lines == snap.lines
