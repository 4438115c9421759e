"""Messages, prompts and per-call generation settings."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ("GenerationSettings", "Message", "Prompt", "Role")

Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    """One chat message."""

    model_config = ConfigDict(frozen=True)

    role: Role
    content: str

    @classmethod
    def system(cls, content: str) -> Self:
        return cls(role="system", content=content)

    @classmethod
    def user(cls, content: str) -> Self:
        return cls(role="user", content=content)

    @classmethod
    def assistant(cls, content: str) -> Self:
        return cls(role="assistant", content=content)


class Prompt(BaseModel):
    """The conversation sent to a model.

    ``system`` overrides the system instructions: when set, it replaces every system message in
    ``messages`` (the Rust crate's ``base_instructions_override``).
    """

    model_config = ConfigDict(frozen=True)

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
        return (Message.system(self.system), *rest)

    def system_text(self) -> str | None:
        """All system instructions joined, for providers that take them outside the messages."""
        parts = [m.content for m in self.effective_messages() if m.role == "system"]
        return "\n\n".join(parts) if parts else None


class GenerationSettings(BaseModel):
    """Sampling settings of one model call. ``None`` means the provider's default.

    ``extra`` carries provider-specific request fields (for example ``top_k``); providers send
    them as they are.
    """

    model_config = ConfigDict(frozen=True)

    temperature: float | None = Field(default=None, ge=0.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    n: int = Field(default=1, ge=1)
    stop: tuple[str, ...] | None = None
    seed: int | None = None
    extra: Mapping[str, Any] = Field(default_factory=dict)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_tuple(cls, value: object) -> object:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list):
            return tuple(value)
        return value

    def with_(self, **changes: Any) -> Self:
        """A validated copy with some settings changed."""
        return type(self).model_validate({**self.model_dump(), **changes})

    def merged(self, overrides: GenerationSettings | None) -> GenerationSettings:
        """These settings with every field that ``overrides`` sets explicitly taking precedence."""
        if overrides is None:
            return self
        return self.with_(**overrides.model_dump(exclude_unset=True))
