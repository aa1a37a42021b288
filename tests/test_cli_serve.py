"""``orchestrator serve`` from the command line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import openai
import pytest

from orchestrator.cli import main


def test_serve_refuses_a_public_bind_before_loading_anything(capsys):
    assert main(["serve", "--host", "0.0.0.0"]) == 2  # a bad flag: exit status 2, naming it
    assert "error: --host 0.0.0.0: " in capsys.readouterr().err
    assert main(["serve", "--cors-origin", "*"]) == 2
    assert "--cors-origin" in capsys.readouterr().err
    assert main(["serve", "--remote", "lab=m@ftp://x", "--model", "none"]) == 2
    assert "error: --remote" in capsys.readouterr().err


@pytest.mark.model
@pytest.mark.timeout(120)
def test_serve_answers_the_openai_client_and_stops_on_sigint(smollm2_path):
    env = {**os.environ, "ORCHESTRATOR_API_KEY": "test-key-1234"}
    cmd = [sys.executable, "-m", "orchestrator", "serve", "--model", f"small={smollm2_path}", "--port", "0", "--n-ctx", "1024"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = None
        for line in proc.stderr:  # bounded by the test timeout; the line comes once the model is loaded
            if match := re.search(r"on (http://\S+/v1)", line):
                url = match.group(1)
                break
        assert url, "the server did not say where it listens"
        client = openai.OpenAI(base_url=url, api_key="test-key-1234", max_retries=0, timeout=60)
        reply = client.chat.completions.create(model="small", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0)
        assert reply.choices[0].message.content and reply.usage.completion_tokens <= 4
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url, api_key="wrong-key-0000", max_retries=0).models.list()
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(30)
    assert rc in (0, 130)
