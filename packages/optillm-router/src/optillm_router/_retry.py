"""The retry policy: which failures are worth another attempt, and how long to wait before it.

Module constants and small pure functions, so the policy can be read and tested on its own.
Delays follow the official OpenAI and Anthropic SDKs: ``min(0.5·2^attempt, 8)`` seconds less up
to 25 % jitter, or the provider's own ``retry-after`` (headers parsed by
:func:`optillm_router.parse_retry_after`) when it is at most 60 s. A longer ``retry-after`` is not
waited for: the call moves to another route at once, or fails saying when the provider will take
requests again (:func:`beyond_cap`).

:data:`MAX_RETRIES` is higher than the SDKs' 2 because the router is the only retry loop under a
strategy run of tens of calls, and the run fails when one call does: at a 30 % transient fault
rate, 3 attempts lose 2.7 % of calls (a 30-call run then fails more often than it succeeds),
11 attempts lose 1.8 calls in a million. Permanent errors are never retried, and every retry stays
within the run's budget and deadline (:func:`optillm_core.charge_call`).
"""

from __future__ import annotations as _annotations

import math
import random

from optillm_core import ClientError

__all__ = (
    "COOLDOWN_FAILURES",
    "COOLDOWN_SECONDS",
    "INITIAL_RETRY_DELAY",
    "MAX_COOLDOWN_SECONDS",
    "MAX_RETRIES",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "NEVER_RETRY_STATUSES",
    "RETRY_JITTER",
    "RETRY_STATUSES",
    "UNREACHED_RETRIES",
    "beyond_cap",
    "retry_allowed",
    "retry_delay",
    "should_retry",
)

MAX_RETRIES = 10
"""Retries of one request on one route after its first attempt (transient failures only)."""
UNREACHED_RETRIES = 2
"""Retries, as the SDKs allow, of a connection refused by a route that has never answered: a
wrong address is likelier than a restart, and the user should hear of it in seconds, not minutes."""
COOLDOWN_FAILURES = 3
"""Consecutive failed attempts after which a route (of several) cools down."""
COOLDOWN_SECONDS = 5.0
"""Length of a first cooldown (LiteLLM's default)."""
MAX_COOLDOWN_SECONDS = 60.0
"""Longest cooldown: failed probes double the length up to this."""
INITIAL_RETRY_DELAY = 0.5
"""Seconds before the first retry (doubling with each further one)."""
MAX_RETRY_DELAY = 8.0
"""Longest backoff between two attempts."""
MAX_RETRY_AFTER = 60.0
"""Longest ``retry-after`` waited for; a longer one sends the call elsewhere or fails it at once."""
RETRY_JITTER = 0.25
"""Backoff delays are shortened by a random fraction of up to this much."""
RETRY_STATUSES = frozenset({408, 409, 429, 529})
"""Retried besides every 5xx: request timeout, conflict, rate limited, overloaded."""
NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 404, 413, 422})
"""The request itself or its credentials are wrong: sending it again cannot help."""

_MAX_EXPONENT = 62


def should_retry(error: BaseException) -> bool:
    """Whether sending the same request to the same provider again may succeed.

    Timeouts, cut or malformed answers, 408, 409, 429, 5xx and 529 are retried; 400, 401, 403,
    404, 413 and 422 never; anything that is not a :class:`~optillm_core.ClientError` never.
    """
    if not isinstance(error, ClientError):
        return False
    status = error.status_code
    if status is not None:
        if status in NEVER_RETRY_STATUSES:
            return False
        if status in RETRY_STATUSES or status >= 500:
            return True
    return error.retryable


def retry_allowed(
    error: ClientError,
    retries: int,
    *,
    max_retries: int = MAX_RETRIES,
    max_retry_after: float = MAX_RETRY_AFTER,
    unreached: bool = False,
) -> bool:
    """Whether a request that failed with ``error``, after ``retries`` retries on one route, may go there again.

    Not when the failure is permanent (:func:`should_retry`), when the provider asked for a longer
    pause than ``max_retry_after`` (:func:`beyond_cap`), or when the retries are spent:
    ``max_retries`` of them, or :data:`UNREACHED_RETRIES` when ``unreached`` (the route has never
    answered and refused this connection, see :func:`optillm_router.could_not_connect`). The router's
    retry loop and the proxy's pass-through forwarding both decide with this.
    """
    if not should_retry(error):
        return False
    if beyond_cap(error.retry_after, max_retry_after):
        return False
    limit = min(max_retries, UNREACHED_RETRIES) if unreached else max_retries
    return retries < limit


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    rng: random.Random | None = None,
    *,
    initial: float = INITIAL_RETRY_DELAY,
    maximum: float = MAX_RETRY_DELAY,
    max_retry_after: float = MAX_RETRY_AFTER,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    A provider's ``retry_after`` wins (capped at ``max_retry_after``, though the router does not
    retry beyond it, see :func:`beyond_cap`); otherwise exponential
    backoff from ``initial`` up to ``maximum``, shortened by up to :data:`RETRY_JITTER`.
    """
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        return min(retry_after, max_retry_after)
    backoff = min(initial * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT), maximum)
    jitter = 1.0 - RETRY_JITTER * (rng or random).random()
    return backoff * jitter


def beyond_cap(retry_after: float | None, max_retry_after: float = MAX_RETRY_AFTER) -> bool:
    """Whether a provider asked for a longer pause than the router waits (a daily quota, say)."""
    return retry_after is not None and retry_after > max_retry_after
