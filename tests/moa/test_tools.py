"""MoA with the caller's tools: only the synthesis gets them, with the conversation's tool turns as real turns."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from optillm_core import (
    AnswerDelta,
    Budget,
    Conversation,
    GenerationSettings,
    Message,
    ModelProfile,
    OptimizerEvent,
    Prompt,
    ProviderUnavailable,
    ToolCall,
    UnsupportedSetting,
)
from optillm_core.testing import FaultyClient, FunctionClient, RecordedRequest, Reply, ScriptedClient
from optillm_moa import MoaConfig, MoaOptimizer, SynthesisReady

from ..tools_support import CALL, WEATHER, WITH_TOOLS, BreaksMidStream

pytestmark = pytest.mark.anyio

QUERY = "What should I wear in Paris today?"
CANDIDATES = ["It depends on the weather.", "Check the forecast first.", "A coat, probably."]
CRITIQUE = "None of them knows today's weather."


async def test_only_the_synthesis_gets_the_tools_and_its_tool_call_is_returned() -> None:
    client = ScriptedClient([*CANDIDATES, CRITIQUE, Reply("", tool_calls=(CALL,))], native_n=True)
    solution = await MoaOptimizer().optimize(QUERY, client, settings=WITH_TOOLS)

    candidates, critique, synthesis = client.requests
    assert (candidates.settings.tools, candidates.settings.tool_choice) == (None, None)
    assert (critique.settings.tools, critique.settings.tool_choice) == (None, None)
    assert synthesis.settings.tools == (WEATHER,)
    assert synthesis.settings.tool_choice is not None and synthesis.settings.tool_choice.mode == "auto"
    assert solution.tool_calls == (CALL,)
    assert solution.answer == ""
    assert solution.metadata.extras["final_source"] == "synthesis"
    # No tool has been called yet: the synthesis may call one, and is told of no earlier results.
    assert "call one of the available tools" in (synthesis.system_text or "")
    assert "tool results in the conversation" not in (synthesis.system_text or "")
    assert "The synthesis called the caller's tools: get_weather." in solution.reasoning


async def test_a_streamed_synthesis_sends_its_text_live_and_returns_its_tool_calls() -> None:
    synthesis = Reply("Let me look that up.", tool_calls=(CALL,))
    client = ScriptedClient([*CANDIDATES, CRITIQUE, synthesis], native_n=True)
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, settings=WITH_TOOLS, events=events.append)

    assert "".join(e.delta for e in events if isinstance(e, AnswerDelta)) == "Let me look that up."
    assert solution.answer == "Let me look that up."
    assert solution.tool_calls == (CALL,)
    ready = next(e for e in events if isinstance(e, SynthesisReady))
    assert (ready.source, ready.truncated) == ("synthesis", False)


async def test_a_synthesis_that_answers_in_text_returns_no_tool_calls() -> None:
    client = ScriptedClient([*CANDIDATES, CRITIQUE, "Wear a coat."], native_n=True)
    solution = await MoaOptimizer().optimize(QUERY, client, settings=WITH_TOOLS)
    assert solution.answer == "Wear a coat."
    assert solution.tool_calls == ()
    assert client.requests[-1].settings.tools == (WEATHER,)


async def test_a_tool_call_cut_off_by_max_tokens_falls_back_to_a_text_candidate() -> None:
    cut = Reply("", tool_calls=(CALL.model_copy(update={"arguments": '{"ci'}),), finish_reason="length")
    client = ScriptedClient([*CANDIDATES, CRITIQUE, cut], native_n=True)
    solution = await MoaOptimizer().optimize(QUERY, client, settings=WITH_TOOLS)
    assert solution.tool_calls == ()
    assert solution.answer == CANDIDATES[0]
    assert solution.metadata.extras["final_source"] == "candidate"


async def test_a_synthesis_stream_broken_after_its_text_is_asked_again_and_its_tool_call_kept() -> None:
    synthesis = Reply("Let me look that up.", tool_calls=(CALL,))
    inner = ScriptedClient([*CANDIDATES, CRITIQUE, synthesis, synthesis], native_n=True)
    client = BreaksMidStream(inner, call=2, after=2)
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, settings=WITH_TOOLS, events=events.append)

    assert solution.tool_calls == (CALL,)
    assert solution.answer == "Let me look that up."
    # the repeated request carried the tools too, and only the rest of the text went out the second time
    assert [r.settings.tools for r in inner.requests[2:]] == [(WEATHER,), (WEATHER,)]
    assert "".join(e.delta for e in events if isinstance(e, AnswerDelta)) == "Let me look that up."


async def test_a_failed_synthesis_ends_the_run_rather_than_answer_with_a_candidate() -> None:
    inner = ScriptedClient([*CANDIDATES, CRITIQUE], native_n=True)
    client = FaultyClient(inner, {2: ProviderUnavailable("upstream is down", status_code=503)})
    with pytest.raises(ProviderUnavailable, match="upstream is down"):
        await MoaOptimizer().optimize(QUERY, client, settings=WITH_TOOLS)


async def test_a_budget_cut_before_the_synthesis_returns_a_candidate_marked_and_no_tool_calls() -> None:
    client = ScriptedClient([*CANDIDATES, CRITIQUE, Reply("", tool_calls=(CALL,))], native_n=True)
    solution = await MoaOptimizer().optimize(QUERY, client, settings=WITH_TOOLS, budget=Budget(max_calls=2))
    assert solution.metadata.budget_exhausted is True
    assert solution.answer == CANDIDATES[0]
    assert solution.tool_calls == ()


async def test_a_model_without_tools_refuses_them_before_any_call() -> None:
    client = ScriptedClient([], profile=ModelProfile(tools=False))
    with capture_logs(), pytest.raises(UnsupportedSetting, match="tools"):
        await MoaOptimizer().optimize(QUERY, client, settings=WITH_TOOLS, unsupported="drop")
    assert client.requests == []


# -- an agent's turn: the conversation already holds a tool call and its result ------------------

SYSTEM = "You are a concise travel assistant."
RESULT = "18°C and sunny"
AGAIN = ToolCall(id="call_weather_2", name="get_weather", arguments='{"city": "Paris"}')
AGENT_TURN = Conversation(
    system=(SYSTEM,),
    turns=[
        Message.user(QUERY),
        Message.assistant("", tool_calls=(CALL,)),
        Message.tool_result(RESULT, tool_call_id=CALL.id),
    ],
)


def trusts_real_tool_turns(prompt: Prompt, settings: GenerationSettings) -> str | Reply:
    """A chat model offered tools: it calls the tool again unless a real tool result is among the messages.

    Without tools it answers each MoA phase in text, from whatever the prompt says about the weather.
    """
    if settings.tools:
        if any(m.role == "tool" for m in prompt.messages):
            return f"A light jacket will do: it is {RESULT}."
        return Reply("", tool_calls=(AGAIN,))
    text = prompt.messages[-1].content
    if "Review every candidate" in text:
        return "Both use the forecast; candidate 2 is more specific."
    return f"It is {RESULT}: a light jacket." if RESULT in text else "Check the forecast first."


def turns(request: RecordedRequest) -> list[Message]:
    """The request's messages after its system prompt."""
    return [m for m in request.messages if m.role != "system"]


def phase_of(request: RecordedRequest) -> str:
    text = request.user_text
    if "Review every candidate" in text:
        return "critique"
    if "Write the single best response" in f"{request.system_text}\n{text}":
        return "synthesis"
    return "candidate"


async def test_the_synthesis_gets_the_tool_call_and_result_as_real_turns_and_answers_from_them() -> None:
    client = FunctionClient(trusts_real_tool_turns, native_n=True)
    solution = await MoaOptimizer(MoaConfig(num_completions=2)).optimize(AGENT_TURN, client, settings=WITH_TOOLS)

    assert solution.answer == f"A light jacket will do: it is {RESULT}."
    assert solution.tool_calls == ()
    (synthesis,) = [r for r in client.requests if phase_of(r) == "synthesis"]
    assert synthesis.settings.tools == (WEATHER,)
    # The conversation as the agent sent it, ending with the real tool result: no user turn after it.
    assert [m.role for m in turns(synthesis)] == ["user", "assistant", "tool"]
    assert turns(synthesis)[0].content == QUERY
    assert turns(synthesis)[1].tool_calls == (CALL,)
    assert (turns(synthesis)[2].content, turns(synthesis)[2].tool_call_id) == (RESULT, CALL.id)
    # The caller's system prompt first, then the candidates, the review and the instruction last.
    system = synthesis.system_text or ""
    assert system.startswith(f"{SYSTEM}\n\n---\n")
    assert f"It is {RESULT}: a light jacket." in system and "candidate 2 is more specific" in system
    assert "The tool results in the conversation are already in" in system
    assert system.endswith("without mentioning the candidates or the review.")
    assert "Tools have already been called" not in system


async def test_candidates_and_critique_get_no_tools_and_the_tool_result_flattened() -> None:
    client = FunctionClient(trusts_real_tool_turns, native_n=True)
    await MoaOptimizer(MoaConfig(num_completions=2)).optimize(AGENT_TURN, client, settings=WITH_TOOLS)

    others = [r for r in client.requests if phase_of(r) != "synthesis"]
    assert sorted(phase_of(r) for r in others) == ["candidate", "critique"]
    for request in others:
        assert (request.settings.tools, request.settings.tool_choice) == (None, None)
        assert [m.role for m in turns(request)] == ["user"]
        assert not turns(request)[0].tool_calls
        # The call and its result are text in the one question, so these calls can still use them.
        assert QUERY in request.user_text and RESULT in request.user_text
        assert "get_weather" in request.user_text
        assert request.system_text == SYSTEM


async def test_a_synthesis_that_calls_a_tool_after_a_user_message_returns_the_call() -> None:
    follow_up = "And tomorrow?"
    conversation = Conversation(
        system=(SYSTEM,),
        turns=[
            *AGENT_TURN.turns,
            Message.assistant(f"A light jacket will do: it is {RESULT}."),
            Message.user(follow_up),
        ],
    )
    tomorrow = ToolCall(id="call_weather_3", name="get_weather", arguments='{"city": "Paris", "day": "tomorrow"}')
    client = ScriptedClient(
        ["No forecast for tomorrow yet.", "Unknown.", "Neither knows.", Reply("", tool_calls=(tomorrow,))]
    )
    solution = await MoaOptimizer(MoaConfig(num_completions=2)).optimize(conversation, client, settings=WITH_TOOLS)

    assert solution.tool_calls == (tomorrow,)
    assert solution.answer == ""
    synthesis = client.requests[-1]
    assert [m.role for m in turns(synthesis)] == ["user", "assistant", "tool", "assistant", "user"]
    # The latest user message is the caller's as it is; MoA's material is in the system prompt.
    assert turns(synthesis)[-1].content == follow_up
    assert "Write the single best response to the user's latest message" in (synthesis.system_text or "")
    # The earlier turns reach the candidates as a transcript in their system prompt.
    candidate = client.requests[0]
    assert candidate.user_text == follow_up
    assert candidate.system_text is not None and RESULT in candidate.system_text


async def test_without_tools_offered_the_synthesis_is_one_flattened_question() -> None:
    client = FunctionClient(trusts_real_tool_turns, native_n=True)
    solution = await MoaOptimizer(MoaConfig(num_completions=2)).optimize(AGENT_TURN, client)

    synthesis = client.requests[-1]
    assert phase_of(synthesis) == "synthesis"
    assert synthesis.settings.tools is None
    assert [m.role for m in turns(synthesis)] == ["user"]
    assert RESULT in synthesis.user_text and "<question>" in synthesis.user_text
    assert solution.tool_calls == ()
