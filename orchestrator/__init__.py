"""On-device agent orchestrator: local GGUF models, batching, routing, task graphs.

Importing this package loads no model and does not initialise llama.cpp; the
engine is imported on first use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from orchestrator.errors import (
    AgentError,
    CapacityError,
    ChatTemplateError,
    ConfigError,
    ContextLengthError,
    DiskSpaceError,
    EgressRefusedError,
    EngineError,
    GrammarError,
    GraphError,
    IncompatibleDraftError,
    ModelError,
    ModelFileError,
    ModelLoadError,
    ModelNotFoundError,
    NodeFailedError,
    NodeTimeoutError,
    OrchestratorError,
    PlanError,
    RemoteError,
    RemoteProtocolError,
    RemoteServerError,
    RemoteUnavailableError,
    RequestError,
    RoutingError,
    RunCancelledError,
    RunError,
    StoreError,
    StreamBrokenError,
    ToolCallError,
    ToolDefinitionError,
    ToolExecutionError,
    UnknownFactoryError,
    UnsafeResumeError,
)
from orchestrator.types import (
    ChatMessage,
    Choice,
    Completion,
    FunctionCall,
    GenerationRequest,
    ResponseFormat,
    SamplingParams,
    Timings,
    TokenDelta,
    ToolSpec,
)

if TYPE_CHECKING:
    from orchestrator.backends import Backend, LocalBackend, RemoteBackend, RemoteEndpoint, ScriptedBackend, complete
    from orchestrator.engine import EngineConfig, LocalEngine
    from orchestrator.facade import CancelHandle, Orchestrator
    from orchestrator.taskgraph.graph import Generate, Input, Loop, Ref, Retry, Subgraph, TaskGraph
    from orchestrator.taskgraph.runs import RunEvent, RunResult
    from orchestrator.taskgraph.scheduler import RunControl, Runner
    from orchestrator.taskgraph.store import RunStore
    from orchestrator.sync_facade import SyncOrchestrator

__version__ = "0.1.0"

# A library logs; the application decides where logs go (no "last resort" stderr output).
logging.getLogger("orchestrator").addHandler(logging.NullHandler())

__all__ = [
    "AgentError",
    "Backend",
    "CancelHandle",
    "CapacityError",
    "ChatMessage",
    "ChatTemplateError",
    "Choice",
    "Completion",
    "ConfigError",
    "ContextLengthError",
    "DiskSpaceError",
    "EgressRefusedError",
    "EngineConfig",
    "EngineError",
    "FunctionCall",
    "Generate",
    "GenerationRequest",
    "GrammarError",
    "GraphError",
    "IncompatibleDraftError",
    "Input",
    "LocalBackend",
    "LocalEngine",
    "Loop",
    "ModelError",
    "ModelFileError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NodeFailedError",
    "NodeTimeoutError",
    "Orchestrator",
    "OrchestratorError",
    "PlanError",
    "Ref",
    "RemoteBackend",
    "RemoteEndpoint",
    "RemoteError",
    "RemoteProtocolError",
    "RemoteServerError",
    "RemoteUnavailableError",
    "RequestError",
    "Retry",
    "RoutingError",
    "RunCancelledError",
    "RunControl",
    "RunError",
    "RunEvent",
    "RunResult",
    "RunStore",
    "ResponseFormat",
    "Runner",
    "SamplingParams",
    "ScriptedBackend",
    "StoreError",
    "StreamBrokenError",
    "Subgraph",
    "SyncOrchestrator",
    "TaskGraph",
    "Timings",
    "TokenDelta",
    "ToolCallError",
    "ToolDefinitionError",
    "ToolExecutionError",
    "ToolSpec",
    "UnknownFactoryError",
    "UnsafeResumeError",
    "complete",
]

_LAZY = {
    "Orchestrator": "orchestrator.facade",
    "CancelHandle": "orchestrator.facade",
    "SyncOrchestrator": "orchestrator.sync_facade",
    "Backend": "orchestrator.backends",
    "LocalBackend": "orchestrator.backends",
    "RemoteBackend": "orchestrator.backends",
    "RemoteEndpoint": "orchestrator.backends",
    "ScriptedBackend": "orchestrator.backends",
    "complete": "orchestrator.backends",
    "EngineConfig": "orchestrator.engine",
    "LocalEngine": "orchestrator.engine",
    "TaskGraph": "orchestrator.taskgraph.graph",
    "Generate": "orchestrator.taskgraph.graph",
    "Input": "orchestrator.taskgraph.graph",
    "Ref": "orchestrator.taskgraph.graph",
    "Retry": "orchestrator.taskgraph.graph",
    "Subgraph": "orchestrator.taskgraph.graph",
    "Loop": "orchestrator.taskgraph.graph",
    "Runner": "orchestrator.taskgraph.scheduler",
    "RunControl": "orchestrator.taskgraph.scheduler",
    "RunStore": "orchestrator.taskgraph.store",
    "RunResult": "orchestrator.taskgraph.runs",
    "RunEvent": "orchestrator.taskgraph.runs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
