"""Majority voting: k samples (one native-n request where the model has it) and a plurality vote."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from optillm_core import (
    CallRole,
    GenerationSettings,
    ModelClient,
    Optimizer,
    OptimizerConfig,
    Outcome,
    RunContext,
    answer_key,
    plurality_vote,
    sample_answers,
    sample_requests,
)

from ._common import Source, chosen_outcome, record_fallback, samples_extras

__all__ = ("MajorityVotingConfig", "MajorityVotingOptimizer")


class MajorityVotingConfig(OptimizerConfig):
    """Settings of :class:`MajorityVotingOptimizer`; defaults follow upstream optillm's plugin."""

    k: int = Field(default=8, ge=1, le=64, description="samples to draw")
    temperature: float = Field(default=0.6, ge=0.0, description="temperature of the samples")
    max_tokens: int = Field(default=4096, ge=1, description="token limit of each sample")


class MajorityVotingOptimizer(Optimizer[MajorityVotingConfig]):
    """A plurality vote over the normalised answers of ``k`` samples; samples with no readable answer abstain."""

    name: ClassVar[str] = "majority_voting"
    description: ClassVar[str] = "Majority voting: k samples in one request, a plurality vote on normalised answers."
    config_type: ClassVar[type[MajorityVotingConfig]] = MajorityVotingConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"samples": "answer"}

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The requests of ``k`` samples: one ``n`` request where the model samples natively (up to its ``max_n``)."""
        return sample_requests(self.planning_context(client, settings), self.config.k)

    async def run(self, ctx: RunContext[MajorityVotingConfig]) -> Outcome:
        config = ctx.config
        ctx.phase("samples")
        samples = await sample_answers(
            ctx,
            config.k,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            pinned=config.pinned(temperature="temperature"),
        )
        keys = [answer_key(s.text) for s in samples.samples]
        vote = plurality_vote(keys)
        chosen = record_fallback(ctx, samples, keys, vote)
        if vote.winner is None:
            verdict = "no sample gave a readable answer, so the first complete sample is returned"
        else:
            verdict = f"{vote.winner} wins with {vote.winner_votes} of {len(samples.samples)} votes"
        reasoning = (
            f"Plurality vote over {len(samples.samples)} of {samples.requested} samples "
            f"({samples.requests} request{'s' if samples.requests != 1 else ''}): {vote.summary()}.\n"
            f"{verdict[0].upper()}{verdict[1:]}; returned sample {chosen.index + 1}."
        )
        extras = {
            **samples_extras(samples, keys),
            "winner": vote.winner,
            "winner_votes": vote.winner_votes,
            "votes": dict(vote.counts),
            "abstained": vote.abstained,
            "tie": vote.tie,
            "tied": list(vote.tied),
            "requests": samples.requests,
        }
        source: Source = "vote" if vote.winner is not None else "first"
        if len(samples.samples) == 1:
            source = "single"
        return chosen_outcome(ctx, chosen, source=source, reasoning=reasoning, extras=extras)
