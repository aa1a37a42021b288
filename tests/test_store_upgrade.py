"""The run store's layout has a version (PRAGMA user_version) and upgrades old stores when opened."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from orchestrator.errors import StoreError
from orchestrator.taskgraph.store import SCHEMA_VERSION, RunStore

# The layout and the writes of the store before it had a version, copied from that code
# (orchestrator/taskgraph/store.py at commit 70b440d): positional inserts, no user_version.
_OLD_SCHEMA = """
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
_STRUCTURE = {"nodes": [{"name": "a", "kind": "function"}], "edges": [], "output": "a"}
_FACTORY = '{"ref":"orchestrator.patterns:skeleton_of_thought","kwargs":{"points":3},"backends":{"default":"smollm2-135m"}}'


def _old_store(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(_OLD_SCHEMA)
    db.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, NULL)",
               ("old", "sot", "fp1", _FACTORY, json.dumps(_STRUCTURE), json.dumps({"question": "why?"}), 100.0, 101.0))
    db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
               ("old", "a", "done", json.dumps({"x": [1, 2]}), 1, 100.5, 100.9, json.dumps({"backend": "b"}), None))
    db.execute("INSERT INTO nodes (run_id, key, status, attempts, started) VALUES (?, ?, 'started', ?, ?)", ("old", "send", 1, 100.6))
    db.close()


def _version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA user_version").fetchone()[0]


def test_a_store_written_by_the_previous_layout_is_upgraded_and_still_reads(tmp_path):
    path = tmp_path / "runs.sqlite3"
    _old_store(path)
    assert _version(path) == 0
    with RunStore(path) as store:
        run = store.run("old")
        assert (run.graph, run.fingerprint, run.factory, run.status, run.created, run.error) == ("sot", "fp1", _FACTORY, "running", 100.0, None)
        assert run.structure == _STRUCTURE and run.inputs == {"question": "why?"}
        nodes = store.nodes("old")
        assert nodes["a"].output == {"x": [1, 2]} and nodes["a"].info == {"backend": "b"} and nodes["a"].attempts == 1
        assert nodes["send"].status == "started" and nodes["send"].output is None
        # New writes go next to the old rows.
        store.commit("old", "b", '"done"', attempts=1, started=102.0, info={})
        store.create_run("new", "g", "fp2", {}, structure=_STRUCTURE)
        assert [r.run_id for r in store.runs()] == ["new", "old"]
    assert _version(path) == SCHEMA_VERSION >= 1
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'runs_by_created'").fetchone()
    with RunStore(path) as store:  # opening an up-to-date store changes nothing
        assert store.nodes("old")["b"].output == "done"
    assert _version(path) == SCHEMA_VERSION


def test_a_new_store_starts_at_the_current_version(tmp_path):
    path = tmp_path / "fresh.sqlite3"
    RunStore(path).close()
    assert _version(path) == SCHEMA_VERSION


def test_a_store_from_a_newer_version_is_refused_untouched(tmp_path):
    path = tmp_path / "future.sqlite3"
    RunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer orchestrator"):
        RunStore(path)
    assert _version(path) == SCHEMA_VERSION + 1


def test_writes_name_their_columns_so_an_added_column_does_not_break_them(tmp_path):
    # A later layout that adds a column (with a default) must not shift today's writes.
    path = tmp_path / "runs.sqlite3"
    RunStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE runs ADD COLUMN tenant TEXT DEFAULT 'me'")
        db.execute("ALTER TABLE nodes ADD COLUMN cost REAL DEFAULT 0")
    with RunStore(path) as store:
        store.create_run("r", "g", "fp", {"k": 1}, structure=_STRUCTURE, factory="f")
        store.commit("r", "a", "[1]", attempts=1, started=1.0, info={"i": 1})
        store.record("r", "b", "failed", error="boom")
        run, nodes = store.run("r"), store.nodes("r")
    assert (run.graph, run.factory, run.inputs, run.status) == ("g", "f", {"k": 1}, "running")
    assert nodes["a"].output == [1] and nodes["a"].info == {"i": 1} and nodes["b"].error == "boom"


def test_two_processes_opening_an_old_store_at_once_migrate_it_once(tmp_path):
    path = tmp_path / "runs.sqlite3"
    _old_store(path)
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            RunStore(path).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and _version(path) == SCHEMA_VERSION
    assert RunStore(path).run("old").status == "running"
