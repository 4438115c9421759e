"""The router's sense of time, injectable so that tests can run minutes of rate limits instantly."""

from __future__ import annotations as _annotations

from typing import Protocol

import anyio

__all__ = ("AnyioClock", "Clock")


class Clock(Protocol):
    """Where the router reads the time and how it waits (rate windows, backoff, cooldowns, latency)."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on this clock."""
        ...


class AnyioClock:
    """The event loop's clock: ``anyio.current_time`` and ``anyio.sleep``."""

    def now(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)
