"""The scheduler on fake backends: ordering, concurrency, failures, timeouts, cancellation, resume."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from orchestrator.backends.fake import ScriptedBackend
from orchestrator.errors import (
    ConfigError,
    GraphError,
    NodeFailedError,
    NodeTimeoutError,
    RunCancelledError,
    StoreError,
    UnsafeResumeError,
)
from orchestrator.taskgraph.graph import Generate, Input, Loop, Ref, Retry, Subgraph, TaskGraph
from orchestrator.taskgraph.runs import RunEvent
from orchestrator.taskgraph.scheduler import RunControl, Runner
from orchestrator.taskgraph.store import RunStore


def run(fn: Callable[[], Awaitable[Any]]) -> Any:
    return anyio.run(fn)


def echo(x: Any) -> Any:
    return x


def test_fan_out_fan_in_and_outputs() -> None:
    g = TaskGraph("g")
    g.add("split", lambda text: text.split(), inputs={"text": Input("text")})
    g.map("upper", Generate("say {item}"), over="split")
    g.add("join", lambda parts: "+".join(parts), inputs={"parts": "upper"})
    backend = ScriptedBackend(lambda r: r.prompt.removeprefix("say ").upper())
    result = run(lambda: Runner(backend).run(g, {"text": "a b c"}))
    assert result.status == "done"
    assert result.output == "A+B+C"
    assert result.outputs["upper"] == ["A", "B", "C"]
    assert {"upper[0]", "upper[1]", "upper[2]"} <= set(result.nodes)
    assert result.critical_path == ("split", "upper", "join")


def test_a_slow_branch_does_not_delay_an_unrelated_one() -> None:
    finished: dict[str, float] = {}

    async def slow(x: str) -> str:
        await anyio.sleep(0.5)
        finished["slow"] = time.perf_counter()
        return x

    async def fast(x: str) -> str:
        finished["fast"] = time.perf_counter()
        return x

    async def after_fast(x: str) -> str:
        finished["after_fast"] = time.perf_counter()
        return x

    g = TaskGraph("g").add("slow", slow, inputs={"x": Input("q")}).add("fast", fast, inputs={"x": Input("q")})
    g.add("after_fast", after_fast, inputs={"x": "fast"}).add("join", lambda a, b: a + b, inputs={"a": "slow", "b": "after_fast"})
    result = run(lambda: Runner({}).run(g, {"q": "z"}))
    assert result.output == "zz"
    assert finished["after_fast"] < finished["slow"] - 0.3  # no superstep made it wait for "slow"


def test_concurrency_limit_per_backend() -> None:
    running = 0
    peak = 0

    def reply(_: Any) -> str:
        return "ok"

    class Counting(ScriptedBackend):
        async def generate(self, request):  # type: ignore[no-untyped-def]
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                await anyio.sleep(0.02)
                async for event in super().generate(request):
                    yield event
            finally:
                running -= 1

    g = TaskGraph("g").add("items", lambda: list(range(12))).map("gen", Generate("x {item}"), over="items")
    run(lambda: Runner(Counting(reply), limits={"default": 3}).run(g))
    assert peak == 3
    peak = 0
    run(lambda: Runner(Counting(reply)).run(g))
    assert peak == 12


def test_inputs_must_be_given_and_be_json() -> None:
    g = TaskGraph("g").add("a", echo, inputs={"x": Input("q")})
    with pytest.raises(GraphError, match="needs the input"):
        run(lambda: Runner({}).run(g, {}))
    with pytest.raises(ConfigError, match="JSON"):
        run(lambda: Runner({}).run(g, {"q": object()}))
    with pytest.raises(ConfigError, match="JSON"):
        run(lambda: Runner({}).run(g, {"q": float("nan")}))
    with pytest.raises(ConfigError, match="run id"):
        run(lambda: Runner({}).run(g, {"q": 1}, run_id="../etc"))


def test_unknown_backend_is_a_graph_error() -> None:
    g = TaskGraph("g").add("a", Generate("hi", backend="cloud"))
    with pytest.raises(GraphError, match="backend 'cloud'"):
        run(lambda: Runner(ScriptedBackend(["x"])).run(g))


def test_fail_fast_cancels_siblings_and_raises_typed_error() -> None:
    cancelled = []

    def boom() -> None:
        raise ValueError("broken tool")

    async def long() -> str:
        try:
            await anyio.sleep(5)
        except BaseException:
            cancelled.append(True)
            raise
        return "never"

    g = TaskGraph("g").add("boom", boom).add("long", long).add("after", echo, inputs={"x": "long"})
    t0 = time.perf_counter()
    with pytest.raises(NodeFailedError, match="'boom' raised ValueError: broken tool") as info:
        run(lambda: Runner({}).run(g))
    assert time.perf_counter() - t0 < 2
    assert cancelled == [True]
    assert isinstance(info.value.__cause__, ValueError) and info.value.node == "boom"


def test_continue_policy_runs_unrelated_branches_and_reports() -> None:
    def boom(x: str) -> str:
        raise RuntimeError("nope")

    g = TaskGraph("g").add("a", echo, inputs={"x": Input("q")}).add("bad", boom, inputs={"x": "a"})
    g.add("needs_bad", echo, inputs={"x": "bad"}).add("good", lambda x: x.upper(), inputs={"x": "a"})
    g.add("join", lambda x=None, y=None: [x, y], inputs={"x": Ref("bad", optional=True), "y": "good"})
    result = run(lambda: Runner({}, failure="continue").run(g, {"q": "v"}))
    assert result.status == "failed"
    assert set(result.errors) == {"bad"}
    assert result.nodes["needs_bad"].status == "skipped"
    assert result.outputs["join"] == [None, "V"]


class TopOfRange(random.Random):
    """Draws the top of every range: a full-jitter backoff waits its whole bound."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_retry_then_success_and_backoff() -> None:
    calls = []

    def flaky() -> str:
        calls.append(time.perf_counter())
        if len(calls) < 3:
            raise ConnectionError("try again")
        return "fine"

    events: list[RunEvent] = []
    g = TaskGraph("g").add("f", flaky, retry=Retry(attempts=3, backoff_s=0.05))
    result = run(lambda: Runner({}, rng=TopOfRange()).run(g, on_event=events.append))
    assert result.output == "fine" and len(calls) == 3 and result.nodes["f"].attempts == 3
    assert [e.kind for e in events].count("node_retrying") == 2
    assert calls[1] - calls[0] >= 0.02


def test_retry_only_on_the_listed_errors_and_never_on_config_errors() -> None:
    calls = []

    def wrong() -> None:
        calls.append(1)
        raise KeyError("k")

    g = TaskGraph("g").add("w", wrong, retry=Retry(attempts=5, backoff_s=0, on=(ConnectionError,)))
    with pytest.raises(NodeFailedError):
        run(lambda: Runner({}).run(g))
    assert len(calls) == 1

    def misconfigured() -> None:
        calls.append(2)
        raise ConfigError("cannot ever work")

    g = TaskGraph("g").add("m", misconfigured, retry=5)
    with pytest.raises(NodeFailedError, match="ConfigError"):
        run(lambda: Runner({}).run(g))
    assert calls.count(2) == 1


def test_timeout_per_attempt() -> None:
    async def stuck() -> None:
        await anyio.sleep(10)

    def blocking() -> None:
        time.sleep(1.0)

    for step in (stuck, blocking):
        g = TaskGraph("g").add("s", step, timeout_s=0.1, retry=Retry(attempts=2, backoff_s=0))
        t0 = time.perf_counter()
        with pytest.raises(NodeTimeoutError, match="timeout of 0.1 s") as info:
            run(lambda g=g: Runner({}).run(g))
        assert time.perf_counter() - t0 < 0.9
        assert isinstance(info.value, TimeoutError)


def test_generation_timeout_stops_a_streaming_backend() -> None:
    g = TaskGraph("g").add("gen", Generate("x", max_tokens=1000), timeout_s=0.2)
    backend = ScriptedBackend(lambda r: "word " * 500, delay=0.01)
    with pytest.raises(NodeTimeoutError):
        run(lambda: Runner(backend).run(g))


def test_conditional_branches_and_optional_join() -> None:
    g = TaskGraph("g").add("kind", lambda q: "math" if any(c.isdigit() for c in q) else "chat", inputs={"q": Input("q")})
    g.add("math", lambda q: f"calc({q})", inputs={"q": Input("q"), "kind": "kind"}, when=lambda kind: kind == "math")
    g.add("chat", lambda q: f"chat({q})", inputs={"q": Input("q"), "kind": "kind"}, when=lambda kind: kind == "chat")
    g.add("after_math", echo, inputs={"x": "math"})
    g.add("answer", lambda a=None, b=None: a or b, inputs={"a": Ref("math", optional=True), "b": Ref("chat", optional=True)})
    r1 = run(lambda: Runner({}).run(g, {"q": "2+2"}))
    r2 = run(lambda: Runner({}).run(g, {"q": "hello"}))
    assert r1.outputs["answer"] == "calc(2+2)" and r2.outputs["answer"] == "chat(hello)"
    assert r1.nodes["chat"].status == "skipped" and r2.nodes["math"].status == "skipped"
    assert r2.nodes["after_math"].status == "skipped" and r1.outputs["after_math"] == "calc(2+2)"


def test_bounded_loop() -> None:
    g = TaskGraph("g").add("count", Loop(lambda state: state + 1, until=lambda s: s >= 3, max_iterations=10), inputs={"state": Input("start")})
    assert run(lambda: Runner({}).run(g, {"start": 0})).output == 3
    g2 = TaskGraph("g").add("count", Loop(lambda state: state + 1, until=lambda s: False, max_iterations=4), inputs={"state": Input("start")})
    result = run(lambda: Runner({}).run(g2, {"start": 0}))
    assert result.output == 4 and result.nodes["count"].info["iterations"] == 4


def test_subgraph_built_at_run_time() -> None:
    def plan(steps: list[str]) -> TaskGraph:
        sub = TaskGraph("plan")
        for i, s in enumerate(steps):
            sub.add(f"s{i}", lambda x, s=s: f"{s}:{x}", inputs={"x": Input("x")})
        sub.add("all", lambda **kw: [kw[k] for k in sorted(kw)], inputs={f"s{i}": f"s{i}" for i in range(len(steps))})
        return sub

    g = TaskGraph("g").add("steps", lambda: ["a", "b"]).add("exec", Subgraph(lambda steps, x: plan(steps)), inputs={"steps": "steps", "x": Input("x")})
    result = run(lambda: Runner({}).run(g, {"x": 1}))
    assert result.output == ["a:1", "b:1"]
    assert "exec/s0" in result.nodes and "exec/all" in result.nodes


def test_non_json_output_is_a_typed_failure() -> None:
    g = TaskGraph("g").add("bad", lambda: {1, 2})
    with pytest.raises(NodeFailedError, match="not JSON"):
        run(lambda: Runner({}).run(g))


def test_outputs_are_handed_on_as_json() -> None:
    g = TaskGraph("g").add("t", lambda: (1, 2)).add("see", lambda x: type(x).__name__, inputs={"x": "t"})
    assert run(lambda: Runner({}).run(g)).output == "list"  # the same as after a resume


def test_cancel_one_branch_reaches_the_backend_and_the_rest_finishes() -> None:
    backend = ScriptedBackend(lambda r: "tok " * 200, delay=0.01)
    control = RunControl()
    events: list[RunEvent] = []
    g = TaskGraph("g").add("long", Generate("a", max_tokens=500)).add("short", Generate("b", max_tokens=3))
    g.add("after_long", echo, inputs={"x": "long"})

    def on_event(e: RunEvent) -> None:
        events.append(e)
        if e.kind == "token" and e.node == "long" and sum(x.node == "long" and x.kind == "token" for x in events) == 5:
            control.cancel_node("long")

    result = run(lambda: Runner(backend).run(g, on_event=on_event, control=control))
    assert result.nodes["long"].status == "cancelled"
    assert result.nodes["after_long"].status == "skipped"
    assert result.outputs["short"] == "tok tok tok"
    assert sum(e.node == "long" and e.kind == "token" for e in events) == 5  # stopped at the next token


def test_cancel_the_whole_run(tmp_path: Path) -> None:
    control = RunControl()
    store = RunStore(tmp_path / "runs.sqlite")
    graph = TaskGraph("g").add("a", _sleep5).add("b", _sleep5).add("quick", lambda: "kept")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_later, control)
            with pytest.raises(RunCancelledError, match="resume it"):
                await Runner({}, store=store).run(graph, control=control, run_id="c")

    t0 = time.perf_counter()
    run(main)
    assert time.perf_counter() - t0 < 3
    assert store.run("c").status == "cancelled" and store.nodes("c")["quick"].output == "kept"


async def _sleep5() -> None:
    await anyio.sleep(5)


async def _cancel_later(control: RunControl) -> None:
    await anyio.sleep(0.1)
    control.cancel()


def test_a_broken_event_callback_does_not_break_the_run(caplog: pytest.LogCaptureFixture) -> None:
    def bad(_: RunEvent) -> None:
        raise RuntimeError("ui bug")

    result = run(lambda: Runner({}).run(TaskGraph("g").add("a", lambda: 1), on_event=bad))
    assert result.output == 1 and "on_event callback raised" in caplog.text


# -- durability ----------------------------------------------------------------


def test_resume_reruns_only_uncommitted_nodes(tmp_path: Path) -> None:
    calls: list[str] = []
    fail = {"b": True}

    def a() -> str:
        calls.append("a")
        return "A"

    def b(x: str) -> str:
        calls.append("b")
        if fail["b"]:
            raise RuntimeError("crash")
        return x + "B"

    def build() -> TaskGraph:
        return TaskGraph("g").add("a", a).add("b", b, inputs={"x": "a"})

    store = RunStore(tmp_path / "runs.sqlite")
    with pytest.raises(NodeFailedError) as info:
        run(lambda: Runner({}, store=store).run(build(), run_id="r1"))
    assert info.value.run_id == "r1" and store.run("r1").status == "failed"
    fail["b"] = False
    result = run(lambda: Runner({}, store=RunStore(tmp_path / "runs.sqlite")).resume("r1", build()))
    assert result.output == "AB"
    assert calls == ["a", "b", "b"]  # "a" was committed and not run again
    assert result.nodes["a"].resumed and store.run("r1").status == "done"


def test_resume_refuses_a_different_graph_and_unknown_runs(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    run(lambda: Runner({}, store=store).run(TaskGraph("g").add("a", lambda: 1), run_id="r"))
    with pytest.raises(GraphError, match="different graph"):
        run(lambda: Runner({}, store=store).resume("r", TaskGraph("g").add("other", lambda: 1)))
    with pytest.raises(StoreError, match="no run 'nope'"):
        run(lambda: Runner({}, store=store).resume("nope", TaskGraph("g").add("a", lambda: 1)))
    with pytest.raises(StoreError, match="already exists"):
        run(lambda: Runner({}, store=store).run(TaskGraph("g").add("a", lambda: 1), run_id="r"))


def test_a_side_effect_that_may_have_happened_is_never_repeated_silently(tmp_path: Path) -> None:
    sent: list[str] = []
    db = tmp_path / "runs.sqlite"

    def send_email(to: str) -> str:
        sent.append(to)
        return "sent"

    def build() -> TaskGraph:
        return TaskGraph("g").add("send", send_email, inputs={"to": Input("to")}, idempotent=False)

    # Simulate a crash after the "started" mark and before the commit.
    store = RunStore(db)
    graph = build()
    store.create_run("r", graph.name, graph.fingerprint(), {"to": "x@example.org"}, structure=graph.structure())
    store.mark_started("r", "send", 1)
    with pytest.raises(UnsafeResumeError, match="may have run"):
        run(lambda: Runner({}, store=RunStore(db)).resume("r", build()))
    assert sent == []
    result = run(lambda: Runner({}, store=RunStore(db)).resume("r", build(), rerun_uncertain=["send"]))
    assert result.output == "sent" and sent == ["x@example.org"]
    # Once committed, resuming again never sends again.
    run(lambda: Runner({}, store=RunStore(db)).resume("r", build()))
    assert sent == ["x@example.org"]


def test_map_instances_resume_one_by_one(tmp_path: Path) -> None:
    done: list[int] = []
    broken = {3}

    def work(item: int) -> int:
        if item in broken:
            raise RuntimeError("flaky")
        done.append(item)
        return item * 10

    def build() -> TaskGraph:
        return TaskGraph("g").add("items", lambda: [0, 1, 2, 3, 4]).map("w", work, over="items")

    db = tmp_path / "runs.sqlite"
    first = run(lambda: Runner({}, store=RunStore(db), failure="continue").run(build(), run_id="m"))
    assert first.status == "failed" and first.nodes["w[3]"].status == "failed" and first.nodes["w"].status == "failed"
    assert sorted(done) == [0, 1, 2, 4]
    broken.clear()
    result = run(lambda: Runner({}, store=RunStore(db)).resume("m", build()))
    assert result.output == [0, 10, 20, 30, 40]
    assert sorted(done) == [0, 1, 2, 3, 4]  # only instance 3 ran again


def test_loop_resumes_from_its_last_iteration(tmp_path: Path) -> None:
    seen: list[int] = []
    stop_at = {"value": 2}

    def step(state: int) -> int:
        if state == stop_at["value"]:
            raise RuntimeError("crash in iteration")
        seen.append(state)
        return state + 1

    def build() -> TaskGraph:
        return TaskGraph("g").add("loop", Loop(step, until=lambda s: s >= 5, max_iterations=10), inputs={"state": Input("s")})

    db = tmp_path / "runs.sqlite"
    with pytest.raises(NodeFailedError):
        run(lambda: Runner({}, store=RunStore(db)).run(build(), {"s": 0}, run_id="l"))
    stop_at["value"] = -1
    assert run(lambda: Runner({}, store=RunStore(db)).resume("l", build())).output == 5
    assert seen == [0, 1, 2, 3, 4]  # iterations 0 and 1 were not repeated


def test_faults_before_a_node_starts_are_recorded(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs.sqlite")
    g = TaskGraph("g").add("notalist", lambda: "text").map("m", echo, over="notalist", item="x")
    g.add("cond", echo, inputs={"x": Input("q")}, when=lambda x: 1 / 0)
    result = run(lambda: Runner({}, store=store, failure="continue").run(g, {"q": 1}, run_id="f"))
    assert result.status == "failed"
    assert "maps over a str" in result.errors["m"] and "ZeroDivisionError" in result.errors["cond"]
    assert store.nodes("f")["m"].status == "failed"


def test_fail_fast_records_what_it_stopped(tmp_path: Path) -> None:
    async def slow(item: int) -> int:
        if item == 1:
            raise RuntimeError("bad item")
        await anyio.sleep(5)
        return item

    store = RunStore(tmp_path / "runs.sqlite")
    g = TaskGraph("g").add("items", lambda: [0, 1, 2]).map("m", slow, over="items").add("other", _sleep5)
    with pytest.raises(NodeFailedError, match="bad item"):
        run(lambda: Runner({}, store=store).run(g, run_id="ff"))
    nodes = store.nodes("ff")
    assert nodes["m[1]"].status == "failed"
    assert {nodes[k].status for k in ("m[0]", "m[2]", "m", "other")} == {"cancelled"}


def test_cancelling_a_branch_inside_a_subgraph_cancels_the_subgraph_node() -> None:
    control = RunControl()

    async def upper(x: str) -> str:
        control.cancel_node("polish/upper")
        await anyio.sleep(1)
        return x.upper()

    inner = TaskGraph("inner").add("upper", upper, inputs={"x": Input("x")})
    g = TaskGraph("g").add("polish", Subgraph(inner), inputs={"x": Input("x")}).add("free", lambda: "ok")
    result = run(lambda: Runner({}).run(g, {"x": "a"}, control=control))
    assert result.nodes["polish/upper"].status == "cancelled" and result.nodes["polish"].status == "cancelled"
    assert result.status == "done" and result.outputs["free"] == "ok"
