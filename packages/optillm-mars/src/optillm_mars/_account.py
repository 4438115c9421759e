"""The run's account of itself: how the final answer was chosen, returned as ``Solution.reasoning``."""

from __future__ import annotations as _annotations

from collections.abc import Sequence

from optillm_core.toolkit import plurality_vote

from ._types import MarsSolution, SelectionMethod
from ._workspace import Workspace

__all__ = ("account",)

# Answers listed in the tally at most; a run of distinct answers says how many more there were.
TALLY_LIMIT = 5


def account(workspace: Workspace, chosen: MarsSolution, method: SelectionMethod, *, offered_tools: bool = False) -> str:
    """A few lines saying which solution was chosen, why, and what the other solutions answered.

    ``Solution.thinking`` holds the chosen solution's own thinking; this is MARS's reasoning about
    the run, which a model never sees. ``offered_tools``: the caller offered tools, so the answer
    was synthesised with them whatever the reviews said.
    """
    active = workspace.active()
    verified = workspace.verified()
    why = _why(method, chosen, active, verified)
    if offered_tools and method is SelectionMethod.SYNTHESIZED:
        sources = ", ".join(chosen.parent_ids) or "none"
        why = f"the request offered tools, so one synthesis call made with them wrote {chosen.id} from {sources}"
        if chosen.tool_calls:
            why += f"; it called {', '.join(call.name for call in chosen.tool_calls)}"
    lines = [f"{method.value}: {why}", f"Answers in play: {_tally(active)}."]
    rounds = max((v.round for s in workspace.all() for v in s.verifications), default=0)
    rewrites = sum(s.revision for s in workspace.all())
    lines.append(
        f"{rounds} verification round(s), {rewrites} rewrite(s); {len(verified)} of {len(active)} solutions verified."
    )
    return "\n".join(lines)


def _describe(solution: MarsSolution) -> str:
    revision = f", revision {solution.revision}" if solution.revision else ""
    return f"solution {solution.id} (agent {solution.agent_id + 1}, {solution.phase.value}{revision})"


def _why(
    method: SelectionMethod, chosen: MarsSolution, active: Sequence[MarsSolution], verified: Sequence[MarsSolution]
) -> str:
    described = _describe(chosen)
    if method is SelectionMethod.BEST_VERIFIED:
        agreeing = sum(1 for s in verified if chosen.answer_key is not None and s.answer_key == chosen.answer_key)
        return (
            f"{described} passed {chosen.consecutive_passes} consecutive review(s); "
            f"{agreeing} of {len(verified)} verified solutions give its answer"
        )
    if method is SelectionMethod.MAJORITY_VOTING:
        votes = sum(1 for s in active if s.answer_key == chosen.answer_key)
        return f"no solution was verified; {votes} of {len(active)} solutions give the answer of {described}"
    if method is SelectionMethod.SYNTHESIZED:
        sources = ", ".join(chosen.parent_ids) or "none"
        return f"no solution was verified and no two agreed; one synthesis call wrote {chosen.id} from {sources}"
    return f"no solution was verified and no two agreed; {described} ranked highest"


def _tally(solutions: Sequence[MarsSolution]) -> str:
    """The answers in play with their votes, as the vote ranks them (most first, ties by its fixed order)."""
    shown: dict[str, str] = {}
    for solution in solutions:
        key = solution.answer_key
        if key is not None:
            shown.setdefault(key, solution.answer or key)
    counts = plurality_vote(s.answer_key for s in solutions).counts
    if not counts:
        return "none extracted"
    parts = [f"{shown[key]} ×{count}" for key, count in counts[:TALLY_LIMIT]]
    if len(counts) > TALLY_LIMIT:
        parts.append(f"{len(counts) - TALLY_LIMIT} other answer(s)")
    return ", ".join(parts)
