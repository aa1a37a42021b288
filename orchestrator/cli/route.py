"""The ``route`` command of the CLI: where would this prompt go, and why?

    orchestrator route "summarise: ..." --remote http://127.0.0.1:8080/v1 --remote-model qwen --allow-egress --json

prints the routing decision without loading any model or opening any socket: the ``Router`` is
built over the facade's local models, loaded only when a request runs on them (a model that is
not installed counts as unavailable), and the remote is described by its URL; measured speeds come
from the stored stats file (``$ORCHESTRATOR_STATE_DIR/backend_stats.json``). ``--run`` then runs
the request through the same router (loading the model it routes to), prints the answer and the
final decision, and stores the measured speeds for later decisions.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from orchestrator.routing.backend_stats import BackendStats
from orchestrator.cli.flag_errors import FlagError, positive_float
from orchestrator.errors import ConfigError
from orchestrator.paths import state_dir
from orchestrator.types import Completion, GenerationRequest, RouteDecision
from policies.budgets import BudgetPolicy
from policies.cascade import CascadePolicy, CascadeSettings
from policies.connectivity import ConnectivityPolicy
from policies.privacy import DATA_CLASSES, PrivacyPolicy, check_labels
from policies.routing import RoutingPolicy

__all__ = ["COMMANDS", "add_parsers", "default_stats_path"]


def default_stats_path() -> Path:
    """``backend_stats.json`` in the state folder (``$ORCHESTRATOR_STATE_DIR``, else the platform's:
    ``~/.local/state/orchestrator`` on Linux; see ``orchestrator.paths``)."""
    return state_dir() / "backend_stats.json"


_EXAMPLES = """\
examples:
  orchestrator route "summarise: the meeting moved to Friday"
  orchestrator route "my SSN is 123-45-6789" --remote http://127.0.0.1:8080/v1 --remote-model qwen --allow-egress --json
  orchestrator route "2 + 2 =" --larger gemma3-270m --cascade 0.6 --run
"""


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("route", help="show where a prompt would be routed, and why (runs nothing unless --run)", epilog=_EXAMPLES)
    p.add_argument("prompt", help="the request's text")
    p.add_argument("--json", action="store_true", help="print the decision as one JSON object")
    p.add_argument("--model", default=None, help="the small local model (catalogue name or .gguf; default: the embedded default)")
    p.add_argument("--larger", default=None, help="a larger local model, the next tier")
    p.add_argument("--remote", default=None, metavar="URL", help="an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--remote-model", default=None, metavar="NAME", help="the model name the remote serves (with --remote)")
    p.add_argument("--remote-cost", type=float, default=None, metavar="PER_TOKEN", help="the remote's cost per token")
    p.add_argument("--offline", action="store_true", help="the device is offline: nothing remote")
    p.add_argument("--allow-egress", action="store_true", help="grant remote egress for requests without private data")
    p.add_argument("--egress-class", action="append", default=[], metavar="CLASS",
                   help=f"a private data class that may leave anyway (one of {', '.join(DATA_CLASSES)} or a label); repeatable")
    p.add_argument("--label", action="append", default=[], metavar="CLASS", help="mark the prompt as holding this private data class; repeatable")
    p.add_argument("--max-tokens", type=int, default=256, help="the request's token limit (it sizes the predicted cost)")
    p.add_argument("--max-latency-s", type=positive_float, default=None, help="budget: refuse backends predicted slower than this (seconds)")
    p.add_argument("--max-energy-j", type=positive_float, default=None, help="budget: refuse backends predicted to use more joules")
    p.add_argument("--max-cost", type=positive_float, default=None, help="budget: refuse backends predicted to cost more")
    p.add_argument("--prefer", choices=["latency", "energy", "cost"], default=None, help="pick the lowest predicted value among allowed backends")
    p.add_argument("--cascade", type=float, default=None, metavar="THRESHOLD",
                   help="try the small model first and escalate below this confidence (0..1)")
    p.add_argument("--stats", type=Path, default=None, help="measured backend speeds (JSON; default: the state directory)")
    p.add_argument("--run", action="store_true", help="run the request through the router and print the answer and the decision")


def _policies(args: argparse.Namespace) -> list[RoutingPolicy]:
    policies: list[RoutingPolicy] = [
        PrivacyPolicy(allow_egress=args.allow_egress, egress_classes=check_labels(args.egress_class)),
        ConnectivityPolicy(offline=args.offline),
    ]
    if any(v is not None for v in (args.max_latency_s, args.max_energy_j, args.max_cost, args.prefer)):
        policies.append(BudgetPolicy(max_latency_s=args.max_latency_s, max_energy_j=args.max_energy_j, max_cost=args.max_cost, prefer=args.prefer))
    if args.cascade is not None:
        policies.append(CascadePolicy(CascadeSettings(threshold=args.cascade)))
    return policies


def _remote_name(args: argparse.Namespace) -> str:
    return f"remote:{args.remote_model}"


def _router(args: argparse.Namespace, orch: Any, stats: BackendStats) -> Any:
    """The router over the local models (loaded only when a request runs on them) and the remote."""
    from orchestrator.routing.router import Router

    backends = [orch.lazy_backend(name) for name in orch.models]
    if args.remote is not None:
        from orchestrator.backends.remote import RemoteBackend, RemoteEndpoint

        backends.append(RemoteBackend(RemoteEndpoint(base_url=args.remote, model=args.remote_model, name=_remote_name(args))))
    costs = {_remote_name(args): args.remote_cost} if args.remote is not None and args.remote_cost is not None else None
    return Router(backends, policies=_policies(args), stats=stats, costs=costs, labels=args.label)


def _check(args: argparse.Namespace) -> None:
    if (args.remote is None) != (args.remote_model is None):
        raise FlagError("--remote-model" if args.remote_model is None else "--remote", "give --remote and --remote-model together")
    if args.cascade is not None and not 0.0 <= args.cascade <= 1.0:
        raise FlagError("--cascade", "takes a confidence threshold between 0 and 1")
    if args.remote_cost is not None and not args.remote_cost >= 0:
        raise FlagError("--remote-cost", f"must be 0 or more, got {args.remote_cost}")
    for flag, labels in (("--label", args.label), ("--egress-class", args.egress_class)):
        try:
            check_labels(labels)
        except ConfigError as exc:
            raise FlagError(flag, str(exc)) from None


def _print(decision: RouteDecision, as_json: bool, answer: str | None = None) -> None:
    if as_json:
        data = decision.model_dump(mode="json")
        if answer is not None:
            data = {"text": answer, "route": data}
        print(json.dumps(data))
        return
    if answer is not None:
        print(answer)
        print()
    print(f"route: {decision.backend}  (decided by {decision.policy})")
    print(f"why:   {decision.reason}")
    if decision.data_classes:
        print(f"private data: {', '.join(decision.data_classes)}")
    if decision.escalate_to:
        print(f"escalates to: {decision.escalate_to} below confidence {decision.escalate_below}")
    if decision.fallbacks:
        print(f"fallbacks: {', '.join(decision.fallbacks)}")
    print("trail:")
    for step in decision.trail:
        target = step.backend or (",".join(step.forbidden) if step.forbidden else "-")
        print(f"  {step.policy:<13} {step.action:<9} {target:<20} {step.reason}")


def _route(args: argparse.Namespace) -> int:
    import anyio

    from orchestrator.backends.base import complete
    from orchestrator.facade import Orchestrator
    from orchestrator.models.catalogue import DEFAULT_MODEL

    _check(args)
    stats_path = args.stats or default_stats_path()
    stats = BackendStats.load(stats_path)
    request = GenerationRequest(prompt=args.prompt, max_tokens=args.max_tokens)
    orch = Orchestrator({name: name for name in (args.model or DEFAULT_MODEL, args.larger) if name is not None})
    router = _router(args, orch, stats)
    if not args.run:  # the decision alone: no model is loaded, no socket opened
        _print(router.decide(request), args.json)
        return 0

    async def run() -> Completion:
        async with orch:
            return await complete(router, request)

    completion = anyio.run(run)
    stats.save(stats_path)
    assert completion.route is not None
    _print(completion.route, args.json, answer=completion.text)
    return 0


COMMANDS = {"route": _route}
