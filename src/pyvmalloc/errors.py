"""Exception types shared by every layer (the only module every layer may import)."""

from __future__ import annotations


class PyvmallocError(Exception):
    """Base of every error the model raises on purpose."""


class ConfigError(PyvmallocError, ValueError):
    """A machine configuration the model cannot boot: one clear sentence says why."""


class KernelBug(PyvmallocError):
    """The kernel would have hit ``BUG()``/``BUG_ON()`` here (an oops, not a recoverable error)."""


class Inconsistency(PyvmallocError):
    """``Machine.check()`` found a broken invariant; the message names the first one."""


class PageFault(PyvmallocError):
    """A CPU access that the MMU refused: ``address``, ``access`` and ``reason``.

    ``access`` is ``"read"``, ``"write"`` or ``"exec"``; ``reason`` is a short phrase such as
    ``"not present (pte)"`` or ``"protection (user access to kernel page)"``.
    """

    def __init__(self, address: int, access: str, reason: str) -> None:
        self.address = address
        self.access = access
        self.reason = reason
        super().__init__(f"page fault: {access} at {address:#x}: {reason}")


class FormatError(PyvmallocError, ValueError):
    """Malformed input text: ``where`` is ``FILE:LINE`` (or a name), ``what`` says what is wrong."""

    def __init__(self, where: str, what: str) -> None:
        self.where = where
        self.what = what
        super().__init__(f"{where}: {what}")
