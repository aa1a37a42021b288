"""Tools: ``@tool`` functions, schemas from signatures, strict argument validation, built-ins.

Pure decision code: nothing here does I/O except the built-in file reader, which reads
inside the one folder it is given. From the engine room only ``orchestrator.types`` and
``orchestrator.errors`` are imported.

- ``Tool`` / ``tool`` (``tools.tool``): a callable plus the normalized JSON schema of its
  arguments (``Tool.parameters``), built from type hints and docstrings or given raw
  (``Tool.from_schema``); bad definitions raise ``ToolDefinitionError`` at once.
- ``tools.schema``: the schema subset every ``Tool.parameters`` stays in (what validation
  checks and grammars are built from); ``tools.schema_match``: whether a JSON value matches
  such a schema, and why not; ``tools.hints``: type hints to schemas;
  ``tools.docstrings``: argument descriptions from Google/NumPy/reST docstrings.
- ``validate_arguments`` / ``ArgumentLimits`` (``tools.validation``): model-written
  arguments checked strictly, with size caps, converted to the signature's types; any
  failure is a short ``ToolCallError`` for the model.
- ``ToolRegistry`` (``tools.registry``): tools by name, allow-lists, ``parse_call``;
  unknown names fail closed.
- ``calculator``, ``current_time``, ``read_file_tool`` (``tools.builtin``): safe built-ins.
- ``schema_to_gbnf`` / ``tool_call_grammar`` / ``parse_tool_call`` (``tools.grammar``): the
  schemas as llama.cpp GBNF, so a local model's call always parses and validates; what a
  grammar cannot enforce is refused with ``ToolDefinitionError``, never left unconstrained.
"""

from tools.builtin import calculator, current_time, read_file_tool
from tools.grammar import DEFAULT_MAX_ITEMS, DEFAULT_MAX_STRING_LENGTH, parse_tool_call, schema_to_gbnf, tool_call_grammar
from tools.registry import ToolRegistry
from tools.schema import normalize_schema
from tools.tool import Tool, tool
from tools.validation import DEFAULT_LIMITS, ArgumentLimits, check_arguments, validate_arguments

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_ITEMS",
    "DEFAULT_MAX_STRING_LENGTH",
    "ArgumentLimits",
    "Tool",
    "ToolRegistry",
    "calculator",
    "check_arguments",
    "current_time",
    "normalize_schema",
    "parse_tool_call",
    "read_file_tool",
    "schema_to_gbnf",
    "tool",
    "tool_call_grammar",
    "validate_arguments",
]
