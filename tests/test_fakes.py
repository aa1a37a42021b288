import anyio
import pytest

from orchestrator.backends import Backend, ScriptedBackend, complete
from orchestrator.errors import ConfigError
from orchestrator.types import Completion, GenerationRequest, TokenDelta


def run(coro_fn, *args):
    return anyio.run(coro_fn, *args)


def test_scripted_backend_streams_words_then_one_completion():
    backend = ScriptedBackend(["hello there world"])
    assert isinstance(backend, Backend)

    async def main():
        return [e async for e in backend.generate(GenerationRequest(prompt="hi"))]

    events = run(main)
    assert [e.text for e in events if isinstance(e, TokenDelta)] == ["hello", " there", " world"]
    assert isinstance(events[-1], Completion) and events[-1].text == "hello there world"
    assert backend.requests[0].prompt == "hi"


def test_scripted_backend_applies_stop_and_max_tokens():
    backend = ScriptedBackend(lambda r: "one two three. four")
    c1 = run(complete, backend, GenerationRequest(prompt="x", stop=(".",)))
    c2 = run(complete, backend, GenerationRequest(prompt="x", max_tokens=2))
    assert (c1.text, c1.finish_reason) == ("one two three", "stop")
    assert (c2.text, c2.finish_reason) == ("one two", "length")


def test_scripted_backend_n_choices_and_exhausted_script():
    backend = ScriptedBackend(["a", "b"])
    c = run(complete, backend, GenerationRequest(prompt="x", n=2))
    assert [ch.text for ch in c.choices] == ["a", "b"]
    with pytest.raises(ConfigError):
        run(complete, backend, GenerationRequest(prompt="x"))
