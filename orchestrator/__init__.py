"""On-device agent orchestrator: local GGUF models, batching, routing, task graphs.

Importing this package loads no model and does not initialise llama.cpp; the
engine is imported on first use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from orchestrator.errors import (
    CapacityError,
    ChatTemplateError,
    ConfigError,
    ContextLengthError,
    EngineError,
    GrammarError,
    IncompatibleDraftError,
    ModelError,
    ModelFileError,
    ModelLoadError,
    ModelNotFoundError,
    OrchestratorError,
    RequestError,
)
from orchestrator.types import (
    ChatMessage,
    Choice,
    Completion,
    GenerationRequest,
    SamplingParams,
    Timings,
    TokenDelta,
)

if TYPE_CHECKING:
    from orchestrator.backends import Backend, LocalBackend, ScriptedBackend, complete
    from orchestrator.engine import EngineConfig, LocalEngine

__version__ = "0.1.0"

# A library logs; the application decides where logs go (no "last resort" stderr output).
logging.getLogger("orchestrator").addHandler(logging.NullHandler())

__all__ = [
    "Backend",
    "CapacityError",
    "ChatMessage",
    "ChatTemplateError",
    "Choice",
    "Completion",
    "ConfigError",
    "ContextLengthError",
    "EngineConfig",
    "EngineError",
    "GenerationRequest",
    "GrammarError",
    "IncompatibleDraftError",
    "LocalBackend",
    "LocalEngine",
    "ModelError",
    "ModelFileError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OrchestratorError",
    "RequestError",
    "SamplingParams",
    "ScriptedBackend",
    "Timings",
    "TokenDelta",
    "complete",
]

_LAZY = {
    "Backend": "orchestrator.backends",
    "LocalBackend": "orchestrator.backends",
    "ScriptedBackend": "orchestrator.backends",
    "complete": "orchestrator.backends",
    "EngineConfig": "orchestrator.engine",
    "LocalEngine": "orchestrator.engine",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
