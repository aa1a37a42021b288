"""The durable run store: one SQLite file (WAL), JSON values only, never pickle.

A node's output is committed here before any node that needs it starts, so a run killed at
any instant (kill -9) resumes from what was committed. A node with side effects
(``idempotent=False``) is also marked *started* before it runs: finding that mark without a
commit on resume means the effect may have happened, and the scheduler refuses to repeat it
silently.

``synchronous=NORMAL`` in WAL mode survives the process being killed; pass ``durable="full"``
to also survive power loss, at the cost of an fsync per commit.

The layout has a version (SQLite's ``PRAGMA user_version``). Opening a store brings it up to
``SCHEMA_VERSION`` by running the missing steps of ``_MIGRATIONS`` in one transaction; a store
written by a newer orchestrator is refused rather than guessed at. Rows are written and read
by column name, so a column added by a later step never shifts the others.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from orchestrator.errors import StoreError

__all__ = ["SCHEMA_VERSION", "NodeRecord", "RunRecord", "RunStore", "to_json"]

log = logging.getLogger(__name__)

# Version 0 is the first layout, which had no version number (stores written before versions
# existed read 0 too). Each migration takes the store from its index to the next version.
_LAYOUT_0 = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    graph TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    factory TEXT,
    structure TEXT NOT NULL,
    inputs TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS nodes (
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    key TEXT NOT NULL,
    status TEXT NOT NULL,
    output TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    started REAL,
    finished REAL,
    info TEXT,
    error TEXT,
    PRIMARY KEY (run_id, key)
);
"""
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 0 -> 1: the tables of the first layout (a no-op on a store that has them), and an index
    # for ``runs()``, which lists the newest runs first.
    (*[stmt for stmt in _LAYOUT_0.split(";") if stmt.strip()], "CREATE INDEX IF NOT EXISTS runs_by_created ON runs (created)"),
)
SCHEMA_VERSION = len(_MIGRATIONS)
"""The layout this code writes; stores with a lower ``user_version`` are migrated when opened."""
_RUN_COLUMNS = "run_id, graph, fingerprint, factory, structure, inputs, status, created, updated, error"
_NODE_COLUMNS = "key, status, output, attempts, started, finished, info, error"
_MAX_JSON = 64 * 1024 * 1024


def to_json(value: Any) -> str:
    """Strict JSON text of a value: no NaN or Infinity, no objects JSON cannot hold.
    Pydantic models are dumped in JSON mode. Raises ``TypeError`` or ``ValueError``."""
    if hasattr(value, "model_dump") and callable(value.model_dump):
        value = value.model_dump(mode="json")
    text = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    if len(text) > _MAX_JSON:
        raise ValueError(f"a value of {len(text)} characters is over the store's {_MAX_JSON} limit")
    return text


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    graph: str
    fingerprint: str
    factory: str | None
    structure: dict[str, Any]  # {"nodes": [{"name", "kind"}], "edges": [[from, to]], "output": name}
    inputs: dict[str, Any]
    status: str
    created: float
    updated: float
    error: str | None


@dataclass(frozen=True)
class NodeRecord:
    key: str
    status: str  # started | done | failed | skipped | cancelled
    output: Any
    attempts: int
    started: float | None
    finished: float | None
    info: dict[str, Any]
    error: str | None


class RunStore:
    """Runs and their node results in one SQLite file. Safe to share between threads."""

    def __init__(self, path: str | Path, *, durable: Literal["normal", "full"] = "normal") -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the run store {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable == 'full' else 'NORMAL'}")
            _migrate(self._db, self.path)
        except BaseException as exc:
            self._db.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open the run store {self.path}: {exc}") from exc
            raise
        self._lock = threading.Lock()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise StoreError(f"run store {self.path}: {exc}") from exc

    # -- runs ------------------------------------------------------------------
    def create_run(self, run_id: str, graph: str, fingerprint: str, inputs: dict[str, Any], *, structure: dict[str, Any], factory: str | None = None) -> None:
        now = time.time()
        with self._write() as db:
            try:
                db.execute(
                    "INSERT INTO runs (run_id, graph, fingerprint, factory, structure, inputs, status, created, updated, error) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, NULL)",
                    (run_id, graph, fingerprint, factory, to_json(structure), to_json(inputs), now, now),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"a run {run_id!r} already exists in {self.path}; resume it instead") from exc

    def set_run_status(self, run_id: str, status: str, error: str | None = None) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET status = ?, error = ?, updated = ? WHERE run_id = ?", (status, error, time.time(), run_id))

    def run(self, run_id: str) -> RunRecord:
        with self._write() as db:
            row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        return RunRecord(row[0], row[1], row[2], row[3], _loads(row[4], run_id), _loads(row[5], run_id), *row[6:10])

    def runs(self, limit: int = 50) -> list[RunRecord]:
        with self._write() as db:
            ids = [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY created DESC LIMIT ?", (limit,))]
        return [self.run(i) for i in ids]

    # -- nodes -----------------------------------------------------------------
    def mark_started(self, run_id: str, key: str, attempts: int) -> None:
        """Records that a node with side effects is about to run (committed before it runs)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO nodes (run_id, key, status, attempts, started) VALUES (?, ?, 'started', ?, ?) "
                "ON CONFLICT (run_id, key) DO UPDATE SET status = 'started', attempts = excluded.attempts, started = excluded.started",
                (run_id, key, attempts, time.time()),
            )

    def commit(self, run_id: str, key: str, output_json: str, *, attempts: int, started: float, info: dict[str, Any]) -> None:
        """Commits a node's output (already JSON text, see ``to_json``)."""
        self._put(run_id, key, "done", output_json, attempts, started, info, None)

    def record(self, run_id: str, key: str, status: str, *, attempts: int = 0, started: float | None = None, finished: float | None = None,
               info: dict[str, Any] | None = None, error: str | None = None) -> None:
        """Records a node that ended without output: failed, skipped or cancelled."""
        self._put(run_id, key, status, None, attempts, started, info or {}, error, finished)

    def _put(self, run_id: str, key: str, status: str, output: str | None, attempts: int, started: float | None, info: dict[str, Any],
             error: str | None, finished: float | None = None) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO nodes (run_id, key, status, output, attempts, started, finished, info, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, key, status, output, attempts, started, finished or time.time(), to_json(info), error),
            )

    def nodes(self, run_id: str) -> dict[str, NodeRecord]:
        with self._write() as db:
            rows = db.execute(f"SELECT {_NODE_COLUMNS} FROM nodes WHERE run_id = ?", (run_id,)).fetchall()
        return {
            r[0]: NodeRecord(r[0], r[1], _loads(r[2], run_id) if r[2] is not None else None, r[3], r[4], r[5], _loads(r[6], run_id) if r[6] else {}, r[7])
            for r in rows
        }

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    """Brings the store's layout up to ``SCHEMA_VERSION``, all steps in one transaction."""
    # BEGIN IMMEDIATE takes the write lock first: two processes opening one old store at once
    # migrate it once, and a crash midway leaves the old layout and version intact.
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the run store {path} has layout version {version}, written by a newer orchestrator; "
                f"this one reads versions up to {SCHEMA_VERSION}"
            )
        for step in range(version, SCHEMA_VERSION):
            for statement in _MIGRATIONS[step]:
                db.execute(statement)
        if version != SCHEMA_VERSION:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            log.info("run store %s: layout migrated from version %d to %d", path, version, SCHEMA_VERSION)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _loads(text: str, run_id: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constants)
    except ValueError as exc:
        raise StoreError(f"run {run_id!r}: a stored value is not valid JSON ({exc})") from exc


def _no_constants(name: str) -> float:
    raise ValueError(f"{name} is not JSON")

