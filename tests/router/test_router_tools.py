"""Tool calls through the router: round trips on every wire format, real-model fakes, fan-out and
missing choices, routes without tools, token estimates, profiles and lessons, and streamed argument
fragments reassembled exactly wherever they are cut."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from optillm_core import (
    BadRequestError,
    Completion,
    GenerationSettings,
    Message,
    ModelClient,
    Prompt,
    ToolCall,
    ToolCallDelta,
    ToolDefinition,
    collect_stream,
)
from optillm_router import (
    HttpPool,
    ModelClientRouter,
    ProviderRoutingConfig,
    ProviderSpec,
    create_provider_client,
    estimate_tokens,
    model_profile,
)
from optillm_router._catalogue import PROVIDERS
from optillm_router._providers._lessons import Refusal, refusal_in
from optillm_router.testing import FakeOpenAIServer, FakeProviderServer, FakeReply, HttpWireFormat, tool_caller

from .fakes_real import plays
from .fakes_wire import WireServer, sse_answer, sse_events

pytestmark = pytest.mark.anyio

WIRES: tuple[HttpWireFormat, ...] = ("openai", "anthropic", "gemini", "ollama")
WEATHER = ToolDefinition(
    name="get_weather",
    description="The weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TOOLS = (WEATHER, ToolDefinition(name="get_time"))
QUESTION = Prompt.from_query("What is the weather in Paris?", system="Use the tools.")
WITH_TOOLS = GenerationSettings(tools=TOOLS)


async def ask(client: ModelClient, prompt: Prompt, settings: GenerationSettings, *, stream: bool) -> Completion:
    if not stream:
        return await client.complete(prompt, settings)
    async with client.stream(prompt, settings) as events:
        return await collect_stream(events, settings.n)


async def round_trip(client: ModelClient, *, stream: bool) -> tuple[Completion, Completion]:
    """Ask, get a tool call, send its result back, get the final text answer."""
    first = await ask(client, QUESTION, WITH_TOOLS, stream=stream)
    (call,) = first.calls
    follow_up = Prompt(
        messages=(
            *QUESTION.messages,
            Message.assistant(first.text, tool_calls=first.calls),
            Message.tool_result("18 C and sunny", tool_call_id=call.id),
        ),
        system=QUESTION.system,
    )
    return first, await ask(client, follow_up, WITH_TOOLS, stream=stream)


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("stream", [False, True])
async def test_router_round_trip_on_every_wire(wire: HttpWireFormat, stream: bool) -> None:
    reply = tool_caller(when="weather", arguments={"city": "Paris"})
    server = FakeProviderServer(wire, reply=reply)
    async with server, ModelClientRouter(ProviderRoutingConfig(primary=server.spec())) as router:
        first, final = await round_trip(router, stream=stream)
    (call,) = first.calls
    assert (call.name, call.parsed_arguments()) == ("get_weather", {"city": "Paris"})
    assert first.finish_reasons == ("tool_calls",)
    assert final.text == "The tools said: 18 C and sunny"
    assert final.calls == ()
    assert final.finish_reasons == ("stop",)
    # The fake saw the call and its result in its own format, and in OpenAI's shape:
    assert server.requests[1].chat["messages"][-1]["role"] == "tool"
    assert server.requests[1].chat["messages"][-1]["content"] == "18 C and sunny"


@pytest.mark.parametrize("stream", [False, True])
async def test_round_trip_with_the_openai_fake(stream: bool) -> None:
    reply = tool_caller(arguments=lambda body: {"city": "Paris" if "Paris" in str(body["messages"]) else "?"})
    async with FakeOpenAIServer(reply=reply) as server:
        spec = ProviderSpec("custom", "fake-model", base_url=server.base_url)
        async with ModelClientRouter(ProviderRoutingConfig.single(spec)) as router:
            first, final = await round_trip(router, stream=stream)
    assert first.calls[0].id == "call_2_0_0"
    assert final.text == "The tools said: 18 C and sunny"
    second = server.chat_requests[1].body
    assert second["messages"][2]["tool_calls"][0]["id"] == "call_2_0_0"
    assert second["messages"][3] == {"role": "tool", "tool_call_id": "call_2_0_0", "content": "18 C and sunny"}


@pytest.mark.parametrize("model", ["claude-sonnet-4", "gemini-2.5-flash"])
@pytest.mark.parametrize("stream", [False, True])
async def test_round_trip_with_real_model_fakes(model: str, stream: bool) -> None:
    provider = "anthropic" if model.startswith("claude") else "gemini"
    async with WireServer(plays(model, chat_reply=tool_caller(arguments={"city": "Paris"}))) as server:
        spec = ProviderSpec(provider, model, base_url=server.url, api_key="k")
        async with ModelClientRouter(ProviderRoutingConfig.single(spec)) as router:
            first, final = await round_trip(router, stream=stream)
    assert first.calls[0].parsed_arguments() == {"city": "Paris"}
    assert final.text == "The tools said: 18 C and sunny"


async def test_a_model_that_refuses_tools_is_refused_before_any_request() -> None:
    async with FakeOpenAIServer(real_model="o1-mini") as server, HttpPool() as http:
        client = create_provider_client("openai", model="o1-mini", api_key="k", base_url=server.base_url, http=http)
        with pytest.raises(BadRequestError, match="does not take tools"):
            await client.complete(QUESTION, WITH_TOOLS)
        assert server.chat_requests == []
        # A profile that wrongly allows them meets the provider's 400, and learns from it.
        wrong = model_profile("openai", "o1-mini", {"tools": True})
        client = create_provider_client(
            "openai", model="o1-mini", api_key="k", base_url=server.base_url, http=http, profile=wrong
        )
        with pytest.raises(BadRequestError, match="Unsupported parameter: 'tools'"):
            await client.complete(QUESTION, WITH_TOOLS)
        assert not client.profile.tools
        assert len(server.chat_requests) == 1


async def test_the_router_sends_tools_past_a_route_that_refuses_them() -> None:
    async with (
        FakeProviderServer("ollama", tools=False, model="gemma:2b") as without,
        FakeProviderServer("anthropic", reply=tool_caller(arguments={"city": "Paris"})) as with_tools,
    ):
        config = ProviderRoutingConfig(primary=without.spec(), alternatives=(with_tools.spec(),))
        async with ModelClientRouter(config) as router:
            completion = await router.complete(QUESTION, WITH_TOOLS)
            assert completion.calls[0].name == "get_weather"
            assert len(without.requests) == 1  # its 400 is not retried, and it is not sent again without tools
            assert not router.profile.tools  # the router's profile is the strictest of its routes'
            again = await router.complete(QUESTION, WITH_TOOLS)
    assert again.calls
    assert len(without.requests) == 1  # refused before sending now
    assert len(with_tools.requests) == 2


def _per_choice(chat: dict[str, Any], choice: int) -> FakeReply:
    city = ["Oslo", "Lima", "Pune"][choice]
    return FakeReply(
        "", tool_calls=(ToolCall(id=f"c{choice}", name="get_weather", arguments=json.dumps({"city": city})),)
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_fanned_out_choices_keep_their_tool_calls(stream: bool) -> None:
    server = FakeProviderServer("anthropic", reply=_per_choice)  # no native n
    async with server, ModelClientRouter(ProviderRoutingConfig(primary=server.spec())) as router:
        if stream:  # the router's own stream of a fanned-out request
            events = [e async for e in router.request_stream(QUESTION, WITH_TOOLS.with_(n=3))]
            pieces = [e for e in events if isinstance(e, ToolCallDelta)]
            assert [(p.index, p.call, p.name) for p in pieces] == [(i, 0, "get_weather") for i in range(3)]
            completion = await collect_stream(router.request_stream(QUESTION, WITH_TOOLS.with_(n=3)), 3)
        else:
            completion = await router.complete(QUESTION, WITH_TOOLS.with_(n=3))
    cities = sorted(completion.calls_of(i)[0].parsed_arguments()["city"] for i in range(3))
    assert cities == ["Oslo", "Oslo", "Oslo"]  # each single request is choice 0 at the provider
    assert completion.finish_reasons == ("tool_calls",) * 3


async def test_choices_a_provider_left_out_are_filled_with_their_tool_calls() -> None:
    server = FakeProviderServer("gemini", reply=_per_choice, max_choices=1)
    async with server, ModelClientRouter(ProviderRoutingConfig(primary=server.spec())) as router:
        completion = await router.request(QUESTION, WITH_TOOLS.with_(n=2))
    assert len(server.requests) == 2
    assert [completion.calls_of(i)[0].parsed_arguments() for i in range(2)] == [{"city": "Oslo"}] * 2
    assert completion.finish_reasons == ("tool_calls", "tool_calls")


# -- estimates, profiles, lessons --------------------------------------------------------------------------


def test_token_estimates_count_tools_and_tool_calls() -> None:
    bare = estimate_tokens(QUESTION, GenerationSettings())
    offered = estimate_tokens(QUESTION, WITH_TOOLS)
    schema_chars = sum(len(t.name) + len(t.description or "") + len(json.dumps(t.parameters)) for t in TOOLS)
    assert offered.input_tokens - bare.input_tokens == pytest.approx(schema_chars / 4, abs=1)
    call = ToolCall(id="c", name="get_weather", arguments=json.dumps({"city": "x" * 400}))
    history = Prompt(messages=(*QUESTION.messages, Message.assistant("", tool_calls=(call,))))
    assert estimate_tokens(history, GenerationSettings()).input_tokens > bare.input_tokens + 100


@pytest.mark.parametrize(
    ("provider", "model", "tools"),
    [
        ("openai", "o1-mini", False),
        ("openrouter", "openai/o1-preview-2024-09-12", False),
        ("openai", "o1", True),
        ("openai", "o3-mini", True),
        ("openai", "gpt-4o-mini", True),
        ("anthropic", "claude-sonnet-4-20250514", True),
        ("gemini", "gemini-2.5-flash", True),
        ("custom", "deepseek-reasoner", True),
        ("local", "smollm2", False),
    ],
)
def test_profiles_say_which_models_take_tools(provider: str, model: str, tools: bool) -> None:
    assert model_profile(provider, model).tools is tools


def test_the_local_model_refuses_tools_under_both_policies() -> None:
    profile = PROVIDERS["local"].profile
    assert profile.unsupported(WITH_TOOLS) == ("tools",)


@pytest.mark.parametrize(
    "message",
    [
        "Unsupported parameter: 'tools' is not supported with this model.",
        "tools is not supported in this model. For a list of supported models, refer to https://platform.openai.com/",
        "registry.ollama.ai/library/gemma:2b does not support tools",
        "Function calling is not enabled for models/gemma-3-27b-it",
        "deepseek-reasoner does not support Function Calling",
    ],
)
def test_a_400_saying_tools_are_unsupported_is_learned(message: str) -> None:
    assert refusal_in(message) == Refusal("tools")


# -- argument fragments, cut anywhere ---------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
ARGUMENTS = st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=4).map(
    lambda value: json.dumps(value, ensure_ascii=False)
)


def _cut(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in pairwise(points) if b > a]


def _bytes_cut(frames: list[bytes], cuts: list[int]) -> list[bytes]:
    data = b"".join(frames)
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(points) if b > a]


def openai_stream(arguments: str, fragments: list[str]) -> list[bytes]:
    first = {"index": 0, "id": "call_x", "type": "function", "function": {"name": "f", "arguments": ""}}
    deltas: list[Any] = [{"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}}]}]
    deltas += [
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}}]}
        for piece in fragments
    ]
    deltas.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
    return [*sse_events(*deltas), b"data: [DONE]\n\n"]


def anthropic_stream(arguments: str, fragments: list[str]) -> list[bytes]:
    block = {"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}}
    events: list[Any] = [
        ("message_start", {"type": "message_start", "message": {"model": "m", "usage": {"input_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": block}),
    ]
    events += [
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": p}},
        )
        for p in fragments
    ]
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse_events(*events)


@asynccontextmanager
async def scripted_client(provider: str, chunks: list[bytes]) -> AsyncIterator[ModelClient]:
    async with WireServer([sse_answer(chunks)]) as server, HttpPool() as http:
        base = server.url + ("/v1" if provider == "vllm" else "")
        yield create_provider_client(provider, model="m", api_key="k", base_url=base, http=http)


@hypothesis_settings(max_examples=40, deadline=None)
@given(
    arguments=ARGUMENTS,
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
    byte_cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
)
def test_argument_fragments_reassemble_exactly(arguments: str, cuts: list[int], byte_cuts: list[int]) -> None:
    fragments = _cut(arguments, cuts)
    for provider, frames, call_id in (
        ("vllm", openai_stream(arguments, fragments), "call_x"),
        ("anthropic", anthropic_stream(arguments, fragments), "toolu_x"),
    ):

        async def run(provider: str = provider, frames: list[bytes] = frames) -> Completion:
            async with scripted_client(provider, _bytes_cut(frames, byte_cuts)) as client:
                return await collect_stream(client.request_stream(QUESTION, GenerationSettings(tools=TOOLS)))

        completion = anyio.run(run)
        assert completion.calls == (ToolCall(id=call_id, name="f", arguments=arguments or "{}"),)
        assert completion.finish_reasons == ("tool_calls",)


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs optillm-router[local]")
async def test_the_embedded_model_refuses_tools_before_generating() -> None:
    from optillm_router._providers.local import LocalModelClient

    client = LocalModelClient(model="smollm2")
    with pytest.raises(BadRequestError, match="local/smollm2 does not take tools"):
        await client.complete(QUESTION, WITH_TOOLS)
