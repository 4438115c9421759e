"""Mixture of Agents: candidates, one critique of them all, one synthesis — three round-trips."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import ClassVar

from optillm_core import CallRole, GenerationSettings, ModelClient, Optimizer, Outcome, RunContext

from ._candidates import Candidates, candidate_requests, generate_candidates
from ._config import MoaConfig
from ._critique import Critique, critique_candidates
from ._events import CandidatesReady, CritiqueReady, SynthesisReady
from ._synthesis import Synthesis, synthesize

__all__ = ("MoaOptimizer",)


class MoaOptimizer(Optimizer[MoaConfig]):
    """Samples diverse candidates, has the model critique them, then synthesizes one answer."""

    name: ClassVar[str] = "moa"
    description: ClassVar[str] = "Mixture of Agents: diverse candidates, one critique, one synthesis."
    config_type: ClassVar[type[MoaConfig]] = MoaConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"candidates": "answer", "critique": "judge", "synthesis": "final"}
    # The answer is the synthesis call as it is (the candidate fallback is taken only when the
    # synthesis made no tool call), so the caller's tools reach that call and its tool calls return.
    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The candidates' requests, one critique and one synthesis; refilling empty candidates adds more."""
        return candidate_requests(self.planning_context(client, settings)) + 2

    async def run(self, ctx: RunContext[MoaConfig]) -> Outcome:
        ctx.phase("candidates")
        candidates = await generate_candidates(ctx)
        ctx.emit(
            CandidatesReady(
                requested=candidates.requested,
                usable=len(candidates.texts),
                empty=candidates.empty,
                truncated=candidates.dropped_truncated,
                refilled=candidates.refilled,
                failed=candidates.failed,
            )
        )
        ctx.record_best(candidates.texts[0], "MoA stopped after the candidates; this is candidate 1.")

        ctx.phase("critique")
        critique = await critique_candidates(ctx, candidates.texts)
        ctx.emit(CritiqueReady(truncated=critique.truncated, empty=not critique.text, failed=critique.failed))

        ctx.phase("synthesis")
        synthesis = await synthesize(ctx, candidates, critique)
        ctx.emit(SynthesisReady(source=synthesis.source, truncated=synthesis.truncated))
        return Outcome(
            answer=synthesis.answer,
            thinking=synthesis.thinking,
            tool_calls=synthesis.tool_calls,
            finish_reason="length" if synthesis.answer_cut else "stop",
            reasoning=_reasoning(candidates, critique, synthesis),
            extras={
                "candidates": list(candidates.texts),
                "critique": critique.text,
                "critique_truncated": critique.truncated,
                "critique_failed": critique.failed,
                "final_source": synthesis.source,
                "dropped_empty": candidates.empty,
                "dropped_truncated": candidates.dropped_truncated,
                "failed_candidates": candidates.failed,
                "varied_prompts": candidates.varied_prompts,
            },
        )


def _reasoning(candidates: Candidates, critique: Critique, synthesis: Synthesis) -> str:
    parts = [f"Candidate {i}:\n{text}" for i, text in enumerate(candidates.texts, start=1)]
    critique_note = ""
    if critique.truncated:
        critique_note = " (cut off at its token limit)"
    elif critique.failed:
        critique_note = " (its request failed)"
    parts.append(f"Critique{critique_note}:\n{critique.text or '(empty)'}")
    if synthesis.source == "candidate":
        parts.append("The synthesis came back empty or cut off, so the answer is the first complete candidate.")
    elif synthesis.tool_calls:
        names = ", ".join(call.name for call in synthesis.tool_calls)
        parts.append(f"The synthesis called the caller's tools: {names}.")
    return "\n\n".join(parts)
