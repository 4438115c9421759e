"""Limits under heavy concurrency, on virtual time: rpm, tpm, the concurrency cap and the shared 429 gate."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from optillm_core import GenerationSettings, ModelClient, Prompt, RateLimitError, TokenUsage
from optillm_core.testing import FunctionClient, JumpClock, Reply, ScriptedClient, VirtualClock, all_tasks_blocked
from optillm_router import RATE_WINDOW_SECONDS, ModelClientRouter, ProviderRoutingConfig, ProviderSpec, estimate_tokens
from optillm_router._limits import RateBudget

from .router_support import factory, spec

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("What is 6 times 7?")


def _router(client: ModelClient, provider: ProviderSpec, clock: VirtualClock, **settings: object) -> ModelClientRouter:
    config = ProviderRoutingConfig(primary=provider, **settings)
    return ModelClientRouter(config, client_factory=factory({provider.label: client}), clock=clock)


def _max_in_any_window(times: list[float], weights: list[int], window: float = 60.0) -> int:
    return max(sum(w for u, w in zip(times, weights, strict=True) if t <= u < t + window) for t in times)


async def test_rpm_holds_under_hundreds_of_concurrent_calls() -> None:
    clock = VirtualClock()
    starts: list[float] = []

    def answer(prompt: Prompt, settings: GenerationSettings) -> str:
        starts.append(clock.now())
        return "ok"

    router = _router(FunctionClient(answer), spec("a", rpm=50), clock)
    async with clock.running(), anyio.create_task_group() as tg:
        for _ in range(300):
            tg.start_soon(router.complete, PROMPT)
    assert len(starts) == 300
    assert _max_in_any_window(starts, [1] * 300) == 50
    # Not slower than the budget requires: six windows of 50 calls each.
    assert starts[-1] - starts[0] == pytest.approx(300.0)


async def test_tpm_reserves_the_estimate_and_settles_on_real_usage() -> None:
    clock = VirtualClock()
    starts: list[float] = []
    used = TokenUsage(input_tokens=9, output_tokens=40)
    settings = GenerationSettings(max_tokens=100)
    reserved = estimate_tokens(PROMPT, settings).total
    assert reserved > used.total_tokens

    async def answer(prompt: Prompt, settings: GenerationSettings) -> Reply:
        starts.append(clock.now())
        await clock.sleep(0.5)
        return Reply("ok", usage=used)

    router = _router(FunctionClient(answer), spec("a", tpm=1000), clock)
    async with clock.running(), anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(router.complete, PROMPT, settings)
    assert len(starts) == 200
    most = _max_in_any_window(starts, [used.total_tokens] * 200)
    assert most <= 1000
    # Settling on real usage lets more calls through than the estimates alone would (1000 // reserved).
    first_window = sum(1 for t in starts if t < starts[0] + 60)
    assert first_window > 1000 // reserved
    assert router.usage.total_tokens == 200 * used.total_tokens


async def test_concurrency_cap_is_never_exceeded() -> None:
    clock = VirtualClock()

    async def answer(prompt: Prompt, settings: GenerationSettings) -> str:
        await clock.sleep(1.0)
        return "ok"

    client = FunctionClient(answer)
    router = _router(client, spec("a", max_concurrency=3), clock)
    async with clock.running(), anyio.create_task_group() as tg:
        for _ in range(200):
            tg.start_soon(router.complete, PROMPT)
    assert len(client.requests) == 200
    assert client.max_in_flight == 3


async def test_concurrency_slot_is_held_until_a_stream_ends() -> None:
    client = ScriptedClient(["a b c"] * 5)
    router = _router(client, spec("a", max_concurrency=2), VirtualClock())
    release = anyio.Event()
    finished: list[int] = []

    async def hold_stream(number: int) -> None:
        async with router.stream(PROMPT) as events:
            await anext(events)
            await release.wait()
            async for _ in events:
                pass
        finished.append(number)

    async with anyio.create_task_group() as tg:
        for number in range(5):
            tg.start_soon(hold_stream, number)
        await all_tasks_blocked()
        assert len(client.requests) == 2  # two streams open; three callers wait for a slot
        release.set()
    assert sorted(finished) == [0, 1, 2, 3, 4]
    assert client.max_in_flight == 2


async def test_one_429_pauses_the_provider_for_every_waiting_caller() -> None:
    clock = VirtualClock()
    starts: list[float] = []
    limited_at: list[float] = []

    async def answer(prompt: Prompt, settings: GenerationSettings) -> str:
        starts.append(clock.now())
        if len(starts) == 1:
            await clock.sleep(0.5)
            limited_at.append(clock.now())
            raise RateLimitError("rate limited", status_code=429, retry_after=10.0)
        await clock.sleep(1.0)
        return "ok"

    router = _router(FunctionClient(answer), spec("a", max_concurrency=5), clock, max_retries=1)
    async with clock.running(), anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(router.complete, PROMPT)
    assert len(starts) == 51  # 50 calls and the one retry
    paused_from = limited_at[0]
    during_pause = [t for t in starts if paused_from < t < paused_from + 10.0]
    assert during_pause == []
    assert sum(1 for t in starts if t >= paused_from + 10.0) == 51 - 5
    assert router.usage.calls == 50


@hypothesis_settings(max_examples=60, deadline=None)
@given(
    calls=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=40.0),
            st.integers(min_value=1, max_value=600),
            st.integers(min_value=0, max_value=600),
        ),
        min_size=1,
        max_size=40,
    ),
    rpm=st.integers(min_value=1, max_value=8),
    tpm=st.integers(min_value=200, max_value=1500),
)
def test_rate_windows_never_exceed_their_budgets(calls: list[tuple[float, int, int]], rpm: int, tpm: int) -> None:
    clock = JumpClock(0.0)
    budget = RateBudget(rpm, tpm, clock)
    sent: list[tuple[float, int]] = []

    async def run() -> None:
        for gap, estimate, actual in calls:
            clock.time += gap
            entry = await budget.reserve(estimate)
            used = min(actual, estimate, tpm)
            sent.append((clock.now(), used))
            budget.settle(entry, used)

    anyio.run(run)
    assert len(sent) == len(calls)
    for start, _ in sent:
        window = [tokens for at, tokens in sent if start <= at < start + RATE_WINDOW_SECONDS]
        assert len(window) <= rpm
        assert sum(window) <= tpm
