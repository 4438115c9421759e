"""Per-run accounting and budgets, done once for every strategy by wrapping its client."""

from __future__ import annotations as _annotations

import math
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass

import anyio
from pydantic import BaseModel, ConfigDict, Field

from ._client import ModelClient, WrapperClient
from ._errors import BudgetExhausted
from ._messages import GenerationSettings, Prompt
from ._responses import Completed, Completion, ResponseEvent, TokenUsage

__all__ = ("Budget", "MeteredClient", "RunUsage")


class Budget(BaseModel):
    """Optional limits of one run: LLM calls, tokens (prompt + completion) and wall-clock seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_calls: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)


@dataclass
class RunUsage:
    """Running totals of one run. A request with native ``n`` > 1 counts as one call."""

    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def tokens(self) -> TokenUsage:
        return TokenUsage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


class MeteredClient(WrapperClient):
    """Counts every call and token that goes through it, enforces a :class:`Budget`, and bounds concurrency.

    A call is counted when it starts, so concurrent calls cannot overshoot ``max_calls``. The token
    budget is checked before each call (a call in flight may end past it). The time budget is a
    deadline: a call still running when it passes is cancelled and raises :class:`BudgetExhausted`.
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
        self.budget = budget or Budget()
        self.usage = RunUsage()
        self._on_call = on_call
        self._limiter = anyio.CapacityLimiter(max_concurrency or math.inf)
        self._deadline = (
            anyio.current_time() + self.budget.max_seconds if self.budget.max_seconds is not None else math.inf
        )

    def remaining_seconds(self) -> float:
        return self._deadline - anyio.current_time()

    def _reserve_call(self) -> None:
        budget, usage = self.budget, self.usage
        if budget.max_calls is not None and usage.llm_calls >= budget.max_calls:
            raise BudgetExhausted("calls", budget.max_calls, usage.llm_calls)
        if budget.max_tokens is not None and usage.total_tokens >= budget.max_tokens:
            raise BudgetExhausted("tokens", budget.max_tokens, usage.total_tokens)
        if self._deadline != math.inf and self.remaining_seconds() <= 0:
            raise BudgetExhausted("time", self.budget.max_seconds or 0, self.budget.max_seconds or 0)
        usage.llm_calls += 1

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
        try:
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            await self._limiter.acquire()
        try:
            yield
        finally:
            self._limiter.release()

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        async with self._slot():
            self._reserve_call()
            try:
                with self._time_limit():
                    completion = await self.wrapped.request(prompt, settings)
            except TimeoutError as exc:
                if self.remaining_seconds() <= 0:
                    raise self._time_exhausted() from exc
                raise
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
                            event = await anext(events)
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
