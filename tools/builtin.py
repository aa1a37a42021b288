"""Safe built-in tools: ``calculator``, ``current_time`` and ``read_file_tool(folder)``.

They treat their arguments as hostile: the calculator walks the expression's syntax tree
and never calls ``eval``; the file reader only reads regular UTF-8 text files inside one
folder chosen by the developer, opened component by component with no symlink followed.
A bad argument is a ``ToolCallError`` with a short reason the model can act on; messages
never show the folder's absolute path.
"""

from __future__ import annotations

import ast
import errno
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

__all__ = [
    "MAX_EXPRESSION_CHARS",
    "MAX_EXPRESSION_NODES",
    "MAX_INT_BITS",
    "MAX_ROUND_DIGITS",
    "calculator",
    "current_time",
    "read_file_tool",
]

MAX_EXPRESSION_CHARS = 500
MAX_EXPRESSION_NODES = 200
MAX_INT_BITS = 400  # about 120 digits: plenty for arithmetic, far from a memory bomb
MAX_ROUND_DIGITS = 400  # round(x, n) computes 10**abs(n): round(1, -10**8) never returned

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
        args = [_evaluate(a) for a in node.args]
        if node.func.id == "round" and len(args) == 2:
            _check_round_digits(args[1])
        return _apply(fn, *args, label=node.func.id)
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


def _check_round_digits(ndigits: int | float) -> None:
    """Refuses ``round``'s digit counts that would make it build a huge power of ten."""
    if not isinstance(ndigits, int):
        raise _CalcError("round(): the number of digits must be a whole number")
    if abs(ndigits) > MAX_ROUND_DIGITS:
        raise _CalcError(f"round(): the number of digits must lie between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}")


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

    Paths are relative to the folder. The file is opened one path component at a time,
    each relative to the folder already opened, and no symlink is ever followed (not even
    one that points inside the folder): a folder swapped for a symlink while the tool reads
    cannot lead it out. ``..`` may step back up, never above ``folder``. Absolute paths,
    symlinks, folders, non-regular files (FIFOs, devices), files over ``max_bytes`` and
    binary or non-UTF-8 files are refused with a ``ToolCallError``.

    Limit: a hard link inside the folder to a file outside it is read (a hard link is the
    file itself; nothing in the path tells it apart). Do not give the tool a folder where
    others can create hard links to files you would not show the model.
    """
    try:
        root = Path(folder).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise ToolDefinitionError(f"read_file_tool: folder {os.fspath(folder)!r} does not exist ({exc})") from None
    if not root.is_dir():
        raise ToolDefinitionError(f"read_file_tool: {os.fspath(folder)!r} is not a folder")
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise ToolDefinitionError("read_file_tool: max_bytes must be a positive int")
    if os.open not in os.supports_dir_fd or not hasattr(os, "O_NOFOLLOW") or not hasattr(os, "O_DIRECTORY"):
        raise ToolDefinitionError("read_file_tool needs openat-style file opening (dir_fd, O_NOFOLLOW), which this OS lacks")

    def read_file(path: _RelativePath) -> str:
        return _read_text(root, path, max_bytes, name)

    return tool(read_file, name=name, description=f"Read a UTF-8 text file (at most {max_bytes} bytes) from the allowed folder.")


class _Refused(Exception):
    """Why a path cannot be read; becomes the file reader's ToolCallError."""


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
# O_NOFOLLOW: a symlink is refused, not followed; O_NONBLOCK: a FIFO cannot hang us.
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC


def _read_text(root: Path, rel: str, max_bytes: int, name: str) -> str:
    shown = repr(rel if len(rel) <= 80 else rel[:77] + "...")
    try:
        if "\x00" in rel:
            raise _Refused("the path holds a NUL character")
        if PurePath(rel).is_absolute() or rel.startswith(("~", "/")):
            raise _Refused("give a path relative to the allowed folder")
        fd = _open_beneath(root, rel)
        try:
            data = _read_opened(fd, max_bytes)
        finally:
            os.close(fd)
        if b"\x00" in data:
            raise _Refused("it is a binary file, not text")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused("it is not UTF-8 text") from None
    except _Refused as exc:
        raise ToolCallError(f"cannot read {shown}: {exc}", tool=name) from None


def _open_beneath(root: Path, rel: str) -> int:
    """Opens ``rel`` under ``root`` component by component, following no symlink; returns the fd.

    Every ``os.open`` names one component relative to a folder descriptor we hold, with
    O_NOFOLLOW, so swapping any folder on the way for a symlink makes that open fail
    instead of leading elsewhere. ``..`` returns to the descriptor held before (our own
    stack, not the file system's ``..``), and never above ``root``.
    """
    parts = [p for p in rel.replace(os.sep, "/").split("/") if p not in ("", ".")]
    stack = [_open_dir(str(root), None, "")]
    try:
        for i, part in enumerate(parts):
            if part == "..":
                if len(stack) == 1:
                    raise _Refused("it is outside the allowed folder")
                os.close(stack.pop())
            elif i < len(parts) - 1:
                stack.append(_open_dir(part, stack[-1], "/".join(parts[: i + 1])))
        if not parts or parts[-1] == "..":
            raise _Refused("it is a folder, not a file")
        return _open_entry(parts[-1], stack[-1], _FILE_FLAGS)
    finally:
        for fd in stack:
            os.close(fd)


def _open_dir(part: str, dir_fd: int | None, shown: str) -> int:
    if dir_fd is None:  # the allowed folder itself (checked when the tool was made)
        try:
            return os.open(part, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
        except OSError:
            raise _Refused("the allowed folder cannot be opened") from None
    return _open_entry(part, dir_fd, _DIR_FLAGS, folder=shown)


def _open_entry(part: str, dir_fd: int, flags: int, *, folder: str = "") -> int:
    """``os.open(part, flags, dir_fd=dir_fd)`` with each failure turned into its reason."""
    try:
        return os.open(part, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise _Refused("no such file") from None
    except PermissionError:
        raise _Refused("permission denied") from None
    except OSError as exc:
        # ELOOP (EMLINK on BSD) is what O_NOFOLLOW gives for a symlink; look at the entry to say which.
        try:
            is_link = stat.S_ISLNK(os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            is_link = False
        if is_link:
            raise _Refused("it goes through a symlink; symlinks are not followed") from None
        if folder and exc.errno == errno.ENOTDIR:
            raise _Refused(f"{folder!r} is not a folder") from None
        raise _Refused("not a readable file") from None


def _read_opened(fd: int, max_bytes: int) -> bytes:
    """Checks what was opened (not what the path named a moment ago), then reads it."""
    info = os.fstat(fd)
    if stat.S_ISDIR(info.st_mode):
        raise _Refused("it is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise _Refused("not a regular file")
    if info.st_size > max_bytes:
        raise _Refused(f"file too large ({info.st_size} bytes; the limit is {max_bytes})")
    with os.fdopen(os.dup(fd), "rb") as f:
        data = f.read(max_bytes + 1)  # the file may have grown since fstat
    if len(data) > max_bytes:
        raise _Refused(f"file too large (the limit is {max_bytes} bytes)")
    return data
