"""Argument checks of the public mm/vmalloc.c entry points, run before anything is taken.

A C caller cannot pass a float as a size, a string as a caller or a 2-D array as a page
list: the compiler refuses it.  The model's Python callers can, so every public method of
``Vmalloc`` passes its arguments through these helpers first: a wrong Python type raises one
``TypeError`` naming the function and the argument, a value the kernel would misuse (an
unknown pgprot name, a node that does not exist, a range outside the areas' ranges) one
``ValueError``; a refused call changes nothing.  NumPy integers are integers.

Where the kernel has its own answer to a bad value (NULL, ``-EINVAL``, a WARN, a BUG), the
helpers let the value through and the method gives that answer; see ``api.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pyvmalloc.vmalloc.vm_struct import vm_struct

if TYPE_CHECKING:
    from pyvmalloc.arch import ArchProfile

INTEGERS = (int, np.integer)


def integer(fn: str, name: str, value: object) -> int:
    """``value`` as a Python int; TypeError for anything but an int or a NumPy integer
    (``bool`` included: ``vmalloc(True)`` is a mistake, not a one-byte request)."""
    if type(value) is int:  # the common case first: every call checks several integers
        return value
    if isinstance(value, bool) or not isinstance(value, INTEGERS):
        raise TypeError(f"{fn}(): {name} must be an integer, not {type(value).__name__} {value!r}")
    return int(value)


def address(fn: str, name: str, value: object) -> int | None:
    """A pointer argument: an integer, or None (NULL)."""
    return None if value is None else integer(fn, name, value)


def caller(fn: str, value: object) -> str | None:
    """The ``caller`` shown in /proc/vmallocinfo: a string, or None for the function's name."""
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{fn}(): caller must be a string or None, not {type(value).__name__} {value!r}")
    return value


def node(fn: str, value: object, nr_nodes: int) -> int:
    """A NUMA node: NUMA_NO_NODE (-1) or an online node.

    Any other value is a caller bug in every kernel the model runs, not an answer it gives:
    6.1 include/linux/gfp.h ``__alloc_pages_node`` has ``VM_BUG_ON(nid < 0 || nid >=
    MAX_NUMNODES)`` and ``alloc_pages_bulk_array_node`` indexes ``NODE_DATA(nid)``; 2.6.22's
    ``kmalloc_node`` (mm/slab.c ``__cache_alloc_node``) maps only -1 to the local node and
    then indexes ``cachep->nodelists[nodeid]``.  An out-of-bounds index is undefined, so the
    model refuses the node before anything is taken instead of inventing a half-built state.
    """
    nid = integer(fn, "node", value)
    if nid != -1 and not 0 <= nid < nr_nodes:
        raise ValueError(f"{fn}(): node {nid} does not exist (NUMA_NO_NODE is -1; this machine "
                         f"has node{'s 0..' + str(nr_nodes - 1) if nr_nodes > 1 else ' 0'})")
    return nid


def prot(fn: str, value: object, profile: ArchProfile) -> int:
    """A ``pgprot_t``: None (PAGE_KERNEL), a name the arch defines, or an integer pgprot.

    The integer must carry the arch's present (valid) bit: a kernel PTE that is neither none
    nor present is what ``vunmap_pte_range`` WARNs about (2.6.22 and 6.1 mm/vmalloc.c:
    ``WARN_ON(!pte_none(ptent) && !pte_present(ptent))``), and no kernel caller maps vmalloc
    memory with such a pgprot; ``prot=0`` is refused here for that reason.
    """
    if value is None:
        return profile.pgprot("PAGE_KERNEL")
    if isinstance(value, str):
        for k, v in profile.prots:
            if k == value:
                return v
        known = ", ".join(k for k, _v in profile.prots)
        raise ValueError(f"{fn}(): prot {value!r} is not a pgprot of {profile.name} (known: {known})")
    if isinstance(value, bool) or not isinstance(value, INTEGERS):
        raise TypeError(f"{fn}(): prot must be a pgprot name, an integer or None, not {type(value).__name__} {value!r}")
    bits = int(value)
    pte = profile.pte
    if bits < 0 or bits >> (8 * pte.entry_size) or bits & pte.addr_mask:
        raise ValueError(f"{fn}(): prot {bits:#x} is not a pgprot value of {profile.name} "
                         "(negative, too wide, or overlapping the address field)")
    if not pte.pte_present(bits):
        raise ValueError(f"{fn}(): prot {bits:#x} has no present bit on {profile.name}: its PTEs "
                         "would be neither none nor present (vunmap_pte_range WARNs on those)")
    return bits


def pages(fn: str, value: object, count: int | None = None) -> npt.NDArray[np.int64]:
    """A page list for vmap: a 1-D sequence or array of pages (``Page``), pfns or None (NULL).

    Returns the first ``count`` entries (all of them when ``count`` is None) as pfns (NULL as
    -1).  ``count`` entries must exist: the kernel would read past the caller's array.
    """
    if isinstance(value, np.ndarray):
        if value.ndim != 1 or not (np.issubdtype(value.dtype, np.integer) or value.dtype == object):
            raise TypeError(f"{fn}(): pages must be a 1-D array of pfns, not a {value.ndim}-D {value.dtype} array")
        items: Any = value.tolist() if value.dtype == object else value
    elif isinstance(value, (str, bytes, bytearray)) or not isinstance(value, Sequence):
        raise TypeError(f"{fn}(): pages must be a sequence of pages, pfns or None, not {type(value).__name__}")
    else:
        items = value
    if count is None:
        count = len(items)
    if len(items) < count:
        raise ValueError(f"{fn}(): pages has {len(items)} entries, fewer than count={count}")
    if isinstance(items, np.ndarray):
        out = items[:count].astype(np.int64)
    else:
        out = np.empty(count, dtype=np.int64)
        for i, p in enumerate(items[:count]):
            if p is None:
                out[i] = -1
            elif isinstance(p, INTEGERS) and not isinstance(p, bool):
                out[i] = _pfn(fn, i, int(p))
            elif isinstance(getattr(p, "pfn", None), INTEGERS):
                out[i] = _pfn(fn, i, int(p.pfn))
            else:
                raise TypeError(f"{fn}(): pages[{i}] must be a page, a pfn or None, not {type(p).__name__} {p!r}")
    if len(out) and int(out.min()) < -1:
        raise ValueError(f"{fn}(): pages holds pfn {int(out.min())} (NULL is None or -1)")
    return out


def _pfn(fn: str, i: int, pfn: int) -> int:
    """A pfn that fits ``unsigned long`` page numbers the model stores (int64)."""
    if not -1 <= pfn < 1 << 63:
        raise ValueError(f"{fn}(): pages[{i}] holds pfn {pfn}: no page frame number (NULL is None or -1)")
    return pfn


def area(fn: str, value: object) -> None:
    """A ``struct vm_struct *``: the area object, not its address."""
    if not isinstance(value, vm_struct):
        raise TypeError(f"{fn}(): area must be a vm_struct (what get_vm_area returned), "
                        f"not {type(value).__name__} {value!r}")


def data(fn: str, value: object) -> bytes:
    """A source buffer: bytes, bytearray or memoryview (``bytes(5)`` would be five NULs)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{fn}(): data must be bytes-like, not {type(value).__name__} {value!r}")
    return bytes(value)


def vrange(fn: str, start: object, end: object, page_size: int,
           ranges: Sequence[tuple[int, int, str]]) -> tuple[int, int]:
    """``[start, end)`` for an area search: ``start`` page-aligned, the range non-empty and inside
    one of ``ranges`` (``Vmalloc.vm_ranges``: the vmalloc area, the module area and its windows,
    a snapshot's fixed ranges).

    6.1's ``alloc_vmap_area`` does not check ``vstart``/``vend`` (its free tree covers
    ``1..ULONG_MAX`` outside the busy areas: ``vmap_init_free_space``), and 2.6.22's
    ``__get_vm_area_node`` walks vmlist from ``ALIGN(start, align)``: both would hand out,
    say, 0x1000 and map kernel pages over it, or an unaligned address.  Every kernel caller
    passes VMALLOC_START..END, MODULES_VADDR..END or an arch's fixed window, so the model
    refuses any other range as the caller bug it is.
    """
    lo = integer(fn, "start", start)
    hi = integer(fn, "end", end)
    if lo % page_size:
        raise ValueError(f"{fn}(): start {lo:#x} is not page-aligned")
    if not any(s <= lo < hi <= e for s, e, _name in ranges):
        names = ", ".join(f"{name} [{s:#x}, {e:#x})" for s, e, name in ranges)
        raise ValueError(f"{fn}(): [{lo:#x}, {hi:#x}) is not inside a range vmalloc areas may use ({names})")
    return lo, hi


__all__ = ["address", "caller", "data", "integer", "node", "pages", "prot", "vrange"]
