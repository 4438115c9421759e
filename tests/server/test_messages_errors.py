"""Messages errors in Anthropic's shape and statuses, seen through the SDK's exception classes; the proxy's key."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest
from anthropic.types import Message as SdkMessage
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    BadRequestError,
    GenerationSettings,
    Prompt,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
)
from optillm_core.testing import FunctionClient
from optillm_server import create_app
from optillm_server._anthropic_wire import anthropic_error
from optillm_server._errors import ApiError

from .messages_support import USER, blocks, messages_proxy, raw_proxy, sdk_for, sse_events
from .support import replying, serving, test_registry

pytestmark = pytest.mark.anyio


def error_body(exc: anthropic.APIStatusError) -> dict[str, Any]:
    assert isinstance(exc.body, dict)
    assert set(exc.body) == {"type", "error"}
    assert exc.body["type"] == "error"
    error = exc.body["error"]
    assert isinstance(error, dict)
    assert set(error) == {"type", "message"}
    return error


async def test_a_request_without_max_tokens_is_a_400_as_anthropic_requires() -> None:
    model = FunctionClient(replying)
    async with messages_proxy(model) as sdk:
        with pytest.raises(anthropic.BadRequestError) as raised:
            await sdk.post("/v1/messages", cast_to=SdkMessage, body={"model": "m", "messages": USER})
    error = error_body(raised.value)
    assert error["type"] == "invalid_request_error"
    assert "max_tokens" in error["message"]
    assert model.requests == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"model": "m", "max_tokens": 10, "messages": []}, "messages"),
        ({"model": "m", "max_tokens": 0, "messages": USER}, "max_tokens"),
        ({"model": "m", "max_tokens": 10, "messages": USER, "temperature": 1.5}, "temperature"),
        ({"model": "m", "max_tokens": 10, "messages": [{"role": "system", "content": "x"}]}, "role"),
        ({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "image"}]}]}, "image"),
        ({"model": "m", "max_tokens": 10, "messages": USER, "system": [{"type": "image"}]}, "system"),
        ({"model": "m", "max_tokens": 10, "messages": USER, "tools": [{"type": "web_search_20250305"}]}, "server tool"),
        (
            {
                "model": "m",
                "max_tokens": 1024,
                "messages": USER,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            "budget_tokens",
        ),
        ({"model": "nope-m", "max_tokens": 10, "messages": USER, "optillm_approach": "nope"}, "unknown strategy"),
        ({"model": "echo-m", "max_tokens": 10, "messages": USER, "optillm_config": {"drafts": 99}}, "drafts"),
        ({"model": "echo-m", "max_tokens": 10, "messages": [{"role": "assistant", "content": "A"}]}, "from the user"),
        ({"model": "echo|shout-m", "max_tokens": 10, "messages": USER}, "one answer each"),
        ({"model": "m", "max_tokens": 10, "messages": USER, "optillm_approach": "echo|shout"}, "'&' to chain"),
    ],
)
async def test_invalid_requests_are_400s_naming_what_is_wrong(body: dict[str, Any], named: str) -> None:
    model = FunctionClient(replying)
    async with messages_proxy(model) as sdk:
        with pytest.raises(anthropic.BadRequestError) as raised:
            await sdk.post("/v1/messages", cast_to=SdkMessage, body=body)
    error = error_body(raised.value)
    assert error["type"] == "invalid_request_error"
    assert named in error["message"]
    assert model.requests == []


async def test_malformed_json_is_a_400_in_anthropic_s_shape() -> None:
    async with raw_proxy(FunctionClient(replying)) as http:
        response = await http.post("/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_tools_with_a_strategy_that_cannot_pass_them_are_a_400_naming_the_strategy() -> None:
    model = FunctionClient(replying)
    tool: Any = {"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}
    async with messages_proxy(model) as sdk:
        for stream in (False, True):
            with pytest.raises(anthropic.BadRequestError) as raised:
                await sdk.messages.create(model="echo-m", max_tokens=10, messages=USER, tools=[tool], stream=stream)
            assert "the echo strategy cannot answer with tool calls" in error_body(raised.value)["message"]
    assert model.requests == []


async def test_a_model_this_proxy_does_not_serve_is_a_404_as_anthropic_answers_it() -> None:
    async with messages_proxy(FunctionClient(replying)) as sdk:
        with pytest.raises(anthropic.NotFoundError) as raised:
            await sdk.messages.create(model="claude-unknown", max_tokens=10, messages=USER)
        with pytest.raises(anthropic.NotFoundError) as strategy:
            await sdk.messages.create(model="echo-claude-unknown", max_tokens=10, messages=USER)
        with pytest.raises(anthropic.NotFoundError) as path:
            await sdk.messages.count_tokens(model="m", messages=USER)
    assert error_body(raised.value)["type"] == "not_found_error"
    assert "claude-unknown" in error_body(strategy.value)["message"]
    assert error_body(path.value)["type"] == "not_found_error"


def failing(error: Exception) -> FunctionClient:
    def reply(prompt: Prompt, settings: GenerationSettings) -> str:
        raise error

    return FunctionClient(reply)


@pytest.mark.parametrize("model", ["m", "shout-m"])
@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("failure", "sdk_error", "kind", "status"),
    [
        (
            BadRequestError("prompt is too long", status_code=413),
            anthropic.ContentTooLargeError,
            "request_too_large",
            413,
        ),
        (BadRequestError("no such model", status_code=404), anthropic.NotFoundError, "not_found_error", 404),
        (BadRequestError("bad field", status_code=400), anthropic.BadRequestError, "invalid_request_error", 400),
        (
            RateLimitError("slow down", status_code=429, retry_after=3),
            anthropic.RateLimitError,
            "rate_limit_error",
            429,
        ),
        (ProviderUnavailable("overloaded", status_code=529), anthropic.OverloadedError, "overloaded_error", 529),
        (ProviderUnavailable("unavailable", status_code=503), anthropic.OverloadedError, "overloaded_error", 529),
        (ProviderUnavailable("bad gateway", status_code=502), anthropic.InternalServerError, "api_error", 500),
        (ProviderTimeout("too slow"), anthropic.GatewayTimeoutError, "timeout_error", 504),
    ],
)
async def test_upstream_failures_map_to_anthropic_s_statuses_and_types(
    model: str, stream: bool, failure: Exception, sdk_error: type[anthropic.APIStatusError], kind: str, status: int
) -> None:
    async with messages_proxy(failing(failure)) as sdk:
        if stream and model != "m":
            # a strategy stream starts at once (message_start, then pings): its failure is an error event
            with pytest.raises(anthropic.APIStatusError) as raised_in_stream:
                async for _ in await sdk.messages.create(model=model, max_tokens=10, messages=USER, stream=True):
                    pass
            assert error_body(raised_in_stream.value)["type"] == kind
            return
        with pytest.raises(sdk_error) as raised:
            await sdk.messages.create(model=model, max_tokens=10, messages=USER, stream=stream)
    assert raised.value.status_code == status
    error = error_body(raised.value)
    assert error["type"] == kind
    assert str(failure) in error["message"]
    if status == 429:
        assert raised.value.response.headers["retry-after"] == "3"


async def test_a_failing_strategy_is_a_500_api_error_without_its_details() -> None:
    async with messages_proxy(FunctionClient(replying)) as sdk:
        with pytest.raises(anthropic.InternalServerError) as raised:
            await sdk.messages.create(model="broken-m", max_tokens=10, messages=USER)
    error = error_body(raised.value)
    assert (raised.value.status_code, error["type"]) == (500, "api_error")
    assert "sk-" not in json.dumps(raised.value.body)


def fails_at_final(prompt: Prompt, settings: GenerationSettings) -> str:
    if prompt.messages[-1].content.startswith("final:"):
        raise ProviderUnavailable("upstream fell over", status_code=529)
    return replying(prompt, settings)


async def test_a_failure_after_the_stream_started_is_an_error_event() -> None:
    body = {"model": "echo-m", "max_tokens": 10, "messages": USER, "stream": True}
    async with raw_proxy(FunctionClient(fails_at_final)) as http:
        response = await http.post("/v1/messages", json=body)
    assert response.status_code == 200
    events = sse_events(response.text)
    assert events[0][0] == "message_start"
    name, data = events[-1]
    assert name == "error"
    assert json.loads(data) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "upstream model call failed: upstream fell over"},
    }
    assert "message_stop" not in [n for n, _ in events]
    assert "[DONE]" not in response.text


async def test_the_sdk_raises_a_stream_s_error_event() -> None:
    async with messages_proxy(FunctionClient(fails_at_final)) as sdk:
        with pytest.raises(anthropic.APIStatusError) as raised:
            async with sdk.messages.stream(model="echo-m", max_tokens=10, messages=USER) as stream:
                await stream.get_final_message()
    assert error_body(raised.value)["type"] == "overloaded_error"


async def test_the_proxy_key_is_accepted_as_x_api_key_or_bearer_and_refused_otherwise() -> None:
    app = create_app(client=FunctionClient(replying), model="m", registry=test_registry(), require_key="proxy-key")
    async with serving(app) as base_url:
        by_api_key = sdk_for(base_url, api_key="proxy-key")
        by_bearer = sdk_for(base_url, api_key=None, auth_token="proxy-key")
        wrong = sdk_for(base_url, api_key="wrong-key")
        try:
            first = await by_api_key.messages.create(model="m", max_tokens=10, messages=USER)
            second = await by_bearer.messages.create(model="shout-m", max_tokens=10, messages=USER)
            with pytest.raises(anthropic.AuthenticationError) as refused:
                await wrong.messages.create(model="m", max_tokens=10, messages=USER)
            with pytest.raises(anthropic.AuthenticationError) as streamed:
                await wrong.messages.create(model="m", max_tokens=10, messages=USER, stream=True)
        finally:
            for sdk in (by_api_key, by_bearer, wrong):
                await sdk.close()
    assert blocks(first) == [("text", "reply to Q")]
    assert blocks(second) == [("text", "REPLY TO SHOUT: Q")]
    error = error_body(refused.value)
    assert error["type"] == "authentication_error"
    assert "wrong-key" not in error["message"]
    assert "x-api-key" in error["message"]
    assert error_body(streamed.value)["type"] == "authentication_error"


@given(status=st.integers(min_value=400, max_value=599))
def test_every_status_maps_to_one_of_anthropic_s_statuses_and_types(status: int) -> None:
    error = anthropic_error(ApiError(status, "boom", retry_after=1.5))
    known = {400, 401, 403, 404, 413, 429, 500, 504, 529}
    assert error.status in known or (status < 500 and error.status == status)
    payload = error.payload()
    assert payload == {"type": "error", "error": {"type": error.kind, "message": "boom"}}
    assert error.kind.endswith("_error") or error.kind == "request_too_large"
    assert error.headers() == {"retry-after": "2"}
    assert anthropic_error(error) is error
    assert error.stream_end() == b"event: error\ndata: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
