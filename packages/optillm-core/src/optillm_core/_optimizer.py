"""The optimizer: a strategy's extension point, and the run around it (settings, accounting, budgets, events)."""

from __future__ import annotations as _annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar, Generic, Self, cast

import anyio

from ._budget import Budget, MeteredClient, RunUsage
from ._client import ModelClient, WrapperClient
from ._config import CALLER_SETTINGS_BY_ROLE, CallRole, OptimizerConfig, UnsupportedPolicy
from ._context import ConfigT, RunContext
from ._conversation import Conversation
from ._dispatch import dispatching
from ._errors import BudgetExhausted, InvalidConfiguration, UnsupportedSetting
from ._events import CallFinished, EventChannel, EventHandler, RunCompleted, RunFailed, RunStarted
from ._log import log
from ._messages import GenerationSettings, Prompt
from ._outcome import OptimizerMetadata, Outcome, Solution
from ._responses import Completion, ResponseEvent

__all__ = ("Optimizer",)

_TOOL_SETTINGS = frozenset({"tools", "tool_choice"})


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
    """Whether the strategy serves an agent's turn: with tools offered, it answers with text or with tool calls.

    A strategy that sets it makes the calls that may answer with the caller's tools (its ``final``
    call, or samples it may return as they are) with :meth:`RunContext.conversation_prompt` and
    returns ``Outcome(tool_calls=...)`` when the chosen reply calls tools. Runs of any other
    strategy refuse caller settings with ``tools`` (:class:`InvalidConfiguration`, before any
    call, giving :attr:`without_tools_because`) rather than answer with the caller's tool calls lost.
    """
    without_tools_because: ClassVar[str] = "its answer is not a model call that could return tool calls"
    """Why the strategy cannot answer with tools, in one line (only read when :attr:`answers_with_tools` is false)."""

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
            conversation=_planning_conversation(),
            settings=fitted,
            client=MeteredClient(_PlanningClient(client)),
            channel=EventChannel(),
            observed=False,
        )

    async def optimize(
        self,
        query: str | Conversation,
        client: ModelClient,
        *,
        system_prompt: str | None = None,
        settings: GenerationSettings | None = None,
        budget: Budget | None = None,
        events: EventChannel | EventHandler | None = None,
        unsupported: UnsupportedPolicy = "drop",
    ) -> Solution:
        """Run the strategy on ``query`` and return its :class:`Solution` with exact usage.

        ``query`` is the question, with ``system_prompt`` as its system prompt, or a whole
        :class:`Conversation` (an agent's turn: earlier turns, tool calls and their results), whose
        last user message the run answers; a conversation carries its own system prompt.

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
        conversation = _conversation(query, system_prompt)
        if settings is not None and settings.tools and not self.answers_with_tools:
            raise InvalidConfiguration(
                f"the {self.name} strategy cannot answer with tools: {self.without_tools_because}; "
                "send the request without tools, or use a strategy that answers with them"
            )
        settings, dropped = _caller_settings(settings or GenerationSettings(), client, unsupported)
        channel = events if isinstance(events, EventChannel) else EventChannel()
        handler = None if isinstance(events, EventChannel) else events
        async with dispatching(channel, handler):
            solution = await self._optimize(conversation, client, settings, budget, channel, events is not None)
        if dropped:
            metadata = solution.metadata.model_copy(update={"dropped_settings": dropped})
            solution = solution.model_copy(update={"metadata": metadata})
        return solution

    async def _optimize(
        self,
        conversation: Conversation,
        client: ModelClient,
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
            conversation=conversation,
            settings=settings,
            phases=self.phases or None,
            client=metered,
            channel=channel,
            observed=observed,
        )
        started = anyio.current_time()
        if observed:  # a run nobody observes builds none of its events
            ctx.emit(RunStarted(query=conversation.question))
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


@functools.cache
def _planning_conversation() -> Conversation:
    """The conversation of planning contexts (built when first needed: no schema is built at import)."""
    return Conversation.from_query("(planning)")


def _conversation(query: str | Conversation, system_prompt: str | None) -> Conversation:
    if isinstance(query, Conversation):
        if system_prompt is not None:
            raise InvalidConfiguration("a Conversation carries its own system prompt: pass it in the conversation")
        return query
    if not query.strip():
        raise InvalidConfiguration("the query is empty: pass the question or task to optimize")
    return Conversation.from_query(query, system=system_prompt)


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
