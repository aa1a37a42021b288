"""Deterministic backends for tests: no model, no threads, no network."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable

import anyio

from orchestrator.backends.cancel import CancelHandle
from orchestrator.errors import ConfigError
from orchestrator.types import Choice, Completion, GenerationRequest, Timings, TokenDelta

__all__ = ["Reply", "ScriptedBackend"]

Reply = str | Callable[[GenerationRequest], str]


class ScriptedBackend:
    """Answers from a script: a list of replies used in order, or one function of the request.

    Replies are streamed word by word; ``requests`` records what was asked.
    ``delay`` (seconds per piece) lets tests exercise timeouts and cancellation. Keeps the cancel
    contract of ``Backend`` (``stops_on_cancel``): once cancelled it sends no more words and ends
    with a ``"cancelled"`` completion counting the words sent; later choices are not started.
    """

    stops_on_cancel = True

    def __init__(self, replies: Iterable[Reply] | Callable[[GenerationRequest], str], *, name: str = "scripted", delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.requests: list[GenerationRequest] = []
        if callable(replies):
            self._fn: Callable[[GenerationRequest], str] | None = replies
            self._script: list[Reply] = []
        else:
            self._fn = None
            self._script = list(replies)

    def _reply(self, request: GenerationRequest) -> str:
        if self._fn is not None:
            return self._fn(request)
        if not self._script:
            raise ConfigError(f"{self.name}: the script has no reply left for request {len(self.requests)}")
        reply = self._script.pop(0)
        return reply(request) if callable(reply) else reply

    async def generate(self, request: GenerationRequest, *, cancel: CancelHandle | None = None) -> AsyncIterator[TokenDelta | Completion]:
        self.requests.append(request)
        choices = []
        for index in range(request.n):
            if cancel is not None and cancel.cancelled:  # a choice not started: nothing to send
                choices.append(Choice(index=index, text="", tokens=0, finish_reason="cancelled"))
                continue
            text, reason = _apply_limits(self._reply(request), request)
            sent = ""
            for piece in re.findall(r"\s*\S+|\s+", text):
                if self.delay:
                    await anyio.sleep(self.delay)
                if cancel is not None and cancel.cancelled:  # stop at the next word
                    text, reason = sent, "cancelled"
                    break
                yield TokenDelta(index=index, text=piece)
                sent += piece
            choices.append(Choice(index=index, text=text, tokens=len(text.split()), finish_reason=reason))
        total = sum(c.tokens for c in choices)
        yield Completion(model=self.name, choices=tuple(choices), timings=Timings(decode_tokens=total))


def _apply_limits(text: str, request: GenerationRequest) -> tuple[str, str]:
    """Cuts the reply at the first stop string, then at ``max_tokens`` words."""
    cuts = [i for i in (text.find(s) for s in request.stop) if i >= 0]
    if cuts:
        return text[: min(cuts)], "stop"
    words = re.findall(r"\s*\S+", text)
    if len(words) > request.max_tokens:
        return "".join(words[: request.max_tokens]), "length"
    return text, "stop"
