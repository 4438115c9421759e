"""Tools a model may call, the calls it makes, and which tools a request offers.

The shapes follow OpenAI's chat format, the common ground of every provider: a tool is a name, a
description and a JSON Schema of its arguments; a call carries its arguments as the JSON text the
model wrote (kept as written, so that nothing is lost when it is passed back); providers translate
both to their own wire format.
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ("ToolCall", "ToolChoice", "ToolDefinition")


class ToolDefinition(BaseModel):
    """A function the model may call: its name, what it does, and a JSON Schema of its arguments."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: Mapping[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ToolChoice(BaseModel):
    """Whether the model must, may or must not call a tool, or which one it must call.

    ``mode``: ``auto`` (the model decides), ``none`` (answer in text), ``required`` (call some tool),
    ``tool`` (call the tool named ``name``). ``parallel``: whether the model may call several tools
    in one turn (``None``: the provider's default, which allows it). OpenAI's wire sends it as
    ``parallel_tool_calls`` and Anthropic's as ``disable_parallel_tool_use``; Gemini and Ollama have
    no such switch and send nothing for it.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    mode: Literal["auto", "none", "required", "tool"] = "auto"
    name: str | None = None
    parallel: bool | None = None

    @model_validator(mode="after")
    def _name_only_for_one_tool(self) -> Self:
        if (self.mode == "tool") != (self.name is not None):
            raise ValueError("a tool choice names a tool exactly when its mode is 'tool'")
        return self

    @classmethod
    def tool(cls, name: str) -> Self:
        """The model must call the tool named ``name``."""
        return cls(mode="tool", name=name)


class ToolCall(BaseModel):
    """One call the model made: the provider's id for it, the tool's name and the arguments as JSON text.

    ``signature``: an opaque token the provider attached to the call, which must go back with it
    when the conversation is sent again (Gemini's thought signature; ``None`` for most providers).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    name: str
    arguments: str = "{}"
    signature: str | None = None

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; ``{}`` for empty text. Raises ``ValueError`` when they are not a JSON object."""
        if not self.arguments.strip():
            return {}
        value = json.loads(self.arguments)
        if not isinstance(value, dict):
            raise ValueError(f"the arguments of tool call {self.id!r} are not a JSON object")
        return value
