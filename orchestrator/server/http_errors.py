"""The one place where errors become HTTP statuses and OpenAI-style error bodies.

Bodies are ``{"error": {"message", "type", "param", "code"}}``; a message never holds a stack
trace. Errors of ours that no rule names are a 500 with a generic message (logged in full).
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from orchestrator.errors import (
    CapacityError,
    ConfigError,
    EgressRefusedError,
    EngineError,
    ModelNotFoundError,
    OrchestratorError,
    RemoteError,
    RemoteUnavailableError,
    RequestError,
    RoutingError,
)

__all__ = ["ApiError", "error_body", "to_api_error"]

log = logging.getLogger("orchestrator.server")


class ApiError(Exception):
    """An HTTP-level refusal: status, a message safe to show, OpenAI's ``type``, ``param`` and ``code``."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code


# Most specific first: the first matching class decides.
_RULES: tuple[tuple[type[BaseException], int, str, str | None], ...] = (
    (ModelNotFoundError, 404, "invalid_request_error", "model_not_found"),
    (EgressRefusedError, 403, "permission_error", "egress_refused"),
    (RoutingError, 503, "server_error", "no_backend"),
    (RemoteUnavailableError, 503, "server_error", "upstream_unavailable"),
    (RemoteError, 502, "server_error", "upstream_error"),
    (RequestError, 400, "invalid_request_error", None),
    (ConfigError, 400, "invalid_request_error", None),
    (CapacityError, 503, "server_error", "capacity"),
    (EngineError, 503, "server_error", "engine_unavailable"),
)


def to_api_error(exc: BaseException) -> ApiError:
    """Maps any exception to the ``ApiError`` the client should see."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or None
        return ApiError(400, f"invalid {where or 'request'}: {first['msg']}", param=where)
    for cls, status, kind, code in _RULES:
        if isinstance(exc, cls):
            log.info("request refused (%s): %s", status, exc)
            return ApiError(status, str(exc) or cls.__name__, kind, code=code)
    if isinstance(exc, OrchestratorError):
        log.error("request failed: %s", exc, exc_info=exc)
        return ApiError(500, f"the server could not complete the request ({type(exc).__name__})", "server_error")
    log.error("internal error", exc_info=exc)
    return ApiError(500, "internal server error", "server_error")


def error_body(err: ApiError) -> dict:
    """The JSON body of an error response (also sent as an SSE event mid-stream)."""
    return {"error": {"message": err.message, "type": err.type, "param": err.param, "code": err.code}}
