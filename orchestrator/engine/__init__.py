"""The local engine: llama.cpp in-process, continuous batching, shared prefixes."""

from orchestrator.engine.config import EngineConfig
from orchestrator.engine.engine import EngineStats, LocalEngine
from orchestrator.engine.handle import RequestHandle

__all__ = ["EngineConfig", "EngineStats", "LocalEngine", "RequestHandle"]
