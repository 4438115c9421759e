"""Phase 1: every agent solves the problem on its own, from its own approach and temperature, all at once."""

from __future__ import annotations as _annotations

from functools import partial

from optillm_core import NoSolutions
from optillm_core.toolkit import settle

from ._prompts import exploration_prompt
from ._session import MarsRun
from ._types import GenerationPhase, MarsSolution

__all__ = ("explore",)


async def explore(run: MarsRun) -> list[MarsSolution]:
    """One solution per agent; agents whose call fails are left out. None at all is :class:`NoSolutions`."""
    from ._events import ExplorationStarted, SolutionGenerated  # not at import: see _events

    config = run.config
    run.ctx.phase("exploration")
    run.emit(ExplorationStarted(num_agents=config.num_agents))
    results = await settle(
        (partial(_solve, run, agent) for agent in range(config.num_agents)), optimizer="mars", what="exploration"
    )
    solutions: list[MarsSolution] = []
    for agent, result in enumerate(results):
        if isinstance(result, Exception):
            run.failed("exploration", result, agent_id=agent)
            continue
        solutions.append(run.workspace.add(result))
        run.emit(SolutionGenerated(solution_id=result.id, agent_id=agent, phase=result.phase.value))
    if not solutions:
        first = next(r for r in results if isinstance(r, Exception))
        raise NoSolutions(
            f"all {config.num_agents} MARS exploration calls failed, so there is nothing to build on; "
            f"first error: {type(first).__name__}: {first}"
        ) from first
    run.note("exploration done", solutions=len(solutions), answers=[s.answer for s in solutions])
    return solutions


async def _solve(run: MarsRun, agent: int) -> MarsSolution:
    config = run.config
    settings = run.settings("answer", config.temperatures[agent], field="temperatures", seed_offset=agent)
    completion = await run.ask(run.solver_system(), exploration_prompt(run.query, agent, config.num_agents), settings)
    return MarsSolution(
        id=f"agent{agent + 1}-initial",
        agent_id=agent,
        phase=GenerationPhase.INITIAL,
        text=completion.text,
        thinking=completion.reasoning,
        temperature=settings.temperature,
        output_tokens=completion.usage.output_tokens,
        truncated=completion.truncated(),
    )
