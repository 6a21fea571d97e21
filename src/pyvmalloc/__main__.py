"""``python -m pyvmalloc``: the same as the ``pyvmalloc`` command."""

import sys

from pyvmalloc.cli.main import main

sys.exit(main())
