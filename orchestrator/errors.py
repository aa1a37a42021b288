"""The one error tree of the orchestrator.

Every error the library raises on purpose is an ``OrchestratorError``; a bare
``ValueError`` or ``IndexError`` escaping from here is a bug of ours.

    OrchestratorError
    ├── ConfigError              settings or arguments that can never work
    │   ├── IncompatibleDraftError   a draft model whose vocabulary differs from the target's
    │   └── ToolDefinitionError  a tool whose signature or schema cannot work (found when it is defined)
    ├── ModelError
    │   ├── ModelNotFoundError   a catalogue name that is unknown or not installed
    │   ├── ModelFileError       unreadable, truncated, not GGUF, absurd header, wrong sha256
    │   └── ModelLoadError       llama.cpp refused to load a file that looked valid
    ├── RequestError             one request is wrong; the engine is fine
    │   ├── ContextLengthError   prompt (+ max_tokens) longer than a sequence may be
    │   ├── ChatTemplateError    template missing, unsafe, too slow or too large
    │   ├── GrammarError         a grammar llama.cpp cannot parse, or too large to build
    │   ├── PlanError            a model-written plan that cannot be executed (the reason goes back to the model)
    │   └── ToolCallError        a model-written tool call: unknown tool, or arguments that do not validate
    ├── CapacityError            the KV memory budget cannot hold what was asked
    ├── DiskSpaceError           too little free disk for files the orchestrator must write (weight variants)
    ├── EngineError              the engine is closed or llama.cpp failed mid-run
    ├── GraphError               a task graph that cannot run as built (cycle, missing input, unknown node)
    ├── RunError                 a task graph run that did not finish
    │   ├── NodeFailedError      a node raised (after its retries); ``node`` and ``__cause__`` say which and why
    │   ├── NodeTimeoutError     a node ran past its timeout on every attempt
    │   ├── RunCancelledError    the run, or the branch a result needed, was cancelled
    │   └── UnsafeResumeError    resuming would silently repeat a side effect that may have happened
    ├── StoreError               the run store is unreadable, or holds no such run
    │   └── UnknownFactoryError  a stored run names a graph factory that is not registered (never imported)
    ├── AgentError               an agent ended without an answer: wrong replies past its retries and escalation
    ├── ToolExecutionError       a tool call gave no result (raised, timed out, not approved); the model sees a short reason
    ├── RemoteError              a remote OpenAI-compatible server failed; ``endpoint`` and ``status`` say where and how
    │   ├── RemoteUnavailableError   unreachable, timed out, 5xx or 429 past the retries, or its circuit is open
    │   ├── RemoteProtocolError      the server answered with something that is not the OpenAI API (bad JSON or SSE)
    │   ├── RemoteServerError        the server reported an error inside its reply; its own message, in full
    │   └── StreamBrokenError        a stream ended mid-way; ``partial_text`` holds what had arrived (never re-issued)
    └── RoutingError             no backend may take the request under the policies
        └── EgressRefusedError   the request holds data that must not leave the device, and only remote backends remain
"""

from __future__ import annotations

__all__ = [
    "AgentError",
    "CapacityError",
    "ChatTemplateError",
    "ConfigError",
    "ContextLengthError",
    "DiskSpaceError",
    "EgressRefusedError",
    "EngineError",
    "GrammarError",
    "GraphError",
    "IncompatibleDraftError",
    "ModelError",
    "ModelFileError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NodeFailedError",
    "NodeTimeoutError",
    "OrchestratorError",
    "PlanError",
    "RemoteError",
    "RemoteProtocolError",
    "RemoteServerError",
    "RemoteUnavailableError",
    "RequestError",
    "RoutingError",
    "RunCancelledError",
    "RunError",
    "StoreError",
    "StreamBrokenError",
    "ToolCallError",
    "ToolDefinitionError",
    "ToolExecutionError",
    "UnknownFactoryError",
    "UnsafeResumeError",
]


class OrchestratorError(Exception):
    """Base of every error the orchestrator raises on purpose."""


class ConfigError(OrchestratorError, ValueError):
    """Settings or arguments that can never work."""


class IncompatibleDraftError(ConfigError):
    """A draft model cannot speak for the target: its vocabulary differs (the reason names how)."""


class ModelError(OrchestratorError):
    """Something is wrong with a model or its file."""


class ModelNotFoundError(ModelError, LookupError):
    """A model name is unknown, or known but not installed anywhere."""


class ModelFileError(ModelError):
    """A model file is unreadable, truncated, not GGUF, or has an absurd header."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class ModelLoadError(ModelError):
    """llama.cpp refused to load a file whose header looked valid."""


class RequestError(OrchestratorError, ValueError):
    """One request cannot be served as asked; the engine itself is fine."""


class ContextLengthError(RequestError):
    """The prompt, or prompt plus max_tokens, does not fit in a sequence."""


class ChatTemplateError(RequestError):
    """A chat template is missing, unsafe, too slow or renders too much."""


class GrammarError(RequestError):
    """A grammar that llama.cpp cannot parse, or one that would be too large to build."""


class PlanError(RequestError):
    """A plan written by a model cannot be executed: unknown tool, bad reference, unreadable step.
    The message is short and safe to give back to the model."""


class CapacityError(OrchestratorError):
    """The KV memory budget cannot hold what was asked."""


class DiskSpaceError(OrchestratorError):
    """Too little free disk space for files the orchestrator must write; ``folder``,
    ``needed`` and ``free`` (bytes) say where and how much."""

    def __init__(self, message: str, *, folder: str, needed: int, free: int) -> None:
        super().__init__(message)
        self.folder = folder
        self.needed = needed
        self.free = free


class EngineError(OrchestratorError):
    """The engine is closed, or llama.cpp failed while running."""


class GraphError(ConfigError):
    """A task graph that cannot run as built: a cycle, a missing input, an unknown node."""


class RunError(OrchestratorError):
    """A task graph run that did not finish; ``run_id`` names it so it can be resumed."""

    def __init__(self, message: str, *, run_id: str | None = None, node: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.node = node


class NodeFailedError(RunError):
    """A node raised on its last attempt; the original exception is ``__cause__``."""


class NodeTimeoutError(RunError, TimeoutError):
    """A node ran past its timeout on every attempt."""


class RunCancelledError(RunError):
    """The run was cancelled, or a node needed the output of a cancelled branch."""


class UnsafeResumeError(RunError):
    """A node with side effects started before the crash but never committed: running it again
    might repeat the effect. Resume with ``rerun_uncertain`` naming it once you have checked."""


class StoreError(OrchestratorError):
    """The run store cannot be read or written, or holds no such run."""


class UnknownFactoryError(StoreError):
    """A stored run names a graph factory that no code registered. A store is data: the name is
    looked up in ``orchestrator.taskgraph.factories``, never imported."""


class ToolDefinitionError(ConfigError):
    """A tool cannot work as defined: a signature without a schema, a schema that is not valid,
    or one that cannot be turned into a grammar. Raised when the tool is defined."""


class ToolCallError(RequestError):
    """A tool call written by a model is wrong: unknown tool, or arguments that do not validate.
    The message is short and safe to give back to the model so it can fix the call."""

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool


class ToolExecutionError(OrchestratorError):
    """A tool call gave no result: the tool raised, ran past its timeout, returned what cannot be
    shown, or was not approved. ``str()`` is a one-line reason fit for the model; the original
    exception, if any, is ``__cause__`` (for logs, never for the model)."""

    def __init__(self, message: str, *, tool: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool


class AgentError(OrchestratorError):
    """An agent run ended without a valid answer: its model kept writing wrong calls or answers
    past the retry budget (and the escalation, if any). ``agent`` names it."""

    def __init__(self, message: str, *, agent: str | None = None) -> None:
        super().__init__(message)
        self.agent = agent


class RemoteError(OrchestratorError):
    """A remote OpenAI-compatible server failed. ``endpoint`` is its base URL (never a key),
    ``status`` the HTTP status when there was one."""

    def __init__(self, message: str, *, endpoint: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status


class RemoteUnavailableError(RemoteError):
    """The server could not be reached or kept failing (connection refused, timeout, 5xx or 429
    after the retries), or its circuit breaker is open. The router treats it as down."""


class RemoteProtocolError(RemoteError):
    """The server's reply is not what the OpenAI API says: malformed JSON, SSE or fields."""


class RemoteServerError(RemoteError):
    """The server reported an error inside a reply it had begun: llama.cpp's streamed
    ``error: {...}`` line, or an ``{"error": {...}}`` object in place of a chunk. ``str()`` ends
    with the server's own message, whole; ``status`` is the code it gave, if any."""


class StreamBrokenError(RemoteError):
    """A streamed reply stopped before its end. ``partial_text`` holds the text that arrived;
    the request is never re-issued behind the caller's back."""

    def __init__(self, message: str, *, partial_text: str = "", endpoint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, endpoint=endpoint, status=status)
        self.partial_text = partial_text


class RoutingError(OrchestratorError):
    """No backend may take the request under the routing policies (all refused or down)."""


class EgressRefusedError(RoutingError):
    """The request holds data that must stay on the device and only remote backends remain.
    Raised before any connection is opened. ``data_classes`` names what was found."""

    def __init__(self, message: str, *, data_classes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.data_classes = data_classes
