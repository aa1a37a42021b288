"""Safe built-in tools: ``calculator``, ``current_time`` and ``read_file_tool(folder)``.

They treat their arguments as hostile: the calculator walks the expression's syntax tree
and never calls ``eval``; the file reader only reads regular UTF-8 text files inside one
folder chosen by the developer. A bad argument is a ``ToolCallError`` with a short reason
the model can act on; messages never show the folder's absolute path.
"""

from __future__ import annotations

import ast
import math
import operator
import os
import stat
from collections.abc import Callable
from datetime import datetime
from pathlib import Path, PurePath
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field

from orchestrator.errors import ToolCallError, ToolDefinitionError
from tools.tool import Tool, tool

__all__ = ["calculator", "current_time", "read_file_tool"]

MAX_EXPRESSION_CHARS = 500
MAX_EXPRESSION_NODES = 200
MAX_INT_BITS = 400  # about 120 digits: plenty for arithmetic, far from a memory bomb

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
# name -> (function, fewest arguments, most arguments)
_FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "sqrt": (math.sqrt, 1, 1), "exp": (math.exp, 1, 1), "log": (math.log, 1, 2),
    "log10": (math.log10, 1, 1), "log2": (math.log2, 1, 1), "sin": (math.sin, 1, 1),
    "cos": (math.cos, 1, 1), "tan": (math.tan, 1, 1), "asin": (math.asin, 1, 1),
    "acos": (math.acos, 1, 1), "atan": (math.atan, 1, 1), "abs": (abs, 1, 1),
    "round": (round, 1, 2), "floor": (math.floor, 1, 1), "ceil": (math.ceil, 1, 1),
    "min": (min, 2, 20), "max": (max, 2, 20),
}
_CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau}
_ALLOWED = "numbers, + - * / // % **, parentheses, pi, e and " + ", ".join(_FUNCTIONS)

_Expression = Annotated[str, Field(min_length=1, max_length=MAX_EXPRESSION_CHARS)]
_Zone = Annotated[str, Field(min_length=1, max_length=64)]
_RelativePath = Annotated[
    str, Field(description="Path of the file, relative to the allowed folder.", min_length=1, max_length=1024)
]


class _CalcError(Exception):
    """Why an expression cannot be computed; becomes the calculator's ToolCallError."""


@tool(grounded=False)  # its expression is worked out from the request, not quoted from it
def calculator(expression: _Expression) -> int | float:
    """Compute an arithmetic expression exactly as written, e.g. "2 * (3 + 4) ** 2" or "sqrt(2) / 3".

    Args:
        expression: Numbers, + - * / // % **, parentheses, pi, e and the functions sqrt,
            exp, log, log10, log2, sin, cos, tan, asin, acos, atan, abs, round, floor,
            ceil, min, max.
    """
    try:
        if len(expression) > MAX_EXPRESSION_CHARS:
            raise _CalcError(f"expression too long (the limit is {MAX_EXPRESSION_CHARS} characters)")
        try:
            tree = ast.parse(expression.strip(), mode="eval")
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise _CalcError(f"not an arithmetic expression; use {_ALLOWED}") from None
        if sum(1 for _ in ast.walk(tree)) > MAX_EXPRESSION_NODES:
            raise _CalcError(f"expression too complex (more than {MAX_EXPRESSION_NODES} parts)")
        return _evaluate(tree.body)
    except _CalcError as exc:
        raise ToolCallError(str(exc), tool="calculator") from None
    except RecursionError:
        raise ToolCallError("expression nested too deeply", tool="calculator") from None


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise _CalcError(f"only numbers are allowed, not {ast.unparse(node)[:30]}")
        return _checked(node.value)
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _apply(_BINARY[type(node.op)], left, right)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords:
        fn, fewest, most = _FUNCTIONS[node.func.id]
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise _CalcError(f"'*' is not allowed; use {_ALLOWED}")
        if not fewest <= len(node.args) <= most:
            count = f"{fewest} to {most} arguments" if most > fewest else f"{fewest} argument" + ("s" if fewest > 1 else "")
            raise _CalcError(f"{node.func.id}() takes {count}")
        return _apply(fn, *(_evaluate(a) for a in node.args), label=node.func.id)
    raise _CalcError(f"'{ast.unparse(node)[:30]}' is not allowed; use {_ALLOWED}")


def _check_power(base: int | float, exponent: int | float) -> None:
    """Refuses a power whose result would be huge, before computing it (think 9**9**9)."""
    if abs(exponent) > 10_000:
        if abs(base) in (0, 1) and exponent > 0:
            return
        raise _CalcError("exponent too large")
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1
    if exact and exponent * math.log2(abs(base)) > MAX_INT_BITS:
        raise _CalcError(f"result too large: a power of more than {MAX_INT_BITS} bits")


def _apply(fn: Callable[..., Any], *args: Any, label: str = "") -> int | float:
    try:
        return _checked(fn(*args))
    except ZeroDivisionError:
        raise _CalcError("division by zero") from None
    except OverflowError:
        raise _CalcError("result too large") from None
    except (ValueError, TypeError):
        raise _CalcError(f"{label or 'operation'}: math domain error (e.g. sqrt or log of a negative number)") from None


def _checked(value: Any) -> int | float:
    if isinstance(value, complex):
        raise _CalcError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _CalcError(f"result too large (more than {MAX_INT_BITS} bits)")
    if isinstance(value, float) and not math.isfinite(value):
        raise _CalcError("result too large" if not math.isnan(value) else "the result is not a number")
    return value


@tool
def current_time(timezone: _Zone = "UTC") -> str:
    """The current date, time and weekday in a time zone.

    Args:
        timezone: IANA time zone name, e.g. "Europe/Paris", "America/New_York" or "UTC".
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        shown = timezone if len(timezone) <= 64 else timezone[:61] + "..."
        raise ToolCallError(f"unknown time zone {shown!r}; use an IANA name such as 'Europe/Paris' or 'UTC'", tool="current_time") from None
    now = datetime.now(zone)
    return f"{now.isoformat(timespec='seconds')} ({now.strftime('%A')}, {timezone})"


def read_file_tool(folder: str | os.PathLike[str], *, max_bytes: int = 100_000, name: str = "read_file") -> Tool:
    """A tool that reads one UTF-8 text file inside ``folder`` (and nowhere else).

    Paths are relative to the folder; absolute paths, ``..`` or symlinks leading out of
    it, folders, non-regular files (FIFOs, devices), files over ``max_bytes`` and binary
    or non-UTF-8 files are refused with a ``ToolCallError``.
    """
    try:
        root = Path(folder).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ToolDefinitionError(f"read_file_tool: folder {os.fspath(folder)!r} does not exist ({exc})") from None
    if not root.is_dir():
        raise ToolDefinitionError(f"read_file_tool: {os.fspath(folder)!r} is not a folder")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ToolDefinitionError("read_file_tool: max_bytes must be a positive int")

    def read_file(path: _RelativePath) -> str:
        return _read_text(root, path, max_bytes, name)

    return tool(read_file, name=name, description=f"Read a UTF-8 text file (at most {max_bytes} bytes) from the allowed folder.")


def _read_text(root: Path, rel: str, max_bytes: int, name: str) -> str:
    shown = repr(rel if len(rel) <= 80 else rel[:77] + "...")

    def refuse(reason: str) -> ToolCallError:
        return ToolCallError(f"cannot read {shown}: {reason}", tool=name)

    if "\x00" in rel:
        raise refuse("the path holds a NUL character")
    if PurePath(rel).is_absolute() or rel.startswith("~"):
        raise refuse("give a path relative to the allowed folder")
    try:
        # resolve() follows every symlink and '..'; what it names must still be inside root.
        resolved = (root / rel).resolve()
    except (OSError, RuntimeError):
        raise refuse("the path cannot be resolved (a symlink loop?)") from None
    if not resolved.is_relative_to(root):
        raise refuse("it is outside the allowed folder")
    # O_NOFOLLOW: a symlink swapped in after resolve() is refused; O_NONBLOCK: a FIFO cannot hang us.
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(resolved, flags)
    except FileNotFoundError:
        raise refuse("no such file") from None
    except PermissionError:
        raise refuse("permission denied") from None
    except OSError:
        raise refuse("not a readable file") from None
    try:
        # Check what was opened (not what the path named a moment ago) before reading it.
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise refuse("it is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise refuse("not a regular file")
        if info.st_size > max_bytes:
            raise refuse(f"file too large ({info.st_size} bytes; the limit is {max_bytes})")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since fstat
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise refuse(f"file too large (the limit is {max_bytes} bytes)")
    if b"\x00" in data:
        raise refuse("it is a binary file, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise refuse("it is not UTF-8 text") from None
