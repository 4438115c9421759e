"""Phase 1: sample diverse candidate answers, concurrently or as one native ``n`` request.

Candidates differ by sampling where the model lets them: one request with ``n`` choices where the
client has native ``n`` (up to the model's ``max_n``), else one request per candidate, each with its
own seed offset. Where sampling cannot set them apart (the model refuses temperature, or a candidate
is sampled at temperature 0) each candidate gets a request of its own whose prompt asks for a
different approach. A single candidate's request that fails with a retryable error (the router
has already retried it) counts as a missing candidate; any other error ends the run.
"""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from optillm_core import ClientError, Completion, GenerationSettings, NoSolutions, Prompt, RunContext, gather

from ._config import MoaConfig
from ._log import log
from ._prompts import candidate_query

__all__ = ("Candidates", "candidate_requests", "generate_candidates")


@dataclass(frozen=True)
class _Sample:
    text: str
    thinking: str
    truncated: bool
    error: ClientError | None = None

    @property
    def empty(self) -> bool:
        return not self.text.strip()


@dataclass(frozen=True)
class Candidates:
    """The usable candidates, in sampling order, and what happened to the rest."""

    texts: tuple[str, ...]
    thinking: tuple[str, ...]
    truncated: tuple[bool, ...]
    requested: int
    empty: int
    dropped_truncated: int
    refilled: int
    failed: int
    varied_prompts: bool


@dataclass(frozen=True)
class _Plan:
    """How each candidate slot is asked: its prompt and temperature; ``shared`` when one ``n`` request serves all."""

    prompts: tuple[Prompt, ...]
    temperatures: tuple[float, ...]
    shared: bool
    varied: bool


async def generate_candidates(ctx: RunContext[MoaConfig]) -> Candidates:
    """Sample ``num_completions`` answers; refill empty or missing ones once when ``fallback`` is on."""
    config = ctx.config
    plan = _plan(ctx)
    samples = await _sample(ctx, plan, list(range(config.num_completions)), refill=False)
    missing = [slot for slot, sample in enumerate(samples) if sample.empty]
    if missing and config.fallback:
        log.info("moa: refilling empty candidates", optimizer=ctx.optimizer, missing=len(missing))
        refills = await _sample(ctx, plan, missing, refill=True)
        for slot, sample in zip(missing, refills, strict=True):
            samples[slot] = sample
    errors = [s.error for s in samples if s.error is not None]
    if errors and not any(not s.empty for s in samples):
        raise errors[0]  # every candidate failed: the provider's error says more than "no candidates"
    return _keep_usable(ctx, samples, refilled=len(missing) if config.fallback else 0, varied=plan.varied)


def candidate_requests(ctx: RunContext[MoaConfig]) -> int:
    """The requests of the candidates' first round: one ``n`` request when shared, else one per candidate."""
    return 1 if _plan(ctx).shared else ctx.config.num_completions


def _plan(ctx: RunContext[MoaConfig]) -> _Plan:
    config = ctx.config
    count = config.num_completions
    temperatures = config.candidate_temperatures or (config.candidate_temperature,) * count
    sampled = [_settings(ctx, t) for t in temperatures]
    varied = count > 1 and (not ctx.profile.temperature or any(s.temperature == 0 for s in sampled))
    if varied:
        prompts = tuple(ctx.prompt(candidate_query(ctx.query, slot)) for slot in range(count))
    else:
        prompts = (ctx.prompt(ctx.query),) * count
    max_n = ctx.profile.max_n
    native = ctx.client.supports_native_n and (max_n is None or count <= max_n)
    shared = native and not varied and config.candidate_temperatures is None
    return _Plan(prompts=prompts, temperatures=tuple(temperatures), shared=shared, varied=varied)


def _settings(
    ctx: RunContext[MoaConfig], temperature: float, *, n: int = 1, seed_offset: int = 0
) -> GenerationSettings:
    config = ctx.config
    field = "candidate_temperatures" if config.candidate_temperatures is not None else "candidate_temperature"
    return ctx.call_settings(
        "answer",
        temperature=temperature,
        max_tokens=config.candidate_max_tokens,
        n=n,
        seed_offset=seed_offset,
        pinned=config.pinned(temperature=field),
    )


async def _sample(ctx: RunContext[MoaConfig], plan: _Plan, slots: Sequence[int], *, refill: bool) -> list[_Sample]:
    """One sample per slot. A refill's seeds follow the first round's, so that it does not repeat them."""
    first_seed = ctx.config.num_completions if refill else 0
    if plan.shared:
        settings = _settings(ctx, plan.temperatures[0], n=len(slots), seed_offset=first_seed)
        return _samples(await ctx.client.complete(plan.prompts[0], settings), len(slots))

    def single(slot: int) -> Callable[[], Awaitable[_Sample]]:
        settings = _settings(ctx, plan.temperatures[slot], seed_offset=first_seed + slot)

        async def call() -> _Sample:
            try:
                return _samples(await ctx.client.complete(plan.prompts[slot], settings), 1)[0]
            except ClientError as exc:
                if not exc.retryable:
                    raise
                log.warning("moa: a candidate failed", optimizer=ctx.optimizer, error=str(exc))
                return _Sample("", "", False, error=exc)

        return call

    return await gather(single(slot) for slot in slots)


def _samples(completion: Completion, expected: int) -> list[_Sample]:
    """The choices of a completion (their text outside any thinking), padded with empty samples when fewer came back."""
    samples = [
        _Sample(text, completion.thinking[i].strip() if i < len(completion.thinking) else "", completion.truncated(i))
        for i, text in enumerate(completion.texts[:expected])
    ]
    samples += [_Sample("", "", False)] * (expected - len(samples))
    return samples


def _keep_usable(ctx: RunContext[MoaConfig], samples: list[_Sample], *, refilled: int, varied: bool) -> Candidates:
    config = ctx.config
    keep_cut = config.truncated_candidates == "keep"
    usable = [s for s in samples if not s.empty and (keep_cut or not s.truncated)]
    empty = sum(s.empty for s in samples)
    dropped_truncated = sum(not s.empty and s.truncated for s in samples) if not keep_cut else 0
    if len(usable) < config.min_candidates:
        thinking_only = sum(s.empty and bool(s.thinking.strip()) for s in samples)
        failed = sum(s.error is not None for s in samples)
        notes = [f"{thinking_only} held only thinking"] * bool(thinking_only) + [f"{failed} failed"] * bool(failed)
        note = f" ({', '.join(notes)})" if notes else ""
        raise NoSolutions(
            f"moa: only {len(usable)} usable candidate(s) of {len(samples)} "
            f"(min_candidates={config.min_candidates}): {empty} came back empty{note} and {dropped_truncated} were "
            "cut off by max_tokens; raise max_tokens, set truncated_candidates='keep', or lower min_candidates"
        )
    return Candidates(
        texts=tuple(s.text.strip() for s in usable),
        thinking=tuple(s.thinking for s in usable),
        truncated=tuple(s.truncated for s in usable),
        requested=len(samples),
        empty=empty,
        dropped_truncated=dropped_truncated,
        refilled=refilled,
        failed=sum(s.error is not None for s in samples),
        varied_prompts=varied,
    )
