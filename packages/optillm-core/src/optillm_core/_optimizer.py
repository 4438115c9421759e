"""Optimizers, their configs, the run context they work in, and the solutions they return."""

from __future__ import annotations as _annotations

import inspect
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

import anyio
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._budget import Budget, MeteredClient, RunUsage
from ._client import ModelClient, collect_stream
from ._concurrency import task_group
from ._errors import BudgetExhausted, InvalidConfiguration
from ._events import (
    AnswerDelta,
    CallFinished,
    EventChannel,
    EventHandler,
    OptimizerEvent,
    PhaseStarted,
    RunCompleted,
    RunFailed,
    RunStarted,
)
from ._extract import VisibleTextStream
from ._messages import GenerationSettings, Prompt
from ._responses import Completion, OutputTextDelta, ResponseEvent, TokenUsage

__all__ = ("Optimizer", "OptimizerConfig", "OptimizerMetadata", "Outcome", "RunContext", "Solution")

log = structlog.get_logger("optillm")

# How long a finished run waits for an async event handler to take its last events.
EVENT_DRAIN_GRACE_SECONDS = 1.0


def describe_validation_error(owner: str, exc: ValidationError, fields: list[str]) -> str:
    """One readable line per problem, naming the field and what it expects."""
    problems = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "(config)"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown field '{field}' (valid fields: {', '.join(fields)})")
        else:
            problems.append(f"{field}: {error['msg']} (got {error.get('input')!r})")
    return f"invalid {owner}: " + "; ".join(problems)


class OptimizerConfig(BaseModel):
    """Base of every strategy's settings: frozen, unknown fields refused.

    Validation errors come out as :class:`InvalidConfiguration` naming the field.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    max_concurrency: int = Field(default=16, ge=1, description="model calls one run may have in flight")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise InvalidConfiguration(
                describe_validation_error(type(self).__name__, exc, list(type(self).model_fields))
            ) from None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """Build a config from plain values (strings are converted where the field's type allows)."""
        return cls(**dict(data))

    def with_overrides(self, overrides: Mapping[str, Any]) -> Self:
        """A validated copy with some fields changed."""
        return type(self)(**{**self.model_dump(), **overrides})


class Outcome(BaseModel):
    """What a strategy's :meth:`Optimizer.run` returns; :meth:`Optimizer.optimize` adds the accounting."""

    model_config = ConfigDict(frozen=True)

    answer: str
    reasoning: str = ""
    iterations: int = 1
    extras: dict[str, Any] = Field(default_factory=dict)
    budget_exhausted: bool = False


class OptimizerMetadata(BaseModel):
    model_config = ConfigDict(frozen=True)

    optimizer_name: str
    iterations: int
    llm_calls: int
    duration_ms: int
    budget_exhausted: bool = False
    extras: dict[str, Any] = Field(default_factory=dict)


class Solution(BaseModel):
    """The result of one optimization run, with exact usage of every model call it made."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=lambda: f"solution-{uuid.uuid4()}")
    answer: str
    reasoning: str
    usage: TokenUsage
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    metadata: OptimizerMetadata

    @property
    def prompt_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def completion_tokens(self) -> int:
        return self.usage.output_tokens


ConfigT = TypeVar("ConfigT", bound=OptimizerConfig)


class RunContext(Generic[ConfigT]):
    """Everything a strategy needs during one run.

    ``client`` counts and limits every call; ``settings`` holds the caller's generation settings
    (for example the request's ``max_tokens``), which :meth:`call_settings` merges under the
    strategy's own per-phase values.
    """

    def __init__(
        self,
        *,
        optimizer: str,
        config: ConfigT,
        query: str,
        system_prompt: str | None,
        settings: GenerationSettings,
        client: MeteredClient,
        channel: EventChannel,
        observed: bool = True,
    ) -> None:
        self.optimizer = optimizer
        self.config = config
        self.query = query
        self.system_prompt = system_prompt
        self.settings = settings
        self.client = client
        self.best: Outcome | None = None
        self._channel = channel
        self._observed = observed

    @property
    def usage(self) -> RunUsage:
        return self.client.usage

    def emit(self, event: OptimizerEvent) -> None:
        """Send an event to the caller; never blocks. A run nobody observes drops it at once."""
        if not self._observed:
            return
        if not event.optimizer:
            event = event.model_copy(update={"optimizer": self.optimizer})
        self._channel.send(event)

    def phase(self, name: str) -> None:
        self.emit(PhaseStarted(phase=name))

    def record_best(self, answer: str, reasoning: str = "", **extras: Any) -> None:
        """Remember the best answer so far, returned if the run's budget runs out before the end."""
        self.best = Outcome(answer=answer, reasoning=reasoning, extras=extras, budget_exhausted=True)

    def prompt(self, user: str, *, system: str | None = None) -> Prompt:
        """A one-turn prompt; the caller's system prompt applies unless ``system`` is given."""
        return Prompt.from_query(user, system=system if system is not None else self.system_prompt)

    def call_settings(self, **phase: Any) -> GenerationSettings:
        """The caller's settings with the phase's non-``None`` values taking precedence."""
        return self.settings.with_(**{k: v for k, v in phase.items() if v is not None})

    async def generate(self, prompt: Prompt | str, settings: GenerationSettings | None = None) -> Completion:
        """One call through the metered client."""
        if isinstance(prompt, str):
            prompt = self.prompt(prompt)
        return await self.client.complete(prompt, settings or self.settings)

    async def generate_final(
        self, prompt: Prompt | str, settings: GenerationSettings | None = None, *, hide_thinking: bool = False
    ) -> Completion:
        """The run's last call, whose text is the answer as it is: streamed to the caller as it is generated.

        Each piece of text is sent as an :class:`AnswerDelta` event, so a caller that shows answers
        live (the proxy's ``stream: true``) can pass them on. Use it only when the strategy returns
        this completion's text unchanged, or with ``hide_thinking`` when it returns the text outside
        thinking tags (:func:`split_thinking`): then only that part is sent, once ``</think>`` has
        arrived. A request with ``n`` > 1 is not streamed, nor is any call of a run whose caller
        passed no ``events`` to :meth:`Optimizer.optimize` (nobody would see the pieces, and a
        plain request costs less).
        """
        if isinstance(prompt, str):
            prompt = self.prompt(prompt)
        settings = settings or self.settings
        if settings.n > 1 or not self._observed:
            return await self.client.complete(prompt, settings)
        async with self.client.stream(prompt, settings) as events:
            return await collect_stream(self._emitting_deltas(events, VisibleTextStream() if hide_thinking else None))

    async def _emitting_deltas(
        self, events: AsyncIterator[ResponseEvent], visible: VisibleTextStream | None
    ) -> AsyncIterator[ResponseEvent]:
        async for event in events:
            if isinstance(event, OutputTextDelta) and event.index == 0 and event.delta:
                delta = visible.feed(event.delta) if visible is not None else event.delta
                if delta:
                    self.emit(AnswerDelta(delta=delta, optimizer=self.optimizer))
            yield event


class Optimizer(ABC, Generic[ConfigT]):
    """An inference-time optimization strategy.

    Subclasses set ``name``, ``description`` and ``config_type`` and implement :meth:`run`.
    Callers use :meth:`optimize`, which does the accounting, budgets and events for every strategy.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    config_type: ClassVar[type[OptimizerConfig]] = OptimizerConfig

    def __init__(self, config: ConfigT | None = None) -> None:
        self.config: ConfigT = config if config is not None else cast(ConfigT, self.config_type())

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None) -> Self:
        """An optimizer whose config is built from plain values, validated."""
        return cls(cast(ConfigT, cls.config_type.from_mapping(options or {})))

    @abstractmethod
    async def run(self, ctx: RunContext[ConfigT]) -> Outcome:
        """The strategy itself: make calls through ``ctx.client`` and return the answer."""

    async def optimize(
        self,
        query: str,
        client: ModelClient,
        *,
        system_prompt: str | None = None,
        settings: GenerationSettings | None = None,
        budget: Budget | None = None,
        events: EventChannel | EventHandler | None = None,
    ) -> Solution:
        """Run the strategy on ``query`` and return its :class:`Solution` with exact usage.

        ``events`` receives progress events as they happen: an :class:`EventChannel` (closed when
        the run ends) or a sync or async callback. Neither can block the run. When the budget runs
        out, the best answer recorded so far is returned with ``metadata.budget_exhausted`` set;
        with none recorded, :class:`BudgetExhausted` is raised.
        """
        if not query.strip():
            raise InvalidConfiguration("the query is empty: pass the question or task to optimize")
        channel = events if isinstance(events, EventChannel) else EventChannel()
        handler = None if isinstance(events, EventChannel) else events
        async with _dispatching(channel, handler):
            return await self._optimize(query, client, system_prompt, settings, budget, channel, events is not None)

    async def _optimize(
        self,
        query: str,
        client: ModelClient,
        system_prompt: str | None,
        settings: GenerationSettings | None,
        budget: Budget | None,
        channel: EventChannel,
        observed: bool,
    ) -> Solution:
        def on_call(usage: RunUsage) -> None:
            channel.send(
                CallFinished(
                    optimizer=self.name,
                    llm_calls=usage.llm_calls,
                    prompt_tokens=usage.input_tokens,
                    completion_tokens=usage.output_tokens,
                )
            )

        metered = MeteredClient(
            client, budget=budget, max_concurrency=self.config.max_concurrency, on_call=on_call if observed else None
        )
        ctx = RunContext(
            optimizer=self.name,
            config=self.config,
            query=query,
            system_prompt=system_prompt,
            settings=settings or GenerationSettings(),
            client=metered,
            channel=channel,
            observed=observed,
        )
        started = anyio.current_time()
        ctx.emit(RunStarted(query=query))
        try:
            outcome = await self.run(ctx)
        except BudgetExhausted as exc:
            if ctx.best is None:
                ctx.emit(RunFailed(error=str(exc), error_type=type(exc).__name__))
                raise
            log.info("budget exhausted, returning best so far", optimizer=self.name, reason=str(exc))
            outcome = ctx.best.model_copy(update={"extras": {**ctx.best.extras, "budget": str(exc)}})
        except Exception as exc:
            ctx.emit(RunFailed(error=str(exc), error_type=type(exc).__name__))
            raise
        duration_ms = round((anyio.current_time() - started) * 1000)
        usage = metered.usage
        solution = Solution(
            answer=outcome.answer,
            reasoning=outcome.reasoning,
            usage=usage.tokens,
            metadata=OptimizerMetadata(
                optimizer_name=self.name,
                iterations=outcome.iterations,
                llm_calls=usage.llm_calls,
                duration_ms=duration_ms,
                budget_exhausted=outcome.budget_exhausted,
                extras=outcome.extras,
            ),
        )
        ctx.emit(
            RunCompleted(
                answer=solution.answer,
                llm_calls=usage.llm_calls,
                total_tokens=usage.total_tokens,
                duration_ms=duration_ms,
                budget_exhausted=outcome.budget_exhausted,
            )
        )
        return solution


@asynccontextmanager
async def _dispatching(channel: EventChannel, handler: EventHandler | None) -> AsyncIterator[None]:
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
