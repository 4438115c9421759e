"""Chat messages as a strategy sees them (query and system prompt) or as a model client sends them (a prompt).

A strategy answers one query. The last message must come from the user and is that query; system
and developer messages become the system prompt; earlier user and assistant turns are added to the
system prompt as a tagged transcript, so the strategy knows the context while the question stays
a real user message and answers are never cut at speaker markers.
"""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optillm_core import Message, Prompt

from ._errors import ApiError
from ._wire import ChatMessage

__all__ = ("StrategyInput", "client_prompt", "strategy_input", "strategy_question")

_SYSTEM_ROLES = frozenset({"system", "developer"})

_HISTORY_INTRO = (
    "Earlier turns of this conversation, oldest first, for context. "
    "The user's latest message, which is what you answer now, follows separately."
)


@dataclass(frozen=True)
class StrategyInput:
    query: str
    system_prompt: str | None


def strategy_input(messages: Sequence[ChatMessage]) -> StrategyInput:
    """The query (the last user message) and the system prompt (system messages plus earlier turns)."""
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    for index, message in enumerate(messages):
        text = _text(message, index, "strategies")
        if message.role in _SYSTEM_ROLES:
            system.append(text)
        else:
            turns.append((_chat_role(message, index, "strategies"), text))
    return strategy_question(system, turns)


def strategy_question(system: Sequence[str], turns: Sequence[tuple[str, str]]) -> StrategyInput:
    """The query (the last turn, which must be the user's) and the system prompt with the earlier turns.

    ``system`` holds the system prompt's parts; ``turns`` each user or assistant message's role and
    text, oldest first. Chat completions and Anthropic messages both end up here.
    """
    parts = list(system)
    if not turns or turns[-1][0] != "user":
        raise ApiError(
            400,
            "the last non-system message must come from the user: a strategy answers that message",
            param="messages",
        )
    *history, (_, query) = turns
    if not query.strip():
        raise ApiError(400, "the last user message is empty: send the question to answer", param="messages")
    if history:
        transcript = "\n".join(f"<{role}>\n{text}\n</{role}>" for role, text in history)
        parts.append(f"{_HISTORY_INTRO}\n\n{transcript}")
    return StrategyInput(query=query, system_prompt="\n\n".join(parts) if parts else None)


def client_prompt(messages: Sequence[ChatMessage]) -> Prompt:
    """The conversation as a :class:`Prompt`, turn by turn, for pass-through over a model client."""
    converted: list[Message] = []
    for index, message in enumerate(messages):
        text = _text(message, index, "this provider")
        role = "system" if message.role in _SYSTEM_ROLES else _chat_role(message, index, "this provider")
        converted.append(Message(role=role, content=text))
    return Prompt(messages=tuple(converted))


def _chat_role(message: ChatMessage, index: int, where: str) -> str:
    if message.role == "assistant" and message.tool_calls:
        raise ApiError(400, f"messages with tool calls are not supported by {where}", param=f"messages.{index}")
    if message.role not in ("user", "assistant"):
        raise ApiError(
            400,
            f"message role '{message.role}' is not supported by {where} (use system, developer, user or assistant)",
            param=f"messages.{index}.role",
        )
    return message.role


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
