"""BFCL data for ``orchestrator bench bfcl``: install, read, convert to our tools, and score.

The Berkeley Function Calling Leaderboard ships its data in the ``bfcl-eval`` package. The package
is installed ``--no-deps`` into the benchmark's cache folder and never imported (it pulls in heavy
dependencies): only its JSON files are read.

Scoring follows the rules of BFCL's AST checker (``bfcl_eval/eval_checker/ast_eval``), written
again here from their description, not copied:

- ``simple`` and ``multiple``: exactly one call; its name is the expected function's; every
  required parameter is present; no parameter outside both the function's properties and the
  answer; each value has the parameter's type (an int is accepted for a float; a value of the
  answer's own type is accepted as a "variable"); each value is among the acceptable ones:
  strings compared after removing spaces and ``,./-_*^``, lower-cased, single quotes as double;
  lists element by element after the same normalisation of their strings; dicts key by key; a
  list of dicts dict by dict, in order; other values by equality. A parameter of the answer
  that the call leaves out must list ``""`` (optional) among its values.
- ``irrelevance``: right when no call is made.

The split is fixed: items whose numeric id suffix is even are the tuning half, odd ones the
evaluation half.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CATEGORIES",
    "Item",
    "check_call",
    "value_error",
    "convert_function",
    "data_dir",
    "half_of",
    "install",
    "load_category",
    "score_item",
    "standardize",
]

CATEGORIES = ("simple_python", "multiple", "irrelevance")
PACKAGE = "bfcl-eval"
_DATA = Path("bfcl_eval") / "data"

# BFCL's type names -> JSON schema types, and -> the Python types its checker expects.
_JSON_TYPE = {"dict": "object", "float": "number", "tuple": "array", "integer": "integer", "string": "string",
              "boolean": "boolean", "array": "array", "object": "object", "number": "number", "any": "string"}
_PY_TYPE: dict[str, type] = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list,
                             "tuple": list, "dict": dict, "any": str}


# ---------------------------------------------------------------------------------------------
# Install and read
# ---------------------------------------------------------------------------------------------


def default_cache() -> Path:
    """``<orchestrator cache>/bench/bfcl``: next to the models cache (``orchestrator.paths.cache_dir()``)."""
    from orchestrator.paths import cache_dir

    return cache_dir() / "bench" / "bfcl"


def install(target: Path, wheel: str | None = None) -> Path:
    """The package's data folder, installing ``bfcl-eval`` (or ``wheel``, a file) into ``target``
    with pip, without its dependencies, when it is not there yet."""
    data = target / _DATA
    if not (data / "BFCL_v4_simple_python.json").is_file():
        target.mkdir(parents=True, exist_ok=True)
        print(f"installing {wheel or PACKAGE} (--no-deps) into {target}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
                        "--target", str(target), wheel or PACKAGE], check=True)
    if not (data / "BFCL_v4_simple_python.json").is_file():
        raise FileNotFoundError(f"{data} has no BFCL_v4_simple_python.json after installing {PACKAGE}")
    return data


def data_dir(path: str | Path) -> Path:
    """A folder holding BFCL's JSON files: ``path`` itself, or its ``bfcl_eval/data``."""
    path = Path(path)
    return path / _DATA if (path / _DATA).is_dir() else path


@dataclass(frozen=True)
class Item:
    """One first-turn BFCL request."""

    id: str
    category: str
    question: str
    functions: tuple[dict[str, Any], ...]  # as BFCL writes them
    answer: dict[str, dict[str, list[Any]]] | None  # {function name: {parameter: acceptable values}}; None: no call
    messages: tuple[dict[str, str], ...] = field(default=(), repr=False)

    @property
    def number(self) -> int:
        return int(self.id.rsplit("_", 1)[1])


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_category(data: Path, category: str) -> list[Item]:
    """The items of one category, with their possible answers (none for irrelevance)."""
    rows = _read_jsonl(data / f"BFCL_v4_{category}.json")
    answers: dict[str, Any] = {}
    answer_file = data / "possible_answer" / f"BFCL_v4_{category}.json"
    if answer_file.is_file():
        answers = {r["id"]: r["ground_truth"] for r in _read_jsonl(answer_file)}
    items = []
    for row in rows:
        turn = row["question"][0]
        user = [m["content"] for m in turn if m["role"] == "user"]
        truth = answers.get(row["id"])
        items.append(Item(row["id"], category, user[-1], tuple(row["function"]), truth[0] if truth else None,
                          tuple({"role": m["role"], "content": m["content"]} for m in turn)))
    return items


def half_of(item: Item) -> str:
    """``"tune"`` for an even id suffix, ``"eval"`` for an odd one."""
    return "tune" if item.number % 2 == 0 else "eval"


# ---------------------------------------------------------------------------------------------
# BFCL functions as JSON schemas for our tools
# ---------------------------------------------------------------------------------------------


def convert_schema(node: Any) -> Any:
    """A BFCL parameter schema as JSON schema: its type names mapped (``dict`` -> object, ``float``
    -> number, ``tuple`` -> array, ``any`` -> string, as BFCL's checker reads it); everything else,
    ``format`` and ``optional`` included, kept as written."""
    if isinstance(node, list):
        return [convert_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            out[key] = _JSON_TYPE.get(value, value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {k: convert_schema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf"):
            out[key] = convert_schema(value)
        else:
            out[key] = value
    return out


def convert_function(function: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """``(name, description, parameters as JSON schema)`` of a BFCL function."""
    params = convert_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    params.setdefault("properties", {})
    return function["name"], function.get("description", ""), params


# ---------------------------------------------------------------------------------------------
# Scoring (BFCL's AST rules; see the module docstring)
# ---------------------------------------------------------------------------------------------


def standardize(text: str) -> str:
    return re.sub(r"[ ,./\-_*^]", "", text).lower().replace("'", '"')


def _std(value: Any) -> Any:
    return standardize(value) if isinstance(value, str) else value


def _answer_type(values: Sequence[Any]) -> type | None:
    return next((type(v) for v in values if v != ""), None)


def _type_ok(value: Any, values: Sequence[Any], bfcl_type: str, item_type: str | None) -> tuple[bool, bool]:
    """(the value's type is acceptable, it counts as a "variable": the answer's own type, not the schema's)."""
    expected = _PY_TYPE.get(bfcl_type, str)
    answer_type = _answer_type(values)
    variable = answer_type is not None and answer_type is not expected
    if type(value) is expected:
        if item_type is None or item_type not in _PY_TYPE:
            return True, variable
        inner = _PY_TYPE[item_type]
        for option in values:
            # BFCL checks the items only against answers that are lists ("" for an optional one passes)
            if not isinstance(option, list) or all(type(v) is inner or type(v) is _answer_type(option) for v in value):
                return True, variable
        return False, variable
    if answer_type is not None and type(value) is answer_type:
        return True, True
    return False, variable


def _dict_ok(value: dict[str, Any], options: Sequence[Any]) -> bool:
    for option in options:
        if option == "" or not isinstance(option, dict):
            continue
        keys_ok = all(k in option and _std(v) in [_std(a) for a in option[k]] for k, v in value.items())
        if keys_ok and all(k in value or "" in v for k, v in option.items()):
            return True
    return False


def _list_of_dicts_ok(value: list[Any], options: Sequence[Any]) -> bool:
    for option in options:
        if isinstance(option, list) and len(option) == len(value):
            if all(isinstance(v, dict) and _dict_ok(v, [o]) for v, o in zip(value, option)):
                return True
    return False


def check_call(function: Mapping[str, Any], name: str, arguments: Mapping[str, Any], answer: Mapping[str, list[Any]]) -> str | None:
    """None when the call is right by BFCL's rules, else a short reason (an error kind)."""
    if name != function["name"]:
        return "wrong function"
    for param in function["parameters"].get("required", []):
        if param not in arguments:
            return "missing required"
    for param, value in arguments.items():
        why = value_error(function, answer, param, value)
        if why:
            return why
    for param, values in answer.items():
        if param not in arguments and "" not in values:
            return "missing optional"
    return None


def value_error(function: Mapping[str, Any], answer: Mapping[str, list[Any]], param: str, value: Any) -> str | None:
    """None when ``param=value`` is acceptable by BFCL's rules, else why not."""
    props = function["parameters"].get("properties", {})
    if param not in props or param not in answer:
        return "unexpected parameter"
    bfcl_type = props[param].get("type", "string")
    if bfcl_type == "float" and type(value) is int:
        value = float(value)
    item_type = props[param].get("items", {}).get("type") if bfcl_type in ("array", "tuple") else None
    ok, variable = _type_ok(value, answer[param], bfcl_type, item_type)
    if not ok:
        return "wrong type"
    if not variable:
        if isinstance(value, dict):
            return None if _dict_ok(value, answer[param]) else "wrong value"
        if isinstance(value, list) and item_type == "dict":
            return None if _list_of_dicts_ok(value, answer[param]) else "wrong value"
        if isinstance(value, str):
            ok = standardize(value) in [standardize(a) for a in answer[param] if isinstance(a, str)]
            return None if ok else "wrong value"
        if isinstance(value, list):
            options = [[_std(x) for x in a] for a in answer[param] if isinstance(a, list)]
            return None if [_std(x) for x in value] in options else "wrong value"
    return None if value in answer[param] else "wrong value"


def score_item(item: Item, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> str | None:
    """None when ``calls`` (the turn's calls, as made) are right for ``item``, else why not."""
    if item.answer is None:  # irrelevance: right when no call is made
        return None if not calls else "called a function"
    if len(calls) != 1:
        return "no call" if not calls else "several calls"
    expected = next(iter(item.answer))
    function = next((f for f in item.functions if f["name"] == expected), None)
    if function is None:  # pragma: no cover - BFCL's data always names one of its functions
        return "answer names an unknown function"
    return check_call(function, calls[0][0], calls[0][1], item.answer[expected])


def refusals(items: Iterable[Item], make_tool: Any) -> dict[str, str]:
    """``{function name: reason}`` for every function ``make_tool(name, description, schema)`` refuses."""
    out: dict[str, str] = {}
    for item in items:
        for function in item.functions:
            name, description, schema = convert_function(function)
            if name in out:
                continue
            try:
                make_tool(name, description, schema)
            except Exception as exc:  # a ToolDefinitionError, reported with its reason
                out[name] = f"{type(exc).__name__}: {exc}"
    return out
