"""Usage and cost: per call, per provider and per router."""

from __future__ import annotations as _annotations

from dataclasses import dataclass

from optillm_core import TokenUsage

__all__ = ("CallRecord", "ProviderStats", "UsageTotals", "cost_of")

PER_MILLION = 1_000_000.0


def cost_of(usage: TokenUsage, input_price_per_million: float, output_price_per_million: float) -> float:
    """The price of ``usage`` at the given prices per million tokens."""
    return (usage.input_tokens * input_price_per_million + usage.output_tokens * output_price_per_million) / PER_MILLION


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Running totals: successful calls, failed attempts, retries (attempts after a failed one), tokens and cost.

    A request with native ``n`` > 1 is one call; one fanned out into ``n`` requests is ``n`` calls.
    ``cost`` is in the currency of the specs' prices (normally USD).
    """

    calls: int = 0
    failures: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def tokens(self) -> TokenUsage:
        return TokenUsage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            calls=self.calls + other.calls,
            failures=self.failures + other.failures,
            retries=self.retries + other.retries,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost=self.cost + other.cost,
        )


@dataclass(frozen=True, slots=True)
class ProviderStats:
    """A snapshot of one provider of a router."""

    name: str
    provider: str
    model: str
    usage: UsageTotals
    in_flight: int
    latency: float | None
    """Moving average of observed latency in seconds (time to first event for streams); None until measured."""
    consecutive_failures: int
    cooling_down: bool


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One attempt that reached a provider, as passed to a router's ``on_call`` hook.

    ``attempts`` counts the request's attempts so far, this one included (over every route);
    ``retry`` marks an attempt after a failed one; ``error`` is the failure, keys removed (``None``
    for a success). A failed attempt has no usage, cost or latency.
    """

    name: str
    provider: str
    model: str
    usage: TokenUsage
    cost: float
    latency: float
    attempts: int
    stream: bool
    retry: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class _Meter:
    """Mutable counters behind :class:`UsageTotals` (plain attribute updates on the hot path)."""

    __slots__ = ("calls", "cost", "failures", "input_tokens", "output_tokens", "retries")

    def __init__(self) -> None:
        self.calls = 0
        self.failures = 0
        self.retries = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0

    def snapshot(self) -> UsageTotals:
        return UsageTotals(
            calls=self.calls,
            failures=self.failures,
            retries=self.retries,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=self.cost,
        )
