"""Reading a tool's description and per-argument descriptions from its docstring.

Three common styles are understood, detected per docstring:

- Google: an ``Args:`` (or ``Arguments:``, ``Parameters:``) section of ``name: text`` or
  ``name (type): text`` entries, continuation lines indented deeper;
- NumPy: a ``Parameters`` header underlined with dashes, then ``name : type`` lines with the
  text indented below;
- reST/Sphinx: ``:param name: text`` or ``:param type name: text`` fields.

The description of the tool is the docstring's first paragraph, joined into one line.
Anything the parser does not recognise is simply not used: a docstring is prose, and a
missing argument description is not an error.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

__all__ = ["ParsedDocstring", "parse_docstring"]

_GOOGLE_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Other Parameters):\s*$"
)
_GOOGLE_ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_]\w*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_UNDERLINE = re.compile(r"^-{3,}\s*$")
_NUMPY_ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_]\w*(?:\s*,\s*\*{0,2}[A-Za-z_]\w*)*)\s*(?::.*)?$")
_REST_FIELD = re.compile(r"^:(param|parameter|arg|argument|key|keyword)\s+(?:[^:]*\s)?(\*{0,2}[A-Za-z_]\w*)\s*:\s*(.*)$")
_REST_ANY_FIELD = re.compile(r"^:\w[^:]*:")


@dataclass(frozen=True)
class ParsedDocstring:
    """What a docstring says: the tool's description and a description per argument name."""

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Reads ``doc`` (a raw ``__doc__`` or already cleaned) in whichever style it uses."""
    if not doc or not doc.strip():
        return ParsedDocstring()
    lines = inspect.cleandoc(doc).splitlines()
    return ParsedDocstring(_first_paragraph(lines), _google(lines) or _numpy(lines) or _rest(lines))


def _first_paragraph(lines: list[str]) -> str:
    """The lines up to the first blank line or section start, joined with single spaces."""
    out: list[str] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if not stripped or _GOOGLE_HEADER.match(stripped) or _REST_ANY_FIELD.match(stripped) or _NUMPY_UNDERLINE.match(nxt):
            break
        out.append(stripped)
    return " ".join(out)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _join(parts: list[str]) -> str:
    return " ".join(p.strip() for p in parts if p.strip())


def _google(lines: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    i = 0
    while i < len(lines):
        if not _GOOGLE_HEADER.match(lines[i].strip()):
            i += 1
            continue
        header_indent = _indent(lines[i])
        i += 1
        entry_indent: int | None = None
        name: str | None = None
        text: list[str] = []
        # The section runs until a non-blank line that is not indented past its header.
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > header_indent):
            line = lines[i]
            i += 1
            if not line.strip():
                continue
            if entry_indent is None:
                entry_indent = _indent(line)
            m = _GOOGLE_ENTRY.match(line.strip())
            if _indent(line) == entry_indent and m:
                if name:
                    params[name] = _join(text)
                name, text = m.group(1), [m.group(2)]
            elif name:  # a continuation line of the current entry
                text.append(line)
        if name:
            params[name] = _join(text)
    return params


def _numpy(lines: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for start in range(len(lines) - 1):
        if lines[start].strip() not in ("Parameters", "Other Parameters") or not _NUMPY_UNDERLINE.match(lines[start + 1]):
            continue
        base = _indent(lines[start])
        names: list[str] = []
        text: list[str] = []
        i = start + 2
        while i < len(lines):
            line = lines[i]
            # The next section header (a title underlined with dashes) ends this one.
            if i + 1 < len(lines) and _NUMPY_UNDERLINE.match(lines[i + 1]) and _indent(line) == base:
                break
            i += 1
            if not line.strip():
                continue
            m = _NUMPY_ENTRY.match(line.strip())
            if _indent(line) == base and m:
                for n in names:
                    params[n] = _join(text)
                names = [n.strip() for n in m.group(1).split(",")]
                text = []
            elif names:
                text.append(line)
        for n in names:
            params[n] = _join(text)
    return params


def _rest(lines: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    name: str | None = None
    text: list[str] = []
    for line in lines:
        stripped = line.strip()
        m = _REST_FIELD.match(stripped)
        if m or _REST_ANY_FIELD.match(stripped) or not stripped:
            if name:
                params[name] = _join(text)
            name, text = (m.group(2), [m.group(3)]) if m else (None, [])
        elif name and _indent(line) > 0:
            text.append(line)
        elif name:
            params[name] = _join(text)
            name, text = None, []
    if name:
        params[name] = _join(text)
    return params
