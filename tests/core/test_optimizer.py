from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import pytest

from optillm_core import (
    Budget,
    BudgetExhausted,
    Completion,
    EventChannel,
    GenerationSettings,
    InvalidConfiguration,
    Optimizer,
    OptimizerConfig,
    OptimizerEvent,
    Outcome,
    ProviderUnavailable,
    RunContext,
)
from optillm_core.testing import FaultyClient, LatencyClient, Reply, ScriptedClient
from optillm_core.toolkit import gather

pytestmark = pytest.mark.anyio


class SampleConfig(OptimizerConfig):
    samples: int = 3
    temperature: float = 0.5
    rounds: int = 1


def sample(ctx: RunContext[SampleConfig]) -> Callable[[], Awaitable[Completion]]:
    settings = ctx.call_settings(temperature=ctx.config.temperature)
    return lambda: ctx.client.complete(ctx.prompt(ctx.query), settings)


class Sampler(Optimizer[SampleConfig]):
    """Samples concurrently for a number of rounds, recording the best (longest) answer each round."""

    name = "sampler"
    description = "test strategy"
    config_type = SampleConfig

    async def run(self, ctx: RunContext[SampleConfig]) -> Outcome:
        best = ""
        for round_number in range(ctx.config.rounds):
            ctx.phase(f"round {round_number}")
            completions = await gather(sample(ctx) for _ in range(ctx.config.samples))
            best = max([best, *(c.text for c in completions)], key=len)
            ctx.record_best(best, f"after round {round_number}")
        return Outcome(answer=best, reasoning="done", iterations=ctx.config.rounds)


async def test_accounting_counts_every_call_and_token() -> None:
    client = ScriptedClient([Reply("a", usage=None), "b c", "d e f"])
    solution = await Sampler().optimize("what?", client)
    assert solution.answer == "d e f"
    assert solution.metadata.llm_calls == 3
    assert solution.usage.input_tokens == 3  # one word per prompt
    assert solution.usage.output_tokens == 6
    assert solution.metadata.optimizer_name == "sampler"
    assert not solution.metadata.budget_exhausted


async def test_settings_reach_the_client_and_system_prompt_is_kept() -> None:
    client = ScriptedClient(["x"] * 3)
    await Sampler().optimize("q", client, system_prompt="be brief", settings=GenerationSettings(max_tokens=77, seed=3))
    for request in client.requests:
        assert request.settings.temperature == 0.5
        assert request.settings.max_tokens == 77
        assert request.settings.seed == 3
        assert request.system_text == "be brief"


async def test_call_budget_returns_best_so_far_marked() -> None:
    client = ScriptedClient(["aa", "b", "c"] + ["dddd"] * 3)
    solution = await Sampler(SampleConfig(rounds=2)).optimize("q", client, budget=Budget(max_calls=4))
    assert solution.metadata.budget_exhausted
    assert solution.answer == "aa"
    assert "budget" in solution.metadata.extras
    assert solution.metadata.llm_calls == 4


class DeferringSampler(Sampler):
    """Records its best so far as a function, counting how often it is built."""

    built = 0

    async def run(self, ctx: RunContext[SampleConfig]) -> Outcome:
        best = ""
        for _ in range(ctx.config.rounds):
            completions = await gather(sample(ctx) for _ in range(ctx.config.samples))
            best = max([best, *(c.text for c in completions)], key=len)
            ctx.defer_best(partial(self.build, best))  # this round's best, whatever later rounds find
        return Outcome(answer=best, reasoning="done")

    def build(self, answer: str) -> Outcome:
        type(self).built += 1
        return Outcome(answer=answer, reasoning="deferred", budget_exhausted=True)


@pytest.mark.parametrize(("max_calls", "answer", "built"), [(None, "dddd", 0), (4, "aa", 1)])
async def test_a_deferred_best_is_built_only_when_the_budget_needs_it(
    max_calls: int | None, answer: str, built: int
) -> None:
    DeferringSampler.built = 0
    client = ScriptedClient(["aa", "b", "c"] + ["dddd"] * 3)
    solution = await DeferringSampler(SampleConfig(rounds=2)).optimize("q", client, budget=Budget(max_calls=max_calls))
    assert (solution.answer, solution.metadata.budget_exhausted, DeferringSampler.built) == (
        answer,
        built == 1,
        built,
    )


async def test_budget_without_best_so_far_raises() -> None:
    client = ScriptedClient(["a"] * 3)
    with pytest.raises(BudgetExhausted) as caught:
        await Sampler().optimize("q", client, budget=Budget(max_calls=2))
    assert caught.value.kind == "calls"


async def test_token_budget_stops_new_calls() -> None:
    client = ScriptedClient(["one two three four"] * 6)
    solution = await Sampler(SampleConfig(rounds=2, samples=3)).optimize("q", client, budget=Budget(max_tokens=5))
    assert solution.metadata.budget_exhausted
    assert solution.metadata.llm_calls == 3


async def test_time_budget_cancels_a_hanging_call_and_returns_best() -> None:
    client = LatencyClient(ScriptedClient(["first"] * 3 + ["never"] * 3), delay=0.0)

    class Slow(Sampler):
        async def run(self, ctx: RunContext[SampleConfig]) -> Outcome:
            ctx.record_best("early", "")
            client.delay = 3600.0
            return await super().run(ctx)

    solution = await Slow().optimize("q", client, budget=Budget(max_seconds=0.05))
    assert solution.metadata.budget_exhausted
    assert solution.answer == "early"


async def test_config_errors_name_the_field() -> None:
    with pytest.raises(InvalidConfiguration, match="samples"):
        SampleConfig(samples="many")
    with pytest.raises(InvalidConfiguration, match=r"unknown field 'sample'.*samples"):
        Sampler.from_options({"sample": 2})
    assert Sampler.from_options({"samples": "4"}).config.samples == 4
    assert SampleConfig().with_overrides({"rounds": 2}).rounds == 2


async def test_empty_query_is_rejected() -> None:
    with pytest.raises(InvalidConfiguration, match="empty"):
        await Sampler().optimize("   ", ScriptedClient())


async def test_client_failure_propagates_with_its_class_and_emits_run_failed() -> None:
    client = FaultyClient(ScriptedClient(["a"] * 3), {1: ProviderUnavailable("gone")})
    seen: list[OptimizerEvent] = []
    with pytest.raises(ProviderUnavailable):
        await Sampler().optimize("q", client, events=seen.append)
    assert seen[-1].kind == "RunFailed"


async def test_events_reach_a_callback_in_order() -> None:
    seen: list[str] = []
    await Sampler().optimize("q", ScriptedClient(["a"] * 3), events=lambda e: seen.append(e.kind))
    assert seen[0] == "RunStarted"
    assert seen[1] == "PhaseStarted"
    assert seen.count("CallFinished") == 3
    assert seen[-1] == "RunCompleted"


async def test_async_iterator_consumer_gets_every_event_and_the_end() -> None:
    channel = EventChannel()
    kinds: list[str] = []

    async def consume() -> None:
        async for event in channel:
            kinds.append(event.kind)

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await Sampler().optimize("q", ScriptedClient(["a"] * 3), events=channel)
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunCompleted"


async def test_a_consumer_that_never_reads_cannot_block_the_run() -> None:
    channel = EventChannel(max_buffer=5)
    solution = await Sampler(SampleConfig(rounds=50, samples=2)).optimize(
        "q", ScriptedClient(["a"] * 100), events=channel
    )
    assert solution.metadata.llm_calls == 100
    assert channel.dropped > 0
    assert channel.closed


async def test_a_slow_or_failing_callback_cannot_block_or_break_the_run() -> None:
    async def slow(event: OptimizerEvent) -> None:
        await anyio.sleep_forever()

    def failing(event: OptimizerEvent) -> None:
        raise RuntimeError("consumer bug")

    for handler in (slow, failing):
        solution = await Sampler().optimize("q", ScriptedClient(["a"] * 3), events=handler)
        assert solution.answer == "a"


async def test_concurrency_is_bounded_by_the_config() -> None:
    # The latency is spent inside the recorded request, so overlapping calls are counted as such
    # (a LatencyClient in front would count only those whose waits happened to end together).
    inner = ScriptedClient(["a"] * 8, latency=0.01)
    await Sampler(SampleConfig(samples=8, max_concurrency=2)).optimize("q", inner)
    assert inner.max_in_flight == 2


async def test_metered_streams_are_counted() -> None:
    class Streamer(Optimizer[OptimizerConfig]):
        name = "streamer"
        description = "streams"

        async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
            text: list[str] = []
            async with ctx.client.stream(ctx.prompt(ctx.query)) as events:
                async for event in events:
                    if event.type == "output_text_delta":
                        text.append(event.delta)
            return Outcome(answer="".join(text))

    solution = await Streamer().optimize("q", ScriptedClient(["x y z"]))
    assert solution.answer == "x y z"
    assert (solution.metadata.llm_calls, solution.usage.output_tokens) == (1, 3)


def test_event_json_dict_has_kind() -> None:
    data: dict[str, Any] = OptimizerEvent(optimizer="x").to_json_dict()
    assert data["kind"] == "OptimizerEvent" and data["optimizer"] == "x"
