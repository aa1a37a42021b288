"""``orchestrator chat [MODEL]``: an interactive, streamed chat with history (like ``ollama run``).

    orchestrator chat                      # the embedded default model
    orchestrator chat gemma3-270m --system "Answer in one sentence." --timings

The model is reached the way ``generate`` reaches it (a ``SyncOrchestrator``). Each answer streams
as it is generated; Ctrl-C stops the answer (the request's ``CancelHandle``: a local model stops
at its next token) and returns to the prompt, keeping what was shown in the history; Ctrl-D or
``/bye`` leaves. ``/timings`` toggles a line after each answer (first-token latency, tokens/s),
``/clear`` forgets the conversation, ``/help`` lists the commands.

``ChatLoop`` reads lines from an injectable ``read(prompt)`` (``input`` by default: EOFError on
Ctrl-D, KeyboardInterrupt on Ctrl-C) and writes to an injectable ``out``, so it is tested without
a terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from orchestrator.errors import OrchestratorError
from orchestrator.types import ChatMessage, Completion, GenerationRequest, SamplingParams, TokenDelta

__all__ = ["COMMANDS", "PROMPT", "ChatLoop", "ChatSettings", "add_parser", "run", "timing_line"]

PROMPT = ">>> "
_HELP = """commands:
  /timings   show or hide a timing line after each answer
  /clear     forget the conversation so far
  /bye       leave (so does Ctrl-D)
  /help      this list
Ctrl-C stops an answer and returns to the prompt."""

_EXAMPLES = """\
examples:
  orchestrator chat
  orchestrator chat gemma3-270m --system "Answer in one sentence." --timings
  orchestrator chat ./my-model.gguf --temperature 0 --max-tokens 256
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("chat", help="talk with a local model: streamed answers, history, Ctrl-C stops an answer",
                       epilog=_EXAMPLES)
    p.add_argument("model", nargs="?", default=None, help="catalogue name or .gguf path (default: the embedded default model)")
    p.add_argument("--system", default=None, help="a system message that opens the conversation (default: none)")
    p.add_argument("--max-tokens", type=int, default=512, help="most tokens in one answer")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (0: greedy)")
    p.add_argument("--top-k", type=int, default=40, help="keep the K most likely tokens (0: all)")
    p.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling: keep tokens up to this probability mass")
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: a random one)")
    p.add_argument("--n-ctx", type=int, default=4096, help="KV cells: the conversation's length limit, in tokens")
    p.add_argument("--timings", action="store_true", help="start with the timing line on (toggle with /timings)")


@dataclass
class ChatSettings:
    """What every answer is asked with."""

    system: str | None = None
    max_tokens: int = 512
    sampling: SamplingParams = field(default_factory=SamplingParams)
    timings: bool = False


class ChatLoop:
    """One conversation with one model of ``orch`` (a ``SyncOrchestrator``); ``run()`` until Ctrl-D or /bye."""

    def __init__(self, orch: Any, settings: ChatSettings, *, model: str | None = None,
                 read: Callable[[str], str] = input, out: TextIO | None = None) -> None:
        self.orch = orch
        self.settings = settings
        self.model = model
        self.read = read
        self.out = out or sys.stdout
        self.history: list[ChatMessage] = []
        self.last: Completion | None = None

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def run(self) -> int:
        """Reads and answers lines until Ctrl-D or ``/bye``; returns the exit status (0)."""
        self._write("Type a message; /help lists the commands, Ctrl-D or /bye leaves.\n")
        while True:
            try:
                line = self.read(PROMPT).strip()
            except EOFError:  # Ctrl-D
                self._write("\n")
                return 0
            except KeyboardInterrupt:  # Ctrl-C at the prompt: a fresh prompt, as in a shell
                self._write("\n(Ctrl-D or /bye leaves)\n")
                continue
            if not line:
                continue
            if line.startswith("/"):
                if not self._command(line):
                    return 0
                continue
            self.answer(line)

    def _command(self, line: str) -> bool:
        """Runs a slash command; False when the loop should end."""
        word = line.split()[0].lower()
        if word in ("/bye", "/exit", "/quit"):
            return False
        if word == "/clear":
            self.history.clear()
            self._write("(the conversation is forgotten)\n")
        elif word == "/timings":
            self.settings.timings = not self.settings.timings
            self._write(f"(timings {'on' if self.settings.timings else 'off'})\n")
        elif word == "/help":
            self._write(_HELP + "\n")
        else:
            self._write(f"unknown command {word}; /help lists them\n")
        return True

    def _request(self) -> GenerationRequest:
        system = [ChatMessage(role="system", content=self.settings.system)] if self.settings.system else []
        return GenerationRequest(messages=(*system, *self.history), max_tokens=self.settings.max_tokens,
                                 sampling=self.settings.sampling)

    def answer(self, text: str) -> Completion | None:
        """Streams the answer to ``text`` onto ``out`` and adds the exchange to the history.

        Ctrl-C while it streams cancels the request (the backend stops at its next token); the
        answer so far stays in the history, as it was shown. A failed request (a conversation
        longer than the context, say) is reported on one line and leaves the history as it was."""
        self.history.append(ChatMessage(role="user", content=text))
        start = time.perf_counter()
        first: float | None = None
        try:
            stream = self.orch.stream(self._request(), model=self.model)
            try:
                for event in stream:
                    if isinstance(event, TokenDelta) and event.text:
                        first = first or time.perf_counter()
                        self._write(event.text)
            except KeyboardInterrupt:
                stream.cancel()  # through the backend's cancel contract: the stream ends "cancelled"
            completion = stream.result()
        except OrchestratorError as exc:
            self.history.pop()
            self._write(f"\nerror: {exc}\n")
            return None
        end = time.perf_counter()
        if completion.text:
            self.history.append(ChatMessage(role="assistant", content=completion.text))
        self._write("\n(stopped)\n" if completion.finish_reason == "cancelled" else "\n")
        if self.settings.timings:
            self._write(timing_line(completion, start, first, end) + "\n")
        self.last = completion
        return completion


def timing_line(completion: Completion, start: float, first: float | None, end: float) -> str:
    """``[24 tokens in 0.52 s: first token 95 ms, 55.1 tok/s; prompt 41 tokens, 30 reused]``: the first
    token and the rate as seen here (any backend), the prompt's tokens as the engine counted them."""
    tokens = completion.tokens
    text = f"[{tokens} tokens in {end - start:.2f} s"
    if first is not None:
        rate = (tokens - 1) / (end - first) if tokens > 1 and end > first else 0.0
        text += f": first token {(first - start) * 1000:.0f} ms, {rate:.1f} tok/s"
    t = completion.timings
    if t.prefill_tokens or t.prefill_reused_tokens:
        text += f"; prompt {t.prefill_tokens + t.prefill_reused_tokens} tokens, {t.prefill_reused_tokens} reused"
    return text + "]"


def run(args: argparse.Namespace) -> int:
    from orchestrator.cli.tune import prepared_path
    from orchestrator.engine import EngineConfig
    from orchestrator.models.catalogue import DEFAULT_MODEL, model_name
    from orchestrator.sync_facade import SyncOrchestrator

    try:
        import readline  # noqa: F401  (line editing and history for input(), where the platform has it)
    except ImportError:
        pass
    settings = ChatSettings(
        system=args.system, max_tokens=args.max_tokens, timings=args.timings,
        sampling=SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed),
    )
    GenerationRequest(prompt="check", max_tokens=settings.max_tokens, sampling=settings.sampling)  # bad flags fail now
    model = args.model or DEFAULT_MODEL
    config = EngineConfig(n_ctx=args.n_ctx)
    with SyncOrchestrator({model_name(model): prepared_path(model)}, engine_config=config) as orch:
        orch.load()  # before the first prompt, so the first answer does not wait for the load
        return ChatLoop(orch, settings).run()


COMMANDS = {"chat": run}
