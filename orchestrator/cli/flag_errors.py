"""Bad values given on the command line, told as one line that names the flag (exit status 2).

Three kinds end here, whichever command met them:
- argparse's own (a missing argument, a value of the wrong type): ``Parser.error``;
- a check the CLI makes itself: ``raise FlagError("--cascade", "takes a threshold between 0 and 1")``,
  or an argparse ``type`` such as ``positive_int``;
- a pydantic ``ValidationError`` from a settings or request object built from the flags
  (``GenerationRequest``, ``SamplingParams``, ``EngineConfig``, ``ServerConfig``, ...): its field
  is mapped back to the flag that set it (``validation_message``), so no command needs its own
  try/except, and a new flag is covered as soon as its ``dest`` is the field's name (or it is
  listed in ``FIELD_FLAGS``).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import ConfigError

__all__ = ["FIELD_FLAGS", "FlagError", "command_flags", "positive_float", "positive_int", "validation_message"]

# (model, field) -> the dest of the flag that sets it, where the two names differ.
FIELD_FLAGS: dict[tuple[str, str], str] = {
    ("EngineConfig", "type_k"): "kv_type",
    ("EngineConfig", "type_v"): "kv_type",
    ("EngineConfig", "draft_model"): "speculative",
    ("ServerConfig", "cors_origins"): "cors_origin",
    ("RemoteEndpoint", "base_url"): "remote",
    ("RemoteEndpoint", "model"): "remote_model",
    ("CascadeSettings", "threshold"): "cascade",
    ("ChatMessage", "content"): "prompt",
}


class FlagError(ConfigError):
    """A flag's value that the CLI refuses: ``error: --flag: why`` and exit status 2."""

    def __init__(self, flag: str, message: str) -> None:
        self.flag = flag
        super().__init__(f"{flag}: {message}")


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer >= 1 (argparse names the flag when it is not)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse ``type``: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number above 0, got {text}")
    return value


def command_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """``dest -> flag`` (``max_tokens -> --max-tokens``; a positional by its name) for the command
    ``args`` was parsed into: the root parser's flags and those of each subcommand chosen (a
    subcommand's flag wins over its parent's of the same dest)."""
    flags: dict[str, str] = {}
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen: argparse.ArgumentParser | None = None
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                name = getattr(args, action.dest, None)
                chosen = action.choices.get(name) if name else None
            elif action.option_strings:
                flags[action.dest] = max(action.option_strings, key=len)  # the long spelling
            elif action.dest is not argparse.SUPPRESS:
                flags[action.dest] = action.dest
        current = chosen
    return flags


def validation_message(exc: ValidationError, flags: dict[str, str], args: argparse.Namespace | None = None) -> str:
    """One line for the first error: ``--max-tokens 2000000: Input should be less than or equal to 1000000``.

    The field is looked up from the innermost part of its location outwards (``sampling.temperature``
    is ``--temperature``). An error of the whole object (a check across fields, located nowhere)
    is put on the flag whose field its message names (``stop strings must have ...``: ``--stop``).
    Otherwise the field is named as ``Model.field``."""
    first = exc.errors(include_url=False)[0]
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    loc = [str(part) for part in first.get("loc", ()) if isinstance(part, str)]
    for field in reversed(loc):
        dest = FIELD_FLAGS.get((exc.title, field), field)
        if dest in flags:
            given = getattr(args, dest, None) if args is not None else None
            shown = f" {_short(given)}" if given is not None and not isinstance(given, bool | list) else ""
            return f"{flags[dest]}{shown}: {message}"
    if not loc:
        words = set(re.findall(r"[A-Za-z_]+", message))
        named = [dest for dest, flag in flags.items() if flag.startswith("--") and dest in words]
        if named:
            return f"{flags[max(named, key=len)]}: {message}"
    where = ".".join([exc.title, *loc])
    return f"invalid {where}: {message}"


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
