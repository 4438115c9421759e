"""Chat messages as a strategy answers them (a :class:`~optillm_core.Conversation`) or as a model client sends them.

A strategy answers the conversation's last user message. Its calls that may answer with the
request's tools get the conversation turn by turn, tool calls and results as real tool turns; its
other calls get the question as one user message, with the tool calls and results made for it
since, and the earlier turns as a transcript in the system prompt (see ``Conversation``). System
and developer messages become the system prompt.

Through a model client (pass-through without an upstream) the conversation goes turn by turn, tool
calls and tool results as they are.
"""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optillm_core import Conversation, InvalidConfiguration, Message, Prompt

from ._errors import ApiError
from ._tools import parse_tool_calls
from ._wire import ChatMessage

__all__ = ("StrategyInput", "client_prompt", "strategy_input", "strategy_question")

_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True)
class StrategyInput:
    """What a strategy answers: the conversation, and its question as one user message with its system prompt."""

    conversation: Conversation

    @property
    def query(self) -> str:
        return self.conversation.query

    @property
    def system_prompt(self) -> str | None:
        return self.conversation.system_prompt


def strategy_input(messages: Sequence[ChatMessage]) -> StrategyInput:
    """The conversation of a chat request, as a strategy answers it (see :class:`~optillm_core.Conversation`)."""
    system: list[str] = []
    turns: list[Message] = []
    for message in _converted(messages, "strategies"):
        if message.role == "system":
            system.append(message.content)
        else:
            turns.append(message)
    return strategy_question(system, turns)


def strategy_question(system: Sequence[str], turns: Sequence[Message]) -> StrategyInput:
    """The conversation a strategy answers: chat completions and Anthropic messages both end up here.

    ``system`` holds the system prompt's parts; ``turns`` the user, assistant and tool messages,
    oldest first. A conversation no strategy can answer is a 400 saying what to fix.
    """
    try:
        return StrategyInput(Conversation(system=system, turns=turns))
    except InvalidConfiguration as exc:
        raise ApiError(400, str(exc), param="messages") from None


def client_prompt(messages: Sequence[ChatMessage]) -> Prompt:
    """The conversation as a :class:`Prompt`, turn by turn (tool calls and results as they are), for a model client."""
    return Prompt(messages=tuple(_converted(messages, "this provider")))


def _converted(messages: Sequence[ChatMessage], where: str) -> list[Message]:
    """Each message as a core :class:`Message`; a tool result must answer a call an earlier assistant message made."""
    converted: list[Message] = []
    calls: set[str] = set()
    for index, message in enumerate(messages):
        text = _text(message, index, where)
        if message.role in _SYSTEM_ROLES:
            converted.append(Message.system(text))
        elif message.role == "user":
            converted.append(Message.user(text))
        elif message.role == "assistant":
            made = parse_tool_calls(message.tool_calls, f"messages.{index}.tool_calls")
            calls.update(call.id for call in made)
            converted.append(Message.assistant(text, tool_calls=made))
        elif message.role == "tool":
            converted.append(Message.tool_result(text, tool_call_id=_answered_call(message, index, calls)))
        else:
            hint = " ('function' messages are the deprecated form: send 'tool' messages with 'tool_call_id')"
            raise ApiError(
                400,
                f"message role '{message.role}' is not supported by {where} "
                f"(use system, developer, user, assistant or tool){hint if message.role == 'function' else ''}",
                param=f"messages.{index}.role",
            )
    return converted


def _answered_call(message: ChatMessage, index: int, calls: set[str]) -> str:
    call_id = message.tool_call_id
    if not call_id:
        raise ApiError(
            400,
            "a 'tool' message needs the 'tool_call_id' of the call it answers",
            param=f"messages.{index}.tool_call_id",
        )
    if call_id not in calls:
        raise ApiError(
            400,
            f"message {index} is a tool result for '{call_id}', but no earlier assistant message made a tool call "
            "with that id",
            param=f"messages.{index}.tool_call_id",
        )
    return call_id


def _text(message: ChatMessage, index: int, where: str) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content:
        if part.get("type") != "text" or not isinstance(part.get("text"), str):
            raise ApiError(
                400,
                f"only text content parts are supported by {where} (got type {part.get('type')!r})",
                param=f"messages.{index}.content",
            )
        parts.append(part["text"])
    return "".join(parts)
