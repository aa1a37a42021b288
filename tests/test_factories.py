"""A stored run is data: ``resume`` rebuilds graphs only from factories registered in code."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.cli.graph import build_from_factory
from orchestrator.errors import ConfigError, StoreError, UnknownFactoryError
from orchestrator.taskgraph import factories
from orchestrator.taskgraph.factories import build_from_record, factory_for, register_factory, registered_factories
from orchestrator.taskgraph.graph import TaskGraph
from orchestrator.taskgraph.patterns import map_reduce, self_consistency, skeleton_of_thought
from orchestrator.taskgraph.store import RunStore


def _store_with(tmp_path: Path, factory: str) -> Path:
    db = tmp_path / "runs.sqlite3"
    with RunStore(db) as store:
        store.create_run("r", "g", "fp", {"question": "q"}, structure={"nodes": [], "edges": [], "output": None}, factory=factory)
    return db


@pytest.mark.parametrize("ref", ["os:system", "subprocess:getoutput", "shutil:rmtree"])
def test_resume_refuses_a_factory_the_store_names_but_nobody_registered(tmp_path, capsys, ref):
    # Regression: the attack. `resume` imported `module:function` from the store and called it.
    pwned = tmp_path / "pwned"
    args = {"os:system": {"command": f"touch {pwned}"}, "subprocess:getoutput": {"cmd": f"touch {pwned}"},
            "shutil:rmtree": {"path": str(tmp_path / "victim")}}[ref]
    (tmp_path / "victim").mkdir()
    db = _store_with(tmp_path, json.dumps({"ref": ref, "kwargs": args}))
    assert main(["resume", "r", "--store", str(db)]) == 1
    err = capsys.readouterr().err
    assert "not registered" in err and "Traceback" not in err, err
    assert not pwned.exists() and (tmp_path / "victim").is_dir()


def test_a_refused_factory_is_never_imported(tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_factory_module.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef build(): pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for record in ("evil_factory_module:build", json.dumps({"ref": "evil_factory_module:build"})):
        with pytest.raises(UnknownFactoryError, match="not registered"):
            build_from_factory(record)
    assert not marker.exists() and "evil_factory_module" not in sys.modules


def test_built_in_patterns_rebuild_under_new_and_old_names():
    for new, old, fn in [
        ("orchestrator.taskgraph.patterns:skeleton_of_thought", "orchestrator.patterns:skeleton_of_thought", skeleton_of_thought),
        ("orchestrator.taskgraph.patterns:map_reduce", "orchestrator.patterns:map_reduce", map_reduce),
        ("orchestrator.taskgraph.patterns:self_consistency", "orchestrator.patterns:self_consistency", self_consistency),
    ]:
        assert factory_for(new) is fn and factory_for(old) is fn and new in registered_factories()
    # A record as stores written before the move hold it.
    record = json.dumps({"ref": "orchestrator.patterns:skeleton_of_thought", "kwargs": {"points": 3},
                         "backends": {"default": "smollm2-135m"}})
    graph, backends = build_from_factory(record)
    assert isinstance(graph, TaskGraph) and graph.fingerprint() == skeleton_of_thought(points=3).fingerprint()
    assert backends == {"default": "smollm2-135m"}


def test_an_application_registers_its_own_factory(monkeypatch):
    monkeypatch.setattr(factories, "_registry", dict(factories._registry))  # leaves the registry as it was

    def review(*, rounds: int = 1) -> TaskGraph:
        g = TaskGraph("review", output="x")
        g.add("x", lambda: rounds)
        return g

    with pytest.raises(UnknownFactoryError):
        build_from_record("myapp:review")
    register_factory("myapp:review", review)
    register_factory("myapp:review", review)  # the same function again is fine
    graph, _ = build_from_record(json.dumps({"ref": "myapp:review", "kwargs": {"rounds": 2}}))
    assert graph.name == "review"
    with pytest.raises(ConfigError, match="already registered"):
        register_factory("myapp:review", skeleton_of_thought)
    with pytest.raises(ConfigError, match="already registered"):  # an old built-in name cannot be taken over
        register_factory("orchestrator.patterns:map_reduce", review)
    with pytest.raises(ConfigError):
        register_factory("", review)


@pytest.mark.parametrize("record, fragment", [
    ("{not json", "not valid JSON"),
    ('{"kwargs": {}}', "no factory name"),
    ('["orchestrator.taskgraph.patterns:map_reduce"]', "not registered"),
    ('{"ref": "orchestrator.taskgraph.patterns:map_reduce", "kwargs": [1]}', "'kwargs' that is not an object"),
    ('{"ref": "orchestrator.taskgraph.patterns:map_reduce", "kwargs": {"bogus": 1}}', "cannot rebuild the graph"),
    ('{"ref": "orchestrator.taskgraph.patterns:map_reduce", "backends": {"default": {"route": "x"}}}', "backend 'default'"),
    ('{"ref": "orchestrator.taskgraph.patterns:map_reduce", "backends": {"default": 3}}', "backend 'default'"),
])
def test_malformed_records_are_store_errors(record, fragment):
    with pytest.raises(StoreError, match=fragment):
        build_from_record(record)
