"""The watch loop: sample a live host (or a folder of dumps) at an interval, store each sample, raise alerts.

Sources: a file read afresh at every tick (``/proc/vmallocinfo``, time = now), or a folder whose
dumps are taken oldest first (time = each file's modification time), each once; a folder
watch ends when a tick finds nothing new unless it follows the folder.

Alerts: the largest hole of a range (vmalloc range, module area) under ``min_hole``, and a
caller that grew at each of the last ``grow_steps`` samples (the lazily freed pseudo-caller
aside).  A growth alert is raised once per streak, a hole alert once per range until the hole
is large enough again.  Each alert goes to ``on_alert`` and, with ``command``, to a shell
command that finds it in ``$PYVMALLOC_ALERT`` (and ``$PYVMALLOC_ALERT_KIND``: ``hole`` or
``growth``).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pyvmalloc.errors import ConfigError
from pyvmalloc.monitor.diff import NOT_SUSPECT_PREFIX
from pyvmalloc.monitor.sample import Sample, meminfo_beside, read_sample
from pyvmalloc.monitor.store import Store
from pyvmalloc.monitor.units import format_moment
from pyvmalloc.sizes import human_bytes

__all__ = ["Alert", "WatchConfig", "WatchResult", "Watcher", "folder_dumps"]


@dataclass(frozen=True)
class Alert:
    """One alert: when, what kind (``hole`` or ``growth``), about what, and the line to print."""

    t: float
    kind: str
    subject: str
    message: str

    @property
    def line(self) -> str:
        return f"ALERT {format_moment(self.t)} {self.kind}: {self.message}"


@dataclass
class WatchConfig:
    """What to watch and when to alert; ``count`` None samples until stopped."""

    source: str = "/proc/vmallocinfo"
    meminfo: str | None = None
    interval: float = 10.0
    count: int | None = None
    follow: bool = False
    min_hole: int | None = None
    grow_steps: int | None = None
    command: str | None = None
    exit_on_alert: bool = False
    window: int = 360


@dataclass
class WatchResult:
    """How a watch ended: samples stored, alerts raised, why it stopped."""

    samples: int = 0
    alerts: list[Alert] = field(default_factory=list)
    stopped: str = ""


def folder_dumps(folder: str) -> list[str]:
    """The dumps of a folder, oldest first (modification time, then name); meminfo files and
    hidden files are not dumps."""
    names = [n for n in os.listdir(folder)
             if not n.startswith(".") and not n.endswith((".meminfo", ".version"))
             and n not in ("meminfo", "version")]
    paths = [os.path.join(folder, n) for n in names]
    paths = [p for p in paths if os.path.isfile(p) and _starts_like_a_dump(p)]
    return sorted(paths, key=lambda p: (os.stat(p).st_mtime, p))


def _starts_like_a_dump(path: str) -> bool:
    """Whether the file's first line is an area line ("0x..."): a README or SOURCES beside the
    dumps stopped the watch with a parse error.  A file still empty is passed over until a
    later look (--follow), when its writer has filled it."""
    try:
        with open(path, "rb") as f:
            head = f.read(256).lstrip()
    except OSError:
        return True         # read_sample names the file and why
    return head.startswith(b"0x")


class Watcher:
    """Runs one watch into ``store``; ``on_sample(sample, recent, alerts)`` after each sample
    (``recent``: the last ``window`` samples, this one included), ``on_alert`` for each alert."""

    def __init__(self, cfg: WatchConfig, store: Store,
                 on_sample: Callable[[Sample, list[Sample], list[Alert]], None] | None = None,
                 on_alert: Callable[[Alert], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if cfg.interval <= 0:
            raise ConfigError(f"interval must be more than 0 seconds, not {cfg.interval}")
        if cfg.count is not None and cfg.count < 1:
            raise ConfigError(f"count must be 1 or more, not {cfg.count}")
        if cfg.grow_steps is not None and cfg.grow_steps < 1:
            raise ConfigError(f"the growth alert needs 1 or more steps, not {cfg.grow_steps}")
        self.cfg = cfg
        self.store = store
        self.on_sample = on_sample
        self.on_alert = on_alert
        self.sleep = sleep
        self.recent: deque[Sample] = deque(maxlen=max(cfg.window, (cfg.grow_steps or 0) + 1))
        self._streaks_alerted: set[str] = set()
        self._holes_alerted: set[str] = set()
        self._seen: set[str] = set()
        self.is_folder = os.path.isdir(cfg.source)

    def _samples(self) -> Iterator[Sample | None]:
        """The next sample at each tick; None for a tick of a folder with nothing new."""
        if not self.is_folder:
            # The dump's time is the moment it was read, the same for a saved copy given here.
            meminfo = self.cfg.meminfo or meminfo_beside(self.cfg.source)
            while True:
                yield read_sample(self.cfg.source, time.time(), meminfo)
        while True:
            new = [p for p in folder_dumps(self.cfg.source) if p not in self._seen]
            if not new:
                yield None
            for path in new:
                self._seen.add(path)
                yield read_sample(path, None, self.cfg.meminfo)

    def _alerts(self, s: Sample) -> list[Alert]:
        out = []
        if self.cfg.min_hole is not None:
            for name, value in (("vmalloc range", s.largest_hole),
                                ("module area", s.module_largest_hole)):
                if value is None:
                    continue
                if value < self.cfg.min_hole and name not in self._holes_alerted:
                    self._holes_alerted.add(name)
                    out.append(Alert(s.t, "hole", name, f"largest hole of the {name} is "
                                     f"{human_bytes(value)}, under {human_bytes(self.cfg.min_hole)}"))
                elif value >= self.cfg.min_hole:
                    self._holes_alerted.discard(name)
        n = self.cfg.grow_steps
        if n is not None and len(self.recent) > n:
            last = list(self.recent)[-(n + 1):]
            for caller, total in s.callers.items():
                if caller.startswith(NOT_SUSPECT_PREFIX):
                    continue
                values = [x.callers[caller].bytes if caller in x.callers else 0 for x in last]
                if all(b > a for a, b in zip(values, values[1:])):
                    if caller not in self._streaks_alerted:
                        self._streaks_alerted.add(caller)
                        hours = (last[-1].t - last[0].t) / 3600.0
                        rate = "" if hours <= 0 else \
                            f", {human_bytes(int((values[-1] - values[0]) / hours))}/h"
                        out.append(Alert(s.t, "growth", caller, f"{caller} grew at each of the "
                                         f"last {n} samples: {human_bytes(values[0])} -> "
                                         f"{human_bytes(total.bytes)} ({total.areas} areas{rate})"))
                else:
                    self._streaks_alerted.discard(caller)
        return out

    def _raise(self, alert: Alert) -> None:
        if self.on_alert is not None:
            self.on_alert(alert)
        if self.cfg.command:
            env = dict(os.environ, PYVMALLOC_ALERT=alert.message, PYVMALLOC_ALERT_KIND=alert.kind)
            # The user's own command line, run as they would in a shell; its failure is theirs
            # and does not stop the watch.
            subprocess.run(self.cfg.command, shell=True, env=env, check=False)

    def run(self) -> WatchResult:
        """Sample until ``count``, the end of a folder, an alert with ``exit_on_alert``, or
        Ctrl-C (KeyboardInterrupt: the samples stored so far are kept and the result says so)."""
        result = WatchResult()
        start = time.monotonic()
        ticks = 0
        try:
            for s in self._samples():
                if s is None:
                    if not self.cfg.follow:
                        result.stopped = "no new dump in the folder"
                        break
                else:
                    self.store.add(s)
                    if self.recent:
                        # Only totals are needed of the past: identities would hold every
                        # area of every sample in the window.
                        self.recent[-1].keys.clear()
                    self.recent.append(s)
                    result.samples += 1
                    alerts = self._alerts(s)
                    result.alerts += alerts
                    if self.on_sample is not None:
                        self.on_sample(s, list(self.recent), alerts)
                    for alert in alerts:
                        self._raise(alert)
                    if alerts and self.cfg.exit_on_alert:
                        result.stopped = "alert"
                        break
                    if self.cfg.count is not None and result.samples >= self.cfg.count:
                        result.stopped = f"{result.samples} samples taken"
                        break
                    if self.is_folder:
                        continue
                ticks += 1
                # Keep to the interval's grid: a slow read does not push later samples back.
                self.sleep(max(0.0, start + ticks * self.cfg.interval - time.monotonic()))
        except KeyboardInterrupt:
            result.stopped = "interrupted"
        return result
