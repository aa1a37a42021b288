"""Backend events as OpenAI stream chunks (``chat.completion.chunk`` / ``text_completion``).

Each choice starts with a role chunk, then content deltas, then its finish chunk; tool calls go
out whole in one delta when the choice ends (a local model's call is only known to be complete
then). With ``stream_options.include_usage`` a last chunk with no choices carries the usage.
When the request asked for log-probabilities, each content chunk carries those of the tokens
decoded since the previous chunk (with their text), as the backend streamed them.
Pure code: no I/O.
"""

from __future__ import annotations

from orchestrator.server.convert import Prepared, chat_logprobs, finish_reason, text_logprobs, usage
from orchestrator.server.local_tools import ToolStreamFilter
from orchestrator.types import Completion, TokenDelta

__all__ = ["ChatChunks", "CompletionChunks"]


class _Chunks:
    object_name = ""

    def __init__(self, prep: Prepared) -> None:
        self.prep = prep

    def _chunk(self, choices: list[dict]) -> dict:
        out = {"id": self.prep.id, "object": self.object_name, "created": self.prep.created,
               "model": self.prep.model, "choices": choices}
        if self.prep.include_usage:
            out["usage"] = None
        return out

    def _usage(self, completion: Completion) -> list[dict]:
        if not self.prep.include_usage:
            return []
        return [{**self._chunk([]), "usage": usage(completion)}]


class ChatChunks(_Chunks):
    """Chunks of one streamed chat completion."""

    object_name = "chat.completion.chunk"

    def __init__(self, prep: Prepared) -> None:
        super().__init__(prep)
        n = prep.request.n
        self._filters = [ToolStreamFilter(prep.plan) for _ in range(n)] if prep.plan else None

    def _one(self, index: int, delta: dict, reason: str | None = None, logprobs: dict | None = None) -> dict:
        return self._chunk([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}])

    def start(self) -> list[dict]:
        return [self._one(i, {"role": "assistant", "content": ""}) for i in range(self.prep.request.n)]

    def delta(self, event: TokenDelta) -> list[dict]:
        if self._filters:  # text held back for tool calls: its log-probabilities are in the whole reply only
            text = self._filters[event.index].feed(event.text)
            return [self._one(event.index, {"content": text})] if text else []
        logprobs = chat_logprobs(event.logprobs, event.token_texts) if self.prep.request.logprobs else None
        return [self._one(event.index, {"content": event.text}, logprobs=logprobs)] if event.text else []

    def end(self, completion: Completion) -> list[dict]:
        out = []
        for c in completion.choices:
            if self._filters:
                tail, calls, reason = self._filters[c.index].finish(c.finish_reason)
            else:
                tail, reason = "", c.finish_reason
                calls = [{"id": f.id, "type": "function", "function": {"name": f.name, "arguments": f.arguments}} for f in c.tool_calls]
            if tail:
                out.append(self._one(c.index, {"content": tail}))
            if calls:
                out.append(self._one(c.index, {"tool_calls": [{"index": k, **call} for k, call in enumerate(calls)]}))
            out.append(self._one(c.index, {}, finish_reason(reason)))
        return out + self._usage(completion)


class CompletionChunks(_Chunks):
    """Chunks of one streamed text completion."""

    object_name = "text_completion"

    def _one(self, index: int, text: str, reason: str | None = None, logprobs: dict | None = None) -> dict:
        return self._chunk([{"index": index, "text": text, "logprobs": logprobs, "finish_reason": reason}])

    def start(self) -> list[dict]:
        return []

    def delta(self, event: TokenDelta) -> list[dict]:
        logprobs = text_logprobs(event.logprobs, event.token_texts) if self.prep.request.logprobs else None
        return [self._one(event.index, event.text, logprobs=logprobs)] if event.text else []

    def end(self, completion: Completion) -> list[dict]:
        return [self._one(c.index, "", finish_reason(c.finish_reason)) for c in completion.choices] + self._usage(completion)
