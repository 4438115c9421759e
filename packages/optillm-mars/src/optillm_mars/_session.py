"""One MARS run's shared state: the context, the resolved config, the workspace, and the call helper."""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import structlog

from optillm_core import (
    ClientError,
    Completion,
    GenerationSettings,
    Outcome,
    ParsingError,
    RunContext,
    gather,
)

from ._config import MarsConfig
from ._events import Error, MarsEvent
from ._types import MarsSolution, SelectionMethod
from ._workspace import Workspace

__all__ = ("MarsRun", "settled")

log = structlog.get_logger("optillm")

T = TypeVar("T")

# Failures a phase survives: a model call that failed or said nothing usable. Budget exhaustion,
# cancellation and programming errors are not among them and end the run.
RECOVERABLE: tuple[type[Exception], ...] = (ClientError, ParsingError)


async def settled(thunks: Iterable[Callable[[], Awaitable[T]]]) -> list[T | Exception]:
    """Run thunks concurrently; a recoverable failure stays in its slot, anything else ends them all."""

    def guard(thunk: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T | Exception]]:
        async def run() -> T | Exception:
            try:
                return await thunk()
            except RECOVERABLE as exc:
                return exc

        return run

    return await gather(guard(thunk) for thunk in thunks)


class MarsRun:
    """What every phase needs: the query, settings per call, the workspace and event helpers."""

    def __init__(self, ctx: RunContext[MarsConfig]) -> None:
        self.ctx = ctx
        self.config, self.max_tokens = ctx.config.resolve(ctx.settings.max_tokens)
        self.lightweight = self.config is not ctx.config
        self.workspace = Workspace()
        self.round = 0

    @property
    def query(self) -> str:
        return self.ctx.query

    def settings(self, temperature: float) -> GenerationSettings:
        """The caller's settings with this call's temperature, the run's max_tokens and one choice."""
        return self.ctx.call_settings(temperature=temperature, max_tokens=self.max_tokens, n=1)

    async def ask(self, system: str, user: str, temperature: float, *, final: bool = False) -> Completion:
        """One model call; an empty reply is a :class:`ParsingError`, which phases treat as a failed call.

        ``final``: the reply becomes the run's answer (its text outside thinking tags), so it is
        streamed to the caller as it is generated.
        """
        prompt, settings = self.ctx.prompt(user, system=system), self.settings(temperature)
        if final:
            completion = await self.ctx.generate_final(prompt, settings)
        else:
            completion = await self.ctx.client.complete(prompt, settings)
        if not completion.text.strip():
            raise ParsingError("the model returned an empty reply")
        return completion

    def emit(self, event: MarsEvent) -> None:
        self.ctx.emit(event)

    def note(self, message: str, **fields: Any) -> None:
        (log.info if self.config.debug else log.debug)(message, optimizer="mars", **fields)

    def failed(self, phase: str, error: Exception, **fields: Any) -> None:
        """Report a call the run goes on without."""
        message = f"{type(error).__name__}: {error}"
        log.warning("mars call failed", phase=phase, error=message, **fields)
        self.emit(Error(phase=phase, message=message))

    def outcome(
        self, solution: MarsSolution, method: SelectionMethod, *, iterations: int, budget_exhausted: bool = False
    ) -> Outcome:
        """The run's result with ``solution`` as the final answer."""
        return Outcome(
            answer=solution.visible,
            reasoning=solution.thinking or f"{method.value}: solution {solution.id} by agent {solution.agent_id + 1}",
            iterations=iterations,
            extras=self.extras(solution, method),
            budget_exhausted=budget_exhausted,
        )

    def extras(self, solution: MarsSolution, method: SelectionMethod) -> dict[str, Any]:
        workspace = self.workspace
        return {
            "selection_method": method.value,
            "final_solution_id": solution.id,
            "final_answer": solution.answer,
            "lightweight": self.lightweight,
            "verified_solution_ids": [s.id for s in workspace.verified()],
            "active_solution_ids": [s.id for s in workspace.active()],
            "solutions": [s.model_dump(mode="json") for s in workspace.all()],
            "strategies": [s.model_dump(mode="json") for s in workspace.strategies],
        }

    def record_best(self) -> None:
        """Hand core the answer this run would give now, returned if a budget cuts the run short."""
        choice = self.workspace.choice_without_call()
        if choice is None:
            return
        solution, method = choice
        best = self.outcome(solution, method, iterations=max(self.round, 1))
        self.ctx.record_best(best.answer, best.reasoning, **best.extras)
