"""The public ``Machine``: the kernel's machine plus the constructors that need the layers above it.

``kernel.Machine`` boots arch, phys, mmu and mm/vmalloc.c; ``from_snapshot`` restores a real
``/proc/vmallocinfo`` onto one, which is the ``snapshot`` layer's work.  This thin subclass joins
the two so that ``pv.Machine`` has both while no layer imports from above.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyvmalloc.formats.vmallocinfo import VmallocinfoSnapshot
from pyvmalloc.kernel.machine import Machine as KernelMachine
from pyvmalloc.snapshot.restore import ReplayReport, SnapshotLayout, machine_from_snapshot
from pyvmalloc.viz.html_map import map_data, render_fragment

__all__ = ["Machine"]


class Machine(KernelMachine):
    """A simulated machine running Linux's vmalloc (see ``kernel.machine.Machine``).

    A machine made by :meth:`from_snapshot` also says what it was made from:
    ``snapshot_layout`` (what the dump told about its machine, and how) and
    ``snapshot_report`` (areas placed, moved, left out); both are None otherwise.
    """

    snapshot_layout: SnapshotLayout | None = None
    snapshot_report: ReplayReport | None = None

    @classmethod
    def from_snapshot(
        cls,
        vmallocinfo_text: str | VmallocinfoSnapshot,
        meminfo_text: str | Mapping[str, int] | None = None,
        arch: str | None = None,
        cmdline: str = "",
        **machine_args: Any,
    ) -> Machine:
        """A machine whose address space holds the areas of a real ``/proc/vmallocinfo`` at
        their exact addresses (see ``snapshot/restore.py``); what was guessed goes to dmesg."""
        m, layout, report = machine_from_snapshot(cls, vmallocinfo_text, meminfo_text, arch,
                                                  cmdline, **machine_args)
        m.snapshot_layout = layout
        m.snapshot_report = report
        return m

    def _repr_html_(self) -> str:
        """The machine in Jupyter: its areas on a map (hover for caller, size, pages, guard
        page) and the page-table walk of its first vmalloc area (``viz/html_map.py``)."""
        return render_fragment(map_data(self))
