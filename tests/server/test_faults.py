"""The proxy against upstreams that fail the way real providers do: retried when transient, clear when not.

Pass-through forwarding is retried by the proxy itself; pass-through over the model client and
strategy runs are retried by the router. Retry waits run on a virtual clock, and every request is
bounded by ``anyio.fail_after``, so nothing here waits in real time or hangs.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from optillm_core import ModelClient, default_registry
from optillm_core.testing import JumpClock, ScriptedClient
from optillm_router import MAX_RETRIES, UNREACHED_RETRIES, ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeOpenAIServer, Fault
from optillm_server import Upstream, create_app

from .raw_upstream import ANSWER_EVENTS, Step, chunk, raw_upstream, sse
from .support import serving

pytestmark = pytest.mark.anyio

QUESTION = "What is the capital of France?"
ERROR_FIELDS = {"message", "type", "param", "code"}
LIMIT = 30  # seconds any one test may take: far more than it needs, so only a hang reaches it

TRANSIENT = [
    pytest.param(Fault(status=429, headers={"retry-after": "0.2"}), id="429-retry-after"),
    pytest.param(Fault(status=408), id="408"),
    pytest.param(Fault(status=409), id="409"),
    pytest.param(Fault(status=500), id="500"),
    pytest.param(Fault(status=502), id="502"),
    pytest.param(Fault(status=503), id="503"),
    pytest.param(Fault(status=504), id="504"),
    pytest.param(Fault(status=529, body={"type": "error", "error": {"type": "overloaded_error"}}), id="529"),
    pytest.param(Fault(kind="malformed"), id="malformed"),
]
PERMANENT = [(400, 400), (401, 502), (403, 502), (404, 404), (422, 422)]


# -- helpers -------------------------------------------------------------------------------------


@asynccontextmanager
async def forwarding_to(
    base_url: str, *, read_timeout: float = 600.0, **retries: Any
) -> AsyncIterator[tuple[str, JumpClock]]:
    """A proxy that passes requests through to ``base_url``; yields its ``/v1`` URL and its retry clock."""
    clock = JumpClock()
    app = create_app(
        client=ScriptedClient(),
        model="fake-model",
        upstream=Upstream(base_url, "upstream-secret", **retries),
        registry=default_registry(),
        clock=clock,
        upstream_timeout=read_timeout,
    )
    async with serving(app) as proxy_url:
        yield proxy_url, clock


@asynccontextmanager
async def over_router(fake: FakeOpenAIServer, *, max_retries: int = 2) -> AsyncIterator[str]:
    """A proxy whose strategies and pass-through go through the router to ``fake`` (no upstream forwarding)."""
    spec = ProviderSpec("vllm", "fake-model", base_url=fake.base_url)
    # No cooldown here: these tests are about retries, and the router's cooldown rules are tested on their own.
    config = ProviderRoutingConfig(spec, max_retries=max_retries).with_cooldown(failures=100, seconds=1.0)
    router: ModelClient = ModelClientRouter(config, clock=JumpClock())
    async with router:
        app = create_app(client=router, model="fake-model", registry=default_registry())
        async with serving(app) as proxy_url:
            yield proxy_url


async def post(proxy_url: str, model: str, *, stream: bool, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "stream": stream, **extra}
    with anyio.fail_after(LIMIT):
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            return await http.post(f"{proxy_url}/chat/completions", json=body)


def data_events(response: httpx.Response) -> list[Any]:
    """The ``data:`` payloads of an event stream, parsed ([DONE] kept as the string)."""
    payloads = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [p if p == "[DONE]" else json.loads(p) for p in payloads]


def streamed_text(events: list[Any]) -> str:
    return "".join(
        (c["choices"][0]["delta"].get("content") or "") for c in events if isinstance(c, dict) and c.get("choices")
    )


def error_of(response: httpx.Response) -> dict[str, Any]:
    payload = response.json()
    assert set(payload) == {"error"}
    assert set(payload["error"]) == ERROR_FIELDS
    error: dict[str, Any] = payload["error"]
    return error


def assert_complete_stream(response: httpx.Response) -> list[Any]:
    """A successful stream: 200, no error event, ``[DONE]`` last."""
    assert response.status_code == 200, response.text
    events = data_events(response)
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    return events


def assert_error_then_done(response: httpx.Response) -> dict[str, Any]:
    """A stream that failed after it began: 200, then an OpenAI-shaped error event, then ``[DONE]``, then nothing."""
    assert response.status_code == 200
    events = data_events(response)
    assert events[-1] == "[DONE]"
    assert set(events[-2]) == {"error"}
    assert set(events[-2]["error"]) == ERROR_FIELDS
    assert response.text.endswith("data: [DONE]\n\n")
    error: dict[str, Any] = events[-2]["error"]
    return error


# -- pass-through forwarded to the upstream -----------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("fault", TRANSIENT)
async def test_pass_through_retries_transient_faults_and_the_client_never_sees_them(fault: Fault, stream: bool) -> None:
    async with FakeOpenAIServer(faults={0: fault, 1: fault}) as fake, forwarding_to(fake.base_url) as (url, clock):
        response = await post(url, "fake-model", stream=stream, n=2, logprobs=True)
    assert response.status_code == 200, response.text
    if stream:
        assert streamed_text(assert_complete_stream(response)).startswith("Reply 0 to: " + QUESTION)
    else:
        assert [c["message"]["content"][:8] for c in response.json()["choices"]] == ["Reply 0 ", "Reply 1 "]
    requests = fake.chat_requests
    assert len(requests) == 3
    # every attempt sends the same body, with what pass-through supports (n, logprobs) intact
    assert all(r.body == requests[0].body for r in requests)
    assert requests[0].body["n"] == 2
    assert requests[0].body["logprobs"] is True
    assert len(clock.sleeps) == 2
    if fault.headers:
        assert clock.sleeps == [0.2, 0.2]  # the upstream's Retry-After is honoured
    else:
        assert 0.375 <= clock.sleeps[0] <= 0.5 and 0.75 <= clock.sleeps[1] <= 1.0  # backoff with jitter


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_pass_through_gets_the_routers_retries_by_default(stream: bool) -> None:
    assert Upstream("http://127.0.0.1:1/v1").max_retries == MAX_RETRIES
    faults = {i: Fault(status=(500, 503, 529)[i % 3]) for i in range(MAX_RETRIES)}
    async with FakeOpenAIServer(faults=faults) as fake, forwarding_to(fake.base_url) as (url, clock):
        response = await post(url, "fake-model", stream=stream)
    assert response.status_code == 200, response.text
    assert len(fake.chat_requests) == MAX_RETRIES + 1
    assert len(clock.sleeps) == MAX_RETRIES


async def test_an_upstream_that_never_answered_gets_few_retries_of_a_refused_connection() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        async with forwarding_to(f"http://127.0.0.1:{sock.getsockname()[1]}/v1") as (url, clock):
            response = await post(url, "fake-model", stream=False)
    assert response.status_code == 502
    assert "could not reach the upstream server" in error_of(response)["message"]
    assert len(clock.sleeps) == UNREACHED_RETRIES


async def test_an_upstream_that_answered_before_gets_every_retry_when_it_goes_away() -> None:
    fake = FakeOpenAIServer()
    await fake.start()
    try:
        async with forwarding_to(fake.base_url) as (url, clock):
            assert (await post(url, "fake-model", stream=False)).status_code == 200
            await fake.stop()  # a restart, say: its connections are refused now
            response = await post(url, "fake-model", stream=False)
    finally:
        await fake.stop()
    assert response.status_code == 502
    assert len(clock.sleeps) == MAX_RETRIES


async def test_a_body_cut_short_is_retried() -> None:
    async with (
        FakeOpenAIServer(faults={0: Fault(kind="truncate")}) as fake,
        forwarding_to(fake.base_url) as (url, _),
    ):
        response = await post(url, "fake-model", stream=False)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"].startswith("Reply 0")
    assert len(fake.chat_requests) == 2


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_429_reaches_the_client_only_when_the_retries_are_spent(stream: bool) -> None:
    always = Fault(status=429, headers={"retry-after": "1"}, body={"error": {"message": "Rate limit reached"}})
    async with (
        FakeOpenAIServer(faults=lambda index, body: always) as fake,
        forwarding_to(fake.base_url, max_retries=3) as (url, clock),
    ):
        response = await post(url, "fake-model", stream=stream)
    assert response.status_code == 429
    assert error_of(response)["type"] == "rate_limit_error"
    assert "Rate limit reached" in error_of(response)["message"]
    assert response.headers["retry-after"] == "1"
    assert len(fake.chat_requests) == 4
    assert clock.sleeps == [1.0, 1.0, 1.0]


async def test_a_retry_after_beyond_the_cap_fails_at_once_and_says_when() -> None:
    quota = Fault(status=429, headers={"retry-after": "3600"}, body={"error": {"message": "Daily quota exceeded"}})
    async with (
        FakeOpenAIServer(faults=lambda index, body: quota) as fake,
        forwarding_to(fake.base_url) as (url, clock),
    ):
        response = await post(url, "fake-model", stream=False)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3600"
    assert len(fake.chat_requests) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("upstream_status", "status"), PERMANENT)
async def test_permanent_faults_reach_the_client_at_once(upstream_status: int, status: int, stream: bool) -> None:
    fault = Fault(status=upstream_status, body={"error": {"message": f"refused ({upstream_status}) upstream-secret"}})
    async with (
        FakeOpenAIServer(faults=lambda index, body: fault) as fake,
        forwarding_to(fake.base_url) as (url, clock),
    ):
        response = await post(url, "fake-model", stream=stream)
    assert response.status_code == status
    error = error_of(response)
    assert f"refused ({upstream_status})" in error["message"]
    assert "upstream-secret" not in response.text
    assert len(fake.chat_requests) == 1
    assert clock.sleeps == []


async def test_a_stream_cut_after_forwarding_ends_with_an_error_event_and_done() -> None:
    async with (
        FakeOpenAIServer(faults={0: Fault(kind="truncate")}) as fake,
        forwarding_to(fake.base_url) as (url, _),
    ):
        response = await post(url, "fake-model", stream=True)
    error = assert_error_then_done(response)
    assert error["code"] == "upstream_protocol_error"
    assert "incomplete" in error["message"]
    events = data_events(response)
    assert streamed_text(events) == "Reply"  # what was forwarded stays as the upstream sent it
    assert len(fake.chat_requests) == 1  # the client already has part of the answer: no retry


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_connection_reset_before_the_answer_is_retried(stream: bool) -> None:
    answer = Step("stream") if stream else Step("json")
    async with (
        raw_upstream(Step("reset"), Step("reset"), answer) as upstream,
        forwarding_to(upstream.base_url) as (url, clock),
    ):
        response = await post(url, "raw-model", stream=stream, tools=[{"type": "function", "function": {"name": "f"}}])
    assert response.status_code == 200, response.text
    if stream:
        assert response.content == b"".join(ANSWER_EVENTS) + b"data: [DONE]\n\n"  # byte for byte
    else:
        assert response.json()["choices"][0]["message"]["content"] == "Paris."
    assert len(upstream.bodies) == 3
    assert len(set(upstream.bodies)) == 1
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("end", ["reset", "close"])
async def test_a_stream_that_breaks_after_forwarding_ends_with_an_error_event_and_done(end: str) -> None:
    async with (
        raw_upstream(Step("stream", events=ANSWER_EVENTS[:2], end=end)) as upstream,  # type: ignore[arg-type]
        forwarding_to(upstream.base_url) as (url, _),
    ):
        response = await post(url, "raw-model", stream=True)
    assert_error_then_done(response)
    assert response.content.startswith(b"".join(ANSWER_EVENTS[:2]))
    assert len(upstream.bodies) == 1


async def test_a_stream_that_ends_before_any_answer_is_retried() -> None:
    role_only = Step("stream", events=ANSWER_EVENTS[:1], end="close")
    async with (
        raw_upstream(role_only, Step("stream")) as upstream,
        forwarding_to(upstream.base_url) as (url, _),
    ):
        response = await post(url, "raw-model", stream=True)
    assert response.content == b"".join(ANSWER_EVENTS) + b"data: [DONE]\n\n"
    assert len(upstream.bodies) == 2


async def test_an_error_event_before_the_answer_is_retried_and_one_after_it_is_followed_by_done() -> None:
    overloaded = sse({"error": {"message": "Provider overloaded", "code": 503}})
    async with (
        raw_upstream(
            Step("stream", events=(overloaded,), end="close"),
            Step("stream", events=(*ANSWER_EVENTS[:2], overloaded), end="close"),
        ) as upstream,
        forwarding_to(upstream.base_url) as (url, _),
    ):
        response = await post(url, "raw-model", stream=True)
    assert len(upstream.bodies) == 2
    events = data_events(response)
    assert events[-1] == "[DONE]"
    assert events[-2] == {"error": {"message": "Provider overloaded", "code": 503}}  # the upstream's own, once
    assert sum(isinstance(e, dict) and "error" in e for e in events) == 1


async def test_a_malformed_event_after_forwarding_is_not_relayed() -> None:
    broken = Step("stream", events=(*ANSWER_EVENTS[:2], b"data: {not json\n\n", ANSWER_EVENTS[2]))
    async with raw_upstream(broken) as upstream, forwarding_to(upstream.base_url) as (url, _):
        response = await post(url, "raw-model", stream=True)
    assert_error_then_done(response)
    assert b"not json" not in response.content


async def test_a_hung_upstream_times_out_and_is_retried() -> None:
    async with (
        raw_upstream(Step("hang"), Step("json")) as upstream,
        forwarding_to(upstream.base_url, read_timeout=0.2) as (url, _),
    ):
        response = await post(url, "raw-model", stream=False)
    assert response.status_code == 200
    assert len(upstream.bodies) == 2


async def test_a_hung_upstream_is_a_504_once_the_retries_are_spent() -> None:
    async with (
        raw_upstream(Step("hang")) as upstream,
        forwarding_to(upstream.base_url, read_timeout=0.2, max_retries=1) as (url, _),
    ):
        response = await post(url, "raw-model", stream=True)
    assert response.status_code == 504
    assert error_of(response)["code"] == "upstream_timeout"
    assert len(upstream.bodies) == 2


async def test_streamed_tool_calls_survive_a_retry_unchanged() -> None:
    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    events = (
        sse(chunk({"role": "assistant", "tool_calls": [call]})),
        sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": "Paris"}'}}]})),
        sse(chunk({}, "tool_calls")),
    )
    async with (
        raw_upstream(Step("stream", events=(), end="close"), Step("stream", events=events)) as upstream,
        forwarding_to(upstream.base_url) as (url, _),
    ):
        response = await post(url, "raw-model", stream=True)
    assert response.content == b"".join(events) + b"data: [DONE]\n\n"


# -- pass-through over the model client (the router retries) ------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_pass_through_over_the_router_retries_transient_faults(stream: bool) -> None:
    faults = {0: Fault(status=429, headers={"retry-after": "0.2"}), 1: Fault(status=500)}
    async with FakeOpenAIServer(faults=faults) as fake, over_router(fake) as url:
        response = await post(url, "fake-model", stream=stream)
    assert response.status_code == 200, response.text
    if stream:
        assert streamed_text(assert_complete_stream(response)).startswith("Reply 0 to: " + QUESTION)
    else:
        assert response.json()["choices"][0]["message"]["content"].startswith("Reply 0 to: " + QUESTION)
    assert len(fake.chat_requests) == 3


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_pass_through_over_the_router_fails_at_once_on_a_permanent_fault(stream: bool) -> None:
    fault = Fault(status=404, body={"error": {"message": "The model does not exist"}})
    async with FakeOpenAIServer(faults=lambda index, body: fault) as fake, over_router(fake) as url:
        response = await post(url, "fake-model", stream=stream)
    assert response.status_code == 404  # as forwarding answers it
    assert error_of(response)["code"] == "upstream_not_found"
    assert len(fake.chat_requests) == 1


async def test_pass_through_over_the_router_ends_a_cut_stream_with_an_error_event_and_done() -> None:
    async with FakeOpenAIServer(faults={0: Fault(kind="truncate")}) as fake, over_router(fake) as url:
        response = await post(url, "fake-model", stream=True)
    assert_error_then_done(response)
    assert streamed_text(data_events(response)) == "Reply"


# -- strategy runs -------------------------------------------------------------------------------

STRATEGIES = [s for s in ("moa", "mcts") if s in default_registry().names()]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_strategy_runs_survive_transient_faults(strategy: str, stream: bool) -> None:
    faults = {0: Fault(status=429, headers={"retry-after": "0.2"}), 1: Fault(status=503)}
    async with FakeOpenAIServer(faults=faults) as fake, over_router(fake) as url:
        response = await post(url, f"{strategy}-fake-model", stream=stream, max_tokens=200)
    if stream:
        assert "The answer is" in streamed_text(assert_complete_stream(response))
    else:
        assert response.status_code == 200, response.text
        assert "The answer is" in response.json()["choices"][0]["message"]["content"]
    assert [r.status for r in fake.chat_requests[:2]] == [429, 503]


def fail_after_first(status: int, **fault: Any) -> Any:
    """The first call (the strategy's first samples) succeeds; every later call fails with ``status``."""
    failure = Fault(status=status, **fault)
    return lambda index, body: None if index == 0 else failure


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(
    ("upstream_status", "status", "code"),
    [(400, 400, "upstream_bad_request"), (503, 503, "upstream_unavailable"), (429, 429, "rate_limit_exceeded")],
)
async def test_a_strategy_run_that_loses_an_essential_call_ends_with_a_clear_error(
    strategy: str, stream: bool, upstream_status: int, status: int, code: str
) -> None:
    faults = fail_after_first(upstream_status, headers={"retry-after": "0"} if upstream_status == 429 else {})
    async with FakeOpenAIServer(faults=faults) as fake, over_router(fake, max_retries=1) as url:
        response = await post(url, f"{strategy}-fake-model", stream=stream, max_tokens=200)
    error = assert_error_then_done(response) if stream else error_of(response)
    if not stream:
        assert response.status_code == status
    assert error["code"] == code
    failed = [r for r in fake.chat_requests if r.status == upstream_status]
    assert failed
    if upstream_status == 400:
        # a permanent fault is never retried: no request was sent twice
        assert len({json.dumps(r.body, sort_keys=True) for r in failed}) == len(failed)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_strategy_that_gives_up_because_every_call_failed_reports_the_upstream_failure(stream: bool) -> None:
    if "mars" not in default_registry().names():
        pytest.skip("optillm-mars is not installed")
    always = Fault(status=429, headers={"retry-after": "0"}, body={"error": {"message": "Rate limit reached"}})
    async with FakeOpenAIServer(faults=lambda index, body: always) as fake, over_router(fake, max_retries=1) as url:
        response = await post(url, "mars-fake-model", stream=stream, max_tokens=200)
    error = assert_error_then_done(response) if stream else error_of(response)
    if not stream:
        assert response.status_code == 429  # not a 500 "strategy failed": the upstream refused every call
    assert error["code"] == "rate_limit_exceeded"
    assert "Rate limit reached" in error["message"]
