"""A readers-writer lock with the semantics of ``rwlock_t`` (``vmlist_lock``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType


class _Side:
    """One side of the lock as a context manager (a plain object: no generator per use)."""

    __slots__ = ("_enter", "_exit")

    def __init__(self, enter: Callable[[], None], leave: Callable[[], None]) -> None:
        self._enter = enter
        self._exit = leave

    def __enter__(self) -> None:
        self._enter()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._exit()


class RWLock:
    """Many readers or one writer; a waiting writer holds back new readers (no writer starvation).

    Unlike the kernel's spinning rwlock, waiters sleep on a condition variable: Python threads
    cannot spin usefully under the GIL.  Not recursive, as ``rwlock_t`` is not.
    """

    def __init__(self) -> None:
        # The condition's own lock, taken directly (a C context manager) where the condition's
        # Python-level __enter__/__exit__ would cost more than the lock itself; wait() and
        # notify_all() still go through the condition, which holds the same lock.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        self.read_acquisitions = 0
        self.write_acquisitions = 0
        self.max_concurrent_readers = 0

        self._read_side = _Side(self.read_lock, self.read_unlock)
        self._write_side = _Side(self.write_lock, self.write_unlock)

    def read(self) -> _Side:
        """``with lock.read():`` is ``read_lock(&vmlist_lock)`` ... ``read_unlock``."""
        return self._read_side

    def write(self) -> _Side:
        """``with lock.write():`` is ``write_lock(&vmlist_lock)`` ... ``write_unlock``."""
        return self._write_side

    def read_lock(self) -> None:
        """Wait while a writer holds or waits for the lock, then count one more reader."""
        with self._mutex:
            if self._writer or self._writers_waiting:
                self._readers_waiting += 1
                while self._writer or self._writers_waiting:
                    self._cond.wait()
                self._readers_waiting -= 1
            self._readers += 1
            self.read_acquisitions += 1
            if self._readers > self.max_concurrent_readers:
                self.max_concurrent_readers = self._readers

    def read_unlock(self) -> None:
        """One reader fewer; the last one wakes the waiters."""
        with self._mutex:
            self._readers -= 1
            if not self._readers and self._writers_waiting:
                self._cond.notify_all()

    def write_lock(self) -> None:
        """Wait until no reader or writer holds the lock, then hold it alone."""
        with self._mutex:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
            self.write_acquisitions += 1

    def write_unlock(self) -> None:
        """Let go; wake whoever waits (no notify when nobody does: the common, uncontended case)."""
        with self._mutex:
            self._writer = False
            if self._writers_waiting or self._readers_waiting:
                self._cond.notify_all()

    @property
    def readers(self) -> int:
        """Readers holding the lock now."""
        return self._readers

    @property
    def write_locked(self) -> bool:
        """Whether a writer holds the lock now."""
        return self._writer
