"""Phase 1: sample diverse candidate answers, concurrently or as one native ``n`` request."""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from optillm_core import Completion, NoSolutions, Prompt, RunContext, gather

from ._config import MoaConfig
from ._settings import answer_max_tokens

__all__ = ("Candidates", "generate_candidates")

log = structlog.get_logger("optillm")


@dataclass(frozen=True)
class _Sample:
    text: str
    truncated: bool

    @property
    def empty(self) -> bool:
        return not self.text.strip()


@dataclass(frozen=True)
class Candidates:
    """The usable candidates, in sampling order, and what happened to the rest."""

    texts: tuple[str, ...]
    truncated: tuple[bool, ...]
    requested: int
    empty: int
    dropped_truncated: int
    refilled: int


async def generate_candidates(ctx: RunContext[MoaConfig]) -> Candidates:
    """Sample ``num_completions`` answers; refill empty or missing ones once when ``fallback`` is on."""
    config = ctx.config
    prompt = ctx.prompt(ctx.query)
    temperatures = config.candidate_temperatures or (config.candidate_temperature,) * config.num_completions
    samples = await _sample(ctx, prompt, list(temperatures))
    missing = [slot for slot, sample in enumerate(samples) if sample.empty]
    if missing and config.fallback:
        log.info("moa: refilling empty candidates", optimizer=ctx.optimizer, missing=len(missing))
        refills = await _sample(ctx, prompt, [temperatures[slot] for slot in missing])
        for slot, sample in zip(missing, refills, strict=True):
            samples[slot] = sample
    return _keep_usable(ctx, samples, refilled=len(missing) if config.fallback else 0)


async def _sample(ctx: RunContext[MoaConfig], prompt: Prompt, temperatures: list[float]) -> list[_Sample]:
    """One sample per temperature: one ``n`` request when they are equal, else one request each."""
    max_tokens = answer_max_tokens(ctx.config.candidate_max_tokens, ctx.settings.max_tokens)
    if ctx.config.candidate_temperatures is None:
        settings = ctx.call_settings(temperature=temperatures[0], max_tokens=max_tokens, n=len(temperatures))
        return _samples(await ctx.client.complete(prompt, settings), len(temperatures))

    def single(temperature: float) -> Callable[[], Awaitable[Completion]]:
        settings = ctx.call_settings(temperature=temperature, max_tokens=max_tokens, n=1)
        return lambda: ctx.client.complete(prompt, settings)

    completions = await gather(single(t) for t in temperatures)
    return [_samples(c, 1)[0] for c in completions]


def _samples(completion: Completion, expected: int) -> list[_Sample]:
    """The choices of a completion, padded with empty samples when the provider returned fewer."""
    samples = [_Sample(text, completion.truncated(i)) for i, text in enumerate(completion.texts[:expected])]
    samples += [_Sample("", False)] * (expected - len(samples))
    return samples


def _keep_usable(ctx: RunContext[MoaConfig], samples: list[_Sample], *, refilled: int) -> Candidates:
    config = ctx.config
    keep_cut = config.truncated_candidates == "keep"
    usable = [s for s in samples if not s.empty and (keep_cut or not s.truncated)]
    empty = sum(s.empty for s in samples)
    dropped_truncated = sum(not s.empty and s.truncated for s in samples) if not keep_cut else 0
    if len(usable) < config.min_candidates:
        raise NoSolutions(
            f"moa: only {len(usable)} usable candidate(s) of {len(samples)} "
            f"(min_candidates={config.min_candidates}): {empty} came back empty and {dropped_truncated} were cut "
            "off by max_tokens; raise max_tokens, set truncated_candidates='keep', or lower min_candidates"
        )
    return Candidates(
        texts=tuple(s.text.strip() for s in usable),
        truncated=tuple(s.truncated for s in usable),
        requested=len(samples),
        empty=empty,
        dropped_truncated=dropped_truncated,
        refilled=refilled,
    )
