from __future__ import annotations

import anyio
import pytest

from optillm_core import (
    Completed,
    GenerationSettings,
    ModelProfile,
    NoSolutions,
    OutputTextDelta,
    Prompt,
    ProviderUnavailable,
    TokenUsage,
)
from optillm_core.testing import FaultyClient, LatencyClient, Reply, ScriptedClient, sequential_depth
from optillm_core.toolkit import gather

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("question")


async def test_native_n_is_one_request_with_n_choices() -> None:
    client = ScriptedClient(["a", "b", "c"], native_n=True)
    completion = await client.complete(PROMPT, GenerationSettings(n=3, temperature=0.7))
    assert completion.texts == ("a", "b", "c")
    assert len(client.requests) == 1
    assert client.requests[0].settings.n == 3


async def test_fan_out_sends_n_concurrent_single_requests_with_the_same_settings() -> None:
    inner = ScriptedClient(["a", "b", "c"])
    client = LatencyClient(inner, 0.01)
    completion = await client.complete(PROMPT, GenerationSettings(n=3, temperature=0.7, max_tokens=50))
    assert sorted(completion.texts) == ["a", "b", "c"]
    assert [r.settings.n for r in inner.requests] == [1, 1, 1]
    assert {(r.settings.temperature, r.settings.max_tokens) for r in inner.requests} == {(0.7, 50)}
    assert inner.max_in_flight == 3
    assert completion.usage.output_tokens == 3
    assert completion.finish_reasons == ("stop", "stop", "stop")


async def test_fan_out_stream_relabels_choices_and_sums_usage() -> None:
    client = ScriptedClient(["one two", "three", "four five six"])
    texts: dict[int, str] = {}
    completed: list[Completed] = []
    async with client.stream(PROMPT, GenerationSettings(n=3)) as events:
        async for event in events:
            if isinstance(event, OutputTextDelta):
                texts[event.index] = texts.get(event.index, "") + event.delta
            elif isinstance(event, Completed):
                completed.append(event)
    assert sorted(texts.values()) == ["four five six", "one two", "three"]
    assert len(completed) == 1
    assert completed[0].usage == TokenUsage(input_tokens=3, output_tokens=6)
    assert len(completed[0].finish_reasons) == 3


async def test_fan_out_failure_raises_the_client_error_itself() -> None:
    client = FaultyClient(ScriptedClient(["a", "b", "c"]), {1: ProviderUnavailable("down")})
    with pytest.raises(ProviderUnavailable, match="down"):
        await client.complete(PROMPT, GenerationSettings(n=3))


async def test_leaving_a_stream_early_closes_it() -> None:
    client = ScriptedClient([Reply("a b c d e f g")])
    async with client.stream(PROMPT) as events:
        async for _ in events:
            break
    assert client.in_flight == 0


async def test_gather_keeps_order_and_runs_concurrently() -> None:
    client = ScriptedClient(["x", "y", "z"], latency=0.01)
    results = await gather([lambda: client.complete(PROMPT), lambda: client.complete(PROMPT)])
    assert [r.text for r in results] in (["x", "y"], ["y", "x"])
    assert sequential_depth(client.requests) == 1
    await client.complete(PROMPT)
    assert sequential_depth(client.requests) == 2


async def test_gather_first_error_cancels_siblings() -> None:
    cancelled = anyio.Event()

    async def slow() -> int:
        try:
            await anyio.sleep_forever()
        finally:
            cancelled.set()
        return 0  # pragma: no cover

    async def fail() -> int:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await gather([slow, fail])
    assert cancelled.is_set()


async def test_gather_keeps_the_cause_of_the_error_it_raises() -> None:
    call_failed = ProviderUnavailable("every call failed")

    async def give_up() -> int:
        raise NoSolutions("nothing to answer with") from call_failed

    with pytest.raises(NoSolutions) as caught:
        await gather([give_up])
    assert caught.value.__cause__ is call_failed


def test_sequential_depth_counts_chains() -> None:
    spans = [(0.0, 1.0), (0.1, 0.9), (1.0, 2.0), (2.5, 3.0), (1.5, 2.4)]
    assert sequential_depth(spans) == 3
    assert sequential_depth([]) == 0


async def test_a_native_n_above_the_models_limit_goes_out_in_chunks_with_their_own_seeds() -> None:
    client = ScriptedClient(list("abcde"), native_n=True, profile=ModelProfile(native_n=True, max_n=2))
    completion = await client.complete(PROMPT, GenerationSettings(n=5, seed=10))
    assert sorted(completion.texts) == list("abcde")
    assert sorted(r.settings.n for r in client.requests) == [1, 2, 2]
    assert sorted(r.settings.seed for r in client.requests if r.settings.seed is not None) == [10, 12, 14]
    assert client.refused == []
    assert len(completion.finish_reasons) == 5
