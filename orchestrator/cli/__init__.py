"""The ``orchestrator`` command line: one module per command group, thin shells over the facade."""

from orchestrator.cli.main import main

__all__ = ["main"]
