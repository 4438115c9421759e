"""Run independent awaitables concurrently in an anyio task group, with plain exceptions out."""

from __future__ import annotations as _annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeVar

import anyio

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

__all__ = ("gather", "task_group")

T = TypeVar("T")


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first leaf that is not a cancellation, else the group itself."""
    cancelled = anyio.get_cancelled_exc_class()
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaf = _first_error(exc)
            if leaf is not exc:
                return leaf
        elif not isinstance(exc, cancelled):
            return exc
    return group


@asynccontextmanager
async def task_group() -> AsyncIterator[TaskGroup]:
    """An anyio task group that raises the first real error itself instead of an ``ExceptionGroup``.

    The first failure cancels the sibling tasks, as in any task group.
    """
    try:
        async with anyio.create_task_group() as tg:
            yield tg
    except BaseExceptionGroup as group:
        error = _first_error(group)
        if error is group:
            raise
        # Keep the error's own cause (``raise NoSolutions(...) from failed_call``); drop only the group.
        raise error from error.__cause__


async def gather(thunks: Iterable[Callable[[], Awaitable[T]]]) -> list[T]:
    """Await every thunk concurrently and return their results in order.

    The first failure cancels the others and is raised as it is. The first thunk runs in the
    calling task and only the others get tasks of their own (each task costs more CPU than a model
    call's bookkeeping); a single thunk is simply awaited, with no task group at all.
    """
    calls = list(thunks)
    if len(calls) <= 1:
        return [await call() for call in calls]
    slots: dict[int, T] = {}

    async def run(index: int, thunk: Callable[[], Awaitable[T]]) -> None:
        slots[index] = await thunk()

    async with task_group() as tg:
        for index in range(1, len(calls)):
            tg.start_soon(run, index, calls[index])
        slots[0] = await calls[0]()
    return [slots[i] for i in range(len(calls))]
