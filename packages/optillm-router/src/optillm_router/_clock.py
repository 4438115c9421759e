"""The router's sense of time, injectable so that tests can run minutes of rate limits instantly."""

from __future__ import annotations as _annotations

import time
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
    """The real clock: ``time.monotonic`` and ``anyio.sleep``.

    ``time.monotonic`` rather than ``anyio.current_time``, which looks up the async backend on
    every read (the router reads the time several times per call); the router only compares its
    own readings, so it needs no particular loop's clock.
    """

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)
