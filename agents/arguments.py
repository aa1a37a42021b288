"""Arguments filled field by field: each field's grounded candidates scored by the model, then assigned.

For the chosen tool, every field with candidates (``agents.candidates``) becomes one
``ScoreTexts``: the context, the reply written up to the field's key
(``{"calls": [{"name": "t", "arguments": {"field":``), and one continuation per candidate, the
value and the character that ends it. All fields are scored at once (independently of one
another), so a call costs two rounds however many fields it has.

``assign`` then picks values:

1. each candidate's score (``weigh``) weighs its log-likelihood with what it is (a name, a quoted
   text, a formula, a number, a digit string for a field that is no id, ...) and with the words
   the request writes beside it (the field's name or description there: ``agents.nearby``; "a
   charge of 2" for ``charge``), with whether a span names the field in part or whole, is only part
   of a longer name, whether a number is the bare figure of a written magnitude ("50" of "50
   million"), whether a place field's candidate follows "in", "at", "from", ... ("a house in San
   Francisco"), and whether a flag set true is one the request names: ``candidate_features``,
   weights fit on labelled fields; a field's probabilities are the softmax of its candidates' scores;
2. the required fields take the candidates that together score best, with a bonus for each pair
   of fields whose values the request writes in the schema's order (a=2, b=3, c=-4; from London
   to Edinburgh), never giving a value twice unless the request writes it twice (a value is a
   place the request writes: one date in two layouts is one value);
3. an optional field is written only when ``include`` (a calibrated model of whether writing it is
   right, on features of its best candidate: the most probable one, or for a flag the value that is
   not its default) says more likely than not; otherwise it is left out, so it takes its default;
4. a required field without candidates (nothing in the request fits) is reported as missing:
   ``agents.decide`` has the model write it under the field's grammar instead.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.calibration import Logistic, softmax
from agents.candidates import Candidate, field_candidates, numbers, scaled
from agents.choice import words
from agents.codes import date_mentions
from agents.nearby import echo, nearness, places, tokens
from agents.scoring import CALL_PREFIX, ScoreTexts, Scored
from orchestrator.types import ChatMessage

__all__ = ["JOINT_LIMIT", "JOINT_TOP", "OPTIONAL_FEATURES", "VALUE_FEATURES", "FieldChoice", "arguments_prefix", "assign", "candidate_features", "field_requests",
           "optional_features", "optional_pick", "weigh"]

JOINT_TOP = 5
JOINT_LIMIT = 20_000
OPTIONAL_FEATURES = ("bias_bool", "bool_margin", "enum_said", "unused_number", "best_p", "best_lp_mean", "spoken", "is_default",
                     "described", "unused_spoken", "near_name", "near_desc", "name_said")
VALUE_FEATURES = ("lp", "lp_mean", "digits_string", "described", "src_number", "src_quoted", "src_expression", "src_formula", "src_name",
                  "src_chunk", "src_word", "src_enum", "src_bool", "src_currency", "src_date", "src_list", "src_default",
                  "src_fallback", "src_gathered", "src_pair", "src_single", "near_name", "near_desc", "echo_name", "echo_part", "inside_name",
                  "bool_named", "place_cue", "percent_fraction", "percent_whole", "year_for_year", "year_elsewhere", "in_date", "unscaled")


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
    features: list[dict[str, float]] = field(default_factory=list)  # each candidate's (``candidate_features``)

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
    best = optional_pick(choice, schema)
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
    out["spoken"] = float(cand.source in ("quoted", "name", "date", "currency", "list", "gathered", "pair", "single"))
    out["is_default"] = float("default" in schema and cand.value == schema["default"])
    out["described"] = float(isinstance(cand.value, str) and len(cand.value) > 1 and cand.value.lower() in str(schema.get("description", "")).lower())
    out["unused_spoken"] = float(out["spoken"] and _key(cand.value) not in used)
    out.update(_near(choice.name, schema, _as_written(cand), lowered))
    named = words(choice.name)
    out["name_said"] = len(named & words(lowered)) / len(named) if named else 0.0
    return out


def optional_pick(choice: FieldChoice, schema: Mapping[str, Any]) -> int | None:
    """The candidate an optional field would be written with: the most likely one that is not the
    field's default (writing an optional field only makes sense to change it); for a flag, the value
    that is not its default."""
    if not choice.candidates:
        return None
    if schema.get("type") == "boolean" or all(c.source == "bool" for c in choice.candidates):
        default = schema.get("default", False)
        flips = [i for i, c in enumerate(choice.candidates) if c.value is not default]
        if flips:
            return flips[0]
    changes = [i for i, c in enumerate(choice.candidates) if "default" not in schema or c.value != schema["default"]]
    return max(changes or range(len(choice.candidates)), key=lambda i: choice.probs[i])


def _near(name: str, schema: Mapping[str, Any], value: Any, text: str) -> dict[str, float]:
    """``near_name`` / ``near_desc``: how closely the text writes the field's name / description
    words around the value (``agents.nearby``)."""
    named = words(name)
    described = words(str(schema.get("description", ""))) - named
    return {"near_name": nearness(value, named, text), "near_desc": nearness(value, described, text)}


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


# A field for a place, and the words that introduce one ("a house in San Francisco", "flights from Boston").
_PLACE_FIELD = re.compile(r"\b(?:location|city|cities|country|countries|place|region|address|destination|origin|venue|town|state)s?\b")
_PLACE_CUES = "in|at|near|from|to|around|inside|outside"
_ID_WORDS = ("id", "number", "code", "year", "zip", "phone", "version", "date", "time", "num", "no")


def candidate_features(choice: FieldChoice, i: int, schema: Mapping[str, Any], text: str) -> dict[str, float]:
    """Features of one candidate of a field (see ``VALUE_FEATURES``); ``text`` is the conversation, lower-case."""
    cand, scored = choice.candidates[i], choice.scores[i]
    value = cand.value
    out = {"lp": scored.logprob, "lp_mean": scored.logprob / max(1, scored.tokens), f"src_{cand.source}": 1.0}
    if isinstance(value, str):
        named = choice.name.lower().replace("_", " ").split()
        out["digits_string"] = float(value.replace(".", "").replace("-", "").isdigit() and not any(w in _ID_WORDS for w in named))
        out["described"] = float(len(value) > 1 and value.lower() in str(schema.get("description", "")).lower())
        share = echo(value, words(choice.name))
        if share == 1.0:
            out["echo_name"] = 1.0  # the span only names the field: "Museum" for museum_name
        elif share > 0.0:
            out["echo_part"] = 1.0  # a name that says what it is: "Metropolitan Museum of Art"
        out["inside_name"] = float(_inside_name(value, choice.candidates))
        if _PLACE_FIELD.search(f"{choice.name} {schema.get('description', '')}".lower().replace("_", " ")):
            out["place_cue"] = float(bool(re.search(rf"\b(?:{_PLACE_CUES})\s+(?:the\s+)?{re.escape(value.lower())}\b", text)))
    elif isinstance(value, bool) and value:
        named = words(choice.name)  # a flag the request names is asked for: "verify if it's closed", closed_status
        out["bool_named"] = len(named & words(text)) / len(named) if named else 0.0
    out.update(_near(choice.name, schema, _as_written(cand), text))
    out.update(_percent(cand, choice.name, schema))
    out.update(_year(value, choice.name, schema))
    if cand.source == "number" and cand.written and not _year_like(value) and _inside_dates(cand.written, text):
        out["in_date"] = 1.0  # "10" of "July 10, 2022": a day, not a count (a year has its own features)
    if cand.source == "number" and cand.written and scaled(cand.written):
        out["unscaled"] = float(abs(value) < max(abs(n) for n in numbers([cand.written])))  # 50 of "50 million"
    return out


def _inside_name(value: str, candidates: Sequence[Candidate]) -> bool:
    """Whether ``value`` is only part of a name or quoted text that is a candidate too ("LeBron" of
    'LeBron James', "Metropolitan" of "Metropolitan Museum of Art")."""
    pattern = re.compile(rf"(?<!\w){re.escape(value.casefold())}(?!\w)")
    return any(c.source in ("name", "quoted") and isinstance(c.value, str) and len(c.value) > len(value)
               and pattern.search(c.value.casefold()) for c in candidates)


def _inside_dates(written: str, text: str) -> bool:
    """Whether every place ``text`` writes ``written`` (as a whole token) is inside a date it writes."""
    def count(inside: str) -> int:
        return len(re.findall(rf"(?<![\w.]){re.escape(written.lower())}(?:st|nd|rd|th)?(?!\w)", inside.lower()))

    total = count(text)
    return total > 0 and sum(count(w) for _, w in date_mentions(text)) >= total


def _year_like(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1800 <= value <= 2100


def _year(value: Any, name: str, schema: Mapping[str, Any]) -> dict[str, float]:
    """For an integer that reads as a year (1800-2100): ``year_for_year`` when the field's name or
    description speaks of years, ``year_elsewhere`` when it does not (``nights=2022``)."""
    if not _year_like(value):
        return {}
    said = "year" in f"{name} {schema.get('description', '')}".lower()
    return {"year_for_year": 1.0} if said else {"year_elsewhere": 1.0}


def weigh(choice: FieldChoice, schema: Mapping[str, Any], text: str, weights: Mapping[str, float]) -> list[float]:
    """Each candidate's score under ``weights`` (step 1 of the module docstring); fills in the
    choice's ``features`` and ``probs`` (their softmax). ``text`` is the conversation, lower-case."""
    choice.features = [candidate_features(choice, i, schema, text) for i in range(len(choice.candidates))]
    scores = [sum(w * f.get(k, 0.0) for k, w in weights.items()) for f in choice.features]
    choice.probs = softmax(scores)
    return scores


def _as_written(cand: Candidate) -> Any:
    return cand.written if cand.written is not None else cand.value


def _percent(cand: Candidate, name: str, schema: Mapping[str, Any]) -> dict[str, float]:
    """For a number written as a percentage ("5%"): ``percent_fraction`` when the candidate is the
    fraction (0.05) for a field that does not say "percent" (an annual rate, a yield), and
    ``percent_whole`` when it is the number as written (5) for a field that does."""
    if cand.written is None or "%" not in cand.written or not isinstance(cand.value, (int, float)):
        return {}
    fraction = not any(math.isclose(cand.value, n) for n in numbers([cand.written.replace("%", "")]))
    said = "perce" in words(f"{name} {schema.get('description', '')}")
    return {"percent_fraction": float(fraction and not said), "percent_whole": float(not fraction and said)}


def _position(value: Any, text: str) -> int | None:
    """Where a value (a scalar, or a list's items in order) is first written in the text (a token index), or None."""
    if isinstance(value, str):
        at = text.find(value.lower())
        return None if at < 0 else len(tokens(text[:at]))
    found = places(value, text)
    return found[0] if found else None


def _joint(fields: list[FieldChoice], scores: list[list[float]], text: str, order_bonus: float) -> list[int]:
    """The candidates of the required fields that together score best: each field's score, plus
    ``order_bonus`` for every pair of fields whose values are written in the schema's order, and no
    value given twice unless the text writes it twice. Top ``JOINT_TOP`` candidates per field."""
    tops = [sorted(range(len(s)), key=lambda i: -s[i])[:JOINT_TOP] for s in scores]
    positions = [[_position(_as_written(c), text) for c in f.candidates] for f in fields]
    keys = [[_key(_as_written(c)) for c in f.candidates] for f in fields]  # one mention fills one field, in any layout
    written = [[_times_written(c.value, text) for c in f.candidates] for f in fields]
    best: tuple[float, list[int]] = (-math.inf, [t[0] for t in tops])

    def walk(k: int, picked: list[int], total: float) -> None:
        nonlocal best
        if k == len(fields):
            if total > best[0]:
                best = (total, list(picked))
            return
        for i in tops[k]:
            repeats = sum(1 for f, j in enumerate(picked) if keys[f][j] == keys[k][i])
            if repeats >= written[k][i]:
                continue
            bonus = sum(order_bonus for j, f in enumerate(fields[:k]) if _before(positions[j][picked[j]], positions[k][i]))
            walk(k + 1, [*picked, i], total + scores[k][i] + bonus)

    if math.prod(len(t) for t in tops) <= JOINT_LIMIT:
        walk(0, [], 0.0)
    return best[1]


def _before(a: int | None, b: int | None) -> bool:
    return a is not None and b is not None and a < b


def assign(choices: list[FieldChoice], results: Sequence[Sequence[Scored]], parameters: Mapping[str, Any],
           texts: Sequence[str], include: Logistic, weights: Mapping[str, float] | None = None,
           order_bonus: float = 0.0) -> tuple[dict[str, Any], list[str]]:
    """(the arguments chosen, the required fields with no candidate). Fills in each choice's
    scores, probabilities, pick and (optional fields) ``include_p``."""
    weights = weights or {"lp": 1.0}
    scored = iter(results)
    text = " ".join(texts).lower()
    values: dict[str, list[float]] = {}
    for choice in choices:
        if choice.candidates:
            choice.scores = list(next(scored))
            values[choice.name] = weigh(choice, parameters["properties"][choice.name], text, weights)
    arguments: dict[str, Any] = {}
    missing = [c.name for c in choices if c.required and not c.candidates]
    required = [c for c in choices if c.required and c.candidates]
    for choice, pick in zip(required, _joint(required, [values[c.name] for c in required], text, order_bonus)):
        choice.pick = pick
        arguments[choice.name] = choice.value
    used = {_key(c.value) for c in required}
    for choice in choices:
        if choice.required or not choice.candidates:
            continue
        schema = parameters["properties"][choice.name]
        features = optional_features(choice, schema, used, texts)
        choice.include_p = include(features)
        best = optional_pick(choice, schema)
        if choice.include_p > 0.5:
            choice.pick = best
            arguments[choice.name] = choice.value
    order = list(parameters.get("properties", {}))
    return {k: arguments[k] for k in order if k in arguments}, missing


def _times_written(value: Any, text: str) -> int:
    if isinstance(value, bool) or value is None:
        return 99  # true/false/null are not spans of the request
    if isinstance(value, str):
        return max(1, text.count(value.lower()))
    return max(1, len(places(value, text)))
