"""The watch store: a series of samples in one SQLite file, written as they come, read back by diff and history.

Compact: per sample one row of totals, plus one row per caller and per kind that holds areas
(a caller missing from a sample had none); caller names are kept once in ``names``.  No area
lines are kept, so a diff read from a store gives net changes per caller, not which areas came
and went.  Each sample is committed on its own, so an interrupted watch loses nothing it
sampled.  The view ``caller_series(sample, t, time, caller, areas, bytes)`` is there for ad-hoc
SQL (``pyvmalloc history --sql``).
"""

from __future__ import annotations

import os
import sqlite3
from types import TracebackType

from pyvmalloc.errors import FormatError
from pyvmalloc.monitor.sample import Sample, Total

__all__ = ["SCHEMA_VERSION", "Store", "query"]

SCHEMA_VERSION = "1"
_MAGIC = "pyvmalloc watch store"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples(
    id INTEGER PRIMARY KEY, t REAL NOT NULL, source TEXT NOT NULL,
    areas INTEGER NOT NULL, bytes INTEGER NOT NULL, unpurged_bytes INTEGER NOT NULL,
    addresses_trusted INTEGER NOT NULL, largest_hole INTEGER, free_bytes INTEGER,
    fragmentation REAL, module_largest_hole INTEGER, vmalloc_total INTEGER, vmalloc_used INTEGER);
CREATE TABLE IF NOT EXISTS names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS callers(
    sample INTEGER NOT NULL REFERENCES samples(id), name INTEGER NOT NULL REFERENCES names(id),
    areas INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY(sample, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kinds(
    sample INTEGER NOT NULL REFERENCES samples(id), kind TEXT NOT NULL,
    areas INTEGER NOT NULL, bytes INTEGER NOT NULL, PRIMARY KEY(sample, kind)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS samples_t ON samples(t);
CREATE VIEW IF NOT EXISTS caller_series AS
    SELECT s.id AS sample, s.t AS t, datetime(s.t, 'unixepoch') AS time, n.name AS caller,
           c.areas AS areas, c.bytes AS bytes
    FROM callers c JOIN samples s ON s.id = c.sample JOIN names n ON n.id = c.name;
"""

_COLUMNS = ("t", "source", "areas", "bytes", "unpurged_bytes", "addresses_trusted",
            "largest_hole", "free_bytes", "fragmentation", "module_largest_hole",
            "vmalloc_total", "vmalloc_used")


def _connect(path: str, readonly: bool) -> sqlite3.Connection:
    if readonly:
        if not os.path.exists(path):
            raise FormatError(path, "no such store (run `pyvmalloc watch --store FILE` first)")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    return sqlite3.connect(path)


class Store:
    """One store file; ``readonly`` opens an existing one without any chance of writing it.

    A file that is not SQLite, or SQLite but not a store, is a FormatError naming the file.
    """

    def __init__(self, path: str, readonly: bool = False) -> None:
        self.path = path
        try:
            self.db = _connect(path, readonly)
            tables = {r[0] for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                raise FormatError(path, f"an SQLite file but not a {_MAGIC} (tables: "
                                        f"{', '.join(sorted(tables))})")
            if not tables:
                if readonly:
                    raise FormatError(path, f"not a {_MAGIC}: the file is empty")
                with self.db:
                    self.db.executescript(_SCHEMA)
                    self.db.executemany("INSERT INTO meta VALUES (?, ?)",
                                        [("format", _MAGIC), ("schema", SCHEMA_VERSION)])
            meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
            tables = {r[0] for r in self.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError as exc:
            # Not a question of content: the folder is missing, or not writable.
            raise FormatError(path, f"cannot open the store: {exc}") from None
        except sqlite3.DatabaseError as exc:
            raise FormatError(path, f"not a {_MAGIC} ({exc})") from None
        if meta.get("format") != _MAGIC or meta.get("schema") != SCHEMA_VERSION:
            raise FormatError(path, f"not a {_MAGIC} of schema {SCHEMA_VERSION} "
                                    f"(meta says {meta.get('format')!r}, {meta.get('schema')!r})")
        # A store with a table dropped (edited by hand, half copied) fails at the first read or
        # write otherwise, as an SQLite error in the middle of a watch.
        missing = sorted({"samples", "names", "callers", "kinds"} - tables)
        if missing:
            raise FormatError(path, f"a damaged {_MAGIC}: no table {', '.join(missing)}")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()

    def add(self, s: Sample) -> int:
        """Store one sample (committed before this returns); its id."""
        try:
            return self._add(s)
        except sqlite3.DatabaseError as exc:
            raise FormatError(self.path, f"cannot add a sample to the store ({exc})") from None

    def _add(self, s: Sample) -> int:
        with self.db:
            cur = self.db.execute(
                f"INSERT INTO samples({', '.join(_COLUMNS)}) VALUES "
                f"({', '.join('?' * len(_COLUMNS))})",
                (s.t, s.source, s.areas, s.bytes, s.unpurged_bytes, int(s.addresses_trusted),
                 s.largest_hole, s.free_bytes, s.fragmentation, s.module_largest_hole,
                 s.vmalloc_total, s.vmalloc_used))
            sid = cur.lastrowid
            assert sid is not None
            self.db.executemany("INSERT OR IGNORE INTO names(name) VALUES (?)",
                                [(name,) for name in s.callers])
            self.db.executemany(
                "INSERT INTO callers SELECT ?, id, ?, ? FROM names WHERE name = ?",
                [(sid, t.areas, t.bytes, name) for name, t in s.callers.items()])
            self.db.executemany("INSERT INTO kinds VALUES (?, ?, ?, ?)",
                                [(sid, k, t.areas, t.bytes) for k, t in s.kinds.items()])
        return sid

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM samples").fetchone()[0])

    def samples(self, since: float | None = None, last: int | None = None) -> list[Sample]:
        """The stored samples in time order: those at ``since`` or later, the ``last`` N."""
        try:
            return self._samples(since, last)
        except sqlite3.DatabaseError as exc:
            raise FormatError(self.path, f"cannot read the store ({exc})") from None

    def _samples(self, since: float | None, last: int | None) -> list[Sample]:
        rows = self.db.execute(
            f"SELECT id, {', '.join(_COLUMNS)} FROM samples WHERE t >= ? ORDER BY t, id",
            (since if since is not None else float("-inf"),)).fetchall()
        if last is not None:
            rows = rows[-last:] if last > 0 else []
        out = []
        for row in rows:
            sid, values = row[0], dict(zip(_COLUMNS, row[1:]))
            callers = {name: Total(a, b) for name, a, b in self.db.execute(
                "SELECT n.name, c.areas, c.bytes FROM callers c JOIN names n ON n.id = c.name "
                "WHERE c.sample = ? ORDER BY c.bytes DESC, c.areas DESC, n.name", (sid,))}
            kinds = {k: Total(a, b) for k, a, b in self.db.execute(
                "SELECT kind, areas, bytes FROM kinds WHERE sample = ? "
                "ORDER BY bytes DESC, kind", (sid,))}
            values["addresses_trusted"] = bool(values["addresses_trusted"])
            out.append(Sample(kinds=kinds, callers=callers, **values))
        return out


def query(path: str, sql: str) -> tuple[list[str], list[tuple[object, ...]]]:
    """Run one SQL statement on a store opened read-only: column names and rows.
    FormatError naming the store and SQLite's words when the statement fails."""
    store = Store(path, readonly=True)
    try:
        cur = store.db.execute(sql)
        columns = [d[0] for d in cur.description or ()]
        return columns, [tuple(r) for r in cur.fetchall()]
    except (sqlite3.Error, sqlite3.Warning) as exc:
        raise FormatError(f"{path}: --sql", str(exc)) from None
    finally:
        store.close()

