"""``GET /health``: is the server up, and which models are loaded.

``{"status": "ok", "models": [{"id", "location", "loaded", "available"}]}``: ``loaded`` says a
local model is in memory (false once its engine closed; a remote one has nothing loaded here),
``available`` whether a request may go to it now (a remote server's circuit breaker is closed).
The status is public, for load balancers; the model list needs the API key when one is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["health_response"]


def health_response(backends: Mapping[str, Any], *, authorized: bool) -> dict:
    if not authorized:
        return {"status": "ok"}
    return {"status": "ok", "models": [_model(name, b) for name, b in backends.items()]}


def _model(name: str, backend: Any) -> dict:
    location = getattr(backend, "location", "local")
    engine = getattr(backend, "engine", None)
    loaded = engine is not None and not getattr(engine, "closed", False)
    probe = getattr(backend, "available", True)
    try:
        available = bool(probe() if callable(probe) else probe) and (loaded or engine is None)
    except Exception:  # noqa: BLE001 - a failing probe means it is not available
        available = False
    return {"id": name, "location": location if location in ("local", "remote") else "local", "loaded": loaded, "available": available}
