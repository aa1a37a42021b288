"""The limits a chat template renders under, and how they are measured.

``TemplateLimits`` caps one template: source size, output size, wall time per render. The
state of one render (``RenderState``: its deadline, the text produced in all, the sizes of
its inputs) lives in a context variable, so the guards compiled into the template
(``template_sandbox``) find it without a reference, and renders in other threads never share it.

Sizes are approximate printed sizes. ``measure`` takes them for values; ``binop_size``,
``method_size`` and ``filter_size`` bound the result of an operation *before* it runs, for
the operations whose result can dwarf their inputs. Going over a limit raises ``TemplateAbort``.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from jinja2.utils import Namespace

from orchestrator.errors import ConfigError

__all__ = [
    "CURRENT_RENDER",
    "RenderState",
    "TemplateAbort",
    "TemplateLimits",
    "binop_size",
    "check_size",
    "filter_size",
    "measure",
    "measure_in",
    "method_size",
    "tick",
]

_MAX_INT_BITS = 4096  # no chat template needs larger integers


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """Caps on one template: source size, output size, wall time per render."""

    max_template_chars: int = 64_000
    max_output_chars: int = 1_000_000
    max_seconds: float = 1.0

    def __post_init__(self) -> None:
        if min(self.max_template_chars, self.max_output_chars, self.max_seconds) <= 0:
            raise ConfigError(f"template limits must be positive: {self}")


class TemplateAbort(Exception):
    """A limit was hit or the template raised. Deliberately not a ValueError or
    LookupError, so no jinja code on the way up swallows it."""


_Sizes = dict[int, tuple[object, int, int]]  # id -> (object, size, depth)


@dataclass(slots=True)
class RenderState:
    """State of one render: its deadline, the text produced, sizes measured."""

    deadline: float
    seconds: float
    work: int = 0
    # Sizes of the input containers (messages, tools...), measured once. Holding
    # the object keeps its id unique; the sandbox forbids mutating them.
    inputs: _Sizes = field(default_factory=dict)


CURRENT_RENDER: ContextVar[RenderState | None] = ContextVar("chat_template_render", default=None)


def tick() -> None:
    """Abort when the current render is past its deadline."""
    state = CURRENT_RENDER.get()
    if state is not None and time.monotonic() > state.deadline:
        raise TemplateAbort(f"chat template took longer than {state.seconds:g} s")


def check_size(size: int, cap: int, what: str) -> None:
    if size > cap:
        raise TemplateAbort(f"{what} would exceed the chat template limit of {cap} chars")


def measure(obj: object) -> tuple[int, int]:
    """Approximate printed size and nesting depth of ``obj``; shared parts count each time,
    yet are walked once. Only the inputs' sizes outlive the call, so no garbage is kept."""
    if isinstance(obj, str):
        return len(obj), 0
    state = CURRENT_RENDER.get()
    return measure_in(obj, {} if state is None else state.inputs, {}, set())


def measure_in(obj: object, known: _Sizes, memo: _Sizes, seen: set[int]) -> tuple[int, int]:
    if isinstance(obj, (str, bytes)):
        return len(obj), 0
    if isinstance(obj, int):
        return obj.bit_length() // 3 + 1, 0
    if isinstance(obj, Namespace):  # mutable, so never memoised; may contain itself
        if id(obj) in seen:
            return 1, 0
        seen.add(id(obj))
        attrs: dict[str, Any] = object.__getattribute__(obj, "_Namespace__attrs")  # jinja private
        return _measure_items([x for kv in attrs.items() for x in kv], known, memo, seen)
    if not isinstance(obj, (list, tuple, set, frozenset, dict)):
        return 1, 0
    hit = known.get(id(obj)) or memo.get(id(obj))
    if hit is None:
        items = [x for kv in obj.items() for x in kv] if isinstance(obj, dict) else obj
        hit = memo[id(obj)] = (obj, *_measure_items(items, known, memo, seen))
    return hit[1], hit[2]


def _measure_items(items: Any, known: _Sizes, memo: _Sizes, seen: set[int]) -> tuple[int, int]:
    size, depth = 2, 0
    for item in items:
        item_size, item_depth = measure_in(item, known, memo, seen)
        size, depth = size + item_size + 1, max(depth, item_depth)
    return size, depth + 1


# --- size bounds of operations whose result can dwarf their inputs, taken before they run ---
# A bound that cannot be taken (malformed arguments) raises, and the render fails: never a bypass.

_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


def _ints_total(values: Any) -> int:
    return sum(abs(v) for v in values if isinstance(v, int))


def _printf_size(fmt: str, args: Any) -> int:
    """``fmt % args``: the text, the arguments, and every width and precision."""
    values = args if isinstance(args, tuple) else (args,)
    size = len(fmt) + measure(args)[0]
    for width, precision in _PRINTF_FIELD.findall(fmt):
        for part in (width, precision):
            size += _ints_total(values) if part == "*" else int(part or 0)
    return size


def _format_size(fmt: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """``fmt.format(...)``: the text, the arguments, and every width in a field spec."""
    values = [*args, *kwargs.values()]
    size = len(fmt) + measure(values)[0]
    for _, _, spec, _ in string.Formatter().parse(fmt):
        if spec:
            size += sum(int(d) for d in _DIGITS.findall(spec)) + (_ints_total(values) if "{" in spec else 0)
    return size


def _replace_size(subject: str, old: str, new: str, count: int | None = -1) -> int:
    hits = subject.count(old) if old else len(subject) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(subject) + hits * max(len(new) - len(old), 0)


def binop_size(op: str, left: Any, right: Any) -> int:
    """``left op right`` for the intercepted operators; integers are capped in bits."""
    if isinstance(left, int) and isinstance(right, int):
        if op == "*":
            bits = left.bit_length() + right.bit_length()
        elif op == "**":
            bits = right * left.bit_length() if right > 0 and abs(left) > 1 else 1
        else:
            bits = max(left.bit_length(), right.bit_length()) + 1
        if bits > _MAX_INT_BITS:
            raise TemplateAbort(f"integer result of {op!r} would exceed {_MAX_INT_BITS} bits")
        return 0
    if op == "*":
        seq, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(times, int) and isinstance(seq, (str, bytes, list, tuple)):
            return measure(seq)[0] * max(times, 0)
    elif op == "+":
        return measure(left)[0] + measure(right)[0]
    elif op == "%" and isinstance(left, str):
        return _printf_size(left, right)
    return 0


def method_size(name: str, subject: str | bytes, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """``subject.name(*args, **kwargs)`` for the str/bytes methods that can grow text."""
    n = len(subject)
    if name == "join":
        return n * max(len(args[0]) - 1, 0) + measure(args[0])[0]
    if name == "replace":
        return _replace_size(subject, *args, **kwargs)  # type: ignore[arg-type]
    if name in ("center", "ljust", "rjust", "zfill"):
        return max(n, args[0])
    if name == "expandtabs":
        tabs = subject.count("\t" if isinstance(subject, str) else b"\t")  # type: ignore[arg-type]
        return n + tabs * max(_arg(args, kwargs, 0, "tabsize", 8), 0)
    if name in ("format", "format_map") and isinstance(subject, str):
        return _format_size(subject, args, kwargs) if name == "format" else _format_size(subject, (), args[0])
    if name == "translate":
        return n * (1 + measure(args)[0])
    return 0


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def filter_size(name: str, value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """``value|name(*args, **kwargs)`` for the builtin filters that can grow text."""
    size, depth = measure(value)
    if name == "join":
        return measure(_arg(args, kwargs, 0, "d", ""))[0] * max(len(value) - 1, 0) + size
    if name == "replace":
        old, new = str(_arg(args, kwargs, 0, "old", "")), str(_arg(args, kwargs, 1, "new", ""))
        return _replace_size(str(value), old, new, _arg(args, kwargs, 2, "count", None))
    if name == "indent":
        width = _arg(args, kwargs, 0, "width", 4)
        width = width if isinstance(width, int) else len(str(width))
        return size + (str(value).count("\n") + 1) * max(width, 0)
    if name == "wordwrap":
        return size * (1 + len(str(_arg(args, kwargs, 2, "wrapstring", None) or "\n")))
    if name == "center":
        return max(size, _arg(args, kwargs, 0, "width", 80))
    if name == "format":
        return _printf_size(str(value), dict(kwargs) or tuple(args))
    if name in ("batch", "slice"):
        count = _arg(args, kwargs, 0, "linecount" if name == "batch" else "slices", 0)
        return size + max(count, 0) * (2 + measure(_arg(args, kwargs, 1, "fill_with", None))[0])
    if name == "tojson":
        indent = _arg(args, kwargs, 1, "indent", None)
        indent = len(indent) if isinstance(indent, str) else (indent or 0)
        escapes = 12 if _arg(args, kwargs, 0, "ensure_ascii", False) else 1
        return size * escapes * (1 + max(indent, 0) * depth)
    if name == "pprint":
        return size * (1 + depth)
    if name == "sum" and isinstance(_arg(args, kwargs, 1, "start", 0), (list, tuple)):
        return size * len(value) // 2  # each list concatenation copies all before it
    return 0
