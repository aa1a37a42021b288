"""Backends: the local engine, a remote OpenAI-compatible server, and deterministic fakes for tests."""

from orchestrator.backends.base import Backend, complete
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.backends.local import LocalBackend
from orchestrator.backends.remote import RemoteBackend, RemoteEndpoint, RemoteTimeouts

__all__ = ["Backend", "LocalBackend", "RemoteBackend", "RemoteEndpoint", "RemoteTimeouts", "ScriptedBackend", "complete"]
