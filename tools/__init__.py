"""Tools: ``@tool`` functions, schemas from signatures, argument validation.

Pure code, no I/O of its own; filled in by the agents-and-tools work.
"""

__all__: list[str] = []
