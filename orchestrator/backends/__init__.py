"""Backends: the local engine, and deterministic fakes for tests."""

from orchestrator.backends.base import Backend, complete
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.backends.local import LocalBackend

__all__ = ["Backend", "LocalBackend", "ScriptedBackend", "complete"]
