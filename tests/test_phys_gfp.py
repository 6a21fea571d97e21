"""GFP flags of Linux 2.6.22 in pyvmalloc.phys.gfp: values, names, zone fallback."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvmalloc.errors import FormatError
from pyvmalloc.phys import gfp as G


def test_values_of_2_6_22() -> None:
    # include/linux/gfp.h, 2.6.22
    assert (G.__GFP_DMA, G.__GFP_HIGHMEM, G.__GFP_DMA32) == (0x01, 0x02, 0x04)
    assert (G.__GFP_WAIT, G.__GFP_HIGH, G.__GFP_IO, G.__GFP_FS) == (0x10, 0x20, 0x40, 0x80)
    assert (G.__GFP_ZERO, G.__GFP_THISNODE, G.__GFP_MOVABLE) == (0x8000, 0x40000, 0x80000)
    assert (G.GFP_KERNEL, G.GFP_ATOMIC, G.GFP_NOWAIT) == (0xD0, 0x20, 0)
    assert (G.GFP_USER, G.GFP_HIGHUSER) == (0x200D0, 0x200D2)
    assert G.GFP_LEVEL_MASK == 0x77FF0  # everything but the zone modifiers and __GFP_ZERO
    assert G.GFP_LEVEL_MASK & (G.GFP_ZONEMASK | G.__GFP_ZERO) == 0


@given(st.integers(0, G.__GFP_BITS_MASK << 2))
def test_names_parse_back(gfp: int) -> None:
    assert G.gfp_parse(G.gfp_names(gfp)) == gfp


@pytest.mark.parametrize("gfp,name", [
    (G.GFP_KERNEL | G.__GFP_ZERO, "GFP_KERNEL|__GFP_ZERO"),
    (G.GFP_KERNEL | G.__GFP_HIGHMEM, "GFP_KERNEL|__GFP_HIGHMEM"),
    (G.GFP_HIGHUSER, "GFP_HIGHUSER"),
    (G.GFP_ATOMIC, "GFP_ATOMIC"),
    (0, "GFP_NOWAIT"),
    (G.GFP_DMA32 | G.GFP_KERNEL, "GFP_KERNEL|GFP_DMA32"),
])
def test_names(gfp: int, name: str) -> None:
    assert G.gfp_names(gfp) == name


def test_parse_rejects_unknown_names() -> None:
    with pytest.raises(FormatError, match="GFP_BOGUS"):
        G.gfp_parse("GFP_KERNEL|GFP_BOGUS")


ALL = ["DMA", "DMA32", "NORMAL", "HIGHMEM"]


@pytest.mark.parametrize("gfp,present,expected", [
    (G.GFP_KERNEL | G.__GFP_HIGHMEM, ALL, ["HIGHMEM", "NORMAL", "DMA32", "DMA"]),
    (G.GFP_KERNEL | G.__GFP_HIGHMEM, ["DMA", "DMA32", "NORMAL"], ["NORMAL", "DMA32", "DMA"]),
    (G.GFP_KERNEL, ALL, ["NORMAL", "DMA32", "DMA"]),
    (G.GFP_DMA32, ALL, ["DMA32", "DMA"]),
    (G.GFP_DMA32, ["DMA", "NORMAL", "HIGHMEM"], ["DMA"]),
    (G.GFP_DMA, ALL, ["DMA"]),
    (G.GFP_DMA | G.__GFP_HIGHMEM, ALL, ["DMA"]),  # gfp_zone(): __GFP_DMA wins
    (G.GFP_KERNEL, ["HIGHMEM"], []),
])
def test_zonelists(gfp: int, present: list[str], expected: list[str]) -> None:
    assert G.gfp_zonelist(gfp, present) == expected


@given(gfp=st.integers(0, G.__GFP_BITS_MASK), present=st.sets(st.sampled_from(ALL)))
def test_zonelist_is_the_preferred_zone_and_all_below(gfp: int, present: set[str]) -> None:
    zl = G.gfp_zonelist(gfp, present)
    top = ALL.index(G.gfp_zone(gfp))
    assert zl == [z for z in reversed(ALL[:top + 1]) if z in present]
