"""RE2: the question read twice in one final call, its settings, models, streaming and tools."""

from __future__ import annotations

import pytest

from optillm_core import (
    AnswerDelta,
    Conversation,
    GenerationSettings,
    Message,
    ModelProfile,
    OptimizerEvent,
    PhaseStarted,
)
from optillm_core.testing import (
    CLAUDE_OPUS,
    CLAUDE_SONNET,
    DEEPSEEK_R1,
    DEEPSEEK_REASONER,
    GPT_4O_MINI,
    O3_MINI,
    Reply,
    ScriptedClient,
)
from optillm_prompting import Re2Config, Re2Optimizer

from ..tools_support import CALL, WEATHER, WITH_TOOLS

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
SYSTEM = "Answer briefly."
JSON = {"type": "json_object"}


async def test_one_call_states_the_question_then_asks_to_read_it_again() -> None:
    client = ScriptedClient(["12 + 7 = 19."])
    solution = await Re2Optimizer().optimize(QUERY, client, system_prompt=SYSTEM)
    (request,) = client.requests
    assert request.user_text == f"{QUERY}\n\nRead the question again: {QUERY}"
    assert request.system_text == SYSTEM
    assert solution.answer == "12 + 7 = 19."
    assert solution.metadata.llm_calls == 1
    assert solution.finish_reason == "stop"


async def test_without_caller_settings_the_model_keeps_its_defaults() -> None:
    client = ScriptedClient(["19"])
    await Re2Optimizer().optimize(QUERY, client)
    (settings,) = client.settings_seen
    assert (settings.temperature, settings.top_p, settings.max_tokens, settings.n) == (None, None, None, 1)


async def test_every_caller_setting_of_a_final_call_reaches_it() -> None:
    caller = GenerationSettings(
        temperature=0.2, top_p=0.9, max_tokens=300, stop=("###",), seed=7, extra={"response_format": JSON}
    )
    client = ScriptedClient(["19"])
    await Re2Optimizer().optimize(QUERY, client, settings=caller)
    (settings,) = client.settings_seen
    assert (settings.temperature, settings.top_p, settings.seed, settings.max_tokens) == (0.2, 0.9, 7, 300)
    assert settings.stop == ("###",)
    assert settings.extra["response_format"] == JSON


async def test_a_config_temperature_wins_and_its_max_tokens_is_capped_by_the_callers() -> None:
    client = ScriptedClient(["19"])
    config = Re2Config(temperature=0.0, max_tokens=500)
    await Re2Optimizer(config).optimize(QUERY, client, settings=GenerationSettings(temperature=0.8, max_tokens=200))
    (settings,) = client.settings_seen
    assert (settings.temperature, settings.max_tokens) == (0.0, 200)


async def test_a_model_that_refuses_temperature_gets_none() -> None:
    client = ScriptedClient(["19"], profile=O3_MINI)
    solution = await Re2Optimizer().optimize(QUERY, client, settings=GenerationSettings(temperature=0.3, top_p=0.5))
    (settings,) = client.settings_seen
    assert (settings.temperature, settings.top_p) == (None, None)
    assert client.refused == []
    assert solution.answer == "19"


@pytest.mark.parametrize("profile", [CLAUDE_SONNET, CLAUDE_OPUS, GPT_4O_MINI], ids=lambda p: p.name)
async def test_other_models_take_the_call_as_they_accept_it(profile: ModelProfile) -> None:
    client = ScriptedClient(["19"], profile=profile)
    solution = await Re2Optimizer().optimize(QUERY, client, settings=GenerationSettings(temperature=0.4))
    assert client.refused == []
    assert solution.answer == "19"


@pytest.mark.parametrize("profile", [DEEPSEEK_R1, DEEPSEEK_REASONER], ids=lambda p: p.name)
async def test_native_thinking_stays_out_of_the_answer(profile: ModelProfile) -> None:
    client = ScriptedClient([Reply("12 + 7 = 19.", thinking="maybe \\boxed{0}")], profile=profile)
    solution = await Re2Optimizer().optimize(QUERY, client)
    assert solution.answer == "12 + 7 = 19."
    assert solution.thinking == "maybe \\boxed{0}"


async def test_the_answer_streams_live_as_it_is_generated() -> None:
    events: list[OptimizerEvent] = []
    solution = await Re2Optimizer().optimize(QUERY, ScriptedClient(["12 + 7 is 19."]), events=events.append)
    assert "".join(e.delta for e in events if isinstance(e, AnswerDelta)) == solution.answer == "12 + 7 is 19."
    assert [e.phase for e in events if isinstance(e, PhaseStarted)] == ["reread"]


async def test_a_reply_cut_off_at_max_tokens_is_returned_with_finish_length() -> None:
    client = ScriptedClient([Reply("12 + 7 is", finish_reason="length")])
    solution = await Re2Optimizer().optimize(QUERY, client)
    assert (solution.answer, solution.finish_reason) == ("12 + 7 is", "length")


async def test_an_empty_reply_is_an_empty_answer() -> None:
    solution = await Re2Optimizer().optimize(QUERY, ScriptedClient([""]))
    assert (solution.answer, solution.finish_reason) == ("", "stop")


async def test_earlier_tool_results_are_shown_once_and_only_the_question_is_read_again() -> None:
    turns = (
        Message(role="user", content="What should I wear in Paris today?"),
        Message(role="assistant", content="", tool_calls=(CALL,)),
        Message(role="tool", content='{"sky": "rain"}', tool_call_id=CALL.id),
    )
    client = ScriptedClient(["A raincoat."])
    await Re2Optimizer().optimize(Conversation(turns=turns), client)  # no tools offered: one flattened question
    (request,) = client.requests
    text = request.user_text
    assert text.count('{"sky": "rain"}') == 1
    assert text.endswith("\n\nRead the question again: What should I wear in Paris today?")


async def test_planned_calls_is_the_one_call_a_run_makes() -> None:
    optimizer = Re2Optimizer()
    for profile in (GPT_4O_MINI, O3_MINI, CLAUDE_SONNET):
        client = ScriptedClient(["19"], profile=profile)
        assert optimizer.planned_calls(client, GenerationSettings(n=2)) == 1
        await optimizer.optimize(QUERY, client)
        assert len(client.requests) == 1


# -- tools -----------------------------------------------------------------------------------------


async def test_with_tools_the_turns_stay_real_and_the_second_reading_is_in_the_system_note() -> None:
    conversation = Conversation.from_query("What should I wear in Paris today?", system=SYSTEM)
    client = ScriptedClient([Reply("", tool_calls=(CALL,))])
    solution = await Re2Optimizer().optimize(conversation, client, settings=WITH_TOOLS)
    (request,) = client.requests
    assert request.settings.tools == (WEATHER,)
    assert request.prompt.messages == conversation.turns
    assert request.user_text == "What should I wear in Paris today?"
    system = request.system_text or ""
    assert system.startswith(SYSTEM + "\n\n")
    assert "read the user's latest message again" in system
    assert "What should I wear in Paris today?" in system
    assert solution.tool_calls == (CALL,)


async def test_with_tool_results_the_last_turn_stays_the_tool_result() -> None:
    turns = (
        Message(role="user", content="What should I wear in Paris today?"),
        Message(role="assistant", content="", tool_calls=(CALL,)),
        Message(role="tool", content='{"sky": "rain"}', tool_call_id=CALL.id),
    )
    client = ScriptedClient(["A raincoat."])
    solution = await Re2Optimizer().optimize(Conversation(turns=turns), client, settings=WITH_TOOLS)
    (request,) = client.requests
    assert request.prompt.messages == turns
    assert (solution.answer, solution.tool_calls) == ("A raincoat.", ())


async def test_a_tool_call_cut_off_at_max_tokens_is_not_returned() -> None:
    broken = CALL.model_copy(update={"arguments": '{"ci'})
    client = ScriptedClient([Reply("Checking", tool_calls=(broken,), finish_reason="length")])
    solution = await Re2Optimizer().optimize(QUERY, client, settings=WITH_TOOLS)
    assert (solution.answer, solution.tool_calls, solution.finish_reason) == ("Checking", (), "length")
