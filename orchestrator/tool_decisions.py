"""Runs scored decisions (``agents.decide``) on a local engine: the I/O side of ``agents.scoring``.

A ``ScoreTexts`` becomes one generation request per continuation, all submitted at once: the
prompt is the conversation in the model's chat template (or, for a base model without one, a
plain transcript: ``User: ...`` / ``Reply: ...``) followed by the reply's ``prefix``; a grammar
allows only the continuation's text, and the request asks for log-probabilities, so the sum of
the tokens' log-probabilities is the continuation's log-likelihood (the tokens are the model's
own best split of that text). The engine computes the shared prompt once and keeps it in its
prefix cache: each candidate costs only its own few tokens. ``EmbedTexts`` goes to
``LocalEngine.embed`` (tool texts are embedded once and kept); ``GenerateText`` is a greedy
generation under its grammar.

    scorer = EngineScorer(engine)
    decision = scorer.decide(tools, [ChatMessage(role="user", content="What is 5 factorial?")])
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Generator, MutableMapping, Sequence
from typing import Any

import anyio

from agents.decide import DEFAULT_SETTINGS, Decision, DecisionSettings, ToolView, decide
from agents.scoring import EmbedTexts, GenerateText, Generated, Needs, Scored, ScoreTexts
from orchestrator.types import ChatMessage, Completion, GenerationRequest

__all__ = ["EngineScorer", "decide_on", "literal_grammar", "plain_transcript"]

log = logging.getLogger(__name__)

_ROLES = {"system": "", "user": "User: ", "assistant": "Reply: ", "tool": "Tool result: "}


def literal_grammar(text: str) -> str:
    """GBNF that matches exactly ``text``."""
    escaped = "".join(c if c not in '"\\' and 0x20 <= ord(c) != 0x7F else f"\\x{ord(c):02X}" for c in text)
    return f'root ::= "{escaped}"\n'


def plain_transcript(messages: Sequence[ChatMessage]) -> str:
    """A prompt for a base model: the system text, then ``User:``/``Reply:`` lines, ending with ``Reply: ``."""
    system = [m.content.strip() for m in messages if m.role == "system"]
    turns = [_ROLES[m.role] + m.content.strip() for m in messages if m.role != "system"]
    head = "\n\n".join(system) + "\n\n" if system else ""
    return head + "\n".join(turns) + "\nReply: "


class EngineScorer:
    """Answers the requests of scored decisions with a ``LocalEngine``.

    ``cache`` (any mutable mapping from text keys to JSON text, e.g. a dict, or a
    ``shelve``/sqlite-backed one for benchmarks) keeps scores and generations by prompt, so a
    rerun with other weights costs nothing. ``plain`` forces the plain transcript even when the
    model has a chat template.
    """

    def __init__(self, engine: Any, *, cache: MutableMapping[str, str] | None = None, plain: bool = False) -> None:
        self.engine = engine
        self.cache = cache
        self.plain = plain
        self._embeddings: dict[str, tuple[float, ...]] = {}

    def decide(self, tools: Sequence[Any], conversation: Sequence[ChatMessage], settings: DecisionSettings = DEFAULT_SETTINGS) -> Decision:
        """Runs ``agents.decide.decide`` for ``tools`` (``Tool``s or ``ToolView``s) to its decision."""
        views = [ToolView(t.name, t.description, t.parameters) for t in tools]
        return self.run(decide(views, conversation, settings))

    def run(self, flow: Generator[Needs, tuple[Any, ...], Decision]) -> Decision:
        """Drives a decision generator: each ``Needs`` is answered, its requests at once."""
        reply: Any = None
        try:
            while True:
                needs = flow.send(reply)
                reply = self.answer(needs)
        except StopIteration as stop:
            return stop.value
        finally:
            flow.close()

    def answer(self, needs: Needs) -> tuple[Any, ...]:
        pending: list[Callable[[], Any]] = []
        for request in needs.requests:  # submit everything first, then wait: one batch for the engine
            if isinstance(request, ScoreTexts):
                pending.append(self._score(request))
            elif isinstance(request, GenerateText):
                pending.append(self._generate(request))
            elif isinstance(request, EmbedTexts):
                pending.append(self._embed(request))
            else:  # pragma: no cover - agents.scoring defines only these
                raise TypeError(f"unknown decision request {request!r}")
        return tuple(wait() for wait in pending)

    def prompt(self, messages: Sequence[ChatMessage], prefix: str) -> str:
        text = None if self.plain else self.engine.chat_text(messages)
        return (text if text is not None else plain_transcript(messages)) + prefix

    def _cached(self, key: str, submit: Callable[[], Callable[[], Any]], load: Callable[[Any], Any],
                dump: Callable[[Any], Any]) -> Callable[[], Any]:
        if self.cache is not None and key in self.cache:
            value = load(json.loads(self.cache[key]))
            return lambda: value
        wait = submit()

        def done() -> Any:
            value = wait()
            if self.cache is not None:
                self.cache[key] = json.dumps(dump(value))
            return value
        return done

    def _score(self, request: ScoreTexts) -> Callable[[], tuple[Scored, ...]]:
        prompt = self.prompt(request.messages, request.prefix)
        waits = []
        for text in request.continuations:
            key = json.dumps(["score", self.engine.name, prompt, text])

            def submit(text: str = text) -> Callable[[], Scored]:
                handle = self.engine.submit(GenerationRequest(prompt=prompt, grammar=literal_grammar(text),
                                                              max_tokens=len(text.encode()) + 2, logprobs=True))
                return lambda: _scored(handle.result(), text)
            waits.append(self._cached(key, submit, lambda d: Scored(*d), lambda s: [s.logprob, s.tokens]))
        return lambda: tuple(w() for w in waits)

    def _generate(self, request: GenerateText) -> Callable[[], Generated]:
        prompt = self.prompt(request.messages, request.prefix)
        key = json.dumps(["generate", self.engine.name, prompt, request.grammar, request.max_tokens])

        def submit() -> Callable[[], Generated]:
            handle = self.engine.submit(GenerationRequest(prompt=prompt, grammar=request.grammar, max_tokens=request.max_tokens, logprobs=True))

            def wait() -> Generated:
                choice = handle.result().choices[0]
                return Generated(choice.text, sum(choice.logprobs or ()), choice.tokens)
            return wait
        return self._cached(key, submit, lambda d: Generated(*d), lambda g: [g.text, g.logprob, g.tokens])

    def _embed(self, request: EmbedTexts) -> Callable[[], tuple[tuple[float, ...], ...]]:
        texts = list(request.texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self._embeddings]
        if todo:
            vectors = self.engine.embed(todo)  # blocks briefly: runs between the engine's decode steps
            for text, vector in zip(todo, vectors):
                self._embeddings[text] = tuple(float(x) for x in vector)
        result = tuple(self._embeddings[t] for t in texts)
        if len(self._embeddings) > 4096:  # a long-lived app with changing tools: keep the cache bounded
            self._embeddings.clear()
        return lambda: result


def _scored(completion: Completion, text: str) -> Scored:
    choice = completion.choices[0]
    if choice.text != text:
        log.warning("scoring: the model's text %r differs from the continuation %r", choice.text[:60], text[:60])
    return Scored(float(sum(choice.logprobs or ())), choice.tokens)


# ---------------------------------------------------------------------------------------------
# For the agent runner: a scored turn on a backend
# ---------------------------------------------------------------------------------------------

_SCORERS: weakref.WeakKeyDictionary[Any, EngineScorer] = weakref.WeakKeyDictionary()


async def decide_on(backend: Any, tools: Sequence[ToolView], conversation: Sequence[ChatMessage],
                    settings: DecisionSettings = DEFAULT_SETTINGS) -> Decision | None:
    """The scored decision of ``backend``'s local engine (None when it has none: a remote or
    fake backend writes its turns instead). Runs in a worker thread: it waits on the engine."""
    engine = getattr(backend, "engine", None)
    if engine is None or not hasattr(engine, "submit"):
        return None
    scorer = _SCORERS.get(engine)
    if scorer is None:
        scorer = _SCORERS[engine] = EngineScorer(engine)
    return await anyio.to_thread.run_sync(lambda: scorer.run(decide(list(tools), conversation, settings)))
