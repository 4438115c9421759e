"""Phase 5: rewrite each unverified solution from its reviews and review it again, until enough agree.

Each solution's rewrite-then-review chain runs concurrently with the others, so an iteration
costs two round-trips however many solutions it improves.
"""

from __future__ import annotations as _annotations

from functools import partial

from optillm_core.toolkit import gather, settle

from ._prompts import improvement_prompt
from ._session import MarsRun
from ._types import MarsSolution
from ._verification import verify

__all__ = ("improve", "improvement_loop")


async def improvement_loop(run: MarsRun) -> int:
    """Improve and re-verify until ``consensus_threshold`` solutions are verified, or ``max_iterations``.

    Returns the number of iterations run.
    """
    from ._events import ImprovementStarted, VerificationStarted  # not at import: see _events

    config = run.config
    iterations = 0
    for iteration in range(1, config.max_iterations + 1):
        pending = run.workspace.unverified()
        if len(run.workspace.verified()) >= config.consensus_threshold or not pending:
            break
        run.ctx.phase("improvement", round=iteration)
        run.emit(ImprovementStarted(iteration=iteration, num_solutions=len(pending)))
        run.round += 1
        run.emit(VerificationStarted(round=run.round, num_solutions=len(pending)))
        await gather(partial(_improve_and_verify, run, s, run.round) for s in pending)
        iterations = iteration
        run.record_best()
        run.note("improvement iteration done", iteration=iteration, verified=len(run.workspace.verified()))
    return iterations


async def _improve_and_verify(run: MarsRun, solution: MarsSolution, round_number: int) -> None:
    """Rewrite from the last round's reviews, then verify. A failed rewrite keeps the old text unverified.

    When the last round has no usable review (every verification call failed, or the replies stated
    no verdict and no issue) there is nothing to act on, so the unchanged solution is simply
    verified again.
    """
    feedback = [r.feedback() for r in solution.last_round() if r.actionable]
    if feedback:
        improved = await improve(run, solution, feedback)
        if improved is None:
            return
        solution = improved
    await verify(run, solution, round_number)


async def improve(run: MarsRun, solution: MarsSolution, feedback: list[str]) -> MarsSolution | None:
    """The solution rewritten (same id, next revision), stored in the workspace; ``None`` if the call failed."""
    from ._events import SolutionImproved  # not at import: see _events

    factor = run.config.improvement_temperature_factor
    temperature = None if solution.temperature is None else solution.temperature * factor
    settings = run.settings(
        "answer", temperature, field="improvement_temperature_factor", seed_offset=solution.agent_id
    )
    prompt = improvement_prompt(run.query, solution, feedback)
    [result] = await settle(
        [lambda: run.ask(run.solver_system(), prompt, settings)], optimizer="mars", what="improvement"
    )
    if isinstance(result, Exception):
        run.failed("improvement", result, solution_id=solution.id)
        return None
    rewritten = solution.rewritten(
        result.text, settings.temperature, result.usage.output_tokens, result.reasoning, truncated=result.truncated()
    )
    improved = run.workspace.update(rewritten)
    run.emit(SolutionImproved(solution_id=improved.id, revision=improved.revision))
    return improved
