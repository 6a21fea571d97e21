"""A sweep spec: the TOML file ``pyvmalloc sweep`` reads, expanded into deterministic runs.

The file has a ``[sweep]`` table (defaults every run shares: ``name``, ``arch``, ``ram``, ``cpus``,
``steps``, ``samples``) and an ``[axes]`` table whose lists are crossed: ``kernels``,
``allocators`` (``"default"`` is the kernel's own), ``workloads`` (names of
``scale.workloads.WORKLOADS``, ``test_vmalloc:<scenario>`` or ``trace:<path>``, a path relative
to the spec) and ``seeds`` (a list, or a count N for 0..N-1); ``[axes.params]`` crosses machine
parameters (``lazy_max_pages``, ``cpus``, ``ram``, ``arch``, ``cmdline``, ``lazy_purge``,
``steps``, and the 6.9+ vmap-node knobs ``nr_vmap_nodes`` and ``vmap_pool_max_pages``, which a
spec may cross only over kernels that have vmap nodes, with lazy purge on).  Every run gets a
``run_id``, a hash of what defines it, so a restarted sweep knows which runs it already has.
Any mistake is one ``ConfigError`` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tomllib
from dataclasses import dataclass, field
from typing import Any

from pyvmalloc.arch import PROFILES
from pyvmalloc.errors import ConfigError, PyvmallocError
from pyvmalloc.sizes import parse_size
from pyvmalloc.versions import DEFAULT_KERNEL, has, parse_version
from pyvmalloc.vmalloc.allocator import ALLOCATORS
from pyvmalloc.vmalloc.vmap_node import check_knobs

__all__ = ["PARAMS", "RunSpec", "SweepSpec", "load_spec", "parse_spec"]

# The machine parameters a sweep may cross, with the type each value must have.  ``steps`` is
# the workload's length, the others go to ``Machine``.
PARAMS: dict[str, type | tuple[type, ...]] = {
    "arch": str, "ram": str, "cpus": int, "cmdline": str, "lazy_max_pages": int,
    "lazy_purge": bool, "steps": int, "nr_vmap_nodes": int, "vmap_pool_max_pages": int,
}
# What-if knobs of the 6.9+ vmap nodes (Machine's keyword-only arguments of the same names).
_NODE_KNOBS = ("nr_vmap_nodes", "vmap_pool_max_pages")
_SWEEP_KEYS = ("name", "arch", "ram", "cpus", "steps", "samples")
_AXES_KEYS = ("kernels", "allocators", "workloads", "seeds", "params")
MAX_RUNS = 1_000_000  # a typo such as seeds = 10**9 is refused, not expanded
MAX_STEPS = 10_000_000  # a run's length: hours of model time, not years


@dataclass(frozen=True)
class RunSpec:
    """One deterministic run: a kernel, an allocator, a workload, a seed and machine params."""

    kernel: str
    allocator: str
    workload: str
    seed: int
    params: tuple[tuple[str, Any], ...]  # sorted (name, value): arch, ram, cpus, steps, ...
    samples: int = 20
    trace_digest: str = ""  # sha256 of the trace's text for ``trace:`` workloads

    def param(self, name: str) -> Any:
        """The value of machine parameter ``name`` (KeyError if the run has none)."""
        return dict(self.params)[name]

    @property
    def run_id(self) -> str:
        """16 hex digits naming what defines the run (a trace by its content, not its path)."""
        workload = f"trace:{self.trace_digest}" if self.trace_digest else self.workload
        key = json.dumps([self.kernel, self.allocator, workload, self.seed, list(self.params),
                          self.samples], sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:16]


@dataclass
class SweepSpec:
    """A parsed spec: its name, its source file and the runs of its cross product, in order."""

    name: str
    source: str
    runs: list[RunSpec]
    traces: dict[str, str] = field(default_factory=dict)  # workload name -> trace text


def _fail(source: str, key: str, what: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {what}")


def _list(source: str, key: str, value: Any, kind: type | tuple[type, ...]) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _fail(source, key, "must be a non-empty list")
    for v in value:
        # bool is an int in Python; a count or a page number written as true is a mistake.
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise _fail(source, key, f"{v!r} is not a {names}")
    if len(set(map(repr, value))) != len(value):
        raise _fail(source, key, "lists a value twice")
    return value


def _check_param(source: str, key: str, name: str, value: Any) -> None:
    try:
        if name == "arch" and value not in PROFILES:
            raise ConfigError(f"unknown arch {value!r} (known: {', '.join(PROFILES)})")
        if name == "ram" and parse_size(value) == 0:
            raise ConfigError(f"{value!r}: a machine has some RAM (512M, 2G)")
        if name in ("cpus", "steps", "lazy_max_pages") and value < 1:
            raise ConfigError(f"{value} must be at least 1")
        if name == "steps" and value > MAX_STEPS:
            raise ConfigError(f"{value} steps: at most {MAX_STEPS} per run")
        if name == "nr_vmap_nodes":
            check_knobs(value, None)
        if name == "vmap_pool_max_pages":
            check_knobs(None, value)
    except PyvmallocError as exc:
        raise _fail(source, key, str(exc)) from None


def _seeds(source: str, value: Any) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_RUNS:
            raise _fail(source, "axes.seeds", f"a count between 1 and {MAX_RUNS}, not {value}")
        return list(range(value))
    return _list(source, "axes.seeds", value, int)


def _workloads(source: str, names: list[str], base: str) -> dict[str, str]:
    """Check every workload name; read the traces (their text, keyed by workload name)."""
    # Imported here: workloads imports the model's upper layers, which the spec check needs
    # only for the names.
    from pyvmalloc.scale.workloads import WORKLOADS, scenario_names

    traces: dict[str, str] = {}
    for name in names:
        kind, _, arg = name.partition(":")
        if kind == "trace" and arg:
            path = arg if os.path.isabs(arg) else os.path.join(base, arg)
            try:
                with open(path, encoding="utf-8") as f:
                    traces[name] = f.read()
            except (OSError, UnicodeDecodeError) as exc:
                raise _fail(source, "axes.workloads", f"{name}: cannot read {path}: "
                            f"{getattr(exc, 'strerror', None) or exc}") from None
        elif kind == "test_vmalloc" and arg:
            if arg not in scenario_names():
                raise _fail(source, "axes.workloads", f"{name}: no such scenario (known: "
                            f"{', '.join(scenario_names())})")
        elif name not in WORKLOADS:
            raise _fail(source, "axes.workloads", f"unknown workload {name!r} (known: "
                        f"{', '.join(WORKLOADS)}, test_vmalloc:<scenario>, trace:<path>)")
    return traces


def parse_spec(text: str, source: str = "<spec>", base: str = ".") -> SweepSpec:
    """The runs ``text`` (a TOML spec) asks for; ``base`` is where trace paths start."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    for key in doc:
        if key not in ("sweep", "axes"):
            raise _fail(source, key, "unknown table (a spec has [sweep] and [axes])")
    sweep = doc.get("sweep", {})
    axes = doc.get("axes")
    if not isinstance(sweep, dict):
        raise _fail(source, "sweep", "must be a table")
    if not isinstance(axes, dict):
        raise _fail(source, "axes", "missing: a spec needs an [axes] table")
    for key in sweep:
        if key not in _SWEEP_KEYS:
            raise _fail(source, f"sweep.{key}", f"unknown key (known: {', '.join(_SWEEP_KEYS)})")
    for key in axes:
        if key not in _AXES_KEYS:
            raise _fail(source, f"axes.{key}", f"unknown key (known: {', '.join(_AXES_KEYS)})")
    name = sweep.get("name", os.path.splitext(os.path.basename(source))[0])
    if not isinstance(name, str):
        raise _fail(source, "sweep.name", "must be a string")
    samples = sweep.get("samples", 20)
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 10_000:
        raise _fail(source, "sweep.samples", "must be a number from 1 to 10000")
    defaults: dict[str, Any] = {"arch": "x86_64", "ram": "1G", "cpus": 2, "steps": 1000}
    for key in ("arch", "ram", "cpus", "steps"):
        if key in sweep:
            _list(source, f"sweep.{key}", [sweep[key]], PARAMS[key])
            _check_param(source, f"sweep.{key}", key, sweep[key])
            defaults[key] = sweep[key]

    kernels = _list(source, "axes.kernels", axes.get("kernels", [DEFAULT_KERNEL]), str)
    for k in kernels:
        try:
            parse_version(k)
        except PyvmallocError as exc:
            raise _fail(source, "axes.kernels", str(exc)) from None
    allocators = _list(source, "axes.allocators", axes.get("allocators", ["default"]), str)
    for a in allocators:
        if a != "default" and a not in ALLOCATORS:
            raise _fail(source, "axes.allocators", f"unknown allocator {a!r} (known: default, "
                        f"{', '.join(ALLOCATORS)})")
    if "workloads" not in axes:
        raise _fail(source, "axes.workloads", "missing: name at least one workload")
    workloads = _list(source, "axes.workloads", axes["workloads"], str)
    seeds = _seeds(source, axes.get("seeds", [0]))
    params = axes.get("params", {})
    if not isinstance(params, dict):
        raise _fail(source, "axes.params", "must be a table")
    grid: list[tuple[str, list[Any]]] = []
    for key, values in params.items():
        if key not in PARAMS:
            raise _fail(source, f"axes.params.{key}", f"unknown parameter (known: {', '.join(PARAMS)})")
        for v in _list(source, f"axes.params.{key}", values, PARAMS[key]):
            _check_param(source, f"axes.params.{key}", key, v)
        grid.append((key, values))
    for key in _NODE_KNOBS:
        if key not in params:
            continue
        # Refused here, not run by run: a sweep over a knob where it means nothing would give
        # error rows (or rows that look turned and are not).
        for k in kernels:
            if not has(parse_version(k), "vmap_nodes"):
                raise _fail(source, f"axes.params.{key}", f"kernel {k} has no vmap nodes (6.9+): "
                            "sweep it in a spec of its own")
        if any(w.startswith("trace:") for w in workloads):
            raise _fail(source, f"axes.params.{key}", "a trace: workload replays on a machine of "
                        "its own, which the vmap-node knobs do not reach")
        if False in params.get("lazy_purge", ()):
            raise _fail(source, f"axes.params.{key}", "the vmap nodes live on lazy purge, which "
                        "axes.params.lazy_purge turns off")

    total = len(kernels) * len(allocators) * len(workloads) * len(seeds)
    for _, values in grid:
        total *= len(values)
    if total > MAX_RUNS:
        raise _fail(source, "axes", f"{total} runs: more than the {MAX_RUNS} a sweep may have")
    traces = _workloads(source, workloads, base)
    digests = {w: hashlib.sha256(t.encode()).hexdigest()[:16] for w, t in traces.items()}

    runs = []
    for combo in itertools.product(*(values for _, values in grid)):
        chosen = dict(defaults)
        chosen.update({key: v for (key, _), v in zip(grid, combo)})
        frozen = tuple(sorted(chosen.items()))
        for kernel, allocator, workload, seed in itertools.product(kernels, allocators,
                                                                   workloads, seeds):
            runs.append(RunSpec(kernel, allocator, workload, seed, frozen, samples,
                                digests.get(workload, "")))
    return SweepSpec(name, source, runs, traces)


def load_spec(path: str) -> SweepSpec:
    """Read and parse the spec file at ``path`` (ConfigError naming the file when it cannot)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the spec: {getattr(exc, 'strerror', None) or exc}") from None
    return parse_spec(text, path, os.path.dirname(os.path.abspath(path)))
