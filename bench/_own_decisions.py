"""Scored decisions on the project's own requests, recorded like BFCL items (``orchestrator bench bfcl --own``).

The set, 160 requests: ``bench/tools.py``'s 48 (8 tools written as a new user writes them, each
request with the one call it needs) and ``NO_TOOL``, 16 requests no tool fits (``own_0`` to
``own_63``); then a second batch written later, apart from everything tuned, so that the set is
large enough to check a calibration on (``bench/_own_more.py``: 72 calls and 24 no tool fits,
``own_64`` on). No decision weight was fit on them (the weights come from BFCL's tuning half), so they are held out like BFCL's evaluation
half: the records carry ``half="eval"``, category ``own`` (a call is needed) or ``own_none``
(none is), ``expected`` (the tool, or None) and the features, so that ``reweigh`` replays them
under other relevance, confidence and recalibration weights.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

__all__ = ["NO_TOOL", "load_tools_bench", "run_own"]

NO_TOOL = ("Write a short poem about the sea.", "Who painted the Mona Lisa?", "Tell me a joke about cats.",
           "What is the capital of Australia?", "How do I boil an egg?", "Summarize the plot of Hamlet in one sentence.",
           "What does 'ephemeral' mean?", "Recommend a good book about history.", "Why is the sky blue?",
           "Translate 'good morning' into Spanish.", "How many legs does a spider have?", "Who wrote Pride and Prejudice?",
           "Give me three tips for better sleep.", "What is photosynthesis?", "Say hello to my friend Anna.",
           "What year did the Berlin Wall fall?")


def load_tools_bench() -> Any:
    """``bench/tools.py`` as a module (its name would shadow our ``tools`` package on a plain import)."""
    spec = importlib.util.spec_from_file_location("bench_tools_set", Path(__file__).resolve().parent / "tools.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_tools_set"] = module
    spec.loader.exec_module(module)
    return module


def run_own(engine: Any, settings: Any, cache: MutableMapping[str, str]) -> list[dict[str, Any]]:
    """One record per request of the own set (see the module docstring)."""
    from orchestrator.tool_decisions import EngineScorer
    from orchestrator.types import ChatMessage

    from _own_more import MORE_NO_TOOL, MORE_TASKS

    bench = load_tools_bench()
    scorer = EngineScorer(engine, cache=cache)
    more = tuple(bench.Task(text, name, arguments) for text, name, arguments in MORE_TASKS)
    out = []
    for n, task in enumerate((*bench.TASKS, *NO_TOOL, *more, *MORE_NO_TOOL)):
        text = task if isinstance(task, str) else task.text
        t0 = time.perf_counter()
        decision = scorer.decide(bench.TOOLS, [ChatMessage(role="user", content=text)], settings)
        would = not isinstance(task, str) and decision.tool == task.tool and bench.call_is_correct(task, decision.tool, decision.trace["arguments"])
        right = not decision.calls if isinstance(task, str) else len(decision.calls) == 1 and bench.call_is_correct(task, *decision.calls[0])
        out.append({"id": f"own_{n}", "category": "own_none" if isinstance(task, str) else "own", "half": "eval",
                    "expected": None if isinstance(task, str) else task.tool, "calls": [list(c) for c in decision.calls],
                    "right": right, "call_right": would, "confidence": decision.confidence, "relevance": decision.relevance,
                    "tool": decision.tool, "features": dict(decision.features), "seconds": time.perf_counter() - t0})
    return out
