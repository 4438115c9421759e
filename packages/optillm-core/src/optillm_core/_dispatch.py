"""Delivering a run's events: the channel closes when the run ends; a callback is fed from it in a task of its own."""

from __future__ import annotations as _annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

from ._concurrency import task_group
from ._events import EventChannel, EventHandler
from ._log import log

__all__ = ("dispatching",)

# How long a finished run waits for an async event handler to take its last events.
EVENT_DRAIN_GRACE_SECONDS = 1.0


@asynccontextmanager
async def dispatching(channel: EventChannel, handler: EventHandler | None) -> AsyncIterator[None]:
    """Close the channel when the run ends; feed a callback from it in a task of its own."""
    if handler is None:
        try:
            yield
        finally:
            channel.close()
        return

    delivered = anyio.Event()

    async def deliver() -> None:
        try:
            await _deliver_all(channel, handler)
        finally:
            delivered.set()

    async with task_group() as tg:
        tg.start_soon(deliver)
        try:
            yield
        finally:
            channel.close()
            with anyio.move_on_after(EVENT_DRAIN_GRACE_SECONDS, shield=True):
                await delivered.wait()
            tg.cancel_scope.cancel()


async def _deliver_all(channel: EventChannel, handler: EventHandler) -> None:
    async for event in channel:
        try:
            result = handler(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            log.exception("event handler failed", event_kind=event.kind)
