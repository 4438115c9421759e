"""Phase 2 (RSA-inspired): loops that combine groups of K solutions into new ones, keeping the best N."""

from __future__ import annotations as _annotations

from collections.abc import Callable, Sequence
from functools import partial

from optillm_core.toolkit import settle

from ._config import MarsConfig
from ._prompts import AGGREGATOR_SYSTEM, aggregation_prompt
from ._session import MarsRun
from ._types import GenerationPhase, MarsSolution
from ._workspace import rank

__all__ = ("aggregate", "planned_combinations", "select_groups")


async def aggregate(run: MarsRun, initial: Sequence[MarsSolution]) -> list[MarsSolution]:
    """Run the aggregation loops over ``initial`` and return the final population, best first.

    Groups within a loop are combined concurrently; a loop needs the previous one's population.
    A failed combining call is left out; the population goes on without it.
    """
    from ._events import AggregationStarted, SolutionGenerated, SolutionsAggregated  # not at import: see _events

    config = run.config
    population = rank(initial)[: config.aggregation_population_size]
    for loop in range(config.aggregation_loops):
        run.ctx.phase("aggregation", round=loop + 1)
        run.emit(AggregationStarted(loop=loop + 1, population=len(population)))
        groups = select_groups(population, config.aggregation_selection_size, config.aggregation_groups_per_loop)
        results = await settle(
            (partial(_combine, run, group) for group in groups), optimizer="mars", what="aggregation"
        )
        for group, result in zip(groups, results, strict=True):
            if isinstance(result, Exception):
                run.failed("aggregation", result, sources=[s.id for s in group])
                continue
            run.workspace.add(result)
            population.append(result)
            run.emit(SolutionGenerated(solution_id=result.id, agent_id=result.agent_id, phase=result.phase.value))
            run.emit(SolutionsAggregated(result_solution_id=result.id, source_solution_ids=result.parent_ids))
        population = rank(population)[: config.aggregation_population_size]
    run.note("aggregation done", population=[s.id for s in population])
    return population


def planned_combinations(config: MarsConfig, initial: int) -> tuple[int, int]:
    """The combining calls :func:`aggregate` makes from ``initial`` solutions, and its final population.

    Counted as if every call succeeds. A loop's first group is always made; a second always
    differs from it once the population outgrows a group, so it is made too; further groups may
    repeat an earlier one and be dropped, so they are not counted (exact for
    ``aggregation_groups_per_loop`` up to 2).
    """
    population, calls = min(initial, config.aggregation_population_size), 0
    for _ in range(config.aggregation_loops):
        size = min(config.aggregation_selection_size, population)
        if size < 2:
            groups = 0
        elif population <= size or config.aggregation_groups_per_loop == 1:
            groups = 1
        else:
            groups = 2
        calls += groups
        population = min(population + groups, config.aggregation_population_size)
    return calls, population


def select_groups(population: Sequence[MarsSolution], size: int, count: int) -> list[tuple[MarsSolution, ...]]:
    """Up to ``count`` different groups of ``size`` solutions from a ranked population.

    The first group is the best ``size``. Each further group favours solutions not used yet and
    answers not in the group yet, so it really differs from the first (upstream's "diverse" group
    was a copy of the "best" one). Groups with the same members as an earlier one are dropped.
    """
    size = min(size, len(population))
    if size < 2:
        return []
    groups = [tuple(population[:size])]
    for _ in range(count - 1):
        group = _diverse_group(population, size, used={s.id for g in groups for s in g})
        if frozenset(s.id for s in group) not in {frozenset(s.id for s in g) for g in groups}:
            groups.append(group)
    return groups


def _diverse_group(population: Sequence[MarsSolution], size: int, used: set[str]) -> tuple[MarsSolution, ...]:
    chosen: list[MarsSolution] = []
    answers: set[str | None] = set()

    def fresh(solution: MarsSolution) -> bool:
        return solution.id not in used

    def new_answer(solution: MarsSolution) -> bool:
        return solution.answer_key not in answers

    passes: tuple[Callable[[MarsSolution], bool], ...] = (
        lambda s: fresh(s) and new_answer(s),
        new_answer,
        fresh,
        lambda s: True,
    )
    for wanted in passes:
        for solution in population:
            if len(chosen) == size:
                return tuple(chosen)
            if all(c.id != solution.id for c in chosen) and wanted(solution):
                chosen.append(solution)
                answers.add(solution.answer_key)
    return tuple(chosen)


async def _combine(run: MarsRun, group: Sequence[MarsSolution]) -> MarsSolution:
    config = run.config
    number = run.workspace.next_number("aggregated")
    # Authors rotate over the agents so cross-agent verification has someone else to ask.
    author = number % config.num_agents
    # It writes a new candidate solution, so it is an answer call.
    temperature = config.aggregation_temperature
    settings = run.settings("answer", temperature, field="aggregation_temperature", seed_offset=author)
    completion = await run.ask(run.solver_system(AGGREGATOR_SYSTEM), aggregation_prompt(run.query, group), settings)
    return MarsSolution(
        id=f"aggregated-{number}",
        agent_id=author,
        phase=GenerationPhase.AGGREGATED,
        text=completion.text,
        thinking=completion.reasoning,
        temperature=settings.temperature,
        parent_ids=tuple(s.id for s in group),
        output_tokens=completion.usage.output_tokens,
        truncated=completion.truncated(),
    )
