"""Built-in patterns: pure parsing and voting on plain data, the graphs on scripted backends."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest

from agents.patterns import PlannedCall, extract_answer, majority_vote, parse_outline, parse_plan, resolve_arguments
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.errors import NodeFailedError, PlanError
from orchestrator.taskgraph.patterns import map_reduce, plan_and_execute, self_consistency, skeleton_of_thought
from orchestrator.taskgraph.scheduler import Runner
from orchestrator.types import GenerationRequest


def test_parse_outline_reads_numbered_and_bulleted_lists() -> None:
    text = "Sure!\n1. Tests first\n2) Small commits\n- Code review\n* Tests first\n3. Monitoring\n"
    assert parse_outline(text, 10) == ["Tests first", "Small commits", "Code review", "Monitoring"]
    assert parse_outline(text, 2) == ["Tests first", "Small commits"]
    assert parse_outline("no list here\n\nat all", 5) == ["no list here", "at all"]
    assert parse_outline("", 5) == []


def test_parse_plan_reads_calls_and_dependencies() -> None:
    text = 'Plan:\n1. search(query="GGUF")\n2. search(query="llama")\n3. join(a="$1", b="$2", sep=" / ")\nThanks'
    plan = parse_plan(text, ["search", "join"])
    assert [c.tool for c in plan] == ["search", "search", "join"]
    assert plan[2].deps == {1, 2} and plan[0].deps == frozenset()
    assert resolve_arguments(plan[2], {1: ["x"], 2: "y"}) == {"a": ["x"], "b": "y", "sep": " / "}
    assert resolve_arguments(PlannedCall(3, "t", {"s": "see $1 and $2"}, frozenset({1, 2})), {1: 5, 2: "z"}) == {"s": "see 5 and z"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1. rm(path='/')", "unknown tool 'rm'"),
        ("1. search(query='$2')\n2. search(query='x')", r"uses \$2, which is not an earlier step"),
        ("1. search(query='a')\n1. search(query='b')", "appears twice"),
        ("1. search('positional')", "by name"),
        ("1. search(query=__import__('os').system('x'))", "literal value"),
        ("1. search(**{'query': 1})", r"\*\* arguments"),
        ("1. search(query=)", "cannot read the arguments"),
        ("nothing useful", "no step"),
    ],
)
def test_parse_plan_refuses_what_cannot_run(text: str, reason: str) -> None:
    with pytest.raises(PlanError, match=reason):
        parse_plan(text, ["search"])


def test_parse_plan_caps_its_length() -> None:
    text = "\n".join(f"{i}. search(query='q')" for i in range(1, 60))
    with pytest.raises(PlanError, match="at most"):
        parse_plan(text, ["search"])


def test_extract_answer_and_vote() -> None:
    assert extract_answer("so 3 + 4 = 7") == "7"
    assert extract_answer("It costs 2,50 then 3.50") == "3.5"
    assert extract_answer("\n Paris.\nmore") == "paris"
    assert majority_vote(["7", "8", "7", "", "8", "7"]) == ("7", 3)
    assert majority_vote(["", ""]) == ("", 0)
    assert majority_vote(["b", "a"]) == ("b", 1)  # ties: first seen


def _run(graph: Any, backend: ScriptedBackend, inputs: dict[str, Any]) -> Any:
    return anyio.run(lambda: Runner(backend).run(graph, inputs))


def test_skeleton_of_thought_expands_every_point_with_a_shared_prefix() -> None:
    def reply(request: GenerationRequest) -> str:
        text = request.messages[-1].content if request.messages else request.prompt or ""
        if "numbered list" in text:
            return "1. Tests\n2. Reviews\n3. Monitoring"
        return "expanded " + re.search(r"Expand point (\d)", text).group(1)  # type: ignore[union-attr]

    backend = ScriptedBackend(reply)
    result = _run(skeleton_of_thought(points=3), backend, {"question": "How to be reliable?"})
    assert result.output == "1. Tests: expanded 1\n2. Reviews: expanded 2\n3. Monitoring: expanded 3"
    expansions = [r.messages[-1].content for r in backend.requests[1:]]
    prefix = "Question: How to be reliable?\nOutline:\n1. Tests\n2. Reviews\n3. Monitoring\n\nExpand point "
    assert len(expansions) == 3 and all(e.startswith(prefix) for e in expansions)


def test_plan_and_execute_runs_independent_calls_at_once() -> None:
    running = {"now": 0, "peak": 0}

    async def search(query: str) -> str:
        """Search the notes."""
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
        await anyio.sleep(0.05)
        running["now"] -= 1
        return f"<{query}>"

    def join(a: str, b: str) -> str:
        """Join two texts."""
        return a + b

    plan = '1. search(query="x")\n2. search(query="y")\n3. join(a="$1", b="$2")'

    def reply(request: GenerationRequest) -> str:
        text = request.messages[-1].content  # type: ignore[index]
        if text.endswith("Plan:"):
            assert "- search(query: str): Search the notes." in text, text
            return plan
        assert "3. <x><y>" in text
        return "the answer"

    result = _run(plan_and_execute({"search": search, "join": join}), ScriptedBackend(reply), {"question": "q?"})
    assert result.output == "the answer"
    assert result.outputs["execute"] == {"1": "<x>", "2": "<y>", "3": "<x><y>"}
    assert running["peak"] == 2
    assert {"execute/s1", "execute/s2", "execute/s3"} <= set(result.nodes)


def test_plan_and_execute_fails_closed_on_a_bad_plan() -> None:
    backend = ScriptedBackend(["1. delete_everything()", "unused"])
    with pytest.raises(NodeFailedError, match="unknown tool 'delete_everything'"):
        _run(plan_and_execute({"search": lambda query: query}), backend, {"question": "q"})


def test_map_reduce_and_self_consistency() -> None:
    def reply(request: GenerationRequest) -> str:
        text = request.messages[-1].content  # type: ignore[index]
        if text.startswith("Summarise"):
            return text.split("\n", 1)[1][:3]
        return "combined: " + text.split("\n", 1)[1].replace("\n", ",")

    result = _run(map_reduce(), ScriptedBackend(reply), {"documents": ["alpha", "beta", "gamma"]})
    assert result.output == "combined: alp,bet,gam"

    answers = iter(["so 12", "maybe 13", "it is 12", "12", "x"])
    backend = ScriptedBackend(lambda r: next(answers))
    result = _run(self_consistency(n=5), backend, {"question": "6 + 6?"})
    assert result.output == {"answer": "12", "votes": 3, "of": 5, "answers": ["12", "13", "12", "12", "x"]}
    assert backend.requests[0].n == 5 and backend.requests[0].sampling.temperature == 0.7
