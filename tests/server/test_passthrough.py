"""Requests without a strategy: forwarded unchanged to the upstream, or served by the model client."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from optillm_core.testing import FunctionClient, ScriptedClient
from optillm_router.testing import FakeOpenAIServer
from optillm_server import Upstream

from .support import TOOL_CALL, ToolUpstream, proxy, replying, serving

pytestmark = pytest.mark.anyio

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


async def test_tools_n_and_logprobs_pass_through_unchanged() -> None:
    upstream = ToolUpstream()
    async with serving(upstream.app) as upstream_url, proxy(ScriptedClient(), upstream=Upstream(upstream_url)) as sdk:
        response = await sdk.chat.completions.create(
            model="tool-model",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=TOOLS,
            tool_choice="auto",
            n=2,
            logprobs=True,
        )
    (body,) = upstream.bodies
    assert body["tools"] == TOOLS
    assert body["tool_choice"] == "auto"
    assert body["n"] == 2
    assert body["logprobs"] is True
    assert len(response.choices) == 2
    for choice in response.choices:
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls is not None
        assert choice.message.tool_calls[0].model_dump(exclude_none=True) == TOOL_CALL
        assert choice.logprobs is not None
        assert choice.logprobs.content is not None
        assert choice.logprobs.content[0].logprob == -0.5
    assert response.usage is not None
    assert response.usage.prompt_tokens == 11


async def test_streaming_pass_through_relays_the_upstream_bytes_unchanged() -> None:
    upstream = ToolUpstream()
    async with serving(upstream.app) as upstream_url, proxy(ScriptedClient(), upstream=Upstream(upstream_url)) as sdk:
        body = {"model": "tool-model", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS, "stream": True}
        async with httpx.AsyncClient() as http:
            raw = await http.post(f"{sdk.base_url}chat/completions", json=body)
        stream = await sdk.chat.completions.create(
            model="tool-model", messages=[{"role": "user", "content": "hi"}], tools=TOOLS, stream=True
        )
        chunks = [c async for c in stream]
    assert raw.status_code == 200
    assert raw.content == upstream.stream_bytes()
    arguments = "".join(
        (c.choices[0].delta.tool_calls or [])[0].function.arguments or ""  # type: ignore[union-attr]
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
    )
    assert arguments == TOOL_CALL["function"]["arguments"]  # type: ignore[index]


async def test_pass_through_to_the_fake_upstream_with_usage_and_the_upstream_key() -> None:
    async with (
        FakeOpenAIServer(api_key="upstream-secret", models=("fake-model", "other-model")) as fake,
        proxy(ScriptedClient(), model="fake-model", upstream=Upstream(fake.base_url, "upstream-secret")) as sdk,
    ):
        response = await sdk.chat.completions.create(
            model="fake-model", messages=[{"role": "user", "content": "hello"}], n=2
        )
        stream = await sdk.chat.completions.create(
            model="fake-model",
            messages=[{"role": "user", "content": "hello"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"optillm_approach": "none"},
        )
        chunks = [c async for c in stream]
        models = await sdk.models.list()
    assert [c.message.content for c in response.choices] == [
        "Reply 0 to: hello. The answer is \\boxed{42}.",
        "Reply 1 to: hello. The answer is \\boxed{42}.",
    ]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 1
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Reply 0 to: hello")
    assert all("optillm_approach" not in r.body for r in fake.chat_requests)
    assert all(r.headers["Authorization"] == "Bearer upstream-secret" for r in fake.requests)
    assert [m.id for m in models.data] == [
        "fake-model",
        "other-model",
        "broken-fake-model",
        "echo-fake-model",
        "shout-fake-model",
    ]


async def test_without_upstream_the_conversation_goes_turn_by_turn_through_the_client() -> None:
    client = FunctionClient(replying)
    messages: list[Any] = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": [{"type": "text", "text": "three"}]},
    ]
    async with proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="m", messages=messages, n=2, temperature=0.4, max_tokens=9)
        stream = await sdk.chat.completions.create(
            model="m", messages=messages, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert [c.message.content for c in response.choices] == ["reply to three", "reply to three"]
    record = client.requests[0]
    assert [(m.role, m.content) for m in record.messages] == [
        ("system", "sys"),
        ("user", "one"),
        ("assistant", "two"),
        ("user", "three"),
    ]
    assert record.settings.temperature == 0.4
    assert record.settings.max_tokens == 9
    assert response.usage is not None
    assert response.usage.completion_tokens == 6
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "reply to three"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
