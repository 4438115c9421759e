"""Best-of-n: n samples, each rated by a scorer concurrently, the best returned — two round-trips."""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from optillm_core import CallRole, GenerationSettings, ModelClient, Outcome, RunContext
from optillm_core.toolkit import LlmJudgeScorer, Rating, Sample, Scorer, Vote, settle

from ._common import SampledConfig, SamplingOptimizer, chosen_outcome, samples_extras, voted
from ._log import log

__all__ = ("BestOfNConfig", "BestOfNOptimizer")


class BestOfNConfig(SampledConfig):
    """Settings of :class:`BestOfNOptimizer`; the scorer itself is given to the optimizer."""

    n: int = Field(default=3, ge=1, le=64, description="samples to draw and rate")
    rating_temperature: float = Field(default=0.1, ge=0.0, description="temperature of the default judge")
    rating_max_tokens: int = Field(default=512, ge=1, description="token limit of each judge reply")

    @property
    def sample_count(self) -> int:
        return self.n


class BestOfNOptimizer(SamplingOptimizer[BestOfNConfig]):
    """Draws ``n`` samples, rates each with a :class:`~optillm_core.toolkit.Scorer` (concurrently), returns the best.

    The default scorer is :class:`~optillm_core.toolkit.LlmJudgeScorer` (one judge call per
    sample); pass ``scorer=`` for any other, such as a :class:`~optillm_core.toolkit.FunctionScorer`
    around a test runner. The scorer reads each sample as :attr:`Sample.rendered` (a tool call
    written out with its arguments), so tool calls are rated against text answers.
    """

    name: ClassVar[str] = "bon"
    description: ClassVar[str] = (
        "Best-of-n: n samples, each rated by a scorer (an LLM judge by default), the best kept."
    )
    config_type: ClassVar[type[BestOfNConfig]] = BestOfNConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"samples": "returned", "ratings": "judge"}

    def __init__(self, config: BestOfNConfig | None = None, *, scorer: Scorer | None = None) -> None:
        super().__init__(config)
        self.scorer: Scorer = scorer or LlmJudgeScorer(
            temperature=self.config.rating_temperature, max_tokens=self.config.rating_max_tokens
        )

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The samples' requests and, with the default judge, one rating call per sample (none for a single sample).

        Another scorer's calls are its own affair and not counted.
        """
        n = self.config.n
        ratings = n if n > 1 and isinstance(self.scorer, LlmJudgeScorer) else 0
        return super().planned_calls(client, settings) + ratings

    async def run(self, ctx: RunContext[BestOfNConfig]) -> Outcome:
        samples = await self.draw(ctx, "samples")
        keys = [s.key for s in samples.samples]
        vote, fallback = voted(ctx, samples, keys)
        extras: dict[str, Any] = {**samples_extras(samples, keys), "scorer": self.scorer.name, "vote": vote.summary()}
        if len(samples.samples) == 1:
            return chosen_outcome(
                ctx, fallback, source="single", reasoning="Only one sample was usable; it was not rated.", extras=extras
            )

        ctx.phase("ratings")
        ratings = await self._rate(ctx, samples.samples)
        extras["ratings"] = [r.value if r.parsed else None for r in ratings]
        extras["rating_details"] = [r.detail for r in ratings]
        extras["rating_calls"] = sum(r.llm_calls for r in ratings)
        if not any(r.parsed for r in ratings):
            log.warning("bon: no sample could be rated, returning the vote's", optimizer=ctx.optimizer)
            reasoning = _reasoning(samples.samples, ratings, fallback) + "\nNo rating could be read, so the vote chose."
            return chosen_outcome(ctx, fallback, source="vote", reasoning=reasoning, extras=extras)
        best = _best(samples.samples, keys, ratings, vote)
        return chosen_outcome(
            ctx, best, source="rating", reasoning=_reasoning(samples.samples, ratings, best), extras=extras
        )

    async def _rate(self, ctx: RunContext[BestOfNConfig], samples: Sequence[Sample]) -> list[Rating]:
        """Every sample's rating, concurrently; a rating that failed absorbably counts as unrated.

        Any other failure (authentication, permission, a bad request, the budget) ends the run.
        """

        def rate(sample: Sample) -> Callable[[], Awaitable[Rating]]:
            return lambda: self.scorer.rate(ctx, ctx.query, sample.rendered)

        results = await settle((rate(s) for s in samples), optimizer=ctx.optimizer, what="rating")
        return [
            Rating.unrated(f"the rating call failed: {type(r).__name__}: {r}") if isinstance(r, Exception) else r
            for r in results
        ]


def _best(samples: Sequence[Sample], keys: Sequence[str | None], ratings: Sequence[Rating], vote: Vote) -> Sample:
    """Highest parsed rating; equal ratings go to the answer the vote ranks higher, then complete, then earlier."""
    ranked_answers = [answer for answer, _ in vote.counts]

    def rank(i: int) -> tuple[bool, float, int, bool, int]:
        key = keys[i]
        vote_rank = ranked_answers.index(key) if key in ranked_answers else len(ranked_answers)
        return (ratings[i].parsed, ratings[i].value, -vote_rank, not samples[i].truncated, -samples[i].index)

    return samples[max(range(len(samples)), key=rank)]


def _reasoning(samples: Sequence[Sample], ratings: Sequence[Rating], chosen: Sample) -> str:
    lines = [
        f"Sample {s.index + 1}: rated {r.value:.3g}" if r.parsed else f"Sample {s.index + 1}: no rating"
        for s, r in zip(samples, ratings, strict=True)
    ]
    lines.append(f"Returned sample {chosen.index + 1}.")
    return "\n".join(lines)
