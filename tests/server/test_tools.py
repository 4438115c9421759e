"""Tool calls through the proxy, checked with the official openai SDK.

Pass-through over the model client (tool definitions, tool calls and tool results both ways, plain,
streamed and with ``n``), pass-through forwarded to an upstream that streams tool calls as OpenAI
does, strategies whose answer is a tool call (``moa-``), a whole agent loop through ``moa-``, and the
400s: a strategy that cannot answer with tools, malformed tool fields, a model without tools.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageFunctionToolCall
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from optillm_core import (
    GenerationSettings,
    Message,
    ModelClient,
    ModelProfile,
    OptimizerRegistry,
    Prompt,
    ProviderUnavailable,
    ToolCall,
    ToolChoice,
    ToolDefinition,
    default_registry,
)
from optillm_core.testing import FaultyClient, FunctionClient, JumpClock, RecordedRequest, Reply
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeProviderServer, FakeReply
from optillm_server import Upstream

from .support import ShoutStrategy, last_user, proxy, serving

pytestmark = pytest.mark.anyio

QUESTION = "What should I wear in Paris today?"
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME_TOOL: dict[str, Any] = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}
TOOLS: list[Any] = [WEATHER_TOOL, TIME_TOOL]
WEATHER = ToolDefinition(
    name="get_weather",
    description="The current weather in a city.",
    parameters=WEATHER_TOOL["function"]["parameters"],
)
CALL = ToolCall(id="call_w1", name="get_weather", arguments='{"city": "Paris"}')
RESULT = '{"temperature_c": 9, "sky": "rain"}'
ANSWER = "Take a raincoat: it is 9 degrees and raining in Paris."
USER: list[Any] = [{"role": "user", "content": QUESTION}]


def has_tool_result(prompt: Prompt) -> bool:
    """Whether the model is shown a tool's result: a tool message, or a strategy's rendered transcript."""
    return any(m.role == "tool" for m in prompt.messages) or "<tool_result" in last_user(prompt)


def weather_model(prompt: Prompt, settings: GenerationSettings) -> Reply | str:
    """A model that calls get_weather when it is offered the tool and has no weather yet, as a real one would."""
    if has_tool_result(prompt):
        return ANSWER
    if settings.tools:
        return Reply("", tool_calls=(CALL,))
    return "It depends on the weather, which I cannot see."


def assembled(chunks: list[ChatCompletionChunk]) -> dict[int, list[dict[str, str]]]:
    """The tool calls of each choice, put together from the stream's pieces as an OpenAI client does."""
    calls: dict[int, dict[int, dict[str, str]]] = {}
    for piece_chunk in chunks:
        for choice in piece_chunk.choices:
            for piece in choice.delta.tool_calls or []:
                by_position = calls.setdefault(choice.index, {})
                call = by_position.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = piece.id or call["id"]
                if piece.function is not None:
                    call["name"] += piece.function.name or ""
                    call["arguments"] += piece.function.arguments or ""
    return {index: [by_position[k] for k in sorted(by_position)] for index, by_position in calls.items()}


def finish_reasons(chunks: list[ChatCompletionChunk]) -> dict[int, str]:
    return {c.index: c.finish_reason for chunk in chunks for c in chunk.choices if c.finish_reason}


def agent_turn(call: dict[str, str] | Any, result: str = RESULT) -> list[Any]:
    """The agent loop's second request: the question, the assistant's tool call (content null) and its result."""
    call_id = call["id"] if isinstance(call, dict) else call.id
    function = call if isinstance(call, dict) else {"name": call.function.name, "arguments": call.function.arguments}
    tool_call = {
        "id": call_id,
        "type": "function",
        "function": {"name": function["name"], "arguments": function["arguments"]},
    }
    return [
        {"role": "system", "content": "You are a helpful assistant."},
        *USER,
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def with_tools(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if r.settings.tools]


@pytest.mark.parametrize("client_keeps_extra", [True, False], ids=["echoed", "dropped"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_gemini_3_agent_loop_keeps_its_thought_signature(stream: bool, client_keeps_extra: bool) -> None:
    # Gemini 3 refuses a call turn sent back without its signature: the proxy hands it to the client
    # in extra_content.google (Google's OpenAI-compatible place), and signs for clients that drop it.
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')

    def model(chat: Mapping[str, Any], choice: int) -> FakeReply:
        answered = any(m.get("role") == "tool" for m in chat["messages"])
        return FakeReply("It is 18 C." if answered else "", tool_calls=() if answered else (call,))

    async with FakeProviderServer("gemini", model="gemini-3-pro-preview", reply=model) as fake:
        router = ModelClientRouter(ProviderRoutingConfig(fake.spec(), max_retries=0), clock=JumpClock())
        first_request: dict[str, Any] = {"model": "gemini-3-pro-preview", "messages": USER, "tools": TOOLS}
        async with router, proxy(router, model="gemini-3-pro-preview") as sdk:
            tool_call: dict[str, Any]
            if stream:
                chunks = [c async for c in await sdk.chat.completions.create(**first_request, stream=True) if c.choices]
                pieces = [t.model_dump() for c in chunks for t in (c.choices[0].delta.tool_calls or ())]
                tool_call = {**pieces[0], "function": {"name": "get_weather", "arguments": call.arguments}}
                tool_call.pop("index")
            else:
                plain = await sdk.chat.completions.create(**first_request)
                tool_call = (plain.choices[0].message.tool_calls or [])[0].model_dump()
            signature = (tool_call.get("extra_content") or {}).get("google", {}).get("thought_signature")
            assert signature, tool_call
            if not client_keeps_extra:
                tool_call.pop("extra_content")
            history = [*USER, {"role": "assistant", "content": None, "tool_calls": [tool_call]}]
            history.append({"role": "tool", "tool_call_id": tool_call["id"], "content": "18 C"})
            second = await sdk.chat.completions.create(model="gemini-3-pro-preview", messages=history, tools=TOOLS)
    assert second.choices[0].message.content == "It is 18 C."
    sent = fake.requests[-1].body["contents"][1]["parts"][0]["thoughtSignature"]
    assert sent == (signature if client_keeps_extra else "skip_thought_signature_validator")


# -- pass-through over the model client ------------------------------------------------------------


async def test_pass_through_over_the_client_returns_the_models_tool_call() -> None:
    client = FunctionClient(weather_model)
    async with proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="m", messages=USER, tools=TOOLS, tool_choice="auto")
    (choice,) = response.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    (call,) = choice.message.tool_calls
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_w1",
        "get_weather",
        '{"city": "Paris"}',
    )
    (request,) = client.requests
    assert request.settings.tools is not None and request.settings.tools[0] == WEATHER
    assert [t.name for t in request.settings.tools] == ["get_weather", "get_time"]
    assert request.settings.tool_choice == ToolChoice(mode="auto")


async def test_pass_through_over_the_client_streams_tool_calls_in_pieces_the_sdk_reassembles() -> None:
    async with proxy(FunctionClient(weather_model)) as sdk:
        stream = await sdk.chat.completions.create(
            model="m", messages=USER, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        async with sdk.chat.completions.stream(model="m", messages=USER, tools=TOOLS) as helper:
            final = await helper.get_final_completion()
    assert assembled(chunks) == {0: [{"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Paris"}'}]}
    pieces = [p for c in chunks for choice in c.choices for p in choice.delta.tool_calls or []]
    assert len(pieces) == 3  # the id and name, then the arguments in two fragments, as OpenAI streams them
    assert (pieces[0].id, pieces[0].type) == ("call_w1", "function")
    assert all(p.id is None and p.function is not None and p.function.name is None for p in pieces[1:])
    assert finish_reasons(chunks) == {0: "tool_calls"}
    assert chunks[-1].usage is not None
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.arguments == '{"city": "Paris"}'


async def test_pass_through_over_the_client_sends_tool_calls_and_results_turn_by_turn() -> None:
    client = FunctionClient(weather_model)
    async with proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="m", messages=agent_turn(CALL_DICT), tools=TOOLS)
    assert response.choices[0].message.content == ANSWER
    assert response.choices[0].finish_reason == "stop"
    assert response.choices[0].message.tool_calls is None
    (request,) = client.requests
    assert request.messages == (
        Message.system("You are a helpful assistant."),
        Message.user(QUESTION),
        Message.assistant("", tool_calls=(CALL,)),
        Message.tool_result(RESULT, tool_call_id="call_w1"),
    )


CALL_DICT = {"id": "call_w1", "name": "get_weather", "arguments": '{"city": "Paris"}'}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_each_of_n_choices_carries_its_own_tool_calls(stream: bool) -> None:
    ids = itertools.count(1)

    def calls_per_choice(prompt: Prompt, settings: GenerationSettings) -> Reply:
        number = next(ids)
        cities = ("Paris", "Lyon")[: 1 + number % 2]
        calls = tuple(
            ToolCall(id=f"call_{number}_{k}", name="get_weather", arguments=json.dumps({"city": city}))
            for k, city in enumerate(cities)
        )
        return Reply(f"Checking {len(calls)} cities.", tool_calls=calls)

    async with proxy(FunctionClient(calls_per_choice)) as sdk:
        if stream:
            response = await sdk.chat.completions.create(model="m", messages=USER, tools=TOOLS, n=2, stream=True)
            chunks = [c async for c in response]
            calls = assembled(chunks)
            reasons = finish_reasons(chunks)
        else:
            plain = await sdk.chat.completions.create(model="m", messages=USER, tools=TOOLS, n=2)
            calls = {
                c.index: [
                    {"id": t.id, "name": t.function.name, "arguments": t.function.arguments}  # type: ignore[union-attr]
                    for t in c.message.tool_calls or []
                ]
                for c in plain.choices
            }
            reasons = {c.index: c.finish_reason for c in plain.choices}
            assert [c.message.content for c in plain.choices] == ["Checking 2 cities.", "Checking 1 cities."]
    assert reasons == {0: "tool_calls", 1: "tool_calls"}
    assert sorted(len(c) for c in calls.values()) == [1, 2]
    ids_seen = [call["id"] for choice in calls.values() for call in choice]
    assert len(set(ids_seen)) == 3
    two = next(c for c in calls.values() if len(c) == 2)
    assert [json.loads(c["arguments"])["city"] for c in two] == ["Paris", "Lyon"]


async def test_a_model_without_tools_refuses_them_with_a_400_under_either_policy() -> None:
    client = FunctionClient(weather_model, profile=ModelProfile(tools=False))
    async with proxy(client, registry=default_registry()) as sdk:
        for model in ("m", "moa-m"):
            for policy in ("drop", "error"):
                with pytest.raises(openai.BadRequestError) as caught:
                    await sdk.chat.completions.create(
                        model=model, messages=USER, tools=TOOLS, extra_body={"optillm_drop_unsupported": policy}
                    )
                error = caught.value.body
                assert isinstance(error, dict)
                assert error["param"] == "tools"
                assert "does not accept tools" in error["message"]
    assert client.requests == []


# -- strategies ------------------------------------------------------------------------------------


def strategy_proxy(client: ModelClient) -> Any:
    """The proxy with the installed strategies, which all answer with tools, and ``shout``, which cannot."""
    registry = OptimizerRegistry()  # the installed strategies, in a registry of its own
    registry.register(ShoutStrategy)
    return proxy(client, registry=registry)


async def test_a_moa_request_answers_with_the_synthesis_tool_call() -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="moa-m", messages=USER, tools=TOOLS, tool_choice="auto")
    (choice,) = response.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.name == "get_weather"
    assert choice.message.tool_calls[0].id == "call_w1"
    # candidates and critique ran without the tools; only the synthesis, the last call, had them
    (synthesis,) = with_tools(client.requests)
    assert synthesis is client.requests[-1]
    assert len(client.requests) == 5
    assert response.usage is not None and response.usage.total_tokens > 0


async def test_a_streamed_moa_request_sends_the_tool_call_after_the_run_and_finishes_with_tool_calls() -> None:
    async with strategy_proxy(FunctionClient(weather_model)) as sdk:
        stream = await sdk.chat.completions.create(
            model="moa-m", messages=USER, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
    assert assembled(chunks) == {0: [CALL_DICT]}
    assert finish_reasons(chunks) == {0: "tool_calls"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == ""
    assert chunks[-1].usage is not None


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_n_strategy_runs_each_answer_with_their_own_tool_calls(stream: bool) -> None:
    ids = itertools.count(1)

    def numbered_calls(prompt: Prompt, settings: GenerationSettings) -> Reply | str:
        if settings.tools:
            return Reply("", tool_calls=(CALL.model_copy(update={"id": f"call_{next(ids)}"}),))
        return "It depends on the weather."

    async with strategy_proxy(FunctionClient(numbered_calls)) as sdk:
        if stream:
            chunks = [
                c
                async for c in await sdk.chat.completions.create(
                    model="moa-m", messages=USER, tools=TOOLS, n=2, stream=True
                )
            ]
            calls = {index: [c["id"] for c in made] for index, made in assembled(chunks).items()}
            reasons = finish_reasons(chunks)
        else:
            response = await sdk.chat.completions.create(model="moa-m", messages=USER, tools=TOOLS, n=2)
            calls = {c.index: [t.id for t in c.message.tool_calls or []] for c in response.choices}
            reasons = {c.index: c.finish_reason for c in response.choices}
    assert reasons == {0: "tool_calls", 1: "tool_calls"}
    assert sorted(calls.values()) == [["call_1"], ["call_2"]]


async def test_a_mars_request_answers_with_its_synthesis_tool_call() -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk:
        response = await sdk.chat.completions.create(
            model="mars-m",
            messages=USER,
            tools=TOOLS,
            max_tokens=1000,
            extra_body={"optillm_config": {"num_agents": 2}},
        )
    (choice,) = response.choices
    assert (choice.finish_reason, choice.message.content) == ("tool_calls", None)
    assert [t.id for t in choice.message.tool_calls or []] == ["call_w1"]
    (synthesis,) = with_tools(client.requests)
    assert synthesis is client.requests[-1]
    assert len(client.requests) > 3


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_an_agent_loop_through_moa_calls_the_tool_then_answers_from_its_result(stream: bool) -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk:
        first = await sdk.chat.completions.create(model="moa-m", messages=USER, tools=TOOLS)
        (call,) = first.choices[0].message.tool_calls or []
        assert first.choices[0].finish_reason == "tool_calls"
        step_two = len(client.requests)
        messages = agent_turn(call)
        if stream:
            chunks = [
                c
                async for c in await sdk.chat.completions.create(
                    model="moa-m", messages=messages, tools=TOOLS, stream=True
                )
            ]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert finish_reasons(chunks) == {0: "stop"}
            assert assembled(chunks) == {}
        else:
            second = await sdk.chat.completions.create(model="moa-m", messages=messages, tools=TOOLS)
            text = second.choices[0].message.content or ""
            assert second.choices[0].finish_reason == "stop"
            assert second.choices[0].message.tool_calls is None
    assert text == ANSWER
    loop = client.requests[step_two:]
    # every call of the second run sees the question and the tool's result, rendered for the strategy
    candidate = loop[0]
    assert candidate.user_text.startswith(QUESTION)
    assert '<tool_call id="call_w1" name="get_weather">\n{"city": "Paris"}\n</tool_call>' in candidate.user_text
    assert f'<tool_result call="call_w1" name="get_weather">\n{RESULT}\n</tool_result>' in candidate.user_text
    assert candidate.system_text == "You are a helpful assistant."
    # and the synthesis could call a tool again
    assert with_tools(loop) == [loop[-1]]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model", ["shout-m", "moa|shout-m"])
async def test_a_strategy_that_cannot_answer_with_tools_is_a_400_naming_it(model: str, stream: bool) -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(model=model, messages=USER, tools=TOOLS, stream=stream)
    error = caught.value.body
    assert isinstance(error, dict)
    name = model.split("-")[0].split("|")[-1]
    assert f"the {name} strategy cannot answer with tool calls: its answer is not a model call" in error["message"]
    # the strategies that can: every installed one
    able = sorted(info.name for info in default_registry().infos())
    assert f"strategies that can: {', '.join(able)})" in error["message"]
    assert (error["param"], error["code"]) == ("tools", "tools_not_supported_by_strategy")
    assert client.requests == []


async def test_in_a_pipeline_only_the_last_strategy_gets_the_tools() -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="shout&moa-m", messages=USER, tools=TOOLS)
        with pytest.raises(openai.BadRequestError, match="the shout strategy cannot answer with tool calls"):
            await sdk.chat.completions.create(model="moa&shout-m", messages=USER, tools=TOOLS)
    assert response.choices[0].message.tool_calls is not None
    (synthesis,) = with_tools(client.requests)
    assert synthesis is client.requests[-1]


async def test_with_tool_choice_none_a_strategy_that_cannot_answer_with_tools_runs_without_them() -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="shout-m", messages=USER, tools=TOOLS, tool_choice="none")
    assert response.choices[0].message.content == "IT DEPENDS ON THE WEATHER, WHICH I CANNOT SEE."
    assert response.choices[0].finish_reason == "stop"
    assert client.requests and with_tools(client.requests) == []


async def test_a_named_tool_choice_reaches_the_final_call() -> None:
    client = FunctionClient(weather_model)
    choice = {"type": "function", "function": {"name": "get_weather"}}
    async with strategy_proxy(client) as sdk:
        await sdk.chat.completions.create(model="moa-m", messages=USER, tools=TOOLS, tool_choice=choice)
    (synthesis,) = with_tools(client.requests)
    assert synthesis.settings.tool_choice == ToolChoice.tool("get_weather")


async def test_one_tool_call_at_a_time_reaches_the_final_call_only() -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk:
        await sdk.chat.completions.create(model="moa-m", messages=USER, tools=TOOLS, parallel_tool_calls=False)
    (synthesis,) = with_tools(client.requests)
    assert synthesis.settings.tool_choice == ToolChoice(mode="auto", parallel=False)
    assert all(r.settings.tool_choice is None for r in client.requests if r is not synthesis)


async def test_a_synthesis_that_fails_once_is_retried_by_the_router_and_its_tool_call_returned() -> None:
    model = FunctionClient(weather_model)
    # MoA without native n: 3 candidates, the critique, then the synthesis (call 4), which fails once.
    faulty = FaultyClient(model, {4: ProviderUnavailable("overloaded", status_code=503)})
    config = ProviderRoutingConfig(ProviderSpec("vllm", "m", base_url="http://127.0.0.1:9/v1"), max_retries=2)
    router = ModelClientRouter(config, client_factory=lambda spec, key: faulty, clock=JumpClock())
    async with router, strategy_proxy(router) as sdk:
        stream = await sdk.chat.completions.create(model="moa-m", messages=USER, tools=TOOLS, stream=True)
        chunks = [c async for c in stream]
    assert len(faulty.raised) == 1
    assert assembled(chunks) == {0: [CALL_DICT]}
    assert finish_reasons(chunks) == {0: "tool_calls"}
    assert [bool(r.settings.tools) for r in model.requests] == [False] * 4 + [True]


# -- malformed tool fields -------------------------------------------------------------------------


def _call(call_id: str | None = "call_w1", **function: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}", **function}}


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"tools": {"type": "function"}}, "tools", "must be a list"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0", "only function tools"),
        ({"tools": [{"type": "function"}]}, "tools.0", "needs a 'function' object"),
        ({"tools": [{"type": "function", "function": {"name": "get weather"}}]}, "tools.0.function.name", "letters"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "{}"}}]},
            "tools.0.function.parameters",
            "JSON Schema object",
        ),
        ({"tools": [WEATHER_TOOL, WEATHER_TOOL]}, "tools.1", "given twice"),
        ({"tools": TOOLS, "tool_choice": "sometimes"}, "tool_choice", "'auto', 'none', 'required'"),
        ({"tool_choice": "required"}, "tool_choice", "needs 'tools'"),
        (
            {"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "get_news"}}},
            "tool_choice",
            "not one of the request's tools",
        ),
        ({"functions": [WEATHER_TOOL["function"]]}, "functions", "deprecated form of 'tools'"),
        ({"function_call": "auto"}, "function_call", "deprecated form of 'tool_choice'"),
        (
            {"messages": [*USER, {"role": "assistant", "tool_calls": [_call(None)]}, {"role": "user", "content": "?"}]},
            "messages.1.tool_calls.0.id",
            "needs its 'id'",
        ),
        (
            {"messages": [*USER, {"role": "assistant", "tool_calls": [_call(arguments={"city": "Paris"})]}]},
            "messages.1.tool_calls.0.function.arguments",
            "JSON text",
        ),
        (
            {"messages": [*USER, {"role": "tool", "tool_call_id": "call_x", "content": "9"}]},
            "messages.1.tool_call_id",
            "no earlier assistant message made a tool call",
        ),
        ({"messages": [*USER, {"role": "function", "name": "f", "content": "9"}]}, "messages.1.role", "deprecated"),
    ],
)
@pytest.mark.parametrize("model", ["m", "moa-m"])
async def test_malformed_tool_fields_are_a_400_naming_the_field(
    fields: Mapping[str, Any], param: str, says: str, model: str
) -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk, httpx.AsyncClient() as http:
        body = {"model": model, "messages": USER, **fields}
        response = await http.post(f"{sdk.base_url}chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
    assert says in error["message"]
    assert client.requests == []


async def test_an_empty_tools_list_is_no_tools_and_auto_without_tools_asks_for_nothing() -> None:
    client = FunctionClient(weather_model)
    async with strategy_proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="bon-m", messages=USER, tools=[], tool_choice="auto")
    assert response.choices[0].finish_reason == "stop"
    assert all(r.settings.tools is None and r.settings.tool_choice is None for r in client.requests)


# -- forwarded pass-through ------------------------------------------------------------------------


class StreamingToolUpstream:
    """An upstream that answers as OpenAI does: two tool calls, plain or streamed in pieces, recording each body."""

    CALLS: tuple[dict[str, Any], ...] = (
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": '{"tz": "CET"}'}},
    )

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.streamed = b""
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    def _chunks(self, include_usage: bool) -> list[dict[str, Any]]:
        base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up"}

        def delta(payload: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": payload, "logprobs": None, "finish_reason": finish}]}

        chunks = [delta({"role": "assistant", "content": None})]
        for position, call in enumerate(self.CALLS):
            arguments = call["function"]["arguments"]
            head = {**call, "index": position, "function": {"name": call["function"]["name"], "arguments": ""}}
            chunks.append(delta({"tool_calls": [head]}))
            for fragment in (arguments[:5], arguments[5:]):
                chunks.append(delta({"tool_calls": [{"index": position, "function": {"arguments": fragment}}]}))
        chunks.append(delta({}, "tool_calls"))
        if include_usage:
            usage = {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}
            chunks.append({**base, "choices": [], "usage": usage})
        return chunks

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            events = [f"data: {json.dumps(c)}\n\n".encode() for c in self._chunks(include_usage)]
            events.append(b"data: [DONE]\n\n")
            self.streamed = b"".join(events)

            async def send() -> AsyncIterator[bytes]:
                for event in events:
                    yield event

            return StreamingResponse(send(), media_type="text/event-stream")
        message = {"role": "assistant", "content": None, "tool_calls": list(self.CALLS)}
        return JSONResponse(
            {
                "id": "chatcmpl-up",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-up",
                "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}],
                "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
            }
        )


@asynccontextmanager
async def forwarded() -> AsyncIterator[tuple[AsyncOpenAI, StreamingToolUpstream]]:
    upstream = StreamingToolUpstream()
    async with serving(upstream.app) as url, proxy(FunctionClient(weather_model), upstream=Upstream(url)) as sdk:
        yield sdk, upstream


async def test_forwarded_pass_through_relays_tool_calls_and_tool_messages_unchanged() -> None:
    messages = agent_turn(CALL_DICT)
    async with forwarded() as (sdk, upstream):
        response = await sdk.chat.completions.create(
            model="gpt-up", messages=messages, tools=TOOLS, tool_choice="required", parallel_tool_calls=True
        )
    (body,) = upstream.bodies
    assert body["messages"] == messages
    assert (body["tools"], body["tool_choice"], body["parallel_tool_calls"]) == (TOOLS, "required", True)
    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert [t.model_dump(exclude_none=True) for t in message.tool_calls or []] == list(StreamingToolUpstream.CALLS)


async def test_forwarded_streams_keep_every_tool_call_piece() -> None:
    # Upstream optillm dropped tool_calls from streamed pass-through answers (its issue 312).
    async with forwarded() as (sdk, upstream):
        stream = await sdk.chat.completions.create(
            model="gpt-up", messages=USER, tools=TOOLS, stream=True, stream_options={"include_usage": True}
        )
        chunks = [c async for c in stream]
        async with httpx.AsyncClient() as http:
            body = {"model": "gpt-up", "messages": USER, "tools": TOOLS, "stream": True}
            raw = await http.post(f"{sdk.base_url}chat/completions", json=body)
    assert raw.content == upstream.streamed
    calls = assembled(chunks)
    assert calls == {
        0: [
            {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
            for c in StreamingToolUpstream.CALLS
        ]
    }
    assert finish_reasons(chunks) == {0: "tool_calls"}
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 32
