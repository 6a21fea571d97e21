"""``pyvmalloc fleet PATHS...``: placeholder."""
from typing import Any


def register(sub: Any) -> None:
    """Add nothing yet."""
