"""Retries, fallback, cooldown and probes, streams, n, usage and cost, events, redaction, cancellation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from structlog.testing import capture_logs

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    Completed,
    GenerationSettings,
    ModelClient,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    ResponseEvent,
    TokenUsage,
    collect_stream,
)
from optillm_core.testing import FaultyClient, FunctionClient, JumpClock, Reply, ScriptedClient, all_tasks_blocked
from optillm_router import CallRecord, ModelClientRouter, ProviderRoutingConfig, ProviderSpec, RoutingStrategy

from .router_support import factory, spec

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("What is 6 times 7?")
SECRET = "sk-router-secret-abcdef0123456789"


def _router(
    clients: dict[str, ModelClient],
    specs: list[ProviderSpec] | None = None,
    *,
    clock: JumpClock | None = None,
    **settings: object,
) -> ModelClientRouter:
    specs = specs or [spec(label.removeprefix("vllm/")) for label in clients]
    config = ProviderRoutingConfig(primary=specs[0], alternatives=tuple(specs[1:]), **settings)
    return ModelClientRouter(config, client_factory=factory(clients), clock=clock or JumpClock())


def _always(error: BaseException) -> Callable[[int, Prompt, GenerationSettings], BaseException | None]:
    return lambda number, prompt, settings: error


def _unavailable(status: int = 503) -> ProviderUnavailable:
    return ProviderUnavailable(f"injected {status}", provider="vllm", status_code=status)


# -- retries ----------------------------------------------------------------------------------------


async def test_retries_with_backoff_then_succeeds() -> None:
    clock = JumpClock()
    client = FaultyClient(ScriptedClient(["42"]), {0: _unavailable(), 1: _unavailable(500)})
    router = _router({"vllm/a": client}, clock=clock, max_retries=2)
    assert (await router.complete(PROMPT)).text == "42"
    assert client.calls == 3
    assert len(clock.sleeps) == 2
    assert 0.375 <= clock.sleeps[0] <= 0.5
    assert 0.75 <= clock.sleeps[1] <= 1.0
    usage = router.provider_stats()["vllm/a"].usage
    assert (usage.calls, usage.failures, usage.retries) == (1, 2, 2)


async def test_retry_after_is_honoured_up_to_the_cap() -> None:
    clock = JumpClock()
    client = FaultyClient(
        ScriptedClient(["ok"]),
        {
            0: RateLimitError("slow", status_code=429, retry_after=7.0),
            1: RateLimitError("x", status_code=429, retry_after=20.0),
        },
    )
    router = _router({"vllm/a": client}, clock=clock, max_retries=2, max_retry_after=20.0)
    assert (await router.complete(PROMPT)).text == "ok"
    assert clock.sleeps == [7.0, 20.0]  # the gate's pause ends as the retry starts: no second wait


@pytest.mark.parametrize(
    "error",
    [
        BadRequestError("bad", status_code=400),
        AuthenticationError("who are you", status_code=401),
        AuthenticationError("forbidden", status_code=403),
        BadRequestError("no such model", status_code=404),
        BadRequestError("unprocessable", status_code=422),
    ],
)
async def test_client_errors_are_never_retried(error: BadRequestError) -> None:
    clock = JumpClock()
    client = FaultyClient(ScriptedClient(["never"]), _always(error))
    router = _router({"vllm/a": client}, clock=clock, max_retries=5)
    with pytest.raises(type(error)) as info:
        await router.complete(PROMPT)
    assert client.calls == 1
    assert clock.sleeps == []
    assert "vllm/a failed" in str(info.value)
    assert info.value.status_code == error.status_code


async def test_exhausted_retries_raise_the_specific_class() -> None:
    client = FaultyClient(ScriptedClient([]), _always(ProviderTimeout("read timed out", provider="vllm")))
    router = _router({"vllm/a": client}, max_retries=3, cooldown_failures=10)
    with pytest.raises(ProviderTimeout, match="vllm/a failed after 4 attempts: read timed out"):
        await router.complete(PROMPT)
    assert client.calls == 4


async def test_attempt_timeout_becomes_provider_timeout() -> None:
    hang = anyio.Event()

    async def never(prompt: Prompt, settings: GenerationSettings) -> str:
        await hang.wait()
        return "late"

    router = _router({"vllm/a": FunctionClient(never)}, max_retries=0, timeout_seconds=0.01)
    with pytest.raises(ProviderTimeout, match=r"did not answer within 0\.01 s"):
        await router.complete(PROMPT)


# -- fallback ---------------------------------------------------------------------------------------


async def test_fallback_after_retries_are_used_up() -> None:
    a = FaultyClient(ScriptedClient([]), _always(_unavailable()))
    b = ScriptedClient(["from b"])
    router = _router({"vllm/a": a, "vllm/b": b}, max_retries=1)
    assert (await router.complete(PROMPT)).text == "from b"
    assert a.calls == 2
    assert len(b.requests) == 1


async def test_all_failing_raises_the_last_error_naming_every_provider() -> None:
    a = FaultyClient(ScriptedClient([]), _always(_unavailable()))
    b = FaultyClient(ScriptedClient([]), _always(RateLimitError("quota", status_code=429, retry_after=1.0)))
    router = _router({"vllm/a": a, "vllm/b": b}, max_retries=0)
    with pytest.raises(RateLimitError) as info:
        await router.complete(PROMPT)
    message = str(info.value)
    assert message.startswith("all 2 providers failed after 2 attempts")
    assert "vllm/a: injected 503" in message
    assert "vllm/b: quota" in message
    assert message.index("vllm/a") < message.index("vllm/b")
    assert info.value.status_code == 429


async def test_fallback_follows_the_strategy_order() -> None:
    failing = {f"vllm/{m}": FaultyClient(ScriptedClient([]), _always(_unavailable())) for m in ("a", "b")}
    clients: dict[str, ModelClient] = {**failing, "vllm/c": ScriptedClient(["c"])}
    specs = [spec("a", priority=1), spec("b", priority=9), spec("c", priority=5)]
    router = _router(clients, specs, strategy=RoutingStrategy.HIGHEST_PRIORITY, max_retries=0)
    assert (await router.complete(PROMPT)).text == "c"
    assert failing["vllm/b"].calls == 1
    assert failing["vllm/a"].calls == 0  # c (priority 5) answered before a (priority 1) was needed


async def test_no_fallback_when_disabled() -> None:
    a = FaultyClient(ScriptedClient([]), _always(_unavailable()))
    b = ScriptedClient(["b"])
    router = _router({"vllm/a": a, "vllm/b": b}, max_retries=0, enable_fallback=False)
    with pytest.raises(ProviderUnavailable, match="vllm/a failed"):
        await router.complete(PROMPT)
    assert b.requests == []


# -- cooldown and probe -----------------------------------------------------------------------------


async def test_cooldown_then_one_probe_decides() -> None:
    clock = JumpClock()
    healthy = False

    def a_answer(prompt: Prompt, settings: GenerationSettings) -> str:
        if not healthy:
            raise _unavailable()
        return "a"

    a = FunctionClient(a_answer)
    b = FunctionClient(lambda p, s: "b")
    router = _router({"vllm/a": a, "vllm/b": b}, clock=clock, max_retries=0, cooldown_failures=2, cooldown_seconds=30.0)
    assert [(await router.complete(PROMPT)).text for _ in range(4)] == ["b"] * 4
    assert len(a.requests) == 2  # the third and fourth requests skipped a: it is cooling down
    assert router.provider_stats()["vllm/a"].cooling_down
    clock.time += 29.0
    assert (await router.complete(PROMPT)).text == "b"
    assert len(a.requests) == 2
    clock.time += 2.0
    assert (await router.complete(PROMPT)).text == "b"  # the probe fails: a cools down again
    assert len(a.requests) == 3
    assert (await router.complete(PROMPT)).text == "b"
    assert len(a.requests) == 3
    clock.time += 31.0
    assert (await router.complete(PROMPT)).text == "b"  # the failed probe doubled the cooldown to 60 s
    assert len(a.requests) == 3
    clock.time += 30.0
    healthy = True
    assert (await router.complete(PROMPT)).text == "a"  # the probe succeeds
    assert [(await router.complete(PROMPT)).text for _ in range(2)] == ["a", "a"]
    assert not router.provider_stats()["vllm/a"].cooling_down
    assert router.provider_stats()["vllm/a"].consecutive_failures == 0


async def test_others_avoid_a_provider_while_its_probe_runs() -> None:
    clock = JumpClock()
    gate = anyio.Event()
    fail = True

    async def a_answer(prompt: Prompt, settings: GenerationSettings) -> str:
        if fail:
            raise _unavailable()
        await gate.wait()
        return "a"

    a = FunctionClient(a_answer)
    b = FunctionClient(lambda p, s: "b")
    router = _router({"vllm/a": a, "vllm/b": b}, clock=clock, max_retries=0, cooldown_failures=1)
    assert (await router.complete(PROMPT)).text == "b"
    clock.time += 10.0
    fail = False
    answers: list[str] = []

    async def call() -> None:
        answers.append((await router.complete(PROMPT)).text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)  # the probe, held open
        await all_tasks_blocked()
        for _ in range(3):
            await call()
        assert answers == ["b", "b", "b"]
        assert len(a.requests) == 2
        gate.set()
    assert answers[-1] == "a"


async def test_rate_limits_do_not_start_a_cooldown() -> None:
    clock = JumpClock()
    a = FaultyClient(ScriptedClient(["ok"]), {i: RateLimitError("slow", status_code=429) for i in range(5)})
    router = _router({"vllm/a": a}, clock=clock, max_retries=5, cooldown_failures=2)
    assert (await router.complete(PROMPT)).text == "ok"
    assert a.calls == 6
    assert not router.provider_stats()["vllm/a"].cooling_down


# -- streams ----------------------------------------------------------------------------------------


class _BreakingStream(ModelClient):
    """Streams ``before`` deltas, then fails."""

    def __init__(self, before: int, error: Exception | None) -> None:
        self.before = before
        self.error = error
        self.calls = 0

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        self.calls += 1
        for index in range(self.before):
            yield OutputTextDelta(delta=f"part{index} ")
        if self.error is not None:
            raise self.error


async def test_stream_is_retried_before_its_first_event() -> None:
    a = FaultyClient(ScriptedClient(["streamed answer here"]), {0: _unavailable()})
    router = _router({"vllm/a": a}, max_retries=1)
    async with router.stream(PROMPT) as events:
        received = [event async for event in events]
    assert "".join(e.delta for e in received if isinstance(e, OutputTextDelta)) == "streamed answer here"
    assert isinstance(received[-1], Completed)
    assert a.calls == 2


async def test_stream_falls_back_before_its_first_event() -> None:
    a = _BreakingStream(0, _unavailable())
    b = ScriptedClient(["from b"])
    router = _router({"vllm/a": a, "vllm/b": b}, max_retries=0)
    async with router.stream(PROMPT) as events:
        completion = await collect_stream(events)
    assert completion.text == "from b"
    assert a.calls == 1


async def test_stream_failure_after_the_first_event_reaches_the_caller() -> None:
    a = _BreakingStream(2, ProtocolError("stream cut", provider="vllm"))
    b = ScriptedClient(["never used"])
    router = _router({"vllm/a": a, "vllm/b": b}, max_retries=3)
    received: list[ResponseEvent] = []
    with pytest.raises(ProtocolError, match="stream cut"):
        await _drain(router, received)
    assert len(received) == 2
    assert a.calls == 1
    assert b.requests == []
    assert router.provider_stats()["vllm/a"].usage.failures == 1


async def test_empty_stream_is_a_protocol_error() -> None:
    router = _router({"vllm/a": _BreakingStream(0, None)}, max_retries=0)
    with pytest.raises(ProtocolError):
        await _drain(router, [])


async def _drain(router: ModelClientRouter, received: list[ResponseEvent]) -> None:
    async with router.stream(PROMPT) as events:
        async for event in events:
            received.append(event)


# -- n and settings ------------------------------------------------------------------------------------


async def test_settings_reach_the_provider_unchanged() -> None:
    client = ScriptedClient(["x"])
    router = _router({"vllm/a": client})
    settings = GenerationSettings(temperature=0.3, top_p=0.9, max_tokens=77, stop=("END",), seed=11, extra={"k": 1})
    await router.complete(PROMPT, settings)
    assert client.settings_seen == [settings]
    assert client.requests[0].prompt == PROMPT


async def test_native_n_is_one_request_and_other_providers_fan_out() -> None:
    native = ScriptedClient(["1", "2", "3"], native_n=True)
    router = _router({"vllm/a": native})
    completion = await router.complete(PROMPT, GenerationSettings(n=3, temperature=0.8))
    assert completion.texts == ("1", "2", "3")
    assert [s.n for s in native.settings_seen] == [3]

    single = ScriptedClient(["1", "2", "3"])
    router = _router({"vllm/b": single})
    completion = await router.complete(PROMPT, GenerationSettings(n=3, temperature=0.8))
    assert sorted(completion.texts) == ["1", "2", "3"]
    assert [(s.n, s.temperature) for s in single.settings_seen] == [(1, 0.8)] * 3
    assert router.usage.calls == 3


async def test_mixed_native_n_fans_out_through_the_router() -> None:
    native = ScriptedClient(["n1", "n2", "n3"], native_n=True)
    single = ScriptedClient(["s1", "s2"])
    router = _router({"vllm/a": native, "vllm/b": single}, strategy=RoutingStrategy.ROUND_ROBIN)
    assert not router.supports_native_n
    completion = await router.complete(PROMPT, GenerationSettings(n=2))
    assert sorted(completion.texts) == ["n1", "s1"]  # each choice was routed on its own
    assert [s.n for s in native.settings_seen + single.settings_seen] == [1, 1]
    # Called directly with n > 1, the router still serves it on whichever provider it picks.
    direct = await router.request(PROMPT, GenerationSettings(n=2))
    assert len(direct.texts) == 2


async def test_request_and_request_stream_with_n_on_a_provider_without_native_n() -> None:
    single = ScriptedClient(["a", "b", "c", "d"])
    router = _router({"vllm/a": single})
    assert sorted((await router.request(PROMPT, GenerationSettings(n=2))).texts) == ["a", "b"]
    streamed = await collect_stream(router.request_stream(PROMPT, GenerationSettings(n=2)), 2)
    assert sorted(streamed.texts) == ["c", "d"]
    assert [s.n for s in single.settings_seen] == [1, 1, 1, 1]


# -- usage, cost and events ----------------------------------------------------------------------------


async def test_usage_and_cost_per_provider_and_in_total() -> None:
    usage = TokenUsage(input_tokens=1000, output_tokens=500)
    a = ScriptedClient([Reply("a", usage=usage)] * 2)
    b = ScriptedClient([Reply("b", usage=usage)])
    specs = [
        spec("a", input_price_per_million=1.0, output_price_per_million=2.0),
        spec("b", input_price_per_million=10.0, output_price_per_million=20.0),
    ]
    records: list[CallRecord] = []
    config = ProviderRoutingConfig.multi(specs[0], specs[1:])
    router = ModelClientRouter(config, client_factory=factory({"vllm/a": a, "vllm/b": b}), on_call=records.append)
    for _ in range(3):
        await router.complete(PROMPT)
    stats = router.provider_stats()
    assert stats["vllm/a"].usage.calls == 2
    assert stats["vllm/a"].usage.cost == pytest.approx(2 * (0.001 + 0.001))
    assert stats["vllm/b"].usage.cost == pytest.approx(0.01 + 0.01)
    total = router.usage
    assert (total.calls, total.input_tokens, total.output_tokens) == (3, 3000, 1500)
    assert total.cost == pytest.approx(0.024)
    assert [r.name for r in records] == ["vllm/a", "vllm/b", "vllm/a"]
    assert records[1].cost == pytest.approx(0.02)


async def test_events_per_attempt_and_no_key_anywhere() -> None:
    leaky = FaultyClient(
        ScriptedClient(["fine"]),
        {0: ProviderUnavailable(f"upstream said: invalid key {SECRET}", status_code=502)},
    )
    clients: dict[str, ModelClient] = {"openai/gpt-x": leaky}
    config = ProviderRoutingConfig.single(ProviderSpec("openai", "gpt-x", api_key=SECRET)).with_max_retries(1)
    router = ModelClientRouter(config, client_factory=factory(clients), clock=JumpClock())
    with capture_logs() as logs:
        assert (await router.complete(PROMPT)).text == "fine"
    failed, finished = logs
    assert failed["event"] == "model call failed"
    assert (failed["provider"], failed["model"], failed["status_code"], failed["attempt"]) == (
        "openai",
        "gpt-x",
        502,
        0,
    )
    assert failed["retry_in"] is not None
    assert finished["event"] == "model call finished"
    assert (finished["status"], finished["attempt"], finished["output_tokens"]) == ("ok", 1, 1)
    assert "latency" in finished
    assert SECRET not in repr(logs)
    assert SECRET not in repr(router)

    broken = FaultyClient(ScriptedClient([]), _always(BadRequestError(f"echoing {SECRET}", status_code=400)))
    router = ModelClientRouter(config, client_factory=factory({"openai/gpt-x": broken}), clock=JumpClock())
    with capture_logs() as logs, pytest.raises(BadRequestError) as info:
        await router.complete(PROMPT)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(logs)


# -- cancellation -----------------------------------------------------------------------------------------


async def test_cancelling_a_call_cancels_the_provider_call_and_frees_everything() -> None:
    state = {"started": 0, "cancelled": 0}
    hang = anyio.Event()

    async def slow(prompt: Prompt, settings: GenerationSettings) -> str:
        state["started"] += 1
        try:
            await hang.wait()
        except anyio.get_cancelled_exc_class():
            state["cancelled"] += 1
            raise
        return "done"

    client = FunctionClient(slow)
    router = _router({"vllm/a": client}, [spec("a", max_concurrency=1)], cooldown_failures=1)
    async with anyio.create_task_group() as tg:
        tg.start_soon(router.complete, PROMPT)
        await all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert state == {"started": 1, "cancelled": 1}
    assert client.in_flight == 0
    stats = router.provider_stats()["vllm/a"]
    assert stats.in_flight == 0
    assert not stats.cooling_down
    hang.set()
    assert (await router.complete(PROMPT)).text == "done"  # the only slot was given back


async def test_cancelling_a_stream_closes_it() -> None:
    closed = anyio.Event()

    class Endless(ModelClient):
        async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
            try:
                while True:
                    yield OutputTextDelta(delta="more ")
            finally:
                closed.set()

    router = _router({"vllm/a": Endless()}, [spec("a", max_concurrency=1)])
    async with router.stream(PROMPT) as events:
        async for _ in events:
            break
    assert closed.is_set()
    assert router.provider_stats()["vllm/a"].in_flight == 0
