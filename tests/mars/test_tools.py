"""MARS with the caller's tools: the answer is always the synthesis call, the only call made with them."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from optillm_core import AnswerDelta, Budget, Conversation, Message, OptimizerEvent, RateLimitError, ToolCall
from optillm_core.testing import RecordedRequest, Reply
from optillm_mars import AnswerSynthesized, MarsConfig, MarsOptimizer, SelectionMethod

from ..tools_support import CALL, WEATHER, WITH_TOOLS, BreaksMidStream
from .fakes import SOLUTION, FakeMars

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
CONFIG = MarsConfig().with_max_iterations(1)

LOOKUP = ToolCall(id="call_paris_1", name="get_weather", arguments='{"city":"Paris"}')
# An agent's turn: an earlier exchange, the question, the model's tool call and the tool's answer.
AGENT_TURN = Conversation(
    system=("You are a travel assistant.",),
    turns=[
        Message.user("Hello"),
        Message.assistant("Hi! Where are you travelling?"),
        Message.user("Should I pack an umbrella for Paris today? Say the temperature too."),
        Message.assistant("", tool_calls=(LOOKUP,)),
        Message.tool_result("18°C, light rain", tool_call_id=LOOKUP.id),
    ],
)


def tool_turns(request: RecordedRequest) -> tuple[list[Message], list[Message]]:
    """The request's tool results and assistant messages that call tools."""
    messages = request.prompt.messages
    return [m for m in messages if m.role == "tool"], [m for m in messages if m.tool_calls]


async def test_with_tools_every_call_but_the_synthesis_runs_without_them_and_its_tool_call_is_returned() -> None:
    client = FakeMars(synthesis=Reply("", tool_calls=(CALL,)))  # every solution passes review
    solution = await MarsOptimizer(CONFIG).optimize(QUERY, client, settings=WITH_TOOLS)

    assert solution.tool_calls == (CALL,)
    assert solution.answer == ""
    assert solution.metadata.extras["selection_method"] == SelectionMethod.SYNTHESIZED
    (synthesis,) = client.of("synthesis")
    assert synthesis.settings.tools == (WEATHER,)
    assert synthesis.settings.tool_choice is not None and synthesis.settings.tool_choice.mode == "auto"
    others = [r for r in client.requests if r is not synthesis]
    assert others and all(r.settings.tools is None and r.settings.tool_choice is None for r in others)
    assert "the request offered tools, so one synthesis call made with them wrote" in solution.reasoning
    assert "it called get_weather" in solution.reasoning


async def test_without_tools_a_verified_solution_is_still_the_answer_with_no_call() -> None:
    client = FakeMars(synthesis=Reply("", tool_calls=(CALL,)))
    solution = await MarsOptimizer(CONFIG).optimize(QUERY, client)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.BEST_VERIFIED
    assert client.of("synthesis") == []
    assert solution.tool_calls == ()


async def test_a_synthesis_that_answers_in_text_is_the_answer_with_no_tool_calls() -> None:
    client = FakeMars()
    events: list[OptimizerEvent] = []
    solution = await MarsOptimizer(CONFIG).optimize(QUERY, client, settings=WITH_TOOLS, events=events.append)
    assert solution.answer == SOLUTION.split("</think>\n", 1)[1]
    assert solution.tool_calls == ()
    assert solution.metadata.extras["selection_method"] == SelectionMethod.SYNTHESIZED
    assert "".join(e.delta for e in events if isinstance(e, AnswerDelta)) == solution.answer


async def test_a_streamed_synthesis_with_text_and_a_tool_call_sends_the_text_live() -> None:
    client = FakeMars(synthesis=Reply("Checking the weather first.", tool_calls=(CALL,)))
    events: list[OptimizerEvent] = []
    solution = await MarsOptimizer(CONFIG).optimize(QUERY, client, settings=WITH_TOOLS, events=events.append)
    assert "".join(e.delta for e in events if isinstance(e, AnswerDelta)) == "Checking the weather first."
    assert (solution.answer, solution.tool_calls) == ("Checking the weather first.", (CALL,))
    synthesized = next(e for e in events if isinstance(e, AnswerSynthesized))
    assert synthesized.method == SelectionMethod.SYNTHESIZED


async def test_a_failed_synthesis_falls_back_to_the_best_solution_in_text() -> None:
    client = FakeMars(synthesis=RateLimitError("slow down", status_code=429))
    with capture_logs():
        solution = await MarsOptimizer(CONFIG).optimize(QUERY, client, settings=WITH_TOOLS)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.HIGHEST_SCORE
    assert solution.tool_calls == ()
    assert "\\boxed{19}" in solution.answer


async def test_a_synthesis_stream_broken_after_its_text_is_asked_again_and_its_tool_call_kept() -> None:
    reply = Reply("Checking the weather first.", tool_calls=(CALL,))
    inner = FakeMars(synthesis=reply)
    probe = FakeMars()
    await MarsOptimizer(CONFIG).optimize(QUERY, probe, settings=WITH_TOOLS)
    synthesis_call = len(probe.requests) - 1  # MARS's synthesis is its last call
    client = BreaksMidStream(inner, call=synthesis_call, after=2)
    events: list[OptimizerEvent] = []
    with capture_logs():
        solution = await MarsOptimizer(CONFIG).optimize(QUERY, client, settings=WITH_TOOLS, events=events.append)
    assert [r.settings.tools for r in inner.of("synthesis")] == [(WEATHER,), (WEATHER,)]
    assert (solution.answer, solution.tool_calls) == ("Checking the weather first.", (CALL,))
    assert "".join(e.delta for e in events if isinstance(e, AnswerDelta)) == "Checking the weather first."


async def test_a_budget_cut_before_the_synthesis_returns_the_best_solution_marked_without_tool_calls() -> None:
    client = FakeMars(synthesis=Reply("", tool_calls=(CALL,)))
    solution = await MarsOptimizer(CONFIG).optimize(QUERY, client, settings=WITH_TOOLS, budget=Budget(max_calls=4))
    assert solution.metadata.budget_exhausted is True
    assert solution.tool_calls == ()
    assert "\\boxed{19}" in solution.answer


async def test_the_synthesis_gets_the_agents_turn_as_real_tool_turns_and_every_other_call_gets_it_flattened() -> None:
    client = FakeMars(synthesis=Reply("Yes: 18°C with light rain, so pack an umbrella."))
    solution = await MarsOptimizer(CONFIG).optimize(AGENT_TURN, client, settings=WITH_TOOLS)

    assert solution.answer == "Yes: 18°C with light rain, so pack an umbrella."
    (synthesis,) = client.of("synthesis")
    results, calls = tool_turns(synthesis)
    assert [m.content for m in results] == ["18°C, light rain"]
    assert [m.tool_calls for m in calls] == [(LOOKUP,)]
    assert synthesis.prompt.messages == AGENT_TURN.turns  # the turns as the caller sent them, not a transcript
    system = synthesis.system_text or ""
    assert "You are a travel assistant." in system
    assert "### Solution 1" in system and system.index("travel assistant") < system.index("### Solution 1")
    assert "Earlier turns of this conversation" not in system and "Hi! Where" not in system
    assert synthesis.settings.tools == (WEATHER,)

    others = [r for r in client.requests if r is not synthesis]
    assert len(others) >= 3
    for request in others:
        assert request.settings.tools is None and request.settings.tool_choice is None
        assert tool_turns(request) == ([], [])
        assert [m.role for m in request.prompt.messages] == ["user"]
        assert "18°C, light rain" in request.user_text  # the tool's answer, flattened into the question
    for request in client.of("exploration") + client.of("aggregation") + client.of("improvement"):
        assert "Hi! Where are you travelling?" in (request.system_text or "")  # the earlier turns, as a transcript


async def test_a_synthesis_that_calls_a_tool_after_a_tool_result_is_returned_as_tool_calls() -> None:
    again = ToolCall(id="call_paris_2", name="get_weather", arguments='{"city":"Paris","hour":18}')
    client = FakeMars(synthesis=Reply("", tool_calls=(again,)))
    solution = await MarsOptimizer(CONFIG).optimize(AGENT_TURN, client, settings=WITH_TOOLS)

    assert solution.tool_calls == (again,)
    assert solution.answer == ""
    assert solution.metadata.extras["selection_method"] == SelectionMethod.SYNTHESIZED
    (synthesis,) = client.of("synthesis")
    assert tool_turns(synthesis)[0]  # it saw the first call's result as a real tool turn


async def test_without_tools_the_synthesis_gets_the_flattened_question_too() -> None:
    from .fakes import agent_of, boxed

    client = FakeMars(exploration=lambda p, s: boxed(str(17 + agent_of(p))), verification="VERDICT: INCORRECT")
    await MarsOptimizer(MarsConfig(enable_aggregation=False, enable_strategy_network=False, max_iterations=0)).optimize(
        AGENT_TURN, client
    )
    (synthesis,) = client.of("synthesis")
    assert synthesis.settings.tools is None
    assert tool_turns(synthesis) == ([], [])
    assert "18°C, light rain" in synthesis.user_text
