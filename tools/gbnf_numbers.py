"""Integer and decimal-number ranges as GBNF expressions, exact to the bound, and the two small
GBNF helpers they share with ``tools.grammar`` (``repeat``, ``group``).

Integers are written without leading zeros and never as ``-0``; numbers have no exponent, at most
``MAX_DIGITS`` digits each side of the point, and whole-number bounds only. Pure text building.
"""

from __future__ import annotations

import math

from orchestrator.errors import ToolDefinitionError

__all__ = ["BIG", "MAX_DIGITS", "group", "int_bounds", "int_range", "number_bounds", "number_range", "repeat"]

MAX_DIGITS = 15
BIG = 10**MAX_DIGITS - 1
"""Integers and the integer part of numbers stay within ±BIG."""


def repeat(item: str, lo: int, hi: int | None = None) -> str:
    """``item`` repeated ``lo`` to ``hi`` times (default exactly ``lo``; empty text for zero times)."""
    hi = lo if hi is None else hi
    if hi == 0 or (lo, hi) == (1, 1):
        return "" if hi == 0 else item
    return f"{item}?" if (lo, hi) == (0, 1) else f"{item}{{{lo}}}" if lo == hi else f"{item}{{{lo},{hi}}}"


def _same_length(a: str, b: str) -> str:
    """The digit strings from ``a`` to ``b`` (same length, ``a <= b``)."""
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    head, a, b = ([f'"{a[:i]}"'] if i else []), a[i:], b[i:]
    if not a:
        return " ".join(head)
    rest, first, last = len(a) - 1, int(a[0]), int(b[0])
    alts = []
    if a[1:] != "0" * rest:  # a's first digit, then a's tail up to 9...9
        alts.append(f'"{first}" ' + _same_length(a[1:], "9" * rest))
        first += 1
    high = f'"{last}" ' + _same_length("0" * rest, b[1:]) if b[1:] != "9" * rest else ""
    last -= bool(high)
    if first <= last:  # a first digit strictly between them, then any digits
        digit = f"[{first}-{last}]" if first < last else f'"{first}"'
        alts.append(f"{digit} {repeat('[0-9]', rest)}".strip())
    return " ".join(head + [group(alts + [high])])


def group(alts: list[str]) -> str:
    """The alternatives as one GBNF expression (empty ones dropped; no parentheses for one)."""
    alts = [a for a in alts if a]
    return alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"


def _uint_range(lo: int, hi: int) -> str:
    """Decimal integers from ``lo`` to ``hi`` (0 <= lo <= hi), without leading zeros."""
    alts, full = [], []  # full: counts of digits after the first for lengths wholly in range
    for length in range(len(str(lo)), len(str(hi)) + 1):
        a, b = max(lo, 10 ** (length - 1) if length > 1 else 0), min(hi, 10**length - 1)
        if b == 10**length - 1 and a <= max(1, 10 ** (length - 1)):
            full.append(length - 1)
            alts += ['"0"'] if a == 0 else []
        elif a <= b:
            alts.append(_same_length(str(a), str(b)))
    if full:
        alts.append(f"[1-9] {repeat('[0-9]', full[0], full[-1])}".strip())
    return group(alts)


def int_range(lo: int, hi: int) -> str:
    """Integers from ``lo`` to ``hi``, negatives with a minus sign, never ``-0``."""
    alts = []
    if lo < 0:
        alts.append('"-" ' + _uint_range(max(-hi, 1), -lo))
    if hi >= 0:
        alts.append(_uint_range(max(lo, 0), hi))
    return group(alts)


def number_range(lo: int | None, hi: int | None) -> str:
    """Decimal numbers from ``lo`` to ``hi`` (whole numbers, or None: unbounded). The integer part
    bounds the value; a bound itself is reached only with a zero fraction."""
    frac, zero = f'("." [0-9]{{1,{MAX_DIGITS}}})?', f'("." [0]{{1,{MAX_DIGITS}}})?'
    alts = []
    sides = [('"-" ', 0 if hi is None else max(-hi, 0), None if lo is None else -lo), ("", max(lo or 0, 0), hi)]
    for sign, low, high in sides:
        if high is None:
            alts.append(f"{sign}{_uint_range(low, BIG)} {frac}")
            continue
        if high < 0 or (sign and high == 0):
            continue
        if low <= high - 1:
            alts.append(f"{sign}{_uint_range(low, high - 1)} {frac}")
        alts.append(f'{sign}"{high}" {zero}')
    return group(alts)


def _bound(s: dict, key: str) -> float | None:
    v = s.get(key)
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
        raise ToolDefinitionError(f"{key} must be a finite number, not {v!r}")
    return v


def int_bounds(s: dict, hint: str) -> tuple[int, int]:
    """The inclusive integer bounds a schema's (exclusive) minimum and maximum allow, within ±BIG."""
    lo, hi = -BIG, BIG
    for key, fn in (("minimum", math.ceil), ("exclusiveMinimum", lambda x: math.floor(x) + 1)):
        if (v := _bound(s, key)) is not None:
            lo = max(lo, fn(v))
    for key, fn in (("maximum", math.floor), ("exclusiveMaximum", lambda x: math.ceil(x) - 1)):
        if (v := _bound(s, key)) is not None:
            hi = min(hi, fn(v))
    if lo > hi:
        raise ToolDefinitionError(f"{hint}: no integer within the bounds (numbers within ±{BIG})")
    return lo, hi


def number_bounds(s: dict, hint: str) -> str:
    """The GBNF expression for a number schema's whole-number bounds (others are refused)."""
    lo, hi = _bound(s, "minimum"), _bound(s, "maximum")
    if s.keys() & {"exclusiveMinimum", "exclusiveMaximum"} or any(
            v is not None and (v != int(v) or abs(v) > BIG) for v in (lo, hi)):
        raise ToolDefinitionError(f"{hint}: number bounds must be inclusive whole numbers (or use an integer)")
    if lo is not None and hi is not None and lo > hi:
        raise ToolDefinitionError(f"{hint}: minimum is above maximum")
    return number_range(None if lo is None else int(lo), None if hi is None else int(hi))
