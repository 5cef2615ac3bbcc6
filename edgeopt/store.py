"""The results database: SQLite in one file next to the run, no server.

One row per measurement (candidate x batch size), linked to its artifact row; the full Measurement is kept
as JSON beside the columns used for filtering. The schema carries a version (`PRAGMA user_version`) and is
upgraded by the ordered MIGRATIONS on open. Every write is one transaction; WAL mode lets reports read the
file while a sweep is still writing, and a re-run asks `has()` to resume where it stopped.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable

from edgeopt.benchmarks.results import Measurement
from edgeopt.core.errors import InvalidInput

DEFAULT_DB = "edgeopt-results.db"

# Append only: entry i upgrades a version-i database to version i+1. Never edit a released entry.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE artifacts (
        sha256 TEXT PRIMARY KEY, name TEXT NOT NULL, path TEXT, family TEXT, format TEXT, precision TEXT,
        parent TEXT, recipe TEXT NOT NULL DEFAULT '[]', first_seen TEXT NOT NULL DEFAULT (datetime('now'))
    );
    CREATE TABLE measurements (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        candidate_id TEXT NOT NULL,
        artifact_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
        runtime TEXT NOT NULL, device TEXT NOT NULL, emulated INTEGER NOT NULL, batch_size INTEGER NOT NULL,
        status TEXT NOT NULL, median_ms REAL, p95_ms REAL, throughput REAL, peak_rss_mb REAL, size_mb REAL,
        accuracy REAL, fidelity REAL, created TEXT NOT NULL, data TEXT NOT NULL
    );
    CREATE INDEX measurements_candidate ON measurements(candidate_id, batch_size);
    CREATE INDEX measurements_artifact ON measurements(artifact_sha256);
    """,
    """
    CREATE TABLE run_metadata (
        key TEXT PRIMARY KEY, value TEXT NOT NULL, updated TEXT NOT NULL DEFAULT (datetime('now'))
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# filter name -> SQL column (artifact columns come from the joined artifacts table)
FILTERS = {"candidate_id": "m.candidate_id", "runtime": "m.runtime", "device": "m.device",
           "batch_size": "m.batch_size", "status": "m.status", "emulated": "m.emulated",
           "sha256": "a.sha256", "name": "a.name", "family": "a.family", "format": "a.format",
           "precision": "a.precision", "parent": "a.parent"}


class ResultStore:
    """`ResultStore(path)`: open (creating or upgrading) a results database."""

    def __init__(self, path: str | Path = DEFAULT_DB, timeout: float = 30.0):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            raise InvalidInput(f"{self.path}: directory {self.path.parent} does not exist")
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as error:
            raise InvalidInput(f"{self.path}: not an edgeopt results database: {error}") from None
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self._migrate()

    # ------------------------------------------------------------ schema

    @property
    def version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        current = self.version
        if current > SCHEMA_VERSION:
            raise InvalidInput(f"{self.path}: results schema version {current} is newer than this edgeopt "
                               f"understands ({SCHEMA_VERSION}); upgrade edgeopt")
        for version in range(current, SCHEMA_VERSION):
            with self._transaction():
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version={version + 1}")

    def _transaction(self):
        store = self

        class _Tx:
            def __enter__(self):
                store.conn.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind, value, traceback):
                store.conn.execute("ROLLBACK" if kind else "COMMIT")

        return _Tx()

    # ------------------------------------------------------------ writes

    def add(self, measurement: Measurement) -> int:
        """Store one measurement (and its artifact row, once) in one transaction; returns the row id."""
        return self.add_many([measurement])[0]

    def add_many(self, measurements: Iterable[Measurement]) -> list[int]:
        """Store several measurements atomically: all or none."""
        ids = []
        with self._transaction():
            for m in measurements:
                a = m.artifact
                self.conn.execute(
                    "INSERT OR IGNORE INTO artifacts(sha256, name, path, family, format, precision, parent, recipe) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (a.sha256, a.name, a.path, a.family, a.format, a.precision, a.parent, json.dumps(a.recipe)))
                lat = m.latency
                cursor = self.conn.execute(
                    "INSERT INTO measurements(candidate_id, artifact_sha256, runtime, device, emulated, batch_size, "
                    "status, median_ms, p95_ms, throughput, peak_rss_mb, size_mb, accuracy, fidelity, created, data) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (m.candidate_id, a.sha256, m.runtime, m.device, int(m.emulated), m.batch_size, m.status,
                     lat.median if lat else None, lat.p95 if lat else None, m.throughput, m.peak_rss_mb,
                     m.size_mb, m.accuracy, m.fidelity, m.created, m.model_dump_json()))
                ids.append(int(cursor.lastrowid))
        return ids

    def set_meta(self, key: str, value: Any) -> None:
        """Keep a JSON value about the run (e.g. the report's budget, notes and config) beside its results."""
        with self._transaction():
            self.conn.execute("INSERT OR REPLACE INTO run_metadata(key, value) VALUES (?, ?)",
                              (key, json.dumps(value)))

    # ------------------------------------------------------------ reads

    def get_meta(self, key: str) -> Any:
        """The value stored by set_meta, or None."""
        found = self.conn.execute("SELECT value FROM run_metadata WHERE key = ?", (key,)).fetchone()
        return json.loads(found[0]) if found else None

    def measurements(self, latest: bool = False, **filters: Any) -> list[Measurement]:
        """Measurements matching every filter (candidate_id, runtime, device, batch_size, status, emulated,
        sha256, name, family, format, precision, parent), oldest first.
        With latest=True only the newest row per (candidate_id, batch_size) is returned."""
        unknown = sorted(set(filters) - set(FILTERS))
        if unknown:
            raise InvalidInput(f"unknown measurement filter(s) {', '.join(unknown)}; "
                               f"expected {', '.join(sorted(FILTERS))}")
        where, values = [], []
        for key, value in filters.items():
            if value is None:
                continue
            if isinstance(value, (list, tuple, set)):
                where.append(f"{FILTERS[key]} IN ({','.join('?' * len(value))})")
                values.extend(str(v) if key != "batch_size" else int(v) for v in value)
            else:
                where.append(f"{FILTERS[key]} = ?")
                values.append(int(value) if key in ("batch_size", "emulated") else str(value))
        if latest:
            where.append("m.id = (SELECT MAX(id) FROM measurements l "
                         "WHERE l.candidate_id = m.candidate_id AND l.batch_size = m.batch_size)")
        sql = ("SELECT m.data FROM measurements m JOIN artifacts a ON a.sha256 = m.artifact_sha256"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY m.id")
        return [Measurement.model_validate_json(row[0]) for row in self.conn.execute(sql, values)]

    def superseded(self, candidate_id: str) -> Measurement | None:
        """The newest measurement of the same stable key (`model/recipe/runtime/device`, the part before `#`)
        under another id: what a re-measurement replaces, to say why it was re-measured."""
        stable = candidate_id.split("#", 1)[0] + "#"
        row = self.conn.execute("SELECT data FROM measurements WHERE substr(candidate_id, 1, ?) = ? AND "
                                "candidate_id != ? ORDER BY id DESC LIMIT 1",
                                (len(stable), stable, candidate_id)).fetchone()
        return Measurement.model_validate_json(row[0]) if row else None

    def has(self, candidate_id: str, batch_size: int | None = None, status: str | None = "ok") -> bool:
        """Whether the candidate (at this batch size) is already measured; a re-run skips it (resume)."""
        sql, values = "SELECT 1 FROM measurements WHERE candidate_id = ?", [candidate_id]
        if batch_size is not None:
            sql, values = sql + " AND batch_size = ?", values + [int(batch_size)]
        if status is not None:
            sql, values = sql + " AND status = ?", values + [status]
        return self.conn.execute(sql + " LIMIT 1", values).fetchone() is not None

    def __len__(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
