"""``POST /v1/responses`` through the official openai SDK: answers, streams, tools, settings, stored turns, errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import anyio
import httpx
import openai
import pytest
from openai.types.responses import ResponseReasoningItem, ResponseStreamEvent

from optillm_core import (
    GenerationSettings,
    ModelProfile,
    OptimizerRegistry,
    Prompt,
    RateLimitError,
    TokenUsage,
    ToolCall,
)
from optillm_core.testing import FunctionClient, Reply, count_tokens
from optillm_server import ServerLimits, create_app

from .support import EchoStrategy, ShoutStrategy, proxy, replying, serving, test_registry

pytestmark = pytest.mark.anyio

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
CALL = ToolCall(id="call_w1", name="get_weather", arguments='{"city": "Paris"}')
ANSWER = "Take a raincoat: it is 9 degrees and raining in Paris."


def weather_model(prompt: Prompt, settings: GenerationSettings) -> Reply | str:
    """Calls get_weather when offered it and no result is before it; answers from the result otherwise."""
    shown = any(m.role == "tool" for m in prompt.messages) or "<tool_result" in (prompt.messages[-1].content or "")
    if shown:
        return ANSWER
    if settings.tools:
        return Reply("", tool_calls=(CALL,))
    return "no tools"


def with_tools_registry() -> Any:
    """The installed strategies (MoA answers with tools) and the test ones, in a registry of their own."""
    registry = OptimizerRegistry()
    for strategy in (ShoutStrategy, EchoStrategy):
        registry.register(strategy)
    return registry


async def collect(stream: Any) -> tuple[list[Any], Any]:
    """Every event of an SDK stream (typed loosely: the SDK's helper adds its own classes) and the final response."""
    events = [event async for event in stream]
    return events, await stream.get_final_response()


def types_of(events: Sequence[ResponseStreamEvent]) -> list[str]:
    return [event.type for event in events]


async def test_a_plain_request_passes_through_with_the_sdks_response_object() -> None:
    model = FunctionClient(replying)
    async with proxy(model) as sdk:
        response = await sdk.responses.create(model="m", input="Q", instructions="Be brief.", max_output_tokens=50)
    assert response.id.startswith("resp_")
    assert (response.object, response.status, response.model) == ("response", "completed", "m")
    assert response.output_text == "reply to Q"
    (item,) = response.output
    assert item.type == "message"
    assert item.role == "assistant"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (3, 3)
    assert response.usage.total_tokens == 6
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.instructions == "Be brief."
    [request] = model.requests
    assert request.settings.max_tokens == 50
    assert [(m.role, m.content) for m in request.prompt.messages] == [("system", "Be brief."), ("user", "Q")]


async def test_a_strategy_answers_with_the_exact_totals_of_its_calls() -> None:
    model = FunctionClient(replying)
    async with proxy(model) as sdk:
        response = await sdk.responses.create(model="echo-m", input="Q")
    assert response.output_text == "reply to final: reply to draft: Q"
    assert response.model == "echo-m"
    expected = TokenUsage()
    for call in model.requests:
        prompt = sum(count_tokens(m.content) for m in call.messages)
        expected = expected + TokenUsage(
            input_tokens=prompt, output_tokens=count_tokens(replying(call.prompt, call.settings))
        )
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (
        expected.input_tokens,
        expected.output_tokens,
    )


async def test_pipelines_run_and_side_by_side_strategies_are_refused() -> None:
    model = FunctionClient(replying)
    async with proxy(model) as sdk:
        piped = await sdk.responses.create(model="shout&echo-m", input="Q")
        assert piped.output_text.startswith("reply to final: reply to draft: Q")
        by_field = await sdk.responses.create(model="m", input="Q", extra_body={"optillm_approach": "shout"})
        assert by_field.output_text == "REPLY TO SHOUT: Q"
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model="shout|echo-m", input="Q")
    assert "side by side" in str(refused.value)


STREAM_TEXT = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
STREAM_END = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.parametrize("model_name", ["m", "echo-m"], ids=["pass-through", "strategy"])
async def test_a_stream_has_the_full_event_sequence_with_rising_sequence_numbers(model_name: str) -> None:
    model = FunctionClient(replying)
    async with proxy(model) as sdk, sdk.responses.stream(model=model_name, input="Q") as stream:
        events, final = await collect(stream)
    kinds = types_of(events)[:2] + [k for k in types_of(events)[2:] if k != "response.in_progress"]  # progress
    text_events = [e for e in events if e.type == "response.output_text.delta"]
    assert text_events
    assert [k for k in kinds if k != "response.output_text.delta"] == STREAM_TEXT + STREAM_END
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in text_events) == final.output_text
    assert final.status == "completed"
    assert final.usage is not None and final.usage.total_tokens > 0
    assert final.output_text == ("reply to Q" if model_name == "m" else "reply to final: reply to draft: Q")


async def test_a_strategy_streams_its_progress_as_in_progress_events() -> None:
    model = FunctionClient(replying)
    async with proxy(model) as sdk, sdk.responses.stream(model="echo-m", input="Q") as stream:
        events, _ = await collect(stream)
    notes = [
        (e.model_extra or {}).get("optillm", {}).get("progress")
        for e in events
        if e.type == "response.in_progress" and (e.model_extra or {}).get("optillm")
    ]
    assert notes == ["echo started", "phase draft (echo)", "phase final (echo)"]


async def test_keep_alive_ticks_are_in_progress_events_that_reset_codexs_idle_timer() -> None:
    """While the model is quiet the stream carries real events (SSE comments would not reset Codex's timer)."""
    ticked = anyio.Event()

    async def quiet(prompt: Prompt, settings: GenerationSettings) -> str:
        await ticked.wait()  # answers only once the client has seen the ticks
        return "done"

    events: list[Any] = []
    async with (
        proxy(FunctionClient(quiet), keepalive_seconds=0.01) as sdk,
        sdk.responses.stream(model="shout-m", input="Q") as stream,
    ):
        async for event in stream:
            events.append(event)
            ticks = [e for e in events if e.type == "response.in_progress" and not (e.model_extra or {}).get("optillm")]
            if len(ticks) >= 3:
                ticked.set()
        final = await stream.get_final_response()
    assert final.output_text == "DONE"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("model_name", ["m", "moa-m"], ids=["pass-through", "moa"])
async def test_a_function_tool_loop_calls_the_tool_then_answers_from_its_output(stream: bool, model_name: str) -> None:
    model = FunctionClient(weather_model)
    async with proxy(model, registry=with_tools_registry()) as sdk:
        first = await sdk.responses.create(model=model_name, input="Weather in Paris?", tools=[WEATHER])
        (call,) = [item for item in first.output if item.type == "function_call"]
        assert (call.name, json.loads(call.arguments), call.call_id) == ("get_weather", {"city": "Paris"}, "call_w1")
        follow_up: Any = [
            {"role": "user", "content": "Weather in Paris?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature_c": 9}'},
        ]
        if stream:
            async with sdk.responses.stream(model=model_name, input=follow_up, tools=[WEATHER]) as events:
                _, second = await collect(events)
        else:
            second = await sdk.responses.create(model=model_name, input=follow_up, tools=[WEATHER])
    assert second.output_text == ANSWER
    assert [item.type for item in second.output] == ["message"]
    (definition,) = next(r.settings.tools for r in model.requests if r.settings.tools)
    assert (definition.name, definition.strict) == ("get_weather", True)


async def test_a_streamed_call_has_its_argument_events_and_the_sdk_assembles_it() -> None:
    model = FunctionClient(weather_model)
    async with proxy(model, registry=with_tools_registry()) as sdk:
        for model_name in ("m", "moa-m"):
            async with sdk.responses.stream(model=model_name, input="Weather?", tools=[WEATHER]) as stream:
                events, final = await collect(stream)
            kinds = types_of(events)
            assert "response.function_call_arguments.delta" in kinds
            assert kinds.index("response.function_call_arguments.done") < kinds.index("response.completed")
            (call,) = [item for item in final.output if item.type == "function_call"]
            assert (call.arguments, call.status) == ('{"city": "Paris"}', "completed")


async def test_custom_tools_reach_the_model_as_a_one_string_function_and_return_as_custom_calls() -> None:
    patch = "*** Begin Patch\n*** End Patch"

    def patcher(prompt: Prompt, settings: GenerationSettings) -> Reply | str:
        if any(m.role == "tool" for m in prompt.messages):
            return "patched"
        return Reply(
            "", tool_calls=(ToolCall(id="call_p", name="apply_patch", arguments=json.dumps({"input": patch})),)
        )

    tool: Any = {
        "type": "custom",
        "name": "apply_patch",
        "description": "Apply a patch.",
        "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"},
    }
    model = FunctionClient(patcher)
    async with proxy(model) as sdk:
        first = await sdk.responses.create(model="m", input="fix it", tools=[tool])
        (call,) = first.output
        assert call.type == "custom_tool_call"
        assert (call.name, call.input, call.call_id) == ("apply_patch", patch, "call_p")
        second = await sdk.responses.create(
            model="m",
            input=[
                {"role": "user", "content": "fix it"},
                call.model_dump(exclude_none=True),  # type: ignore[list-item]
                {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done!"},
            ],
            tools=[tool],
        )
    assert second.output_text == "patched"
    (definition,) = model.requests[0].settings.tools or ()
    assert definition.parameters["required"] == ["input"]
    assert "lark grammar" in definition.parameters["properties"]["input"]["description"]
    sent = model.requests[1].prompt.messages
    assert sent[1].tool_calls[0].arguments == json.dumps({"input": patch})
    assert (sent[2].role, sent[2].content) == ("tool", "Done!")


async def test_hosted_tools_are_left_out_of_what_the_model_sees_and_named_in_the_response() -> None:
    model = FunctionClient(replying)
    tools: Any = [
        WEATHER,
        {"type": "web_search"},
        {"type": "namespace", "name": "multi_agent_v1", "tools": []},
        {"type": "image_generation"},
    ]
    async with proxy(model) as sdk:
        response = await sdk.responses.create(model="m", input="Q", tools=tools)
    assert [t.name for t in model.requests[0].settings.tools or ()] == ["get_weather"]
    assert (response.model_extra or {})["optillm"]["dropped_tools"] == [
        "web_search",
        "namespace:multi_agent_v1",
        "image_generation",
    ]


async def test_structured_output_reaches_an_openai_model_and_is_refused_for_a_strategy() -> None:
    model = FunctionClient(lambda prompt, settings: '{"city": "Paris"}')
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    text: Any = {"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}}
    async with proxy(model) as sdk:
        response = await sdk.responses.create(model="m", input="Where?", text=text)
        assert json.loads(response.output_text) == {"city": "Paris"}
        assert model.requests[0].settings.extra["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "place", "schema": schema, "strict": True},
        }
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model="echo-m", input="Where?", text=text)
    assert "text.format" in str(refused.value)


@pytest.mark.parametrize(
    ("profile", "field", "value"),
    [
        (ModelProfile(thinking="hidden"), "reasoning_effort", "high"),
        (ModelProfile(thinking="anthropic_blocks"), "thinking", {"type": "enabled", "budget_tokens": 16384}),
        (
            ModelProfile(thinking="gemini_thoughts"),
            "thinkingConfig",
            {"thinkingBudget": 16384, "includeThoughts": True},
        ),
        (ModelProfile(), None, None),
    ],
    ids=["openai-reasoning", "anthropic", "gemini", "no-reasoning"],
)
async def test_reasoning_effort_reaches_the_model_in_its_providers_form(
    profile: ModelProfile, field: str | None, value: Any
) -> None:
    model = FunctionClient(replying, profile=profile)
    async with proxy(model) as sdk:
        await sdk.responses.create(model="m", input="Q", reasoning={"effort": "high"})
    extra = dict(model.requests[0].settings.extra)
    assert extra == ({field: value} if field else {})


async def test_openai_only_settings_reach_openais_api_and_no_other() -> None:
    openai_reasoning = ModelProfile(thinking="hidden", max_tokens_field="max_completion_tokens")
    fields: Any = {"service_tier": "flex", "prompt_cache_key": "thread-1", "text": {"verbosity": "low"}}
    for profile, expected in (
        (openai_reasoning, {"service_tier": "flex", "prompt_cache_key": "thread-1", "verbosity": "low"}),
        (ModelProfile(), {}),
        (ModelProfile(thinking="anthropic_blocks"), {}),
    ):
        model = FunctionClient(replying, profile=profile)
        async with proxy(model) as sdk:
            response = await sdk.responses.create(model="m", input="Q", **fields)
        assert dict(model.requests[0].settings.extra) == expected
        assert (response.service_tier, response.prompt_cache_key) == ("flex", "thread-1")  # echoed either way


async def test_a_strategys_thinking_comes_back_as_a_reasoning_item_with_a_summary() -> None:
    model = FunctionClient(
        lambda prompt, settings: Reply("the answer", thinking="I weighed it."),
        profile=ModelProfile(thinking="reasoning_content"),
    )
    async with proxy(model) as sdk:
        plain = await sdk.responses.create(model="echo-m", input="Q", reasoning={"summary": "auto"})
        async with sdk.responses.stream(model="echo-m", input="Q", reasoning={"summary": "auto"}) as stream:
            events, streamed = await collect(stream)
        passed = await sdk.responses.create(model="m", input="Q", reasoning={"summary": "auto"})
    for response in (plain, streamed, passed):
        kinds = [item.type for item in response.output]
        assert set(kinds) == {"reasoning", "message"}
        (reasoning,) = [item for item in response.output if isinstance(item, ResponseReasoningItem)]
        assert reasoning.summary[0].text == "I weighed it."
        assert response.output_text == "the answer"
    assert "response.reasoning_summary_text.delta" in types_of(events)


async def test_previous_response_id_continues_a_stored_conversation_and_get_returns_it() -> None:
    model = FunctionClient(replying)
    async with proxy(model) as sdk:
        first = await sdk.responses.create(model="m", input="first question")
        second = await sdk.responses.create(model="m", input="second question", previous_response_id=first.id)
        fetched = await sdk.responses.retrieve(first.id)
        unstored = await sdk.responses.create(model="m", input="Q", store=False)
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(unstored.id)
        with pytest.raises(openai.BadRequestError) as unknown:
            await sdk.responses.create(model="m", input="Q", previous_response_id="resp_nope")
    assert [(m.role, m.content) for m in model.requests[1].prompt.messages] == [
        ("user", "first question"),
        ("assistant", "reply to first question"),
        ("user", "second question"),
    ]
    assert second.previous_response_id == first.id
    assert (fetched.id, fetched.output_text) == (first.id, "reply to first question")
    assert unknown.value.code == "previous_response_not_found"


async def test_the_store_is_bounded_in_count() -> None:
    model = FunctionClient(replying)
    async with proxy(model, limits=ServerLimits(max_stored_responses=2)) as sdk:
        ids = [(await sdk.responses.create(model="m", input=f"Q{i}")).id for i in range(3)]
        with pytest.raises(openai.NotFoundError):
            await sdk.responses.retrieve(ids[0])
        assert (await sdk.responses.retrieve(ids[2])).id == ids[2]


async def test_errors_before_the_stream_are_in_openais_shape() -> None:
    model = FunctionClient(replying)
    async with proxy(model) as sdk:
        with pytest.raises(openai.BadRequestError) as unknown:
            await sdk.responses.create(model="m", input="Q", extra_body={"optillm_approach": "nope"})
        image_input: Any = [{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]}]
        with pytest.raises(openai.BadRequestError) as image:
            await sdk.responses.create(model="m", input=image_input)
        with pytest.raises(openai.BadRequestError) as orphan:
            await sdk.responses.create(
                model="m", input=[{"type": "function_call_output", "call_id": "call_x", "output": "1"}]
            )
    assert (unknown.value.code, unknown.value.param) == ("unknown_strategy", "optillm_approach")
    assert image.value.param == "input.0.content.0"
    assert orphan.value.param == "input.0.call_id"


@pytest.mark.parametrize("model_name", ["m", "shout-m"], ids=["pass-through", "strategy"])
async def test_a_rate_limit_after_the_stream_began_is_response_failed_with_a_retry_delay(model_name: str) -> None:
    def limited(prompt: Prompt, settings: GenerationSettings) -> str:
        raise RateLimitError("slow down", status_code=429, retry_after=11.054)

    async with proxy(FunctionClient(limited)) as sdk, sdk.responses.stream(model=model_name, input="Q") as stream:
        events = [event async for event in stream]
    assert types_of(events)[:2] == ["response.created", "response.in_progress"]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.error is not None
    assert failed.response.error.code == "rate_limit_exceeded"
    assert "Please try again in 11.054s" in failed.response.error.message
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_what_codex_sends_is_accepted_as_it_is() -> None:
    """The request Codex CLI 0.169 sends: its tool types, reasoning, include, store false, unknown fields."""
    model = FunctionClient(replying)
    body = {
        "model": "m",
        "instructions": "You are Codex.",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox: none"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]},
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "earlier"}], "encrypted_content": None},
        ],
        "tools": [
            {
                "type": "function",
                "name": "exec_command",
                "description": "Runs a command.",
                "strict": False,
                "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
            },
            {"type": "namespace", "name": "multi_agent_v1", "description": "agents", "tools": []},
            {"type": "web_search", "external_web_access": False},
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "reasoning": {"summary": "auto"},
        "store": False,
        "stream": True,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "thread-1",
        "client_metadata": {"x-codex": "1"},
        "a_field_added_later": {"anything": 1},
    }
    async with proxy(model) as sdk:
        base = str(sdk.base_url).rstrip("/")
        async with httpx.AsyncClient() as http, http.stream("POST", f"{base}/responses", json=body) as response:
            assert response.status_code == 200
            text = "".join([chunk async for chunk in response.aiter_text()])
    data = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert data[-1]["type"] == "response.completed"
    assert data[-1]["response"]["output"][-1]["content"][0]["text"] == "reply to hello"
    sent = model.requests[0]
    assert sent.prompt.messages[0].content == "You are Codex.\n\nsandbox: none"
    assert [t.name for t in sent.settings.tools or ()] == ["exec_command"]


async def test_a_server_without_upstream_keeps_every_endpoint_apart() -> None:
    """The Responses endpoint beside the others: chat still answers as before; an unknown id is a 404."""
    app = create_app(client=FunctionClient(replying), model="m", registry=test_registry())
    chat_body = {"model": "m", "messages": [{"role": "user", "content": "Q"}]}
    async with serving(app) as url, httpx.AsyncClient() as http:
        chat = await http.post(f"{url}/chat/completions", json=chat_body)
        responses = await http.post(f"{url}/responses", json={"model": "m", "input": "Q"})
        missing = await http.get(f"{url}/responses/resp_missing")
    assert chat.json()["choices"][0]["message"]["content"] == "reply to Q"
    assert responses.json()["output"][0]["content"][0]["text"] == "reply to Q"
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "response_not_found"
