"""Sampling several answers to one query at once, diverse even on models that refuse a temperature."""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from ._concurrency import gather_settled
from ._errors import BudgetExhausted, ClientError, InvalidConfiguration, NoSolutions
from ._log import log
from ._messages import Prompt
from ._optimizer import FINAL_ONLY_EXTRA, RunContext
from ._responses import Completion

__all__ = ("APPROACHES", "Sample", "Samples", "sample_answers", "sample_requests", "varied_query")


APPROACHES: tuple[str | None, ...] = (
    None,
    "Work through this step by step from first principles, then state your answer.",
    "First restate the problem in your own words and list what is given, then solve it.",
    "Start from what is asked and work backwards to what is given, then state your answer.",
    "Break the problem into smaller parts, settle each one, then combine them into your answer.",
    "Solve this with a different method from the most obvious one, and state your answer.",
    "Estimate roughly what the answer should be, then work it out exactly and check it against the estimate.",
    "Answer as a careful expert who double-checks every step before stating the answer.",
)
"""How sample ``i`` is asked to work when the model's temperature cannot vary (cycled; the first is the query as is)."""


def varied_query(query: str, index: int) -> str:
    """The query for sample ``index`` on a model whose temperature cannot vary: an approach, then the query.

    The approach comes first, so the query keeps the last word; sample 0 is the query as it is.
    """
    approach = APPROACHES[index % len(APPROACHES)]
    # Past the last approach they repeat; the attempt number keeps each prompt distinct.
    attempt = f"(Attempt {index + 1}.) " if index >= len(APPROACHES) else ""
    if approach is None:
        return f"{attempt.strip()}\n\n{query}" if attempt else query
    return f"{attempt}{approach}\n\n{query}"


@dataclass(frozen=True)
class Sample:
    """One sampled answer: its text (never its thinking), its thinking, and whether it hit the token limit."""

    index: int
    text: str
    thinking: str = ""
    truncated: bool = False
    approach: str | None = None


@dataclass(frozen=True)
class Samples:
    """The usable (non-empty) samples in index order, and what happened to the others.

    ``varied`` is true when diversity came from varied prompts because the model refuses a
    temperature; ``errors`` holds the provider errors of requests that failed.
    """

    samples: tuple[Sample, ...]
    requested: int
    requests: int
    empty: int
    errors: tuple[ClientError | BudgetExhausted, ...]
    varied: bool

    @property
    def failed(self) -> int:
        """Samples asked for that never came back (their request failed or returned fewer choices)."""
        return self.requested - len(self.samples) - self.empty

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(s.text for s in self.samples)


@dataclass(frozen=True)
class _Request:
    prompt: Prompt
    first: int
    n: int
    approach: str | None


async def sample_answers(
    ctx: RunContext[Any],
    k: int,
    *,
    temperature: float | None,
    max_tokens: int | None = None,
    pinned: Collection[str] = (),
    keep_response_format: bool = True,
) -> Samples:
    """``k`` answers to ``ctx.query`` as ``answer`` calls under the caller's settings, made concurrently.

    - A model that takes a temperature gets it: one request with ``n = k`` where the client returns
      several choices natively (split into requests of at most ``profile.max_n``), else ``k``
      single requests. Request ``i`` gets ``seed_offset`` ``i`` (its first sample's index), so
      that a caller's seed gives every sample its own.
    - A model that refuses a temperature (``ctx.profile.temperature`` false) would return the same
      answer to the same prompt, so each sample is asked with its own approach
      (:func:`varied_query`) in a request of its own; no request carries a temperature.
    - ``keep_response_format``: the caller's ``response_format`` goes with every sample (a sample is
      returned as the answer as it is), though ``call_settings`` keeps it for ``final`` calls.

    A failed request loses its samples and the others go on; empty replies are dropped. When no
    sample is usable, the first provider error is raised as it is (all failed), or
    :class:`NoSolutions` (all empty). Errors that are not provider errors propagate at once.
    """
    if k < 1:
        raise InvalidConfiguration(f"sample_answers needs k >= 1 samples (got {k})")
    requests = _plan(ctx, k)
    format_extra = _response_format(ctx) if keep_response_format else {}

    def call(request: _Request) -> Callable[[], Awaitable[Completion]]:
        settings = ctx.call_settings(
            "answer",
            temperature=temperature,
            max_tokens=max_tokens,
            n=request.n,
            seed_offset=request.first,
            pinned=pinned,
        )
        if format_extra:
            settings = settings.with_(extra={**settings.extra, **format_extra})
        return lambda: ctx.client.complete(request.prompt, settings)

    results = await gather_settled(call(request) for request in requests)
    samples: list[Sample] = []
    errors: list[ClientError | BudgetExhausted] = []
    for request, result in zip(requests, results, strict=True):
        if isinstance(result, ClientError | BudgetExhausted):
            errors.append(result)
        elif isinstance(result, Exception):
            raise result
        else:
            samples.extend(_choices(request, result))
    usable = tuple(s for s in samples if s.text)
    outcome = Samples(
        samples=usable,
        requested=k,
        requests=len(requests),
        empty=len(samples) - len(usable),
        errors=tuple(errors),
        varied=not ctx.profile.temperature,
    )
    _check_usable(ctx, outcome)
    return outcome


def sample_requests(ctx: RunContext[Any], k: int) -> int:
    """How many requests :func:`sample_answers` sends for ``k`` samples in ``ctx`` (for ``planned_calls``)."""
    return len(_plan(ctx, k))


def _choices(request: _Request, completion: Completion) -> list[Sample]:
    """One sample per choice the request asked for and got (an empty text marks an empty reply)."""
    return [
        Sample(
            index=request.first + offset,
            text=text.strip(),
            thinking=completion.thinking[offset] if offset < len(completion.thinking) else "",
            truncated=completion.truncated(offset),
            approach=request.approach,
        )
        for offset, text in enumerate(completion.texts[: request.n])
    ]


def _plan(ctx: RunContext[Any], k: int) -> list[_Request]:
    """The requests that make ``k`` samples: varied prompts one each, else native ``n`` chunks or singles."""
    if not ctx.profile.temperature:
        return [
            _Request(ctx.prompt(varied_query(ctx.query, i)), i, 1, APPROACHES[i % len(APPROACHES)]) for i in range(k)
        ]
    prompt = ctx.prompt(ctx.query)
    if not ctx.client.supports_native_n:
        return [_Request(prompt, i, 1, None) for i in range(k)]
    size = min(k, ctx.profile.max_n or k)
    return [_Request(prompt, first, min(size, k - first), None) for first in range(0, k, size)]


def _response_format(ctx: RunContext[Any]) -> dict[str, Any]:
    return {key: value for key, value in ctx.settings.extra.items() if key in FINAL_ONLY_EXTRA}


def _check_usable(ctx: RunContext[Any], samples: Samples) -> None:
    if samples.samples:
        if samples.errors or samples.empty:
            log.warning(
                "some samples are missing",
                optimizer=ctx.optimizer,
                requested=samples.requested,
                usable=len(samples.samples),
                empty=samples.empty,
                errors=[type(e).__name__ for e in samples.errors],
            )
        return
    if samples.errors:
        raise samples.errors[0]
    raise NoSolutions(
        f"{ctx.optimizer}: all {samples.requested} samples came back empty; "
        "check that the model answers this query at all (max_tokens, the system prompt, content filters)"
    )
