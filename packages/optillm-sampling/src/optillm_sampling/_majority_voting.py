"""Majority voting: k samples (one native-n request where the model has it) and a plurality vote."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from optillm_core import CallRole, Outcome, RunContext

from ._common import SampledConfig, SamplingOptimizer, Source, chosen_outcome, samples_extras, voted

__all__ = ("MajorityVotingConfig", "MajorityVotingOptimizer")


class MajorityVotingConfig(SampledConfig):
    """Settings of :class:`MajorityVotingOptimizer`; defaults follow upstream optillm's plugin."""

    k: int = Field(default=8, ge=1, le=64, description="samples to draw")
    temperature: float = Field(default=0.6, ge=0.0, description="temperature of the samples")

    @property
    def sample_count(self) -> int:
        return self.k


class MajorityVotingOptimizer(SamplingOptimizer[MajorityVotingConfig]):
    """A plurality vote over ``k`` samples' replies; samples with no readable answer abstain.

    A sample votes with its normalised final answer, or, when it calls tools, with the tools it
    calls and their arguments compared canonically (tool voting): the winner's sample is returned
    as it is, tool calls included.
    """

    name: ClassVar[str] = "majority_voting"
    description: ClassVar[str] = "Majority voting: k samples in one request, a plurality vote on normalised answers."
    config_type: ClassVar[type[MajorityVotingConfig]] = MajorityVotingConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"samples": "returned"}

    async def run(self, ctx: RunContext[MajorityVotingConfig]) -> Outcome:
        samples = await self.draw(ctx, "samples")
        keys = [s.key for s in samples.samples]
        vote, chosen = voted(ctx, samples, keys)
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
