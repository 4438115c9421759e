"""MARS with the caller's tools: the answer is always the synthesis call, the only call made with them."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from optillm_core import AnswerDelta, Budget, OptimizerEvent, RateLimitError
from optillm_core.testing import Reply
from optillm_mars import AnswerSynthesized, MarsConfig, MarsOptimizer, SelectionMethod

from ..tools_support import CALL, WEATHER, WITH_TOOLS, BreaksMidStream
from .fakes import SOLUTION, FakeMars

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
CONFIG = MarsConfig().with_max_iterations(1)


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
