"""Routing strategies: each orders a router's providers for one request (first choice, then fallbacks).

Selection is in memory and O(providers); the only state is a round-robin counter.
"""

from __future__ import annotations as _annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Protocol, TypeVar

from ._config import ProviderSpec, RoutingStrategy
from ._limits import TokenEstimate

__all__ = (
    "BalanceLoadOrder",
    "Candidate",
    "CheapestOrder",
    "FastestOrder",
    "HighestPriorityOrder",
    "PrimaryOrder",
    "RoundRobinOrder",
    "RouteOrder",
    "WeightedRandomOrder",
    "route_order",
)


class Candidate(Protocol):
    """What a strategy may look at: the spec, calls in flight and the latency average."""

    @property
    def spec(self) -> ProviderSpec: ...

    @property
    def in_flight(self) -> int: ...

    @property
    def latency(self) -> float | None: ...


C = TypeVar("C", bound=Candidate)


class RouteOrder(ABC):
    """Orders candidates for one request; subclass it for a custom strategy."""

    needs_estimate: bool = False
    """Whether :meth:`order` reads the token estimate (else it gets zeros)."""

    @abstractmethod
    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        """The candidates in the order to try them (the same objects, each at most once)."""


class PrimaryOrder(RouteOrder):
    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        return candidates


class RoundRobinOrder(RouteOrder):
    def __init__(self) -> None:
        self._next = 0

    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        count = len(candidates)
        start = self._next % count
        self._next = start + 1
        return [*candidates[start:], *candidates[:start]] if start else candidates


class HighestPriorityOrder(RouteOrder):
    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        return sorted(candidates, key=lambda c: -c.spec.priority)


class WeightedRandomOrder(RouteOrder):
    """A weighted shuffle (Efraimidis–Spirakis): provider i comes first with probability w_i / Σw."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        rng = self._rng
        keys = [rng.random() ** (1.0 / c.spec.weight) if c.spec.weight > 0 else -1.0 for c in candidates]
        return [candidates[i] for i in sorted(range(len(candidates)), key=lambda i: -keys[i])]


class CheapestOrder(RouteOrder):
    needs_estimate = True

    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        def cost(c: C) -> float:
            spec = c.spec
            return (
                estimate.input_tokens * spec.input_price_per_million
                + estimate.output_tokens * spec.output_price_per_million
            )

        return sorted(candidates, key=cost)


class FastestOrder(RouteOrder):
    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        return sorted(candidates, key=lambda c: c.latency or 0.0)


class BalanceLoadOrder(RouteOrder):
    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        return sorted(candidates, key=lambda c: c.in_flight)


def route_order(strategy: RoutingStrategy, rng: random.Random | None = None) -> RouteOrder:
    """The :class:`RouteOrder` that implements ``strategy``."""
    match strategy:
        case RoutingStrategy.PRIMARY:
            return PrimaryOrder()
        case RoutingStrategy.ROUND_ROBIN:
            return RoundRobinOrder()
        case RoutingStrategy.HIGHEST_PRIORITY:
            return HighestPriorityOrder()
        case RoutingStrategy.RANDOM:
            return WeightedRandomOrder(rng)
        case RoutingStrategy.CHEAPEST:
            return CheapestOrder()
        case RoutingStrategy.FASTEST:
            return FastestOrder()
        case RoutingStrategy.BALANCE_LOAD:
            return BalanceLoadOrder()
