"""The fault-injecting fake providers, and what each provider client makes of every fault.

Each wire format's client must turn a fault into the error class the retry policy expects:
transient faults into retryable errors, permanent ones into errors that are never retried.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import anyio
import pytest

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    ClientError,
    GenerationSettings,
    InvalidConfiguration,
    ModelClient,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    collect_stream,
)
from optillm_router import FewerChoices, HttpPool, create_provider_client, should_retry
from optillm_router.testing import (
    PERMANENT_FAULTS,
    RECOVERABLE_STREAM_FAULTS,
    TRANSIENT_FAULTS,
    FakeProviderServer,
    FaultKind,
    FaultPlan,
    HttpWireFormat,
)

pytestmark = pytest.mark.anyio

WIRES: tuple[HttpWireFormat, ...] = ("openai", "anthropic", "gemini", "ollama")
PROMPT = Prompt.from_query("What is 6 times 7?", system="Answer briefly.")
TIMEOUT = 0.5
"""Seconds the clients wait for a hung server."""

EXPECTED: dict[FaultKind, tuple[type[ClientError], str]] = {
    "429": (RateLimitError, "HTTP 429"),
    "500": (ProviderUnavailable, "HTTP 500"),
    "502": (ProviderUnavailable, "502 Bad Gateway"),
    "503": (ProviderUnavailable, "HTTP 503"),
    "529": (ProviderUnavailable, "HTTP 529"),
    "malformed": (ProtocolError, "malformed JSON"),
    "truncated": (ProtocolError, "malformed JSON|stream ended before"),
    "cut": (ProtocolError, "cut its answer short"),
    "reset": (ProviderUnavailable, "dropped the connection"),
    "hang": (ProviderTimeout, r"did not answer within 0\.5 s|timed out"),  # plain: the whole request; stream: a read
    "400": (BadRequestError, "HTTP 400"),
    "401": (AuthenticationError, "HTTP 401"),
    "403": (AuthenticationError, "HTTP 403"),
    "404": (BadRequestError, "HTTP 404"),
    "413": (BadRequestError, "HTTP 413"),
    "422": (BadRequestError, "HTTP 422"),
}


def _client(server: FakeProviderServer, http: HttpPool) -> ModelClient:
    return create_provider_client(
        server.provider, model=server.model, api_key=None, base_url=server.base_url, http=http, timeout=TIMEOUT
    )


async def _call(client: ModelClient, *, stream: bool, seen: list[Any], n: int = 1) -> None:
    if not stream:
        await client.request(PROMPT, GenerationSettings(n=n))
        return
    async for event in client.request_stream(PROMPT, GenerationSettings(n=n)):
        seen.append(event)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("kind", [*TRANSIENT_FAULTS, *PERMANENT_FAULTS])
@pytest.mark.parametrize("wire", WIRES)
async def test_every_fault_becomes_the_error_its_retry_rule_expects(
    wire: HttpWireFormat, kind: FaultKind, stream: bool
) -> None:
    error_class, detail = EXPECTED[kind]
    seen: list[Any] = []
    async with FakeProviderServer(wire, faults=FaultPlan.sequence(kind)) as server, HttpPool() as http:
        client = _client(server, http)
        with anyio.fail_after(10), pytest.raises(error_class, match=detail) as info:
            await _call(client, stream=stream, seen=seen)
        assert server.requests[0].fault == kind
        assert server.faults_injected[kind] == 1
    assert should_retry(info.value) is (kind in TRANSIENT_FAULTS)
    if kind == "429":
        assert info.value.retry_after == pytest.approx(0.2)
    text = [e for e in seen if isinstance(e, OutputTextDelta)]
    # Only a stream cut mid-answer has delivered text before failing; every other fault strikes first.
    assert bool(text) is (stream and kind == "cut")


@pytest.mark.parametrize("wire", WIRES)
async def test_each_format_answers_plain_and_streamed_in_its_own_shape(wire: HttpWireFormat) -> None:
    async with FakeProviderServer(wire, latency=0.001) as server, HttpPool() as http:
        client = _client(server, http)
        plain = await client.request(PROMPT, GenerationSettings(max_tokens=50, temperature=0.3))
        async with client.stream(PROMPT, GenerationSettings(max_tokens=50)) as events:
            streamed = await collect_stream(events)
    expected = "Reply 0 to: What is 6 times 7?. The answer is \\boxed{42}."
    assert plain.text == streamed.text == expected
    assert plain.usage.output_tokens == streamed.usage.output_tokens == len(expected.split())
    assert plain.finish_reasons == streamed.finish_reasons == ("stop",)
    first, second = server.requests
    assert (first.stream, second.stream) == (False, True)
    assert first.chat["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 6 times 7?"},
    ]
    assert first.chat["temperature"] == 0.3
    assert first.chat["max_tokens"] == 50
    assert first.user_text == "What is 6 times 7?"


async def test_a_server_that_ignores_n_returns_fewer_choices() -> None:
    async with FakeProviderServer("gemini", max_choices=1) as server, HttpPool() as http:
        client = _client(server, http)
        with pytest.raises(ProtocolError, match="1 candidate\\(s\\) for candidateCount=3") as info:
            await client.request(PROMPT, GenerationSettings(n=3))
    assert not should_retry(info.value)
    assert server.requests[0].body["generationConfig"]["candidateCount"] == 3


@pytest.mark.parametrize("wire", ["gemini", "openai"])
async def test_a_stream_that_ignores_n_ends_naming_the_missing_choices(wire: HttpWireFormat) -> None:
    seen: list[Any] = []
    async with FakeProviderServer(wire, max_choices=1) as server, HttpPool() as http:
        spec = server.spec()
        client = create_provider_client(
            spec.provider,
            model=spec.model,
            api_key=None,
            base_url=spec.base_url,
            http=http,
            profile=spec.model_profile(),
        )
        with pytest.raises(FewerChoices) as info:
            await _call(client, stream=True, seen=seen, n=3)
    assert all(isinstance(event, OutputTextDelta) and event.index == 0 for event in seen)
    assert "".join(event.delta for event in seen).startswith("Reply 0 to: What is 6 times 7?")
    assert info.value.missing == (1, 2)
    assert info.value.completion.finish_reasons[0] == "stop"
    assert info.value.completion.usage.output_tokens > 0
    assert not should_retry(info.value)


async def test_a_server_without_native_n_refuses_it() -> None:
    async with FakeProviderServer("openai", native_n=False) as server:
        async with HttpPool() as http:
            client = create_provider_client(
                "custom", model="fake-model", api_key=None, base_url=server.base_url, http=http, timeout=TIMEOUT
            )
            with pytest.raises(BadRequestError):  # the custom provider has no native n: refused locally
                await client.request(PROMPT, GenerationSettings(n=2))
        assert server.requests == []
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}).encode()
        request = urllib.request.Request(server.base_url + "/chat/completions", data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            await anyio.to_thread.run_sync(urllib.request.urlopen, request)
        assert info.value.code == 400
        info.value.close()


async def test_the_key_is_checked_in_each_formats_header() -> None:
    for wire in WIRES:
        async with FakeProviderServer(wire, api_key="sk-fake-key-0123") as server, HttpPool() as http:
            good = create_provider_client(
                server.provider, model="fake-model", api_key="sk-fake-key-0123", base_url=server.base_url, http=http
            )
            assert (await good.request(PROMPT, GenerationSettings())).text
            with pytest.raises(AuthenticationError):
                await _client(server, http).request(PROMPT, GenerationSettings())


# -- the plan ---------------------------------------------------------------------------------------


def test_a_plan_is_reproducible_and_independent_of_arrival_order() -> None:
    plan = FaultPlan(rate=0.3, seed=11)
    bodies = [f"request {i}" for i in range(2000)]
    forward = [plan.decide(i, body, 0) for i, body in enumerate(bodies)]
    backward = [plan.decide(len(bodies) - 1 - i, body, 0) for i, body in reversed(list(enumerate(bodies)))]
    assert forward == list(reversed(backward))
    share = sum(kind is not None for kind in forward) / len(forward)
    assert 0.27 < share < 0.33
    assert set(forward) - {None} == set(TRANSIENT_FAULTS)
    assert [plan.decide(0, "same", n) for n in range(40)] != [plan.decide(0, "same", 0)] * 40
    other_seed = FaultPlan(rate=0.3, seed=12)
    assert forward != [other_seed.decide(i, body, 0) for i, body in enumerate(bodies)]


def test_a_script_overrides_the_rate() -> None:
    plan = FaultPlan.sequence("500", None, "cut", rate=1.0, kinds=("429",))
    assert [plan.decide(n, "x", n) for n in range(5)] == ["500", None, "cut", "429", "429"]
    assert FaultPlan().decide(0, "x", 0) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rate": 1.5}, "rate must be between 0 and 1"),
        ({"kinds": ()}, "kinds is empty"),
        ({"kinds": ("418",)}, "unknown fault kinds \\['418'\\]"),
        ({"script": {0: "teapot"}}, "unknown fault kinds"),
        ({"retry_after": -1.0}, "must not be negative"),
    ],
)
def test_a_bad_plan_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfiguration, match=message):
        FaultPlan(**options)


def test_the_fault_groups() -> None:
    assert "cut" not in RECOVERABLE_STREAM_FAULTS
    assert set(RECOVERABLE_STREAM_FAULTS) | {"cut"} == set(TRANSIENT_FAULTS)
    assert not set(TRANSIENT_FAULTS) & set(PERMANENT_FAULTS)
    with pytest.raises(InvalidConfiguration, match="unknown wire format"):
        FakeProviderServer("grpc")  # type: ignore[arg-type]


def test_it_serves_from_a_thread_for_sync_callers() -> None:
    with (
        FakeProviderServer("openai").running_in_thread() as server,
        urllib.request.urlopen(server.base_url + "/models", timeout=5) as response,
    ):
        assert json.loads(response.read())["data"][0]["id"] == "fake-model"
    with FakeProviderServer("ollama").running_in_thread() as server:
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False}).encode()
        request = urllib.request.Request(server.root_url + "/api/chat", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
    assert answer["done"] is True
    assert answer["message"]["content"].startswith("Reply 0 to: hi")
