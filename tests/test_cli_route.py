"""``orchestrator route``: the decision without running anything; ``--run`` on smollm2-135m."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from orchestrator.routing.backend_stats import BackendStats, Measured
from orchestrator.cli import main

REMOTE = ["--remote", "http://127.0.0.1:9/v1", "--remote-model", "big"]  # port 9: nothing listens, nothing connects


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCHESTRATOR_STATE_DIR", str(tmp_path))
    return tmp_path


def route(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["route", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_route_without_egress_stays_local_and_loads_nothing(capsys):
    d = route(capsys, "What is 2 + 2?", *REMOTE)
    assert d["backend"] == "smollm2-135m" and d["policy"] == "default"
    assert d["trail"][0] == {"policy": "privacy", "action": "forbid", "reason": "no private data found; remote egress is not granted",
                             "backend": None, "forbidden": ["remote:big"]}


def test_route_with_egress_and_budget_prefers_the_fast_remote(capsys, state_dir):
    stats = BackendStats(priors={"smollm2-135m": Measured(ttft_s=0.05, tok_s=100.0), "remote:big": Measured(ttft_s=0.2, tok_s=400.0)})
    stats.save(state_dir / "backend_stats.json")
    d = route(capsys, "Write a poem about the sea.", *REMOTE, "--allow-egress", "--prefer", "latency", "--max-tokens", "512")
    assert d["backend"] == "remote:big" and d["policy"] == "budget" and "lowest predicted latency" in d["reason"]
    private = route(capsys, "Write to jane@example.com", *REMOTE, "--allow-egress", "--prefer", "latency")
    assert private["backend"] == "smollm2-135m" and private["data_classes"] == ["email"]
    granted = route(capsys, "Write to jane@example.com", *REMOTE, "--allow-egress", "--egress-class", "email", "--prefer", "latency")
    assert granted["backend"] == "remote:big"
    offline = route(capsys, "Write a poem", *REMOTE, "--allow-egress", "--offline")
    assert offline["backend"] == "smollm2-135m" and "offline" in offline["trail"][1]["reason"]


def test_route_cascade_and_labels(capsys):
    d = route(capsys, "hello", "--larger", "gemma3-270m", "--cascade", "0.7", "--label", "medical")
    assert (d["backend"], d["escalate_to"], d["escalate_below"], d["data_classes"]) == ("smollm2-135m", "gemma3-270m", 0.7, ["medical"])


def test_route_text_output(capsys):
    assert main(["route", "call me at +44 20 7946 0958", *REMOTE, "--allow-egress"]) == 0
    out = capsys.readouterr().out
    assert "route: smollm2-135m" in out and "private data: phone" in out and "forbid" in out and "remote:big" in out


def test_route_errors_are_one_line(capsys):
    assert main(["route", "ssn 123-45-6789", *REMOTE, "--allow-egress", "--model", "/nonexistent/model.gguf"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "must stay on the device" in err and err.count("\n") == 1
    assert main(["route", "x", "--remote", "http://127.0.0.1:9/v1"]) == 2  # a bad flag: exit status 2
    assert "--remote-model" in capsys.readouterr().err
    assert main(["route", "x", "--label", "Not A Label"]) == 2
    assert main(["route", "x", "--cascade", "2"]) == 2


def test_route_decision_does_not_import_llama_cpp():
    import subprocess

    code = (
        "import sys; from orchestrator.cli import main;"
        "rc = main(['route', 'hi', '--json', '--remote', 'http://127.0.0.1:9/v1', '--remote-model', 'm']);"
        "assert rc == 0 and 'llama_cpp' not in sys.modules, 'route loaded llama_cpp'"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["backend"] == "smollm2-135m"


@pytest.mark.model
def test_route_run_answers_and_stores_measured_speed(capsys, state_dir, smollm2_path):
    assert main(["route", "The capital of France is", "--run", "--json", "--max-tokens", "4", *REMOTE]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["route"]["backend"] == "smollm2-135m" and isinstance(data["text"], str) and data["text"]
    stored = BackendStats.load(state_dir / "backend_stats.json").get("smollm2-135m")
    assert stored.samples == 1 and stored.tok_s and stored.tok_s > 0
