"""Runaway final answers (``agents.answers``) and the answer hint after a tool result.

Regression for the number runs of ``examples/agent_tools.py`` ("1041.000…", "'.408'"): before,
a runaway answer was returned as the agent's output, and the hint after a tool result showed
``{"answer": ...}``, a non-string placeholder the model copied. Both assertions below fail on
the old code (the output was the runaway text; the hint held ``{"answer": ...}``).
"""

from __future__ import annotations

import json

import anyio
import pytest

from agents.agent import Agent
from agents.answers import runaway
from orchestrator.agent_runner import run_agent
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.backends.local import engine_request
from tools.tool import tool

pytestmark = pytest.mark.timeout(60)


@tool
def cancel_order(order: int) -> str:
    """Cancel an order.

    Args:
        order: Order number.
    """
    return f"order {order} cancelled"


@pytest.mark.parametrize("text", ["1041.000000000000000000000000", "408.00000000000000012.000", "267, 267, 267, 267, 267, 267, 267",
                                  "} now. } now. } now. } now. } now. } now. ", "I'm just going to keep going, " * 5])
def test_runaways_are_found(text):
    assert runaway(text)


@pytest.mark.parametrize("text", ["Order 1041 is cancelled.", "408", "It is 18 degrees in Lisbon, with light rain.", "1000000",
                                  "Yes, yes, yes!", "2024-02-14", "See https://example.com/a/b/c"])
def test_ordinary_answers_pass(text):
    assert runaway(text) is None


def test_a_runaway_answer_goes_back_to_the_model_and_the_hint_has_no_placeholder():
    call = json.dumps({"calls": [{"name": "cancel_order", "arguments": {"order": 1041}}]})
    backend = ScriptedBackend([call, json.dumps({"answer": "1041." + "0" * 60}), json.dumps({"answer": "Order 1041 is cancelled."})])
    result = anyio.run(lambda: run_agent(Agent("a", "Help.", tools=(cancel_order,)), "Cancel order 1041.", backend))
    assert result.output == "Order 1041 is cancelled." and result.retries == 1
    hint = engine_request(backend.requests[1]).messages[-1].content  # what a local model reads after the result
    assert "answer the user now" in hint and '{"answer": ...}' not in hint
    assert "repeats" in backend.requests[2].messages[-1].content  # the model was told why
