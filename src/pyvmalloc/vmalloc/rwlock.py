"""A readers-writer lock with the semantics of ``rwlock_t`` (``vmlist_lock``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    """Many readers or one writer; a waiting writer holds back new readers (no writer starvation).

    Unlike the kernel's spinning rwlock, waiters sleep on a condition variable: Python threads
    cannot spin usefully under the GIL.  Not recursive, as ``rwlock_t`` is not.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self.read_acquisitions = 0
        self.write_acquisitions = 0
        self.max_concurrent_readers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        """``read_lock(&vmlist_lock)`` ... ``read_unlock``."""
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
            self.read_acquisitions += 1
            self.max_concurrent_readers = max(self.max_concurrent_readers, self._readers)
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        """``write_lock(&vmlist_lock)`` ... ``write_unlock``."""
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
            self.write_acquisitions += 1
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

    @property
    def readers(self) -> int:
        """Readers holding the lock now."""
        return self._readers

    @property
    def write_locked(self) -> bool:
        """Whether a writer holds the lock now."""
        return self._writer
