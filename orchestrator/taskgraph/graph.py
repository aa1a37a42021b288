"""Task graphs: nodes are steps, edges carry one node's output to another's input.

A ``TaskGraph`` is plain data on a ``networkx.DiGraph``; ``orchestrator.taskgraph.scheduler`` runs it.
Everything that can be checked before running is checked when a node is added or when the
graph is validated: duplicate names, unbound parameters, unknown nodes, cycles.

    g = TaskGraph("answer")
    g.add("draft", Generate("Q: {question}\\nA:"), inputs={"question": Input("question")})
    g.add("words", lambda text: len(text.split()), inputs={"text": "draft"})

A step is one of: a plain function (sync or async; its parameters are its inputs), a
``Generate`` (a prompt template sent to a backend), a ``Subgraph`` (a graph run as one node,
possibly built at run time from the inputs) or a ``Loop`` (a step repeated on a state,
bounded). ``TaskGraph.map`` fans a step out over a list produced at run time. ``Retry``
(how often a node is tried) is the one retry policy, shared with remote backends
(``orchestrator.backends.retry``); the binding checks live in ``taskgraph.binding``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import networkx as nx

from orchestrator.backends.retry import Retry
from orchestrator.errors import GraphError
from orchestrator.taskgraph.binding import check_binding, condition_only, function_parameters, template_fields
from orchestrator.types import ChatMessage, GenerationRequest, SamplingParams

__all__ = ["Generate", "Input", "Loop", "Node", "Ref", "Retry", "Source", "Step", "Subgraph", "TaskGraph"]

_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_-.")
_MAX_NAME = 100


@dataclass(frozen=True)
class Ref:
    """The output of another node. ``optional`` inputs receive ``None`` when that node was
    skipped (a branch not taken), instead of skipping this node too."""

    node: str
    optional: bool = False


@dataclass(frozen=True)
class Input:
    """A value given to the run: ``runner.run(graph, {"question": ...})``."""

    name: str


Source = Union[Ref, Input]


@dataclass(frozen=True)
class Generate:
    """A generation step: ``prompt`` is a ``str.format`` template over the node's inputs
    (plain ``{name}`` fields only), or a function of the inputs returning the prompt text or
    a whole ``GenerationRequest``. The output is the text (a list of texts when ``n > 1``).

    ``backend`` names one of the runner's backends; ``chat`` sends the prompt as a user message
    (after ``system``, if given) through the model's chat template.
    """

    prompt: str | Callable[..., str | GenerationRequest]
    backend: str = "default"
    max_tokens: int = 256
    sampling: SamplingParams = SamplingParams()
    stop: tuple[str, ...] = ()
    grammar: str | None = None
    n: int = 1
    chat: bool = False
    system: str | None = None

    def parameters(self) -> tuple[set[str], set[str]]:
        """(required, optional) input names."""
        if callable(self.prompt):
            return function_parameters(self.prompt)
        return template_fields(self.prompt), set()

    def request(self, inputs: Mapping[str, Any]) -> GenerationRequest:
        if callable(self.prompt):
            made = self.prompt(**inputs)
            if isinstance(made, GenerationRequest):
                return made
            if not isinstance(made, str):
                raise GraphError(f"a Generate prompt function must return str or GenerationRequest, not {type(made).__name__}")
            text = made
        else:
            text = self.prompt.format_map({k: _as_text(v) for k, v in inputs.items()})
        common = {"max_tokens": self.max_tokens, "sampling": self.sampling, "stop": self.stop, "grammar": self.grammar, "n": self.n}
        if self.chat:
            messages = ([ChatMessage(role="system", content=self.system)] if self.system else []) + [ChatMessage(role="user", content=text)]
            return GenerationRequest(messages=tuple(messages), **common)
        return GenerationRequest(prompt=text, **common)


@dataclass(frozen=True)
class Subgraph:
    """Runs a graph as one node: the node's inputs are the subgraph's ``Input`` values and its
    output is the subgraph's output. ``graph`` may be a function of the inputs that builds the
    graph at run time (a plan turned into a DAG); it must build the same graph again on resume.
    """

    graph: TaskGraph | Callable[..., TaskGraph]

    def parameters(self) -> tuple[set[str], set[str]]:
        if isinstance(self.graph, TaskGraph):
            return self.graph.inputs(), set()
        return function_parameters(self.graph)

    def build(self, inputs: Mapping[str, Any]) -> TaskGraph:
        graph = self.graph if isinstance(self.graph, TaskGraph) else self.graph(**inputs)
        if not isinstance(graph, TaskGraph):
            raise GraphError(f"a Subgraph builder must return a TaskGraph, not {type(graph).__name__}")
        return graph


@dataclass(frozen=True)
class Loop:
    """Repeats ``step`` on a state until ``until(state)`` is true or ``max_iterations`` ran.

    ``step`` takes the state as its ``state_input`` parameter (plus any other inputs of the node)
    and returns the next state. The node's output is the last state. Every iteration is
    committed on its own, so a resumed run continues from the last finished iteration.
    """

    step: Callable[..., Any] | Generate | Subgraph
    until: Callable[[Any], bool]
    max_iterations: int = 5
    state_input: str = "state"

    def __post_init__(self) -> None:
        if not 1 <= self.max_iterations <= 10_000:
            raise GraphError(f"Loop.max_iterations must be 1-10000, not {self.max_iterations}")
        if isinstance(self.step, Loop):
            raise GraphError("a Loop's step cannot itself be a Loop; wrap it in a Subgraph")

    def parameters(self) -> tuple[set[str], set[str]]:
        return _step_parameters(self.step)


Step = Union[Callable[..., Any], Generate, Subgraph, Loop]


@dataclass(frozen=True)
class Node:
    """One node as the scheduler sees it. Build nodes with ``TaskGraph.add`` and ``map``."""

    name: str
    step: Step
    inputs: Mapping[str, Source]
    retry: Retry = Retry()
    timeout_s: float | None = None
    idempotent: bool = True
    when: Callable[..., bool] | None = None
    limit: str | None = None
    map_over: Source | None = None
    map_item: str = "item"
    condition_only: frozenset[str] = field(default_factory=frozenset)

    @property
    def kind(self) -> str:
        if self.map_over is not None:
            return "map"
        return _kind(self.step)

    @property
    def limit_key(self) -> str | None:
        """The concurrency limit this node counts against: its backend for generation."""
        if self.limit is not None:
            return self.limit
        step = self.step.step if isinstance(self.step, Loop) else self.step
        return step.backend if isinstance(step, Generate) else None

    def sources(self) -> Iterator[Source]:
        yield from self.inputs.values()
        if self.map_over is not None:
            yield self.map_over


class TaskGraph:
    """A DAG of named steps. ``output`` names the node whose value is the run's output
    (default: the only sink; with several sinks the output is a dict of their values)."""

    def __init__(self, name: str, *, output: str | None = None) -> None:
        _check_name(name, "graph")
        self.name = name
        self.output = output
        self._g: nx.DiGraph = nx.DiGraph()
        self._nodes: dict[str, Node] = {}
        self._checked: tuple[str, str] | None = None  # (fingerprint, "valid") once validated; any insert clears it

    # -- building ----------------------------------------------------------
    def add(
        self,
        name: str,
        step: Step,
        *,
        inputs: Mapping[str, str | Source] | None = None,
        retry: Retry | int | None = None,
        timeout_s: float | None = None,
        idempotent: bool = True,
        when: Callable[..., bool] | None = None,
        limit: str | None = None,
    ) -> TaskGraph:
        """Adds a node. ``inputs`` maps each parameter of the step to a node name, a ``Ref``
        or an ``Input``. ``when`` (a function of the same inputs) makes the node conditional: when
        it returns false the node is skipped, and so are the nodes that need its output.
        ``idempotent=False`` marks a side effect: a resumed run never repeats it silently."""
        bound = _normalise_inputs(name, inputs)
        required, optional = _step_parameters(step)
        only_when = frozenset() if when is None else condition_only(name, when, set(bound), required, optional)
        check_binding(name, required, optional, set(bound) - only_when)
        node = Node(name, step, bound, _retry(retry), _timeout(timeout_s), idempotent, when, limit, condition_only=only_when)
        return self._insert(node)

    def map(
        self,
        name: str,
        step: Step,
        *,
        over: str | Source,
        item: str = "item",
        inputs: Mapping[str, str | Source] | None = None,
        retry: Retry | int | None = None,
        timeout_s: float | None = None,
        idempotent: bool = True,
        limit: str | None = None,
    ) -> TaskGraph:
        """Fans ``step`` out over the list that ``over`` produces at run time: one instance per
        element, bound to the parameter ``item``, all started at once (within the concurrency
        limits). The output is the list of the instances' outputs, in order."""
        bound = _normalise_inputs(name, inputs)
        if item in bound:
            raise GraphError(f"node {name!r}: {item!r} is the map item; it cannot also be an input")
        required, optional = _step_parameters(step)
        check_binding(name, required, optional, set(bound) | {item})
        over_src = _source(name, over)
        node = Node(name, step, bound, _retry(retry), _timeout(timeout_s), idempotent, None, limit, over_src, item)
        return self._insert(node)

    def _insert(self, node: Node) -> TaskGraph:
        _check_name(node.name, "node")
        if node.name in self._nodes:
            raise GraphError(f"graph {self.name!r} already has a node {node.name!r}")
        self._nodes[node.name] = node
        self._checked = None
        self._g.add_node(node.name)
        for src in node.sources():
            if isinstance(src, Ref):
                if src.node == node.name:
                    raise GraphError(f"node {node.name!r} takes its own output as input (a cycle); use a Loop")
                self._g.add_edge(src.node, node.name)
        return self

    # -- reading -----------------------------------------------------------
    @property
    def nodes(self) -> Mapping[str, Node]:
        return self._nodes

    @property
    def dag(self) -> nx.DiGraph:
        """A copy of the graph's structure (node names only)."""
        return self._g.copy()

    def predecessors(self, name: str) -> list[str]:
        return list(self._g.predecessors(name))

    def successors(self, name: str) -> list[str]:
        return list(self._g.successors(name))

    def inputs(self) -> set[str]:
        """Names of the run inputs (``Input``) the graph reads."""
        return {s.name for n in self._nodes.values() for s in n.sources() if isinstance(s, Input)}

    def sinks(self) -> list[str]:
        return [n for n in self._nodes if self._g.out_degree(n) == 0]

    def validate(self) -> TaskGraph:
        """Checks the whole graph: unknown nodes, cycles, the output node. Raises ``GraphError``.
        The answer is kept until the next node is added, so running a graph again costs nothing."""
        if self._checked is not None:
            return self
        if not self._nodes:
            raise GraphError(f"graph {self.name!r} has no nodes")
        for node in self._nodes.values():
            for src in node.sources():
                if isinstance(src, Ref) and src.node not in self._nodes:
                    raise GraphError(f"node {node.name!r} reads the output of {src.node!r}, which is not a node of graph {self.name!r}")
        if not nx.is_directed_acyclic_graph(self._g):  # linear; find_cycle only to name the cycle
            cycle = nx.find_cycle(self._g)
            path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
            raise GraphError(f"graph {self.name!r} has a cycle: {path}; a task graph must be acyclic (use a Loop node for bounded repetition)")
        if self.output is not None and self.output not in self._nodes:
            raise GraphError(f"graph {self.name!r}: output node {self.output!r} does not exist")
        self._checked = (self.fingerprint(), "valid")
        return self

    def structure(self) -> dict[str, Any]:
        """The graph as JSON data (names, kinds, edges), stored with each run for pictures."""
        return {
            "name": self.name,
            "output": self.output,
            "nodes": [{"name": n.name, "kind": n.kind} for n in self._nodes.values()],
            "edges": [list(e) for e in self._g.edges],
        }

    def fingerprint(self) -> str:
        """A hash of the graph's structure and steps; a run resumes only on the same fingerprint."""
        if self._checked is not None:
            return self._checked[0]
        parts = []
        for name in sorted(self._nodes):
            node = self._nodes[name]
            parts.append([name, node.kind, _describe(node.step), sorted((k, _describe_source(s)) for k, s in node.inputs.items()),
                          _describe_source(node.map_over) if node.map_over else None, node.map_item, node.idempotent])
        blob = json.dumps([self.name, self.output, parts], sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, name: object) -> bool:
        return name in self._nodes

    def __repr__(self) -> str:
        return f"TaskGraph({self.name!r}, {len(self._nodes)} nodes)"


# -- helpers -----------------------------------------------------------------


def _kind(step: Step) -> str:
    if isinstance(step, Generate):
        return "generate"
    if isinstance(step, Subgraph):
        return "subgraph"
    if isinstance(step, Loop):
        return "loop"
    return "function"


def _check_name(name: object, what: str) -> None:
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME or not set(name) <= _NAME_CHARS:
        raise GraphError(f"{what} name {name!r} must be 1-{_MAX_NAME} characters of letters, digits, '_', '-' or '.'")


def _source(node: str, value: object) -> Source:
    if isinstance(value, Ref | Input):
        return value
    if isinstance(value, str):
        return Ref(value)
    raise GraphError(f"node {node!r}: an input must be a node name, Ref or Input, not {type(value).__name__}")


def _normalise_inputs(node: str, inputs: Mapping[str, str | Source] | None) -> dict[str, Source]:
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise GraphError(f"node {node!r}: inputs must be a mapping of parameter name to source")
    return {str(k): _source(node, v) for k, v in inputs.items()}


def _retry(retry: Retry | int | None) -> Retry:
    if retry is None:
        return Retry()
    if isinstance(retry, Retry):
        return retry
    if isinstance(retry, int) and not isinstance(retry, bool):
        return Retry(attempts=retry)
    raise GraphError(f"retry must be a Retry or a number of attempts, not {retry!r}")


def _timeout(timeout_s: float | None) -> float | None:
    if timeout_s is not None and not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise GraphError(f"timeout_s must be a positive number of seconds, not {timeout_s!r}")
    return timeout_s


def _step_parameters(step: Step) -> tuple[set[str], set[str]]:
    if isinstance(step, Generate | Subgraph | Loop):
        return step.parameters()
    return function_parameters(step)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return json.dumps(value, ensure_ascii=False)


def _describe(step: Step) -> Any:
    if isinstance(step, Generate):
        prompt = step.prompt if isinstance(step.prompt, str) else _describe(step.prompt)
        return ["generate", prompt, step.backend, step.max_tokens, step.sampling.model_dump(), list(step.stop), step.grammar, step.n, step.chat, step.system]
    if isinstance(step, Subgraph):
        return ["subgraph", step.graph.fingerprint() if isinstance(step.graph, TaskGraph) else _describe(step.graph)]
    if isinstance(step, Loop):
        return ["loop", _describe(step.step), _describe(step.until), step.max_iterations, step.state_input]
    return _stable(step)


def _stable(value: Any, depth: int = 0) -> Any:
    """A description of a value that is the same in every process (no object addresses):
    functions by module and name, partials with their bound arguments, containers by content."""
    if depth > 4:
        return "…"
    if isinstance(value, functools.partial):
        return ["partial", _stable(value.func, depth + 1), [_stable(a, depth + 1) for a in value.args],
                sorted((k, _stable(v, depth + 1)) for k, v in value.keywords.items())]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, Mapping):
        return sorted((str(k), _stable(v, depth + 1)) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return [_stable(v, depth + 1) for v in value]
    if isinstance(value, TaskGraph):
        return ["graph", value.fingerprint()]
    if isinstance(value, SamplingParams):
        return value.model_dump()
    return [getattr(value, "__module__", "?"), getattr(value, "__qualname__", type(value).__qualname__)]


def _describe_source(src: Source | None) -> Any:
    if isinstance(src, Ref):
        return ["ref", src.node, src.optional]
    if isinstance(src, Input):
        return ["input", src.name]
    return None
