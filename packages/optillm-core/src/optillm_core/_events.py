"""Progress events of an optimization run, and a channel that never blocks the run."""

from __future__ import annotations as _annotations

from collections import deque
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import Any, Protocol

import anyio
from pydantic import BaseModel, ConfigDict, Field

__all__ = (
    "AnswerDelta",
    "CallFinished",
    "EventChannel",
    "EventHandler",
    "OptimizerEvent",
    "PhaseStarted",
    "RunCompleted",
    "RunFailed",
    "RunStarted",
)

DEFAULT_EVENT_BUFFER = 10_000


class OptimizerEvent(BaseModel):
    """Base of every event; strategies subclass it for their own phases (``kind`` names the class)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    optimizer: str = ""
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_json_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict with its ``kind``."""
        return {"kind": self.kind, **self.model_dump(mode="json")}


class RunStarted(OptimizerEvent):
    query: str


class PhaseStarted(OptimizerEvent):
    """A strategy entered one of its declared phases (``exploration``, ``critique`` …); ``round`` counts repeats."""

    phase: str
    round: int | None = None

    @property
    def label(self) -> str:
        """The phase as people read it: ``improvement 2`` for round 2 of ``improvement``."""
        return self.phase if self.round is None else f"{self.phase} {self.round}"


class CallFinished(OptimizerEvent):
    """A model call ended; running totals of the run so far."""

    llm_calls: int
    prompt_tokens: int
    completion_tokens: int


class AnswerDelta(OptimizerEvent):
    """A piece of the final answer as the run's last generation produces it (see ``RunContext.generate_final``)."""

    delta: str


class RunCompleted(OptimizerEvent):
    answer: str
    llm_calls: int
    total_tokens: int
    duration_ms: int
    budget_exhausted: bool = False


class RunFailed(OptimizerEvent):
    error: str
    error_type: str


class EventHandler(Protocol):
    """A callback for events; it may be sync or async. Exceptions it raises are logged and ignored."""

    def __call__(self, event: OptimizerEvent, /) -> Awaitable[None] | None: ...


class EventChannel:
    """A buffer of events between a run and its consumer that never blocks the run.

    ``send`` is synchronous and O(1). When the consumer falls behind by ``max_buffer`` events,
    the oldest are dropped and counted in ``dropped``; the run goes on either way. Iterate with
    ``async for`` until the run closes the channel.
    """

    def __init__(self, max_buffer: int = DEFAULT_EVENT_BUFFER) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self._buffer: deque[OptimizerEvent] = deque(maxlen=max_buffer)
        self._wakeup = anyio.Event()
        self._closed = False
        self.dropped = 0
        self.sent = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def send(self, event: OptimizerEvent) -> None:
        """Queue an event; never waits. Events sent after ``close`` are ignored."""
        if self._closed:
            return
        if len(self._buffer) == self._buffer.maxlen:
            self.dropped += 1
        self._buffer.append(event)
        self.sent += 1
        self._wakeup.set()

    def close(self) -> None:
        self._closed = True
        self._wakeup.set()

    def drain(self) -> list[OptimizerEvent]:
        """Take every queued event now, without waiting."""
        events = list(self._buffer)
        self._buffer.clear()
        return events

    async def __aiter__(self) -> AsyncIterator[OptimizerEvent]:
        while True:
            while self._buffer:
                yield self._buffer.popleft()
            if self._closed:
                return
            self._wakeup = anyio.Event()
            if self._buffer or self._closed:
                continue
            await self._wakeup.wait()
