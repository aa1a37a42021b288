"""The server's "model" can be the router: decisions come back with the answer (fakes, loopback)."""

from __future__ import annotations

import httpx
import openai
import pytest

from orchestrator.backends.fake import ScriptedBackend
from orchestrator.cli.serve import router_over
from orchestrator.errors import ConfigError
from orchestrator.server import BackgroundServer, ServerConfig


class _Remote(ScriptedBackend):
    location = "remote"


def test_the_router_is_served_as_a_model_and_its_decision_comes_back() -> None:
    local = ScriptedBackend(lambda r: "local answer", name="small")
    remote = _Remote(lambda r: "remote answer", name="cloud")
    backends = {"cloud": remote, "small": local}
    backends["auto"] = router_over(backends, "auto", allow_egress=True)
    with BackgroundServer(backends, ServerConfig(port=0)) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=20)
        assert "auto" in [m.id for m in client.models.list()]
        plain = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "Capital of Peru?"}])
        assert plain.choices[0].message.content == "remote answer"
        assert plain.model_extra["route"]["backend"] == "cloud"
        body = {"model": "auto", "messages": [{"role": "user", "content": "Write to ana@example.org about rent"}]}
        private = httpx.post(f"{server.url}/chat/completions", json=body, timeout=20).json()
        assert private["choices"][0]["message"]["content"] == "local answer"
        assert private["route"]["backend"] == "small" and "email" in private["route"]["data_classes"]
    assert len(remote.requests) == 1  # the private request never reached the remote


def test_without_egress_the_served_router_keeps_everything_local() -> None:
    local = ScriptedBackend(lambda r: "local answer", name="small")
    remote = _Remote(lambda r: "remote answer", name="cloud")
    backends = {"cloud": remote, "small": local}
    backends["auto"] = router_over(backends, "auto")
    with BackgroundServer(backends, ServerConfig(port=0)) as server:
        reply = httpx.post(f"{server.url}/completions", json={"model": "auto", "prompt": "Hello"}, timeout=20).json()
    assert reply["choices"][0]["text"] == "local answer" and reply["route"]["policy"]
    assert remote.requests == []


def test_a_router_name_that_clashes_is_refused() -> None:
    with pytest.raises(ConfigError, match="already"):
        router_over({"auto": ScriptedBackend(["x"])}, "auto")
