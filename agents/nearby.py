"""What the request writes next to a value: whether it names the field there.

People write a value beside the words that say what it is: "accelerating at 2 m/s² for a duration
of 5 seconds, starting from a speed of 10" gives ``acceleration=2`` and ``time=5``; "a charge of 2
coulombs, 3 meters away" gives ``charge=2``. A 135M model scoring ``"acceleration": 2`` against
``"acceleration": 5`` barely reads that; these features do:

- ``nearness(value, stems, text)``: for each place the text writes the value, the words within a
  few words before and after it whose stems (``agents.choice.words``: the first 5 letters) are
  among ``stems`` (a field's name, or its description), each counted 1/distance; the best place
  wins. Only words of the value's own clause count: a comma, a full stop, a bracket or a joining
  word ("and", "or", "but") ends it ("weight 0.5 and decay rate of 0.1": "decay rate" says
  nothing of 0.5). 0 when the value is not written as such (``213 million`` for 213000000, a
  list, a bool).
- ``echo(value, stems)``: the share of a string value's words that are the field's own name
  ("DNA" for ``DNA_id``, "cell" for ``cell_type``): a span that names the field rather than
  filling it.

Pure text work; ``agents.arguments`` turns them into candidate features.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from agents.choice import words

__all__ = ["AFTER", "BEFORE", "echo", "nearness", "places", "tokens"]

BEFORE = 5  # words before a value that may say what it is ("a duration of 5")
AFTER = 4  # and after it ("5 seconds", "3 meters away")
_TOKEN = re.compile(r"-?\d+(?:\.\d+)?|[^\W\d_][^\W_]*")
_POWER = re.compile(r"\^-?\d+")
_CUT = re.compile(r"[,;:.!?()\[\]{}]")  # between two tokens, ends a clause
_JOINING = frozenset({"and", "or", "but", "while", "whereas", "then"})  # starts a new clause


def tokens(text: str) -> list[str]:
    """Numbers (sign and decimals kept; "150lbs" is 150 and lbs) and words (letters first: "DNA123"),
    lower-case; powers ("m/s^2") are units, not values."""
    return list(_tokens(text))


# A decision reads the same request once per candidate of every field: its tokens, and their stems,
# are kept for recent texts.
@lru_cache(maxsize=256)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_TOKEN.findall(_POWER.sub(" ", text.casefold())))


@lru_cache(maxsize=256)
def _clauses(text: str) -> tuple[int, ...]:
    """Each token's clause number (see ``nearness``), counted from 0."""
    folded = _POWER.sub(" ", text.casefold())
    out, clause, end = [], 0, 0
    for m in _TOKEN.finditer(folded):
        if _CUT.search(folded[end:m.start()]) or m.group(0) in _JOINING:
            clause += 1
        out.append(clause)
        end = m.end()
    return tuple(out)


@lru_cache(maxsize=256)
def _stems(text: str) -> tuple[frozenset[str], ...]:
    return tuple(frozenset(words(t)) for t in _tokens(text))


def _shown(value: Any) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        return None
    if isinstance(value, float) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return str(value)


def _target(value: Any) -> tuple[str, ...]:
    """The tokens a value is written as: a list's items in order ("[3, 2, 1]", "A(3,4)")."""
    if isinstance(value, list) and value and all(_shown(v) is not None for v in value):
        return tuple(t for v in value for t in _tokens(_shown(v) or ""))
    shown = _shown(value)
    return _tokens(shown) if shown is not None else ()


def places(value: Any, text: str) -> list[int]:
    """Where ``text`` writes ``value`` as whole tokens (token indices; "5" is not in "-25" or "2.5")."""
    target, toks = _target(value), _tokens(text)
    if not target:
        return []
    return [i for i in range(len(toks) - len(target) + 1) if toks[i:i + len(target)] == target]


def nearness(value: Any, stems: set[str], text: str) -> float:
    """How closely ``text`` surrounds ``value`` with words of ``stems`` (see the module docstring)."""
    shown = _shown(value)
    if shown is None or not stems:
        return 0.0
    target, toks = _tokens(shown), _tokens(text)
    marks, clauses = [bool(token_stems & stems) for token_stems in _stems(text)], _clauses(text)
    best = 0.0
    for i in places(value, text):
        j = i + len(target)  # the first token after the value
        score = sum(1.0 / d for d in range(1, BEFORE + 1) if i - d >= 0 and marks[i - d] and clauses[i - d] == clauses[i])
        score += sum(1.0 / d for d in range(1, AFTER + 1)
                     if j + d - 1 < len(toks) and marks[j + d - 1] and clauses[j + d - 1] == clauses[j - 1])
        best = max(best, score)
    return best


def echo(value: Any, stems: set[str]) -> float:
    """The share of a string value's words whose stems are in ``stems`` (0 for other values)."""
    if not isinstance(value, str):
        return 0.0
    toks = [t for t in _tokens(value) if words(t)]
    return sum(1 for t in toks if words(t) & stems) / len(toks) if toks else 0.0
