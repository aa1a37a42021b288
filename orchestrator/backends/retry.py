"""The one retry policy of remote backends, and its pure backoff arithmetic.

A request is retried only before its reply started: on a refused or timed-out
connection, a timeout waiting for the reply's head, or a retryable status
(429, 5xx). Once a server answered 200, the stream is never re-issued. The
HTTP client's own transport retries stay at 0, so retries are never stacked.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RetryPolicy", "backoff_delay", "parse_retry_after", "retry_delay"]


class RetryPolicy(BaseModel):
    """How often and how patiently a request is retried.

    ``max_attempts`` counts the first try. Waits grow as ``base_delay_s * 2**retry``
    up to ``max_delay_s``, with full jitter (a uniform draw below that bound).
    A server's ``Retry-After`` replaces the backoff; one longer than
    ``max_retry_after_s`` ends the retries at once instead of waiting.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(3, ge=1, le=20)
    base_delay_s: float = Field(0.25, ge=0.0, le=60.0)
    max_delay_s: float = Field(8.0, ge=0.0, le=600.0)
    max_retry_after_s: float = Field(30.0, ge=0.0, le=3600.0)
    retry_statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})


def backoff_delay(policy: RetryPolicy, retry: int, rng: random.Random) -> float:
    """Seconds to wait before retry number ``retry`` (0 for the first retry): full jitter."""
    bound = min(policy.max_delay_s, policy.base_delay_s * 2.0**retry)
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


def retry_delay(policy: RetryPolicy, retry: int, retry_after: float | None, rng: random.Random) -> float | None:
    """Seconds to wait before retry number ``retry``, or None when no retry is left or worth it."""
    # 1. Out of attempts: the caller reports the last failure.
    if retry + 1 >= policy.max_attempts:
        return None
    # 2. The server said when to come back: do so, unless it is longer than we may wait.
    if retry_after is not None:
        return retry_after if retry_after <= policy.max_retry_after_s else None
    # 3. Otherwise exponential backoff with full jitter.
    return backoff_delay(policy, retry, rng)
