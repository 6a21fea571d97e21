"""Layer formats: the kernel's text formats, parsed and rendered, with nothing of the model.

``/proc/vmallocinfo`` (``vmallocinfo``) and every other dump format found in the field
(``dumps``: Android bugreports, crash ``kmem -v``, gdb/drgn, Qualcomm ramdump-parser, a dump
inside a larger text), ``/proc/meminfo`` (``meminfo``) and its Vmalloc* lines by kernel
generation (``vmalloc_meminfo``), ftrace's ``vmalloc:*`` events (``trace``), and kernel logs
read for vmalloc failures (``kernel_log``).  A leaf
of the layers: it imports only ``errors``, ``sizes`` and ``versions``.  See ``docs/design.md``.
"""

from pyvmalloc.formats.meminfo import parse_meminfo, render_meminfo
from pyvmalloc.formats.vmallocinfo import (
    VmallocinfoLine,
    VmallocinfoSnapshot,
    parse_vmallocinfo,
    render_vmallocinfo,
)

__all__ = ["VmallocinfoLine", "VmallocinfoSnapshot", "parse_meminfo", "parse_vmallocinfo",
           "render_meminfo", "render_vmallocinfo"]
