"""Self-consistency: k samples and the most common final answer — one round-trip."""

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
from ._similarity import similarity_keys

__all__ = ("SelfConsistencyConfig", "SelfConsistencyOptimizer")


class SelfConsistencyConfig(OptimizerConfig):
    """Settings of :class:`SelfConsistencyOptimizer`."""

    k: int = Field(default=5, ge=1, le=64, description="samples to draw")
    temperature: float = Field(default=1.0, ge=0.0, description="temperature of the samples")
    max_tokens: int = Field(default=4096, ge=1, description="token limit of each sample")
    similarity_threshold: float = Field(
        default=0.8, gt=0.0, le=1.0, description="how alike two replies with no readable answer must be to agree"
    )


class SelfConsistencyOptimizer(Optimizer[SelfConsistencyConfig]):
    """Votes on the normalised final answers of ``k`` samples and returns a sample carrying the winner.

    Replies with no readable answer are grouped by how alike their texts are, each group voting as one answer.
    """

    name: ClassVar[str] = "self_consistency"
    description: ClassVar[str] = "Self-consistency: k samples, a vote on their normalised final answers."
    config_type: ClassVar[type[SelfConsistencyConfig]] = SelfConsistencyConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"samples": "answer"}

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The requests of ``k`` samples: ``k``, or fewer ``n`` requests where the model samples natively."""
        return sample_requests(self.planning_context(client, settings), self.config.k)

    async def run(self, ctx: RunContext[SelfConsistencyConfig]) -> Outcome:
        config = ctx.config
        ctx.phase("samples")
        samples = await sample_answers(
            ctx,
            config.k,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            pinned=config.pinned(temperature="temperature"),
        )
        extracted = [answer_key(s.text) for s in samples.samples]
        keyless = [i for i, key in enumerate(extracted) if key is None]
        grouped = similarity_keys([samples.samples[i].text for i in keyless], config.similarity_threshold)
        keys: list[str | None] = list(extracted)
        for i, group in zip(keyless, grouped, strict=True):
            keys[i] = group
        vote = plurality_vote(keys)
        chosen = record_fallback(ctx, samples, keys, vote)
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
