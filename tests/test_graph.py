"""TaskGraph: everything that can be wrong is found when the graph is built or validated."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigError, GraphError
from orchestrator.taskgraph.graph import Generate, Input, Loop, Ref, Retry, Subgraph, TaskGraph


def one(x: str) -> str:
    return x


def test_a_cycle_is_found_and_named() -> None:
    g = TaskGraph("g")
    g.add("a", one, inputs={"x": "c"}).add("b", one, inputs={"x": "a"}).add("c", one, inputs={"x": "b"})
    with pytest.raises(GraphError, match="cycle: .*a.*b.*c|cycle: .*b.*c.*a|cycle: .*c.*a.*b"):
        g.validate()


def test_a_node_cannot_read_itself() -> None:
    with pytest.raises(GraphError, match="own output"):
        TaskGraph("g").add("a", one, inputs={"x": "a"})


def test_unknown_node_is_reported_with_both_names() -> None:
    g = TaskGraph("g").add("a", one, inputs={"x": "nowhere"})
    with pytest.raises(GraphError, match="'a' reads the output of 'nowhere'"):
        g.validate()


def test_missing_and_unknown_parameters_fail_at_definition() -> None:
    g = TaskGraph("g")
    with pytest.raises(GraphError, match="no input is bound to x"):
        g.add("a", one)
    with pytest.raises(GraphError, match="no parameter y"):
        g.add("a", one, inputs={"x": Input("q"), "y": Input("q")})
    with pytest.raises(GraphError, match="no input is bound to question"):
        g.add("gen", Generate("Q: {question}"))
    assert "a" not in g and "gen" not in g  # nothing half-added


def test_defaults_and_kwargs_are_respected() -> None:
    def with_default(x: str, y: int = 2) -> str:
        return x * y

    def anything(**kw: object) -> int:
        return len(kw)

    g = TaskGraph("g").add("a", with_default, inputs={"x": Input("q")}).add("b", anything, inputs={"p": "a", "q": Input("q")})
    assert g.validate() is g


def test_prompt_templates_accept_plain_fields_only() -> None:
    with pytest.raises(GraphError, match="plain name"):
        Generate("{x.__class__}").parameters()
    with pytest.raises(GraphError, match="plain name"):
        Generate("{x[0]}").parameters()
    with pytest.raises(GraphError, match="bad prompt template"):
        Generate("{unclosed").parameters()
    assert Generate("a {x} b {y} {{literal}}").parameters() == ({"x", "y"}, set())


def test_bad_names_and_duplicates() -> None:
    g = TaskGraph("g").add("a", one, inputs={"x": Input("q")})
    with pytest.raises(GraphError, match="already has a node 'a'"):
        g.add("a", one, inputs={"x": Input("q")})
    for bad in ["", "a b", "a/b", "x" * 101, "a[0]", "a#1"]:
        with pytest.raises(GraphError, match="node name"):
            g.add(bad, one, inputs={"x": Input("q")})
    with pytest.raises(GraphError):
        TaskGraph("bad name")


def test_graph_errors_are_config_errors() -> None:
    assert issubclass(GraphError, ConfigError)


def test_inputs_sinks_and_output() -> None:
    g = TaskGraph("g", output="b").add("a", one, inputs={"x": Input("q")}).add("b", one, inputs={"x": "a"})
    g.add("side", one, inputs={"x": Input("other")})
    assert g.inputs() == {"q", "other"}
    assert sorted(g.sinks()) == ["b", "side"]
    with pytest.raises(GraphError, match="output node 'zzz'"):
        TaskGraph("h", output="zzz").add("a", one, inputs={"x": Input("q")}).validate()
    with pytest.raises(GraphError, match="no nodes"):
        TaskGraph("empty").validate()


def test_map_checks_its_item_binding() -> None:
    g = TaskGraph("g").add("src", lambda: ["a"])
    with pytest.raises(GraphError, match="map item"):
        g.map("m", one, over="src", item="x", inputs={"x": Input("q")})
    with pytest.raises(GraphError, match="no input is bound to x"):
        g.map("m", one, over="src", item="other")
    g.map("m", one, over="src", item="x")
    assert g.nodes["m"].kind == "map" and g.predecessors("m") == ["src"]


def test_condition_may_only_read_the_node_inputs() -> None:
    g = TaskGraph("g").add("a", one, inputs={"x": Input("q")})
    with pytest.raises(GraphError, match="condition reads label"):
        g.add("b", one, inputs={"x": "a"}, when=lambda label: label == "yes")
    g.add("b", one, inputs={"x": "a"}, when=lambda x: x == "yes")


def test_retry_timeout_and_loop_settings_are_checked() -> None:
    with pytest.raises(ConfigError):  # the one retry policy, shared with remote backends
        Retry(attempts=0)
    with pytest.raises(GraphError):
        TaskGraph("g").add("a", one, inputs={"x": Input("q")}, timeout_s=0)
    with pytest.raises(GraphError):
        TaskGraph("g").add("a", one, inputs={"x": Input("q")}, retry="3")  # type: ignore[arg-type]
    with pytest.raises(GraphError):
        Loop(one, until=bool, max_iterations=0)
    assert TaskGraph("g").add("a", one, inputs={"x": Input("q")}, retry=3).nodes["a"].retry.attempts == 3


def test_fingerprint_follows_structure_and_steps() -> None:
    def build(template: str) -> TaskGraph:
        return TaskGraph("g").add("a", Generate(template), inputs={"q": Input("q")}).add("b", one, inputs={"x": "a"})

    assert build("Q: {q}").fingerprint() == build("Q: {q}").fingerprint()
    assert build("Q: {q}").fingerprint() != build("Question: {q}").fingerprint()
    assert build("Q: {q}").structure()["edges"] == [["a", "b"]]


def test_subgraph_parameters_are_the_inner_inputs() -> None:
    inner = TaskGraph("inner").add("x", one, inputs={"x": Input("topic")})
    with pytest.raises(GraphError, match="no input is bound to topic"):
        TaskGraph("outer").add("s", Subgraph(inner))
    outer = TaskGraph("outer").add("s", Subgraph(inner), inputs={"topic": Input("t")}).add("t2", one, inputs={"x": Ref("s", optional=True)})
    assert outer.validate().nodes["s"].kind == "subgraph"
