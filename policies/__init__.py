"""Policies: pure routing, privacy, limit and approval decisions, tested with plain data.

Filled in by the routing work.
"""

__all__: list[str] = []
