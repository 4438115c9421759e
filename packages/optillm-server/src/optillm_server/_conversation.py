"""Chat messages as a strategy sees them (query and system prompt) or as a model client sends them (a prompt).

A strategy answers one query. The query is the last user message, followed by the tool calls made
for it since and their results, when the conversation ends with tool results (an agent's loop
sending them back); system and developer messages become the system prompt; earlier turns, tool
calls and results included, are added to the system prompt as a tagged transcript, so the strategy
knows the context while the question stays a real user message and answers are never cut at
speaker markers. Only the strategy's final call gets the request's tools, so it may call another.

Through a model client (pass-through without an upstream) the conversation goes turn by turn, tool
calls and tool results as they are.
"""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optillm_core import Message, Prompt, ToolCall

from ._errors import ApiError
from ._tools import parse_tool_calls
from ._wire import ChatMessage

__all__ = ("StrategyInput", "client_prompt", "strategy_input", "strategy_question")

_SYSTEM_ROLES = frozenset({"system", "developer"})

_HISTORY_INTRO = (
    "Earlier turns of this conversation, oldest first, for context. "
    "The user's latest message, which is what you answer now, follows separately."
)

_TOOL_RESULTS_INTRO = (
    "Tools have already been called for this request; the calls and their results follow, oldest first. "
    "Take the results into account in your response."
)


@dataclass(frozen=True)
class StrategyInput:
    query: str
    system_prompt: str | None


def strategy_input(messages: Sequence[ChatMessage]) -> StrategyInput:
    """The query (the last user message, plus the tool results that follow it) and the system prompt.

    The system prompt holds the system messages and the earlier turns as a transcript.
    """
    system: list[str] = []
    turns: list[Message] = []
    for message in _converted(messages, "strategies"):
        if message.role == "system":
            system.append(message.content)
        else:
            turns.append(message)
    return strategy_question(system, turns)


def strategy_question(system: Sequence[str], turns: Sequence[Message]) -> StrategyInput:
    """The query and the system prompt of a conversation: chat completions and Anthropic messages both end up here.

    ``system`` holds the system prompt's parts; ``turns`` the user, assistant and tool messages,
    oldest first. The query is the last user message, plus the tool calls and results after it.
    """
    parts = list(system)
    last_user = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), None)
    if last_user is None or (turns[-1].role != "user" and turns[-1].role != "tool"):
        raise ApiError(
            400,
            "the last non-system message must come from the user, or be the results of the assistant's tool calls: "
            "a strategy answers that message",
            param="messages",
        )
    history, request, since = turns[:last_user], turns[last_user], turns[last_user + 1 :]
    if not request.content.strip():
        raise ApiError(400, "the last user message is empty: send the question to answer", param="messages")
    names = _call_names(turns)
    query = request.content
    if since:
        query = f"{query}\n\n---\n{_TOOL_RESULTS_INTRO}\n\n{_transcript(since, names)}"
    if history:
        parts.append(f"{_HISTORY_INTRO}\n\n{_transcript(history, names)}")
    return StrategyInput(query=query, system_prompt="\n\n".join(parts) if parts else None)


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


def _call_names(turns: Sequence[Message]) -> dict[str, str]:
    return {call.id: call.name for message in turns for call in message.tool_calls}


def _transcript(turns: Sequence[Message], names: dict[str, str]) -> str:
    return "\n".join(_render(message, names) for message in turns)


def _render(message: Message, names: dict[str, str]) -> str:
    if message.role == "tool":
        call_id = message.tool_call_id or ""
        return f'<tool_result call="{call_id}" name="{names.get(call_id, "")}">\n{message.content}\n</tool_result>'
    parts = [message.content] if message.content else []
    parts += [_render_call(call) for call in message.tool_calls]
    body = "\n".join(parts)
    return f"<{message.role}>\n{body}\n</{message.role}>"


def _render_call(call: ToolCall) -> str:
    return f'<tool_call id="{call.id}" name="{call.name}">\n{call.arguments}\n</tool_call>'


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
