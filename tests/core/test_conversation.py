"""The conversation a run answers: as real turns for calls with tools, as one question for the rest."""

from __future__ import annotations

import pytest

from optillm_core import Conversation, InvalidConfiguration, Message, ToolCall

CALL = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
AGENT_TURN = Conversation(
    system=("Be brief.",),
    turns=(
        Message.user("Hi"),
        Message.assistant("Hello! How can I help?"),
        Message.user("Weather in Paris?"),
        Message.assistant("", tool_calls=(CALL,)),
        Message.tool_result("18°C, sunny", tool_call_id="call_1"),
    ),
)


def test_a_query_is_one_user_message_with_its_system_prompt() -> None:
    conversation = Conversation.from_query("What is 2 + 2?", system="Answer with a number.")
    assert (conversation.query, conversation.system_prompt) == ("What is 2 + 2?", "Answer with a number.")
    assert conversation.question == "What is 2 + 2?"
    assert not conversation.has_tool_turns
    prompt = conversation.prompt()
    assert [m.role for m in prompt.messages] == ["user"] and prompt.system == "Answer with a number."


def test_as_one_question_the_tool_results_follow_the_last_user_message_and_history_goes_to_the_system() -> None:
    assert AGENT_TURN.question == "Weather in Paris?"
    query = AGENT_TURN.query
    assert query.startswith("Weather in Paris?\n\n---\nTools have already been called")
    assert '<tool_call id="call_1" name="get_weather">\n{"city": "Paris"}\n</tool_call>' in query
    assert '<tool_result call="call_1" name="get_weather">\n18°C, sunny\n</tool_result>' in query
    system = AGENT_TURN.system_prompt
    assert system is not None and system.startswith("Be brief.\n\nEarlier turns of this conversation")
    assert "<user>\nHi\n</user>" in system and "<assistant>\nHello! How can I help?\n</assistant>" in system
    assert "Weather in Paris?" not in system


def test_as_real_turns_the_conversation_is_sent_as_it_came_with_the_note_after_the_system_prompt() -> None:
    prompt = AGENT_TURN.prompt("Candidates:\n1. It is sunny.")
    assert prompt.messages == AGENT_TURN.turns
    assert [m.role for m in prompt.messages] == ["user", "assistant", "user", "assistant", "tool"]
    assert prompt.messages[3].tool_calls == (CALL,)
    assert prompt.messages[4].tool_call_id == "call_1"
    assert prompt.system == "Be brief.\n\nCandidates:\n1. It is sunny."
    assert AGENT_TURN.prompt().system == "Be brief."
    assert AGENT_TURN.prompt("Note", system="Own instructions.").system == "Own instructions.\n\nNote"


def test_a_note_without_a_system_prompt_is_the_system_prompt() -> None:
    prompt = Conversation.from_query("Q?").prompt("Material")
    assert [m.content for m in prompt.messages] == ["Q?"]
    assert prompt.system == "Material"


def test_from_messages_takes_system_messages_out_of_the_turns() -> None:
    conversation = Conversation.from_messages([Message.system("S1"), Message.user("Q"), Message.system("S2")][:2])
    assert conversation.system == ("S1",) and [m.role for m in conversation.turns] == ["user"]


@pytest.mark.parametrize(
    ("turns", "problem"),
    [
        ((), "the last message must come from the user"),
        ((Message.user("Q"), Message.assistant("A")), "the last message must come from the user"),
        ((Message.user("  "),), "the last user message is empty"),
        ((Message.user("Q"), Message.tool_result("r", tool_call_id="nope")), "no earlier assistant turn made"),
        ((Message.system("S"), Message.user("Q")), "system messages belong in the conversation's system prompt"),
    ],
)
def test_a_conversation_no_strategy_can_answer_is_refused_saying_what_to_fix(
    turns: tuple[Message, ...], problem: str
) -> None:
    with pytest.raises(InvalidConfiguration, match=problem):
        Conversation(turns=turns)
