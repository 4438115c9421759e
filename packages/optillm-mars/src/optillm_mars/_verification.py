"""Phase 4: other agents review each solution; the required passes of a round run concurrently.

A solution is verified after ``verification_passes_required`` consecutive passing verdicts. The
passes a solution still needs are asked for all at once, each from a different verifier and angle,
and count only if every one of them passes: concurrent passes cost one round-trip instead of one
per pass, and "consecutive" still holds, since any failing verdict resets the count to zero.
"""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from functools import partial

from optillm_core.toolkit import gather, settle

from ._prompts import VERIFIER_SYSTEM, verification_prompt
from ._session import MarsRun
from ._types import MarsSolution, Verdict, VerificationResult
from ._verdicts import ParsedVerdict, parse_verdict

__all__ = ("verifiers_for", "verify", "verify_all")


async def verify_all(run: MarsRun, solutions: Sequence[MarsSolution]) -> list[MarsSolution]:
    """One verification round over ``solutions``, all concurrently; returns their new states."""
    from ._events import VerificationStarted  # not at import: see _events

    run.round += 1
    run.ctx.phase("verification", round=run.round)
    run.emit(VerificationStarted(round=run.round, num_solutions=len(solutions)))
    return await gather(partial(verify, run, s, run.round) for s in solutions)


async def verify(run: MarsRun, solution: MarsSolution, round_number: int) -> MarsSolution:
    """Ask for the passes ``solution`` still needs, concurrently; a failed call counts as not passed."""
    from ._events import SolutionVerified  # not at import: see _events

    config = run.config
    needed = max(1, config.verification_passes_required - solution.consecutive_passes)
    verifiers = verifiers_for(solution.agent_id, config.num_agents, needed, round_number)
    replies = await settle(
        (partial(_review, run, solution, verifier, round_number + index) for index, verifier in enumerate(verifiers)),
        optimizer="mars",
        what="verification",
    )
    results: list[VerificationResult] = []
    for verifier, reply in zip(verifiers, replies, strict=True):
        if isinstance(reply, Exception):
            run.failed("verification", reply, solution_id=solution.id, verifier_agent_id=verifier)
            parsed = ParsedVerdict(Verdict.UNCLEAR, 0.0, (), ())
            error: str | None = f"{type(reply).__name__}: {reply}"
        else:
            parsed, error = reply, None
        results.append(
            VerificationResult(
                solution_id=solution.id,
                revision=solution.revision,
                verifier_agent_id=verifier,
                round=round_number,
                verdict=parsed.verdict,
                score=parsed.score,
                issues=parsed.issues,
                suggestions=parsed.suggestions,
                error=error,
            )
        )
    updated = run.workspace.update(solution.with_round(tuple(results), config.verification_passes_required))
    for result in results:
        run.emit(
            SolutionVerified(
                solution_id=solution.id,
                verifier_agent_id=result.verifier_agent_id,
                is_correct=result.passed,
                verdict=result.verdict,
                score=result.score,
                is_verified=updated.is_verified,
            )
        )
    return updated


def verifiers_for(author: int, num_agents: int, count: int, round_number: int) -> list[int]:
    """``count`` verifier agents other than the author, rotating by round (the author only when alone)."""
    others = [(author + step) % num_agents for step in range(1, num_agents)] or [author]
    return [others[(round_number + index) % len(others)] for index in range(count)]


async def _review(run: MarsRun, solution: MarsSolution, verifier: int, angle: int) -> ParsedVerdict:
    settings = run.settings("judge", run.config.verification_temperature)
    completion = await run.ask(VERIFIER_SYSTEM, verification_prompt(run.query, solution, verifier, angle), settings)
    return parse_verdict(completion.text)
