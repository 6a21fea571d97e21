"""Layer procfs (see shared DESIGN.md): /proc/vmallocinfo and /proc/meminfo as text formats."""

from pyvmalloc.procfs.meminfo import parse_meminfo, render_meminfo
from pyvmalloc.procfs.vmallocinfo import (
    VmallocinfoLine,
    VmallocinfoSnapshot,
    parse_vmallocinfo,
    render_vmallocinfo,
)

__all__ = ["VmallocinfoLine", "VmallocinfoSnapshot", "parse_meminfo", "parse_vmallocinfo",
           "render_meminfo", "render_vmallocinfo"]
