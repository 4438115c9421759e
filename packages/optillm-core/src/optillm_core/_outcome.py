"""What a strategy returns (an outcome) and what a run returns to its caller (a solution with its accounting)."""

from __future__ import annotations as _annotations

import os
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ._responses import FinishReason, TokenUsage
from ._tools import ToolCall

__all__ = ("OptimizerMetadata", "Outcome", "Solution")


class Outcome(BaseModel):
    """What a strategy's :meth:`Optimizer.run` returns; :meth:`Optimizer.optimize` adds the accounting.

    ``finish_reason``: why the answer's text ends, as the completion it came from said:
    ``"length"`` when the answer is cut off at a token limit (a strategy that had nothing better to
    answer with), ``"stop"`` when it is whole.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    answer: str
    reasoning: str = ""
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    iterations: int = 1
    extras: dict[str, Any] = Field(default_factory=dict)
    budget_exhausted: bool = False


class OptimizerMetadata(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    optimizer_name: str
    iterations: int
    llm_calls: int
    duration_ms: int
    budget_exhausted: bool = False
    dropped_settings: tuple[str, ...] = ()
    extras: dict[str, Any] = Field(default_factory=dict)


class Solution(BaseModel):
    """The result of one optimization run, with exact usage of every model call it made.

    ``answer`` never contains the model's thinking; ``thinking`` holds the thinking behind the
    final answer where the model showed it, and ``reasoning`` the strategy's account of the run.
    ``tool_calls`` are the calls the final answer made to the caller's tools (only strategies with
    :attr:`Optimizer.answers_with_tools` return any). ``finish_reason`` is ``"length"`` when the
    answer is cut off at a token limit (see :class:`Outcome`), so that a caller can tell.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str = Field(default_factory=lambda: f"solution-{os.urandom(16).hex()}")  # uuid4's 2 µs, cut to 0.4
    answer: str
    reasoning: str
    thinking: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: FinishReason = "stop"
    usage: TokenUsage
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    metadata: OptimizerMetadata

    @property
    def prompt_tokens(self) -> int:
        return self.usage.input_tokens

    @property
    def completion_tokens(self) -> int:
        return self.usage.output_tokens
