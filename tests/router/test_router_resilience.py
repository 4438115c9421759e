"""The rules that keep a run alive under transient faults, on virtual clocks.

The only route never cools down; cooldowns reorder routes and a call waits for the first back
(within the run's deadline); failing while cooling extends a cooldown; a retry-after above the
cap moves a call on at once or fails it at once; missing choices are requested as single calls;
a request refused locally gives back its rate reservation; retries are charged to the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    BadRequestError,
    Budget,
    BudgetExhausted,
    Completed,
    Completion,
    GenerationSettings,
    MeteredClient,
    ModelClient,
    OutputTextDelta,
    Prompt,
    ProviderUnavailable,
    RateLimitError,
    ResponseEvent,
    TokenUsage,
    charge_call,
    collect_stream,
    run_time_left,
)
from optillm_core.testing import FaultyClient, FunctionClient, JumpClock, Reply, ScriptedClient
from optillm_router import CallRecord, FewerChoices, ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router._health import Health

from .router_support import factory, spec

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("What is 6 times 7?")


def _router(
    clients: dict[str, ModelClient],
    clock: JumpClock,
    specs: list[ProviderSpec] | None = None,
    on_call: Callable[[CallRecord], None] | None = None,
    **settings: object,
) -> ModelClientRouter:
    specs = specs or [spec(label.removeprefix("vllm/")) for label in clients]
    config = ProviderRoutingConfig(primary=specs[0], alternatives=tuple(specs[1:]), **settings)
    return ModelClientRouter(config, client_factory=factory(clients), clock=clock, on_call=on_call)


def _unavailable(status: int = 503) -> ProviderUnavailable:
    return ProviderUnavailable(f"injected {status}", provider="vllm", status_code=status)


class _Switch(ModelClient):
    """Fails with 503 while ``failing``, else answers ``text``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.failing = True
        self.calls = 0

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        self.calls += 1
        if self.failing:
            raise _unavailable()
        yield OutputTextDelta(delta=self.text)
        yield Completed(usage=TokenUsage(input_tokens=1, output_tokens=1))


# -- the only route ------------------------------------------------------------------------------------


async def test_the_only_route_never_cools_down() -> None:
    clock = JumpClock()
    client = FaultyClient(ScriptedClient(["42"] * 3), lambda number, p, s: _unavailable() if number % 4 < 3 else None)
    router = _router({"vllm/a": client}, clock, cooldown_failures=2, cooldown_seconds=30.0)
    for _ in range(3):
        assert (await router.complete(PROMPT)).text == "42"  # three failures in a row each time
    stats = router.provider_stats()["vllm/a"]
    assert not stats.cooling_down
    assert client.calls == 12
    assert max(clock.sleeps) < 30.0  # backoff only: no cooldown was waited for
    assert (stats.usage.calls, stats.usage.failures, stats.usage.retries) == (3, 9, 9)


async def test_the_default_retries_outlast_a_long_run_of_transient_faults() -> None:
    clock = JumpClock()
    client = FaultyClient(ScriptedClient(["fine"]), lambda number, p, s: _unavailable(502) if number < 10 else None)
    router = _router({"vllm/a": client}, clock)
    assert (await router.complete(PROMPT)).text == "fine"
    assert client.calls == 11
    assert len(clock.sleeps) == 10


def _refused() -> ProviderUnavailable:
    error = ProviderUnavailable("could not reach vllm: connection refused", provider="vllm")
    error.__cause__ = ConnectionRefusedError(111, "Connection refused")
    return error


async def test_a_route_that_never_answered_gets_few_retries_for_refused_connections() -> None:
    clock = JumpClock()
    client = FaultyClient(
        ScriptedClient(["up", "up again"]), lambda n, p, s: _refused() if n < 3 or 4 <= n < 10 else None
    )
    router = _router({"vllm/a": client}, clock)
    with pytest.raises(ProviderUnavailable, match="after 3 attempts: could not reach"):
        await router.complete(PROMPT)  # a wrong address is reported within seconds
    assert (client.calls, len(clock.sleeps)) == (3, 2)
    assert (await router.complete(PROMPT)).text == "up"
    assert (await router.complete(PROMPT)).text == "up again"  # it has answered: a restart gets every retry
    assert client.calls == 11


# -- cooldowns reorder, and a call waits for the first route back -------------------------------------


async def test_a_cooling_route_is_tried_after_the_others_not_refused() -> None:
    clock = JumpClock()
    a, b = _Switch("a"), _Switch("b")
    router = _router({"vllm/a": a, "vllm/b": b}, clock, max_retries=0, cooldown_failures=1, cooldown_seconds=20.0)
    b.failing = False
    assert (await router.complete(PROMPT)).text == "b"  # a fails and cools down; b serves
    assert router.provider_stats()["vllm/a"].cooling_down
    b.failing, a.failing = True, False
    clock.time += 5.0
    assert (await router.complete(PROMPT)).text == "a"  # b first, fails; a is waited for, not refused
    assert clock.sleeps[-1] == pytest.approx(15.0)
    assert (a.calls, b.calls) == (2, 2)


def _cool(router: ModelClientRouter, name: str, until: float) -> None:
    next(route for route in router._routes if route.name == name).health.cooling_until = until


async def test_when_every_route_is_cooling_a_call_waits_for_the_first_back() -> None:
    clock = JumpClock()
    a, b = _Switch("a"), _Switch("b")
    a.failing = b.failing = False
    router = _router({"vllm/a": a, "vllm/b": b}, clock)
    _cool(router, "vllm/a", clock.now() + 30.0)
    _cool(router, "vllm/b", clock.now() + 12.0)
    assert (await router.complete(PROMPT)).text == "b"
    assert clock.sleeps == [pytest.approx(12.0)]
    assert (a.calls, b.calls) == (0, 1)
    assert not router.provider_stats()["vllm/b"].cooling_down  # its probe succeeded


async def test_the_wait_for_a_cooling_route_stays_within_the_runs_deadline() -> None:
    clock = JumpClock()
    a, b = _Switch("a"), _Switch("b")
    router = _router({"vllm/a": a, "vllm/b": b}, clock)
    _cool(router, "vllm/a", clock.now() + 30.0)
    _cool(router, "vllm/b", clock.now() + 40.0)
    metered = MeteredClient(router, budget=Budget(max_seconds=5.0))
    with pytest.raises(ProviderUnavailable, match=r"back in 30\.0 s, after the run's deadline"):
        await metered.complete(PROMPT)
    assert clock.sleeps == []
    assert (a.calls, b.calls) == (0, 0)


async def test_a_failing_route_falls_over_at_once_when_another_is_ready() -> None:
    clock = JumpClock()
    a, b = _Switch("a"), _Switch("b")
    b.failing = False
    router = _router({"vllm/a": a, "vllm/b": b}, clock, max_retries=3, cooldown_failures=2)
    assert (await router.complete(PROMPT)).text == "b"
    assert a.calls == 2  # retried once with backoff; the second failure cooled it down: on to b at once
    assert len(clock.sleeps) == 1


# -- extended, not restarted ------------------------------------------------------------------------


def test_a_failure_while_cooling_extends_the_cooldown() -> None:
    health = Health(threshold=2, cooldown=5.0, max_cooldown=60.0)
    assert not health.failed(100.0, probe=False)
    assert health.failed(101.0, probe=False)
    assert health.cooling_until == 106.0
    health.failed(103.0, probe=False)  # a call sent before the cooldown fails during it
    assert health.cooling_until == 111.0  # one more period on top of the end, not 5 s from now
    assert not health.enter(110.0)
    assert health.enter(111.0)  # the probe
    assert not health.enter(111.0)  # others keep out of its way but are never refused
    assert not health.available(111.0)
    health.failed(112.0, probe=True)
    assert health.cooling_until == 122.0  # a failed probe doubles the next cooldown
    assert health.enter(122.0)
    health.failed(122.5, probe=True)
    assert health.cooling_until == 142.5
    health.succeeded(probe=False)  # a success from a call already in flight closes the breaker
    assert health.available(123.0)
    assert (health.consecutive_failures, health.length) == (0, 5.0)


@given(
    events=st.lists(
        st.tuples(st.floats(min_value=0.0, max_value=30.0), st.sampled_from(["fail", "probe", "ok"])), max_size=40
    ),
    sole=st.booleans(),
)
def test_cooldowns_never_shorten_and_stay_bounded(events: list[tuple[float, str]], sole: bool) -> None:
    health = Health(threshold=2, cooldown=5.0, max_cooldown=60.0, sole=sole)
    now = 0.0
    for gap, event in events:
        now += gap
        before = health.cooling_until
        if event == "ok":
            health.succeeded(probe=health.enter(now))
            assert health.available(now)
            continue
        probe = health.enter(now) if event == "probe" else False
        health.failed(now, probe)
        after = health.cooling_until
        if sole:
            assert after is None
        if before is not None and after is not None:
            assert after >= before
        if after is not None:
            assert after - now <= 60.0


# -- retry-after above the cap ------------------------------------------------------------------------


async def test_retry_after_above_the_cap_moves_to_another_route_at_once() -> None:
    clock = JumpClock()
    quota = RateLimitError("daily quota used up", status_code=429, retry_after=7200.0)
    a = FaultyClient(ScriptedClient([]), lambda number, p, s: quota)
    b = ScriptedClient(["from b", "from b again"])
    router = _router({"vllm/a": a, "vllm/b": b}, clock, max_retry_after=60.0)
    assert (await router.complete(PROMPT)).text == "from b"
    assert clock.sleeps == []
    assert (await router.complete(PROMPT)).text == "from b again"
    assert a.calls == 1  # paused for two hours: later calls start elsewhere


async def test_retry_after_above_the_cap_without_another_route_fails_at_once() -> None:
    clock = JumpClock()
    quota = RateLimitError("daily quota used up", status_code=429, retry_after=7200.0)
    a = FaultyClient(ScriptedClient([]), lambda number, p, s: quota)
    router = _router({"vllm/a": a}, clock, max_retry_after=60.0)
    with pytest.raises(RateLimitError, match=r"takes requests again in 7200 s \(at about 20\d\d-") as info:
        await router.complete(PROMPT)
    assert "daily quota used up" in str(info.value)
    assert info.value.retry_after == pytest.approx(7200.0)
    assert clock.sleeps == []
    clock.time += 3600.0
    with pytest.raises(RateLimitError, match=r"takes requests again in 3600 s"):
        await router.complete(PROMPT)  # refused by the router: nothing is sent
    assert a.calls == 1
    assert clock.sleeps == []


# -- fewer choices than asked ----------------------------------------------------------------------


class _OneChoice(ModelClient):
    """Claims native ``n`` but returns one choice, as models that ignore ``candidateCount`` do."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    @property
    def supports_native_n(self) -> bool:
        return True

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        self.seen.append(settings.n)
        usage = TokenUsage(input_tokens=3, output_tokens=2)
        return Completion(texts=(f"choice {len(self.seen)}",), usage=usage, finish_reasons=("stop",))

    def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        raise NotImplementedError


async def test_missing_choices_are_requested_as_single_calls_and_remembered() -> None:
    client = _OneChoice()
    router = _router({"vllm/a": client}, JumpClock())
    assert router._routes[0].native_n
    metered = MeteredClient(router)
    completion = await metered.complete(PROMPT, GenerationSettings(n=3))
    assert completion.texts == ("choice 1", "choice 2", "choice 3")
    assert completion.finish_reasons == ("stop", "stop", "stop")
    assert completion.usage == TokenUsage(input_tokens=9, output_tokens=6)
    assert client.seen == [3, 1, 1]
    assert metered.usage.llm_calls == 3
    assert not router.supports_native_n  # later requests fan out from the start
    await metered.complete(PROMPT, GenerationSettings(n=2))
    assert client.seen[3:] == [1, 1]


class _OneChoiceStream(_OneChoice):
    """Streams choice 0 of a native ``n`` request, then says the others never came, as the Gemini client does."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        self.seen.append(settings.n)
        if self.text:
            yield OutputTextDelta(delta=self.text, index=0)
        usage = TokenUsage(input_tokens=3, output_tokens=2)
        partial = Completion(texts=(), usage=usage, finish_reasons=("stop",) + (None,) * (settings.n - 1))
        missing = tuple(range(1, settings.n))
        raise FewerChoices("1 choice streamed", completion=partial, missing=missing, provider="vllm")


@pytest.mark.parametrize("text", ["streamed", ""], ids=["with-text", "empty-choice"])
async def test_a_stream_with_missing_choices_gets_them_as_single_calls_charged_to_the_run(text: str) -> None:
    client = _OneChoiceStream(text)
    records: list[CallRecord] = []
    router = _router({"vllm/a": client}, JumpClock(), on_call=records.append)
    metered = MeteredClient(router)
    async with metered.stream(PROMPT, GenerationSettings(n=3)) as events:
        completion = await collect_stream(events, 3)
    assert completion.texts == (text, "choice 2", "choice 3")
    assert completion.finish_reasons == ("stop", "stop", "stop")
    assert completion.usage == TokenUsage(input_tokens=9, output_tokens=6)
    assert client.seen == [3, 1, 1]
    assert metered.usage.llm_calls == 3
    assert [(r.stream, r.error) for r in records] == [(True, None), (False, None), (False, None)]
    assert not router.supports_native_n


# -- a request refused locally gives its reservation back ----------------------------------------------


async def test_a_request_refused_before_sending_releases_its_rate_reservation() -> None:
    clock = JumpClock()

    def answer(prompt: Prompt, settings: GenerationSettings) -> str:
        if (settings.temperature or 0) > 1:
            raise BadRequestError("this model accepts temperature up to 1; lower it", provider="vllm")
        if settings.seed == 99:
            raise BadRequestError("the provider said no", provider="vllm", status_code=400)
        return "ok"

    router = _router({"vllm/a": FunctionClient(answer)}, clock, [spec("a", rpm=1, tpm=10_000)])
    route = router._routes[0]
    with pytest.raises(BadRequestError, match="temperature up to 1"):
        await router.complete(PROMPT, GenerationSettings(temperature=1.5, max_tokens=100))
    assert route.limits.rates is not None
    assert route.limits.rates.used == (0, 0)
    assert (await router.complete(PROMPT)).text == "ok"  # the one request of this minute was still free
    assert clock.sleeps == []
    clock.time += 60.0
    with pytest.raises(BadRequestError, match="the provider said no"):
        await router.complete(PROMPT, GenerationSettings(seed=99))
    assert route.limits.rates.used == (1, 0)  # sent and refused: the request counts, its tokens do not


# -- retries stay inside the run's budget --------------------------------------------------------------


async def test_retries_are_charged_to_the_run_and_marked_in_call_records() -> None:
    records: list[CallRecord] = []
    client = FaultyClient(ScriptedClient(["ok"]), {0: _unavailable(500), 1: _unavailable(502)})
    router = _router({"vllm/a": client}, JumpClock(), on_call=records.append)
    outer = MeteredClient(router)
    inner = MeteredClient(outer, budget=Budget(max_calls=10))
    assert (await inner.complete(PROMPT)).text == "ok"
    for metered in (inner, outer):  # every run metering the call counts its retries
        assert (metered.usage.llm_calls, metered.usage.retries) == (3, 2)
    assert [(r.attempts, r.retry, r.ok) for r in records] == [(1, False, False), (2, True, False), (3, True, True)]
    assert records[0].error is not None and "injected 500" in records[0].error
    assert records[2].usage.output_tokens == 1


async def test_a_retry_beyond_the_call_budget_is_refused() -> None:
    client = FaultyClient(ScriptedClient([]), lambda number, p, s: _unavailable())
    metered = MeteredClient(_router({"vllm/a": client}, JumpClock()), budget=Budget(max_calls=3))
    with pytest.raises(BudgetExhausted, match="3 of 3 LLM calls") as info:
        await metered.complete(PROMPT)
    assert client.calls == 3
    assert isinstance(info.value.__cause__, ProviderUnavailable)


async def test_a_retry_that_would_outlast_the_deadline_is_refused_at_once() -> None:
    clock = JumpClock()
    client = FaultyClient(ScriptedClient([]), {0: RateLimitError("slow down", status_code=429, retry_after=30.0)})
    metered = MeteredClient(_router({"vllm/a": client}, clock), budget=Budget(max_seconds=5.0))
    with pytest.raises(BudgetExhausted) as info:
        await metered.complete(PROMPT)
    assert info.value.kind == "time"
    assert isinstance(info.value.__cause__, RateLimitError)
    assert clock.sleeps == []
    assert metered.usage.retries == 0


async def test_a_retry_after_the_token_budget_ran_out_is_refused() -> None:
    first_of_b = anyio.Event()
    a_done = anyio.Event()
    prompt_a, prompt_b = Prompt.from_query("a"), Prompt.from_query("b")
    attempts_of_b = 0

    async def answer(prompt: Prompt, settings: GenerationSettings) -> Reply:
        nonlocal attempts_of_b
        if prompt == prompt_b:
            attempts_of_b += 1
            first_of_b.set()
            await a_done.wait()
            raise _unavailable()
        return Reply("a", usage=TokenUsage(input_tokens=60, output_tokens=40))

    metered = MeteredClient(_router({"vllm/a": FunctionClient(answer)}, JumpClock()), budget=Budget(max_tokens=100))
    outcome: list[BaseException] = []

    async def call_b() -> None:
        try:
            await metered.complete(prompt_b)
        except BudgetExhausted as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call_b)
        await first_of_b.wait()  # b is in flight; a uses up the token budget meanwhile
        await metered.complete(prompt_a)
        a_done.set()
    assert attempts_of_b == 1
    (exc,) = outcome
    assert isinstance(exc, BudgetExhausted) and exc.kind == "tokens"
    assert isinstance(exc.__cause__, ProviderUnavailable)


async def test_stream_retries_are_charged_too() -> None:
    client = FaultyClient(ScriptedClient(["streamed"]), {0: _unavailable()})
    metered = MeteredClient(_router({"vllm/a": client}, JumpClock()))
    async with metered.stream(PROMPT) as events:
        assert (await collect_stream(events)).text == "streamed"
    assert (metered.usage.llm_calls, metered.usage.retries) == (2, 1)


async def test_the_seam_does_nothing_outside_a_metered_call() -> None:
    charge_call(retry=True, wait=1e9)
    assert run_time_left() == float("inf")

    seen: list[float] = []

    async def answer(prompt: Prompt, settings: GenerationSettings) -> str:
        seen.append(run_time_left())
        return "ok"

    metered = MeteredClient(FunctionClient(answer), budget=Budget(max_seconds=50.0))
    await metered.complete(PROMPT)
    assert 0 < seen[0] <= 50.0
