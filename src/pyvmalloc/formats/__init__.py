"""Layer formats: the kernel's text formats, parsed and rendered, with nothing of the model.

``/proc/vmallocinfo`` (``vmallocinfo``), ``/proc/meminfo`` (``meminfo``) and its Vmalloc* lines
by kernel generation (``vmalloc_meminfo``), and ftrace's ``vmalloc:*`` events (``trace``).  A leaf
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
