"""What the four strategies share: returning a chosen sample as the answer, and reporting the samples."""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from typing import Any, Literal

from optillm_core import Outcome, RunContext, Sample, Samples, Vote

__all__ = ("Source", "apply_stop", "chosen_outcome", "record_fallback", "representative", "samples_extras")

Source = Literal["single", "vote", "rating", "comparison", "first"]
"""How the returned sample was chosen: the only usable one, by the vote, by the ratings, by the
comparison, or the first sample (no sample held an answer to vote on)."""


def apply_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` cut before the first of the caller's stop sequences, as a provider would have cut it."""
    if not stop:
        return text
    cut = min((found for found in (text.find(s) for s in stop if s) if found != -1), default=len(text))
    return text[:cut].rstrip()


def representative(samples: Sequence[Sample], keys: Sequence[str | None], answer: str | None) -> Sample:
    """The sample to return for ``answer``: the earliest carrying it that was not cut off, else the earliest.

    With no answer (``None``), the earliest sample that was not cut off.
    """
    carrying = [s for s, key in zip(samples, keys, strict=True) if key == answer]
    pool = carrying or list(samples)
    return next((s for s in pool if not s.truncated), pool[0])


def chosen_outcome(
    ctx: RunContext[Any], sample: Sample, *, source: Source, reasoning: str, extras: dict[str, Any]
) -> Outcome:
    """The chosen sample as the run's answer: the caller's ``stop`` applied, its thinking kept.

    A sample cut off at its token limit is the answer only when no whole one carried it; its
    ``finish_reason`` is then ``"length"``, unless a stop sequence ends the answer before the cut.
    """
    stop = ctx.settings.stop
    stopped = any(s and s in sample.text for s in stop or ())
    return Outcome(
        answer=apply_stop(sample.text, stop),
        finish_reason="length" if sample.truncated and not stopped else "stop",
        thinking=sample.thinking,
        reasoning=reasoning,
        extras={**extras, "chosen": sample.index, "source": source},
    )


def record_fallback(ctx: RunContext[Any], samples: Samples, keys: Sequence[str | None], vote: Vote) -> Sample:
    """Remember the vote's sample as the answer to return if the budget runs out later; return it."""
    sample = representative(samples.samples, keys, vote.winner)
    ctx.record_best(
        apply_stop(sample.text, ctx.settings.stop),
        f"The budget ran out after sampling; this is the sample the vote picked ({vote.summary()}).",
        thinking=sample.thinking,
        chosen=sample.index,
        source="vote",
    )
    return sample


def samples_extras(samples: Samples, keys: Sequence[str | None]) -> dict[str, Any]:
    """The samples and what became of the ones asked for, for ``Outcome.extras``."""
    return {
        "samples": [s.text for s in samples.samples],
        "sample_indices": [s.index for s in samples.samples],
        "answers": list(keys),
        "requested": samples.requested,
        "usable": len(samples.samples),
        "empty": samples.empty,
        "failed": samples.failed,
        "errors": [f"{type(e).__name__}: {e}" for e in samples.errors],
        "varied_prompts": samples.varied,
    }
