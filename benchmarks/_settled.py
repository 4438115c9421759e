"""Running many independent runs at once in the harness, keeping each one's result or its failure."""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from optillm_core.toolkit import gather

__all__ = ("every_outcome",)

T = TypeVar("T")


async def every_outcome(thunks: Iterable[Callable[[], Awaitable[T]]]) -> list[T | Exception]:
    """Each thunk's result, or the exception it raised, in order; a failure cancels nothing.

    For measuring runs, whose failures are counted, not for a strategy's phases (those follow the
    toolkit's absorb policy, ``optillm_core.toolkit.settle``).
    """

    def kept(thunk: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T | Exception]]:
        async def run() -> T | Exception:
            try:
                return await thunk()
            except Exception as exc:
                return exc

        return run

    return await gather(kept(thunk) for thunk in thunks)
