"""The conversation a run answers: the caller's system prompt and turns, as real turns or as one question.

A strategy answers the conversation's last user message. Calls that may answer with the caller's
tools get the conversation as it is, turn by turn (:meth:`Conversation.prompt`): assistant tool
calls and tool results stay real tool turns, so a model that trusts only those sees that a tool
has already answered. Every other call (candidates, critiques, ratings) gets it as one question
(:attr:`Conversation.query`, :attr:`Conversation.system_prompt`): the last user message with the
tool calls and results made for it since, and the earlier turns as a tagged transcript in the
system prompt, which providers accept without tool definitions.
"""

from __future__ import annotations as _annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Self

from pydantic import BaseModel, ConfigDict

from ._errors import InvalidConfiguration
from ._messages import Message, Prompt
from ._tools import ToolCall

__all__ = ("Conversation",)

_HISTORY_INTRO = (
    "Earlier turns of this conversation, oldest first, for context. "
    "The user's latest message, which is what you answer now, follows separately."
)

_TOOL_RESULTS_INTRO = (
    "Tools have already been called for this request; the calls and their results follow, oldest first. "
    "Take the results into account in your response."
)


class Conversation(BaseModel):
    """The caller's system prompt parts and turns (user, assistant, tool), oldest first.

    Valid when its last turn is a user message or the results of the assistant's tool calls, the
    last user message has text, and every tool result answers a call an earlier assistant turn
    made. Invalid conversations raise :class:`InvalidConfiguration` saying what to fix.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    system: tuple[str, ...] = ()
    turns: tuple[Message, ...]

    def __init__(self, *, system: Iterable[str] = (), turns: Iterable[Message]) -> None:
        turns = tuple(turns)
        problem = _problem(turns)
        if problem is not None:  # raised here, not as pydantic's ValidationError: it is the caller's input
            raise InvalidConfiguration(problem)
        super().__init__(system=tuple(system), turns=turns)

    @classmethod
    def from_query(cls, query: str, *, system: str | None = None) -> Self:
        """One user message, with an optional system prompt."""
        return cls(system=(system,) if system else (), turns=(Message.user(query),))

    @classmethod
    def from_messages(cls, messages: Sequence[Message]) -> Self:
        """A conversation from chat messages: system messages become the system prompt, the rest its turns."""
        return cls(
            system=tuple(m.content for m in messages if m.role == "system"),
            turns=tuple(m for m in messages if m.role != "system"),
        )

    @cached_property
    def _last_user(self) -> int:
        return next(i for i in range(len(self.turns) - 1, -1, -1) if self.turns[i].role == "user")

    @property
    def question(self) -> str:
        """The text of the last user message: what the run answers."""
        return self.turns[self._last_user].content

    def with_question(self, text: str) -> Conversation:
        """The same conversation with the last user message's text replaced (a pipeline's handoff, a rewrite)."""
        turns = list(self.turns)
        turns[self._last_user] = Message.user(text)
        return Conversation(system=self.system, turns=turns)

    @property
    def has_tool_turns(self) -> bool:
        """Whether any turn is a tool call or a tool result."""
        return any(m.tool_calls or m.role == "tool" for m in self.turns)

    @cached_property
    def query(self) -> str:
        """The question as one user message: the last user message, then the tool calls and results since."""
        since = self.turns[self._last_user + 1 :]
        if not since:
            return self.question
        return f"{self.question}\n\n---\n{_TOOL_RESULTS_INTRO}\n\n{_transcript(since, self._call_names)}"

    @cached_property
    def system_prompt(self) -> str | None:
        """The system prompt for calls that get the question alone: its parts, then the earlier turns."""
        parts = list(self.system)
        history = self.turns[: self._last_user]
        if history:
            parts.append(f"{_HISTORY_INTRO}\n\n{_transcript(history, self._call_names)}")
        return "\n\n".join(parts) if parts else None

    def prompt(self, note: str | None = None, *, system: str | None = None) -> Prompt:
        """The conversation turn by turn, exactly as the caller sent it, for a call made with the caller's tools.

        The turns end as the caller's did, with the user's message or with the tool results, so
        the model answers that turn and sees the results as real tool turns. ``system`` replaces
        the caller's system prompt (a strategy's own instructions should include it); ``note``,
        the strategy's material (candidates, a plan, an instruction), follows the system prompt.
        """
        instructions = system if system is not None else ("\n\n".join(self.system) if self.system else None)
        if note:
            instructions = f"{instructions}\n\n{note}" if instructions else note
        return Prompt(messages=self.turns, system=instructions)

    @cached_property
    def _call_names(self) -> dict[str, str]:
        return {call.id: call.name for message in self.turns for call in message.tool_calls}


def _problem(turns: tuple[Message, ...]) -> str | None:
    """What makes ``turns`` a conversation no strategy can answer, or ``None``."""
    if any(m.role == "system" for m in turns):
        return "system messages belong in the conversation's system prompt, not among its turns"
    last_user = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), None)
    if last_user is None or turns[-1].role not in ("user", "tool"):
        return (
            "the last message must come from the user, or be the results of the assistant's tool calls: "
            "a strategy answers that message"
        )
    if not turns[last_user].content.strip():
        return "the last user message is empty: send the question to answer"
    made: set[str] = set()
    for index, message in enumerate(turns):
        made.update(call.id for call in message.tool_calls)
        if message.role == "tool" and message.tool_call_id not in made:
            return (
                f"turn {index} is a tool result for '{message.tool_call_id}', but no earlier assistant turn made "
                "a tool call with that id"
            )
    return None


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
