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
from collections.abc import Callable, MutableMapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["NO_TOOL", "load_tools_bench", "run_app", "run_own"]

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
    from _own_more import MORE_NO_TOOL, MORE_TASKS

    bench = load_tools_bench()
    tasks = [(t.text, t.tool, t.arguments) for t in bench.TASKS] + [(t, None, {}) for t in NO_TOOL]
    tasks += [*MORE_TASKS, *((t, None, {}) for t in MORE_NO_TOOL)]

    def correct(expected: str, arguments: dict[str, Any], name: str, got: dict[str, Any]) -> bool:
        return bench.call_is_correct(bench.Task("", expected, arguments), name, got)

    return _decide_all(engine, settings, cache, bench.TOOLS, tasks, correct, "own", "eval")


def run_app(engine: Any, settings: Any, cache: MutableMapping[str, str]) -> list[dict[str, Any]]:
    """One record per request of the app-style tuning set (``bench/_app_tune.py``): ids ``app_N``,
    half ``tune``, categories ``app`` / ``app_none``."""
    import _app_tune as app

    tasks = [*app.TASKS, *((t, None, {}) for t in app.NO_TOOL)]
    return _decide_all(engine, settings, cache, app.TOOLS, tasks, app.call_is_correct, "app", "tune")


def _decide_all(engine: Any, settings: Any, cache: MutableMapping[str, str], tools: Any,
                tasks: Sequence[tuple[str, str | None, dict[str, Any]]], correct: Callable[..., bool], prefix: str,
                half: str) -> list[dict[str, Any]]:
    """Decide each ``(text, expected tool or None, arguments)`` over ``tools``: records like BFCL's."""
    from orchestrator.tool_decisions import EngineScorer
    from orchestrator.types import ChatMessage

    scorer = EngineScorer(engine, cache=cache)
    out = []
    for n, (text, expected, arguments) in enumerate(tasks):
        t0 = time.perf_counter()
        decision = scorer.decide(tools, [ChatMessage(role="user", content=text)], settings)
        would = expected is not None and decision.tool == expected and correct(expected, arguments, decision.tool, decision.trace["arguments"])
        right = not decision.calls if expected is None else len(decision.calls) == 1 and correct(expected, arguments, *decision.calls[0])
        out.append({"id": f"{prefix}_{n}", "category": prefix if expected else f"{prefix}_none", "half": half,
                    "expected": expected, "calls": [list(c) for c in decision.calls],
                    "right": right, "call_right": would, "confidence": decision.confidence, "relevance": decision.relevance,
                    "tool": decision.tool, "features": dict(decision.features), "seconds": time.perf_counter() - t0})
    return out
