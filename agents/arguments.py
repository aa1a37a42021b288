"""Arguments filled field by field: each field's grounded candidates scored by the model, then assigned.

For the chosen tool, every field with candidates (``agents.candidates``) becomes one
``ScoreTexts``: the context, the reply written up to the field's key
(``{"calls": [{"name": "t", "arguments": {"field":``), and one continuation per candidate, the
value and the character that ends it. All fields are scored at once (independently of one
another), so a call costs two rounds however many fields it has.

``assign`` then picks values:

1. each field's candidates get softmax probabilities from their log-likelihoods;
2. required fields take their best candidate, the most certain field first; a value already taken
   by another field (a number or span written once in the request) is not given twice while the
   field has another candidate with at least ``REUSE_FLOOR`` of its best one's probability;
3. an optional field is written only when ``include`` (a calibrated model of whether writing it is
   right, on features of its best candidate) says more likely than not; otherwise it is left out,
   so it takes its default;
4. a required field without candidates (nothing in the request fits) is reported as missing:
   ``agents.decide`` has the model write it under the field's grammar instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.calibration import Logistic, softmax
from agents.candidates import Candidate, field_candidates
from agents.scoring import CALL_PREFIX, ScoreTexts, Scored
from orchestrator.types import ChatMessage

__all__ = ["FieldChoice", "OPTIONAL_FEATURES", "REUSE_FLOOR", "arguments_prefix", "assign", "field_requests", "optional_features"]

REUSE_FLOOR = 0.05
OPTIONAL_FEATURES = ("bias_bool", "bool_margin", "enum_said", "unused_number", "best_p", "best_lp_mean", "spoken", "is_default")


@dataclass
class FieldChoice:
    """What was decided for one field: its candidates, their probabilities, the pick (index or None)."""

    name: str
    required: bool
    candidates: list[Candidate]
    scores: list[Scored] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)
    pick: int | None = None
    include_p: float | None = None  # optional fields: P(writing it is right)

    @property
    def value(self) -> Any:
        return None if self.pick is None else self.candidates[self.pick].value

    @property
    def prob(self) -> float:
        return self.probs[self.pick] if self.pick is not None and self.probs else 0.0


def arguments_prefix(tool_name: str, field_name: str | None = None) -> str:
    """The reply written up to a field's key (or up to the arguments' opening brace)."""
    head = f'{CALL_PREFIX} {json.dumps(tool_name)}, "arguments": {{'
    return head if field_name is None else f"{head}{json.dumps(field_name)}:"


def _ending(parameters: Mapping[str, Any], name: str) -> str:
    """What follows a field's value: a comma, or the closing brace after the schema's last field."""
    props = list(parameters.get("properties", {}))
    return "}" if props and props[-1] == name else ","


def field_requests(messages: tuple[ChatMessage, ...], tool_name: str, parameters: Mapping[str, Any],
                   texts: Sequence[str]) -> tuple[list[FieldChoice], list[ScoreTexts]]:
    """One ``FieldChoice`` per field, and a ``ScoreTexts`` for each field that has candidates."""
    required = set(parameters.get("required", ()))
    choices, requests = [], []
    for name, schema in parameters.get("properties", {}).items():
        candidates = field_candidates(name, schema, texts)
        choices.append(FieldChoice(name, name in required, candidates))
        if candidates:
            end = _ending(parameters, name)
            continuations = tuple(" " + json.dumps(c.value, ensure_ascii=False) + end for c in candidates)
            requests.append(ScoreTexts(messages, arguments_prefix(tool_name, name), continuations))
    return choices, requests


def optional_features(choice: FieldChoice, schema: Mapping[str, Any], used: set[str], texts: Sequence[str]) -> dict[str, float]:
    """Features of writing an optional field with its best candidate (see ``OPTIONAL_FEATURES``)."""
    best = max(range(len(choice.candidates)), key=lambda i: choice.probs[i]) if choice.candidates else None
    out = {k: 0.0 for k in OPTIONAL_FEATURES}
    if best is None:
        return out
    cand = choice.candidates[best]
    out["best_p"] = choice.probs[best]
    out["best_lp_mean"] = choice.scores[best].logprob / max(1, choice.scores[best].tokens)
    if schema.get("type") == "boolean" or cand.source == "bool":
        out["bias_bool"] = 1.0
        by_value = {c.value: s.logprob for c, s in zip(choice.candidates, choice.scores)}
        default = schema.get("default", False)
        other = not default if isinstance(default, bool) else True
        out["bool_margin"] = by_value.get(other, 0.0) - by_value.get(not other, 0.0)
    lowered = " ".join(texts).lower()
    out["enum_said"] = float(cand.source == "enum" and isinstance(cand.value, str) and cand.value.lower() in lowered)
    out["unused_number"] = float(cand.source == "number" and _key(cand.value) not in used)
    out["spoken"] = float(cand.source in ("quoted", "name", "date", "currency", "list"))
    out["is_default"] = float("default" in schema and cand.value == schema["default"])
    return out


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def assign(choices: list[FieldChoice], results: Sequence[Sequence[Scored]], parameters: Mapping[str, Any],
           texts: Sequence[str], include: Logistic) -> tuple[dict[str, Any], list[str]]:
    """(the arguments chosen, the required fields with no candidate). Fills in each choice's
    scores, probabilities, pick and (optional fields) ``include_p``."""
    scored = iter(results)
    for choice in choices:
        if choice.candidates:
            choice.scores = list(next(scored))
            choice.probs = softmax([s.logprob for s in choice.scores])
    text = " ".join(texts).lower()
    used: dict[str, int] = {}
    arguments: dict[str, Any] = {}
    missing = [c.name for c in choices if c.required and not c.candidates]
    # required fields, the most certain first; a value is not given twice unless it is written twice
    for choice in sorted((c for c in choices if c.required and c.candidates), key=lambda c: -max(c.probs)):
        order = sorted(range(len(choice.candidates)), key=lambda i: -choice.probs[i])
        pick = order[0]
        for i in order:
            value = choice.candidates[i].value
            if choice.probs[i] < REUSE_FLOOR * choice.probs[order[0]]:
                break
            if used.get(_key(value), 0) < max(1, _times_written(value, text)):
                pick = i
                break
        choice.pick = pick
        used[_key(choice.value)] = used.get(_key(choice.value), 0) + 1
        arguments[choice.name] = choice.value
    for choice in choices:
        if choice.required or not choice.candidates:
            continue
        schema = parameters["properties"][choice.name]
        features = optional_features(choice, schema, set(used), texts)
        choice.include_p = include(features)
        best = max(range(len(choice.candidates)), key=lambda i: choice.probs[i])
        if choice.include_p > 0.5:
            choice.pick = best
            arguments[choice.name] = choice.value
    order = list(parameters.get("properties", {}))
    return {k: arguments[k] for k in order if k in arguments}, missing


def _times_written(value: Any, text: str) -> int:
    if isinstance(value, bool) or value is None:
        return 99  # true/false/null are not spans of the request
    if isinstance(value, (int, float)):
        shown = str(int(value)) if float(value) == int(value) else str(value)
        return max(1, text.count(shown))
    if isinstance(value, str):
        return max(1, text.count(value.lower()))
    return 1
