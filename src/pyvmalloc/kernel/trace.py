"""The ftrace ring buffer of the vmalloc tracepoints: per-CPU rings stamped by the simulated clock.

kernel/trace/ring_buffer.c keeps one ring per CPU and, in its default overwrite mode, drops
the oldest events of a full ring; reading ``trace`` merges the rings by timestamp.  Here a
ring holds ``size`` events (ftrace sizes it in kilobytes: ``buffer_size_kb``).

Time is the machine's jiffies clock (kernel/log.py), so the same calls give the same trace on
every host.  The clock has jiffy resolution (1/HZ s); events within one jiffy are stamped one
microsecond apart, in the order they happened, so that the order shows in the times.  The
task is the calling Python thread: its name (cut to TASK_COMM_LEN - 1 = 15 characters, blanks
made ``_``) and a pid numbered from 1 in the order threads first hit a tracepoint.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from typing import NamedTuple

from pyvmalloc.errors import ConfigError
from pyvmalloc.formats.trace import TraceEvent, render_header, render_line
from pyvmalloc.kernel.log import HZ, Clock

TASK_COMM_LEN = 16  # include/linux/sched.h: comm holds 15 characters and a NUL
DEFAULT_BUFFER_SIZE = 16384  # events per CPU
_USEC_PER_JIFFY = 1_000_000 // HZ


class _Record(NamedTuple):
    seq: int
    timestamp: int
    cpu: int
    comm: str
    pid: int
    flags: str
    event: str
    values: dict[str, int]


class TraceBuffer:
    """Per-CPU rings of tracepoint records (overwrite mode), read back as TraceEvents."""

    def __init__(self, nr_cpus: int, size: int, clock: Clock) -> None:
        if type(size) is not int or size <= 0:
            raise ConfigError(f"buffer_size={size!r}: a trace ring holds at least one event")
        self.size = size
        self.nr_cpus = nr_cpus
        self.clock = clock
        self.rings: list[deque[_Record]] = [deque(maxlen=size) for _ in range(nr_cpus)]
        self.written = 0  # events recorded since the buffer was made
        self.overrun = 0  # events a full ring dropped
        self._lock = threading.Lock()
        self._pids: weakref.WeakKeyDictionary[threading.Thread, tuple[int, str]] = weakref.WeakKeyDictionary()
        self._jiffy = -1
        self._in_jiffy = 0

    def _task(self) -> tuple[int, str]:
        thread = threading.current_thread()
        task = self._pids.get(thread)
        if task is None:
            comm = "_".join(thread.name.split())[: TASK_COMM_LEN - 1].lstrip("#") or "<...>"
            task = (len(self._pids) + 1, comm)
            self._pids[thread] = task
        return task

    def record(self, event: str, cpu: int, flags: str, values: dict[str, int]) -> None:
        """Append one event to ``cpu``'s ring, dropping that ring's oldest when it is full."""
        with self._lock:
            now = self.clock.jiffies
            if now != self._jiffy:
                self._jiffy, self._in_jiffy = now, 0
            stamp = now * _USEC_PER_JIFFY + min(self._in_jiffy, _USEC_PER_JIFFY - 1)
            self._in_jiffy += 1
            pid, comm = self._task()
            ring = self.rings[cpu]
            if len(ring) == self.size:
                self.overrun += 1
            ring.append(_Record(self.written, stamp, cpu, comm, pid, flags, event, values))
            self.written += 1

    @property
    def entries(self) -> int:
        """Events held now."""
        return sum(len(r) for r in self.rings)

    def events(self) -> list[TraceEvent]:
        """Every event held, the rings merged in time order (ties: the order they happened)."""
        with self._lock:
            records = sorted((r for ring in self.rings for r in ring), key=lambda r: (r.timestamp, r.seq))
        return [TraceEvent.new(r.event, r.values, comm=r.comm, pid=r.pid, cpu=r.cpu,
                               timestamp=r.timestamp, flags=r.flags) for r in records]

    def lines(self, header: bool = False) -> list[str]:
        """The text of ``/sys/kernel/tracing/trace``: one line per event, ftrace's header first
        when asked."""
        evs = self.events()
        head = render_header(len(evs), self.written, self.nr_cpus) if header else []
        return head + [render_line(ev) for ev in evs]
