"""Agents: pure decision code (the agent definition, the agent loop as a generator, patterns).

This package does no I/O and imports only ``orchestrator.types`` and
``orchestrator.errors`` from the engine room (and ``tools``). ``Agent`` is the
definition, ``agent_loop`` decides turn by turn, ``orchestrator.agent_runner.run_agent``
does the I/O. ``agents.prompting`` writes the prompt, ``agents.grounding`` narrows
arguments to the conversation, ``agents.patterns`` reads outlines and plans and votes
for the graph patterns. ``Agent(decide="scored")`` decides each step by scores instead
(``agents.decide``: which tool or none, arguments from grounded candidates, a calibrated
confidence; ``agents.scored_loop`` escalates below ``escalate_below``). The marker below lets a test prove that ``import agents``
finds this package and not another distribution's top-level ``agents``.
"""

from agents.agent import Agent
from agents.loop import AgentResult, Escalate, ToolCall, ToolResult, agent_loop
from agents.steps import StepDecision

__all__ = ["IS_ORCHESTRATOR_AGENTS", "Agent", "AgentResult", "Escalate", "StepDecision", "ToolCall", "ToolResult", "agent_loop"]

IS_ORCHESTRATOR_AGENTS = True
