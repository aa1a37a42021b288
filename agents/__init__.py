"""Agents: pure decision code (the agent loop as a generator, patterns).

This package does no I/O and imports only ``orchestrator.types`` and
``orchestrator.errors`` from the engine room. ``agents.patterns`` reads outlines and
plans and votes for the graph patterns; the agent loop arrives with the
agents-and-tools work. The marker below lets a test prove that ``import agents``
finds this package and not another distribution's top-level ``agents``.
"""

__all__ = ["IS_ORCHESTRATOR_AGENTS"]

IS_ORCHESTRATOR_AGENTS = True
