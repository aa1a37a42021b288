"""`orchestrator generate --json --logprobs` on smollm2-135m (needs the --logprobs flag in cli.py)."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli import main

pytestmark = pytest.mark.model

PROMPT = "The capital of France is"


def test_cli_json_includes_logprobs_only_when_asked(capsys):
    base = ["generate", "smollm2-135m", PROMPT, "--max-tokens", "4", "--json"]
    assert main(base) == 0
    assert "logprobs" not in json.loads(capsys.readouterr().out)
    assert main([*base, "--logprobs", "--n", "2", "--temperature", "0.8", "--seed", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["logprobs"]) == data["tokens"] and all(v <= 0 for v in data["logprobs"])
    assert [len(c["logprobs"]) for c in data["choices"]] == [c["tokens"] for c in data["choices"]]
