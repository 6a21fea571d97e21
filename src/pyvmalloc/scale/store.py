"""The Parquet tables of a sweep or a fleet: parts appended as results arrive, read back deduplicated.

A table is a folder of ``part-NNNNN.parquet`` files (pandas, polars, DuckDB and pyarrow read the
folder as one table).  Each part is written to a temporary name and renamed, so a sweep killed
at any moment leaves whole parts only; a restarted sweep reads the ``run_id`` values already
there and skips those runs.  ``compact`` folds the parts into one once a sweep is done.  Rows
with the same key (a run finished twice by a worker that died after sending it) are kept once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from pyvmalloc.errors import ConfigError

__all__ = ["Table", "schema"]

_PART = re.compile(r"part-(\d+)\.parquet\Z")
# Column types by name, for the sweep's and the fleet's tables (every other column is int64).
_STRINGS = {"run_id", "kernel", "allocator", "workload", "arch", "ram", "cmdline", "status",
            "error", "top_caller", "device", "taken", "source", "group", "leak_suspect", "callers"}
_FLOATS = {"fragmentation", "host_seconds", "headroom"}
_BOOLS = {"lazy_purge", "at_risk"}


def schema(columns: Sequence[str], types: Mapping[str, Any] | None = None) -> Any:
    """A pyarrow schema for ``columns``: ``types`` where given, else by the names above
    (strings, floats, booleans), else int64."""
    fields = []
    for name in columns:
        if types and name in types:
            kind = types[name]
        elif name in _STRINGS:
            kind = pa.string()
        elif name in _FLOATS:
            kind = pa.float64()
        elif name in _BOOLS:
            kind = pa.bool_()
        else:
            kind = pa.int64()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


class Table:
    """One table (``runs``, ``series``, ``devices``) under a result folder."""

    def __init__(self, root: str, name: str, schema_: Any, key: Sequence[str] = ("run_id",)) -> None:
        self.path = os.path.join(root, name)
        self.schema = schema_
        self.key = tuple(key)  # the columns that name a row: one row per key is kept
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise ConfigError(f"{self.path}: exists and is not a folder (results go in a folder)")

    def _parts(self) -> list[str]:
        if not os.path.isdir(self.path):
            return []
        return sorted(f for f in os.listdir(self.path) if _PART.match(f))

    def _next_name(self) -> str:
        numbers = [int(m.group(1)) for f in self._parts() if (m := _PART.match(f))]
        last = max(numbers, default=-1)
        return os.path.join(self.path, f"part-{last + 1:05d}.parquet")

    def append(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write ``rows`` as a new part (atomically: a temporary file renamed into place)."""
        if not rows:
            return
        os.makedirs(self.path, exist_ok=True)
        cols = {f.name: [r.get(f.name) for r in rows] for f in self.schema}
        table = pa.table(cols, schema=self.schema)
        target = self._next_name()
        tmp = target + ".tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, target)

    def read(self) -> Any:
        """Every row of every part as one pyarrow Table, each key once (the first written)."""
        parts = self._parts()
        if not parts:
            return self.schema.empty_table()
        tables = []
        for f in parts:
            path = os.path.join(self.path, f)
            try:
                part = pq.read_table(path)
                if all(k in part.column_names for k in self.key):
                    # A part written before a column came (a sweep parameter such as
                    # nr_vmap_nodes): its rows did not set it, which reads as null.
                    for f in self.schema:
                        if f.name not in part.column_names:
                            part = part.append_column(f, pa.nulls(part.num_rows, f.type))
                tables.append(part.select(self.schema.names).cast(self.schema))
            except (pa.ArrowInvalid, KeyError, OSError) as exc:
                raise ConfigError(f"{path}: not a part of this table ({exc})") from None
        table = pa.concat_tables(tables)
        seen: set[Any] = set()
        keep = []
        for i, k in enumerate(zip(*(table.column(c).to_pylist() for c in self.key))):
            if k not in seen:
                seen.add(k)
                keep.append(i)
        return table.take(pa.array(keep, pa.int64())) if len(keep) != table.num_rows else table

    def clear(self) -> None:
        """Remove every part (a new analysis replaces the table)."""
        for f in self._parts():
            os.remove(os.path.join(self.path, f))

    def keys(self) -> set[Any]:
        """The first key column's values already written (the finished runs)."""
        if not self._parts():
            return set()
        return set(self.read().column(self.key[0]).to_pylist())

    def compact(self, sort_by: Sequence[str] = ()) -> None:
        """Fold every part into one (sorted by ``sort_by``); the old parts are removed only
        after the new one is in place, and readers drop the duplicates in between."""
        parts = self._parts()
        if not parts or (len(parts) == 1 and not sort_by):
            # No parts: nothing to fold (a sweep whose every run the model refused has no series).
            return
        table = self.read()
        if sort_by:
            table = table.sort_by([(c, "ascending") for c in sort_by])
        target = self._next_name()
        pq.write_table(table, target + ".tmp")
        os.replace(target + ".tmp", target)
        for f in parts:
            os.remove(os.path.join(self.path, f))
