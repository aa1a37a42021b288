"""Grounded candidates for each argument of a tool call: the values a field could take, from the conversation.

A small model picks a value far better than it writes one: choosing among ``10``, ``5`` and
``"units"`` it rarely copies an example or invents a span. ``field_candidates`` lists, for one
field of a tool's schema, what the texts (the request, tool results) offer for it:

- integers / numbers: the numbers written, read as people write them (``2,000,000``, ``6cm``,
  ``1e-9``, ``5%`` also as ``0.05``, ``213 million``, ``19th``, the words ``one`` to ``twenty``,
  ``thirty`` ... ``ninety``, ``a dozen``), within the field's bounds; integers only for an integer;
- booleans: ``true`` and ``false``;
- enums: the enum's values (those the text mentions first; for a currency enum, the codes of the
  currencies the text names, as for a currency string);
- strings: quoted text whole (also between backticks), formulas and arithmetic as written
  (``3x^2 + 2x - 1``, ``17 * 23`` for "17 times 23") and in Python's notation
  (``3x**2 + 2x - 1``), names (runs of capitalised words, "of"/"the" inside them; a sentence's
  first word alone is none), the chunks between stop words and punctuation (also two joined by
  "of": "theory of relativity"), single content words; for a currency field the ISO codes of
  the currencies named (``agents.codes``), for a date field the dates written, in the layout its
  description asks for, else ISO (both keeping how the text wrote them); capped at
  ``MAX_STRING_CANDIDATES``, best first;
- arrays of scalars: the bracketed lists written (``[1, 2, 3]``), every number of the text in
  order, the names or quoted texts listed with commas / "and", and short runs of words listed so
  ("tomatoes and lettuce");
- a field's ``default``, when it has one, is a candidate too; a number field with nothing written
  for it gets ``FALLBACK_NUMBERS`` (``"next month"``: 1), for the model to choose among.

Nothing here calls a model: ``agents.arguments`` scores the candidates with one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.codes import currency_mentions, date_format, date_mentions, is_currency_field, is_date_field, write_date

__all__ = ["FALLBACK_NUMBERS", "MAX_SPAN_WORDS", "MAX_STRING_CANDIDATES", "Candidate", "chunk_lists", "expressions", "field_candidates", "numbers", "python_notation", "quoted",
           "scaled", "string_spans", "written_numbers"]

MAX_STRING_CANDIDATES = 16
FALLBACK_NUMBERS = (1, 0, 2, 10)
MAX_SPAN_WORDS = 6

_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>-)?[$€£¥]?(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<frac>\.\d+)?(?:[eE](?P<exp>[-+]?\d+))?"
    r"(?P<pct>\s?%)?(?:\s*(?P<mult>thousand|million|billion|trillion)\b|(?P<suffix>[kKMB])(?![\w]))?",
    re.IGNORECASE,
)
_MULTIPLIERS = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12, "k": 10**3, "m": 10**6, "b": 10**9}
_UNITS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
          "sixteen seventeen eighteen nineteen twenty").split()
_WORD_NUMBERS = {w: i for i, w in enumerate(_UNITS)}
_WORD_NUMBERS.update({w: 10 * i for i, w in enumerate("thirty forty fifty sixty seventy eighty ninety".split(), 3)})
_WORD_NUMBERS.update({"dozen": 12, "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "tenth": 10, "once": 1, "twice": 2})
_STOP = frozenset(
    "a an the of in on at to for from by with and or is are was were be been what which who whom whose how when where why "
    "that this these those it its i me my we our you your he she they them their can could would will shall should may "
    "might must do does did please find get give tell show calculate compute using use based given about into than then "
    "there here as if not no all any some each per between after before under over near within around during including "
    "without having like want need know much many more most also only just has have had let".split()
)
_NAME_GLUE = frozenset(["of", "the", "de", "v.", "v", "vs", "vs.", "&", "la", "le", "von", "van", "del"])
_TITLES = frozenset(["Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "St."])  # their full stop does not end a name
_EDGE = "\"'`.,;:!?()[]{}<>«»“”‘’"
# a date or a span of years goes on no name ("London 2022/08/16", "La Liga 2020-2021"); a model number does ("Boeing 737-800")
_DATE_TOKEN = re.compile(r"\d{1,4}([-/])\d{1,2}\1\d{1,4}\b|\d{1,2}/\d{1,2}\b|(?:1[89]|20)\d\d[-/](?:\d\d){1,2}\b")
_QUOTED = re.compile(r"\"([^\"]{1,200})\"|“([^”]{1,200})”|(?<![\w])'([^']{1,200})'(?![\w])|`([^`]{1,200})`")
_BRACKETS = re.compile(r"\[([^\[\]]{1,400})\]")
_TERM = r"(?:\d+(?:\.\d+)?\s*\*?\s*)?(?:[a-z](?![a-z])|\([^()]{1,80}\))(?:\s*(?:\^|\*\*)\s*\d+)?|\d+(?:\.\d+)?"
_OPERATOR_WORDS = {"times": "*", "multiplied": "*", "plus": "+", "minus": "-", "divided": "/", "over": "/"}
_SPOKEN_OPERATORS = re.compile(r"(?<=\d)\s+(times|multiplied by|plus|minus|divided by|over)\s+(?=[\d(])", re.IGNORECASE)
_EXPRESSION = re.compile(rf"(?<![\w^*/+-])(?:{_TERM})(?:\s*[-+*/]\s*(?:{_TERM}))*")
_ITEM = r"(?:-?[$€£]?\d[\d.]*|[A-Z][\w'-]*(?: [A-Z][\w'-]*){0,3})"
_QUOTED_ITEM = r"(?:'[^'\n]{1,80}'|\"[^\"\n]{1,80}\")"
_QUOTED_LIST = re.compile(rf"{_QUOTED_ITEM}(?:(?:\s*,\s*|,?\s+(?:and|or)\s+){_QUOTED_ITEM})+")  # 'Age', 'Income' and 'Education'
_LISTED = re.compile(rf"{_ITEM}(?:\s*,\s*{_ITEM})*(?:,?\s+and\s+{_ITEM}|(?:\s*,\s*{_ITEM}))")  # A, B and C; 1, 2, 3


@dataclass(frozen=True)
class Candidate:
    """A value for a field and where it came from (``"number"``, ``"quoted"``, ``"expression"``, ``"formula"``, ``"name"``, ``"chunk"``,
    ``"word"``, ``"enum"``, ``"bool"``, ``"currency"``, ``"date"``, ``"list"``, ``"gathered"``, ``"pair"``, ``"single"``,
    ``"default"``, ``"fallback"``)."""

    value: Any
    source: str
    written: str | None = None  # how the text wrote it, when that differs in form ("5%" for 0.05, "two" for 2)

    @property
    def json(self) -> str:
        return json.dumps(self.value, ensure_ascii=False)


def numbers(texts: Iterable[str]) -> list[int | float]:
    """The numbers the texts write, first written first (see the module docstring for the forms read)."""
    return list(written_numbers(texts))


def written_numbers(texts: Iterable[str]) -> dict[int | float, str]:
    """Each number the texts write, and how it was first written ("5%" for 0.05 and 5, "213 million",
    "two"), first written first."""
    out: dict[int | float, str] = {}
    for text in texts:
        found: list[tuple[int, float, str]] = []  # (where, value, as written), to be taken in the order written
        for m in _NUMBER.finditer(text):
            written = m.group(0).strip()
            groups = m.group("int").split(",")
            if len(groups) > 1 and not any(g.startswith("0") for g in groups[1:]):  # "200,300": a list, or 200300
                found += [(m.start(), float(g), g) for g in groups]
            digits = m.group("int").replace(",", "") + (m.group("frac") or "")
            value: float = float(digits) * 10 ** int(m.group("exp") or 0)
            value = -value if m.group("sign") else value
            if m.group("mult") or m.group("suffix"):
                found.append((m.start(), value, written))
                value *= _MULTIPLIERS[(m.group("mult") or m.group("suffix")).lower()]
            found.append((m.start(), value, written))
            if m.group("pct"):
                found.append((m.start(), value / 100, written))
        for m in re.finditer(r"[a-z]+", text.casefold()):
            if m.group(0) in _WORD_NUMBERS:
                found.append((m.start(), _WORD_NUMBERS[m.group(0)], m.group(0)))
        for _, value, written in sorted(found, key=lambda f: f[0]):  # stable: one match's values keep their order
            _add(out, value, written)
    return out


def scaled(written: str) -> bool:
    """Whether a number is written with a magnitude ("50 million", "$1.2M"): it then reads both as
    its bare figure and scaled (``written_numbers``)."""
    m = _NUMBER.search(written)
    return bool(m and (m.group("mult") or m.group("suffix")))


def _add(out: dict[int | float, str], value: float, written: str) -> None:
    value = round(value, 12)
    number: int | float = int(value) if value == int(value) and abs(value) < 1e15 else value
    out.setdefault(number, written)


def quoted(texts: Iterable[str]) -> list[str]:
    """Text written between quotes, whole."""
    out: dict[str, None] = {}
    for text in texts:
        for m in _QUOTED.finditer(text):
            value = next(g for g in m.groups() if g is not None).strip()
            if value:
                out.setdefault(value)
    return list(out)


def expressions(texts: Iterable[str]) -> list[str]:
    """Formulas in one variable letter and arithmetic the texts write ("3x^2 + 2x - 1", "y=x^3" ->
    "x^3", "17 times 23" -> "17 * 23"), as written (``python_notation`` writes ``^`` as ``**``)."""
    out: dict[str, None] = {}
    for text in texts:
        spoken = _SPOKEN_OPERATORS.sub(lambda m: f" {_OPERATOR_WORDS[m.group(1).lower().split()[0]]} ", text)
        for m in _EXPRESSION.finditer(spoken):
            expr = m.group(0).strip()
            formula = re.search(r"[a-z]", expr) and re.search(r"[-+*/^]", expr)
            arithmetic = re.search(r"\d\s*(?:[+*/^]|\s-\s)\s*[\d(]", expr)
            if formula or arithmetic:
                out.setdefault(expr)
    return list(out)


def python_notation(expr: str) -> str:
    """``3x^2 + 1`` as ``3x**2 + 1``."""
    return re.sub(r"\s*\^\s*", "**", expr)


def _words(text: str) -> list[str]:
    return text.split()


def _clean(span: str) -> str:
    span = span.strip(_EDGE)
    for opening, closing in ("()", "[]", "{}"):  # an aside the edge cut open: what comes before it
        if span.count(opening) > span.count(closing):  # "Glucose (C6H12O6)" gives "Glucose"
            span = span[: span.rfind(opening)].rstrip().strip(_EDGE)
    return span[:-2] if span.endswith(("'s", "’s")) else span


def string_spans(texts: Iterable[str]) -> list[tuple[str, str]]:
    """``(span, source)`` pairs, best kinds first: names, chunks between stop words, single words."""
    names: dict[str, None] = {}
    chunks: dict[str, None] = {}
    words: dict[str, None] = {}
    for text in texts:
        tokens = _words(text)
        # names: runs of capitalised words, "of"/"the"/... allowed inside (Bank of America). A sentence's
        # first word is capitalised whatever it is ("Book a room", "Mix yellow and blue"): alone it is
        # left to the single words, and a run it opens ("Retrieve Personal Info") also counts without it.
        run: list[str] = []
        opened_sentence = False
        for i, token in enumerate(tokens):
            bare = token.strip(_EDGE)
            following = tokens[i + 1] if i + 1 < len(tokens) else ""
            sentence_start = i == 0 or tokens[i - 1].rstrip("\"')”’")[-1:] in ".?!:"
            article = bare == "The" and following[:1].isupper()
            starts = bare[:1].isupper() and (bool(run) or article or bare.lower() not in _STOP)
            if starts and not run:
                if sentence_start:
                    starts = following.strip(_EDGE)[:1].isupper() and token.rstrip(_EDGE) == token
                opened_sentence = sentence_start
            glue = bool(run) and bare.lower() in _NAME_GLUE and following[:1].isupper()
            if starts or glue or (run and bare[:1].isdigit() and not _DATE_TOKEN.match(bare)):
                run.append(token)
                if token.rstrip(_EDGE) != token and not token.endswith(("v.", "vs.")) and token not in _TITLES:  # punctuation ends a name
                    _flush_name(run, names, opened_sentence)
                    run = []
            else:
                _flush_name(run, names, opened_sentence)
                run = []
        _flush_name(run, names, opened_sentence)
        # chunks: maximal runs without stop words or punctuation inside
        chunk: list[str] = []
        for token in [*tokens, "."]:
            bare = token.strip(_EDGE)
            if bare and bare.lower() not in _STOP:
                chunk.append(bare)
                if bare != token.rstrip(_EDGE) or token[-1:] in ",.;:?!)\"'":
                    _flush(chunk, chunks)
                    chunk = []
                continue
            _flush(chunk, chunks)
            chunk = []
        for token in tokens:
            bare = _clean(token)
            if bare and bare.lower() not in _STOP:
                words.setdefault(bare)
    pairs = _name_pairs(texts, names)
    extra = {n[4:]: None for n in names if n.startswith("The ")}
    joined = _joined_with_of(texts, chunks)
    out: dict[str, str] = {}
    for source, pool in (("name", names), ("name", pairs), ("name", extra), ("chunk", chunks), ("chunk", joined), ("word", words)):
        for span in pool:
            out.setdefault(span, source)
    return list(out.items())


def chunk_lists(texts: Iterable[str]) -> list[list[str]]:
    """Short runs of words (up to 3, no stop words) that the texts join with commas, "and" or "or":
    "tomatoes and lettuce", "email addresses and social security numbers"."""
    out: dict[tuple[str, ...], None] = {}
    for text in texts:
        items: list[str] = []
        words: list[str] = []
        joined = False  # what came since the last item joins it to the next (",", "and", "or")

        def close() -> None:
            if len(items) > 1:
                out.setdefault(tuple(items))
            items.clear()

        def end_item() -> None:
            if 1 <= len(words) <= 3:
                items.append(" ".join(words))
            else:
                close()
            words.clear()

        for token in [*text.split(), "."]:
            bare = token.strip(_EDGE)
            lower = bare.lower()
            if bare and lower not in _STOP:
                if not words and items and not joined:
                    close()
                words.append(bare)
                if token[-1:] in ",;:.?!)":
                    end_item()
                    joined = token[-1:] == ","
                    if not joined:
                        close()
                continue
            if words:
                end_item()
                joined = False
            if lower in ("and", "or") and items:
                joined = True
            elif bare:
                joined = False
        close()
    return [list(group) for group in out]


def _joined_with_of(texts: Iterable[str], chunks: dict[str, None]) -> dict[str, None]:
    """Two chunks the text joins with "of" ("theory of relativity", "bag of rice"), as one chunk."""
    out: dict[str, None] = {}
    for text in texts:
        for a in chunks:
            for b in chunks:
                joined = f"{a} of {b}"
                if a != b and joined in text and len(joined.split()) <= MAX_SPAN_WORDS:
                    out.setdefault(joined)
    return out


def _name_pairs(texts: Iterable[str], names: dict[str, None]) -> dict[str, None]:
    """Two names written "A, B" (a city and its state: "Boston, MA", "Denver, Colorado")."""
    out: dict[str, None] = {}
    for text in texts:
        for a in names:
            for b in names:
                if a != b and f"{a}, {b}" in text:
                    out.setdefault(f"{a}, {b}")
    return out


def _flush_name(run: list[str], into: dict[str, None], opened_sentence: bool) -> None:
    """A run of capitalised words as a name; one that opens a sentence also without its first word."""
    _flush(run, into)
    if opened_sentence and len(run) > 1:
        _flush(run[1:], into)


def _flush(run: list[str], into: dict[str, None]) -> None:
    while run and _clean(run[-1]).lower() in _NAME_GLUE:
        run.pop()
    if not run or len(run) > MAX_SPAN_WORDS:
        return
    span = _clean(" ".join(run))
    if span and not span.replace(".", "").replace(",", "").isdigit():
        into.setdefault(span)


def field_candidates(name: str, schema: Mapping[str, Any], texts: Sequence[str]) -> list[Candidate]:
    """The candidates for one field (see the module docstring), without repeats, best kinds first."""
    schema = _plain(schema)
    out: list[Candidate] = []
    kind = schema.get("type")
    if "enum" in schema:
        if is_currency_field(name, schema):  # "Swiss francs" for CHF, keeping how it was written
            named = currency_mentions(" ".join(texts))
            out += [Candidate(code, "currency", written) for code, written in named.items() if code in schema["enum"]]
        said = [v for v in schema["enum"] if isinstance(v, str) and any(v.lower() in t.lower() for t in texts)]
        out += [Candidate(v, "enum") for v in said + [v for v in schema["enum"] if v not in said]]
    elif kind == "boolean":
        out += [Candidate(True, "bool"), Candidate(False, "bool")]
    elif kind in ("integer", "number"):
        for n, written in written_numbers(texts).items():
            if (kind == "number" or isinstance(n, int)) and _within(n, schema):
                out.append(Candidate(n, "number", written))
        if not out:  # nothing written fits ("next month"): the model picks among the usual small values
            out += [Candidate(n, "fallback") for n in FALLBACK_NUMBERS if _within(n, schema)]
    elif kind == "string":
        out += _string_candidates(name, schema, texts)
    elif kind == "array" and isinstance(schema.get("items"), Mapping):
        out += _list_candidates(name, _plain(schema["items"]), texts)
    if "default" in schema and _fits(schema["default"], kind):
        out.append(Candidate(schema["default"], "default"))
    seen: set[str] = set()
    unique = []
    for c in out:
        if c.json not in seen:
            seen.add(c.json)
            unique.append(c)
    return unique


def _string_candidates(name: str, schema: Mapping[str, Any], texts: Sequence[str]) -> list[Candidate]:
    out: list[Candidate] = []
    text = " ".join(texts)
    # codes keep how the text wrote them ("Euros" for EUR): where it is written places the value
    # (the order of "from Euros to Canadian dollars") and the words beside it
    if is_currency_field(name, schema):
        out += [Candidate(code, "currency", written) for code, written in currency_mentions(text).items()]
    if is_date_field(name, schema):
        layout = date_format(str(schema.get("description", "")))
        for d, written in date_mentions(text):
            form = write_date(d, layout) or write_date(d)  # the layout the field asks for, else ISO
            if form:
                out.append(Candidate(form, "date", written))
    out += [Candidate(q, "quoted") for q in quoted(texts)]
    for expr in expressions(texts):  # a tool taking a formula as a string usually evaluates Python
        out += [Candidate(expr, "expression")] + ([Candidate(python_notation(expr), "formula")] if "^" in expr else [])
    lo, hi = schema.get("minLength", 1), schema.get("maxLength", 10**6)
    out += [Candidate(s, source) for s, source in string_spans(texts) if lo <= len(s) <= hi]
    return out[:MAX_STRING_CANDIDATES]


def _list_candidates(name: str, items: Mapping[str, Any], texts: Sequence[str]) -> list[Candidate]:
    """Lists as written (``"list"``, with the text that wrote them), then lists put together from
    the text: all its numbers or names (``"gathered"``), neighbouring pairs of numbers (``"pair"``:
    from 1 to 3), single items (``"single"``)."""
    out: list[Candidate] = []
    kind = items.get("type")
    groups: list[str] = []  # what the texts write as lists: [1, 2, 3]; 12, 24, 36; A, B and C
    for text in texts:
        groups += [m.group(1) for m in _BRACKETS.finditer(text)]
        groups += [m.group(0) for m in _LISTED.finditer(text)]
        if kind == "string":
            out += [Candidate(quoted([m.group(0)]), "list", m.group(0)) for m in _QUOTED_LIST.finditer(text)]
    for group in groups:
        parts = [p.strip().strip(_EDGE) for p in re.split(r",|\band\b", group)]
        parts = [p for p in parts if p]
        if kind in ("integer", "number"):
            values = [numbers([p]) for p in parts]
            if values and all(len(v) >= 1 for v in values):
                firsts = [v[0] for v in values]
                if kind == "integer" and all(isinstance(v, int) for v in firsts):
                    out.append(Candidate(firsts, "list", group))
                elif kind == "number":  # written as floats: a list of numbers holds floats (BFCL checks items)
                    out.append(Candidate([float(v) for v in firsts], "list", group))
        elif kind == "string" and len(parts) > 1:
            out.append(Candidate(parts, "list", group))
    if kind in ("integer", "number"):
        values = [n for n in numbers(texts) if kind == "number" or isinstance(n, int)]
        values = values if kind == "integer" else [float(v) for v in values]
        if values:
            out.append(Candidate(values, "gathered"))
        out += [Candidate(values[i:i + 2], "pair") for i in range(len(values) - 1)]  # from 1 to 3: [1, 3]
    elif kind == "string":
        out += [Candidate(group, "list") for group in chunk_lists(texts)]
        names = [s for s, source in string_spans(texts) if source == "name"]
        for group in (quoted(texts), names):
            if group:
                out.append(Candidate(group, "gathered"))
        out += [Candidate([s], "single") for s in (quoted(texts) + names)[:4]]
    return out


def _plain(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``X | None`` read as X (the null branch is the field's absence, for a candidate)."""
    if "anyOf" in schema:
        branches = [b for b in schema["anyOf"] if b.get("type") != "null"]
        if len(branches) == 1:
            return {**branches[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
    return dict(schema)


def _fits(value: Any, kind: Any) -> bool:
    types = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "array": list, "object": dict}
    expected = types.get(kind) if isinstance(kind, str) else None
    if expected is None or value is None:
        return False
    return isinstance(value, expected) and not (kind in ("integer", "number") and isinstance(value, bool))


def _within(n: float, s: Mapping[str, Any]) -> bool:
    return not (
        ("minimum" in s and n < s["minimum"]) or ("maximum" in s and n > s["maximum"])
        or ("exclusiveMinimum" in s and n <= s["exclusiveMinimum"]) or ("exclusiveMaximum" in s and n >= s["exclusiveMaximum"])
    )
