"""Routing: backends that wrap other backends and decide where a request runs.

``Router`` asks the pure policies in ``policies/`` and runs the request on the chosen tier;
``Hedged`` races a second backend after a deadline; ``BackendStats`` keeps measured speeds
for the budget policy; ``features`` turns the local model's embedding into router features.
"""

from orchestrator.routing.backend_stats import BackendStats, Measured
from orchestrator.routing.hedge import Hedged
from orchestrator.routing.router import Router, Validator, backend_available, backend_location, tiered_router

__all__ = [
    "BackendStats",
    "Hedged",
    "Measured",
    "Router",
    "Validator",
    "backend_available",
    "backend_location",
    "tiered_router",
]
