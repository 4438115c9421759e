"""Tools and tool calls on every provider's wire format, both ways, plain and streamed.

Each provider client is tested against the fake of its wire format (``FakeProviderServer``), which
checks tools and tool turns the way the real provider does and answers 400 in its words, and
replies with tool calls in the provider's own shape, streamed as the provider streams them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from optillm_core import (
    BadRequestError,
    GenerationSettings,
    Message,
    ModelClient,
    Prompt,
    ResponseEvent,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
    collect_stream,
)
from optillm_router import HttpPool, create_provider_client, model_profile
from optillm_router._providers.gemini import gemini_schema
from optillm_router.testing import FakeProviderServer, FakeReply, HttpWireFormat

from .fakes_wire import WireServer, json_answer, ndjson_answer, ndjson_lines, sse_answer, sse_events

pytestmark = pytest.mark.anyio

WIRES: tuple[HttpWireFormat, ...] = ("openai", "anthropic", "gemini", "ollama")
WEATHER = ToolDefinition(
    name="get_weather",
    description="The weather in a city",
    parameters={
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"city": {"type": "string", "description": "The city"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)
TIME = ToolDefinition(name="get_time")
TOOLS = (WEATHER, TIME)
CALLS = (
    ToolCall(id="call_a", name="get_weather", arguments='{"city": "Paris"}'),
    ToolCall(id="call_b", name="get_weather", arguments='{"city": "Rome"}'),
)
HISTORY = Prompt(
    messages=(
        Message.user("Weather in Paris and Rome?"),
        Message.assistant("", tool_calls=CALLS),
        Message.tool_result("18 C, sunny", tool_call_id="call_a"),
        Message.tool_result('{"temp": 21, "sky": "clear"}', tool_call_id="call_b"),
        Message.user("Which is warmer?"),
    ),
    system="Be brief.",
)
ASK = Prompt.from_query("Weather in Paris and Rome?")
CHOICES = [
    ToolChoice(mode="auto"),
    ToolChoice(mode="none"),
    ToolChoice(mode="required"),
    ToolChoice.tool("get_weather"),
]


@asynccontextmanager
async def client_of(server: FakeProviderServer, **options: Any) -> AsyncIterator[ModelClient]:
    async with HttpPool() as http:
        yield create_provider_client(
            server.provider, model=server.model, api_key=None, base_url=server.base_url, http=http, **options
        )


def calls_reply(calls: tuple[ToolCall, ...], text: str = "") -> Any:
    return lambda chat, choice: FakeReply(text, tool_calls=calls)


async def sent_body(wire: HttpWireFormat, prompt: Prompt, settings: GenerationSettings) -> dict[str, Any]:
    async with FakeProviderServer(wire) as server, client_of(server) as client:
        await client.request(prompt, settings)
    (request,) = server.requests
    assert request.status == 200, request.body
    body: dict[str, Any] = request.body
    return body


# -- what goes out ----------------------------------------------------------------------------------


async def test_openai_sends_tools_choices_calls_and_results_in_its_own_shapes() -> None:
    body = await sent_body("openai", HISTORY, GenerationSettings(tools=TOOLS, tool_choice="auto"))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER.parameters,
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body["tool_choice"] == "auto"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18 C, sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": '{"temp": 21, "sky": "clear"}'},
        {"role": "user", "content": "Which is warmer?"},
    ]


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ("openai", ["auto", "none", "required", {"type": "function", "function": {"name": "get_weather"}}]),
        ("anthropic", [{"type": "auto"}, {"type": "none"}, {"type": "any"}, {"type": "tool", "name": "get_weather"}]),
        (
            "gemini",
            [
                {"functionCallingConfig": {"mode": "AUTO"}},
                {"functionCallingConfig": {"mode": "NONE"}},
                {"functionCallingConfig": {"mode": "ANY"}},
                {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
            ],
        ),
    ],
)
async def test_each_tool_choice_in_each_format(wire: HttpWireFormat, expected: list[Any]) -> None:
    field = {"openai": "tool_choice", "anthropic": "tool_choice", "gemini": "toolConfig"}[wire]
    for choice, wanted in zip(CHOICES, expected, strict=True):
        body = await sent_body(wire, ASK, GenerationSettings(tools=TOOLS, tool_choice=choice))
        assert body[field] == wanted


@pytest.mark.parametrize("parallel", [False, True, None])
@pytest.mark.parametrize("wire", WIRES)
async def test_one_call_at_a_time_in_each_format(wire: HttpWireFormat, parallel: bool | None) -> None:
    for choice in CHOICES:
        settings = GenerationSettings(tools=TOOLS, tool_choice=choice.model_copy(update={"parallel": parallel}))
        body = await sent_body(wire, ASK, settings)  # every fake refuses a switch its API refuses
        if wire == "openai":
            sent = body.get("parallel_tool_calls")
        else:
            sent = body["tool_choice"].get("disable_parallel_tool_use") if wire == "anthropic" else None
        expected = {
            "openai": parallel,
            # Anthropic's switch only turns parallel calls off, and tool_choice none takes none.
            "anthropic": True if parallel is False and choice.mode != "none" else None,
        }.get(wire)
        assert sent == expected, (choice, body)
        assert "parallel" not in json.dumps(body) or wire in ("openai", "anthropic")


@pytest.mark.parametrize("wire", WIRES)
async def test_no_tool_choice_goes_out_without_tools(wire: HttpWireFormat) -> None:
    # OpenAI answers 400 to a tool_choice without tools; none of the formats is sent one.
    body = await sent_body(wire, ASK, GenerationSettings(tool_choice=ToolChoice(mode="required", parallel=False)))
    assert not {"tools", "tool_choice", "toolConfig", "parallel_tool_calls"} & set(body)


async def test_anthropic_sends_tool_use_blocks_and_one_user_message_of_results() -> None:
    body = await sent_body("anthropic", HISTORY, GenerationSettings(tools=TOOLS))
    assert body["system"] == "Be brief."
    assert body["tools"] == [
        {"name": "get_weather", "description": "The weather in a city", "input_schema": WEATHER.parameters},
        {"name": "get_time", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "18 C, sunny"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": '{"temp": 21, "sky": "clear"}'},
                {"type": "text", "text": "Which is warmer?"},
            ],
        },
    ]


async def test_anthropic_keeps_the_text_before_a_call() -> None:
    prompt = Prompt(
        messages=(
            Message.user("Weather?"),
            Message.assistant("Let me look.", tool_calls=CALLS[:1]),
            Message.tool_result("18 C", tool_call_id="call_a"),
        )
    )
    body = await sent_body("anthropic", prompt, GenerationSettings(tools=TOOLS))
    assert body["messages"][1]["content"][0] == {"type": "text", "text": "Let me look."}
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "call_a", "content": "18 C"}],
    }


async def test_gemini_sends_declarations_function_calls_and_named_responses() -> None:
    body = await sent_body("gemini", HISTORY, GenerationSettings(tools=TOOLS))
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    # $schema and additionalProperties are unknown fields to Gemini's Schema.
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string", "description": "The city"}},
                        "required": ["city"],
                    },
                },
                {"name": "get_time"},  # an OBJECT without properties is refused: no parameters at all
            ]
        }
    ]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [
                # Calls no Gemini model signed: the first gets the signature Google documents for them.
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "skip_thought_signature_validator",
                },
                {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": "18 C, sunny"}}},
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}},
            ],
        },
        {"role": "user", "parts": [{"text": "Which is warmer?"}]},
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_gemini_3_gets_its_thought_signatures_back_and_a_loop_goes_on(stream: bool) -> None:
    # Gemini 3 signs each step's first call and refuses a function call turn sent back without it.
    settings = GenerationSettings(tools=TOOLS)
    async with (
        FakeProviderServer("gemini", model="gemini-3-pro-preview", reply=calls_reply(CALLS)) as server,
        client_of(server) as client,
    ):
        if stream:
            first = await collect_stream(client.request_stream(ASK, settings))
        else:
            first = await client.request(ASK, settings)
        signature = first.calls[0].signature
        assert signature and first.calls[1].signature is None
        results = tuple(Message.tool_result("18 C", tool_call_id=call.id) for call in first.calls)
        turn = Message.assistant("", tool_calls=first.calls)
        await client.request(Prompt(messages=(*ASK.messages, turn, *results)), settings)
    assert [r.status for r in server.requests] == [200, 200], server.requests[-1].body
    model_turn = server.requests[-1].body["contents"][1]
    assert [p.get("thoughtSignature") for p in model_turn["parts"]] == [signature, None]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_signatures_on_openais_wire_come_back_and_go_out_in_extra_content(stream: bool) -> None:
    # Google's OpenAI-compatible API carries a call's thought signature in extra_content.google.
    signed = (CALLS[0].model_copy(update={"signature": "c2lnbmVk"}), CALLS[1])
    settings = GenerationSettings(tools=TOOLS)
    async with FakeProviderServer("openai", reply=calls_reply(signed)) as server, client_of(server) as client:
        if stream:
            first = await collect_stream(client.request_stream(ASK, settings))
        else:
            first = await client.request(ASK, settings)
        assert [c.signature for c in first.calls] == ["c2lnbmVk", None]
        results = tuple(Message.tool_result("18 C", tool_call_id=call.id) for call in first.calls)
        turn = Message.assistant("", tool_calls=first.calls)
        await client.request(Prompt(messages=(*ASK.messages, turn, *results)), settings)
    sent = server.requests[-1].body["messages"][1]["tool_calls"]
    assert [c.get("extra_content") for c in sent] == [{"google": {"thought_signature": "c2lnbmVk"}}, None]


async def test_gemini_3_refuses_a_call_turn_without_its_signature() -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    answer = {"functionResponse": {"name": "get_weather", "response": {"content": "18 C"}}}

    def body(model_turn: dict[str, Any]) -> dict[str, Any]:
        question = {"role": "user", "parts": [{"text": "Weather?"}]}
        return {"contents": [question, {"role": "model", "parts": [model_turn]}, {"role": "user", "parts": [answer]}]}

    async with FakeProviderServer("gemini", model="gemini-3-pro-preview") as server, httpx.AsyncClient() as http:
        url = f"{server.base_url}/v1beta/models/gemini-3-pro-preview:generateContent"
        refused = await http.post(url, json=body(call))
        accepted = await http.post(url, json=body({**call, "thoughtSignature": "c2lnbmVk"}))
    assert refused.status_code == 400
    assert "missing a `thought_signature`" in refused.json()["error"]["message"]
    assert accepted.status_code == 200, accepted.text


def test_gemini_schema_keeps_the_fields_gemini_knows() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "unit": {"type": ["string", "null"], "enum": ["C", "F"]},
            "days": {"type": "array", "items": {"type": "integer", "minimum": 1, "$comment": "x"}, "maxItems": 7},
            "mode": {"const": "fast"},
            "either": {"type": ["string", "integer"]},
        },
    }
    assert gemini_schema(schema) == {
        "type": "object",
        "properties": {
            "unit": {"nullable": True, "type": "string", "enum": ["C", "F"]},
            "days": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 7},
            "mode": {"enum": ["fast"]},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
    }


async def test_ollama_sends_argument_objects_and_tool_names() -> None:
    body = await sent_body("ollama", HISTORY, GenerationSettings(tools=TOOLS))
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER.parameters,
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}},
    ]
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                {"function": {"name": "get_weather", "arguments": {"city": "Rome"}}},
            ],
        },
        {"role": "tool", "content": "18 C, sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": '{"temp": 21, "sky": "clear"}', "tool_name": "get_weather"},
        {"role": "user", "content": "Which is warmer?"},
    ]


async def test_ollama_has_no_tool_choice_so_it_narrows_the_tools() -> None:
    none = await sent_body("ollama", ASK, GenerationSettings(tools=TOOLS, tool_choice="none"))
    assert "tools" not in none
    named = await sent_body("ollama", ASK, GenerationSettings(tools=TOOLS, tool_choice=ToolChoice.tool("get_time")))
    assert [t["function"]["name"] for t in named["tools"]] == ["get_time"]
    required = await sent_body("ollama", ASK, GenerationSettings(tools=TOOLS, tool_choice="required"))
    assert len(required["tools"]) == 2


# -- what comes back ----------------------------------------------------------------------------------

EXPECTED_IDS: dict[HttpWireFormat, tuple[str, str]] = {
    "openai": ("call_a", "call_b"),
    "anthropic": ("call_a", "call_b"),
    "gemini": ("call_0_0", "call_0_1"),  # Gemini gives no ids: made up per candidate and position
    "ollama": ("call_0_0", "call_0_1"),
}


async def events_of(client: ModelClient, prompt: Prompt, settings: GenerationSettings) -> list[ResponseEvent]:
    return [event async for event in client.request_stream(prompt, settings)]


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("text", ["", "Let me check."])
async def test_tool_calls_come_back_plain_and_streamed(wire: HttpWireFormat, text: str) -> None:
    settings = GenerationSettings(tools=TOOLS)
    async with FakeProviderServer(wire, reply=calls_reply(CALLS, text)) as server, client_of(server) as client:
        plain = await client.request(ASK, settings)
        events = await events_of(client, ASK, settings)
        streamed = await collect_stream(client.request_stream(ASK, settings))
    ids = EXPECTED_IDS[wire]
    expected = tuple(call.model_copy(update={"id": i}) for call, i in zip(CALLS, ids, strict=True))
    for completion in (plain, streamed):
        assert completion.calls == expected
        assert completion.text == text
        assert completion.finish_reasons == ("tool_calls",)
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    firsts = [p for p in pieces if p.id is not None]
    assert [(p.call, p.id, p.name) for p in firsts] == [(0, ids[0], "get_weather"), (1, ids[1], "get_weather")]
    assert all(p.id is None and p.name is None for p in pieces if p not in firsts)
    if wire in ("gemini", "ollama"):  # whole calls, one piece each
        assert [p.arguments for p in pieces] == [c.arguments for c in CALLS]
    else:  # id and name first, then the arguments in fragments
        assert all(p.arguments == "" for p in firsts)
        assert len(pieces) > 4


@pytest.mark.parametrize("wire", ["openai", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
async def test_several_choices_keep_their_own_calls(wire: HttpWireFormat, stream: bool) -> None:
    def reply(chat: dict[str, Any], choice: int) -> FakeReply:
        city = ["Oslo", "Lima"][choice]
        return FakeReply(
            "", tool_calls=(ToolCall(id=f"call_{city}", name="get_weather", arguments=json.dumps({"city": city})),)
        )

    settings = GenerationSettings(tools=TOOLS, n=2)
    server = FakeProviderServer(wire, reply=reply)
    native = model_profile(server.provider, server.model, {"native_n": True})
    async with server, client_of(server, profile=native) as client:
        if stream:
            completion = await collect_stream(client.request_stream(ASK, settings), n=2)
        else:
            completion = await client.request(ASK, settings)
    assert [[json.loads(c.arguments)["city"] for c in completion.calls_of(i)] for i in range(2)] == [["Oslo"], ["Lima"]]
    ids = [completion.calls_of(i)[0].id for i in range(2)]
    assert ids == (["call_Oslo", "call_Lima"] if wire == "openai" else ["call_0_0", "call_1_0"])
    assert completion.finish_reasons == ("tool_calls", "tool_calls")


@pytest.mark.parametrize("wire", WIRES)
async def test_a_reply_without_calls_has_none(wire: HttpWireFormat) -> None:
    async with FakeProviderServer(wire) as server, client_of(server) as client:
        plain = await client.request(ASK, GenerationSettings(tools=TOOLS))
        streamed = await collect_stream(client.request_stream(ASK, GenerationSettings(tools=TOOLS)))
    for completion in (plain, streamed):
        assert completion.tool_calls == ()
        assert completion.finish_reasons == ("stop",)


@pytest.mark.parametrize("wire", WIRES)
async def test_a_model_calls_only_the_tools_it_was_offered(wire: HttpWireFormat) -> None:
    async with FakeProviderServer(wire, reply=calls_reply(CALLS, "Hm.")) as server, client_of(server) as client:
        unoffered = await client.request(ASK, GenerationSettings(tools=(TIME,)))
        refused = await client.request(ASK, GenerationSettings(tools=TOOLS, tool_choice="none"))
        plain = await client.request(ASK, GenerationSettings())
    for completion in (unoffered, refused, plain):
        assert completion.tool_calls == ()
        assert completion.text == "Hm."
    assert completion.finish_reasons == ("stop",)


# -- what the providers refuse -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("openai", r"function 'get_date' not found in 'tools'"),
        ("anthropic", r"tool 'get_date' was not found"),
        ("gemini", r"'get_date' is not declared"),
        ("ollama", r"names 'get_date', which is not among the tools offered"),  # refused before sending
    ],
)
async def test_a_tool_choice_naming_an_unknown_tool_is_refused(wire: HttpWireFormat, message: str) -> None:
    async with FakeProviderServer(wire) as server, client_of(server) as client:
        with pytest.raises(BadRequestError, match=message):
            await client.request(ASK, GenerationSettings(tools=TOOLS, tool_choice=ToolChoice.tool("get_date")))
    assert [r.status for r in server.requests] == ([] if wire == "ollama" else [400])


ORPHAN = Prompt(
    messages=(
        Message.user("Weather?"),
        Message.assistant("", tool_calls=CALLS[:1]),
        Message.tool_result("18 C", tool_call_id="call_zzz"),
    )
)


async def test_openai_refuses_a_tool_message_answering_no_call() -> None:
    async with FakeProviderServer("openai") as server, client_of(server) as client:
        with pytest.raises(BadRequestError, match="must be a response to a preceeding message with 'tool_calls'"):
            await client.request(ORPHAN, GenerationSettings(tools=TOOLS))


async def test_openai_refuses_a_call_left_unanswered() -> None:
    prompt = Prompt(
        messages=(Message.user("Weather?"), Message.assistant("", tool_calls=CALLS), *HISTORY.messages[2:3])
    )
    async with FakeProviderServer("openai") as server, client_of(server) as client:
        with pytest.raises(BadRequestError, match="did not have response messages: call_b"):
            await client.request(prompt, GenerationSettings(tools=TOOLS))


async def test_anthropic_refuses_a_tool_result_that_follows_no_tool_use() -> None:
    async with FakeProviderServer("anthropic") as server, client_of(server) as client:
        with pytest.raises(BadRequestError, match="unexpected `tool_use_id` found in `tool_result` blocks: call_zzz"):
            await client.request(ORPHAN, GenerationSettings(tools=TOOLS))


async def test_anthropic_refuses_a_tool_use_left_without_its_result() -> None:
    prompt = Prompt(messages=(Message.user("Weather?"), Message.assistant("", tool_calls=CALLS[:1]), Message.user("?")))
    async with FakeProviderServer("anthropic") as server, client_of(server) as client:
        with pytest.raises(BadRequestError, match="`tool_use` ids were found without `tool_result` blocks"):
            await client.request(prompt, GenerationSettings(tools=TOOLS))


async def test_gemini_needs_the_call_a_result_answers_and_an_answer_to_every_call() -> None:
    unanswered = Prompt(
        messages=(Message.user("Weather?"), Message.assistant("", tool_calls=CALLS), *HISTORY.messages[2:3])
    )
    async with FakeProviderServer("gemini") as server, client_of(server) as client:
        with pytest.raises(BadRequestError, match="no earlier assistant message made the call 'call_zzz'"):
            await client.request(ORPHAN, GenerationSettings(tools=TOOLS))
        assert server.requests == []  # refused before sending: Gemini names results after their tool
        with pytest.raises(BadRequestError, match="number of function response parts is equal"):
            await client.request(unanswered, GenerationSettings(tools=TOOLS))


async def test_gemini_refuses_schema_fields_it_does_not_know() -> None:
    raw = [{"functionDeclarations": [{"name": "f", "parameters": WEATHER.parameters}]}]
    async with FakeProviderServer("gemini") as server, client_of(server) as client:
        with pytest.raises(BadRequestError, match='Unknown name "\\$schema"'):
            await client.request(ASK, GenerationSettings(extra={"tools": raw}))


@pytest.mark.parametrize("wire", WIRES)
async def test_arguments_that_are_not_an_object_are_refused_where_an_object_is_sent(wire: HttpWireFormat) -> None:
    broken = ToolCall(id="call_a", name="get_weather", arguments="[1, 2")
    prompt = Prompt(
        messages=(
            Message.user("Weather?"),
            Message.assistant("", tool_calls=(broken,)),
            Message.tool_result("x", tool_call_id="call_a"),
        )
    )
    async with FakeProviderServer(wire) as server, client_of(server) as client:
        if wire == "openai":  # the text goes as it is
            await client.request(prompt, GenerationSettings(tools=TOOLS))
            assert server.requests[0].body["messages"][1]["tool_calls"][0]["function"]["arguments"] == "[1, 2"
            return
        with pytest.raises(BadRequestError, match="are not one"):
            await client.request(prompt, GenerationSettings(tools=TOOLS))
    assert server.requests == []


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        ("openai", "Unsupported parameter: 'tools' is not supported with this model"),
        ("anthropic", "does not support tool use"),
        ("gemini", "Function calling is not enabled for models/fake-model"),
        ("ollama", "fake-model does not support tools"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_a_model_without_tools_refuses_them_and_the_client_learns_it(
    wire: HttpWireFormat, message: str, stream: bool
) -> None:
    async def call(client: ModelClient) -> None:
        if stream:
            await collect_stream(client.request_stream(ASK, GenerationSettings(tools=TOOLS)))
        else:
            await client.request(ASK, GenerationSettings(tools=TOOLS))

    async with FakeProviderServer(wire, tools=False) as server, client_of(server) as client:
        before = client.profile
        assert before.tools
        with pytest.raises(BadRequestError, match=message):
            await call(client)
        assert len(server.requests) == 1  # not sent again without the tools: that would lose the calls
        assert not client.profile.tools
        with pytest.raises(BadRequestError, match="does not take tools"):
            await client.request(ASK, GenerationSettings(tools=TOOLS))
        assert len(server.requests) == 1  # refused before sending from now on
        assert (await client.request(ASK, GenerationSettings())).text  # without tools it still answers


@pytest.mark.parametrize("wire", WIRES)
async def test_every_fake_hands_its_reply_function_the_tools_and_tool_turns_in_openais_shape(
    wire: HttpWireFormat,
) -> None:
    settings = GenerationSettings(tools=TOOLS, tool_choice=ToolChoice.tool("get_weather"))
    async with FakeProviderServer(wire) as server, client_of(server) as client:
        await client.request(HISTORY, settings)
    chat = server.requests[0].chat
    offered = ["get_weather"] if wire == "ollama" else ["get_weather", "get_time"]  # Ollama: the named tool alone
    assert [t["function"]["name"] for t in chat["tools"]] == offered
    assert chat.get("tool_choice") == (
        None if wire == "ollama" else {"type": "function", "function": {"name": "get_weather"}}
    )
    messages = chat["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool", "user"]
    assistant = messages[2]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Rome"}),
    ]
    ids = [c["id"] for c in assistant["tool_calls"]]
    results = messages[3:5]
    assert [m["content"] for m in results] == ["18 C, sunny", '{"temp": 21, "sky": "clear"}']
    if wire in ("openai", "anthropic", "gemini"):  # Gemini's are made up, and matched to the calls in order
        assert [m["tool_call_id"] for m in results] == ids


@pytest.mark.parametrize("stream", [False, True])
async def test_gemini_and_ollama_ids_are_used_when_sent(stream: bool) -> None:
    gemini_part = {"functionCall": {"id": "fc-1", "name": "get_weather", "args": {"city": "Paris"}}}
    gemini = {
        "candidates": [{"content": {"role": "model", "parts": [gemini_part]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4},
    }
    ollama_call = {"id": "call_x1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    ollama = {
        "message": {"role": "assistant", "content": "", "tool_calls": [ollama_call]},
        "done": True,
        "done_reason": "stop",
    }
    for provider, answer in (
        ("gemini", sse_answer(sse_events(gemini)) if stream else json_answer(gemini)),
        ("ollama", ndjson_answer(ndjson_lines(ollama)) if stream else json_answer(ollama)),
    ):
        async with WireServer([answer]) as server, HttpPool() as http:
            client = create_provider_client(provider, model="m", api_key="k", base_url=server.url, http=http)
            settings = GenerationSettings(tools=TOOLS)
            if stream:
                completion = await collect_stream(client.request_stream(ASK, settings))
            else:
                completion = await client.request(ASK, settings)
        expected_id = "fc-1" if provider == "gemini" else "call_x1"
        assert completion.calls == (ToolCall(id=expected_id, name="get_weather", arguments='{"city": "Paris"}'),)
        assert completion.finish_reasons == ("tool_calls",)


async def test_openai_servers_that_send_whole_calls_or_repeat_ids_are_read_as_pieces() -> None:
    whole = {"id": "call_w", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    frames = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [dict(whole)]}}]},  # no index
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "call_v", "function": {"name": "get_weather"}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"id": "call_v", "function": {"arguments": '{"city"'}}]}}]},
        {"choices": [{"index": 0, "delta": {"tool_calls": [{"function": {"arguments": ': "Oslo"}'}}]}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    async with WireServer([sse_answer([*sse_events(*frames), b"data: [DONE]\n\n"])]) as server, HttpPool() as http:
        client = create_provider_client("vllm", model="m", api_key=None, base_url=server.url + "/v1", http=http)
        events = await events_of(client, ASK, GenerationSettings(tools=TOOLS))
    pieces = [e for e in events if isinstance(e, ToolCallDelta)]
    assert [(p.call, p.id, p.name, p.arguments) for p in pieces] == [
        (0, "call_w", "get_time", "{}"),
        (1, "call_v", "get_weather", ""),
        (1, None, None, '{"city"'),
        (1, None, None, ': "Oslo"}'),
    ]
