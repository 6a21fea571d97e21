"""The free tree implementation in use: the compiled one where built, else the reference.

``_augtree.py`` is the readable reference; ``_augtree_c`` (``_augtree_c.c``, built by ``pip
install`` where a C compiler exists) is its twin, node for node: the same shapes, answers,
``visited`` counts and ``check()`` messages (tests/test_augtree_accel.py).  The choice is made
once, at import: the compiled module unless it is missing or the environment variable
``PYVMALLOC_PURE`` is set to anything but ``""`` or ``"0"``.  ``ACCELERATED`` says which.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import TYPE_CHECKING

from pyvmalloc.vmalloc import _augtree


def _choose() -> tuple[ModuleType, bool]:
    """``(module, accelerated)``: the compiled tree unless absent or ``PYVMALLOC_PURE`` is set."""
    if os.environ.get("PYVMALLOC_PURE", "") in ("", "0"):
        try:
            from pyvmalloc.vmalloc import _augtree_c
        except ImportError:  # not built: no compiler at install time, or a plain checkout
            pass
        else:
            return _augtree_c, True
    return _augtree, False


_impl, ACCELERATED = _choose()

if TYPE_CHECKING:  # both have the reference's types (_augtree_c.pyi)
    from pyvmalloc.vmalloc._augtree import AugTree, Node, successor
else:
    AugTree, Node, successor = _impl.AugTree, _impl.Node, _impl.successor

__all__ = ["ACCELERATED", "AugTree", "Node", "successor"]
