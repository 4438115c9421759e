"""Tool definitions, tool calls in messages and completions, and which calls of a run get the caller's tools."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from optillm_core import (
    CallRole,
    Completed,
    GenerationSettings,
    InvalidConfiguration,
    Message,
    ModelClient,
    ModelProfile,
    Optimizer,
    OptimizerConfig,
    Outcome,
    Prompt,
    ResponseEvent,
    RunContext,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
    UnsupportedSetting,
    collect_stream,
)
from optillm_core.testing import Reply, ScriptedClient

pytestmark = pytest.mark.anyio

WEATHER = ToolDefinition(
    name="get_weather",
    description="The current weather in a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CALL = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')


def test_a_tool_choice_is_a_mode_or_one_named_tool() -> None:
    assert GenerationSettings(tool_choice="required").tool_choice == ToolChoice(mode="required")
    assert ToolChoice.tool("get_weather").name == "get_weather"
    with pytest.raises(ValidationError, match="names a tool exactly when"):
        ToolChoice(mode="tool")
    with pytest.raises(ValidationError, match="names a tool exactly when"):
        ToolChoice(mode="auto", name="get_weather")


def test_tool_names_in_one_request_are_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        GenerationSettings(tools=(WEATHER, WEATHER))


def test_settings_keep_their_tools_through_a_copy() -> None:
    settings = GenerationSettings(tools=(WEATHER,), tool_choice="auto")
    copy = settings.with_(temperature=0.5)
    assert copy.tools == (WEATHER,)
    assert copy.tool_choice == ToolChoice()


def test_tool_fields_belong_to_their_roles() -> None:
    assert Message.assistant("", tool_calls=(CALL,)).tool_calls == (CALL,)
    assert Message.tool_result("18 °C", tool_call_id="call_1").tool_call_id == "call_1"
    with pytest.raises(ValidationError, match="only assistant messages"):
        Message(role="user", content="hi", tool_calls=(CALL,))
    with pytest.raises(ValidationError, match="tool_call_id"):
        Message(role="tool", content="18 °C")
    with pytest.raises(ValidationError, match="tool_call_id"):
        Message(role="user", content="hi", tool_call_id="call_1")


def test_arguments_parse_as_an_object_or_say_why_not() -> None:
    assert CALL.parsed_arguments() == {"city": "Paris"}
    assert ToolCall(id="c", name="f", arguments=" ").parsed_arguments() == {}
    with pytest.raises(ValueError, match="not a JSON object"):
        ToolCall(id="c", name="f", arguments="[1]").parsed_arguments()


async def _events(*events: ResponseEvent) -> AsyncIterator[ResponseEvent]:
    for event in events:
        yield event


@given(arguments=st.dictionaries(st.text(max_size=5), st.integers(), max_size=4), cut=st.integers(0, 200))
async def test_a_call_streamed_in_pieces_is_put_back_together(arguments: dict[str, int], cut: int) -> None:
    text = json.dumps(arguments)
    cut = min(cut, len(text))
    completion = await collect_stream(
        _events(
            ToolCallDelta(call=0, id="call_9", name="lookup"),
            ToolCallDelta(call=0, arguments=text[:cut]),
            ToolCallDelta(call=0, arguments=text[cut:]),
            Completed(finish_reasons=("tool_calls",)),
        )
    )
    assert completion.calls == (ToolCall(id="call_9", name="lookup", arguments=text),)
    assert completion.calls[0].parsed_arguments() == arguments
    assert completion.text == ""


async def test_calls_of_several_choices_and_positions_stay_apart() -> None:
    completion = await collect_stream(
        _events(
            ToolCallDelta(index=1, call=1, id="b2", name="g", arguments="{}"),
            ToolCallDelta(index=1, call=0, id="b1", name="f", arguments='{"x":'),
            ToolCallDelta(index=1, call=0, arguments="1}"),
            Completed(finish_reasons=("stop", "tool_calls")),
        ),
        n=2,
    )
    assert completion.calls == ()
    assert [c.id for c in completion.calls_of(1)] == ["b1", "b2"]
    assert completion.calls_of(1)[0].arguments == '{"x":1}'


class _ToolCallingClient(ModelClient):
    """A model with no native n that calls ``get_weather`` on every request."""

    def __init__(self) -> None:
        self.seen: list[GenerationSettings] = []

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        self.seen.append(settings)
        yield ToolCallDelta(id=f"call_{len(self.seen)}", name="get_weather")
        yield ToolCallDelta(arguments='{"city": "Paris"}')
        yield Completed(finish_reasons=("tool_calls",))


async def test_a_fanned_out_request_keeps_each_choices_calls() -> None:
    client = _ToolCallingClient()
    settings = GenerationSettings(n=3, tools=(WEATHER,))
    completion = await client.complete(Prompt.from_query("weather?"), settings)
    assert [len(completion.calls_of(i)) for i in range(3)] == [1, 1, 1]
    assert {completion.calls_of(i)[0].id for i in range(3)} == {"call_1", "call_2", "call_3"}
    async with client.stream(Prompt.from_query("weather?"), settings) as events:
        streamed = await collect_stream(events, 3)
    assert sorted(streamed.calls_of(i)[0].name for i in range(3)) == ["get_weather"] * 3


async def test_scripted_replies_stream_tool_calls_as_openai_does() -> None:
    client = ScriptedClient([Reply("", tool_calls=(CALL,))])
    completion = await client.complete(Prompt.from_query("weather in Paris?"))
    assert completion.calls == (CALL,)
    assert completion.finish_reason() == "tool_calls"


class _Config(OptimizerConfig):
    pass


class DraftThenAnswer(Optimizer[_Config]):
    """A draft (answer call), a rating (judge call), then the final answer made with the caller's tools."""

    name = "draft_then_answer"
    description = "test strategy whose answer is one final call"
    config_type = _Config
    phases: ClassVar[Mapping[str, CallRole]] = {"draft": "answer", "rate": "judge", "final": "final"}
    answers_with_tools = True

    async def run(self, ctx: RunContext[_Config]) -> Outcome:
        await ctx.generate("draft")
        await ctx.generate("rate", ctx.call_settings("judge"))
        final = await ctx.generate_final("final")
        return Outcome(answer=final.text, tool_calls=final.calls)


class DraftsOnly(DraftThenAnswer):
    name = "drafts_only"
    answers_with_tools = False


async def test_only_the_final_call_gets_the_callers_tools_and_its_calls_are_the_answer() -> None:
    client = ScriptedClient(["a draft", "8/10", Reply("", tool_calls=(CALL,))])
    settings = GenerationSettings(tools=(WEATHER,), tool_choice="auto")
    solution = await DraftThenAnswer().optimize("weather in Paris?", client, settings=settings)
    assert [s.tools for s in client.settings_seen] == [None, None, (WEATHER,)]
    assert [s.tool_choice for s in client.settings_seen] == [None, None, ToolChoice()]
    assert solution.tool_calls == (CALL,)
    assert solution.answer == ""


async def test_a_streamed_final_call_returns_its_tool_calls_too() -> None:
    client = ScriptedClient(["a draft", "8/10", Reply("Checking.", tool_calls=(CALL,))])
    seen: list[object] = []
    solution = await DraftThenAnswer().optimize(
        "weather?", client, settings=GenerationSettings(tools=(WEATHER,)), events=seen.append
    )
    assert solution.tool_calls == (CALL,)
    assert solution.answer == "Checking."


async def test_a_strategy_that_cannot_return_tool_calls_refuses_tools_before_any_call() -> None:
    client = ScriptedClient([])
    with pytest.raises(
        InvalidConfiguration, match="drafts_only strategy cannot answer with tools: its answer is not a model call"
    ):
        await DraftsOnly().optimize("weather?", client, settings=GenerationSettings(tools=(WEATHER,)))
    assert client.requests == []


async def test_tools_on_a_model_without_them_are_refused_even_when_dropping_settings() -> None:
    no_tools = ModelProfile(name="no-tools", tools=False)
    assert no_tools.unsupported(GenerationSettings(tools=(WEATHER,))) == ("tools",)
    fitted = no_tools.fit(GenerationSettings(tools=(WEATHER,), tool_choice="required"))
    assert fitted.settings.tools is None and fitted.settings.tool_choice is None
    client = ScriptedClient([], profile=no_tools)
    with pytest.raises(UnsupportedSetting, match="tools"):
        await DraftThenAnswer().optimize(
            "weather?", client, settings=GenerationSettings(tools=(WEATHER,)), unsupported="drop"
        )
    assert client.requests == []
    assert ModelProfile().strictest([no_tools]).tools is False


def test_listings_say_tools_reach_only_strategies_that_answer_with_them() -> None:
    assert "tools" in DraftThenAnswer.caller_settings_for("final")
    assert "tools" not in DraftsOnly.caller_settings_for("final")
    assert "tool_choice" not in DraftThenAnswer.caller_settings_for("answer")
