"""Fault injection: fail chosen calls at named points, as CONFIG_FAULT_INJECTION does."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from pyvmalloc.errors import ConfigError

# The places where the model can be told to fail, and what the kernel has there.
POINTS = {
    "page_alloc": "the page allocator (fail_page_alloc)",
    "pgtable_alloc": "page-table frames (pte_alloc_kernel / pmd_alloc / pud_alloc)",
    "kmalloc": "the small-object allocator (failslab): vm_struct and page arrays",
    "vmap_area": "kernel virtual address space (the area search)",
}


@dataclass
class _Rule:
    nth: int | None
    every: int | None
    probability: float | None
    rng: random.Random
    calls: int = 0


class FaultInjector:
    """Decides, call by call, whether an injection point fails.

    ``m.inject(point, nth=N)`` fails the Nth call counted from the ``inject`` call (once);
    ``every=N`` fails every Nth call; ``probability=p`` fails calls at random under ``seed``.
    The hook asked by lower layers is ``allow(point, n)``: of ``n`` calls about to be made,
    how many succeed before the first injected failure (``n`` when none fails).
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self._rules: dict[str, _Rule] = {}
        self._lock = threading.Lock()
        self._log = log
        self.injected: Counter[str] = Counter()

    def inject(
        self,
        point: str,
        nth: int | None = None,
        every: int | None = None,
        probability: float | None = None,
        seed: int | None = None,
    ) -> None:
        """Arm ``point`` with exactly one of ``nth``, ``every`` or ``probability``."""
        if point not in POINTS:
            raise ConfigError(f"unknown injection point {point!r}: choose one of {', '.join(POINTS)}")
        given = [x is not None for x in (nth, every, probability)]
        if sum(given) != 1:
            raise ConfigError("inject() takes exactly one of nth=, every= or probability=")
        if (nth is not None and nth < 1) or (every is not None and every < 1):
            raise ConfigError("nth and every count calls from 1")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ConfigError(f"probability {probability} is not between 0 and 1")
        with self._lock:
            self._rules[point] = _Rule(nth, every, probability, random.Random(seed))

    def clear(self, point: str | None = None) -> None:
        """Disarm one point, or all of them."""
        with self._lock:
            if point is None:
                self._rules.clear()
            else:
                self._rules.pop(point, None)

    @property
    def armed(self) -> bool:
        """Whether any point is armed (a call somewhere may be failed)."""
        return bool(self._rules)

    def allow(self, point: str, n: int = 1) -> int:
        """How many of the next ``n`` calls at ``point`` succeed before one is failed."""
        if not self._rules:  # nothing armed: the common case costs one test, no lock
            return n
        with self._lock:
            rule = self._rules.get(point)
            if rule is None or n <= 0:
                return n
            ok = self._first_failure(rule, n)
            rule.calls += min(n, ok + 1)
            if ok < n:
                self.injected[point] += 1
                if rule.nth is not None:
                    del self._rules[point]
        if ok < n:
            self._log(f"FAULT_INJECTION: forcing a failure. name {point}")
        return ok

    @staticmethod
    def _first_failure(rule: _Rule, n: int) -> int:
        """Index among the next ``n`` calls of the first one to fail (``n`` if none)."""
        if rule.nth is not None:
            k = rule.nth - rule.calls - 1
            return k if 0 <= k < n else n
        if rule.every is not None:
            k = rule.every - (rule.calls % rule.every) - 1
            return k if k < n else n
        assert rule.probability is not None
        for i in range(n):
            if rule.rng.random() < rule.probability:
                return i
        return n
