"""``Tool``: a function a model may call, with the JSON schema of its arguments; ``@tool``.

A tool is made from a Python function (``@tool``: the schema comes from the signature's
type hints and the docstring) or from a raw JSON schema (``Tool.from_schema``). Either
way every problem is found when the tool is defined, and ``Tool.parameters`` is a
normalized schema in the subset described in ``tools.schema``.

    @tool
    def get_weather(city: str, unit: Literal["C", "F"] = "C") -> str:
        '''Current weather in a city.

        Args:
            city: City name, e.g. "Paris".
            unit: Temperature unit.
        '''
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

from pydantic import PydanticUserError, TypeAdapter, ValidationError

from orchestrator.errors import ConfigError, ToolCallError, ToolDefinitionError
from tools.docstrings import parse_docstring
from tools.hints import NO_DEFAULT, json_default, schema_for_hint
from tools.schema import normalize_schema

__all__ = ["Tool", "tool"]

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}$")  # dotted names as real APIs write them: math.factorial
_P = inspect.Parameter


@dataclass(frozen=True, eq=False)
class Tool:
    """A function a model may call. Calling the ``Tool`` calls the function directly.

    ``parameters`` is the JSON schema of the keyword arguments, always normalized (see
    ``tools.schema``): ``{"type": "object", "properties": {...}, "required": [...],
    "additionalProperties": false}``. Treat it as read-only. ``is_async`` (worked out,
    not given) says whether calling ``fn`` gives a coroutine. ``idempotent`` tools may be retried or run again
    on resume; ``needs_approval`` tools pause the run until approved; ``timeout_s`` bounds
    one call (None: the agent's default). ``adapters`` turn validated JSON into the
    signature's Python types (None for a raw-schema tool, which gets the JSON as is).

    ``injected`` names parameters the application fills in at run time (a user id, a database
    handle): they are not in the schema, the model never sees them, and a call that tries to
    set one is refused (``run_agent(context=...)`` supplies them). ``grounded`` says whether
    an agent with ``ground_arguments`` may hold this tool's arguments to words and numbers of
    the conversation; False for tools whose arguments are derived, like a calculator's
    expression.
    """

    name: str
    description: str
    parameters: dict[str, Any] = field(repr=False)
    fn: Callable[..., Any] = field(repr=False)
    idempotent: bool = True
    needs_approval: bool = False
    timeout_s: float | None = None
    adapters: Mapping[str, TypeAdapter[Any]] | None = field(default=None, repr=False)
    injected: tuple[str, ...] = ()
    grounded: bool = True
    is_async: bool = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.description, str):
            raise ToolDefinitionError(f"tool {self.name!r}: the description must be a string")
        if not callable(self.fn):
            raise ToolDefinitionError(f"tool {self.name!r}: fn must be callable")
        timeout = self.timeout_s
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0):
            raise ToolDefinitionError(f"tool {self.name!r}: timeout_s must be a positive number of seconds or None")
        object.__setattr__(self, "is_async", _is_async(self.fn, self.name))
        params = normalize_schema(self.parameters, where=f"tool {self.name!r} parameters")
        object.__setattr__(self, "parameters", params)
        if self.adapters is not None and set(self.adapters) != set(params["properties"]):
            raise ToolDefinitionError(f"tool {self.name!r}: adapters must match the schema's properties")
        object.__setattr__(self, "injected", tuple(self.injected))
        clash = [n for n in self.injected if n in params["properties"]]
        if clash or not all(isinstance(n, str) and n.isidentifier() for n in self.injected):
            raise ToolDefinitionError(f"tool {self.name!r}: injected parameters must be identifiers outside the model's schema, not {clash or list(self.injected)}")

    def bind(self, kwargs: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
        """The model's converted arguments plus the injected ones taken from ``context``."""
        missing = [n for n in self.injected if n not in context]
        if missing:
            raise ConfigError(f"tool {self.name!r} needs {missing} from the run's context")
        return {**kwargs, **{n: context[n] for n in self.injected}}

    @classmethod
    def from_schema(
        cls,
        name: str,
        description: str,
        schema: Mapping[str, Any],
        fn: Callable[..., Any],
        *,
        idempotent: bool = True,
        needs_approval: bool = False,
        timeout_s: float | None = None,
        grounded: bool = True,
    ) -> Tool:
        """A tool whose arguments are described by a raw JSON schema (Draft 2020-12).

        The schema is checked against the metaschema and the supported subset; ``fn`` must
        accept every property as a keyword and must not need anything the schema does not
        require. ``fn`` receives the validated JSON values (no conversion).
        """
        made = cls(name=name, description=description, parameters=dict(schema) if isinstance(schema, Mapping) else schema,
                   fn=fn, idempotent=idempotent, needs_approval=needs_approval, timeout_s=timeout_s, grounded=grounded)
        _check_fn_takes(fn, made.parameters, name)
        return made

    def convert(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``fn`` from JSON arguments that already match ``parameters``.

        Builds pydantic models and enums and runs the signature's pydantic validators; a
        validator's refusal is a ``ToolCallError`` for the model.
        """
        if self.adapters is None:
            return dict(arguments)
        out: dict[str, Any] = {}
        for key, value in arguments.items():
            adapter = self.adapters.get(key)
            if adapter is None:
                raise ToolCallError(f'unexpected argument "{key}"', tool=self.name)
            try:
                out[key] = adapter.validate_python(value)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
                raise ToolCallError(f'argument "{key}{loc}": {err["msg"]}', tool=self.name) from None
        return out

    def as_openai_tool(self) -> dict[str, Any]:
        """The tool in OpenAI's ``tools`` format, for remote backends with native tool calling."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": copy.deepcopy(self.parameters)},
        }

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = True,
    needs_approval: bool = False,
    timeout_s: float | None = None,
    injected: Sequence[str] = (),
    grounded: bool = True,
) -> Callable[[Callable[..., Any]], Tool]: ...


def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = True,
    needs_approval: bool = False,
    timeout_s: float | None = None,
    injected: Sequence[str] = (),
    grounded: bool = True,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Makes a ``Tool`` from a function; use bare (``@tool``) or with options (``@tool(...)``).

    The name defaults to the function's; the description to the docstring's first
    paragraph. Each parameter must be keyword-passable and annotated with a supported type
    (see ``tools.hints``); its description comes from ``Annotated[..., Field(description=)]``
    or a plain string, else from the docstring (Google, NumPy or reST style). Any problem
    raises ``ToolDefinitionError`` here, not when the model calls the tool. ``injected``
    parameters are left out of the schema and filled from the run's context (see ``Tool``).
    """
    if isinstance(injected, str):
        injected = (injected,)

    def build(f: Callable[..., Any]) -> Tool:
        return _from_function(f, name, description, idempotent=idempotent, needs_approval=needs_approval, timeout_s=timeout_s,
                              injected=tuple(injected), grounded=grounded)

    if fn is None:
        return build
    if isinstance(fn, str):
        raise ToolDefinitionError("use @tool(name=...) to name a tool, not @tool('...')")
    return build(fn)


def _from_function(fn: Any, name: str | None, description: str | None, **options: Any) -> Tool:
    if isinstance(fn, Tool):
        raise ToolDefinitionError(f"{fn.name!r} is already a Tool")
    if not callable(fn) or inspect.isclass(fn):
        raise ToolDefinitionError(f"@tool needs a function, got {fn!r}")
    name = name or getattr(fn, "__name__", "")
    _check_name(name)
    label = f"tool {name!r}"
    try:
        sig = inspect.signature(fn, eval_str=True)
    except (NameError, AttributeError, SyntaxError) as exc:
        raise ToolDefinitionError(f"{label}: cannot resolve its type hints ({exc}); define the types at module level") from None
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(f"{label}: cannot read its signature ({exc})") from None
    doc = parse_docstring(inspect.getdoc(fn))
    props: dict[str, Any] = {}
    required: list[str] = []
    adapters: dict[str, TypeAdapter[Any]] = {}
    injected = options.get("injected", ())
    unknown = [n for n in injected if n not in sig.parameters]
    if unknown:
        raise ToolDefinitionError(f"{label}: injected {unknown} are not parameters of the function")
    for p in sig.parameters.values():
        where = f"{label}, parameter {p.name!r}"
        if p.name in injected:
            if p.kind is _P.POSITIONAL_ONLY or p.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD):
                raise ToolDefinitionError(f"{where}: an injected parameter must be passable by keyword")
            continue
        if p.kind in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD):
            raise ToolDefinitionError(f"{where}: *args and **kwargs are not supported; list the parameters")
        if p.kind is _P.POSITIONAL_ONLY:
            raise ToolDefinitionError(f"{where}: positional-only parameters are not supported (tools are called by keyword)")
        if p.annotation is _P.empty:
            raise ToolDefinitionError(f"{where} has no type annotation")
        schema = schema_for_hint(p.annotation, where)
        if "description" not in schema and doc.params.get(p.name):
            schema["description"] = doc.params[p.name]
        if p.default is _P.empty:
            required.append(p.name)
        else:
            default = json_default(p.default, schema)
            if default is not NO_DEFAULT:
                schema["default"] = default
        try:
            adapters[p.name] = TypeAdapter(p.annotation)
        except (PydanticUserError, TypeError, ValueError) as exc:  # a type pydantic cannot build a validator for
            raise ToolDefinitionError(f"{where}: pydantic cannot validate this type ({exc})") from None
        props[p.name] = schema
    stale = [n for n in doc.params if n not in sig.parameters]
    if stale:
        raise ToolDefinitionError(f"{label}: the docstring describes {stale[0]!r}, which is not a parameter")
    parameters = {"type": "object", "properties": props, "required": required, "additionalProperties": False}
    return Tool(
        name=name,
        description=doc.description if description is None else description,
        parameters=parameters,
        fn=fn,
        adapters=adapters,
        **options,
    )


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ToolDefinitionError(f"tool name {name!r} must be 1-64 letters, digits, '_', '-' or '.' (not first)")


def _is_async(fn: Any, name: str) -> bool:
    # A callable object is async when its __call__ is; inspect already sees through partials.
    candidates = [c for c in (fn, getattr(fn, "__call__", None)) if c is not None]
    if any(inspect.isgeneratorfunction(c) or inspect.isasyncgenfunction(c) for c in candidates):
        raise ToolDefinitionError(f"tool {name!r}: generator functions are not supported; return a value")
    return any(inspect.iscoroutinefunction(c) for c in candidates)


def _check_fn_takes(fn: Callable[..., Any], parameters: Mapping[str, Any], name: str) -> None:
    """A raw-schema tool's function must accept what the schema allows and need no more."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # some builtins have no signature; calls will tell
    params = sig.parameters
    takes_any = any(p.kind is _P.VAR_KEYWORD for p in params.values())
    for prop in parameters["properties"]:
        p = params.get(prop)
        if p is None and not takes_any:
            raise ToolDefinitionError(f"tool {name!r}: the schema's property {prop!r} is not a parameter of the function")
        if p is not None and p.kind in (_P.POSITIONAL_ONLY, _P.VAR_POSITIONAL):
            raise ToolDefinitionError(f"tool {name!r}: parameter {prop!r} cannot be passed by keyword")
    for p in params.values():
        needed = p.default is _P.empty and p.kind not in (_P.VAR_POSITIONAL, _P.VAR_KEYWORD)
        if needed and p.name not in parameters["required"]:
            raise ToolDefinitionError(f"tool {name!r}: parameter {p.name!r} has no default but the schema does not require it")
