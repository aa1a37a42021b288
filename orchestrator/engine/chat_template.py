"""Render GGUF/Hugging Face chat templates safely.

A chat template is Jinja2 source shipped inside a model file: untrusted input.
It renders only in jinja2's ``ImmutableSandboxedEnvironment`` (no ``_private``
or ``__dunder__`` access, no mutation of lists and dicts), with the helpers
transformers gives templates (``raise_exception``, ``strftime_now``, an
unescaped ``tojson``, ``break``/``continue``, ``{% generation %}``), and under
limits no template can dodge, because the checks are compiled into it:

* size: no value larger than ``max_output_chars`` is ever built. Literals,
  ``~`` operands, attribute/item reads, filter inputs and results, call
  results and printed values are measured; ``*``, ``**``, ``+``, ``%`` and
  the filters and ``str`` methods that multiply text are estimated before
  they run. The prompt is counted as it streams out, and all text produced on
  the way (macro bodies, ``{% set %}`` blocks) against a work budget.
* time: a deadline is checked on every output piece, loop iteration, call,
  attribute or item read, filter and intercepted operator.
* anything else (recursion, errors of the template's own) ends in
  ``ChatTemplateError`` with a one-line reason.
"""

from __future__ import annotations

import functools
import json
import re
import string
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Sized
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from orchestrator.errors import ChatTemplateError, ConfigError

__all__ = ["CHATML_TEMPLATE", "ChatTemplate", "TemplateLimits"]

#: A plain ChatML template, for models whose file carries none (tools are not shown).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% elif message['content'] is iterable and message['content'] is not mapping %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}"
    "{% endif %}"
    "{{ '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_MAX_INT_BITS = 4096  # no chat template needs larger integers
_WORK_FACTOR = 4  # text produced in all (macros, set blocks) per char of output
_EMIT, _ITER, _CHECK = "_orchestrator_emit", "_orchestrator_iter", "_orchestrator_check"  # guard filters


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """Caps on one template: source size, output size, wall time per render."""

    max_template_chars: int = 64_000
    max_output_chars: int = 1_000_000
    max_seconds: float = 1.0

    def __post_init__(self) -> None:
        if min(self.max_template_chars, self.max_output_chars, self.max_seconds) <= 0:
            raise ConfigError(f"template limits must be positive: {self}")


class _Abort(Exception):
    """A limit was hit or the template raised. Deliberately not a ValueError or
    LookupError, so no jinja code on the way up swallows it."""


_Sizes = dict[int, tuple[object, int, int]]  # id -> (object, size, depth)


@dataclass(slots=True)
class _Render:
    """State of one render: its deadline, the text produced, sizes measured."""

    deadline: float
    seconds: float
    work: int = 0
    # Sizes of the input containers (messages, tools...), measured once. Holding
    # the object keeps its id unique; the sandbox forbids mutating them.
    inputs: _Sizes = field(default_factory=dict)


_CURRENT: ContextVar[_Render | None] = ContextVar("chat_template_render", default=None)


def _tick() -> None:
    """Abort when the current render is past its deadline."""
    state = _CURRENT.get()
    if state is not None and time.monotonic() > state.deadline:
        raise _Abort(f"chat template took longer than {state.seconds:g} s")


def _check(size: int, cap: int, what: str) -> None:
    if size > cap:
        raise _Abort(f"{what} would exceed the chat template limit of {cap} chars")


def _measure(obj: object) -> tuple[int, int]:
    """Approximate printed size and nesting depth of ``obj``; shared parts count each time,
    yet are walked once. Only the inputs' sizes outlive the call, so no garbage is kept."""
    if isinstance(obj, str):
        return len(obj), 0
    state = _CURRENT.get()
    return _measure_in(obj, {} if state is None else state.inputs, {}, set())


def _measure_in(obj: object, known: _Sizes, memo: _Sizes, seen: set[int]) -> tuple[int, int]:
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
        item_size, item_depth = _measure_in(item, known, memo, seen)
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
    size = len(fmt) + _measure(args)[0]
    for width, precision in _PRINTF_FIELD.findall(fmt):
        for part in (width, precision):
            size += _ints_total(values) if part == "*" else int(part or 0)
    return size


def _format_size(fmt: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """``fmt.format(...)``: the text, the arguments, and every width in a field spec."""
    values = [*args, *kwargs.values()]
    size = len(fmt) + _measure(values)[0]
    for _, _, spec, _ in string.Formatter().parse(fmt):
        if spec:
            size += sum(int(d) for d in _DIGITS.findall(spec)) + (_ints_total(values) if "{" in spec else 0)
    return size


def _replace_size(subject: str, old: str, new: str, count: int | None = -1) -> int:
    hits = subject.count(old) if old else len(subject) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    return len(subject) + hits * max(len(new) - len(old), 0)


def _binop_size(op: str, left: Any, right: Any) -> int:
    """``left op right`` for the intercepted operators; integers are capped in bits."""
    if isinstance(left, int) and isinstance(right, int):
        if op == "*":
            bits = left.bit_length() + right.bit_length()
        elif op == "**":
            bits = right * left.bit_length() if right > 0 and abs(left) > 1 else 1
        else:
            bits = max(left.bit_length(), right.bit_length()) + 1
        if bits > _MAX_INT_BITS:
            raise _Abort(f"integer result of {op!r} would exceed {_MAX_INT_BITS} bits")
        return 0
    if op == "*":
        seq, times = (left, right) if isinstance(right, int) else (right, left)
        if isinstance(times, int) and isinstance(seq, (str, bytes, list, tuple)):
            return _measure(seq)[0] * max(times, 0)
    elif op == "+":
        return _measure(left)[0] + _measure(right)[0]
    elif op == "%" and isinstance(left, str):
        return _printf_size(left, right)
    return 0


def _method_size(name: str, subject: str | bytes, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """``subject.name(*args, **kwargs)`` for the str/bytes methods that can grow text."""
    n = len(subject)
    if name == "join":
        return n * max(len(args[0]) - 1, 0) + _measure(args[0])[0]
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
        return n * (1 + _measure(args)[0])
    return 0


def _arg(args: Sequence[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _filter_size(name: str, value: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> int:
    """``value|name(*args, **kwargs)`` for the builtin filters that can grow text."""
    size, depth = _measure(value)
    if name == "join":
        return _measure(_arg(args, kwargs, 0, "d", ""))[0] * max(len(value) - 1, 0) + size
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
        return size + max(count, 0) * (2 + _measure(_arg(args, kwargs, 1, "fill_with", None))[0])
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


# --- what templates see: transformers' helpers, a guarded range, guarded loops and output ---


def _raise_exception(message: object) -> NoReturn:
    """``raise_exception(msg)``: how HF templates reject a conversation."""
    raise _Abort(f"chat template raised: {message}")


def _strftime_now(fmt: str) -> str:
    """``strftime_now(fmt)``: the local time, as Llama 3 templates expect."""
    return datetime.now().strftime(fmt)


def _tojson(
    value: Any, ensure_ascii: bool = False, indent: int | str | None = None, separators: Any = None, sort_keys: bool = False
) -> str:
    """``tojson`` as transformers defines it: plain ``json.dumps``, no HTML escaping."""
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _Ticking:
    """An iterable that checks the deadline per item (for-loops, ``range``)."""

    __slots__ = ("_items",)

    def __init__(self, items: Any) -> None:
        self._items = items

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            _tick()
            yield item

    def __len__(self) -> int:
        return len(self._items)  # TypeError for generators, which LoopContext expects


class _Range(_Ticking):
    """``range`` for templates. Sized and indexable, unlike a bare generator,
    so ``|length``, ``loop.last`` and ``range(n)[i]`` keep working."""

    __slots__ = ()

    def __getitem__(self, index: int | slice) -> Any:
        item = self._items[index]
        return _Range(item) if isinstance(item, range) else item

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __repr__(self) -> str:
        return repr(self._items)


def _guarded_range(*args: int) -> _Range:
    inner = range(*args)
    try:
        length = len(inner)
    except OverflowError:
        length = MAX_RANGE + 1
    if length > MAX_RANGE:  # jinja's own sandbox cap
        raise _Abort(f"range() of {length} items exceeds the template limit of {MAX_RANGE}")
    return _Range(inner)


def _cap(context: Context) -> int:
    return context.environment.limits.max_output_chars  # type: ignore[attr-defined, no-any-return]


@pass_context
def _iter_filter(context: Context, items: Any) -> _Ticking:
    return _Ticking(items)


@pass_context
def _check_filter(context: Context, value: Any) -> Any:
    """Literals and ``~`` operands pass here, so no template builds a huge value."""
    _tick()
    _check(_measure(value)[0], _cap(context), "a value")
    return value


@pass_context
def _emit_filter(context: Context, value: Any) -> Any:
    """Every output piece passes here, whether streamed or buffered (macro, set block)."""
    _tick()
    size = _measure(value)[0]
    _check(size, _cap(context), "a printed value")
    state = _CURRENT.get()
    if state is not None:
        state.work += size
        _check(state.work, _cap(context) * _WORK_FACTOR, "the text the template produced in all")
    return value


class _GuardedCodeGenerator(CodeGenerator):
    """Compiles the checks into the template, where no template can avoid them.

    Before code is generated, every for-loop iterable, output piece, ``~``
    operand and list/tuple/dict literal is wrapped in a guard filter. Guards
    take the context, so jinja never evaluates them at compile time.
    """

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        for parent in [node, *node.find_all(nodes.Node)]:
            for name, value in parent.iter_fields():
                if isinstance(value, nodes.Expr):
                    setattr(parent, name, _guarded(parent, value))
                elif isinstance(value, list):
                    setattr(parent, name, [_guarded(parent, v) if isinstance(v, nodes.Expr) else v for v in value])
        super().visit_Template(node, frame)


def _guarded(parent: nodes.Node, child: nodes.Expr) -> nodes.Expr:
    if isinstance(parent, nodes.For) and child is parent.iter:
        return _wrap(child, _ITER)
    if isinstance(parent, nodes.Output):
        return _wrap(nodes.Const(child.data) if isinstance(child, nodes.TemplateData) else child, _EMIT)
    literal = isinstance(child, (nodes.List, nodes.Dict)) or (isinstance(child, nodes.Tuple) and child.ctx == "load")
    return _wrap(child, _CHECK) if literal or isinstance(parent, nodes.Concat) else child


def _wrap(expr: nodes.Expr, filter_name: str) -> nodes.Filter:
    return nodes.Filter(expr, filter_name, [], [], None, None, lineno=expr.lineno)


class _GenerationTag(Extension):
    """transformers' ``{% generation %}...{% endgeneration %}`` marker: renders its body as is."""

    tags = {"generation"}

    def parse(self, parser: Parser) -> list[nodes.Node]:
        next(parser.stream)
        return parser.parse_statements(("name:endgeneration",), drop_needle=True)


class _Sandbox(ImmutableSandboxedEnvironment):
    """transformers' environment (trim_blocks, lstrip_blocks, default Undefined), plus limits."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})  # also keeps them from compile-time folding
    code_generator_class = _GuardedCodeGenerator

    def __init__(self, limits: TemplateLimits) -> None:
        extensions = [loopcontrols, _GenerationTag]
        super().__init__(trim_blocks=True, lstrip_blocks=True, autoescape=False, extensions=extensions)
        self.limits = limits
        self.filters["tojson"] = _tojson
        self.filters = {name: self._guard_filter(name, f) for name, f in self.filters.items()}
        self.filters.update({_EMIT: _emit_filter, _ITER: _iter_filter, _CHECK: _check_filter})
        self.globals.pop("lipsum", None)  # no chat template uses it, and lipsum(10**6) runs for long
        self.globals.update(range=_guarded_range, raise_exception=_raise_exception, strftime_now=_strftime_now)

    def _guard_filter(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a filter: deadline, input sizes, bound of the result, actual result size."""
        skip = 0 if getattr(func, "jinja_pass_arg", None) is None else 1  # context/env comes first
        cap = self.limits.max_output_chars

        @functools.wraps(func)  # copies jinja_pass_arg, so jinja still passes the context
        def guarded(*args: Any, **kwargs: Any) -> Any:
            _tick()
            if len(args) <= skip:
                return func(*args, **kwargs)
            head, value, rest = args[:skip], args[skip], args[skip + 1 :]
            if name in ("join", "sum") and not isinstance(value, Sized):
                value = list(value)
            _check(max(_measure(value)[0], _measure(rest)[0], _measure(kwargs)[0]), cap, f"input of |{name}")
            _check(_filter_size(name, value, rest, kwargs), cap, f"result of |{name}")
            result = func(*head, value, *rest, **kwargs)
            _check(_measure(result)[0], cap, f"result of |{name}")
            return result

        return guarded

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Every call a template makes: deadline, growth of str methods, result size."""
        _tick()
        cap = self.limits.max_output_chars
        target = getattr(obj, "__wrapped__", obj)  # str.format arrives wrapped by the sandbox
        subject = getattr(target, "__self__", None)
        if isinstance(subject, (str, bytes)):
            name = getattr(target, "__name__", "")
            if name == "join" and args and not isinstance(args[0], Sized):
                args = (list(args[0]), *args[1:])
            _check(_method_size(name, subject, args, kwargs), cap, f"result of .{name}()")
        result = super().call(context, obj, *args, **kwargs)
        _check(_measure(result)[0], cap, "a call result")
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        _check(_binop_size(operator, left, right), self.limits.max_output_chars, f"result of {operator!r}")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        value = super().getattr(obj, attribute)
        _check(_measure(value)[0], self.limits.max_output_chars, f"attribute {attribute!r}")
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        value = super().getitem(obj, argument)
        _check(_measure(value)[0], self.limits.max_output_chars, "an item")
        return value

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Fail at once, rather than return an undefined that prints as ''."""
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")


def _plain(value: Any, where: str) -> Any:
    """A deep copy of JSON-like data; anything else is refused."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, Mapping):
        if not all(isinstance(key, str) for key in value):
            raise ChatTemplateError(f"{where}: mapping keys must be strings")
        return {key: _plain(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise ChatTemplateError(f"{where}: a {type(value).__name__} cannot go into a chat template; use JSON-like data")


def _short(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:200]}" if lines else type(exc).__name__


class ChatTemplate:
    """A compiled chat template, rendered only in a limited sandbox. Thread-safe."""

    def __init__(
        self, source: str, *, bos_token: str = "", eos_token: str = "", limits: TemplateLimits = TemplateLimits()
    ) -> None:
        if not isinstance(source, str):
            raise ChatTemplateError(f"a chat template is text, not {type(source).__name__}")
        if len(source) > limits.max_template_chars:
            raise ChatTemplateError(f"chat template has {len(source)} chars, over the limit of {limits.max_template_chars}")
        self.source, self.bos_token, self.eos_token, self.limits = source, bos_token, eos_token, limits
        try:
            self._template = _Sandbox(limits).from_string(source)
        except TemplateSyntaxError as exc:
            raise ChatTemplateError(f"chat template syntax error, line {exc.lineno}: {exc.message}") from None
        except Exception as exc:  # untrusted source: RecursionError, SyntaxError, MemoryError...
            raise ChatTemplateError(f"chat template does not compile: {_short(exc)}") from exc

    def __repr__(self) -> str:
        return f"ChatTemplate({len(self.source)} chars, {self.limits})"

    def render(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> str:
        """Render ``messages`` to prompt text. ``extra`` become template variables
        (``enable_thinking``, ``date_string``...). Every failure is a ChatTemplateError."""
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
            raise ChatTemplateError("messages must be a sequence of mappings")
        if not all(isinstance(m, Mapping) for m in messages):
            raise ChatTemplateError("every message must be a mapping")
        seconds = self.limits.max_seconds
        state = _Render(deadline=time.monotonic() + seconds, seconds=seconds)
        try:
            variables = {  # what transformers' apply_chat_template passes
                "bos_token": self.bos_token,
                "eos_token": self.eos_token,
                "documents": None,
                **{key: _plain(value, key) for key, value in extra.items()},
                "messages": _plain(messages, "messages"),
                "tools": None if tools is None else _plain(tools, "tools"),
                "add_generation_prompt": bool(add_generation_prompt),
            }
            for value in variables.values():
                _measure_in(value, state.inputs, state.inputs, set())
        except RecursionError:
            raise ChatTemplateError("messages, tools or extra variables nest too deeply") from None
        token = _CURRENT.set(state)
        stream = self._template.generate(variables)
        pieces: list[str] = []
        total = 0
        try:
            for piece in stream:
                total += len(piece)
                _check(total, self.limits.max_output_chars, "the rendered prompt")
                _tick()
                pieces.append(piece)
        except _Abort as exc:
            raise ChatTemplateError(str(exc)) from None
        except SecurityError as exc:
            raise ChatTemplateError(f"chat template tried unsafe access: {exc}") from None
        except RecursionError:
            raise ChatTemplateError("chat template recursed too deeply") from None
        except Exception as exc:  # TemplateError, TypeError...: the template's own failure
            raise ChatTemplateError(f"chat template failed: {_short(exc)}") from exc
        finally:
            stream.close()
            _CURRENT.reset(token)
        return "".join(pieces)
