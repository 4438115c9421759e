"""What a model sends back: streaming events, token usage and collected completions."""

from __future__ import annotations as _annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, computed_field

from ._tools import ToolCall

__all__ = (
    "Completed",
    "Completion",
    "FinishReason",
    "OutputTextDelta",
    "ReasoningDelta",
    "ResponseEvent",
    "TokenUsage",
    "ToolCallDelta",
)

FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error", "other"]


class TokenUsage(BaseModel):
    """Tokens of one call or of many (``+`` adds them up)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    input_tokens: NonNegativeInt = 0
    output_tokens: NonNegativeInt = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def prompt_tokens(self) -> int:
        """OpenAI's name for ``input_tokens``."""
        return self.input_tokens

    @property
    def completion_tokens(self) -> int:
        """OpenAI's name for ``output_tokens``."""
        return self.output_tokens

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
        )

    @classmethod
    def zero(cls) -> Self:
        return cls()


class OutputTextDelta(BaseModel):
    """A piece of generated text for choice ``index``."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["output_text_delta"] = "output_text_delta"
    delta: str
    index: NonNegativeInt = 0


class ReasoningDelta(BaseModel):
    """A piece of the model's thinking for choice ``index``: never part of the answer text.

    Providers send it for ``reasoning_content``, Anthropic thinking blocks and Gemini thought parts;
    :meth:`~optillm_core.ModelClient.stream` also moves ``<think>…</think>`` text here.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["reasoning_delta"] = "reasoning_delta"
    delta: str
    index: NonNegativeInt = 0


class ToolCallDelta(BaseModel):
    """A piece of tool call ``call`` (its position in the choice) of choice ``index``.

    The first piece of a call carries its ``id`` and ``name``; every piece may carry a fragment of
    its ``arguments`` JSON text. Providers that send whole calls send one piece per call. A piece
    may carry the call's ``signature`` (see :class:`ToolCall`).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["tool_call_delta"] = "tool_call_delta"
    index: NonNegativeInt = 0
    call: NonNegativeInt = 0
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    signature: str | None = None


class Completed(BaseModel):
    """The last event of a stream: usage of the whole call and the finish reason of each choice."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    type: Literal["completed"] = "completed"
    usage: TokenUsage | None = None
    finish_reasons: tuple[FinishReason | None, ...] = ()
    model: str | None = None


ResponseEvent = Annotated[OutputTextDelta | ReasoningDelta | ToolCallDelta | Completed, Field(discriminator="type")]


class Completion(BaseModel):
    """A finished call: one text per choice, usage and finish reasons.

    ``texts`` hold the answers without thinking; ``thinking`` holds each choice's thinking (empty
    when the model showed none), wherever the model put it; ``tool_calls`` each choice's tool calls
    (empty when no choice called a tool).
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    texts: tuple[str, ...]
    thinking: tuple[str, ...] = ()
    tool_calls: tuple[tuple[ToolCall, ...], ...] = ()
    usage: TokenUsage = Field(default_factory=TokenUsage)
    finish_reasons: tuple[FinishReason | None, ...] = ()
    model: str | None = None

    @property
    def text(self) -> str:
        """The first choice's text."""
        return self.texts[0] if self.texts else ""

    @property
    def reasoning(self) -> str:
        """The first choice's thinking ("" when there is none)."""
        return self.thinking[0] if self.thinking else ""

    @property
    def calls(self) -> tuple[ToolCall, ...]:
        """The first choice's tool calls (empty when it called none)."""
        return self.tool_calls[0] if self.tool_calls else ()

    def calls_of(self, index: int) -> tuple[ToolCall, ...]:
        """The tool calls of choice ``index``."""
        return self.tool_calls[index] if index < len(self.tool_calls) else ()

    def finish_reason(self, index: int = 0) -> FinishReason | None:
        return self.finish_reasons[index] if index < len(self.finish_reasons) else None

    def truncated(self, index: int = 0) -> bool:
        """Whether choice ``index`` stopped because it reached ``max_tokens``."""
        return self.finish_reason(index) == "length"
