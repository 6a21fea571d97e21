"""GFP flags of Linux 2.6.22 (include/linux/gfp.h), their names, and the zone fallback they select.

Values are those of 2.6.22 (the seed's kernel).  ``__GFP_MOVABLE`` is the one exception: 2.6.22
mainline had no such flag; 0x80000 is the value it had when ZONE_MOVABLE was merged for 2.6.23
(later kernels renumbered every flag; nothing here follows them).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyvmalloc.errors import FormatError

class GFPBIT:
    """The ``__GFP_*`` bits under names that survive Python's name mangling.

    Inside a class body ``__GFP_ZERO`` is rewritten to ``_Class__GFP_ZERO``; code in methods
    writes ``GFPBIT.ZERO`` instead (same value).  The module-level ``__GFP_*`` names below are
    the kernel's spelling of the same numbers.
    """

    # zone modifiers (the low bits: which zone the allocation prefers)
    DMA = 0x01
    HIGHMEM = 0x02
    DMA32 = 0x04
    # action modifiers
    WAIT = 0x10        # may sleep
    HIGH = 0x20        # may use emergency pools
    IO = 0x40          # may start physical I/O
    FS = 0x80          # may call into the file system
    COLD = 0x100       # cache-cold page wanted
    NOWARN = 0x200     # no "page allocation failure" warning
    REPEAT = 0x400     # retry, may still fail
    NOFAIL = 0x800     # retry forever
    NORETRY = 0x1000   # do not retry
    NO_GROW = 0x2000   # slab internal
    COMP = 0x4000      # compound page metadata
    ZERO = 0x8000      # return zeroed memory
    NOMEMALLOC = 0x10000
    HARDWALL = 0x20000
    THISNODE = 0x40000  # no node fallback
    MOVABLE = 0x80000   # 2.6.23 (ZONE_MOVABLE), see the module docstring


__GFP_DMA = GFPBIT.DMA
__GFP_HIGHMEM = GFPBIT.HIGHMEM
__GFP_DMA32 = GFPBIT.DMA32
__GFP_WAIT = GFPBIT.WAIT
__GFP_HIGH = GFPBIT.HIGH
__GFP_IO = GFPBIT.IO
__GFP_FS = GFPBIT.FS
__GFP_COLD = GFPBIT.COLD
__GFP_NOWARN = GFPBIT.NOWARN
__GFP_REPEAT = GFPBIT.REPEAT
__GFP_NOFAIL = GFPBIT.NOFAIL
__GFP_NORETRY = GFPBIT.NORETRY
__GFP_NO_GROW = GFPBIT.NO_GROW
__GFP_COMP = GFPBIT.COMP
__GFP_ZERO = GFPBIT.ZERO
__GFP_NOMEMALLOC = GFPBIT.NOMEMALLOC
__GFP_HARDWALL = GFPBIT.HARDWALL
__GFP_THISNODE = GFPBIT.THISNODE
__GFP_MOVABLE = GFPBIT.MOVABLE

__GFP_BITS_SHIFT = 20
__GFP_BITS_MASK = (1 << __GFP_BITS_SHIFT) - 1
GFP_ZONEMASK = __GFP_DMA | __GFP_HIGHMEM | __GFP_DMA32

# include/linux/gfp.h (2.6.22): "if you forget to add the bitmask here kernel will crash, period".
# The seed masks kmalloc_node()'s flags with it, which strips the zone modifiers and __GFP_ZERO.
GFP_LEVEL_MASK = (__GFP_WAIT | __GFP_HIGH | __GFP_IO | __GFP_FS | __GFP_COLD | __GFP_NOWARN
                  | __GFP_REPEAT | __GFP_NOFAIL | __GFP_NORETRY | __GFP_NO_GROW | __GFP_COMP
                  | __GFP_NOMEMALLOC | __GFP_HARDWALL | __GFP_THISNODE)

GFP_ATOMIC = __GFP_HIGH
GFP_NOWAIT = GFP_ATOMIC & ~__GFP_HIGH  # = 0, spelled as the kernel spells it
GFP_NOIO = __GFP_WAIT
GFP_NOFS = __GFP_WAIT | __GFP_IO
GFP_KERNEL = __GFP_WAIT | __GFP_IO | __GFP_FS
GFP_USER = __GFP_WAIT | __GFP_IO | __GFP_FS | __GFP_HARDWALL
GFP_HIGHUSER = GFP_USER | __GFP_HIGHMEM
GFP_DMA = __GFP_DMA
GFP_DMA32 = __GFP_DMA32

# enum zone_type order (include/linux/mmzone.h): lower index = lower addresses.
ZONE_NAMES: tuple[str, ...] = ("DMA", "DMA32", "NORMAL", "HIGHMEM")

# Names for gfp_names(): composites first (largest first), then single bits.
_COMPOSITES: tuple[tuple[str, int], ...] = (
    ("GFP_HIGHUSER", GFP_HIGHUSER),
    ("GFP_USER", GFP_USER),
    ("GFP_KERNEL", GFP_KERNEL),
    ("GFP_NOFS", GFP_NOFS),
    ("GFP_NOIO", GFP_NOIO),
)
_BITS: tuple[tuple[str, int], ...] = tuple(
    (f"__GFP_{name}", value) for name, value in vars(GFPBIT).items() if name.isupper()
)
# Every name gfp_parse() accepts.
GFP_BY_NAME: dict[str, int] = {
    **dict(_BITS), **dict(_COMPOSITES),
    "GFP_ATOMIC": GFP_ATOMIC, "GFP_NOWAIT": GFP_NOWAIT, "GFP_DMA": GFP_DMA,
    "GFP_DMA32": GFP_DMA32, "GFP_LEVEL_MASK": GFP_LEVEL_MASK,
}


def gfp_zone(gfp: int) -> str:
    """The zone an allocation with ``gfp`` prefers (gfp_zone(), 2.6.22).

    The kernel tests the modifiers in this order: __GFP_DMA, then __GFP_DMA32, then
    __GFP_HIGHMEM; with none of them the allocation wants ZONE_NORMAL.
    """
    if gfp & __GFP_DMA:
        return "DMA"
    if gfp & __GFP_DMA32:
        return "DMA32"
    if gfp & __GFP_HIGHMEM:
        return "HIGHMEM"
    return "NORMAL"


def gfp_zonelist(gfp: int, zones_present: Iterable[str]) -> list[str]:
    """Zones tried, in order, for ``gfp`` on a node that has ``zones_present``.

    mm/page_alloc.c (2.6.22) build_zonelists_node(): the zonelist for a zone type holds that zone
    and every lower one, highest first, skipping zones that are not populated.  So
    __GFP_HIGHMEM gives HIGHMEM, NORMAL, DMA32, DMA; GFP_KERNEL gives NORMAL, DMA32, DMA;
    __GFP_DMA32 gives DMA32, DMA; __GFP_DMA gives DMA only.
    """
    present = set(zones_present)
    top = ZONE_NAMES.index(gfp_zone(gfp))
    return [ZONE_NAMES[i] for i in range(top, -1, -1) if ZONE_NAMES[i] in present]


def gfp_names(gfp: int) -> str:
    """``gfp`` spelled with the kernel's names, e.g. ``"GFP_KERNEL|__GFP_ZERO"``.

    The largest composite (GFP_HIGHUSER, GFP_USER, GFP_KERNEL, GFP_NOFS, GFP_NOIO) that fits is
    named first, then single bits; __GFP_HIGH without __GFP_WAIT reads as GFP_ATOMIC, a lone
    __GFP_DMA/__GFP_DMA32 as GFP_DMA/GFP_DMA32; bits with no name end as a hex number; 0 is
    GFP_NOWAIT.
    """
    rest = int(gfp)
    if rest == 0:
        return "GFP_NOWAIT"
    parts: list[str] = []
    for name, value in _COMPOSITES:
        if rest & value == value:
            parts.append(name)
            rest &= ~value
            break
    if rest & __GFP_HIGH and not gfp & __GFP_WAIT:
        parts.append("GFP_ATOMIC")
        rest &= ~__GFP_HIGH
    for name, value in _BITS:
        if rest & value:
            if value in (__GFP_DMA, __GFP_DMA32):
                name = name[2:]  # GFP_DMA, GFP_DMA32: the kernel's own names for these
            parts.append(name)
            rest &= ~value
    if rest:
        parts.append(f"{rest:#x}")
    return "|".join(parts)


def gfp_parse(text: str) -> int:
    """The value of ``text`` such as ``"GFP_KERNEL|__GFP_HIGHMEM"`` or ``"0xd2"``.

    Raises FormatError naming the part it does not know.
    """
    value = 0
    for part in str(text).split("|"):
        part = part.strip()
        if part in GFP_BY_NAME:
            value |= GFP_BY_NAME[part]
            continue
        try:
            value |= int(part, 0)
        except ValueError:
            raise FormatError("gfp", f"unknown GFP flag {part!r}") from None
    return value
