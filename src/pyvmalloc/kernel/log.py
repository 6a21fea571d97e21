"""The kernel log (``dmesg``), ``printk`` levels, ``printk_ratelimit`` and a jiffies clock."""

from __future__ import annotations

import threading
from dataclasses import dataclass

KERN_EMERG, KERN_ALERT, KERN_CRIT, KERN_ERR, KERN_WARNING, KERN_NOTICE, KERN_INFO, KERN_DEBUG = range(8)

HZ = 250  # a common CONFIG_HZ; the clock only paces printk_ratelimit


class Clock:
    """Simulated time in jiffies: advanced by the model, never read from the host.

    Every search for kernel address space (each vmalloc, vmap, get_vm_area...) advances it by
    one jiffy, so a transcript depends only on the sequence of calls (the same seed gives the
    same dmesg on every host).
    """

    def __init__(self) -> None:
        self.jiffies = 0

    def tick(self, n: int = 1) -> None:
        """Advance by ``n`` jiffies."""
        self.jiffies += n

    @property
    def seconds(self) -> float:
        """Simulated seconds since boot."""
        return self.jiffies / HZ


@dataclass(frozen=True)
class LogLine:
    """One record of the kernel log."""

    jiffies: int
    level: int
    text: str

    def __str__(self) -> str:
        return f"[{self.jiffies / HZ:12.6f}] {self.text}"


class KernelLog:
    """The ring of printk records, with the kernel's printk rate limit (kernel/printk.c)."""

    # kernel/printk.c, 2.6.22: printk_ratelimit_jiffies = 5 * HZ, printk_ratelimit_burst = 10.
    RATELIMIT_INTERVAL = 5 * HZ
    RATELIMIT_BURST = 10

    def __init__(self, clock: Clock, capacity: int = 100_000) -> None:
        self.clock = clock
        self.capacity = capacity
        self.lines: list[LogLine] = []
        self._lock = threading.Lock()
        self._rl_begin = 0
        self._rl_printed = 0
        self._rl_missed = 0
        self.suppressed = 0

    def printk(self, level: int, text: str) -> None:
        """Append one line (``printk(KERN_x "...")``); the oldest lines drop off a full ring."""
        with self._lock:
            self.lines.append(LogLine(self.clock.jiffies, level, text))
            if len(self.lines) > self.capacity:
                del self.lines[: len(self.lines) - self.capacity]

    def printk_ratelimit(self) -> bool:
        """Whether a rate-limited message may print now (at most BURST per INTERVAL).

        When a new interval opens after suppressions, the kernel's line
        ``printk: N messages suppressed.`` is logged first.
        """
        now = self.clock.jiffies
        with self._lock:
            if now - self._rl_begin >= self.RATELIMIT_INTERVAL or (not self._rl_printed and not self._rl_missed):
                missed, self._rl_missed = self._rl_missed, 0
                self._rl_begin, self._rl_printed = now, 0
            else:
                missed = 0
            if self._rl_printed < self.RATELIMIT_BURST:
                self._rl_printed += 1
                allow = True
            else:
                self._rl_missed += 1
                self.suppressed += 1
                allow = False
        if missed:
            self.printk(KERN_WARNING, f"printk: {missed} messages suppressed.")
        return allow

    def warn_on(self, where: str) -> None:
        """The line ``WARN_ON()`` leaves (2.6.22 prints a stack dump headed like this)."""
        self.printk(KERN_WARNING, f"WARNING: at {where}")

    def text(self) -> list[str]:
        """The log as the lines ``dmesg`` prints."""
        with self._lock:
            return [str(line) for line in self.lines]
