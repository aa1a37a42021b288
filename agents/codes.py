"""Values that a schema wants as codes, read from what people write: currencies and dates.

A user says "500 US dollars", "euros", "Feb 14" or "15th October, 2023"; an API wants ``USD``,
``EUR``, ``2024-02-14``. Copying a span of the request cannot give those. This module reads the
names and dates in a text and writes them as a field asks for them:

- ``is_currency_field`` / ``currencies(text)``: ISO 4217 codes of the currencies a text names
  (by code, common name, or symbol), first mentioned first (``currency_mentions``: with how the
  text wrote each, so that a call's fields can follow the order the request names them in);
- ``is_date_field`` / ``dates(text)``: the calendar dates a text writes (``2022-03-11``,
  ``2022/08/16``, ``March 11, 2022``, ``Mar.11, 2022``, ``15th October, 2023``, ``2023 April 4th``,
  ``10/07/2022`` read month first), as ``(year or None, month, day)`` (``date_mentions``: with the
  text that wrote each); ``date_format(description)`` finds the layout a field's description
  asks for (``MM-DD-YYYY``, ``yyyy-mm-dd``, ``DD-MM-YYYY``, ``month-day-year``), and
  ``write_date`` writes a date in it (ISO 8601 when none is named).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["currencies", "currency_mentions", "date_format", "date_mentions", "dates", "is_currency_field", "is_date_field", "write_date"]

# Names people use, lower-case, longest first when matched. Only common currencies; a field with an
# enum lists its own codes, and a code written as such ("CHF") is always read.
_CURRENCY_NAMES: dict[str, str] = {
    "us dollars": "USD", "us dollar": "USD", "united states dollars": "USD", "united states dollar": "USD",
    "american dollars": "USD", "dollars": "USD", "dollar": "USD", "bucks": "USD", "$": "USD",
    "euros": "EUR", "euro": "EUR", "€": "EUR",
    "british pounds": "GBP", "british pound": "GBP", "pounds sterling": "GBP", "pound sterling": "GBP",
    "pounds": "GBP", "pound": "GBP", "sterling": "GBP", "£": "GBP",
    "japanese yen": "JPY", "yen": "JPY", "¥": "JPY",
    "canadian dollars": "CAD", "canadian dollar": "CAD", "australian dollars": "AUD", "australian dollar": "AUD",
    "swiss francs": "CHF", "swiss franc": "CHF", "francs": "CHF", "chinese yuan": "CNY", "yuan": "CNY", "renminbi": "CNY",
    "indian rupees": "INR", "indian rupee": "INR", "rupees": "INR", "rupee": "INR", "mexican pesos": "MXN",
    "mexican peso": "MXN", "pesos": "MXN", "swedish kronor": "SEK", "swedish krona": "SEK", "norwegian kroner": "NOK",
    "danish kroner": "DKK", "south korean won": "KRW", "korean won": "KRW", "won": "KRW", "russian rubles": "RUB",
    "rubles": "RUB", "brazilian reais": "BRL", "brazilian real": "BRL", "reais": "BRL", "new zealand dollars": "NZD",
    "singapore dollars": "SGD", "hong kong dollars": "HKD", "south african rand": "ZAR", "rand": "ZAR",
    "turkish lira": "TRY", "lira": "TRY",
}
_ISO_CODES = frozenset(_CURRENCY_NAMES.values())
# A longer name wins over the shorter one inside it ("canadian dollars" over "dollars").
_CURRENCY_RE = re.compile(
    r"(?<![\w])(" + "|".join(re.escape(n) for n in sorted(_CURRENCY_NAMES, key=len, reverse=True)) + r")(?![\w])"
    r"|(?<![\w])(" + "|".join(sorted(_ISO_CODES)) + r")(?![\w])",
    re.IGNORECASE,
)

_MONTHS = {m: i for i, m in enumerate(
    "january february march april may june july august september october november december".split(), 1)}
_MONTHS.update({m[:3]: i for m, i in list(_MONTHS.items())})
_MONTHS["sept"] = 9
_MONTH = r"(?P<mon>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>(?:1[0-9]|20)\d\d)"
_DATE_PATTERNS = [
    re.compile(rf"\b{_YEAR}[-/.](?P<m>[01]?\d)[-/.](?P<d>[0-3]?\d)\b"),  # 2022-03-11, 2022/08/16
    re.compile(rf"\b(?P<m>[01]?\d)[-/](?P<d>[0-3]?\d)[-/]{_YEAR}\b"),  # 10/07/2022 (month first, as in the US)
    re.compile(rf"\b{_MONTH}\s*{_DAY}(?:\s*,\s*|\s+){_YEAR}\b", re.IGNORECASE),  # March 11, 2022; Mar.11,2022
    re.compile(rf"\b{_DAY}(?:\s+of)?\s+{_MONTH}(?:\s*,\s*|\s+){_YEAR}\b", re.IGNORECASE),  # 15th October, 2023
    re.compile(rf"\b{_YEAR}\s+{_MONTH}\s+{_DAY}\b", re.IGNORECASE),  # 2023 April 4th
    re.compile(rf"\b{_MONTH}\s*{_DAY}\b(?!\s*,?\s*\d)", re.IGNORECASE),  # April 8th (no year)
    re.compile(rf"\b{_DAY}(?:\s+of)?\s+{_MONTH}\b", re.IGNORECASE),  # 8th of April
]
_FORMAT = re.compile(r"\b(yyyy|mm|dd)([-/.])(yyyy|mm|dd)(?:\2(yyyy|mm|dd))?\b", re.IGNORECASE)


def is_currency_field(name: str, schema: Mapping[str, Any]) -> bool:
    """Whether a string field holds a currency code: its name or description says currency."""
    text = f"{name} {schema.get('description', '')}".lower()
    return "currency" in text and "amount" not in name.lower()


def currencies(text: str) -> list[str]:
    """ISO 4217 codes of the currencies ``text`` names, first mentioned first."""
    return list(currency_mentions(text))


def currency_mentions(text: str) -> dict[str, str]:
    """Each currency ``text`` names, as its ISO 4217 code, and how the text first wrote it
    ("Canadian dollars"), first mentioned first."""
    out: dict[str, str] = {}
    for m in _CURRENCY_RE.finditer(text):
        if m.group(1):
            out.setdefault(_CURRENCY_NAMES[m.group(1).lower()], m.group(1))
        elif m.group(2) and m.group(2).isupper():  # a code as such: "CHF", not the word "try"
            out.setdefault(m.group(2), m.group(2))
    return out


def is_date_field(name: str, schema: Mapping[str, Any]) -> bool:
    """Whether a string field holds a calendar date: named ``*date*``, or described as a date format."""
    description = str(schema.get("description", ""))
    return "date" in name.lower() or bool(_FORMAT.search(description)) or "format: date" in description


def dates(text: str) -> list[tuple[int | None, int, int]]:
    """The dates ``text`` writes, as ``(year or None, month, day)``, in the order written."""
    return [d for d, _ in date_mentions(text)]


def date_mentions(text: str) -> list[tuple[tuple[int | None, int, int], str]]:
    """The dates ``text`` writes, each as ``(year or None, month, day)`` with the text that wrote it,
    in the order written."""
    found: list[tuple[int, tuple[tuple[int | None, int, int], str]]] = []
    taken: list[tuple[int, int]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(a < m.end() and m.start() < b for a, b in taken):
                continue  # part of a date already read by a fuller pattern
            parts = m.groupdict()
            month = _MONTHS[parts["mon"].lower()] if parts.get("mon") else int(parts["m"])
            day = int(parts.get("day") or parts["d"])
            year = int(parts["year"]) if parts.get("year") else None
            if 1 <= month <= 12 and 1 <= day <= 31:
                found.append((m.start(), ((year, month, day), m.group(0))))
                taken.append((m.start(), m.end()))
    return [d for _, d in sorted(found)]


def date_format(description: str) -> str | None:
    """The layout a description asks for, as ``"MM-DD-YYYY"``-like text, or None."""
    m = _FORMAT.search(description)
    if m:
        parts = [p.upper() for p in (m.group(1), m.group(3), m.group(4)) if p]
        return m.group(2).join(parts)
    if re.search(r"month-day-year", description, re.IGNORECASE):
        return "MM-DD-YYYY"
    if re.search(r"day-month-year", description, re.IGNORECASE):
        return "DD-MM-YYYY"
    return None


def write_date(date: tuple[int | None, int, int], layout: str | None = None) -> str | None:
    """``date`` in ``layout`` (ISO ``YYYY-MM-DD`` by default); None when the layout needs a year it lacks."""
    year, month, day = date
    layout = layout or "YYYY-MM-DD"
    if "YYYY" in layout and year is None:
        return None
    return layout.replace("YYYY", f"{year or 0:04d}").replace("MM", f"{month:02d}").replace("DD", f"{day:02d}")
