"""The one retry policy, ``Retry``, and its pure backoff arithmetic.

Graph nodes (``TaskGraph.add(..., retry=Retry(attempts=3))``) and remote requests
(``RemoteEndpoint(retry=...)``) use the same policy and the same backoff: waits grow as
``backoff_s * 2**retry`` up to ``max_backoff_s``, with full jitter (a uniform draw below
that bound, so callers that failed together do not come back together).

What is worth another try is the caller's to say, within the policy:

- a graph node retries an exception that is one of ``on``, never a ``ConfigError``
  (``Retry.retries``);
- a remote request is retried only before its reply started: a refused or timed-out
  connection, a timeout waiting for the reply's head, or a status in ``retry_statuses``.
  A server's ``Retry-After`` replaces the backoff; one longer than ``max_retry_after_s``
  ends the retries at once. Once a server answered 200, the stream is never re-issued,
  and the HTTP client's own transport retries stay at 0, so retries are never stacked.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from orchestrator.errors import ConfigError

__all__ = ["Retry", "backoff_delay", "parse_retry_after", "retry_delay"]


@dataclass(frozen=True)
class Retry:
    """How often a failed call is tried, and how patiently.

    ``attempts`` counts the first try (1: no retry). ``on`` lists the exceptions a graph node
    retries; ``retry_statuses`` and ``max_retry_after_s`` are read by remote requests only.
    The defaults are a graph node's (one try); a ``RemoteEndpoint`` defaults to
    ``Retry(attempts=3, backoff_s=0.25, max_backoff_s=8.0)``. Bad values raise ``ConfigError``.
    """

    attempts: int = 1
    backoff_s: float = 0.05
    max_backoff_s: float = 5.0
    on: tuple[type[BaseException], ...] = (Exception,)
    max_retry_after_s: float = 30.0
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or not 1 <= self.attempts <= 100:
            raise ConfigError(f"Retry.attempts must be 1-100, not {self.attempts!r}")
        for name, top in (("backoff_s", 60.0), ("max_backoff_s", 600.0), ("max_retry_after_s", 3600.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and 0 <= value <= top):
                raise ConfigError(f"Retry.{name} must be a number of seconds from 0 to {top:g}, not {value!r}")
        if not isinstance(self.on, tuple) or not all(isinstance(t, type) and issubclass(t, BaseException) for t in self.on):
            raise ConfigError(f"Retry.on must be a tuple of exception classes, not {self.on!r}")
        if not all(isinstance(s, int) and 100 <= s <= 599 for s in self.retry_statuses):
            raise ConfigError(f"Retry.retry_statuses must be HTTP status codes, not {sorted(self.retry_statuses)!r}")

    def retries(self, error: BaseException) -> bool:
        """Whether a node that failed with ``error`` is worth another try (attempts allowing):
        one of ``on``, and never a ``ConfigError``, which cannot succeed on a second try."""
        return isinstance(error, self.on) and not isinstance(error, ConfigError)


def backoff_delay(policy: Retry, retry: int, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first retry): full jitter."""
    bound = min(policy.max_backoff_s, policy.backoff_s * 2.0**retry)
    return rng.uniform(0.0, bound)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked by a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


def retry_delay(policy: Retry, retry: int, retry_after: float | None, rng: random.Random) -> float | None:
    """Seconds to wait before retry number ``retry`` of a remote request, or None when no retry
    is left or worth it."""
    # 1. Out of attempts: the caller reports the last failure.
    if retry + 1 >= policy.attempts:
        return None
    # 2. The server said when to come back: do so, unless it is longer than we may wait.
    if retry_after is not None:
        return retry_after if retry_after <= policy.max_retry_after_s else None
    # 3. Otherwise exponential backoff with full jitter.
    return backoff_delay(policy, retry, rng)
