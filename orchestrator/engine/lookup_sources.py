"""Lookup drafts for one sequence: from its own text first, then from its tenant's history.

The speculator asks one object for a lookup draft; this one asks prompt lookup over the
sequence's prompt and output (``prompt_lookup.py``) and, when the request names a tenant
(``GenerationRequest.user``), the engine's index of that tenant's recent requests
(``history_index.py``). The draft whose source and match length have been accepted more
often wins (the speculator keeps those rates), else the longer match; on a tie the request's
own text, which is about this very request. (A long match in another request is often the
boilerplate of a different task: on code edits, 31% of history drafts were accepted.) The
``Lookup`` says which source drafted, so acceptance is kept and reported per source.

Without a tenant a request reads and writes no history: an app that serves several people
from one engine would otherwise let one person's text shape drafts (and timings) of
another's requests. An app opts in by naming the tenant; requests with the same name share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from orchestrator.engine.history_index import HistoryIndex
from orchestrator.engine.prompt_lookup import Lookup, PromptLookupDrafter

__all__ = ["LookupSources"]


@dataclass
class LookupSources:
    """Prompt lookup over the sequence's own text, then over ``tenant``'s entries of ``index``."""

    own: PromptLookupDrafter
    index: HistoryIndex | None = None
    tenant: str | None = None

    def lookup(self, history: Sequence[int], k: int, rate: Callable[[Lookup], float] | None = None) -> Lookup:
        """The better of the two sources' drafts: by ``rate`` (the acceptance a draft of that source
        and match length has had) where given, then by the longer match; on a tie the request's own."""
        found = self.own.lookup(history, k)
        if self.index is None or self.tenant is None:
            return found
        earlier = self.index.lookup(self.tenant, history, k)
        if not earlier.tokens:
            return found
        if not found.tokens:
            return earlier

        def merit(f: Lookup) -> tuple[float, int]:
            return (rate(f) if rate else 0.0, f.match)

        return earlier if merit(earlier) > merit(found) else found

    def propose(self, history: Sequence[int], k: int) -> list[int]:
        return self.lookup(history, k).tokens

    def close(self) -> None:
        self.own.close()

    def finish(self, text: Sequence[int], cancelled: bool) -> None:
        """The sequence ended: its text (prompt, then output) joins its tenant's history, unless cancelled."""
        if self.index is not None and self.tenant is not None and not cancelled:
            self.index.add(self.tenant, text)
