"""``orchestrator serve``: the OpenAI-compatible server on local models (and remote servers).

    orchestrator serve --model smollm2-135m --model big=gemma3-270m --port 8000
    orchestrator serve --remote lab=qwen2.5-7b@http://127.0.0.1:8080/v1

Loopback only unless ``--allow-remote`` (which also needs an API key); the key comes from
``--api-key`` or ``$ORCHESTRATOR_API_KEY``.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from orchestrator.cli.flag_errors import FlagError

__all__ = ["API_KEY_ENV", "COMMANDS", "add_parsers", "router_over"]

log = logging.getLogger("orchestrator.cli")

API_KEY_ENV = "ORCHESTRATOR_API_KEY"


_EXAMPLES = """\
examples:
  orchestrator serve                                             # the embedded default model on 127.0.0.1:8000
  orchestrator serve --model smollm2-135m --model big=gemma3-270m --router auto --cascade 0.6
  orchestrator serve --remote lab=qwen2.5-7b@http://127.0.0.1:8080/v1 --model smollm2-135m --router auto
"""


def add_parsers(sub: Any) -> None:
    serve = sub.add_parser("serve", help="an OpenAI-compatible HTTP server over local (and remote) models", epilog=_EXAMPLES)
    serve.add_argument("--model", action="append", default=[], metavar="[NAME=]MODEL",
                       help="a catalogue name or .gguf path to serve, optionally under NAME (repeatable; default: the embedded default)")
    serve.add_argument("--remote", action="append", default=[], metavar="NAME=MODEL@URL",
                       help="also serve a remote OpenAI-compatible server's MODEL under NAME (repeatable)")
    serve.add_argument("--router", nargs="?", const="auto", default=None, metavar="NAME",
                       help="also serve NAME (default 'auto'): a router over the other models, in the order given; "
                            "privacy first, no egress to --remote servers unless --allow-egress")
    serve.add_argument("--allow-egress", action="store_true", help="the router may send requests without private data to --remote servers")
    serve.add_argument("--cascade", type=float, default=None, metavar="T",
                       help="the router runs the first model and escalates answers below confidence T (0-1) to the next")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on (loopback unless --allow-remote)")
    serve.add_argument("--port", type=int, default=8000, help="the port to listen on (0: any free port)")
    serve.add_argument("--api-key", default=None, help=f"require this bearer key (default: ${API_KEY_ENV} if set)")
    serve.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address (needs an API key)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="a browser origin allowed to call the server, e.g. http://localhost:3000 (repeatable; never '*')")
    serve.add_argument("--n-ctx", type=int, default=8192, help="KV cells per local model, shared by its sequences")
    serve.add_argument("--max-sequences", type=int, default=16, help="sequences decoded together per local model")
    serve.add_argument("--max-active", type=int, default=32, help="requests generating at once")
    serve.add_argument("--max-queued", type=int, default=128, help="requests waiting; more get 429")


def _named(spec: str, flag: str = "--model") -> tuple[str, str]:
    from orchestrator.models.catalogue import model_name

    name, sep, source = spec.partition("=")
    if not sep:
        name, source = model_name(spec), spec
    if not name or not source:
        raise FlagError(flag, f"expected [NAME=]MODEL, got {spec!r}")
    return name, source


def _serve(args: argparse.Namespace) -> int:
    from orchestrator.engine import EngineConfig
    from orchestrator.models.catalogue import DEFAULT_MODEL
    from orchestrator.server import ServerConfig, serve
    from orchestrator.sync_facade import SyncOrchestrator

    # a refused value is reported by ``main``, naming its flag
    config = ServerConfig(
        host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        allow_remote=args.allow_remote, cors_origins=tuple(args.cors_origin),
        max_active=args.max_active, max_queued=args.max_queued,
    )
    engine_config = EngineConfig(n_ctx=args.n_ctx, max_sequences=args.max_sequences)
    models: dict[str, Any] = {}
    for name, source in [_named(s) for s in args.model] or ([] if args.remote else [(DEFAULT_MODEL, DEFAULT_MODEL)]):
        if name in models:
            raise FlagError("--model", f"two models are named {name!r}")
        models[name] = source
    for spec in args.remote:
        name, backend = _remote(spec)
        if name in models:
            raise FlagError("--remote", f"expected a new NAME=MODEL@URL, got {spec!r}")
        models[name] = backend
    with SyncOrchestrator(models, engine_config=engine_config) as orch:
        backends = {name: orch.backend(name) for name in orch.models}  # local models load now, before serving
        if args.router is not None:
            backends[args.router] = router_over(backends, args.router, allow_egress=args.allow_egress, cascade=args.cascade)
        serve(backends, config, log_level="info" if args.verbose else "warning")
    return 0


def _remote(spec: str) -> tuple[str, Any]:
    """``NAME=MODEL@URL`` as a name and a ``RemoteBackend``."""
    from pydantic import ValidationError

    from orchestrator.backends.remote import RemoteBackend, RemoteEndpoint

    name, rest = _named(spec, "--remote")
    model, sep, url = rest.partition("@")
    if not sep:
        raise FlagError("--remote", f"expected a new NAME=MODEL@URL, got {spec!r}")
    try:
        return name, RemoteBackend(RemoteEndpoint(base_url=url, model=model, name=name))
    except ValidationError as exc:
        raise FlagError("--remote", f"{spec}: {exc.errors(include_url=False)[0]['msg']}") from None


def router_over(backends: dict[str, Any], name: str, *, allow_egress: bool = False, cascade: float | None = None) -> Any:
    """A router named ``name`` over the served ``backends`` in their order (see ``tiered_router``)."""
    from orchestrator.routing.router import tiered_router

    if name in backends:
        raise FlagError("--router", f"{name!r}: a model already has that name")
    return tiered_router(list(backends.values()), name=name, allow_egress=allow_egress, cascade=cascade)


COMMANDS = {"serve": _serve}
