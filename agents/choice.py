"""Which tool, if any: features of each allowed tool for a request, and the choice among them.

Three signals per tool, all cheap next to writing a call:

- ``name_lp``: the model's log-likelihood of naming the tool as the start of its reply (all tools
  scored in one batch after the same context; ``name_lp_mean`` is the same per token);
- ``emb``: cosine similarity between the model's embedding of the request and of the tool's name
  and description;
- ``lex``: the share of the request's content words that the tool's name, description and
  argument names contain (crude stems: the first 5 letters);
- ``name_lex``: the share of the tool name's content words that the request contains (on BFCL's
  ``multiple`` items the name tells apart tools whose descriptions share most words:
  ``geodistance.find`` against ``flights.search`` for "the distance between New York and LA").

``choose_tool`` ranks tools by a weighted sum of these (the weights of a conditional logit fit on
labelled choices, ``agents.calibration.fit_choice``) and gives each its softmax probability.
Whether any tool fits at all is decided from the same signals plus the arguments' grounding, in
``agents.decide``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agents.calibration import softmax

__all__ = ["TOOL_FEATURES", "choose_tool", "cosine", "field_words", "lexical_overlap", "name_overlap", "rest_overlap", "tool_text", "tool_words", "words"]

TOOL_FEATURES = ("name_lp", "name_lp_mean", "emb", "lex", "name_lex")

_WORD = re.compile(r"[^\W_]+")
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")
_STOP = frozenset(
    "a an the in on at to for from by with and or is it of as be are was what how do does this that my me i you your "
    "can could would will please find get give tell show calculate compute some any which who when where there than "
    "if into about using use given".split()
)


def words(text: str) -> set[str]:
    """Content words of ``text``, lower-case, cut to 5 letters; camelCase and snake_case split."""
    text = _CAMEL.sub(" ", text).replace("_", " ").replace(".", " ")
    return {w[:5] for w in _WORD.findall(text.casefold()) if w not in _STOP and len(w) > 1}


def tool_words(name: str, description: str, parameters: Mapping[str, Any]) -> set[str]:
    parts = [name, description, *parameters.get("properties", {})]
    return words(" ".join(parts))


def field_words(schema: Mapping[str, Any]) -> set[str]:
    """Content words of the descriptions and (string) enum values of a parameters schema's fields,
    nested fields and list items included: what a request may ask for in the words of the
    arguments ("violent crime" for a ``type`` field that lists ``violent``)."""
    out: set[str] = set()
    for sub in (*schema.get("properties", {}).values(), schema.get("items")):
        if isinstance(sub, Mapping):
            enum = " ".join(v for v in sub.get("enum", ()) if isinstance(v, str))
            out |= words(str(sub.get("description", ""))) | words(enum) | field_words(sub)
    return out


def tool_text(name: str, description: str) -> str:
    """What is embedded for a tool: its name in words, and its description."""
    return f"{_CAMEL.sub(' ', name).replace('_', ' ').replace('.', ' ')}: {description}"


def lexical_overlap(request: str, vocabulary: set[str]) -> float:
    """The share of the request's content words found in ``vocabulary`` (0 when it has none)."""
    wanted = words(request)
    return len(wanted & vocabulary) / len(wanted) if wanted else 0.0


def rest_overlap(request: str, vocabulary: set[str], values: Iterable[Any]) -> float:
    """``lexical_overlap`` of the request's words other than those the call's ``values`` write: what
    the request asks for, not what it gives ("the crime rate ... in San Francisco in 2020")."""
    given = set().union(*(words(v if isinstance(v, str) else json.dumps(v)) for v in values))
    wanted = words(request) - given
    return len(wanted & vocabulary) / len(wanted) if wanted else 0.0


def name_overlap(request: str, name: str) -> float:
    """The share of the content words of a tool's ``name`` that ``request`` contains (0 when it has none)."""
    named = words(name)
    return len(named & words(request)) / len(named) if named else 0.0


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def choose_tool(features: Sequence[Mapping[str, float]], weights: Mapping[str, float]) -> tuple[int, list[float]]:
    """(index of the best tool, softmax probability of each) under ``weights``."""
    if not features:
        return -1, []
    scores = [sum(w * f.get(k, 0.0) for k, w in weights.items()) for f in features]
    probs = softmax(scores)
    best = max(range(len(scores)), key=lambda i: (scores[i], -i))
    return best, probs
