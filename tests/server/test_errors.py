"""Every error status in OpenAI's shape, API keys, and secrets kept out of responses and logs."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from structlog.testing import capture_logs

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    ClientError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
)
from optillm_core.testing import FunctionClient, ScriptedClient
from optillm_router.testing import FakeOpenAIServer, Fault
from optillm_server import Upstream

from .support import proxy, replying

pytestmark = pytest.mark.anyio

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Q"}]
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
ERROR_FIELDS = {"message", "type", "param", "code"}


async def _post(sdk: openai.AsyncOpenAI, content: bytes | None = None, **json_body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {sdk.api_key}", "content-type": "application/json"}
    async with httpx.AsyncClient() as http:
        if content is not None:
            return await http.post(f"{sdk.base_url}chat/completions", content=content, headers=headers)
        return await http.post(f"{sdk.base_url}chat/completions", json=json_body, headers=headers)


def _error(response: httpx.Response) -> dict[str, Any]:
    payload = response.json()
    assert set(payload) == {"error"}
    assert set(payload["error"]) == ERROR_FIELDS
    error: dict[str, Any] = payload["error"]
    return error


@pytest.mark.parametrize(
    ("content", "body", "param"),
    [
        (b"{not json", None, None),
        (b"[1, 2]", None, None),
        (None, {"messages": USER}, "model"),
        (None, {"model": "m"}, "model_or_messages"),
        (None, {"model": "echo-m", "messages": USER, "n": 0}, "n"),
        (None, {"model": "echo-m", "messages": USER, "temperature": 5}, "temperature"),
        (None, {"model": "echo-m", "messages": [{"role": "assistant", "content": "hi"}]}, "messages"),
        (None, {"model": "echo-m", "messages": [{"role": "function", "content": "x"}]}, "messages.0.role"),
        (None, {"model": "echo-m", "messages": [{"role": "tool", "content": "x"}]}, "messages.0.tool_call_id"),
        (
            None,
            {"model": "echo-m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages.0.content",
        ),
        (None, {"model": "echo-m", "messages": USER, "response_format": {"type": "json_object"}}, "response_format"),
        (None, {"model": "echo-m", "messages": USER, "logprobs": True}, "logprobs"),
        (None, {"model": "echo-m", "messages": USER, "optillm_approach": 3}, "optillm_approach"),
    ],
)
async def test_malformed_requests_are_400_naming_the_field(
    content: bytes | None, body: dict[str, Any] | None, param: str | None
) -> None:
    client = FunctionClient(replying)
    async with proxy(client) as sdk:
        response = await _post(sdk, content, **(body or {}))
    assert response.status_code == 400
    error = _error(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == ("messages" if param == "model_or_messages" else param)
    assert client.requests == []


@pytest.mark.parametrize(
    ("extra", "model", "param"),
    [
        ({"optillm_approach": "nope"}, "m", "optillm_approach"),
        ({}, "echo&nope-m", "model"),
        ({}, "echo&shout|echo-m", "model"),
        ({"optillm_approach": "echo"}, "shout-m", "optillm_approach"),
    ],
)
async def test_unknown_or_ambiguous_strategies_are_400(extra: dict[str, Any], model: str, param: str) -> None:
    async with proxy(FunctionClient(replying)) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(model=model, messages=USER, extra_body=extra)
    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == param


@pytest.mark.parametrize(
    ("config", "model", "param", "fragment"),
    [
        ({"drafts": 0}, "echo-m", "optillm_config", "drafts"),
        ({"nonsense": 1}, "echo-m", "optillm_config", "unknown field 'nonsense'"),
        ({"echo": {"drafts": "many"}}, "echo|shout-m", "optillm_config.echo", "drafts"),
        ({"mars": {}}, "echo|shout-m", "optillm_config", "expected one of"),
    ],
)
async def test_bad_strategy_config_is_400_naming_the_field(
    config: dict[str, Any], model: str, param: str, fragment: str
) -> None:
    client = FunctionClient(replying)
    async with proxy(client) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(model=model, messages=USER, extra_body={"optillm_config": config})
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["param"] == param
    assert fragment in caught.value.body["message"]
    assert client.requests == []


async def test_a_model_the_proxy_does_not_serve_is_400() -> None:
    async with proxy(FunctionClient(replying)) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(model="echo-gpt-4o", messages=USER)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("failure", "status", "sdk_error"),
    [
        (RateLimitError("slow down", status_code=429, retry_after=7), 429, openai.RateLimitError),
        (ProviderUnavailable("overloaded", status_code=529), 503, openai.InternalServerError),
        (ProviderUnavailable("bad gateway", status_code=500), 502, openai.InternalServerError),
        (ProviderUnavailable("connection refused"), 502, openai.InternalServerError),
        (ProviderTimeout("read timed out"), 504, openai.InternalServerError),
        (AuthenticationError("Incorrect API key provided: sk-live-abcdefghijklmnop", status_code=401), 502, None),
        (BadRequestError("context too long", status_code=400), 400, openai.BadRequestError),
    ],
)
async def test_upstream_failures_in_strategy_runs_map_to_statuses(
    failure: ClientError, status: int, sdk_error: type[openai.APIStatusError] | None
) -> None:
    def fail(*_: object) -> str:
        raise failure

    async with proxy(FunctionClient(fail)) as sdk:
        with pytest.raises(openai.APIStatusError) as caught:
            await sdk.chat.completions.create(model="shout-m", messages=USER)
    assert caught.value.status_code == status
    if sdk_error is not None:
        assert isinstance(caught.value, sdk_error)
    assert "sk-live" not in caught.value.message
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        (Fault(status=429, headers={"retry-after": "3"}), 429),
        (Fault(status=500), 502),
        (Fault(status=503), 503),
        (Fault(status=504), 504),
        (Fault(status=401, body={"error": {"message": "Incorrect API key provided: upstream-secret"}}), 502),
        (Fault(status=404, body={"error": {"message": "no such model", "type": "x", "code": "model_not_found"}}), 404),
    ],
)
async def test_upstream_failures_in_pass_through_map_to_statuses(fault: Fault, status: int) -> None:
    """What the client gets once a failure is final (here at once: no retries)."""
    async with (
        FakeOpenAIServer(faults={0: fault}) as fake,
        proxy(
            ScriptedClient(), model="fake-model", upstream=Upstream(fake.base_url, "upstream-secret", max_retries=0)
        ) as sdk,
    ):
        with capture_logs() as logs:
            response = await _post(sdk, model="fake-model", messages=USER)
    assert response.status_code == status
    error = _error(response)
    assert "upstream-secret" not in response.text
    assert "upstream-secret" not in repr(logs)
    if status == 404:
        assert error["code"] == "model_not_found"
    if status == 429:
        assert response.headers["retry-after"] == "3"


@pytest.mark.parametrize("stream", [False, True])
async def test_pass_through_over_the_client_keeps_the_failure_status(stream: bool) -> None:
    def fail(*_: object) -> str:
        raise RateLimitError("slow down", status_code=429, retry_after=2)

    async with proxy(FunctionClient(fail)) as sdk:
        response = await _post(sdk, model="m", messages=USER, stream=stream)
    assert response.status_code == 429
    assert _error(response)["code"] == "rate_limit_exceeded"
    assert response.headers["retry-after"] == "2"


async def test_an_unreachable_upstream_is_502() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        async with proxy(ScriptedClient(), upstream=Upstream(f"http://127.0.0.1:{port}/v1")) as sdk:
            response = await _post(sdk, model="m", messages=USER)
            models = await sdk.models.list()
    assert response.status_code == 502
    assert _error(response)["code"] == "upstream_error"
    assert "echo-m" in [m.id for m in models.data]  # the strategies stay listed


async def test_unexpected_errors_are_500_without_details_or_traceback() -> None:
    async with proxy(FunctionClient(replying)) as sdk:
        with capture_logs() as logs:
            response = await _post(sdk, model="broken-m", messages=USER)
    assert response.status_code == 500
    assert _error(response)["message"] == "internal server error"
    assert "sk-abcdefghij" not in response.text
    assert "sk-abcdefghij" not in repr(logs)
    assert any(entry.get("error_type") == "RuntimeError" for entry in logs)
    assert not any("exc_info" in entry or "exception" in entry for entry in logs)


async def test_unknown_paths_and_methods_answer_in_openai_shape() -> None:
    async with proxy(FunctionClient(replying)) as sdk, httpx.AsyncClient() as http:
        missing = await http.get(f"{sdk.base_url}nowhere")
        wrong_method = await http.get(f"{sdk.base_url}chat/completions")
    assert missing.status_code == 404
    assert _error(missing)["type"] == "not_found_error"
    assert wrong_method.status_code == 405
    assert set(_error(wrong_method)) == ERROR_FIELDS


async def test_require_key_demands_the_bearer_key_except_on_health() -> None:
    async with proxy(FunctionClient(replying), require_key="proxy-key") as sdk:
        answer = await sdk.chat.completions.create(model="shout-m", messages=USER)
        wrong = sdk.with_options(api_key="wrong-key")
        with pytest.raises(openai.AuthenticationError) as caught:
            await wrong.chat.completions.create(model="shout-m", messages=USER)
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.list()
        async with httpx.AsyncClient() as http:
            missing = await http.post(f"{sdk.base_url}chat/completions", json={"model": "m", "messages": USER})
            health = await http.get(str(sdk.base_url).replace("/v1/", "/health"))
    assert answer.choices[0].message.content == "REPLY TO SHOUT: Q"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["code"] == "invalid_api_key"
    assert missing.status_code == 401
    assert _error(missing)["code"] == "invalid_api_key"
    assert health.status_code == 200


async def test_without_require_key_any_or_no_key_is_accepted() -> None:
    async with proxy(FunctionClient(replying)) as sdk, httpx.AsyncClient() as http:
        response = await http.post(f"{sdk.base_url}chat/completions", json={"model": "shout-m", "messages": USER})
    assert response.status_code == 200


def test_upstream_repr_hides_the_key() -> None:
    upstream = Upstream("http://127.0.0.1:1/v1/", api_key="sk-very-secret-key-123")
    assert "sk-very-secret" not in repr(upstream)
    assert upstream.base_url == "http://127.0.0.1:1/v1"
    with pytest.raises(ValueError, match="http"):
        Upstream("127.0.0.1:1/v1")
