"""MoA with the caller's tools: only the synthesis gets them, and its tool calls are the answer."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from optillm_core import AnswerDelta, Budget, ModelProfile, OptimizerEvent, ProviderUnavailable, UnsupportedSetting
from optillm_core.testing import FaultyClient, Reply, ScriptedClient
from optillm_moa import MoaOptimizer, SynthesisReady

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
