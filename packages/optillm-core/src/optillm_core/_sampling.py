"""The one sampler: ``k`` diverse replies to one prompt, made concurrently, diverse even where temperature cannot be.

Every strategy that wants several replies to the same question (samples to vote on, candidates to
critique, replies to search over) asks :func:`sample`. Its rules, each in one place:

- **Temperatures.** One for every sample, or one per sample (a sequence of ``k``); each goes
  through :meth:`RunContext.call_settings` as an ``answer`` call, so the caller's temperature
  replaces it unless the strategy's config pinned it.
- **Varying prompts.** Sample ``i`` is asked with approach ``i`` (:func:`varied_prompt`: the
  approach goes before the last user message) exactly when sampling cannot set it apart: the
  model refuses a temperature, or the sample's temperature is 0. Sample 0 is the prompt as it is.
- **Requests.** Samples asked the same way at the same temperature share requests with native
  ``n`` where the client has it, in chunks of at most the profile's ``max_n``; every other sample
  is a request of its own. Each request gets ``seed_offset`` of its first sample (refills follow
  on from ``k``), so a caller's seed gives every sample its own.
- **Failures.** A request that fails absorbably (:func:`absorbable`) loses its samples and the
  others go on; any other error ends the run at once. Replies with neither text nor tool calls
  are empty. ``refill=True`` asks once more, in one extra round, for every sample that failed or
  came back empty. ``truncated="drop"`` leaves out samples cut off by the token limit.
- **Enough.** With fewer than ``minimum`` usable samples the run ends: with the first provider
  error when nothing came back at all, else with :class:`NoSolutions` saying what went wrong.
- **Replies that are answers.** ``returned=True`` marks samples that may be returned as the
  answer as they are (a vote's winner): they get the caller's ``response_format`` and, when the
  caller offers tools, the tools, with the conversation as real turns, and may answer with tool
  calls.
"""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._absorb import settle
from ._approaches import approach, varied_prompt
from ._context import RunContext
from ._errors import ClientError, InvalidConfiguration, NoSolutions
from ._log import log
from ._messages import GenerationSettings, Prompt
from ._responses import Completion
from ._tools import ToolCall
from ._voting import render_reply, reply_key

__all__ = ("Sample", "Samples", "sample", "sample_requests")

Temperatures = float | None | Sequence[float | None]


@dataclass(frozen=True)
class Sample:
    """One sampled reply: its text (never its thinking), thinking, tool calls, and whether it hit the token limit."""

    index: int
    text: str
    thinking: str = ""
    truncated: bool = False
    approach: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.text and not self.tool_calls

    @property
    def key(self) -> str | None:
        """What the reply says, to vote with (:func:`reply_key`)."""
        return reply_key(self.text, self.tool_calls)

    @property
    def rendered(self) -> str:
        """The reply as a judge reads it, tool calls included (:func:`render_reply`)."""
        return render_reply(self.text, self.tool_calls)


@dataclass(frozen=True)
class Samples:
    """The usable samples in index order, and what happened to the others.

    ``varied`` is true when some sample was asked with a varied prompt; ``errors`` holds the
    absorbed provider errors of requests that failed; ``refilled`` counts samples asked again.
    """

    samples: tuple[Sample, ...]
    requested: int
    requests: int
    empty: int
    errors: tuple[ClientError | Exception, ...]
    varied: bool
    dropped_truncated: int = 0
    refilled: int = 0

    @property
    def failed(self) -> int:
        """Samples asked for that never came back (their request failed or returned fewer choices)."""
        return self.requested - len(self.samples) - self.empty - self.dropped_truncated

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.samples)


@dataclass(frozen=True)
class _Request:
    prompt: Prompt
    slots: tuple[int, ...]
    settings: GenerationSettings
    approach: str | None


async def sample(
    ctx: RunContext[Any],
    k: int,
    *,
    temperature: Temperatures = None,
    max_tokens: int | None = None,
    pinned: Collection[str] = (),
    prompt: Prompt | None = None,
    returned: bool = False,
    truncated: Literal["keep", "drop"] = "keep",
    refill: bool = False,
    minimum: int = 1,
) -> Samples:
    """``k`` replies to ``prompt`` (by default the run's question), by the rules of this module.

    ``prompt``: what each sample is asked; without it, the question as one user message
    (``ctx.prompt(ctx.query)``), or with ``returned`` and tools offered, the conversation as real
    turns (``ctx.conversation_prompt()``).
    """
    if k < 1:
        raise InvalidConfiguration(f"sampling needs k >= 1 samples (got {k})")
    if not 1 <= minimum <= k:
        raise InvalidConfiguration(f"sampling needs 1 <= minimum <= k (got minimum={minimum}, k={k})")
    temperatures = _per_slot(temperature, k)
    base = prompt if prompt is not None else _default_prompt(ctx, returned)
    plan = _Plan(ctx, base, temperatures, max_tokens, pinned, returned)
    slots: dict[int, Sample | Exception | None] = dict.fromkeys(range(k))
    requests = plan.requests(range(k), seed_base=0)
    await _fill(ctx, requests, slots)
    refilled = 0
    missing = [slot for slot, got in slots.items() if not isinstance(got, Sample) or got.empty]
    if refill and missing:
        log.info("asking again for missing samples", optimizer=ctx.optimizer, missing=len(missing))
        refills = plan.requests(missing, seed_base=k)
        await _fill(ctx, refills, slots)
        requests += refills
        refilled = len(missing)
    return _gathered(ctx, slots, len(requests), plan.varied, truncated, refilled, minimum)


def sample_requests(
    ctx: RunContext[Any],
    k: int,
    *,
    temperature: Temperatures = None,
    max_tokens: int | None = None,
    pinned: Collection[str] = (),
    returned: bool = False,
) -> int:
    """How many requests :func:`sample` sends for ``k`` samples in its first round (for ``planned_calls``)."""
    plan = _Plan(ctx, Prompt.from_query(""), _per_slot(temperature, k), max_tokens, pinned, returned)
    return len(plan.requests(range(k), seed_base=0))


def _per_slot(temperature: Temperatures, k: int) -> tuple[float | None, ...]:
    if temperature is None or isinstance(temperature, int | float):
        return (temperature,) * k
    temperatures = tuple(temperature)
    if len(temperatures) != k:
        raise InvalidConfiguration(f"sampling {k} replies needs one temperature per reply (got {len(temperatures)})")
    return temperatures


def _default_prompt(ctx: RunContext[Any], returned: bool) -> Prompt:
    if returned and ctx.tools_offered:
        return ctx.conversation_prompt()
    return ctx.prompt(ctx.query)


class _Plan:
    """How each slot is asked: its settings, whether its prompt is varied, and which slots share a request."""

    def __init__(
        self,
        ctx: RunContext[Any],
        prompt: Prompt,
        temperatures: tuple[float | None, ...],
        max_tokens: int | None,
        pinned: Collection[str],
        returned: bool,
    ) -> None:
        self.ctx = ctx
        self.prompt = prompt
        self.temperatures = temperatures
        self.max_tokens = max_tokens
        self.pinned = pinned
        self.returned = returned
        k = len(temperatures)
        settings = [self._settings(t, 1, 0) for t in temperatures]
        self.varied_slots = frozenset(
            slot
            for slot, fitted in enumerate(settings)
            if k > 1 and slot > 0 and (not ctx.profile.temperature or fitted.temperature == 0)
        )

    @property
    def varied(self) -> bool:
        return bool(self.varied_slots)

    def _settings(self, temperature: float | None, n: int, seed_offset: int) -> GenerationSettings:
        return self.ctx.call_settings(
            "returned" if self.returned else "answer",
            temperature=temperature,
            max_tokens=self.max_tokens,
            n=n,
            seed_offset=seed_offset,
            pinned=self.pinned,
        )

    def requests(self, slots: Sequence[int], *, seed_base: int) -> list[_Request]:
        """The requests for ``slots``: varied ones singly, the rest grouped by temperature into ``n`` chunks."""
        requests: list[_Request] = []
        shared: dict[float | None, list[int]] = {}
        for slot in slots:
            if slot in self.varied_slots:
                settings = self._settings(self.temperatures[slot], 1, seed_base + slot)
                requests.append(_Request(varied_prompt(self.prompt, slot), (slot,), settings, approach(slot)))
            else:
                shared.setdefault(self.temperatures[slot], []).append(slot)
        native = self.ctx.client.supports_native_n
        size = max(1, self.ctx.profile.max_n or len(slots)) if native else 1
        for temperature, group in shared.items():
            for start in range(0, len(group), size):
                chunk = tuple(group[start : start + size])
                settings = self._settings(temperature, len(chunk), seed_base + chunk[0])
                requests.append(_Request(self.prompt, chunk, settings, None))
        return requests


async def _fill(
    ctx: RunContext[Any], requests: Sequence[_Request], slots: dict[int, Sample | Exception | None]
) -> None:
    def call(request: _Request) -> Callable[[], Awaitable[Completion]]:
        return lambda: ctx.client.complete(request.prompt, request.settings)

    results = await settle((call(request) for request in requests), optimizer=ctx.optimizer, what="sample")
    for request, result in zip(requests, results, strict=True):
        for offset, slot in enumerate(request.slots):
            slots[slot] = result if isinstance(result, Exception) else _choice(request, result, offset, slot)


def _choice(request: _Request, completion: Completion, offset: int, slot: int) -> Sample | None:
    """Choice ``offset`` of a request's completion as sample ``slot`` (``None`` when fewer choices came back)."""
    if offset >= len(completion.texts):
        return None
    return Sample(
        index=slot,
        text=completion.texts[offset].strip(),
        thinking=completion.thinking[offset].strip() if offset < len(completion.thinking) else "",
        truncated=completion.truncated(offset),
        approach=request.approach,
        tool_calls=completion.calls_of(offset),
    )


def _gathered(
    ctx: RunContext[Any],
    slots: dict[int, Sample | Exception | None],
    requests: int,
    varied: bool,
    truncated: Literal["keep", "drop"],
    refilled: int,
    minimum: int,
) -> Samples:
    got = [s for s in slots.values() if isinstance(s, Sample)]
    errors = tuple(s for s in slots.values() if isinstance(s, Exception))
    nonempty = [s for s in got if not s.empty]
    usable = [s for s in nonempty if truncated == "keep" or not s.truncated]
    samples = Samples(
        samples=tuple(sorted(usable, key=lambda s: s.index)),
        requested=len(slots),
        requests=requests,
        empty=len(got) - len(nonempty),
        errors=_distinct(errors),
        varied=varied,
        dropped_truncated=len(nonempty) - len(usable),
        refilled=refilled,
    )
    if len(usable) >= minimum:
        if len(usable) < len(slots):
            log.warning(
                "some samples are missing",
                optimizer=ctx.optimizer,
                requested=samples.requested,
                usable=len(usable),
                empty=samples.empty,
                dropped_truncated=samples.dropped_truncated,
                errors=[type(e).__name__ for e in samples.errors],
            )
        return samples
    if not got and errors:
        raise errors[0]  # nothing came back: the provider's error says more than "no samples"
    raise NoSolutions(_shortfall(ctx, samples, got, minimum))


def _distinct(errors: tuple[Exception, ...]) -> tuple[Exception, ...]:
    """Each failed request's error once (the slots of one ``n`` request share it)."""
    seen: list[Exception] = []
    for error in errors:
        if not any(error is other for other in seen):
            seen.append(error)
    return tuple(seen)


def _shortfall(ctx: RunContext[Any], samples: Samples, got: list[Sample], minimum: int) -> str:
    thinking_only = sum(s.empty and bool(s.thinking) for s in got)
    notes = [f"{samples.empty} came back empty"]
    if thinking_only:
        notes[0] += f" ({thinking_only} held only thinking)"
    if samples.dropped_truncated:
        notes.append(f"{samples.dropped_truncated} were cut off by the token limit and dropped")
    if samples.errors:
        notes.append(f"{samples.failed} failed ({type(samples.errors[0]).__name__}: {samples.errors[0]})")
    return (
        f"{ctx.optimizer}: only {len(samples.samples)} usable sample(s) of {samples.requested} "
        f"(at least {minimum} needed): {', '.join(notes)}; check that the model answers this query at all "
        "(max_tokens, the system prompt, content filters), or keep truncated samples"
    )
