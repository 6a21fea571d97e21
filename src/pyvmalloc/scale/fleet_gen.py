"""A synthetic fleet made from real dumps by the model, with devices at risk injected where known.

Each device restores one of the real ARM dumps (``/proc/vmallocinfo`` of 3.0 to 4.9 devices, the
kernel from the file's name) onto a machine of its kernel (``Machine.from_snapshot``), then lives
a little: drivers ``vmalloc`` buffers and ``ioremap`` registers, some are released again (seeded
per device, so a fleet is the same on every host).  A device *at risk* fills its vmalloc space
with ioremaps and releases every other one: plenty of free space, no large hole.  A *leaking*
device leaves a series of dumps in which one driver's buffers only grow.  Each device is written
as a dumpstate-style bug report (its kernel's ``Linux version`` line, ``/proc/meminfo`` and
``/proc/vmallocinfo`` sections); ``write_fleet`` puts half of them in tar archives so that both
kinds of input are exercised.  The injected devices are listed in ``injected.txt``.
"""

from __future__ import annotations

import io
import os
import random
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyvmalloc.errors import ConfigError
from pyvmalloc.facade import Machine
from pyvmalloc.formats.vmallocinfo import parse_vmallocinfo
from pyvmalloc.vmalloc.vm_struct import VM_IOREMAP

__all__ = ["Base", "DeviceSpec", "fleet_plan", "generate", "load_bases", "write_fleet"]

_KERNEL_IN_NAME = re.compile(r"-(\d+\.\d+(?:\.\d+)?)\.txt\Z")
LEAKY_CALLER = "leaky_stats_grow"


@dataclass(frozen=True)
class Base:
    """A real dump a fleet's devices start from, and its kernel."""

    name: str
    text: str
    kernel: str


@dataclass(frozen=True)
class DeviceSpec:
    """One device to generate: its name, its base dump, its seed and what is injected."""

    name: str
    base: Base
    seed: int
    kind: str = "healthy"   # "healthy", "at_risk", or "leak" (a series of dumps)
    dumps: int = 1


def load_bases(folder: str) -> list[Base]:
    """The dumps of ``folder`` whose file name ends in a kernel version (``*-3.4.5.txt``) and
    whose addresses are real (a hashed dump cannot be restored)."""
    bases = []
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise ConfigError(f"{folder}: cannot list the base dumps: {exc.strerror or exc}") from None
    for name in names:
        m = _KERNEL_IN_NAME.search(name)
        if not m:
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            text = f.read()
        if parse_vmallocinfo(text, name).addresses_trusted:
            bases.append(Base(name[: -len(".txt")], text, m.group(1)))
    if not bases:
        raise ConfigError(f"{folder}: no dump named like NAME-VERSION.txt with real addresses")
    return bases


def fleet_plan(bases: Sequence[Base], devices: int, at_risk: int, leaks: int, seed: int = 0) -> list[DeviceSpec]:
    """``devices`` devices over ``bases`` in turn; ``at_risk`` and ``leaks`` of them, spread
    evenly, are injected.  Device names say nothing of what was injected."""
    rng = random.Random(seed)
    chosen = rng.sample(range(devices), at_risk + leaks)
    kinds = dict.fromkeys(chosen[:at_risk], "at_risk") | dict.fromkeys(chosen[at_risk:], "leak")
    plan = []
    for i in range(devices):
        kind = kinds.get(i, "healthy")
        plan.append(DeviceSpec(f"dev{i:05d}", bases[i % len(bases)], seed * 1_000_003 + i, kind,
                               4 if kind == "leak" else 1))
    return plan


def _live(m: Machine, rng: random.Random) -> None:
    """Ordinary drivers: a few buffers and register maps, a third of them released."""
    held: list[Any] = []
    for _ in range(rng.randint(0, 30)):
        if rng.random() < 0.5:
            a = m.vmalloc(rng.randint(1, 32) * m.PAGE_SIZE, caller="driver_buffer_alloc")
            if a is not None:
                held.append(a)
        else:
            area = m.get_vm_area(rng.choice((4, 8, 64, 256)) << 10, VM_IOREMAP, caller="devm_ioremap")
            if area is not None:
                held.append(area)
    for h in rng.sample(held, len(held) // 3):
        if isinstance(h, int):
            m.vfree(h)
        else:
            m.free_vm_area(h)


def _fragment(m: Machine, rng: random.Random) -> None:
    """Fill the vmalloc space with ioremaps, release every other one: free space, no large hole."""
    size = rng.choice((128, 256, 512)) << 10
    areas = []
    while (area := m.get_vm_area(size, VM_IOREMAP, caller="camera_ring_map")) is not None:
        areas.append(area)
    for area in areas[::2]:
        m.free_vm_area(area)


def _report(m: Machine, kernel: str, name: str, when: int) -> str:
    return (f"== dumpstate: {name} ({when})\n"
            f"Kernel: Linux version {kernel}-fleet (gcc) #1 SMP PREEMPT\n\n"
            f"------ MEMORY INFO (/proc/meminfo) ------\n{m.meminfo()}\n"
            f"------ VMALLOC INFO (/proc/vmallocinfo) ------\n{m.vmallocinfo()}\n"
            f"------ 0.001s was the duration of 'VMALLOC INFO' ------\n")


def generate(device: DeviceSpec) -> list[tuple[str, str]]:
    """The bug reports of one device: ``(file name, text)``, one per dump it leaves."""
    rng = random.Random(device.seed)
    snap = parse_vmallocinfo(device.base.text, device.base.name)
    m = Machine.from_snapshot(snap, kernel=device.base.kernel)
    _live(m, rng)
    if device.kind == "at_risk":
        _fragment(m, rng)
    if device.dumps == 1:
        return [(f"{device.name}.txt", _report(m, device.base.kernel, device.name, 0))]
    out = []
    for when in range(device.dumps):
        for _ in range(rng.randint(20, 40)):   # a leak: buffers taken, never given back
            m.vmalloc(4 * m.PAGE_SIZE, caller=LEAKY_CALLER)
        out.append((f"{device.name}@{when:02d}.txt", _report(m, device.base.kernel, device.name, when)))
    return out


def _generate_batch(devices: Sequence[DeviceSpec]) -> list[tuple[str, str]]:
    return [f for d in devices for f in generate(d)]


def write_fleet(plan: Sequence[DeviceSpec], out: str, client: Any | None = None,
                per_archive: int = 250, batch: int = 20) -> int:
    """Generate ``plan`` (on ``client``'s cluster, or here) into folder ``out``: the first half
    as files under ``out/reports``, the rest in tar archives of ``per_archive`` reports; the
    injected devices in ``out/injected.txt``.  Returns the number of dumps written."""
    chunks = [list(plan[i:i + batch]) for i in range(0, len(plan), batch)]
    if client is None:
        results = [_generate_batch(c) for c in chunks]
    else:
        results = client.gather([client.submit(_generate_batch, c, pure=False) for c in chunks])
    files = [f for r in results for f in r]
    os.makedirs(os.path.join(out, "reports"), exist_ok=True)
    half = len(files) // 2
    for name, text in files[:half]:
        with open(os.path.join(out, "reports", name), "w", encoding="utf-8") as f:
            f.write(text)
    rest = files[half:]
    for n in range(0, len(rest), per_archive):
        with tarfile.open(os.path.join(out, f"reports-{n // per_archive:02d}.tar.gz"), "w:gz") as tar:
            for name, text in rest[n:n + per_archive]:
                data = text.encode()
                info = tarfile.TarInfo(f"bugreports/{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    with open(os.path.join(out, "injected.txt"), "w", encoding="utf-8") as f:
        for d in plan:
            if d.kind != "healthy":
                f.write(f"{d.name} {d.kind} {d.base.name}\n")
    return len(files)
