"""Agents: pure decision code (the agent loop as a generator, patterns).

This package does no I/O and imports only ``orchestrator.types`` and
``orchestrator.errors`` from the engine room. Its contents arrive with the
agents-and-tools work; the marker below lets a test prove that ``import agents``
finds this package and not another distribution's top-level ``agents``.
"""

__all__ = ["IS_ORCHESTRATOR_AGENTS"]

IS_ORCHESTRATOR_AGENTS = True
