"""Each routing strategy's choice of provider."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import TypeVar

import anyio
import pytest

from optillm_core import BadRequestError, GenerationSettings, ModelProfile, Prompt
from optillm_core.testing import FunctionClient, JumpClock, all_tasks_blocked
from optillm_router import (
    Candidate,
    ModelClientRouter,
    ProviderRoutingConfig,
    ProviderSpec,
    RouteOrder,
    RoutingStrategy,
    TokenEstimate,
)

from .router_support import factory, spec

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("Which provider answers?")


def _named(model: str) -> FunctionClient:
    return FunctionClient(lambda prompt, settings: model, model_name=model)


def _clients(*models: str) -> dict[str, FunctionClient]:
    return {f"vllm/{m}": _named(m) for m in models}


def _router(
    specs: list[ProviderSpec], strategy: RoutingStrategy, clients: dict[str, FunctionClient], **options: object
) -> ModelClientRouter:
    config = ProviderRoutingConfig.multi(specs[0], specs[1:]).with_strategy(strategy)
    return ModelClientRouter(config, client_factory=factory(clients), **options)  # type: ignore[arg-type]


async def _answers(router: ModelClientRouter, count: int, settings: GenerationSettings | None = None) -> list[str]:
    return [(await router.complete(PROMPT, settings)).text for _ in range(count)]


async def test_primary_always_uses_the_primary() -> None:
    router = _router([spec("a"), spec("b"), spec("c")], RoutingStrategy.PRIMARY, _clients("a", "b", "c"))
    assert await _answers(router, 4) == ["a"] * 4


async def test_round_robin_rotates() -> None:
    router = _router([spec("a"), spec("b"), spec("c")], RoutingStrategy.ROUND_ROBIN, _clients("a", "b", "c"))
    assert await _answers(router, 7) == ["a", "b", "c", "a", "b", "c", "a"]


async def test_highest_priority_wins_and_ties_keep_config_order() -> None:
    specs = [spec("a", priority=1), spec("b", priority=5), spec("c", priority=5)]
    router = _router(specs, RoutingStrategy.HIGHEST_PRIORITY, _clients("a", "b", "c"))
    assert await _answers(router, 3) == ["b"] * 3


async def test_random_follows_the_weights() -> None:
    specs = [spec("a", weight=3.0), spec("b", weight=1.0), spec("c", weight=0.0)]
    router = _router(specs, RoutingStrategy.RANDOM, _clients("a", "b", "c"), rng=random.Random(1234))
    counts = Counter(await _answers(router, 800))
    assert counts["c"] == 0
    assert 540 <= counts["a"] <= 660  # expected 600 (3/4); a binomial sd is about 12
    assert counts["a"] + counts["b"] == 800


async def test_cheapest_weighs_prompt_and_answer_prices() -> None:
    specs = [
        spec("cheap-input", input_price_per_million=0.1, output_price_per_million=10.0),
        spec("cheap-output", input_price_per_million=5.0, output_price_per_million=0.5),
    ]
    router = _router(specs, RoutingStrategy.CHEAPEST, _clients("cheap-input", "cheap-output"))
    long_prompt = Prompt.from_query("word " * 4000)
    short_answer = GenerationSettings(max_tokens=5)
    assert (await router.complete(long_prompt, short_answer)).text == "cheap-input"
    assert (await router.complete(PROMPT, GenerationSettings(max_tokens=4000))).text == "cheap-output"


async def test_fastest_explores_then_prefers_the_lowest_latency() -> None:
    clock = JumpClock()
    latencies = {"slow": 3.0, "fast": 0.5, "medium": 1.0}

    def client(model: str) -> FunctionClient:
        async def answer(prompt: Prompt, settings: GenerationSettings) -> str:
            await clock.sleep(latencies[model])
            return model

        return FunctionClient(answer, model_name=model)

    clients = {f"vllm/{m}": client(m) for m in latencies}
    router = _router([spec(m) for m in latencies], RoutingStrategy.FASTEST, clients, clock=clock)
    answers = await _answers(router, 6)
    assert sorted(answers[:3]) == sorted(latencies)  # each unmeasured provider is tried once
    assert answers[3:] == ["fast"] * 3
    stats = router.provider_stats()
    assert stats["vllm/fast"].latency == pytest.approx(0.5)
    assert stats["vllm/slow"].latency == pytest.approx(3.0)


async def test_balance_load_picks_the_fewest_in_flight() -> None:
    release = anyio.Event()

    def client(model: str) -> FunctionClient:
        async def answer(prompt: Prompt, settings: GenerationSettings) -> str:
            await release.wait()
            return model

        return FunctionClient(answer, model_name=model)

    clients = {f"vllm/{m}": client(m) for m in ("a", "b", "c")}
    router = _router([spec("a"), spec("b"), spec("c")], RoutingStrategy.BALANCE_LOAD, clients)
    results: list[str] = []

    async def call() -> None:
        results.append((await router.complete(PROMPT)).text)

    async with anyio.create_task_group() as tg:
        for _ in range(6):
            tg.start_soon(call)
            await all_tasks_blocked()
        assert [router.provider_stats()[f"vllm/{m}"].in_flight for m in "abc"] == [2, 2, 2]
        release.set()
    assert Counter(results) == {"a": 2, "b": 2, "c": 2}
    assert all(s.in_flight == 0 for s in router.provider_stats().values())


LIMITED = ModelProfile(temperature_max=1.0, max_stop=2, logprobs=False, seed=False)
"""Like Anthropic's models: temperatures up to 1, no seed."""


async def test_providers_that_cannot_honour_the_settings_go_last() -> None:
    limited = FunctionClient(lambda prompt, settings: "limited", profile=LIMITED)
    full = _named("full")
    clients = {"vllm/limited": limited, "vllm/full": full}
    router = _router([spec("limited"), spec("full")], RoutingStrategy.PRIMARY, clients)
    assert (await router.complete(PROMPT, GenerationSettings(temperature=0.5))).text == "limited"
    for unsupported in (
        GenerationSettings(temperature=1.5),
        GenerationSettings(seed=3),
        GenerationSettings(stop=("a", "b", "c")),
    ):
        assert (await router.complete(PROMPT, unsupported)).text == "full"
    assert len(limited.requests) == 1
    alone = ModelClientRouter(
        ProviderRoutingConfig.single(spec("limited")), client_factory=factory({"vllm/limited": limited})
    )
    with pytest.raises(BadRequestError, match="temperature"):  # still tried: its own refusal is the answer
        await alone.complete(PROMPT, GenerationSettings(temperature=1.5))
    assert len(limited.refused) == 1


C = TypeVar("C", bound=Candidate)


class _Reversed(RouteOrder):
    def order(self, candidates: Sequence[C], estimate: TokenEstimate) -> Sequence[C]:
        return list(reversed(candidates))


async def test_a_custom_order_replaces_the_strategy() -> None:
    config = ProviderRoutingConfig.multi(spec("a"), [spec("b")])
    router = ModelClientRouter(config, client_factory=factory(_clients("a", "b")), order=_Reversed())
    assert await _answers(router, 2) == ["b", "b"]


async def test_duplicate_labels_get_distinct_names() -> None:
    twin = spec("a", base_url="http://127.0.0.1:1/v1")
    clients = {"vllm/a": _named("a")}
    router = ModelClientRouter(ProviderRoutingConfig.multi(spec("a"), [twin]), client_factory=factory(clients))
    assert router.providers == ("vllm/a", "vllm/a#2")
    assert set(router.provider_stats()) == {"vllm/a", "vllm/a#2"}
