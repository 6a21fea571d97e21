"""The Dask engine: a local cluster on every core, or a scheduler's address, as one client.

Local by default: a ``LocalCluster`` of single-threaded worker processes on 127.0.0.1 (the model
is pure Python: processes, not threads, use the cores).  ``scheduler="tcp://HOST:8786"``
connects to a running cluster instead and nothing else changes.  Local workers get the
``PYTHONPATH`` that leads to this very ``pyvmalloc``, so a checkout run with ``PYTHONPATH=src``
has its workers run the same code; ``worker_code`` tells where each worker's comes from.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyvmalloc
from pyvmalloc.errors import ConfigError

__all__ = ["MissingScale", "add_engine_args", "check_options", "local_cluster", "open_client",
           "require", "worker_code"]

_ADDRESS = re.compile(r"(tcp|tls|ucx|ws|wss)://[^\s/:]+:\d{1,5}\Z")
MAX_WORKERS = 1024


class MissingScale(ConfigError):
    """Dask or pyarrow is not installed."""


def require() -> None:
    """MissingScale naming the extra to install when Dask or pyarrow is missing."""
    missing = []
    for mod in ("distributed", "pyarrow"):
        try:
            __import__(mod)
        except ImportError:
            missing.append({"distributed": "dask[distributed]"}.get(mod, mod))
    if missing:
        raise MissingScale(f"{' and '.join(missing)} missing: install pyvmalloc[scale] "
                           f"(pip install 'pyvmalloc[scale]')")


def add_engine_args(p: argparse.ArgumentParser) -> None:
    """``--scheduler`` and ``--workers``, as ``sweep`` and ``fleet`` both take them."""
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:8786",
                   help="a Dask scheduler to run on (default: a local cluster on every core)")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core)")


def check_options(scheduler: str | None, workers: int | None) -> None:
    """ConfigError naming the option when ``scheduler`` is no address or ``workers`` is off."""
    if scheduler is not None and not _ADDRESS.match(scheduler):
        raise ConfigError(f"--scheduler {scheduler!r}: give a Dask scheduler's address such as "
                          f"tcp://HOST:8786")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise ConfigError(f"--workers {workers}: from 1 to {MAX_WORKERS}")


def _source_root() -> str:
    """The folder that holds this ``pyvmalloc`` package (``src`` of a checkout)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(pyvmalloc.__file__)))


def local_cluster(workers: int | None = None, **kwargs: Any) -> Any:
    """A LocalCluster of ``workers`` (default: every core) single-threaded processes on
    loopback whose workers import the same ``pyvmalloc`` as this process."""
    from dask.distributed import LocalCluster

    path = os.pathsep.join(p for p in (_source_root(), os.environ.get("PYTHONPATH", "")) if p)
    opts: dict[str, Any] = dict(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                silence_logs=logging.ERROR, env={"PYTHONPATH": path})
    opts.update(kwargs)
    return LocalCluster(**opts)  # type: ignore[no-untyped-call]


@contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``dask.distributed.Client``: of a new local cluster, or of ``scheduler``'s cluster
    (ConfigError naming the address when it cannot be reached)."""
    require()
    from dask.distributed import Client

    if scheduler is None:
        with local_cluster(workers) as cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    try:
        client = Client(scheduler, timeout="10s")  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError, ValueError) as exc:
        raise ConfigError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there "
                          f"({exc})") from None
    with client:
        yield client


def worker_code(client: Any) -> dict[str, str]:
    """Worker address -> the ``pyvmalloc`` package file each worker imports."""
    def where() -> str:
        import pyvmalloc as pv
        return os.path.abspath(pv.__file__)
    result: dict[str, str] = client.run(where)
    return result
