"""Tools through ``/v1/messages``: definitions and choices in, ``tool_use`` blocks out, ``tool_result`` blocks in."""

from __future__ import annotations

import json
from typing import Any, ClassVar

import anthropic
import pytest
from anthropic.types import Message as SdkMessage
from anthropic.types import MessageParam, ToolParam

from optillm_core import (
    Optimizer,
    OptimizerConfig,
    Outcome,
    RunContext,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)
from optillm_core.testing import Reply, ScriptedClient

from .messages_support import USER, blocks, messages_proxy, raw_proxy, sse_events
from .support import test_registry

pytestmark = pytest.mark.anyio

WEATHER: ToolParam = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CALL = ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}')


async def test_a_tool_call_comes_back_as_a_tool_use_block() -> None:
    model = ScriptedClient([Reply("", tool_calls=(CALL,)), Reply("Let me check.", tool_calls=(CALL,))])
    async with messages_proxy(model) as sdk:
        bare = await sdk.messages.create(
            model="m", max_tokens=50, messages=USER, tools=[WEATHER], tool_choice={"type": "any"}
        )
        with_text = await sdk.messages.create(model="m", max_tokens=50, messages=USER, tools=[WEATHER])
    assert blocks(bare) == [("tool_use", "toolu_1", "get_weather", {"city": "Paris"})]
    assert bare.stop_reason == "tool_use"
    assert blocks(with_text) == [("text", "Let me check."), ("tool_use", "toolu_1", "get_weather", {"city": "Paris"})]
    first, second = model.requests
    assert first.settings.tools == (
        ToolDefinition(name="get_weather", description="The weather in a city", parameters=WEATHER["input_schema"]),
    )
    assert first.settings.tool_choice == ToolChoice(mode="required")
    assert second.settings.tool_choice is None


async def test_a_streamed_tool_call_is_a_tool_use_block_with_input_json_deltas() -> None:
    model = ScriptedClient([Reply("Checking.", tool_calls=(CALL,)), Reply("", tool_calls=(CALL,))])
    body = {"model": "m", "max_tokens": 50, "messages": USER, "tools": [WEATHER], "stream": True}
    async with raw_proxy(model) as http:
        response = await http.post("/v1/messages", json=body)
    async with (
        messages_proxy(model) as sdk,
        sdk.messages.stream(model="m", max_tokens=50, messages=USER, tools=[WEATHER]) as stream,
    ):
        final = await stream.get_final_message()
    payloads = [json.loads(data) for name, data in sse_events(response.text)]
    starts = [p["content_block"] for p in payloads if p["type"] == "content_block_start"]
    assert starts == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}},
    ]
    json_deltas = [p for p in payloads if p["type"] == "content_block_delta" and "partial_json" in p["delta"]]
    json_pieces = [p["delta"]["partial_json"] for p in json_deltas]
    assert len(json_pieces) == 2  # the double streams a call's arguments in two pieces, as OpenAI does
    assert "".join(json_pieces) == CALL.arguments
    assert {p["index"] for p in json_deltas} == {1}
    delta = next(p for p in payloads if p["type"] == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert blocks(final) == [("tool_use", "toolu_1", "get_weather", {"city": "Paris"})]
    assert final.stop_reason == "tool_use"


async def test_tool_results_go_back_to_the_model_as_tool_messages() -> None:
    model = ScriptedClient(["It is 18 degrees in Paris."])
    turns: list[MessageParam] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Lyon"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "no data"}],
                    "is_error": True,
                },
                {"type": "text", "text": "Thanks."},
            ],
        },
    ]
    async with messages_proxy(model) as sdk:
        message = await sdk.messages.create(model="m", max_tokens=50, messages=turns, tools=[WEATHER])
    assert blocks(message) == [("text", "It is 18 degrees in Paris.")]
    assert message.stop_reason == "end_turn"
    [request] = model.requests
    sent = [(m.role, m.content, m.tool_calls, m.tool_call_id) for m in request.messages]
    assert sent == [
        ("user", "Weather in Paris?", (), None),
        (
            "assistant",
            "Let me check.",
            (
                ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Paris"}'),
                ToolCall(id="toolu_2", name="get_weather", arguments='{"city": "Lyon"}'),
            ),
            None,
        ),
        ("tool", "18 C", (), "toolu_1"),
        ("tool", "Error: no data", (), "toolu_2"),
        ("user", "Thanks.", (), None),
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, ToolChoice(mode="auto")),
        ({"type": "none"}, ToolChoice(mode="none")),
        ({"type": "any", "disable_parallel_tool_use": True}, ToolChoice(mode="required", parallel=False)),
        ({"type": "auto", "disable_parallel_tool_use": False}, ToolChoice(mode="auto", parallel=True)),
        ({"type": "tool", "name": "get_weather"}, ToolChoice.tool("get_weather")),
    ],
)
async def test_tool_choices_map_to_core_tool_choices(choice: Any, expected: ToolChoice) -> None:
    model = ScriptedClient(["ok"])
    async with messages_proxy(model) as sdk:
        await sdk.messages.create(model="m", max_tokens=50, messages=USER, tools=[WEATHER], tool_choice=choice)
    assert model.requests[0].settings.tool_choice == expected


@pytest.mark.parametrize(
    "choice",
    [{"type": "none", "disable_parallel_tool_use": True}, {"type": "auto", "disable_parallel_tool_use": "yes"}],
)
async def test_a_parallel_switch_anthropic_would_refuse_is_a_400(choice: Any) -> None:
    model = ScriptedClient([])
    async with messages_proxy(model) as sdk:
        with pytest.raises(anthropic.BadRequestError, match="disable_parallel_tool_use"):
            await sdk.messages.create(model="m", max_tokens=50, messages=USER, tools=[WEATHER], tool_choice=choice)
    assert model.requests == []


async def test_a_tool_choice_naming_an_unknown_tool_is_a_400() -> None:
    model = ScriptedClient([])
    async with messages_proxy(model) as sdk:
        with pytest.raises(anthropic.BadRequestError) as raised:
            await sdk.messages.create(
                model="m", max_tokens=50, messages=USER, tools=[WEATHER], tool_choice={"type": "tool", "name": "nope"}
            )
    assert "tool_choice.name" in str(raised.value)
    assert model.requests == []


class AnswerWithTools(Optimizer[OptimizerConfig]):
    """A draft without tools, then one final call with the caller's tools whose answer is returned as it is."""

    name = "toolish"
    description = "test strategy: a draft, then a final call that may call the caller's tools"
    answers_with_tools: ClassVar[bool] = True

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        draft = await ctx.generate(ctx.prompt(f"draft: {ctx.query}"))
        final = await ctx.generate_final(ctx.prompt(f"final: {draft.text}"))
        return Outcome(answer=final.text, thinking=final.reasoning, tool_calls=final.calls)


@pytest.mark.parametrize("stream", [False, True])
async def test_a_strategy_that_answers_with_tools_returns_its_tool_calls_as_tool_use_blocks(stream: bool) -> None:
    model = ScriptedClient(["a draft", Reply("I will look it up.", tool_calls=(CALL,))])
    registry = test_registry()
    registry.register(AnswerWithTools)
    async with messages_proxy(model, registry=registry) as sdk:
        message: SdkMessage
        if stream:
            async with sdk.messages.stream(model="toolish-m", max_tokens=50, messages=USER, tools=[WEATHER]) as events:
                message = await events.get_final_message()
        else:
            message = await sdk.messages.create(model="toolish-m", max_tokens=50, messages=USER, tools=[WEATHER])
    assert blocks(message) == [
        ("text", "I will look it up."),
        ("tool_use", "toolu_1", "get_weather", {"city": "Paris"}),
    ]
    assert message.stop_reason == "tool_use"
    draft, final = model.requests
    assert draft.settings.tools is None  # the strategy's own calls run without the caller's tools
    assert final.settings.tools is not None
    assert [t.name for t in final.settings.tools] == ["get_weather"]


async def test_a_strategy_answers_a_conversation_that_ends_with_tool_results() -> None:
    turns: list[MessageParam] = [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "18 C"}]},
    ]
    model = ScriptedClient(["It is 18 C."])
    async with messages_proxy(model) as sdk:
        message = await sdk.messages.create(model="shout-m", max_tokens=50, messages=turns)
    assert message.content[0].type == "text"
    (request,) = model.requests
    assert "Weather?" in request.user_text and "18 C" in request.user_text  # the query carries the results


async def test_tool_arguments_that_are_not_an_object_are_an_upstream_error() -> None:
    broken = ToolCall(id="toolu_9", name="get_weather", arguments="[1, 2]")
    model = ScriptedClient([Reply("", tool_calls=(broken,))])
    async with messages_proxy(model) as sdk:
        with pytest.raises(anthropic.InternalServerError) as raised:
            await sdk.messages.create(model="m", max_tokens=50, messages=USER, tools=[WEATHER])
    assert "not a JSON object" in str(raised.value)
