"""The tool-call wire pieces on their own: parsing, writing, streamed pieces, and conversations given to strategies."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    GenerationSettings,
    OptimizerRegistry,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
    collect_stream,
)
from optillm_server._conversation import client_prompt, strategy_input
from optillm_server._errors import ApiError
from optillm_server._tools import (
    ToolCallPieces,
    check_strategies_answer_with_tools,
    choice_finish_reason,
    message_tool_calls,
    parse_tool_calls,
    parse_tool_choice,
    parse_tools,
    stage_settings,
    tool_call_chunks,
)
from optillm_server._wire import ChatMessage, ChatRequest

from .support import EchoStrategy, ShoutStrategy

names = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
json_text = st.text(max_size=40)
calls = st.lists(
    st.builds(ToolCall, id=st.text(min_size=1, max_size=12), name=names, arguments=json_text),
    max_size=4,
    unique_by=lambda call: call.id,
)


@given(calls)
def test_tool_calls_written_to_a_message_read_back_as_they_were(made: list[ToolCall]) -> None:
    assert parse_tool_calls(message_tool_calls(made), "messages.0.tool_calls") == tuple(made)


@given(st.lists(st.tuples(names, st.text(max_size=30)), min_size=1, max_size=4, unique_by=lambda t: t[0]))
def test_tool_definitions_are_read_with_their_names_descriptions_and_schemas(tools: list[tuple[str, str]]) -> None:
    wire = [
        {"type": "function", "function": {"name": name, "description": text, "parameters": {"type": "object"}}}
        for name, text in tools
    ]
    parsed = parse_tools(wire)
    assert parsed == tuple(
        ToolDefinition(name=name, description=text, parameters={"type": "object"}) for name, text in tools
    )


@given(calls, st.data())
def test_streamed_pieces_put_together_give_the_calls_back(made: list[ToolCall], data: st.DataObject) -> None:
    """However a provider splits each call's arguments, the pieces the proxy sends rebuild the same calls."""
    events: list[ToolCallDelta] = []
    for position, call in enumerate(made):
        cuts = sorted(data.draw(st.lists(st.integers(0, len(call.arguments)), max_size=3)))
        bounds = [0, *cuts, len(call.arguments)]
        fragments = [call.arguments[a:b] for a, b in itertools.pairwise(bounds)]
        events.append(ToolCallDelta(call=position, id=call.id, name=call.name, arguments=fragments[0]))
        events += [ToolCallDelta(call=position, arguments=f) for f in fragments[1:]]
    pieces = ToolCallPieces()
    deltas = [d for d in (pieces.delta(e) for e in events) if d is not None]
    rebuilt: dict[int, dict[str, str]] = {}
    for delta in deltas:
        (piece,) = delta["tool_calls"]
        part = rebuilt.setdefault(piece["index"], {"id": "", "name": "", "arguments": ""})
        part["id"] = piece.get("id", part["id"])
        part["name"] += piece["function"].get("name", "")
        part["arguments"] += piece["function"]["arguments"]
        if "id" in piece:
            assert piece["type"] == "function"
    expected = {i: {"id": c.id, "name": c.name, "arguments": c.arguments} for i, c in enumerate(made)}
    assert rebuilt == expected
    assert pieces.called(0) is bool(made)

    async def stream() -> Any:
        for event in events:
            yield event

    # core collects the same calls from the same events (an empty argument text becomes "{}")
    collected = anyio.run(collect_stream, stream())
    assert collected.calls == tuple(c.model_copy(update={"arguments": c.arguments or "{}"}) for c in made)


def test_a_call_without_an_id_gets_the_id_core_gives_it() -> None:
    delta = ToolCallPieces().delta(ToolCallDelta(index=1, call=2, name="f", arguments="{}"))
    assert delta == {
        "tool_calls": [{"index": 2, "id": "call_1_2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    }


def test_whole_calls_go_out_one_chunk_each() -> None:
    made = (ToolCall(id="a", name="f", arguments="{}"), ToolCall(id="b", name="g", arguments='{"x": 1}'))
    assert tool_call_chunks(made) == [
        {"tool_calls": [{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {
            "tool_calls": [
                {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": '{"x": 1}'}}
            ]
        },
    ]


@pytest.mark.parametrize(
    ("reason", "has_calls", "expected"),
    [("stop", True, "tool_calls"), (None, True, "tool_calls"), ("length", True, "length"), (None, False, "stop")],
)
def test_a_choice_that_called_tools_finishes_with_tool_calls(reason: Any, has_calls: bool, expected: str) -> None:
    assert choice_finish_reason(reason, has_calls) == expected


def test_tool_choice_forms() -> None:
    tools = parse_tools([{"type": "function", "function": {"name": "f"}}])
    assert parse_tool_choice("auto", tools) == ToolChoice(mode="auto")
    assert parse_tool_choice("required", tools) == ToolChoice(mode="required")
    assert parse_tool_choice({"type": "function", "function": {"name": "f"}}, tools) == ToolChoice.tool("f")
    assert parse_tool_choice("none", None) is None
    assert parse_tools([]) is None
    with pytest.raises(ApiError, match="'tool_choice' must be"):
        parse_tool_choice({"type": "function", "name": "f"}, tools)  # the Responses API's form


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"parallel_tool_calls": False}, ToolChoice(mode="auto", parallel=False)),
        ({"parallel_tool_calls": True, "tool_choice": "required"}, ToolChoice(mode="required", parallel=True)),
        ({"tool_choice": "required"}, ToolChoice(mode="required")),
        ({}, None),
    ],
)
def test_parallel_tool_calls_is_part_of_the_tool_choice(fields: dict[str, Any], expected: ToolChoice | None) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    request = ChatRequest.parse(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools, **fields}
    )
    assert request.settings().tool_choice == expected
    # Without tools it asks for nothing, as tool_choice auto does.
    bare = ChatRequest.parse(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "parallel_tool_calls": False}
    )
    assert bare.settings().tool_choice is None


# -- conversations given to strategies -------------------------------------------------------------

CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
CALL_2 = {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}


def chat(*messages: dict[str, Any]) -> list[ChatMessage]:
    return [ChatMessage.model_validate(m) for m in messages]


def test_tool_results_after_the_last_user_message_join_the_query_and_earlier_turns_the_transcript() -> None:
    question = strategy_input(
        chat(
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi, I am in Paris."},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Umbrella today?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "rain"},
            {"role": "assistant", "content": None, "tool_calls": [CALL_2]},
            {"role": "tool", "tool_call_id": "c2", "content": "08:00"},
        )
    )
    query, results = question.query.split("\n\n---\n", 1)
    assert query == "Umbrella today?"
    assert results.startswith("Tools have already been called for this request")
    assert results.endswith(
        "<assistant>\nLet me check.\n"
        '<tool_call id="c1" name="get_weather">\n{"city": "Paris"}\n</tool_call>\n</assistant>\n'
        '<tool_result call="c1" name="get_weather">\nrain\n</tool_result>\n'
        '<assistant>\n<tool_call id="c2" name="get_time">\n{}\n</tool_call>\n</assistant>\n'
        '<tool_result call="c2" name="get_time">\n08:00\n</tool_result>'
    )
    system = question.system_prompt or ""
    assert system.startswith("Be brief.\n\nEarlier turns of this conversation")
    assert system.endswith("<user>\nHi, I am in Paris.\n</user>\n<assistant>\nHello!\n</assistant>")


def test_tool_calls_of_earlier_turns_are_in_the_transcript_and_a_new_question_is_the_query() -> None:
    question = strategy_input(
        chat(
            {"role": "user", "content": "Umbrella today?"},
            {"role": "assistant", "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "rain"},
            {"role": "assistant", "content": "Yes, take one."},
            {"role": "user", "content": "And tomorrow?"},
        )
    )
    assert question.query == "And tomorrow?"
    assert '<tool_result call="c1" name="get_weather">\nrain\n</tool_result>' in (question.system_prompt or "")


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
        [{"role": "user", "content": "Q"}, {"role": "assistant", "tool_calls": [CALL]}],
        [{"role": "system", "content": "S"}],
    ],
    ids=["answered", "calls-without-results", "no-user"],
)
def test_a_conversation_that_ends_with_the_assistant_is_refused(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(ApiError, match="must come from the user, or be the results"):
        strategy_input(chat(*messages))


def test_the_client_gets_tool_calls_and_results_as_messages() -> None:
    prompt = client_prompt(
        chat(
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "rain"}]},
        )
    )
    assistant, result = prompt.messages[1:]
    assert assistant.tool_calls == (ToolCall(id="c1", name="get_weather", arguments='{"city": "Paris"}'),)
    assert (result.role, result.tool_call_id, result.content) == ("tool", "c1", "rain")


# -- which strategies get the tools ----------------------------------------------------------------


class ToolEcho(EchoStrategy):
    name = "tool_echo"
    answers_with_tools = True


def registry() -> OptimizerRegistry:
    registry = OptimizerRegistry(source=[])
    for strategy in (ToolEcho, ShoutStrategy):
        registry.register(strategy)
    return registry


TOOLS = GenerationSettings(tools=(ToolDefinition(name="f"),))


def test_only_the_last_stage_of_a_pipeline_must_answer_with_tools() -> None:
    echo, shout = ToolEcho(), ShoutStrategy()
    check_strategies_answer_with_tools((shout, echo), "pipeline", TOOLS, registry().infos())
    with pytest.raises(ApiError, match=r"the shout strategy cannot answer with tool calls.*can: tool_echo"):
        check_strategies_answer_with_tools((echo, shout), "pipeline", TOOLS, registry().infos())
    with pytest.raises(ApiError, match="the shout strategy"):
        check_strategies_answer_with_tools((echo, shout), "parallel", TOOLS, registry().infos())
    assert stage_settings(shout, TOOLS, last=False).tools is None
    assert stage_settings(echo, TOOLS, last=True) is TOOLS


def test_with_tool_choice_none_a_strategy_without_tools_runs_without_them() -> None:
    settings = TOOLS.with_(tool_choice="none")
    check_strategies_answer_with_tools((ShoutStrategy(),), "single", settings, registry().infos())
    assert stage_settings(ShoutStrategy(), settings, last=True).tools is None
    assert stage_settings(ToolEcho(), settings, last=True).tools is not None
