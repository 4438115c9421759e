"""CoT reflection: one final call, its settings, the sections read from the reply, models, tools."""

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
from optillm_prompting import CotReflectionConfig, CotReflectionOptimizer

from ..tools_support import CALL, WEATHER, WITH_TOOLS

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
SYSTEM = "Answer briefly."
REPLY = (
    "<thinking>\n2 + 7 = 9 and one ten: 19.\n<reflection>\n19 - 7 = 12, so it holds.\n</reflection>\n"
    "Nothing to change.\n</thinking>\n<output>\n12 + 7 = 19.\n</output>"
)
JSON = {"type": "json_object"}


async def test_one_call_with_the_format_in_the_system_prompt_and_the_question_as_it_is() -> None:
    client = ScriptedClient([REPLY])
    solution = await CotReflectionOptimizer().optimize(QUERY, client, system_prompt=SYSTEM)

    (request,) = client.requests
    assert request.user_text == QUERY
    system = request.system_text or ""
    assert system.startswith(SYSTEM + "\n\n")
    for tag in ("<thinking>", "<reflection>", "</reflection>", "</thinking>", "<output>", "</output>"):
        assert tag in system
    assert solution.answer == "12 + 7 = 19."
    assert solution.metadata.llm_calls == 1
    assert solution.reasoning == (
        "Thinking:\n2 + 7 = 9 and one ten: 19.\n\nNothing to change.\n\nReflection:\n19 - 7 = 12, so it holds."
    )
    assert solution.finish_reason == "stop"
    assert solution.metadata.extras["answer_source"] == "output"


async def test_upstream_defaults_without_caller_settings() -> None:
    client = ScriptedClient([REPLY])
    await CotReflectionOptimizer().optimize(QUERY, client)
    (settings,) = client.settings_seen
    assert (settings.temperature, settings.max_tokens, settings.n) == (0.6, 4096, 1)


async def test_the_callers_settings_reach_the_one_call_as_upstreams_request_values_do() -> None:
    caller = GenerationSettings(
        temperature=0.2, top_p=0.9, max_tokens=8000, stop=("###",), seed=7, extra={"response_format": JSON}
    )
    client = ScriptedClient([REPLY])
    await CotReflectionOptimizer().optimize(QUERY, client, settings=caller)
    (settings,) = client.settings_seen
    assert (settings.temperature, settings.top_p, settings.seed) == (0.2, 0.9, 7)
    assert settings.max_tokens == 8000  # the caller's replaces the default 4096, larger or not
    assert settings.stop == ("###",)
    assert settings.extra["response_format"] == JSON


async def test_a_config_that_sets_its_own_values_keeps_them_and_the_callers_max_tokens_caps() -> None:
    caller = GenerationSettings(temperature=0.2, max_tokens=1000)
    config = CotReflectionConfig(temperature=0.9, max_tokens=2000)
    client = ScriptedClient([REPLY])
    await CotReflectionOptimizer(config).optimize(QUERY, client, settings=caller)
    (settings,) = client.settings_seen
    assert (settings.temperature, settings.max_tokens) == (0.9, 1000)


async def test_a_model_that_refuses_temperature_gets_none() -> None:
    client = ScriptedClient([REPLY], profile=O3_MINI)
    solution = await CotReflectionOptimizer().optimize(QUERY, client, settings=GenerationSettings(temperature=0.3))
    (request,) = client.requests
    assert request.settings.temperature is None and request.settings.top_p is None
    assert request.settings.max_tokens == 4096
    assert client.refused == []
    assert solution.answer == "12 + 7 = 19."
    assert "temperature" in solution.metadata.dropped_settings


@pytest.mark.parametrize("profile", [CLAUDE_SONNET, CLAUDE_OPUS, GPT_4O_MINI], ids=lambda p: p.name)
async def test_other_models_take_the_call_as_they_accept_it(profile: ModelProfile) -> None:
    client = ScriptedClient([REPLY], profile=profile)
    solution = await CotReflectionOptimizer().optimize(QUERY, client)
    assert client.refused == []
    assert solution.answer == "12 + 7 = 19."


@pytest.mark.parametrize("profile", [DEEPSEEK_R1, DEEPSEEK_REASONER], ids=lambda p: p.name)
async def test_native_thinking_is_the_thinking_and_the_sections_the_reasoning(
    profile: ModelProfile,
) -> None:
    client = ScriptedClient([Reply(REPLY, thinking="maybe 20? no, \\boxed{0}")], profile=profile)
    solution = await CotReflectionOptimizer().optimize(QUERY, client)
    assert solution.answer == "12 + 7 = 19."
    assert solution.thinking == "maybe 20? no, \\boxed{0}"
    assert "boxed{0}" not in solution.reasoning
    assert "Reflection:\n19 - 7 = 12" in solution.reasoning


async def test_native_thinking_with_a_reply_that_ignores_the_format_answers_with_the_visible_text() -> None:
    client = ScriptedClient([Reply("12 + 7 = 19.", thinking="<thinking>draft 20</thinking>")], profile=DEEPSEEK_R1)
    solution = await CotReflectionOptimizer().optimize(QUERY, client)
    assert solution.answer == "12 + 7 = 19."
    assert "20" not in solution.answer
    assert solution.metadata.extras["answer_source"] == "unmarked"


# -- malformed replies -----------------------------------------------------------------------------


async def test_a_reply_that_ignores_the_format_is_the_answer_as_a_whole() -> None:
    client = ScriptedClient(["The sum is 19."])
    solution = await CotReflectionOptimizer().optimize(QUERY, client)
    assert solution.answer == "The sum is 19."
    assert solution.metadata.extras["followed_format"] is False
    assert "whole reply is the answer" in solution.reasoning


async def test_a_reply_without_an_output_section_answers_with_its_text_outside_the_thinking() -> None:
    client = ScriptedClient(["<thinking>2 + 7 = 9, so 20? no: 19</thinking>\nThe sum is 19."])
    solution = await CotReflectionOptimizer().optimize(QUERY, client)
    assert solution.answer == "The sum is 19."
    assert "20?" in solution.reasoning and "20?" not in solution.answer


async def test_a_reply_cut_off_in_its_output_is_the_answer_so_far_with_finish_length() -> None:
    cut = Reply("<thinking>add</thinking><output>12 + 7 = 19, beca</outp", finish_reason="length")
    client = ScriptedClient([cut])
    solution = await CotReflectionOptimizer().optimize(QUERY, client)
    assert solution.answer == "12 + 7 = 19, beca"
    assert solution.finish_reason == "length"
    assert "cut off" in solution.reasoning


async def test_a_reply_cut_off_while_thinking_leaks_nothing_and_says_so() -> None:
    cut = Reply("<thinking>2 + 7 = 9, maybe 20", finish_reason="length")
    client = ScriptedClient([cut])
    solution = await CotReflectionOptimizer().optimize(QUERY, client)
    assert solution.answer == ""
    assert solution.finish_reason == "length"
    assert solution.reasoning.startswith("Thinking:\n2 + 7 = 9, maybe 20")
    assert "before its output section" in solution.reasoning
    assert solution.metadata.extras["answer_source"] == "none"


async def test_a_cut_off_output_whose_closing_tag_came_is_whole() -> None:
    cut = Reply("<output>19</output>\nAnd now a long aside that", finish_reason="length")
    solution = await CotReflectionOptimizer().optimize(QUERY, ScriptedClient([cut]))
    assert (solution.answer, solution.finish_reason) == ("19", "stop")


async def test_a_reply_of_only_working_answers_nothing() -> None:
    client = ScriptedClient(["<thinking>19</thinking><reflection>fine</reflection>"])
    solution = await CotReflectionOptimizer().optimize(QUERY, client)
    assert (solution.answer, solution.finish_reason) == ("", "stop")
    assert "no output section and no text outside" in solution.reasoning


async def test_the_answer_is_not_streamed_live_since_it_is_cut_from_the_reply() -> None:
    events: list[OptimizerEvent] = []
    solution = await CotReflectionOptimizer().optimize(QUERY, ScriptedClient([REPLY]), events=events.append)
    assert not [e for e in events if isinstance(e, AnswerDelta)]
    assert [e.phase for e in events if isinstance(e, PhaseStarted)] == ["reflect"]
    assert solution.answer == "12 + 7 = 19."


async def test_planned_calls_is_the_one_call_a_run_makes() -> None:
    optimizer = CotReflectionOptimizer()
    for profile in (GPT_4O_MINI, O3_MINI, CLAUDE_SONNET):
        client = ScriptedClient([REPLY], profile=profile)
        assert optimizer.planned_calls(client, GenerationSettings(n=3)) == 1
        await optimizer.optimize(QUERY, client)
        assert len(client.requests) == 1


# -- tools -----------------------------------------------------------------------------------------


async def test_with_tools_the_one_call_gets_them_and_the_conversation_as_real_turns() -> None:
    client = ScriptedClient([Reply("<thinking>I need the weather.</thinking>", tool_calls=(CALL,))])
    conversation = Conversation.from_query("What should I wear in Paris today?", system=SYSTEM)
    solution = await CotReflectionOptimizer().optimize(conversation, client, settings=WITH_TOOLS)
    (request,) = client.requests
    assert request.settings.tools == (WEATHER,)
    assert request.prompt.messages == conversation.turns  # the turns exactly as sent
    system = request.system_text or ""
    assert system.startswith(SYSTEM + "\n\n") and "<output>" in system and "call it" in system
    assert solution.tool_calls == (CALL,)
    assert solution.answer == ""
    assert "I need the weather." in solution.reasoning
    assert "called the caller's tools" in solution.reasoning


async def test_with_tool_results_the_reply_answers_in_its_output_section() -> None:
    turns = (
        Message(role="user", content="What should I wear in Paris today?"),
        Message(role="assistant", content="", tool_calls=(CALL,)),
        Message(role="tool", content='{"sky": "rain"}', tool_call_id=CALL.id),
    )
    client = ScriptedClient(["<thinking>rain</thinking><output>A raincoat.</output>"])
    solution = await CotReflectionOptimizer().optimize(Conversation(turns=turns), client, settings=WITH_TOOLS)
    (request,) = client.requests
    assert request.prompt.messages[-1].role == "tool"
    assert (solution.answer, solution.tool_calls) == ("A raincoat.", ())


async def test_a_tool_call_cut_off_at_max_tokens_is_not_returned() -> None:
    broken = CALL.model_copy(update={"arguments": '{"ci'})
    client = ScriptedClient([Reply("<output>Let me check", tool_calls=(broken,), finish_reason="length")])
    solution = await CotReflectionOptimizer().optimize(QUERY, client, settings=WITH_TOOLS)
    assert solution.tool_calls == ()
    assert (solution.answer, solution.finish_reason) == ("Let me check", "length")
