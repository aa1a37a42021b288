"""The BFCL scorer of ``orchestrator bench bfcl`` (BFCL's AST rules written again), on plain data.

It was checked against BFCL's own checker on 7,200 perturbed calls (right answers with a value
changed, a parameter dropped or added, types switched between int and float, another function)
and agreed on every one; these cases pin the rules down without the package.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(60)

_PATH = Path(__file__).resolve().parent.parent / "bench" / "_bfcl_data.py"
_spec = importlib.util.spec_from_file_location("bfcl_data_under_test", _PATH)
B = importlib.util.module_from_spec(_spec)
sys.modules["bfcl_data_under_test"] = B
_spec.loader.exec_module(B)

FN = {"name": "calc.area", "parameters": {"type": "dict", "required": ["base", "shape"], "properties": {
    "base": {"type": "float"}, "shape": {"type": "string"}, "unit": {"type": "string"}, "sides": {"type": "array", "items": {"type": "integer"}},
    "opts": {"type": "dict", "properties": {}}}}}
ANSWER = {"base": [10.0], "shape": ["Right Triangle"], "unit": ["cm", ""], "sides": [[3, 4], ""], "opts": [{"fast": [True]}, ""]}


@pytest.mark.parametrize(("args", "why"), [
    ({"base": 10, "shape": "right-triangle"}, None),  # int for float; strings without spaces, dashes, case
    ({"base": 10.0, "shape": "Right Triangle", "unit": "CM", "sides": [3, 4], "opts": {"fast": True}}, None),
    ({"base": 10.0}, "missing required"),
    ({"base": 10.0, "shape": "x"}, "wrong value"),
    ({"base": "10", "shape": "Right Triangle"}, "wrong type"),
    ({"base": 10.0, "shape": "Right Triangle", "color": "red"}, "unexpected parameter"),
    ({"base": 10.0, "shape": "Right Triangle", "sides": [4, 3]}, "wrong value"),
    ({"base": 10.0, "shape": "Right Triangle", "sides": [3.0, 4.0]}, None),  # as BFCL: "" among the answers skips the item types
    ({"base": 10.0, "shape": "Right Triangle", "sides": ["3", "4"]}, "wrong value"),
])
def test_check_call(args, why):
    assert B.check_call(FN, "calc.area", args, ANSWER) == why


def test_items_and_irrelevance_and_split():
    item = B.Item("simple_python_3", "simple_python", "q", (FN,), {"calc.area": ANSWER})
    assert B.score_item(item, [("calc.area", {"base": 10, "shape": "right triangle"})]) is None
    assert B.score_item(item, []) == "no call" and B.score_item(item, [("calc.area", {})] * 2) == "several calls"
    assert B.score_item(item, [("other", {})]) == "wrong function"
    irrelevant = B.Item("irrelevance_8", "irrelevance", "q", (FN,), None)
    assert B.score_item(irrelevant, []) is None and B.score_item(irrelevant, [("calc.area", {})]) == "called a function"
    assert B.half_of(item) == "eval" and B.half_of(irrelevant) == "tune"


def test_bfcl_types_become_json_schema():
    name, _, schema = B.convert_function(FN)
    props = schema["properties"]
    assert name == "calc.area" and schema["type"] == "object" and props["base"]["type"] == "number"
    assert props["opts"]["type"] == "object" and props["sides"]["items"]["type"] == "integer"
