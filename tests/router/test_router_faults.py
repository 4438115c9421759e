"""Batches through the router over HTTP, against fake providers of every wire format that fail like real ones.

Backoff runs on a jumping virtual clock (no test waits for it); the only real waits are the
attempt timeouts of hung requests. Every test bounds itself with ``anyio.fail_after``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    ClientError,
    Completed,
    GenerationSettings,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ProviderUnavailable,
    collect_stream,
)
from optillm_core.testing import JumpClock
from optillm_router import ModelClientRouter, ProviderRoutingConfig, RoutingStrategy
from optillm_router.testing import (
    PERMANENT_FAULTS,
    RECOVERABLE_STREAM_FAULTS,
    TRANSIENT_FAULTS,
    FakeProviderServer,
    FaultPlan,
    HttpWireFormat,
)

pytestmark = pytest.mark.anyio

WIRES: tuple[HttpWireFormat, ...] = ("openai", "anthropic", "gemini", "ollama")
BATCH = 50
IN_FLIGHT = 10
TIMEOUT = 0.5
"""Seconds an attempt may take: a hung request is given up after this (real time)."""

PERMANENT_ERRORS: dict[str, type[ClientError]] = {
    "400": BadRequestError,
    "401": AuthenticationError,
    "403": AuthenticationError,
    "404": BadRequestError,
    "413": BadRequestError,
    "422": BadRequestError,
}


def _router(*servers: FakeProviderServer, clock: JumpClock, **settings: Any) -> ModelClientRouter:
    specs = [server.spec(name=f"{server.wire}-{i}") for i, server in enumerate(servers)]
    config = ProviderRoutingConfig(primary=specs[0], alternatives=tuple(specs[1:]), timeout_seconds=TIMEOUT, **settings)
    return ModelClientRouter(config, clock=clock)


def _expected(i: int) -> str:
    return f"Reply 0 to: question {i}. The answer is \\boxed{{42}}."


async def _call(router: ModelClientRouter, prompt: Prompt, *, stream: bool) -> str:
    if not stream:
        return (await router.complete(prompt)).text
    async with router.stream(prompt) as events:
        return (await collect_stream(events)).text


async def _stream_text(router: ModelClientRouter, prompt: Prompt, received: list[str]) -> None:
    async with router.stream(prompt) as events:
        async for event in events:
            if isinstance(event, OutputTextDelta):
                received.append(event.delta)


async def _batch(router: ModelClientRouter, *, stream: bool) -> dict[int, str]:
    answers: dict[int, str] = {}
    limiter = anyio.CapacityLimiter(IN_FLIGHT)

    async def one(i: int) -> None:
        async with limiter:
            answers[i] = await _call(router, Prompt.from_query(f"question {i}"), stream=stream)

    async with anyio.create_task_group() as tg:
        for i in range(BATCH):
            tg.start_soon(one, i)
    return answers


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("wire", WIRES)
async def test_every_call_survives_30_percent_transient_faults(wire: HttpWireFormat, stream: bool) -> None:
    # A stream cut mid-answer has delivered text and cannot be retried: streams get the others.
    plan = FaultPlan(rate=0.3, kinds=RECOVERABLE_STREAM_FAULTS if stream else TRANSIENT_FAULTS, seed=2026)
    clock = JumpClock()
    with anyio.fail_after(60):
        async with FakeProviderServer(wire, faults=plan) as server, _router(server, clock=clock) as router:
            answers = await _batch(router, stream=stream)
    assert answers == {i: _expected(i) for i in range(BATCH)}
    faulted = sum(server.faults_injected.values())
    assert faulted >= BATCH // 5
    assert len(server.faults_injected) >= 5  # most kinds were drawn
    assert len(server.requests) == BATCH + faulted  # each fault cost exactly one retry
    usage = router.usage
    assert (usage.calls, usage.failures, usage.retries) == (BATCH, faulted, faulted)
    assert usage.output_tokens == sum(len(_expected(i).split()) for i in range(BATCH))


async def test_two_flaky_providers_of_different_formats_serve_a_batch_together() -> None:
    clock = JumpClock()
    plans = [FaultPlan(rate=0.3, seed=seed) for seed in (1, 2)]
    with anyio.fail_after(60):
        async with (
            FakeProviderServer("anthropic", faults=plans[0]) as first,
            FakeProviderServer("gemini", faults=plans[1]) as second,
            _router(first, second, clock=clock, strategy=RoutingStrategy.ROUND_ROBIN) as router,
        ):
            answers = await _batch(router, stream=False)
    assert answers == {i: _expected(i) for i in range(BATCH)}
    assert all(stats.usage.calls > 0 for stats in router.provider_stats().values())


@pytest.mark.parametrize("wire", WIRES)
async def test_permanent_faults_fail_every_call_at_once_with_their_error(wire: HttpWireFormat) -> None:
    clock = JumpClock()
    plan = FaultPlan(rate=1.0, kinds=PERMANENT_FAULTS, seed=3)
    with anyio.fail_after(20):
        async with FakeProviderServer(wire, faults=plan) as server, _router(server, clock=clock) as router:
            for i in range(12):
                prompt = Prompt.from_query(f"question {i}")
                with pytest.raises(ClientError) as info:
                    await _call(router, prompt, stream=bool(i % 2))
                fault = server.requests[-1].fault
                assert fault is not None
                assert type(info.value) is PERMANENT_ERRORS[fault]
                assert info.value.status_code == int(fault)
                assert len(server.requests) == i + 1  # never retried
    assert clock.sleeps == []
    assert len(set(server.faults_injected)) >= 4


@pytest.mark.parametrize("wire", WIRES)
async def test_a_stream_cut_mid_answer_reaches_the_caller_after_its_text(wire: HttpWireFormat) -> None:
    received: list[str] = []
    with anyio.fail_after(20):
        async with (
            FakeProviderServer(wire, faults=FaultPlan.sequence("cut")) as server,
            _router(server, clock=JumpClock()) as router,
        ):
            with pytest.raises(ProtocolError, match="cut its answer short"):
                await _stream_text(router, Prompt.from_query("question 1"), received)
            assert len(server.requests) == 1  # part of the answer was delivered: not retried
            assert (await router.complete(Prompt.from_query("question 2"))).text == _expected(2)
    assert received
    assert _expected(1).startswith("".join(received))
    assert router.usage.failures == 1


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_hung_requests_time_out_and_are_retried(stream: bool) -> None:
    with anyio.fail_after(20):
        async with (
            FakeProviderServer("openai", faults=FaultPlan.sequence("hang", "hang")) as server,
            _router(server, clock=JumpClock()) as router,
        ):
            text = await _call(router, Prompt.from_query("question 3"), stream=stream)
    assert text == _expected(3)
    assert [r.fault for r in server.requests] == ["hang", "hang", None]


async def test_a_gemini_model_that_returns_fewer_candidates_gets_the_rest_as_single_calls() -> None:
    with anyio.fail_after(20):
        async with (
            FakeProviderServer("gemini", max_choices=1) as server,
            _router(server, clock=JumpClock()) as router,
        ):
            assert router.supports_native_n
            first = await router.complete(Prompt.from_query("question 4"), GenerationSettings(n=3, temperature=0.9))
            second = await router.complete(Prompt.from_query("question 5"), GenerationSettings(n=2))
    assert first.texts == (_expected(4),) * 3
    assert len(second.texts) == 2
    counts = [(r.body.get("generationConfig") or {}).get("candidateCount") for r in server.requests]
    assert counts == [3, None, None, None, None]  # the rest of the first, then the second fanned out
    temperatures = [(r.body.get("generationConfig") or {}).get("temperature") for r in server.requests[:3]]
    assert temperatures == [0.9, 0.9, 0.9]
    assert not router.supports_native_n


@pytest.mark.parametrize("wire", ["gemini", "openai"])
async def test_a_stream_that_returns_fewer_choices_gets_the_rest_as_single_calls(wire: HttpWireFormat) -> None:
    """The first such stream succeeds: its choice stays as streamed, the missing ones are asked for singly."""
    calls: list[int] = []

    def reply(chat: dict[str, Any], choice: int) -> str:
        calls.append(choice)
        return f"answer {len(calls)} for choice {choice}"

    settings = GenerationSettings(n=3, seed=7)
    with anyio.fail_after(20):
        async with (
            FakeProviderServer(wire, max_choices=1, reply=reply) as server,
            _router(server, clock=JumpClock()) as router,
        ):
            native_before = router.supports_native_n
            async with router.stream(Prompt.from_query("question 7"), settings) as stream:
                events = [event async for event in stream]
            first = await collect_stream(_replay(events), 3)
            native_after = router.supports_native_n  # remembered: the next stream fans out from the start
            async with router.stream(Prompt.from_query("question 8"), GenerationSettings(n=2)) as stream:
                second = await collect_stream(stream, 2)
    assert (native_before, native_after) == (True, False)
    assert first.texts[0] == "answer 1 for choice 0"  # streamed by the first request, as it came
    assert sorted(first.texts[1:]) == ["answer 2 for choice 0", "answer 3 for choice 0"]
    assert first.finish_reasons == ("stop", "stop", "stop")
    assert first.usage.output_tokens == sum(len(text.split()) for text in first.texts)
    indexes = [e.index for e in events if isinstance(e, OutputTextDelta)]
    assert indexes[: indexes.count(0)] == [0] * indexes.count(0)  # the missing choices come after the streamed one
    assert sorted(indexes[indexes.count(0) :]) == [1, 2]
    assert isinstance(events[-1], Completed)
    assert len(second.texts) == 2 and all(second.texts)
    counts = [r.chat.get("n") or 1 for r in server.requests]
    assert counts == [3, 1, 1, 1, 1]
    assert [r.stream for r in server.requests] == [True, False, False, True, True]
    seeds = [_seed(wire, r.body) for r in server.requests[:3]]
    assert seeds[0] == 7 and sorted(seeds[1:]) == [8, 9]  # the missing choices 1 and 2 keep seeds 8 and 9
    assert router.usage.failures == 0


def _seed(wire: str, body: dict[str, Any]) -> int:
    seed = (body.get("generationConfig") or {}).get("seed") if wire == "gemini" else body.get("seed")
    assert isinstance(seed, int)
    return seed


async def _replay(events: list[Any]) -> Any:
    for event in events:
        yield event


async def test_an_address_where_nothing_listens_fails_within_a_few_attempts() -> None:
    server = FakeProviderServer("openai")
    async with server:
        spec = server.spec()
    clock = JumpClock()
    with anyio.fail_after(20):
        async with ModelClientRouter(ProviderRoutingConfig(primary=spec), clock=clock) as router:
            with pytest.raises(ProviderUnavailable, match="after 3 attempts: could not reach"):
                await router.complete(Prompt.from_query("question 6"))
    assert len(clock.sleeps) == 2
