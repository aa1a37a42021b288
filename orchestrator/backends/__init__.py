"""Backends: the local engine, a remote OpenAI-compatible server, and deterministic fakes for tests."""

from orchestrator.backends.base import Backend, complete, read_completion, stream
from orchestrator.backends.cancel import CancelHandle
from orchestrator.backends.fake import ScriptedBackend
from orchestrator.backends.local import LocalBackend
from orchestrator.backends.remote import RemoteBackend, RemoteEndpoint, RemoteTimeouts

__all__ = [
    "Backend",
    "CancelHandle",
    "LocalBackend",
    "RemoteBackend",
    "RemoteEndpoint",
    "RemoteTimeouts",
    "ScriptedBackend",
    "complete",
    "read_completion",
    "stream",
]
