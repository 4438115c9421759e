"""Per-run accounting and budgets, done once for every strategy by wrapping its client.

The seam for a retrying client (the router) underneath: while a :class:`MeteredClient` call is in
flight, :func:`charge_call` asks every run metering it for room for one more request (a retry,
or a choice the provider failed to return) and counts it, and :func:`run_time_left` tells how
long the run may still wait. Both do nothing outside a metered call. The runs are kept in a
context variable, so tasks spawned inside a call (a fan-out of ``n``) inherit them.
"""

from __future__ import annotations as _annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache

import anyio
from pydantic import BaseModel, ConfigDict, Field

from ._client import ModelClient, WrapperClient
from ._errors import BudgetExhausted
from ._messages import GenerationSettings, Prompt
from ._responses import Completed, Completion, ResponseEvent, TokenUsage

__all__ = ("Budget", "MeteredClient", "RunUsage", "charge_call", "run_time_left")


class Budget(BaseModel):
    """Optional limits of one run: LLM calls, tokens (prompt + completion) and wall-clock seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    max_calls: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)


@dataclass
class RunUsage:
    """Running totals of one run. A request with native ``n`` > 1 counts as one call.

    ``llm_calls`` counts every request sent, retries included; ``retries`` counts the retries.
    """

    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0

    @property
    def tokens(self) -> TokenUsage:
        return TokenUsage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@cache
def _no_budget() -> Budget:
    """The empty budget, built once (frozen, so every unlimited run can share it)."""
    return Budget()


_ACTIVE_RUNS: ContextVar[tuple[MeteredClient, ...]] = ContextVar("optillm_active_runs", default=())
"""The runs metering the call in flight in this context, outermost first."""


def charge_call(*, retry: bool, wait: float = 0.0) -> None:
    """Count one more request of the call in flight against every run metering it.

    For a client under :class:`MeteredClient` that sends more than the one request it was asked
    for: a retry (``retry=True``), or a choice the provider did not return. ``wait`` is how long
    the client will wait before sending it. Raises :class:`BudgetExhausted`, counting nothing,
    when a run has no call or token budget left, or its deadline comes within ``wait`` seconds.
    Outside a metered call it does nothing.
    """
    runs = _ACTIVE_RUNS.get()
    for run in runs:
        run._check_room(wait)
    for run in runs:
        run.usage.llm_calls += 1
        if retry:
            run.usage.retries += 1


def run_time_left() -> float:
    """Seconds until the earliest deadline of the runs metering the call in flight (``inf``: none)."""
    return min((run.remaining_seconds() for run in _ACTIVE_RUNS.get()), default=math.inf)


class MeteredClient(WrapperClient):
    """Counts every call and token that goes through it, enforces a :class:`Budget`, and bounds concurrency.

    A call is counted when it starts, so concurrent calls cannot overshoot ``max_calls``. The token
    budget is checked before each call (a call in flight may end past it). The time budget is a
    deadline: a call still running when it passes is cancelled and raises :class:`BudgetExhausted`.
    Requests the wrapped client adds on its own (retries) are counted and refused through
    :func:`charge_call`.
    """

    def __init__(
        self,
        wrapped: ModelClient,
        *,
        budget: Budget | None = None,
        max_concurrency: int | None = None,
        on_call: Callable[[RunUsage], None] | None = None,
    ) -> None:
        super().__init__(wrapped)
        self.budget = budget or _no_budget()
        self.usage = RunUsage()
        self._on_call = on_call
        # No limiter at all without a limit: an outer meter (the CLI's) then costs a few additions per call.
        self._limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None
        self._deadline = (
            anyio.current_time() + self.budget.max_seconds if self.budget.max_seconds is not None else math.inf
        )
        self._as_run = (self,)

    def remaining_seconds(self) -> float:
        return self._deadline - anyio.current_time()

    def _check_room(self, wait: float = 0.0) -> None:
        """Raise :class:`BudgetExhausted` unless one more call may start ``wait`` seconds from now."""
        budget, usage = self.budget, self.usage
        if budget.max_calls is not None and usage.llm_calls >= budget.max_calls:
            raise BudgetExhausted("calls", budget.max_calls, usage.llm_calls)
        if budget.max_tokens is not None and usage.total_tokens >= budget.max_tokens:
            raise BudgetExhausted("tokens", budget.max_tokens, usage.total_tokens)
        if self._deadline != math.inf and self.remaining_seconds() <= wait:
            raise self._time_exhausted()  # by the time the call could start, the run's time is up

    def _reserve_call(self) -> None:
        self._check_room()
        self.usage.llm_calls += 1

    def _settle(self, usage: TokenUsage | None) -> None:
        if usage is not None:
            self.usage.input_tokens += usage.input_tokens
            self.usage.output_tokens += usage.output_tokens
        if self._on_call is not None:
            self._on_call(self.usage)

    def _time_exhausted(self) -> BudgetExhausted:
        limit = self.budget.max_seconds or 0
        return BudgetExhausted("time", limit, limit)

    def _time_limit(self) -> AbstractContextManager[object]:
        """A scope that ends at the run's deadline; nothing at all when the run has none (it costs CPU per call)."""
        return nullcontext() if self._deadline == math.inf else anyio.fail_after(self.remaining_seconds())

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """One of the run's ``max_concurrency`` slots for the length of a call.

        A free slot is taken without yielding to the event loop (``CapacityLimiter``'s ``async with``
        always yields once, a loop iteration per call); only a call that must wait awaits.
        """
        limiter = self._limiter
        if limiter is None:
            yield
            return
        try:
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            await limiter.acquire()
        try:
            yield
        finally:
            limiter.release()

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        # The slot is taken and given back here rather than through ``_slot``: a generator-based
        # context manager per call costs more CPU than the rest of the metering together.
        limiter = self._limiter
        if limiter is not None:
            try:
                limiter.acquire_nowait()
            except anyio.WouldBlock:
                await limiter.acquire()
        try:
            self._reserve_call()
            active = _ACTIVE_RUNS.set(_ACTIVE_RUNS.get() + self._as_run)
            try:
                if self._deadline == math.inf:
                    completion = await self.wrapped.request(prompt, settings)
                else:
                    with anyio.fail_after(self.remaining_seconds()):
                        completion = await self.wrapped.request(prompt, settings)
            except TimeoutError as exc:
                if self.remaining_seconds() <= 0:
                    raise self._time_exhausted() from exc
                raise
            finally:
                _ACTIVE_RUNS.reset(active)
        finally:
            if limiter is not None:
                limiter.release()
        self._settle(completion.usage)
        return completion

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        async with self._slot():
            self._reserve_call()
            events = self.wrapped.request_stream(prompt, settings)
            usage: TokenUsage | None = None
            try:
                while True:
                    try:
                        with self._time_limit():
                            event = await self._next_event(events)
                    except StopAsyncIteration:
                        break
                    except TimeoutError as exc:
                        if self.remaining_seconds() <= 0:
                            raise self._time_exhausted() from exc
                        raise
                    if isinstance(event, Completed):
                        usage = event.usage
                    yield event
            finally:
                aclose = getattr(events, "aclose", None)
                if aclose is not None:
                    await aclose()
                self._settle(usage)

    async def _next_event(self, events: AsyncIterator[ResponseEvent]) -> ResponseEvent:
        # Charged to this run: retries before the first event, and choices a provider left out,
        # which a router requests once the stream has ended.
        active = _ACTIVE_RUNS.set(_ACTIVE_RUNS.get() + self._as_run)
        try:
            return await anext(events)
        finally:
            _ACTIVE_RUNS.reset(active)
