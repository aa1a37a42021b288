"""The command line, driven in-process as a user would type it."""

from __future__ import annotations

import json

import pytest

from orchestrator.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.model
def test_generate_json_has_the_documented_fields(capsys):
    code, out, _ = run(capsys, "generate", "smollm2-135m", "The capital of France is", "--max-tokens", "6", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["tokens"] == len(data["text"]) > 0 or data["tokens"] > 0
    assert data["finish_reason"] in ("stop", "length")
    assert set(data["timings"]) >= {"ttft_s", "prefill_tokens", "prefill_tok_s", "decode_tok_s", "total_s"}
    assert data["timings"]["prefill_tokens"] > 0 and "choices" not in data


@pytest.mark.model
def test_generate_n_returns_choices_sharing_the_prompt(capsys):
    code, out, _ = run(
        capsys, "generate", "smollm2-135m", "Name a fruit:", "--chat", "--n", "3",
        "--temperature", "0.9", "--seed", "1", "--max-tokens", "8", "--json",
    )
    assert code == 0
    data = json.loads(out)
    assert [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert all({"text", "tokens", "finish_reason"} <= set(c) for c in data["choices"])
    assert data["timings"]["prefill_reused_tokens"] >= 2 * data["timings"]["prefill_tokens"] - 4


@pytest.mark.model
def test_generate_streams_plain_text(capsys):
    code, out, _ = run(capsys, "generate", "smollm2-135m", "1, 2, 3, 4,", "--max-tokens", "6", "--stop", "8")
    assert code == 0 and "5" in out and "8" not in out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["generate", "no-such-model", "hi"], "no-such-model"),
        (["generate", "smollm2-135m", "hi", "--max-tokens", "0"], "--max-tokens 0"),
        (["generate", "smollm2-135m", "hi", "--temperature", "-1"], "--temperature"),
        (["models", "info", "/nonexistent/file.gguf"], "file.gguf"),
        (["bench", "no-such-bench"], "no benchmark"),
    ],
)
def test_errors_print_one_line_and_exit_non_zero(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code != 0
    assert err.count("\n") == 1 and err.startswith("error:") and needle in err
    assert "Traceback" not in err


def test_bad_gguf_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00")
    code, _, err = run(capsys, "generate", str(bad), "hi")
    assert code == 1 and "truncated.gguf" in err and err.count("\n") == 1


@pytest.mark.model
def test_models_list_and_info(capsys):
    code, out, _ = run(capsys, "models")
    assert code == 0 and "smollm2-135m" in out and "gemma3-270m" in out
    code, out, _ = run(capsys, "models", "info", "smollm2-135m", "--json")
    info = json.loads(out)
    assert code == 0 and info["architecture"] == "llama" and info["vocab_size"] == 49152
