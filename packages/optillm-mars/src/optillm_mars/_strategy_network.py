"""Phase 3: extract each agent's strategy, share them, and let every agent solve again with its peers' ideas."""

from __future__ import annotations as _annotations

import re
from collections.abc import Sequence
from functools import partial

from optillm_core.toolkit import settle

from ._prompts import STRATEGIST_SYSTEM, enhancement_prompt, strategy_prompt
from ._session import MarsRun
from ._types import GenerationPhase, MarsSolution, Strategy

__all__ = ("parse_strategy_steps", "strategy_network")

_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.*\S)\s*$")
MAX_STEPS = 5


async def strategy_network(run: MarsRun, initial: Sequence[MarsSolution]) -> list[MarsSolution]:
    """Strategy-enhanced solutions, one per agent that has a peer strategy to learn from.

    Extraction runs concurrently over the initial solutions, then enhancement concurrently over
    the agents. A failed extraction leaves that strategy out; a failed enhancement leaves that
    solution out.
    """
    from ._events import SolutionGenerated, StrategyExtracted, StrategyNetworkStarted  # not at import: see _events

    run.ctx.phase("strategy extraction")
    run.emit(StrategyNetworkStarted(num_solutions=len(initial)))
    extracted = await settle((partial(_extract, run, s) for s in initial), optimizer="mars", what="strategy extraction")
    strategies: list[Strategy] = []
    for solution, result in zip(initial, extracted, strict=True):
        if isinstance(result, Exception):
            run.failed("strategy extraction", result, solution_id=solution.id)
            continue
        strategies.append(result)
        run.workspace.strategies.append(result)
        run.emit(StrategyExtracted(strategy_id=result.id, agent_id=result.agent_id))
    agents = [a for a in range(run.config.num_agents) if any(s.agent_id != a for s in strategies)]
    run.ctx.phase("strategy enhancement")
    enhanced = await settle(
        (partial(_enhance, run, agent, strategies) for agent in agents), optimizer="mars", what="strategy enhancement"
    )
    solutions: list[MarsSolution] = []
    for agent, outcome in zip(agents, enhanced, strict=True):
        if isinstance(outcome, Exception):
            run.failed("strategy enhancement", outcome, agent_id=agent)
            continue
        solutions.append(run.workspace.add(outcome))
        run.emit(SolutionGenerated(solution_id=outcome.id, agent_id=agent, phase=outcome.phase.value))
    run.note("strategy network done", strategies=len(strategies), enhanced=[s.id for s in solutions])
    return solutions


def parse_strategy_steps(text: str) -> tuple[str, ...]:
    """The bullet or numbered lines of a strategy description; the whole text when it has none."""
    steps = [m.group(1).strip() for line in text.splitlines() if (m := _BULLET.match(line))]
    if not steps:
        steps = [" ".join(text.split())]
    return tuple(step for step in steps[:MAX_STEPS] if step)


async def _extract(run: MarsRun, solution: MarsSolution) -> Strategy:
    settings = run.settings("judge", run.config.strategy_temperature)
    completion = await run.ask(STRATEGIST_SYSTEM, strategy_prompt(run.query, solution), settings)
    return Strategy(
        id=f"strategy-agent{solution.agent_id + 1}",
        agent_id=solution.agent_id,
        source_solution_id=solution.id,
        steps=parse_strategy_steps(completion.text),
    )


async def _enhance(run: MarsRun, agent: int, strategies: Sequence[Strategy]) -> MarsSolution:
    config = run.config
    own = next((s for s in strategies if s.agent_id == agent), None)
    peers = [s for s in strategies if s.agent_id != agent]
    settings = run.settings("answer", config.temperatures[agent], field="temperatures", seed_offset=agent)
    completion = await run.ask(run.solver_system(), enhancement_prompt(run.query, agent, own, peers), settings)
    return MarsSolution(
        id=f"agent{agent + 1}-enhanced",
        agent_id=agent,
        phase=GenerationPhase.STRATEGY_ENHANCED,
        text=completion.text,
        thinking=completion.reasoning,
        temperature=settings.temperature,
        strategy_ids=tuple(s.id for s in peers),
        output_tokens=completion.usage.output_tokens,
        truncated=completion.truncated(),
    )
