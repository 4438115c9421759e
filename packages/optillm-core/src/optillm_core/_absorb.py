"""What a phase may go on without: the one policy for failed calls inside a run.

A phase may absorb a call that failed in a way that retrying might have fixed (a provider's rate
limit, overload, 5xx, timeout or malformed body, after the router's own retries) or whose reply
could not be read (:class:`ParsingError`): the phase goes on with the calls that succeeded, and the
failure is logged with the strategy's name. Authentication, permission and bad-request errors,
budget exhaustion, cancellation and programming errors are not absorbed: they end the run, with
the provider's message.
"""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from ._concurrency import gather
from ._errors import ClientError, ParsingError
from ._log import log

__all__ = ("absorbable", "settle")

T = TypeVar("T")


def absorbable(error: BaseException) -> bool:
    """Whether a phase may go on without the call that raised ``error`` (see the module's policy)."""
    if isinstance(error, ClientError):
        return error.retryable
    return isinstance(error, ParsingError)


async def settle(
    thunks: Iterable[Callable[[], Awaitable[T]]], *, optimizer: str = "", what: str = "call"
) -> list[T | Exception]:
    """Await the thunks concurrently; an absorbable failure stays in its slot, any other ends them all.

    Each absorbed failure is logged (``what`` names the call: "rating", "candidate"); the caller
    decides what a slot's error means for its phase (an unrated candidate, a missing sample).
    """

    def guarded(thunk: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T | Exception]]:
        async def run() -> T | Exception:
            try:
                return await thunk()
            except Exception as exc:
                if not absorbable(exc):
                    raise
                log.warning(f"a {what} failed; the phase goes on without it", optimizer=optimizer, error=str(exc))
                return exc

        return run

    return await gather(guarded(thunk) for thunk in thunks)
