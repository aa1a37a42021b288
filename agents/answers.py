"""Final answers that ran away: a small model's text answer that repeats itself to the length cap.

Measured on smollm2-135m (``examples/agent_tools.py``): after ``cancel_order`` returned "order 1041
cancelled" the answer was ``1041.000…`` (79 characters, cut by the grammar's cap), and after a
calculator's 408, ``408.00000000000000012.000…``. Two causes, both ours, not the model's:

- the hint after a tool result read ``reply {"answer": ...} now``: ``...`` is not a JSON string,
  and the model copied it (it wrote ``{"answer": {...}}`` with no grammar); under the answer
  grammar, which allows only a string there, the copy was forced into a string, and the closest
  thing the prompt showed was the call examples' numbers. The hint now asks for words, with no
  placeholder to copy (``agents.loop``);
- nothing noticed a runaway answer: greedy decoding inside a string that started as a number has
  no reason to stop. ``runaway`` finds one (a piece of up to 48 characters repeated at least 4
  times in a row, over at least 12 characters: "0000000000000", "I'm just going to keep going, "
  four times; not "1000000"), and the loop sends it back to the model as a malformed reply, like
  any other.
"""

from __future__ import annotations

import re

__all__ = ["runaway"]

_RUN = re.compile(r"(.{1,48}?)\1{3,}", re.DOTALL)
_MIN_RUN_CHARS = 12


def runaway(text: str) -> str | None:
    """A short reason when ``text`` repeats one piece over and over (see the module docstring), else None."""
    for m in _RUN.finditer(text):
        if len(m.group(0)) >= _MIN_RUN_CHARS:
            return f"the answer repeats {m.group(1)!r} over and over; answer in one short sentence"
    return None
