"""Self-consistency: k samples and the most common final answer — one round-trip."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field

from optillm_core import CallRole, Outcome, RunContext

from ._common import SampledConfig, SamplingOptimizer, Source, chosen_outcome, samples_extras, voted
from ._similarity import similarity_keys

__all__ = ("SelfConsistencyConfig", "SelfConsistencyOptimizer")


class SelfConsistencyConfig(SampledConfig):
    """Settings of :class:`SelfConsistencyOptimizer`."""

    k: int = Field(default=5, ge=1, le=64, description="samples to draw")
    similarity_threshold: float = Field(
        default=0.8, gt=0.0, le=1.0, description="how alike two replies with no readable answer must be to agree"
    )

    @property
    def sample_count(self) -> int:
        return self.k


class SelfConsistencyOptimizer(SamplingOptimizer[SelfConsistencyConfig]):
    """Votes on the normalised final answers of ``k`` samples and returns a sample carrying the winner.

    Replies with no readable answer are grouped by how alike their texts are, each group voting as
    one answer. Replies that call tools agree when they call the same tools with the same
    arguments, compared canonically; such a group can win like any answer.
    """

    name: ClassVar[str] = "self_consistency"
    description: ClassVar[str] = "Self-consistency: k samples, a vote on their normalised final answers."
    config_type: ClassVar[type[SelfConsistencyConfig]] = SelfConsistencyConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"samples": "returned"}

    async def run(self, ctx: RunContext[SelfConsistencyConfig]) -> Outcome:
        samples = await self.draw(ctx, "samples")
        keys = [s.key for s in samples.samples]
        keyless = [i for i, key in enumerate(keys) if key is None]
        grouped = similarity_keys([samples.samples[i].text for i in keyless], ctx.config.similarity_threshold)
        for i, group in zip(keyless, grouped, strict=True):
            keys[i] = group
        vote, chosen = voted(ctx, samples, keys)
        reasoning = (
            f"Vote over {len(samples.samples)} of {samples.requested} samples: {vote.summary()}.\n"
            f"Returned sample {chosen.index + 1}, which gives the winning answer."
        )
        extras = {
            **samples_extras(samples, keys),
            "winner": vote.winner,
            "votes": dict(vote.counts),
            "tie": vote.tie,
            "tied": list(vote.tied),
            "by_similarity": len(keyless),
        }
        source: Source = "single" if len(samples.samples) == 1 else "vote"
        return chosen_outcome(ctx, chosen, source=source, reasoning=reasoning, extras=extras)
