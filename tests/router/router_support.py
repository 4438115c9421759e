"""Helpers for the router tests: virtual clocks and a client factory over test doubles."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import anyio
import anyio.lowlevel

from optillm_core import ModelClient
from optillm_router import ClientFactory, ProviderSpec


class JumpClock:
    """Virtual time for sequential code: ``sleep`` moves the clock forward at once and records the delay."""

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.time += max(seconds, 0.0)
        await anyio.lowlevel.checkpoint()


class VirtualClock:
    """Virtual time for concurrent code: when every task is blocked, time jumps to the next sleeper's deadline.

    Use ``async with clock.running():`` around the code under test (like trio's autojump MockClock).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self._sleepers: list[list[object]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        event = anyio.Event()
        item: list[object] = [self.time + seconds, next(self._order), event]
        heapq.heappush(self._sleepers, item)
        try:
            await event.wait()
        finally:
            item[2] = None

    def _jump(self) -> bool:
        heap = self._sleepers
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        if not heap:
            return False
        deadline = heap[0][0]
        assert isinstance(deadline, float)
        self.time = max(self.time, deadline)
        while heap and isinstance(heap[0][0], float) and heap[0][0] <= self.time:
            event = heapq.heappop(heap)[2]
            if isinstance(event, anyio.Event):
                event.set()
        return True

    async def _drive(self) -> None:
        while True:
            await _all_tasks_blocked()
            if not self._jump():
                await anyio.lowlevel.checkpoint()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[VirtualClock]:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._drive)
            try:
                yield self
            finally:
                tg.cancel_scope.cancel()


async def _all_tasks_blocked() -> None:
    """Return once every other task waits on an unfinished future (nothing can run without time passing)."""
    me = asyncio.current_task()
    while True:
        await anyio.lowlevel.checkpoint()
        for task in asyncio.all_tasks():
            if task is me:
                continue
            waiter = getattr(task, "_fut_waiter", None)
            if waiter is None or waiter.done():
                break
        else:
            return


def factory(clients: Mapping[str, ModelClient]) -> ClientFactory:
    """A client factory that serves each spec the double registered under its label."""

    def make(spec: ProviderSpec, api_key: str | None) -> ModelClient:
        return clients[spec.label]

    return make


def spec(model: str, **fields: object) -> ProviderSpec:
    """A spec for a keyless provider, labelled ``vllm/<model>``."""
    return ProviderSpec("vllm", model, **fields)
