"""Messages, prompts and per-call generation settings."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._tools import ToolCall, ToolChoice, ToolDefinition

__all__ = ("GenerationSettings", "Message", "Prompt", "Role")

Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    """One chat message.

    An assistant message may carry the tool calls the model made (``content`` may then be empty);
    a ``tool`` message carries one call's result and the id of that call.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    role: Role
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _tool_fields_fit_the_role(self) -> Self:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only assistant messages carry tool calls, not {self.role} messages")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs the tool_call_id of the call it answers, and only it has one")
        return self

    @classmethod
    def system(cls, content: str) -> Self:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Self:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str, *, tool_calls: tuple[ToolCall, ...] = ()) -> Self:
        return cls(role="assistant", content=content, tool_calls=tool_calls)

    @classmethod
    def tool_result(cls, content: str, *, tool_call_id: str) -> Self:
        """The result of the tool call ``tool_call_id``, sent back to the model."""
        return cls(role="tool", content=content, tool_call_id=tool_call_id)


class Prompt(BaseModel):
    """The conversation sent to a model.

    ``system`` overrides the system instructions: when set, it replaces every system message in
    ``messages`` (the Rust crate's ``base_instructions_override``).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    messages: tuple[Message, ...]
    system: str | None = None

    @classmethod
    def from_query(cls, query: str, *, system: str | None = None) -> Self:
        """A one-turn prompt: an optional system message and the user's query."""
        return cls(messages=(Message.user(query),), system=system)

    def effective_messages(self) -> tuple[Message, ...]:
        """The messages as a provider should send them, with the system override applied."""
        if self.system is None:
            return self.messages
        rest = tuple(m for m in self.messages if m.role != "system")
        return (_system_message(self.system), *rest)

    def system_text(self) -> str | None:
        """All system instructions joined, for providers that take them outside the messages."""
        parts = [m.content for m in self.effective_messages() if m.role == "system"]
        return "\n\n".join(parts) if parts else None


@lru_cache(maxsize=64)
def _system_message(content: str) -> Message:
    """The system message of a prompt's override, shared (messages are frozen): a strategy sends the same
    few system prompts with every call, and each call would otherwise build and validate it again."""
    return Message.system(content)


class GenerationSettings(BaseModel):
    """Sampling settings of one model call. ``None`` means the provider's default.

    ``extra`` carries provider-specific request fields (for example ``top_k``); providers send
    them as they are. ``tools`` are the functions the model may call and ``tool_choice`` whether
    it must; providers translate both to their wire format.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    temperature: float | None = Field(default=None, ge=0.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1)
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    tools: tuple[ToolDefinition, ...] | None = None
    tool_choice: ToolChoice | None = None
    extra: Mapping[str, Any] = Field(default_factory=dict)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_tuple(cls, value: object) -> object:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(value)
        return value

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice_from_mode(cls, value: object) -> object:
        return {"mode": value} if isinstance(value, str) else value

    @field_validator("tools", mode="after")
    @classmethod
    def _tool_names_unique(cls, value: tuple[ToolDefinition, ...] | None) -> tuple[ToolDefinition, ...] | None:
        names = [tool.name for tool in value or ()]
        if len(names) != len(set(names)):
            raise ValueError(f"tool names must be unique: {sorted(n for n in set(names) if names.count(n) > 1)}")
        return value

    def with_(self, **changes: Any) -> Self:
        """A validated copy with some settings changed.

        The fields are passed on as they are, not dumped first: the unchanged ones are valid already
        (tools stay the same objects, not dicts validated again), so only the changes are checked anew.
        """
        return type(self).model_validate({**self.__dict__, **changes})

    def merged(self, overrides: GenerationSettings | None) -> GenerationSettings:
        """These settings with every field that ``overrides`` sets explicitly taking precedence."""
        if overrides is None:
            return self
        return self.with_(**overrides.model_dump(exclude_unset=True))
