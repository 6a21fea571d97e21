"""/proc/meminfo: the kernel's layout, read and written back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvmalloc.errors import FormatError
from pyvmalloc.formats.meminfo import COUNT_FIELDS, parse_meminfo, render_meminfo

# The head of GoCleverInsignia5/i5_info proc/meminfo (3.4.5) and lines of a 4.18 kernel, as the
# kernels printed them (fs/proc/meminfo.c, mm/hugetlb.c hugetlb_report_meminfo).
REAL = (
    "MemTotal:         990732 kB\n"
    "Active(anon):     249096 kB\n"
    "Committed_AS:    5714904 kB\n"
    "VmallocTotal:     540672 kB\n"
    "VmallocUsed:      147764 kB\n"
    "VmallocChunk:     141316 kB\n"
    "HardwareCorrupted:     0 kB\n"
    "AnonHugePages:    342016 kB\n"
    "HugePages_Total:       0\n"
    "HugePages_Free:        0\n"
    "HugePages_Rsvd:        0\n"
    "HugePages_Surp:        0\n"
    "Hugepagesize:       2048 kB\n"
    "DirectMap4k:      180160 kB\n"
)


def test_real_lines_render_byte_for_byte():
    fields = parse_meminfo(REAL, "meminfo")
    assert fields["VmallocUsed"] == 147764 and fields["Active(anon)"] == 249096
    assert fields["HugePages_Total"] == 0
    assert render_meminfo(fields) == REAL


def test_wide_values_are_not_cut():
    # x86_64 VmallocTotal has 11 digits: printed whole after the 16-column label.
    text = render_meminfo({"VmallocTotal": 34359738367})
    assert text == "VmallocTotal:   34359738367 kB\n"
    assert parse_meminfo(text) == {"VmallocTotal": 34359738367}


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(
    st.one_of(st.sampled_from(sorted(COUNT_FIELDS)),
              st.from_regex(r"[A-Za-z][A-Za-z0-9_()]{0,24}", fullmatch=True)),
    st.integers(0, 1 << 64)))
def test_render_then_parse_is_the_identity(fields):
    text = render_meminfo(fields)
    assert parse_meminfo(text) == fields
    for line in text.splitlines():
        name = line.split(":", 1)[0]
        assert line.endswith(" kB") != (name in COUNT_FIELDS)


@pytest.mark.parametrize(("text", "message"), [
    ("MemTotal 990732 kB\n", "no ':'"),
    ("MemTotal:\n", "truncated line: MemTotal has no value"),
    ("MemTotal:   99x732 kB\n", "value is not a decimal number"),
    ("MemTotal:   -5 kB\n", "value is not a decimal number"),
    ("MemTotal:   990732 MB\n", "expected 'kB' or nothing"),
    ("MemTotal:   990732 kB extra\n", "expected 'kB' or nothing"),
    ("Mem Total:   990732 kB\n", "bad field name"),
    ("MemTotal:   1 kB\nMemFree:   1 kB\nMemTotal:   2 kB\n", "MemTotal appears twice"),
    ("MemTotal:   1 kB\x00\n", "binary data"),
])
def test_malformed_meminfo_is_named(text: str, message: str):
    with pytest.raises(FormatError) as info:
        parse_meminfo(text, "mi")
    assert info.value.where.startswith("mi:")
    assert message in info.value.what


@pytest.mark.parametrize("fields", [{"Mem Total": 1}, {"MemTotal": -1}, {"MemTotal": 1.5},
                                    {"MemTotal": True}])
def test_render_refuses_what_the_kernel_cannot_print(fields):
    with pytest.raises(FormatError):
        render_meminfo(fields)
