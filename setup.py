"""Build the optional compiled free tree; the metadata is pyproject.toml's.

``pyvmalloc.vmalloc._augtree_c`` is the C twin of ``_augtree.py`` (the kva allocator's augmented
tree).  ``optional=True``: where no C compiler works, setuptools warns and installs the pure-Python
package, which ``pyvmalloc.vmalloc.augtree`` then falls back to.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "pyvmalloc.vmalloc._augtree_c",
            ["src/pyvmalloc/vmalloc/_augtree_c.c"],
            optional=True,
        ),
    ],
)
