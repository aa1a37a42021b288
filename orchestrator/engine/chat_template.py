"""Render GGUF/Hugging Face chat templates safely.

A chat template is Jinja2 source shipped inside a model file: untrusted input.
It renders only in jinja2's ``ImmutableSandboxedEnvironment`` (no ``_private``
or ``__dunder__`` access, no mutation of lists and dicts), with the helpers
transformers gives templates (``raise_exception``, ``strftime_now``, an
unescaped ``tojson``, ``break``/``continue``, ``{% generation %}``), and under
limits no template can dodge, because the checks are compiled into it:

* size: no value larger than ``max_output_chars`` is ever built. Literals,
  ``~`` operands, attribute/item reads, filter inputs and results, call
  results and printed values are measured; ``*``, ``**``, ``+``, ``%`` and
  the filters and ``str`` methods that multiply text are estimated before
  they run. The prompt is counted as it streams out, and all text produced on
  the way (macro bodies, ``{% set %}`` blocks) against a work budget.
* time: a deadline is checked on every output piece, loop iteration, call,
  attribute or item read, filter and intercepted operator.
* anything else (recursion, errors of the template's own) ends in
  ``ChatTemplateError`` with a one-line reason.

This module compiles and renders (``ChatTemplate``); the limits and how sizes are
measured are in ``template_limits``, the sandbox and its compiled guards in
``template_sandbox``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2.exceptions import SecurityError, TemplateSyntaxError

from orchestrator.engine.template_limits import (
    CURRENT_RENDER,
    RenderState,
    TemplateAbort,
    TemplateLimits,
    check_size,
    measure_in,
    tick,
)
from orchestrator.engine.template_sandbox import Sandbox
from orchestrator.errors import ChatTemplateError

__all__ = ["CHATML_TEMPLATE", "ChatTemplate", "TemplateLimits"]

#: A plain ChatML template, for models whose file carries none (tools are not shown).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] is iterable and message['content'] is not mapping %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _plain(value: Any, where: str) -> Any:
    """A deep copy of JSON-like data; anything else is refused."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ChatTemplateError(f"{where}: mapping keys must be strings")
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ChatTemplateError(f"{where}: a {type(value).__name__} cannot go into a chat template; use JSON-like data")


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


class ChatTemplate:
    """A compiled chat template, rendered only in a limited sandbox. Thread-safe."""

    def __init__(
        self, source: str, *, bos_token: str = "", eos_token: str = "", limits: TemplateLimits = TemplateLimits()
    ) -> None:
        if not isinstance(source, str):
            raise ChatTemplateError(f"a chat template is text, not {type(source).__name__}")
        if len(source) > limits.max_template_chars:
            raise ChatTemplateError(f"chat template has {len(source)} chars, over the limit of {limits.max_template_chars}")
        self.source, self.bos_token, self.eos_token, self.limits = source, bos_token, eos_token, limits
        try:
            self._template = Sandbox(limits).from_string(source)
        except TemplateSyntaxError as exc:
            raise ChatTemplateError(f"chat template syntax error, line {exc.lineno}: {exc.message}") from None
        except Exception as exc:  # untrusted source: RecursionError, SyntaxError, MemoryError...
            raise ChatTemplateError(f"chat template does not compile: {_short(exc)}") from exc

    def __repr__(self) -> str:
        return f"ChatTemplate({len(self.source)} chars, {self.limits})"

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """Render ``messages`` to prompt text. ``extra`` become template variables
        (``enable_thinking``, ``date_string``...). Every failure is a ChatTemplateError."""
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise ChatTemplateError("messages must be a sequence of mappings")
        if not all(isinstance(m, Mapping) for m in messages):
            raise ChatTemplateError("every message must be a mapping")
        seconds = self.limits.max_seconds
        state = RenderState(deadline=time.monotonic() + seconds, seconds=seconds)
        try:
            variables = {  # what transformers' apply_chat_template passes
                "bos_token": self.bos_token,
                "eos_token": self.eos_token,
                "documents": None,
                **{key: _plain(value, key) for key, value in extra.items()},
                "messages": _plain(messages, "messages"),
                "tools": None if tools is None else _plain(tools, "tools"),
                "add_generation_prompt": bool(add_generation_prompt),
            }
            for value in variables.values():
                measure_in(value, state.inputs, state.inputs, set())
        except RecursionError:
            raise ChatTemplateError("messages, tools or extra variables nest too deeply") from None
        token = CURRENT_RENDER.set(state)
        stream = self._template.generate(variables)
        pieces: list[str] = []
        total = 0
        try:
            for piece in stream:
                total += len(piece)
                check_size(total, self.limits.max_output_chars, "the rendered prompt")
                tick()
                pieces.append(piece)
        except TemplateAbort as exc:
            raise ChatTemplateError(str(exc)) from None
        except SecurityError as exc:
            raise ChatTemplateError(f"chat template tried unsafe access: {exc}") from None
        except RecursionError:
            raise ChatTemplateError("chat template recursed too deeply") from None
        except Exception as exc:  # TemplateError, TypeError...: the template's own failure
            raise ChatTemplateError(f"chat template failed: {_short(exc)}") from exc
        finally:
            stream.close()
            CURRENT_RENDER.reset(token)
        return "".join(pieces)
