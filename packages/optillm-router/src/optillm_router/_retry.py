"""The retry policy: which failures are worth another attempt, and how long to wait before it.

Module constants and small pure functions, so the policy can be read and tested on its own.
Delays follow the official OpenAI and Anthropic SDKs: ``min(0.5·2^attempt, 8)`` seconds less up
to 25 % jitter, or the provider's own ``retry-after`` (headers parsed by
:func:`optillm_router.parse_retry_after`), capped at 60 s.
"""

from __future__ import annotations as _annotations

import math
import random

from optillm_core import ClientError

__all__ = (
    "INITIAL_RETRY_DELAY",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "NEVER_RETRY_STATUSES",
    "RETRY_JITTER",
    "RETRY_STATUSES",
    "retry_delay",
    "should_retry",
)

INITIAL_RETRY_DELAY = 0.5
"""Seconds before the first retry (doubling with each further one)."""
MAX_RETRY_DELAY = 8.0
"""Longest backoff between two attempts."""
MAX_RETRY_AFTER = 60.0
"""Longest ``retry-after`` honoured; a longer one is cut to this."""
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

    A provider's ``retry_after`` wins, capped at ``max_retry_after``; otherwise exponential
    backoff from ``initial`` up to ``maximum``, shortened by up to :data:`RETRY_JITTER`.
    """
    if retry_after is not None and math.isfinite(retry_after) and retry_after >= 0:
        return min(retry_after, max_retry_after)
    backoff = min(initial * 2.0 ** min(max(attempt, 0), _MAX_EXPONENT), maximum)
    jitter = 1.0 - RETRY_JITTER * (rng or random).random()
    return backoff * jitter
