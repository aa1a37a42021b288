"""The local engine: llama.cpp in-process, continuous batching, shared prefixes (pinned ones stored on disk)."""

from orchestrator.engine.config import EngineConfig
from orchestrator.engine.engine import EngineStats, LocalEngine
from orchestrator.engine.handle import RequestHandle
from orchestrator.engine.pinning import PinnedPrefix

__all__ = ["EngineConfig", "EngineStats", "LocalEngine", "PinnedPrefix", "RequestHandle"]
