"""`orchestrator run`, `resume`, `runs` and `graph show` on the embedded model, including a kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.taskgraph.store import RunStore
from tests.children import die_with_parent

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "How can a small team make its software more reliable?"


def test_run_then_show_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "runs.sqlite3"
    assert main(["run", "sot", QUESTION, "--points", "3", "--run-id", "cli1", "--store", str(store), "--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "done" and summary["run_id"] == "cli1"
    assert summary["critical_path"][0] == "outline_text" and summary["critical_path"][-1] == "answer"
    assert summary["prefill_reused"] > 0  # the expansions share the question-and-outline prefix
    assert summary["output"].startswith("1. ")
    assert main(["runs", "--store", str(store)]) == 0
    assert "cli1" in capsys.readouterr().out
    svg = tmp_path / "run.svg"
    assert main(["graph", "show", "cli1", "--format", "svg", "--out", str(svg), "--store", str(store)]) == 0
    assert svg.read_text().startswith("<svg") or "<svg" in svg.read_text()[:200]
    assert main(["graph", "show", "cli1", "--store", str(store)]) == 0
    assert "flowchart TD" in capsys.readouterr().out
    assert main(["resume", "nope", "--store", str(store)]) == 1
    assert "no run 'nope'" in capsys.readouterr().err


def test_kill_9_mid_run_then_resume_from_the_cli(tmp_path: Path) -> None:
    store = tmp_path / "runs.sqlite3"
    cmd = [sys.executable, "-m", "orchestrator", "run", "sot", QUESTION, "--points", "4", "--run-id", "k", "--store", str(store), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ}, preexec_fn=die_with_parent, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    committed: dict[str, str] = {}
    while time.monotonic() < deadline and proc.poll() is None:
        if store.exists():
            try:
                with sqlite3.connect(store) as db:
                    committed = dict(db.execute("SELECT key, output FROM nodes WHERE run_id = 'k' AND status = 'done'").fetchall())
            except sqlite3.OperationalError:  # the child has created the file but not its tables yet
                committed = {}
            if "outline" in committed:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert RunStore(store).run("k").status == "running"  # killed: nobody could mark it

    done = subprocess.run([sys.executable, "-m", "orchestrator", "resume", "k", "--store", str(store), "--json", "--quiet"],
                          cwd=ROOT, preexec_fn=die_with_parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["status"] == "done"
    assert all(summary["nodes"][k]["resumed"] for k in committed)  # not recomputed
    nodes = RunStore(store).nodes("k")
    assert all(json.dumps(nodes[k].output, ensure_ascii=False, separators=(",", ":")) == v for k, v in committed.items())


@pytest.mark.model
@pytest.mark.timeout(300)
def test_run_with_a_cascade_routes_every_generation_and_shows_where_it_went(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], smollm2_path: Path) -> None:
    # The patterns send chat messages, and gemma3-270m (a base model) has no chat template: the
    # larger tier here is a second engine on the smollm2 file, named by its path.
    larger = str(smollm2_path)
    store = tmp_path / "runs.sqlite3"
    args = ["run", "map-reduce", "The cat sat on the mat.", "Dogs bark at night.", "--store", str(store), "--run-id", "routed",
            "--larger", larger, "--cascade", "1.0"]  # threshold 1: every answer escalates
    assert main(args + ["--json", "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    routes = [n["route"] for n in summary["nodes"].values() if "route" in n]
    assert routes and all(r["backend"] == larger and r["policy"] for r in routes), routes
    with RunStore(store) as s:
        assert json.loads(s.run("routed").factory)["backends"]["default"] == {"route": ["smollm2-135m", larger], "cascade": 1.0}
    assert main(["run", "vote", "2 + 2 =", "--store", str(store), "--larger", larger, "--cascade", "7"]) == 2
    assert "--cascade" in capsys.readouterr().err
