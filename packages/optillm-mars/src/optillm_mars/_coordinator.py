"""The MARS optimizer: explore, aggregate and share strategies, verify, improve, synthesise."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import ClassVar

import anyio

from optillm_core import CallRole, GenerationSettings, ModelClient, Optimizer, Outcome, RunContext, Timeout
from optillm_core.toolkit import task_group

from ._aggregation import aggregate, planned_combinations
from ._config import MarsConfig
from ._exploration import explore
from ._improvement import improvement_loop
from ._session import MarsRun
from ._strategy_network import strategy_network
from ._synthesis import synthesize
from ._types import MarsSolution
from ._verification import verify_all

__all__ = ("MarsCoordinator", "MarsOptimizer")


class MarsOptimizer(Optimizer[MarsConfig]):
    """MARS, the Multi-Agent Reasoning System.

    Agents explore from different approaches and temperatures; their solutions are combined (RSA-style aggregation)
    and enriched with each other's strategies; other agents verify every solution; unverified ones
    are rewritten from their reviews until enough are verified; then the final answer is the best
    verified solution, a majority vote, or a synthesis of the top solutions.
    """

    name: ClassVar[str] = "mars"
    description: ClassVar[str] = (
        "Multi-Agent Reasoning System: diverse agents, aggregation, strategy sharing, "
        "cross-verification and iterative improvement"
    )
    config_type: ClassVar[type[MarsConfig]] = MarsConfig
    # Aggregation and strategy enhancement write new candidate solutions, so they are answer calls.
    phases: ClassVar[Mapping[str, CallRole]] = {
        "exploration": "answer",
        "aggregation": "answer",
        "strategy extraction": "judge",
        "strategy enhancement": "answer",
        "verification": "judge",
        "improvement": "answer",
        "synthesis": "final",
    }
    # With the caller's tools the answer is always the synthesis call as it is (see _synthesis.py).
    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """Exploration, aggregation, the strategy network and the first verification round, in the mode the run uses.

        Improvement rounds and a synthesis call depend on the verdicts, so they are not counted.
        """
        config = MarsRun(self.planning_context(client, settings)).config  # lightweight for a small max_tokens
        agents = config.num_agents
        aggregation, population = planned_combinations(config, agents) if config.enable_aggregation else (0, agents)
        network = agents if config.enable_strategy_network and agents > 1 else 0  # extractions; as many enhancements
        verification = (population + network) * config.verification_passes_required
        return agents + aggregation + 2 * network + verification

    async def run(self, ctx: RunContext[MarsConfig]) -> Outcome:
        run = MarsRun(ctx)
        with anyio.move_on_after(run.config.timeout_seconds):
            return await self._pipeline(run)
        return self._timed_out(run, ctx)

    async def _pipeline(self, run: MarsRun) -> Outcome:
        from ._events import Completed  # not at import: see _events

        initial = await explore(run)
        run.workspace.set_active(initial)
        run.record_best()

        population, enhanced = await self._aggregate_and_share(run, initial)
        run.workspace.set_active([*population, *enhanced])
        run.record_best()

        await verify_all(run, run.workspace.active())
        run.record_best()
        iterations = await improvement_loop(run)

        solution, method = await synthesize(run)
        run.emit(Completed(final_answer=solution.answer or solution.visible, method=method, solution_id=solution.id))
        return run.outcome(solution, method, iterations=1 + iterations)

    @staticmethod
    async def _aggregate_and_share(
        run: MarsRun, initial: list[MarsSolution]
    ) -> tuple[list[MarsSolution], list[MarsSolution]]:
        """Aggregation and the strategy network both start from the initial solutions, so they run side by side."""
        population: list[MarsSolution] = list(initial)
        enhanced: list[MarsSolution] = []

        async def run_aggregation() -> None:
            nonlocal population
            population = await aggregate(run, initial)

        async def run_strategy_network() -> None:
            nonlocal enhanced
            enhanced = await strategy_network(run, initial)

        async with task_group() as tg:
            if run.config.enable_aggregation:
                tg.start_soon(run_aggregation)
            if run.config.enable_strategy_network and len(initial) > 1:
                tg.start_soon(run_strategy_network)
        return population, enhanced

    @staticmethod
    def _timed_out(run: MarsRun, ctx: RunContext[MarsConfig]) -> Outcome:
        seconds = run.config.timeout_seconds
        if ctx.best is None:
            raise Timeout(f"MARS found no answer within timeout_seconds={seconds:g}; raise it or use fewer agents")
        return ctx.best.model_copy(update={"extras": {**ctx.best.extras, "timeout": f"stopped after {seconds:g} s"}})


MarsCoordinator = MarsOptimizer
"""The seed's name for the MARS optimizer."""
