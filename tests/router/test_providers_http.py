"""Error mapping of HTTP answers and transport failures, retry-after parsing, and the pool."""

from __future__ import annotations

import json
import socket
import time
from email.utils import formatdate

import anyio
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
)
from optillm_router._http import (
    HttpPool,
    error_from_response,
    error_message_from_body,
    parse_retry_after,
    transport_errors,
)

from .fakes_wire import STATUS_ERRORS

pytestmark = pytest.mark.anyio


def test_retry_after_header_forms() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "0.25"}) == 0.25
    date = formatdate(time.time() + 30, usegmt=True)
    delay = parse_retry_after({"retry-after": date})
    assert delay is not None
    assert 25 <= delay <= 30
    assert parse_retry_after({"retry-after": formatdate(time.time() - 30, usegmt=True)}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({"retry-after": "-3"}) is None
    assert parse_retry_after({}) is None


def test_gemini_retry_info_in_body() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Quota exceeded",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure"},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "23s"},
            ],
        }
    }
    assert parse_retry_after({}, json.dumps(body).encode()) == 23.0
    assert parse_retry_after({"retry-after": "2"}, json.dumps(body).encode()) == 2.0


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_retry_after_seconds_round_trip(value: float) -> None:
    assert parse_retry_after({"retry-after": repr(value)}) == value


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"message": "bad model", "type": "invalid_request_error"}}', "bad model (invalid_request_error)"),
        (
            b'{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}',
            "Overloaded (overloaded_error)",
        ),
        (b'{"error": {"code": 400, "message": "bad arg", "status": "INVALID_ARGUMENT"}}', "bad arg (INVALID_ARGUMENT)"),
        (b'{"error": "model \\"x\\" not found"}', 'model "x" not found'),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b"", "(empty body)"),
    ],
)
def test_error_messages_of_each_shape(body: bytes, message: str) -> None:
    assert error_message_from_body(body) == message


@pytest.mark.parametrize(("status", "cls"), STATUS_ERRORS)
def test_status_mapping(status: int, cls: type[Exception]) -> None:
    key = "sk-secret-123"
    body = json.dumps({"error": {"message": f"Incorrect API key provided: {key}"}}).encode()
    error = error_from_response("openai", status, {"retry-after": "3"}, body, model="gpt-x", secrets=(key,))
    assert type(error) is cls
    assert error.status_code == status
    assert error.provider == "openai"
    assert error.retry_after == 3.0
    assert "openai (gpt-x) answered HTTP" in str(error)
    assert key not in str(error)
    assert key not in repr(error)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_connection_refused_is_provider_unavailable() -> None:
    async with HttpPool() as pool:
        client = pool.client(f"http://127.0.0.1:{_closed_port()}")
        with pytest.raises(ProviderUnavailable, match="could not reach vllm"), transport_errors("vllm"):
            await client.get("/v1/models", timeout=httpx.Timeout(5.0, pool=None))


def test_transport_error_classes() -> None:
    with pytest.raises(ProviderTimeout), transport_errors("x"):
        raise httpx.ReadTimeout("read timed out")
    with pytest.raises(ProtocolError), transport_errors("x"):
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
    with pytest.raises(ProtocolError), transport_errors("x"):
        json.loads("{not json")
    with pytest.raises(ProviderUnavailable), transport_errors("x"):
        raise ConnectionResetError("reset")


async def test_pool_shares_one_client_per_base_url() -> None:
    pool = HttpPool()
    assert pool.session("http://127.0.0.1:1/v1") is pool.session("http://127.0.0.1:1/v1/")
    assert pool.session("http://127.0.0.1:1/v1") is not pool.session("http://127.0.0.1:2/v1")
    assert pool.client("http://127.0.0.1:1/v1") is pool.client("http://127.0.0.1:1/v1/")
    assert pool.client("http://127.0.0.1:1/v1") is not pool.client("http://127.0.0.1:2/v1")
    assert repr(pool) == "HttpPool(base_urls=['http://127.0.0.1:1/v1', 'http://127.0.0.1:2/v1'])"
    session = pool.session("http://127.0.0.1:1/v1")
    await pool.aclose()
    assert session.closed
    assert repr(pool) == "HttpPool(base_urls=[])"


async def test_httpx_client_and_provider_calls_share_connections() -> None:
    """The httpx view of a base URL (used by the proxy's pass-through) runs on the providers' aiohttp session."""
    from optillm_core import Prompt
    from optillm_router._providers import create_provider_client
    from optillm_router.testing import FakeOpenAIServer

    async with FakeOpenAIServer(reply=lambda body, choice: "ok") as server, HttpPool() as http:
        provider = create_provider_client("vllm", model="m", api_key=None, base_url=server.base_url, http=http)
        assert (await provider.complete(Prompt.from_query("hi"))).text == "ok"
        response = await http.client(server.base_url).post("/chat/completions", json={"model": "m", "messages": []})
        assert response.status_code == 200
    first, second = server.requests
    assert first.client_port is not None
    assert second.client_port == first.client_port


async def test_a_finished_stream_returns_its_connection_and_an_abandoned_one_closes_it() -> None:
    from optillm_core import Prompt
    from optillm_router._providers import create_provider_client
    from optillm_router.testing import FakeOpenAIServer

    server = FakeOpenAIServer(reply=lambda body, choice: "one two three four", token_latency=0.02)
    async with server, HttpPool() as http:
        provider = create_provider_client("vllm", model="m", api_key=None, base_url=server.base_url, http=http)
        prompt = Prompt.from_query("hi")
        async with provider.stream(prompt) as events:
            async for _ in events:
                pass
        async with provider.stream(prompt) as events:
            async for _ in events:
                break
        await provider.complete(prompt)
    finished, abandoned, after = (r.client_port for r in server.requests)
    assert abandoned == finished  # the finished stream's connection was reused
    assert after != abandoned  # the abandoned stream's connection was dropped, not reused mid-answer


async def test_pool_runs_hundreds_of_calls_at_once() -> None:
    """More calls in flight than httpx's default pool (100) allows: each reply waits until all have arrived."""
    from optillm_core import GenerationSettings, Prompt
    from optillm_router._providers import create_provider_client
    from optillm_router.testing import FakeOpenAIServer

    calls = 300
    everyone_in = anyio.Event()
    server: FakeOpenAIServer

    async def reply(body: dict[str, object], choice: int) -> str:
        if server.in_flight >= calls:
            everyone_in.set()
        await everyone_in.wait()
        return "ok"

    server = FakeOpenAIServer(reply=reply)
    async with server, HttpPool() as http:
        client = create_provider_client("vllm", model="m", api_key=None, base_url=server.base_url, http=http)
        results: list[str] = []

        async def one() -> None:
            results.append((await client.complete(Prompt.from_query("hi"), GenerationSettings())).text)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for _ in range(calls):
                    tg.start_soon(one)
    assert results == ["ok"] * calls
    assert server.max_in_flight == calls
