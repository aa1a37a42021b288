"""Running the app with uvicorn: ``serve`` blocks (the CLI); ``BackgroundServer`` runs it in a
thread for embedding and tests.

The listening socket is bound before the server thread starts, so clients may connect as soon
as ``BackgroundServer`` returns (the OS queues connections until the loop accepts them); no
start-up wait or polling is needed.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Mapping
from typing import Any

from orchestrator.backends.base import Backend
from orchestrator.errors import ConfigError
from orchestrator.server.app import create_app
from orchestrator.server.config import ServerConfig

__all__ = ["BackgroundServer", "bind", "serve"]

log = logging.getLogger("orchestrator.server")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(256)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
    return sock


def _uvicorn(app: Any, *, log_level: str, graceful_s: float | None) -> Any:
    try:
        import uvicorn
    except ImportError as exc:
        raise ConfigError("the server needs the 'server' extra: pip install 'on-device-orchestrator[server]'") from exc
    config = uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=False, timeout_graceful_shutdown=graceful_s,
                            server_header=False, date_header=False)
    return uvicorn.Server(config)


def serve(backends: Mapping[str, Backend], config: ServerConfig | None = None, *, log_level: str = "warning") -> None:
    """Serves ``backends`` until interrupted (Ctrl-C)."""
    config = config or ServerConfig()
    server = _uvicorn(create_app(backends, config), log_level=log_level, graceful_s=5)
    sock = bind(config.host, config.port)
    log.warning("serving %s on http://%s:%d/v1", ", ".join(backends), config.host, sock.getsockname()[1])
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


class BackgroundServer:
    """The app served from a background thread; a context manager. ``url`` is the ``/v1`` base URL."""

    def __init__(self, backends: Mapping[str, Backend], config: ServerConfig | None = None, *, log_level: str = "warning") -> None:
        self.config = config or ServerConfig(port=0)
        self.app = create_app(backends, self.config)
        self._server = _uvicorn(self.app, log_level=log_level, graceful_s=2)
        self._sock = bind(self.config.host, self.config.port)
        host, self.port = self._sock.getsockname()[:2]
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}/v1"
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, name="orchestrator-server", daemon=True)
        self._thread.start()

    @property
    def stats(self) -> Any:
        return self.app.state.stats

    def close(self, timeout: float = 10.0) -> None:
        """Stops accepting, ends open connections (after up to 2 s of grace), joins the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
        if self._thread.is_alive():
            raise ConfigError(f"the server thread did not stop within {timeout} s")

    def __enter__(self) -> BackgroundServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
