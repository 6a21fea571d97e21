"""Layer snapshot: real ``/proc/vmallocinfo`` dumps read as machines, above ``kernel``.

``layout`` reads what a dump says about its machine (arch, KASLR base, vmalloc bounds, holes)
from addresses alone; ``restore`` boots a ``kernel.Machine`` for it and puts every area back at
its address.  ``pyvmalloc.Machine.from_snapshot`` is the public door.  See ``docs/design.md``.
"""
