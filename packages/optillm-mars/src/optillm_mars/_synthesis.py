"""Phase 6: choose the final answer: best verified, else a majority vote, else one synthesis call.

A request that offers the caller's tools always ends with the synthesis call, the only call made
with them: an answer chosen without a call could never call a tool. That call gets the caller's
conversation as real turns, exactly as the caller sent them (assistant tool calls and tool results
as they were, so the model sees which tools have already answered), with MARS's note (the
solutions, their reviews and the instruction) after its system prompt; every other MARS call gets
the question flattened, without the tools.
"""

from __future__ import annotations as _annotations

from optillm_core import Prompt
from optillm_core.toolkit import settle

from ._prompts import SYNTHESIZER_SYSTEM, synthesis_note, synthesis_prompt
from ._session import MarsRun
from ._types import GenerationPhase, MarsSolution, SelectionMethod
from ._workspace import majority_answer, rank

__all__ = ("synthesize",)


async def synthesize(run: MarsRun) -> tuple[MarsSolution, SelectionMethod]:
    """The final solution and how it was chosen, trying each method in order.

    1. the best verified solution (of the answer most verified solutions share), no call;
    2. the most common normalised answer, if at least two solutions give it, no call;
    3. one synthesis call over the top ``synthesis_top_k`` solutions, streamed to the caller as
       :class:`~optillm_core.AnswerDelta` events (its text, never its thinking);
    4. if that call fails, the highest-ranked solution.

    With the caller's tools, 1 and 2 are skipped: the synthesis call, made with the tools, writes
    the answer or calls a tool (its text may then be empty), and its tool calls are returned.
    """
    from ._events import AnswerSynthesized, SynthesisStarted  # not at import: see _events

    workspace = run.workspace
    active = workspace.active()
    run.ctx.phase("synthesis")
    run.emit(SynthesisStarted(num_solutions=len(active)))
    chosen = None if run.offers_tools else _without_call(run)
    if chosen is None:
        top = rank(active)[: run.config.synthesis_top_k]
        settings = run.settings("final", run.config.synthesis_temperature, field="synthesis_temperature")
        system = run.solver_system(SYNTHESIZER_SYSTEM, real_turns=run.offers_tools)
        if run.offers_tools:
            prompt: Prompt | str = run.ctx.conversation_prompt(synthesis_note(top), system=system)
        else:
            prompt = synthesis_prompt(run.query, top)
        [result] = await settle(
            [lambda: run.ask(system, prompt, settings, final=True)], optimizer="mars", what="synthesis"
        )
        if isinstance(result, Exception):
            run.failed("synthesis", result)
            chosen = top[0], SelectionMethod.HIGHEST_SCORE
        else:
            synthesized = MarsSolution(
                id=workspace.new_id("synthesized"),
                agent_id=top[0].agent_id,
                phase=GenerationPhase.SYNTHESIZED,
                text=result.text,
                thinking=result.reasoning,
                temperature=settings.temperature,
                parent_ids=tuple(s.id for s in top),
                output_tokens=result.usage.output_tokens,
                tool_calls=result.calls,
                truncated=result.truncated(),
            )
            chosen = workspace.add(synthesized), SelectionMethod.SYNTHESIZED
    solution, method = chosen
    run.emit(AnswerSynthesized(answer=solution.answer or solution.visible, method=method))
    return solution, method


def _without_call(run: MarsRun) -> tuple[MarsSolution, SelectionMethod] | None:
    best = run.workspace.best_verified()
    if best is not None:
        return best, SelectionMethod.BEST_VERIFIED
    voted = majority_answer(run.workspace.active())
    if voted is not None:
        return voted, SelectionMethod.MAJORITY_VOTING
    return None
