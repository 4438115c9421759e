"""Optimizers, their configs, the run context they work in, and the solutions they return."""

from __future__ import annotations as _annotations

import inspect
import os
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Collection, Hashable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar, cast

import anyio
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._budget import Budget, MeteredClient, RunUsage
from ._client import ModelClient, WrapperClient, collect_stream
from ._concurrency import task_group
from ._errors import BudgetExhausted, ClientError, InvalidConfiguration, UnsupportedSetting
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
from ._log import log
from ._messages import GenerationSettings, Prompt
from ._profiles import ModelProfile
from ._responses import Completion, FinishReason, OutputTextDelta, ResponseEvent, TokenUsage
from ._tools import ToolCall

__all__ = (
    "CALLER_SETTINGS_BY_ROLE",
    "FINAL_ONLY_EXTRA",
    "CallRole",
    "Optimizer",
    "OptimizerConfig",
    "OptimizerMetadata",
    "Outcome",
    "RunContext",
    "Solution",
    "UnsupportedPolicy",
)

CallRole = Literal["answer", "judge", "final"]
"""What a call produces, which decides the caller's settings it gets (see :meth:`RunContext.call_settings`).

``answer``: a candidate answer (samples, explorers, rollouts, drafts); ``judge``: a rating, a
verdict, a critique or a comparison; ``final``: the text returned to the caller as the answer.
"""

UnsupportedPolicy = Literal["drop", "error"]
"""What a run does with a caller setting the model refuses: leave it out (noted in the metadata) or refuse the run."""

FINAL_ONLY_EXTRA = frozenset({"response_format"})
"""Provider fields of the caller that shape the returned answer, so reach only the final call."""

CALLER_SETTINGS_BY_ROLE: Mapping[CallRole, tuple[str, ...]] = {
    "answer": ("max_tokens", "temperature", "top_p", "seed"),
    "judge": ("max_tokens",),
    "final": ("max_tokens", "temperature", "top_p", "seed", "stop", "response_format", "tools", "tool_choice"),
}
"""Which of the caller's settings reach a call of each role (:meth:`RunContext.call_settings`)."""

_TOOL_SETTINGS = frozenset({"tools", "tool_choice"})

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

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, defer_build=True)

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
        """A validated copy with some fields changed (the fields set before stay the ones set)."""
        return type(self)(**{**self.model_dump(exclude_unset=True), **overrides})

    def pinned(self, **settings: str) -> frozenset[str]:
        """The generation settings whose config field the user set, so that the caller's value does not replace it.

        ``config.pinned(temperature="generation_temperature")`` is ``{"temperature"}`` when the
        config was given ``generation_temperature`` explicitly, and empty when it holds the default.
        """
        chosen = self.model_fields_set
        return frozenset(setting for setting, field in settings.items() if field in chosen)


class Outcome(BaseModel):
    """What a strategy's :meth:`Optimizer.run` returns; :meth:`Optimizer.optimize` adds the accounting.

    ``finish_reason``: why the answer's text ends, as the completion it came from said:
    ``"length"`` when the answer is cut off at a token limit (a strategy that had nothing better to
    answer with), ``"stop"`` when it is whole.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    answer: str
    reasoning: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    iterations: int = 1
    extras: dict[str, Any] = Field(default_factory=dict)
    budget_exhausted: bool = False


class OptimizerMetadata(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    optimizer_name: str
    iterations: int
    llm_calls: int
    duration_ms: int
    budget_exhausted: bool = False
    dropped_settings: tuple[str, ...] = ()
    extras: dict[str, Any] = Field(default_factory=dict)


class Solution(BaseModel):
    """The result of one optimization run, with exact usage of every model call it made.

    ``answer`` never contains the model's thinking; ``thinking`` holds the thinking behind the
    final answer where the model showed it, and ``reasoning`` the strategy's account of the run.
    ``tool_calls`` are the calls the final answer made to the caller's tools (only strategies with
    :attr:`Optimizer.answers_with_tools` return any). ``finish_reason`` is ``"length"`` when the
    answer is cut off at a token limit (see :class:`Outcome`), so that a caller can tell.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str = Field(default_factory=lambda: f"solution-{os.urandom(16).hex()}")  # uuid4's 2 µs, cut to 0.4
    answer: str
    reasoning: str
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
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
    (less any the model refuses), which :meth:`call_settings` combines with the strategy's own
    per-phase values by one rule; ``profile`` is what the model accepts.
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
        self._best: Outcome | Callable[[], Outcome | None] | None = None
        self.profile: ModelProfile = client.profile
        self._channel = channel
        self._observed = observed
        self._call_settings: dict[Hashable, tuple[GenerationSettings, ModelProfile, GenerationSettings]] = {}

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
        if self._observed:  # nobody would see it: not even built
            self.emit(PhaseStarted(phase=name))

    @property
    def best(self) -> Outcome | None:
        """The best outcome so far, returned if the run's budget runs out before the end (or ``None``)."""
        if callable(self._best):
            self._best = self._best()
        return self._best

    @best.setter
    def best(self, outcome: Outcome | None) -> None:
        self._best = outcome

    def record_best(self, answer: str, reasoning: str = "", *, thinking: str = "", **extras: Any) -> None:
        """Remember the best answer so far (and its thinking), returned if the run's budget runs out before the end."""
        self.best = Outcome(answer=answer, reasoning=reasoning, thinking=thinking, extras=extras, budget_exhausted=True)

    def defer_best(self, build: Callable[[], Outcome | None]) -> None:
        """Like setting :attr:`best`, but ``build`` runs only if the best outcome is ever asked for.

        For strategies whose best-so-far is costly to write out (a whole workspace in its extras)
        and recorded after every phase, while almost every run ends normally and never reads it.
        ``build`` must work from a snapshot of the state it describes, since the run goes on.
        """
        self._best = build

    def prompt(self, user: str, *, system: str | None = None) -> Prompt:
        """A one-turn prompt; the caller's system prompt applies unless ``system`` is given."""
        return Prompt.from_query(user, system=system if system is not None else self.system_prompt)

    def call_settings(
        self,
        role: CallRole = "answer",
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        n: int = 1,
        seed_offset: int = 0,
        pinned: Collection[str] = (),
    ) -> GenerationSettings:
        """The settings of one call: the phase's values, the caller's by the one rule, fitted to the model.

        - The caller's ``max_tokens`` caps every call; the phase's ``max_tokens`` is its own limit.
        - The caller's ``temperature``, ``top_p`` and ``seed`` replace the phase's values in
          ``answer`` and ``final`` calls, except the settings named in ``pinned`` (those the
          strategy's config set explicitly: :meth:`OptimizerConfig.pinned`); ``judge`` calls keep
          their own. A seed becomes ``seed + seed_offset``, so that parallel answers differ.
        - The caller's ``stop``, ``response_format``, ``tools`` and ``tool_choice`` reach ``final``
          calls only.
        - Finally the model's profile leaves out what the model refuses (a temperature on a
          reasoning model) and clips the output limit to its cap.
        """
        # A phase asks for the same few settings with every call: built and validated once per run
        # (they are frozen), again only if the caller's settings or the profile were replaced.
        if self.settings.seed is None:
            seed_offset = 0  # no seed to offset: parallel answers (an offset each) share one build
        key: Hashable = (role, temperature, top_p, max_tokens, n, seed_offset, pinned)
        try:
            cached = self._call_settings.get(key)
        except TypeError:  # an unhashable ``pinned``: built every time
            return self._build_call_settings(role, temperature, top_p, max_tokens, n, seed_offset, pinned)
        if cached is not None and cached[0] is self.settings and cached[1] is self.profile:
            return cached[2]
        settings = self._build_call_settings(role, temperature, top_p, max_tokens, n, seed_offset, pinned)
        self._call_settings[key] = (self.settings, self.profile, settings)
        return settings

    def _build_call_settings(
        self,
        role: CallRole,
        temperature: float | None,
        top_p: float | None,
        max_tokens: int | None,
        n: int,
        seed_offset: int,
        pinned: Collection[str],
    ) -> GenerationSettings:
        caller = self.settings
        answering = role != "judge"
        if answering:
            if caller.temperature is not None and "temperature" not in pinned:
                temperature = caller.temperature
            if caller.top_p is not None and "top_p" not in pinned:
                top_p = caller.top_p
        seed = caller.seed + seed_offset if answering and caller.seed is not None and "seed" not in pinned else None
        if caller.max_tokens is not None:
            max_tokens = caller.max_tokens if max_tokens is None else min(max_tokens, caller.max_tokens)
        final = role == "final"
        extra = caller.extra if final else {k: v for k, v in caller.extra.items() if k not in FINAL_ONLY_EXTRA}
        settings = GenerationSettings(
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            n=n,
            stop=caller.stop if final else None,
            seed=seed,
            tools=caller.tools if final else None,
            tool_choice=caller.tool_choice if final else None,
            extra=extra,
        )
        return self.profile._fitted(settings)[0]

    async def generate(self, prompt: Prompt | str, settings: GenerationSettings | None = None) -> Completion:
        """One call through the metered client (an ``answer`` call under the caller's settings by default)."""
        if isinstance(prompt, str):
            prompt = self.prompt(prompt)
        return await self.client.complete(prompt, settings or self.call_settings("answer"))

    async def generate_final(self, prompt: Prompt | str, settings: GenerationSettings | None = None) -> Completion:
        """The run's last call, whose text is the answer as it is: streamed to the caller as it is generated.

        Each piece of the answer's text (never its thinking) is sent as an :class:`AnswerDelta`
        event, so a caller that shows answers live (the proxy's ``stream: true``) can pass them on.
        Use it only when the strategy returns this completion's text unchanged. Without
        ``settings`` it is a ``final`` call under the caller's settings. A request with ``n`` > 1 is
        not streamed, nor is any call of a run whose caller passed no ``events`` to
        :meth:`Optimizer.optimize` (nobody would see the pieces, and a plain request costs less).

        A stream that breaks with a retryable error after some text went out cannot be retried as
        a stream (that text is already with the caller): the call is sent again as a plain request.
        When its text starts with what was sent, only the rest goes out as an :class:`AnswerDelta`;
        otherwise the new completion is returned as it is, and the caller, comparing it with the
        pieces it received, must tell its own client that the streamed text was abandoned.
        """
        if isinstance(prompt, str):
            prompt = self.prompt(prompt)
        settings = settings or self.call_settings("final")
        if settings.n > 1 or not self._observed:
            return await self.client.complete(prompt, settings)
        emitted: list[str] = []
        try:
            async with self.client.stream(prompt, settings) as events:
                return await collect_stream(self._emitting_deltas(events, emitted))
        except ClientError as error:
            if not (error.retryable and emitted):
                raise
            log.info("final stream broke after its first text; asking again without streaming", error=str(error))
        completion = await self.client.complete(prompt, settings)
        self._emit_remainder("".join(emitted), completion.text)
        return completion

    async def _emitting_deltas(
        self, events: AsyncIterator[ResponseEvent], emitted: list[str]
    ) -> AsyncIterator[ResponseEvent]:
        async for event in events:
            if isinstance(event, OutputTextDelta) and event.index == 0 and event.delta:
                emitted.append(event.delta)
                self.emit(AnswerDelta(delta=event.delta, optimizer=self.optimizer))
            yield event

    def _emit_remainder(self, sent: str, text: str) -> None:
        if not text.startswith(sent):
            log.warning("the repeated final call gave a different answer than the broken stream had begun")
            return
        if rest := text[len(sent) :]:
            self.emit(AnswerDelta(delta=rest, optimizer=self.optimizer))


class Optimizer(ABC, Generic[ConfigT]):
    """An inference-time optimization strategy.

    Subclasses set ``name``, ``description`` and ``config_type`` and implement :meth:`run`.
    Callers use :meth:`optimize`, which does the accounting, budgets and events for every strategy.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    config_type: ClassVar[type[OptimizerConfig]] = OptimizerConfig
    phases: ClassVar[Mapping[str, CallRole]] = {}
    """Each phase of the strategy and the role of its calls, which says which caller settings reach it."""
    answers_with_tools: ClassVar[bool] = False
    """Whether the answer is one ``final`` call made with the caller's tools, returned with its tool calls.

    A strategy that sets it returns ``Outcome(tool_calls=...)`` from that call. Runs of any other
    strategy refuse caller settings with ``tools`` (:class:`InvalidConfiguration`, before any call)
    rather than answer with the caller's tool calls lost.
    """

    def __init__(self, config: ConfigT | None = None) -> None:
        self.config: ConfigT = config if config is not None else cast(ConfigT, self.config_type())

    @classmethod
    def caller_settings_for(cls, role: CallRole) -> tuple[str, ...]:
        """The caller's settings reaching calls of ``role`` (tools only where the strategy answers with them)."""
        names = CALLER_SETTINGS_BY_ROLE[role]
        if cls.answers_with_tools:
            return names
        return tuple(name for name in names if name not in _TOOL_SETTINGS)

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None) -> Self:
        """An optimizer whose config is built from plain values, validated."""
        return cls(cast(ConfigT, cls.config_type.from_mapping(options or {})))

    @abstractmethod
    async def run(self, ctx: RunContext[ConfigT]) -> Outcome:
        """The strategy itself: make calls through ``ctx.client`` and return the answer."""

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int | None:
        """The fewest model calls a run of this config on ``client`` makes, or ``None`` when it cannot tell.

        An optional hook (the default is ``None``) that lets a caller refuse, before any call, a run
        that cannot fit its :class:`Budget` (the proxy does). It counts as the budget counts: one
        per request, a request with native ``n`` once. It is the run's ordinary path, where every
        call returns a usable answer: retries, refills of empty replies and the branches a strategy
        takes on what the model said (another improvement round, a deeper search) only add calls.
        ``settings`` are the caller's, as given to :meth:`optimize`. Work it out from the same code
        the run uses to plan its requests, with :meth:`planning_context`, so the two cannot drift.
        """
        return None

    def planning_context(self, client: ModelClient, settings: GenerationSettings | None = None) -> RunContext[ConfigT]:
        """A context for working out a run's requests without running it (for :meth:`planned_calls`).

        It holds this config, the caller's ``settings`` as a run sees them (less what the model
        refuses), and ``client``'s profile and native ``n``. A call made through it raises.
        """
        fitted, _ = _caller_settings(settings or GenerationSettings(), client, "drop")
        return RunContext(
            optimizer=self.name,
            config=self.config,
            query="",
            system_prompt=None,
            settings=fitted,
            client=MeteredClient(_PlanningClient(client)),
            channel=EventChannel(),
            observed=False,
        )

    async def optimize(
        self,
        query: str,
        client: ModelClient,
        *,
        system_prompt: str | None = None,
        settings: GenerationSettings | None = None,
        budget: Budget | None = None,
        events: EventChannel | EventHandler | None = None,
        unsupported: UnsupportedPolicy = "drop",
    ) -> Solution:
        """Run the strategy on ``query`` and return its :class:`Solution` with exact usage.

        ``settings`` are the caller's; :meth:`RunContext.call_settings` documents which calls they
        reach. A setting the model refuses (``client.profile``), such as a seed on Anthropic or a
        temperature on o3, is left out with ``unsupported="drop"`` (the default, as LiteLLM's
        ``drop_params``; named in ``metadata.dropped_settings`` and logged) or refused with
        ``"error"`` (:class:`UnsupportedSetting`, before any call).

        ``events`` receives progress events as they happen: an :class:`EventChannel` (closed when
        the run ends) or a sync or async callback. Neither can block the run. When the budget runs
        out, the best answer recorded so far is returned with ``metadata.budget_exhausted`` set;
        with none recorded, :class:`BudgetExhausted` is raised.
        """
        if not query.strip():
            raise InvalidConfiguration("the query is empty: pass the question or task to optimize")
        if settings is not None and settings.tools and not self.answers_with_tools:
            raise InvalidConfiguration(
                f"the {self.name} strategy cannot pass tools to the model: its answer is not one model call "
                "that could return tool calls; send the request without tools, or without a strategy"
            )
        settings, dropped = _caller_settings(settings or GenerationSettings(), client, unsupported)
        channel = events if isinstance(events, EventChannel) else EventChannel()
        handler = None if isinstance(events, EventChannel) else events
        async with _dispatching(channel, handler):
            solution = await self._optimize(query, client, system_prompt, settings, budget, channel, events is not None)
        if dropped:
            metadata = solution.metadata.model_copy(update={"dropped_settings": dropped})
            solution = solution.model_copy(update={"metadata": metadata})
        return solution

    async def _optimize(
        self,
        query: str,
        client: ModelClient,
        system_prompt: str | None,
        settings: GenerationSettings,
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
            settings=settings,
            client=metered,
            channel=channel,
            observed=observed,
        )
        started = anyio.current_time()
        if observed:  # a run nobody observes builds none of its events
            ctx.emit(RunStarted(query=query))
        try:
            outcome = await self.run(ctx)
        except BudgetExhausted as exc:
            if ctx.best is None:
                if observed:
                    ctx.emit(RunFailed(error=str(exc), error_type=type(exc).__name__))
                raise
            log.info("budget exhausted, returning best so far", optimizer=self.name, reason=str(exc))
            outcome = ctx.best.model_copy(update={"extras": {**ctx.best.extras, "budget": str(exc)}})
        except Exception as exc:
            if observed:
                ctx.emit(RunFailed(error=str(exc), error_type=type(exc).__name__))
            raise
        duration_ms = round((anyio.current_time() - started) * 1000)
        usage = metered.usage
        solution = Solution(
            answer=outcome.answer,
            reasoning=outcome.reasoning,
            thinking=outcome.thinking,
            tool_calls=outcome.tool_calls,
            finish_reason=outcome.finish_reason,
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
        if observed:
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


class _PlanningClient(WrapperClient):
    """The client of a planning context: its profile and native ``n``, and no calls."""

    def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        raise RuntimeError("a planning context makes no model calls")

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        raise RuntimeError("a planning context makes no model calls")


def _caller_settings(
    settings: GenerationSettings, client: ModelClient, policy: UnsupportedPolicy
) -> tuple[GenerationSettings, tuple[str, ...]]:
    """The caller's settings less those the model refuses, and their names; or the refusal under ``error``."""
    profile = client.profile
    refused = profile.unsupported(settings)
    if not refused:
        return settings, ()
    if policy == "error" or "tools" in refused:  # dropped tools would lose the caller's tool calls
        raise UnsupportedSetting(refused, client.model_name)
    log.info("leaving out settings the model refuses", settings=list(refused), model=client.model_name)
    fitted = profile.fit(settings).settings  # drops what is refused; a too-long stop list keeps its first entries
    return fitted.with_(max_tokens=settings.max_tokens), refused


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
