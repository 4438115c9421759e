"""Phase 1: ``num_completions`` diverse candidate answers, asked with core's one sampler.

:func:`optillm_core.toolkit.sample` decides how they are asked and what a failure costs: candidates
at one temperature share native ``n`` requests in chunks of the model's ``max_n`` where the client
has native ``n`` (else one request each, with its own seed offset); where sampling cannot set them
apart (the model refuses temperature, or a candidate's temperature is 0) candidate ``i`` > 1 is asked
with a request of its own whose question is preceded by approach ``i``. A request that fails
absorbably (retryable, or unreadable) loses its candidates, which ``fallback`` asks for once more;
any other error ends the run. Candidates are never returned as they are, so they are asked without
the caller's tools, with the conversation as one question (``ctx.query``).
"""

from __future__ import annotations as _annotations

from dataclasses import dataclass

from optillm_core import NoSolutions, RunContext
from optillm_core.toolkit import Samples, sample, sample_requests

from ._config import MoaConfig

__all__ = ("Candidates", "candidate_requests", "generate_candidates")


@dataclass(frozen=True)
class Candidates:
    """The usable candidates, in sampling order, and what happened to the rest.

    ``empty`` counts the candidates still missing after any refill (empty, or never came back);
    ``failed`` those of them that never came back (their request failed, or returned fewer choices).
    """

    texts: tuple[str, ...]
    thinking: tuple[str, ...]
    truncated: tuple[bool, ...]
    requested: int
    empty: int
    dropped_truncated: int
    refilled: int
    failed: int
    varied_prompts: bool


def _temperature(config: MoaConfig) -> float | tuple[float, ...]:
    """One temperature for every candidate, or one each."""
    return config.candidate_temperatures or config.candidate_temperature


def _pinned(config: MoaConfig) -> frozenset[str]:
    """``temperature`` when the config set the candidates' temperature, so that the caller's does not replace it."""
    field = "candidate_temperatures" if config.candidate_temperatures is not None else "candidate_temperature"
    return config.pinned(temperature=field)


async def generate_candidates(ctx: RunContext[MoaConfig]) -> Candidates:
    """The usable candidates; with fewer than ``min_candidates``, ``NoSolutions`` naming what to change."""
    config = ctx.config
    try:
        samples = await sample(
            ctx,
            config.num_completions,
            temperature=_temperature(config),
            max_tokens=config.candidate_max_tokens,
            pinned=_pinned(config),
            truncated=config.truncated_candidates,
            refill=config.fallback,
            minimum=config.min_candidates,
        )
    except NoSolutions as exc:
        raise NoSolutions(_advice(config, exc)) from exc
    return _candidates(samples)


def candidate_requests(ctx: RunContext[MoaConfig]) -> int:
    """The requests of the candidates' first round, as the sampler will send them."""
    config = ctx.config
    return sample_requests(
        ctx,
        config.num_completions,
        temperature=_temperature(config),
        max_tokens=config.candidate_max_tokens,
        pinned=_pinned(config),
    )


def _candidates(samples: Samples) -> Candidates:
    usable = samples.samples
    return Candidates(
        texts=tuple(s.text for s in usable),
        thinking=tuple(s.thinking for s in usable),
        truncated=tuple(s.truncated for s in usable),
        requested=samples.requested,
        empty=samples.empty + samples.failed,
        dropped_truncated=samples.dropped_truncated,
        refilled=samples.refilled,
        failed=samples.failed,
        varied_prompts=samples.varied,
    )


def _advice(config: MoaConfig, exc: NoSolutions) -> str:
    """The sampler's account of the shortfall, then what to change in MoA's own settings."""
    changes = [f"raise candidate_max_tokens (now {config.candidate_max_tokens}) or the caller's max_tokens"]
    if config.truncated_candidates == "drop":
        changes.append("set truncated_candidates='keep'")
    if config.min_candidates > 1:
        changes.append(f"lower min_candidates (now {config.min_candidates})")
    if not config.fallback:
        changes.append("turn fallback on to ask once more for missing candidates")
    return f"{exc}. In moa's config: {', '.join(changes)}"
