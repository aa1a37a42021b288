"""Task graphs: the graph as data, the anyio runner, the durable store, reports and patterns.

    g = TaskGraph("review", output="verdict")
    result = await Runner(backend, store=RunStore("runs.sqlite3")).run(g, {"text": "..."})
"""

from orchestrator.taskgraph.graph import Generate, Input, Loop, Ref, Retry, Subgraph, TaskGraph
from orchestrator.taskgraph.runs import NodeReport, RunEvent, RunResult
from orchestrator.taskgraph.scheduler import RunControl, Runner
from orchestrator.taskgraph.store import RunStore

__all__ = [
    "Generate",
    "Input",
    "Loop",
    "NodeReport",
    "Ref",
    "Retry",
    "RunControl",
    "RunEvent",
    "RunResult",
    "RunStore",
    "Runner",
    "Subgraph",
    "TaskGraph",
]
