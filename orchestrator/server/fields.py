"""What the server does with each body field it does not read itself: decided per field.

A field that would change the output and that the server cannot honour is refused with a 400
naming it, never dropped: ``response_format`` is honoured (see ``convert``), and so are the
fields ``schemas`` reads. The others, by endpoint:

- ignored, because they do not change what is generated: ``metadata``, ``store``,
  ``service_tier``, ``prompt_cache_key``, ``safety_identifier``, ``stream_options`` members other
  than ``include_usage``, ``reasoning_effort`` (the served models do not reason);
- refused unless they hold their neutral value: ``frequency_penalty``/``presence_penalty`` (0),
  ``logit_bias`` (empty), ``modalities`` (``["text"]``), ``verbosity`` (``"medium"``), and on
  ``/v1/completions`` ``echo`` (false), ``best_of`` (1), ``suffix`` (empty);
- refused always: ``functions``/``function_call`` (the legacy form of ``tools``), ``audio``,
  ``prediction``, ``web_search_options``;
- any other field is unknown here, and refused: the server cannot tell whether it would
  change the output.

``user`` is read (``schemas``): it is the request's tenant key (``GenerationRequest.user``).

``top_logprobs`` is accepted: the chosen tokens' log-probabilities are returned, and each
entry's ``top_logprobs`` list is empty (alternatives are not computed).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.server.http_errors import ApiError

__all__ = ["check_fields"]

_IGNORED = frozenset({"metadata", "store", "service_tier", "prompt_cache_key", "safety_identifier", "reasoning_effort"})
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "frequency_penalty": (0, 0.0, None),
    "presence_penalty": (0, 0.0, None),
    "logit_bias": ({}, None),
    "modalities": (["text"], None),
    "verbosity": ("medium", None),
}
_COMPLETION_NEUTRAL: dict[str, tuple[Any, ...]] = {"echo": (False, None), "best_of": (1, None), "suffix": ("", None)}
_REFUSED = frozenset({"functions", "function_call", "audio", "prediction", "web_search_options"})


def check_fields(body: Mapping[str, Any], read: frozenset[str], *, completions: bool = False) -> None:
    """Raises a 400 for a field of ``body`` that is neither read (``read``: the schema's own),
    nor harmless to ignore, nor at its neutral value."""
    neutral = {**_NEUTRAL, **_COMPLETION_NEUTRAL} if completions else _NEUTRAL
    for key, value in body.items():
        if key in read or key in _IGNORED:
            continue
        if key in neutral:
            if not any(type(value) is type(v) and value == v for v in neutral[key] if v is not None) and value is not None:
                raise ApiError(400, f"{key}={_short(value)} is not supported by this server (it would change the output)", param=key,
                               code="unsupported_parameter")
            continue
        if key in _REFUSED:
            raise ApiError(400, f"{key} is not supported by this server", param=key, code="unsupported_parameter")
        raise ApiError(400, f"unknown field {key[:64]!r}: not supported by this server", param=key[:64], code="unsupported_parameter")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
