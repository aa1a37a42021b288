"""The sandbox a chat template renders in: jinja2's immutable sandbox, with checks compiled in.

What templates see: the helpers transformers gives them (``raise_exception``,
``strftime_now``, an unescaped ``tojson``, ``break``/``continue``, ``{% generation %}``), a
``range`` that is capped and ticks the deadline. What no template can avoid: before code is
generated, every loop iterable, output piece, ``~`` operand and literal is wrapped in a guard
filter, and the environment intercepts calls, operators, filters, attribute and item reads.
Each guard checks the deadline and the sizes (``template_limits``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Sized
from datetime import datetime
from typing import Any, NoReturn

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension, loopcontrols
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

from orchestrator.engine.template_limits import (
    CURRENT_RENDER,
    TemplateAbort,
    TemplateLimits,
    binop_size,
    check_size,
    filter_size,
    measure,
    method_size,
    tick,
)

__all__ = ["Sandbox"]

_WORK_FACTOR = 4  # text produced in all (macros, set blocks) per char of output
_EMIT, _ITER, _CHECK = "_orchestrator_emit", "_orchestrator_iter", "_orchestrator_check"  # guard filters


# --- what templates see: transformers' helpers, a guarded range, guarded loops and output ---


def _raise_exception(message: object) -> NoReturn:
    """``raise_exception(msg)``: how HF templates reject a conversation."""
    raise TemplateAbort(f"chat template raised: {message}")


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
            tick()
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
        raise TemplateAbort(f"range() of {length} items exceeds the template limit of {MAX_RANGE}")
    return _Range(inner)


def _cap(context: Context) -> int:
    return context.environment.limits.max_output_chars  # type: ignore[attr-defined, no-any-return]


@pass_context
def _iter_filter(context: Context, items: Any) -> _Ticking:
    return _Ticking(items)


@pass_context
def _check_filter(context: Context, value: Any) -> Any:
    """Literals and ``~`` operands pass here, so no template builds a huge value."""
    tick()
    check_size(measure(value)[0], _cap(context), "a value")
    return value


@pass_context
def _emit_filter(context: Context, value: Any) -> Any:
    """Every output piece passes here, whether streamed or buffered (macro, set block)."""
    tick()
    size = measure(value)[0]
    check_size(size, _cap(context), "a printed value")
    state = CURRENT_RENDER.get()
    if state is not None:
        state.work += size
        check_size(state.work, _cap(context) * _WORK_FACTOR, "the text the template produced in all")
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


class Sandbox(ImmutableSandboxedEnvironment):
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
            tick()
            if len(args) <= skip:
                return func(*args, **kwargs)
            head, value, rest = args[:skip], args[skip], args[skip + 1 :]
            if name in ("join", "sum") and not isinstance(value, Sized):
                value = list(value)
            check_size(max(measure(value)[0], measure(rest)[0], measure(kwargs)[0]), cap, f"input of |{name}")
            check_size(filter_size(name, value, rest, kwargs), cap, f"result of |{name}")
            result = func(*head, value, *rest, **kwargs)
            check_size(measure(result)[0], cap, f"result of |{name}")
            return result

        return guarded

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Every call a template makes: deadline, growth of str methods, result size."""
        tick()
        cap = self.limits.max_output_chars
        target = getattr(obj, "__wrapped__", obj)  # str.format arrives wrapped by the sandbox
        subject = getattr(target, "__self__", None)
        if isinstance(subject, (str, bytes)):
            name = getattr(target, "__name__", "")
            if name == "join" and args and not isinstance(args[0], Sized):
                args = (list(args[0]), *args[1:])
            check_size(method_size(name, subject, args, kwargs), cap, f"result of .{name}()")
        result = super().call(context, obj, *args, **kwargs)
        check_size(measure(result)[0], cap, "a call result")
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        check_size(binop_size(operator, left, right), self.limits.max_output_chars, f"result of {operator!r}")
        return super().call_binop(context, operator, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        value = super().getattr(obj, attribute)
        check_size(measure(value)[0], self.limits.max_output_chars, f"attribute {attribute!r}")
        return value

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        value = super().getitem(obj, argument)
        check_size(measure(value)[0], self.limits.max_output_chars, "an item")
        return value

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Fail at once, rather than return an undefined that prints as ''."""
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")
