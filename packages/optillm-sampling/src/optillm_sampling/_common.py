"""What the four strategies share: drawing the samples, the vote's fallback, and returning a chosen sample.

The samples are replies that may be returned as they are (``returned=True``): they get the
caller's ``response_format`` and, when the caller offers tools, the tools with the conversation as
real turns, so a sample may be a tool call. Whatever picks among them (a vote, ratings, a
comparison) picks among tool calls as among answers.
"""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import Field

from optillm_core import GenerationSettings, ModelClient, Optimizer, OptimizerConfig, Outcome, RunContext
from optillm_core.toolkit import Sample, Samples, Vote, apply_stop, plurality_vote, sample, sample_requests

__all__ = (
    "SampledConfig",
    "SamplingOptimizer",
    "Source",
    "chosen_outcome",
    "representative",
    "samples_extras",
    "voted",
)

Source = Literal["single", "vote", "rating", "comparison", "first"]
"""How the returned sample was chosen: the only usable one, by the vote, by the ratings, by the
comparison, or the first sample (no sample held an answer to vote on)."""


class SampledConfig(OptimizerConfig):
    """The settings every strategy here samples with; each names its own count (``n`` or ``k``)."""

    temperature: float = Field(default=1.0, ge=0.0, description="temperature of the samples")
    max_tokens: int = Field(default=4096, ge=1, description="token limit of each sample")

    @property
    def sample_count(self) -> int:
        """How many samples to draw."""
        raise NotImplementedError


ConfigT = TypeVar("ConfigT", bound=SampledConfig)


class SamplingOptimizer(Optimizer[ConfigT]):
    """A strategy that draws samples and returns one of them as it is (text or tool calls)."""

    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The samples' requests: one per sample, or fewer ``n`` requests where the model samples natively."""
        config = self.config
        return sample_requests(
            self.planning_context(client, settings),
            config.sample_count,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            pinned=config.pinned(temperature="temperature"),
            returned=True,
        )

    async def draw(self, ctx: RunContext[ConfigT], phase: str) -> Samples:
        """Phase ``phase``: the config's samples, each one a reply that may be returned as it is."""
        config = ctx.config
        ctx.phase(phase)
        return await sample(
            ctx,
            config.sample_count,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            pinned=config.pinned(temperature="temperature"),
            returned=True,
        )


def representative(samples: Sequence[Sample], keys: Sequence[str | None], answer: str | None) -> Sample:
    """The sample to return for ``answer``: the earliest carrying it that was not cut off, else the earliest.

    With no answer (``None``), the earliest sample that was not cut off.
    """
    carrying = [s for s, key in zip(samples, keys, strict=True) if key == answer]
    pool = carrying or list(samples)
    return next((s for s in pool if not s.truncated), pool[0])


def chosen_outcome(
    ctx: RunContext[Any],
    sample: Sample,
    *,
    source: Source,
    reasoning: str,
    extras: dict[str, Any],
    budget_exhausted: bool = False,
) -> Outcome:
    """The chosen sample as the run's answer: its tool calls, its text cut at the caller's ``stop``, its thinking.

    A sample cut off at its token limit is the answer only when no whole one carried it; its
    ``finish_reason`` is then ``"length"``, unless a stop sequence ends the answer before the cut.
    A sample that calls tools finishes with ``"tool_calls"``, as its completion did.
    """
    stop = ctx.settings.stop
    stopped = any(s and s in sample.text for s in stop or ())
    if sample.truncated and not stopped:
        finish: Literal["length", "tool_calls", "stop"] = "length"
    else:
        finish = "tool_calls" if sample.tool_calls else "stop"
    return Outcome(
        answer=apply_stop(sample.text, stop),
        tool_calls=sample.tool_calls,
        finish_reason=finish,
        thinking=sample.thinking,
        reasoning=reasoning,
        extras={**extras, "chosen": sample.index, "source": source},
        budget_exhausted=budget_exhausted,
    )


def voted(ctx: RunContext[Any], samples: Samples, keys: Sequence[str | None]) -> tuple[Vote, Sample]:
    """The plurality vote on ``keys`` and its sample, remembered as the answer if the budget runs out later."""
    vote = plurality_vote(keys)
    chosen = representative(samples.samples, keys, vote.winner)
    reasoning = f"The budget ran out after sampling; this is the sample the vote picked ({vote.summary()})."
    ctx.best = chosen_outcome(ctx, chosen, source="vote", reasoning=reasoning, extras={}, budget_exhausted=True)
    return vote, chosen


def samples_extras(samples: Samples, keys: Sequence[str | None]) -> dict[str, Any]:
    """The samples (a tool call written out as a judge reads it) and what became of the ones asked for."""
    return {
        "samples": [s.rendered for s in samples.samples],
        "sample_indices": [s.index for s in samples.samples],
        "answers": list(keys),
        "requested": samples.requested,
        "usable": len(samples.samples),
        "empty": samples.empty,
        "failed": samples.failed,
        "errors": [f"{type(e).__name__}: {e}" for e in samples.errors],
        "varied_prompts": samples.varied,
    }
