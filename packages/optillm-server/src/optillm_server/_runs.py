"""Running the selected strategies: ``n`` choices, ``a&b`` pipelines and ``a|b`` fan-outs, all concurrent."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from optillm_core import (
    AnswerDelta,
    BudgetExhausted,
    FinishReason,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    Optimizer,
    OptimizerError,
    OptimizerEvent,
    OptimizerRegistry,
    PhaseStarted,
    RunStarted,
    TokenUsage,
    ToolCall,
    UnsupportedPolicy,
)
from optillm_core.toolkit import task_group

from ._conversation import StrategyInput
from ._errors import ApiError
from ._selection import Selection
from ._tools import stage_settings

__all__ = ("ChoiceResult", "RunSink", "StrategyPlan", "plan_strategies", "run_plan")

_PIPELINE_HANDOFF = (
    "{question}\n\n"
    "---\n"
    "Another reasoning method has already produced the draft answer below. Treat it as a draft: "
    "check it against the request above, correct whatever is wrong or missing, and give your own "
    "complete final answer to the request.\n\n"
    "Draft answer:\n{answer}"
)


class RunSink(Protocol):
    """Where a run reports progress and the pieces of its final answer, per choice."""

    def progress(self, index: int, note: str) -> None: ...

    def delta(self, index: int, text: str) -> None: ...


@dataclass(frozen=True)
class ChoiceResult:
    """One choice's answer, its thinking and tool calls (from the last stage), and the usage of all its stages.

    ``budget_exhausted`` when it is the best so far of a run the budget cut short.
    """

    answer: str
    usage: TokenUsage
    thinking: str = ""
    budget_exhausted: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"


@dataclass(frozen=True)
class StrategyPlan:
    """Validated optimizers and how they combine; ``choices`` is how many answers the response has."""

    optimizers: tuple[Optimizer[Any], ...]
    mode: str
    n: int

    @property
    def choices(self) -> int:
        return self.n * len(self.optimizers) if self.mode == "parallel" else self.n


def plan_strategies(
    selection: Selection, registry: OptimizerRegistry, config: Mapping[str, Any] | None, n: int
) -> StrategyPlan:
    """Create each optimizer with its ``optillm_config`` validated; a bad config is a 400 naming the field."""
    names = selection.strategies
    per_strategy = _split_config(names, config)
    optimizers = []
    for name in names:
        param = "optillm_config" if len(names) == 1 else f"optillm_config.{name}"
        try:
            optimizers.append(registry.create(name, per_strategy.get(name)))
        except InvalidConfiguration as exc:
            raise ApiError(400, f"{name}: {exc}", param=param, code="invalid_config") from None
        except OptimizerError as exc:
            raise ApiError(400, str(exc), param="model", code="unknown_strategy") from None
    return StrategyPlan(optimizers=tuple(optimizers), mode=selection.mode, n=n)


def _split_config(names: tuple[str, ...], config: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    if not config:
        return {}
    if len(names) == 1:
        return {names[0]: config}
    unknown = [key for key in config if key not in names]
    if unknown:
        raise ApiError(
            400,
            f"with several strategies, 'optillm_config' maps each strategy name to its settings "
            f"(got key '{unknown[0]}', expected one of: {', '.join(names)})",
            param="optillm_config",
        )
    split: dict[str, Mapping[str, Any]] = {}
    for name, value in config.items():
        if not isinstance(value, Mapping):
            raise ApiError(400, f"'optillm_config.{name}' must be an object", param=f"optillm_config.{name}")
        split[name] = value
    return split


async def run_plan(
    plan: StrategyPlan,
    question: StrategyInput,
    settings: GenerationSettings,
    client: ModelClient,
    sink: RunSink | None = None,
    unsupported: UnsupportedPolicy = "drop",
) -> list[ChoiceResult]:
    """Every choice of the plan, run concurrently, in choice order."""
    results: dict[int, ChoiceResult] = {}

    async def choice(index: int, stages: tuple[Optimizer[Any], ...]) -> None:
        results[index] = await _pipeline(stages, index, question, settings, client, sink, unsupported)

    async with task_group() as tg:
        if plan.mode == "parallel":
            for position, optimizer in enumerate(plan.optimizers):
                for k in range(plan.n):
                    tg.start_soon(choice, position * plan.n + k, (optimizer,))
        else:
            for k in range(plan.n):
                tg.start_soon(choice, k, plan.optimizers)
    return [results[i] for i in range(plan.choices)]


async def _pipeline(
    stages: tuple[Optimizer[Any], ...],
    index: int,
    question: StrategyInput,
    settings: GenerationSettings,
    client: ModelClient,
    sink: RunSink | None,
    unsupported: UnsupportedPolicy,
) -> ChoiceResult:
    """Each stage answers the original question, given the previous stage's answer as a draft.

    When the budget runs out (``client`` carries the request's), the pipeline ends with the best
    answer so far: the stage's own best, or the previous stage's answer when the stage had none.
    Only the last stage's answer is returned, so only it gets the request's tools (see
    :func:`~optillm_server._tools.stage_settings`); earlier stages write their drafts in text.
    """
    usage = TokenUsage()
    answer = thinking = ""
    calls: tuple[ToolCall, ...] = ()
    finish: FinishReason = "stop"
    for position, optimizer in enumerate(stages):
        conversation = question.conversation
        if position > 0:
            conversation = conversation.with_question(
                _PIPELINE_HANDOFF.format(question=conversation.question, answer=answer)
            )
        last = position == len(stages) - 1
        try:
            solution = await optimizer.optimize(
                conversation,
                client,
                settings=stage_settings(optimizer, settings, last=last),
                events=_forwarder(sink, index, final=last),
                unsupported=unsupported,
            )
        except BudgetExhausted:
            if position == 0:
                raise
            return ChoiceResult(answer, usage, thinking, budget_exhausted=True, finish_reason=finish)
        usage = usage + solution.usage
        answer, thinking, calls = solution.answer, solution.thinking, solution.tool_calls
        finish = solution.finish_reason
        if solution.metadata.budget_exhausted:
            return ChoiceResult(answer, usage, thinking, budget_exhausted=True, tool_calls=calls, finish_reason=finish)
    return ChoiceResult(answer, usage, thinking, tool_calls=calls, finish_reason=finish)


def _forwarder(sink: RunSink | None, index: int, *, final: bool) -> Any:
    if sink is None:
        return None

    def forward(event: OptimizerEvent) -> None:
        if isinstance(event, AnswerDelta):
            if final:
                sink.delta(index, event.delta)
        elif isinstance(event, PhaseStarted):
            sink.progress(index, f"phase {event.label} ({event.optimizer})")
        elif isinstance(event, RunStarted):
            sink.progress(index, f"{event.optimizer} started")

    return forward
