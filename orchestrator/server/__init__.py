"""``orchestrator serve``: an OpenAI-compatible HTTP server over any ``Backend``s.

    from orchestrator.server import BackgroundServer, ServerConfig
    with BackgroundServer({"smollm2": LocalBackend(engine), "auto": router}) as server:
        client = OpenAI(base_url=server.url, api_key="unused")

Endpoints: ``GET /v1/models``, ``GET /v1/models/{name}``, ``POST /v1/chat/completions``
(stream or not, ``n``, ``stop``, ``max_tokens``/``max_completion_tokens``, ``temperature``,
``top_p``, ``seed``, ``tools``/``tool_choice``/``parallel_tool_calls``, ``response_format``,
``logprobs`` with token text, also streamed), ``POST /v1/completions``, ``POST /v1/embeddings``
and ``GET /health``. Known fields are checked with caps, and a bad one is a 400 naming it; the
others are decided per field (``orchestrator.server.fields``: ignored when they cannot change
the output, else a 400). Tools reach remote backends natively, with the conversation in
OpenAI's shape, and local ones through a grammar (see ``orchestrator.server.local_tools``). Security: loopback only
unless allowed, optional API key (constant-time compare), CORS only for listed origins, a body
cap, a bounded queue. Needs the ``server`` extra (starlette, uvicorn); importing this package
loads no model and does not initialise llama.cpp.
"""

from orchestrator.server.app import ServerStats, create_app
from orchestrator.server.config import ServerConfig
from orchestrator.server.http_errors import ApiError, to_api_error
from orchestrator.server.run import BackgroundServer, serve

__all__ = ["ApiError", "BackgroundServer", "ServerConfig", "ServerStats", "create_app", "serve", "to_api_error"]
