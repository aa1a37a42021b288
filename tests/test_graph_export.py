"""Graph pictures: Mermaid text, SVG and PNG of real runs stored on disk."""

import re
import sys
import xml.etree.ElementTree as ET
from itertools import pairwise

import anyio
import pytest

from orchestrator.backends.fake import ScriptedBackend
from orchestrator.errors import ConfigError, NodeFailedError, StoreError
from orchestrator.taskgraph.graph import Generate, Input, Loop, Ref, Subgraph, TaskGraph
from orchestrator.taskgraph.export import run_png, run_svg, show_run, to_mermaid
from orchestrator.taskgraph.scheduler import RunControl, Runner
from orchestrator.taskgraph.store import RunStore

pytestmark = pytest.mark.timeout(60)

HOSTILE = 'bad "x" <b>&amp; `y` #35; %% ]]> end\x1b[0m\nsecond line'
SVG = "{http://www.w3.org/2000/svg}"


def word_count(item):
    if item == "boom":
        raise ValueError(HOSTILE)
    return len(item)


def build() -> TaskGraph:
    """plan (generate) -> split -> count (map) -> long | short (conditional) -> report,
    plus a subgraph and a loop hanging off plan."""
    inner = TaskGraph("inner")
    inner.add("upper", lambda text: text.upper(), inputs={"text": Input("text")})
    inner.add("size", lambda text: len(text), inputs={"text": "upper"})
    g = TaskGraph("demo", output="report")
    g.add("plan", Generate("Topics about {q}:"), inputs={"q": Input("q")})
    g.add("split", lambda text: [t.strip() for t in text.split(",")], inputs={"text": "plan"})
    g.map("count", word_count, over="split")
    g.add("long", lambda counts: sum(counts), inputs={"counts": "count"}, when=lambda counts: len(counts) > 5)
    g.add("short", lambda counts: max(counts), inputs={"counts": "count"}, when=lambda counts: len(counts) <= 5)
    g.add("polish", Subgraph(inner), inputs={"text": "plan"})
    g.add("grow", Loop(lambda state: state + "!", until=lambda s: s.count("!") >= 3), inputs={"state": "plan"})
    g.add("report", lambda short, long, polish, grow: [short, long, polish, grow],
          inputs={"short": Ref("short", optional=True), "long": Ref("long", optional=True), "polish": "polish", "grow": "grow"})
    return g


def run_graph(tmp_path, plan: str, *, failure="continue", run_id="r1", on_event=None, control=None):
    """Runs ``build()`` with the plan's reply ``plan``; returns (store, run_id, result or error)."""
    store = RunStore(tmp_path / "runs.db")
    runner = Runner(ScriptedBackend(lambda request: plan), store=store, failure=failure)

    async def main():
        return await runner.run(build(), {"q": "cats"}, run_id=run_id, on_event=on_event, control=control)

    try:
        outcome = anyio.run(main)
    except NodeFailedError as exc:
        outcome = exc
    return store, run_id, outcome


def parse_mermaid(text: str) -> tuple[dict[str, str], set[tuple[str, str]], dict[str, str]]:
    """Checks every line against the small part of Mermaid's grammar that ``to_mermaid`` writes;
    returns labels by id, edges by id and each id's class."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    labels, edges, classes = {}, set(), {}
    # Inside the quotes: plain characters, #code; entities and line breaks, nothing else.
    shape = r'(\[|\(\[|\[/|\[\[|\{\{)"((?:[A-Za-z0-9 _\-.,:/()[\]+=*!?@\']|#\d+;|<br/>)*)"(\]|\]\)|/\]|\]\]|\}\})'
    for line in lines[1:]:
        if m := re.fullmatch(r"    (n\d+)" + shape, line):
            assert {"[": "]", "([": "])", "[/": "/]", "[[": "]]", "{{": "}}"}[m[2]] == m[4], line
            assert m[1] not in labels
            labels[m[1]] = m[3]
        elif m := re.fullmatch(r"    (n\d+) --> (n\d+)", line):
            edges.add((m[1], m[2]))
        elif re.fullmatch(r"    classDef st_[a-z]+ fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},color:#[0-9a-f]{6}(,stroke-dasharray:4 3)?", line):
            continue
        elif m := re.fullmatch(r"    class ((?:n\d+,)*n\d+) (st_[a-z]+)", line):
            for node_id in m[1].split(","):
                assert node_id not in classes
                classes[node_id] = m[2]
        else:
            raise AssertionError(f"not a line to_mermaid should write: {line!r}")
    assert {a for e in edges for a in e} <= set(labels)
    assert set(classes) <= set(labels)
    return labels, edges, classes


def unescape(label: str) -> list[str]:
    return [re.sub(r"#(\d+);", lambda m: chr(int(m[1])), part) for part in label.split("<br/>")]


def by_name(labels: dict[str, str]) -> dict[str, str]:
    return {unescape(label)[0]: node_id for node_id, label in labels.items()}


def test_mermaid_of_a_run_shows_every_node_edge_status_and_instance_count(tmp_path):
    store, run_id, result = run_graph(tmp_path, "a, bb, ccc")
    assert result.status == "done"
    record, nodes = store.run(run_id), store.nodes(run_id)
    labels, edges, classes = parse_mermaid(to_mermaid(record.structure, nodes))

    ids = by_name(labels)
    assert set(ids) == {"plan", "split", "count", "long", "short", "polish", "grow", "report"}
    assert edges == {(ids[a], ids[b]) for a, b in build().dag.edges}
    assert {name: classes[i] for name, i in ids.items()} == {**{n: "st_done" for n in ids}, "long": "st_skipped"}
    text = {name: unescape(labels[i]) for name, i in ids.items()}
    assert text["count"][1].startswith("done, ") and text["count"][1].endswith("s")
    assert text["count"][2] == "3 instances, 3 done"
    assert text["grow"][2] == "3 iterations"
    assert text["polish"][2] == "2 inner nodes, 2 done"
    assert text["long"][1:] == ["skipped", "its condition is false"]
    # Shapes follow the kinds.
    for name, opening in {"plan": "([", "split": "[", "count": "[/", "polish": "[[", "grow": "{{"}.items():
        assert f"    {ids[name]}{opening}\"" in to_mermaid(record.structure, nodes)


def test_mermaid_of_a_failed_run_escapes_the_error_and_counts_finished_instances(tmp_path):
    store, run_id, result = run_graph(tmp_path, "a, boom, ccc")
    assert result.status == "failed"
    record, nodes = store.run(run_id), store.nodes(run_id)
    text = to_mermaid(record.structure, nodes)
    labels, _, classes = parse_mermaid(text)

    ids = by_name(labels)
    status = {name: classes[i] for name, i in ids.items()}
    assert status["count"] == "st_failed"
    assert status["short"] == status["long"] == "st_skipped"
    assert status["polish"] == status["grow"] == status["report"] == "st_done"  # report reads short and long as optional
    count = unescape(labels[ids["count"]])
    assert count[2] == "3 instances, 2 done"
    assert count[3] == "node 'count[1]' raised ValueError: bad \"x\" <b>&amp; `y` #35; %% ]]> end\ufffd[0m"  # readable again
    assert "second line" not in text
    for raw in ('"x"', "<b>", "`", "%%", "\x1b"):
        assert raw not in text


def test_mermaid_of_a_structure_alone_and_of_awkward_names(tmp_path):
    g = TaskGraph("awkward")
    names = ["end", "graph", "a-b", "o", "x", "1", "--o", "A---oB", "x.y", "_", "-", ".", "--x", "a--", "subgraph", "click", "call",
             "style", "class", "classDef", "default", "flowchart", "TD"]
    g.add(names[0], lambda: 1)
    for before, name in pairwise(names):
        g.add(name, lambda v: v, inputs={"v": before})
    labels, edges, classes = parse_mermaid(to_mermaid(g.structure()))
    ids = by_name(labels)
    assert set(ids) == set(names) and classes == {}
    assert edges == {(ids[a], ids[b]) for a, b in pairwise(names)}

    # A structure read from a file can hold anything; nothing in it escapes its quotes.
    hostile = {"name": "h", "nodes": [{"name": 'x"]; click x call alert(1) %%', "kind": "<script>"}], "edges": []}
    labels, _, _ = parse_mermaid(to_mermaid(hostile))
    assert unescape(next(iter(labels.values()))) == ['x"]; click x call alert(1) %%']


def test_mermaid_marks_nodes_that_never_ran_and_cancelled_branches(tmp_path):
    store, run_id, result = run_graph(tmp_path, "boom", failure="fail_fast")
    assert isinstance(result, NodeFailedError)
    labels, _, classes = parse_mermaid(to_mermaid(store.run(run_id).structure, store.nodes(run_id)))
    ids = by_name(labels)
    assert classes[ids["split"]] == "st_done" and classes[ids["report"]] == "st_notrun"
    assert unescape(labels[ids["report"]]) == ["report", "not run"]
    # The map's instances are counted from their own records (fail-fast stopped the map itself).
    assert unescape(labels[ids["count"]])[-1] == "1 instance, 0 done"

    control = RunControl()

    def cancel_the_loop(event):
        if event.kind == "node_started" and event.node == "grow":
            control.cancel_node(event.node)

    store, run_id, _ = run_graph(tmp_path / "b", "a", on_event=cancel_the_loop, control=control)
    labels, _, classes = parse_mermaid(to_mermaid(store.run(run_id).structure, store.nodes(run_id)))
    ids = by_name(labels)
    assert (classes[ids["grow"]], classes[ids["report"]], classes[ids["polish"]]) == ("st_cancelled", "st_skipped", "st_done")
    assert unescape(labels[ids["report"]])[1:] == ["skipped", "input 'grow' is cancelled"]


def test_svg_parses_and_shows_every_key_on_a_time_axis(tmp_path):
    store, run_id, _ = run_graph(tmp_path, "a, boom, ccc", run_id="7-a.b_c")
    record, nodes = store.run(run_id), store.nodes(run_id)
    svg = run_svg(record, nodes)
    root = ET.fromstring(svg)
    assert root.tag == SVG + "svg"

    bars = {b.get("data-key"): b for b in root.iter(SVG + "rect") if b.get("class") == "bar"}
    assert set(bars) == set(nodes) and {"count[0]", "count[1]", "polish/upper", "grow#2", "long"} <= set(bars)
    assert {k: b.get("data-status") for k, b in bars.items()} == {k: r.status for k, r in nodes.items()}
    shown = set(root.itertext())
    assert set(nodes) <= shown
    boxes = {g.get("data-name") for g in root.iter(SVG + "g") if g.get("class") == "node"}
    assert boxes == {n["name"] for n in record.structure["nodes"]}
    # The error survives, escaped, in the failed instance's tooltip (the control character replaced).
    titles = [t.text for t in root.iter(SVG + "title")]
    assert any(HOSTILE.replace("\x1b", "\ufffd") in t for t in titles if t.startswith("count[1]: failed"))
    # x follows time: a node starts no earlier than the end of the one whose output it reads.
    x = {k: (float(b.get("x")), float(b.get("width"))) for k, b in bars.items()}
    for before, after in [("plan", "split"), ("split", "count[0]"), ("polish/upper", "polish/size"), ("grow#0", "grow#1")]:
        assert x[after][0] >= x[before][0] + x[before][1] - 0.5, (before, after)
    arrows = [line for line in root.iter(SVG + "line") if line.get("marker-end")]
    assert len(arrows) == len(record.structure["edges"])


def test_png_starts_with_the_png_signature(tmp_path):
    store, run_id, _ = run_graph(tmp_path, "a, boom, ccc")
    path = run_png(store.run(run_id), store.nodes(run_id), tmp_path / "run.png")
    assert path == tmp_path / "run.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_png_without_matplotlib_asks_for_the_plots_extra(tmp_path, monkeypatch):
    store, run_id, _ = run_graph(tmp_path, "a")
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"plots"):
        run_png(store.run(run_id), store.nodes(run_id), tmp_path / "run.png")
    assert not (tmp_path / "run.png").exists()


def test_show_run_in_each_format(tmp_path):
    store, run_id, _ = run_graph(tmp_path, "a, bb")
    assert show_run(store, run_id, "mermaid", None) == to_mermaid(store.run(run_id).structure, store.nodes(run_id))
    svg_path = tmp_path / "run.svg"
    svg = show_run(store, run_id, "svg", svg_path)
    assert svg_path.read_text(encoding="utf-8") == svg and ET.fromstring(svg).tag == SVG + "svg"
    png = show_run(store, run_id, "png", tmp_path / "run.png")
    assert png == str(tmp_path / "run.png") and (tmp_path / "run.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ConfigError, match="out"):
        show_run(store, run_id, "png", None)
    with pytest.raises(ConfigError, match="format"):
        show_run(store, run_id, "dot", None)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        show_run(store, "nope", "svg", None)
