"""Every installed strategy and the proxy against fake providers that fail the way real ones do.

The fault servers of :mod:`optillm_router.testing` answer through the router (every wire format),
through each strategy of :func:`optillm_core.default_registry`, and through the proxy served on
loopback (plain and streamed, pass-through and strategy prefixes). Transient faults must cost
retries, never runs; permanent ones must fail at once, with no retry sent. Retry waits run on a
virtual clock and every run is bounded by ``anyio.fail_after``: nothing here sleeps, and a hang
fails the test instead of stalling it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from optillm_core import (
    AnswerDelta,
    AuthenticationError,
    BadRequestError,
    Budget,
    BudgetExhausted,
    ClientError,
    MeteredClient,
    OptillmError,
    OptimizerEvent,
    default_registry,
)
from optillm_core.testing import JumpClock
from optillm_router import ModelClientRouter, ProviderRoutingConfig
from optillm_router.testing import (
    RECOVERABLE_STREAM_FAULTS,
    TRANSIENT_FAULTS,
    FakeProviderServer,
    FaultKind,
    FaultPlan,
    HttpWireFormat,
)
from optillm_server import Upstream, create_app
from tests.server.support import serving

pytestmark = pytest.mark.anyio

STRATEGIES = sorted(default_registry().names())
SMALL: dict[str, dict[str, Any]] = {
    # MARS at its defaults makes ~100 calls a run; these settings keep every phase but fewer rounds.
    "mars": {"num_agents": 2, "max_iterations": 1, "verification_passes_required": 1, "aggregation_loops": 1},
}
"""Smaller configs for strategies whose default run is long; any other strategy runs at its defaults."""
WIRES: tuple[HttpWireFormat, ...] = ("openai", "anthropic", "gemini", "ollama")
QUESTION = "What is six times seven?"
ATTEMPT_TIMEOUT = 1.0
"""Seconds an attempt may take before the router gives up on it (a ``hang`` costs this, in real time)."""
LIMIT = 60
"""Seconds any one test may take: far more than it needs, so only a hang reaches it."""
ERROR_FIELDS = {"message", "type", "param", "code"}
PERMANENT: dict[FaultKind, tuple[type[ClientError], int]] = {
    "400": (BadRequestError, 400),
    "401": (AuthenticationError, 502),  # the proxy's own upstream key was refused: not the caller's fault
    "404": (BadRequestError, 404),
}
"""A permanent fault, the error the router raises for it, and the status the proxy answers with."""


def optimizer(name: str) -> Any:
    return default_registry().create(name, SMALL.get(name, {}))


def router_to(server: FakeProviderServer, clock: JumpClock) -> ModelClientRouter:
    """The router at its default retries and cooldown, waiting on ``clock``."""
    config = ProviderRoutingConfig(primary=server.spec(), timeout_seconds=ATTEMPT_TIMEOUT)
    return ModelClientRouter(config, clock=clock)


def client_error_in(exc: BaseException) -> ClientError | None:
    """The failed model call behind ``exc``: itself, its cause chain, or inside an exception group."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ClientError):
            return seen
        if isinstance(seen, BaseExceptionGroup):
            return next((e for e in map(client_error_in, seen.exceptions) if e is not None), None)
        seen = seen.__cause__
    return None


# -- through the router --------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_every_run_survives_30_percent_transient_faults_on_every_wire(strategy: str) -> None:
    faulted_runs = 0
    # Two runs per wire at least, and more until faults struck in as many runs as there are wires: a
    # one-call strategy (cot_reflection, re2) is struck in fewer runs than one making dozens of calls.
    for seed in range(8 * len(WIRES)):
        if seed >= 2 * len(WIRES) and faulted_runs >= len(WIRES):
            break
        wire = WIRES[seed % len(WIRES)]
        plan = FaultPlan(rate=0.3, kinds=TRANSIENT_FAULTS, seed=seed)
        clock = JumpClock()
        with anyio.fail_after(LIMIT):
            async with FakeProviderServer(wire, faults=plan) as server, router_to(server, clock) as router:
                caller = MeteredClient(router)  # meters the run from outside: retries reach RunUsage
                solution = await optimizer(strategy).optimize(QUESTION, caller, budget=Budget(max_calls=500))
        faulted = sum(server.faults_injected.values())
        # every request sent is in the run's usage, the retries included; each fault cost a retry (an
        # attempt that outlived the timeout on a loaded machine costs one more, as it would in production)
        assert caller.usage.llm_calls == solution.metadata.llm_calls == len(server.requests), (wire, seed)
        assert caller.usage.retries == router.usage.retries == router.usage.failures >= faulted, (wire, seed)
        faulted_runs += faulted > 0
        assert solution.answer, (wire, seed)
        assert not solution.metadata.budget_exhausted
        assert router.usage.calls == len(server.requests) - router.usage.failures
    assert faulted_runs >= len(WIRES)  # the faults did strike


@pytest.mark.parametrize("kind", list(PERMANENT))
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_every_run_fails_at_once_on_permanent_faults(strategy: str, kind: FaultKind) -> None:
    error_type = PERMANENT[kind][0]
    clock = JumpClock()
    plan = FaultPlan(rate=1.0, kinds=(kind,))
    with anyio.fail_after(LIMIT):
        async with FakeProviderServer("openai", faults=plan) as server, router_to(server, clock) as router:
            with pytest.raises(OptillmError) as raised:
                await optimizer(strategy).optimize(QUESTION, router)
    assert isinstance(client_error_in(raised.value), error_type), repr(raised.value)
    assert router.usage.retries == 0
    assert clock.sleeps == []
    # nothing was sent again; the first failure ends the run and cancels the calls still in flight
    assert 1 <= router.usage.failures <= len(server.requests)


async def test_retries_stay_inside_the_run_call_budget() -> None:
    clock = JumpClock()
    async with FakeProviderServer("openai") as clean, router_to(clean, clock) as router:
        await optimizer("moa").optimize(QUESTION, router)
    room = len(clean.requests)
    plan = FaultPlan(rate=0.5, kinds=("500", "529", "malformed"), seed=11)
    with anyio.fail_after(LIMIT):
        async with FakeProviderServer("openai", faults=plan) as server, router_to(server, clock) as router:
            try:
                solution = await optimizer("moa").optimize(QUESTION, router, budget=Budget(max_calls=room))
            except BudgetExhausted:
                pass
            else:
                assert solution.metadata.budget_exhausted
                assert solution.metadata.llm_calls <= room
    assert server.faults_injected  # the faults asked for retries the budget had no room for
    assert len(server.requests) <= room


# -- a streamed final answer cut mid-answer ------------------------------------------------------


class Rewording:
    """Answers every prompt differently each time it is asked (a model sampling at a high temperature)."""

    def __init__(self) -> None:
        self.asked: Counter[tuple[str, int]] = Counter()

    def __call__(self, chat: dict[str, Any], choice: int) -> str:
        key = (json.dumps(chat.get("messages")), choice)
        self.asked[key] += 1
        return f"Take {self.asked[key]}: six times seven makes forty-two, so the answer is \\boxed{{42}}."


async def final_request_number(reply: Any = None) -> int:
    """The number of MoA's final (streamed) request in a clean observed run."""
    async with FakeProviderServer("openai", reply=reply) as server, router_to(server, JumpClock()) as router:
        await optimizer("moa").optimize(QUESTION, router, events=lambda event: None)
    return next(r.number for r in server.requests if r.stream)


async def test_a_final_stream_cut_mid_answer_resumes_with_the_rest_of_the_same_text() -> None:
    cut_at = await final_request_number()
    events: list[OptimizerEvent] = []
    plan = FaultPlan.sequence(*[None] * cut_at, "cut")
    with anyio.fail_after(LIMIT):
        async with FakeProviderServer("openai", faults=plan) as server, router_to(server, JumpClock()) as router:
            solution = await optimizer("moa").optimize(QUESTION, router, events=events.append)
    deltas = [e.delta for e in events if isinstance(e, AnswerDelta)]
    assert len(deltas) >= 2  # the text before the cut, then the rest from the repeated call
    assert "".join(deltas) == solution.answer
    final = [r for r in server.requests if r.number >= cut_at]
    assert [(r.stream, r.fault) for r in final] == [(True, "cut"), (False, None)]
    assert final[0].chat["messages"] == final[1].chat["messages"]


async def test_the_proxy_streams_the_resumed_answer_and_finishes_normally() -> None:
    cut_at = await final_request_number()
    plan = FaultPlan.sequence(*[None] * cut_at, "cut")
    with anyio.fail_after(LIMIT):
        async with FakeProviderServer("openai", faults=plan) as server, proxy_to(server) as proxy:
            response = await post(proxy.url, "moa-fake-model", stream=True)
    events = data_events(response)
    assert events[-1] == "[DONE]"
    assert not [e for e in events if isinstance(e, dict) and "error" in e]
    assert "boxed{42}" in streamed_text(events)
    assert [e["choices"][0]["finish_reason"] for e in chunks(events) if e["choices"][0]["finish_reason"]] == ["stop"]


async def test_the_proxy_ends_with_an_error_when_the_repeated_answer_differs_from_the_streamed_text() -> None:
    cut_at = await final_request_number(Rewording())
    plan = FaultPlan.sequence(*[None] * cut_at, "cut")
    with anyio.fail_after(LIMIT):
        async with FakeProviderServer("openai", faults=plan, reply=Rewording()) as server, proxy_to(server) as proxy:
            response = await post(proxy.url, "moa-fake-model", stream=True)
    events = data_events(response)
    assert streamed_text(events).startswith("Take 1:")  # the text of the broken stream reached the client
    errors = [e for e in events if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1 and set(errors[0]["error"]) == ERROR_FIELDS
    assert errors[0]["error"]["code"] == "upstream_stream_abandoned"
    assert events[-2:] == [errors[0], "[DONE]"]
    assert not [e for e in chunks(events) if e["choices"][0]["finish_reason"]]  # never a stop on the wrong text


# -- through the proxy ---------------------------------------------------------------------------


class Proxy:
    def __init__(self, url: str, router: ModelClientRouter, clock: JumpClock, forward_clock: JumpClock) -> None:
        self.url = url
        self.router = router
        self.clock = clock
        self.forward_clock = forward_clock


@asynccontextmanager
async def proxy_to(server: FakeProviderServer) -> AsyncIterator[Proxy]:
    """The proxy in front of ``server``: strategies through the router, pass-through forwarded, default retries."""
    clock, forward_clock = JumpClock(), JumpClock()
    async with router_to(server, clock) as router:
        app = create_app(
            client=router,
            model="fake-model",
            upstream=Upstream(server.base_url, "upstream-secret"),
            registry=default_registry(),
            clock=forward_clock,
            upstream_timeout=ATTEMPT_TIMEOUT,
        )
        async with serving(app) as url:
            yield Proxy(url, router, clock, forward_clock)


async def post(proxy_url: str, model: str, *, stream: bool) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "stream": stream}
    async with httpx.AsyncClient(timeout=LIMIT) as http:
        return await http.post(f"{proxy_url}/chat/completions", json=body)


def data_events(response: httpx.Response) -> list[Any]:
    """The ``data:`` payloads of an event stream, parsed ([DONE] kept as the string)."""
    payloads = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def chunks(events: list[Any]) -> list[dict[str, Any]]:
    return [e for e in events if isinstance(e, dict) and e.get("choices")]


def streamed_text(events: list[Any]) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks(events))


TARGETS = ["fake-model", *(f"{name}-fake-model" for name in STRATEGIES)]
"""Pass-through (no prefix) and each installed strategy."""


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", TARGETS)
async def test_every_proxy_request_survives_30_percent_transient_faults(model: str, stream: bool) -> None:
    passthrough = model == "fake-model"
    # A forwarded stream cut mid-answer has reached the client: only a strategy's own final call can recover.
    kinds = RECOVERABLE_STREAM_FAULTS if passthrough and stream else TRANSIENT_FAULTS
    faulted = 0
    # At least three seeds, and more until one draws a fault: a strategy that sends one request
    # (majority_voting's native n) may draw none in three.
    for seed in range(12):
        if seed >= 3 and faulted:
            break
        with anyio.fail_after(LIMIT):
            async with (
                FakeProviderServer("openai", faults=FaultPlan(rate=0.3, kinds=kinds, seed=seed)) as server,
                proxy_to(server) as proxy,
            ):
                response = await post(proxy.url, model, stream=stream)
        faulted += sum(server.faults_injected.values())
        assert response.status_code == 200, response.text
        if stream:
            events = data_events(response)
            assert events[-1] == "[DONE]"
            assert not [e for e in events if isinstance(e, dict) and "error" in e], seed
            text = streamed_text(events)
        else:
            text = response.json()["choices"][0]["message"]["content"]
        assert "boxed{42}" in text, (seed, text)
        sent_again = len(proxy.forward_clock.sleeps) if passthrough else proxy.router.usage.retries
        assert sent_again >= sum(server.faults_injected.values()), seed  # each fault cost a retry
    assert faulted > 0


@pytest.mark.parametrize("kind", list(PERMANENT))
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", TARGETS)
async def test_every_proxy_request_fails_at_once_on_permanent_faults(model: str, stream: bool, kind: FaultKind) -> None:
    status = PERMANENT[kind][1]
    with anyio.fail_after(LIMIT):
        async with (
            FakeProviderServer("openai", faults=FaultPlan(rate=1.0, kinds=(kind,))) as server,
            proxy_to(server) as proxy,
        ):
            response = await post(proxy.url, model, stream=stream)
    if response.headers["content-type"].startswith("application/json"):
        assert response.status_code == status
        error = response.json()["error"]
    else:  # a strategy's stream had begun: the error comes as an event, then [DONE]
        assert stream and model != "fake-model"
        events = data_events(response)
        assert events[-1] == "[DONE]" and "error" in events[-2]
        assert not [e for e in chunks(events) if e["choices"][0]["finish_reason"]]
        error = events[-2]["error"]
    assert set(error) == ERROR_FIELDS
    assert "upstream-secret" not in response.text
    assert proxy.router.usage.retries == 0
    assert proxy.clock.sleeps == proxy.forward_clock.sleeps == []
    if model == "fake-model":
        assert len(server.requests) == 1
    else:  # the first failure ends the run and cancels the calls still in flight; none was sent again
        assert 1 <= proxy.router.usage.failures <= len(server.requests)
