"""How a phase's token limit meets the caller's."""

from __future__ import annotations as _annotations

__all__ = ("answer_max_tokens",)


def answer_max_tokens(phase_limit: int, caller_limit: int | None) -> int:
    """The caller's ``max_tokens`` caps a phase that writes an answer; it never raises the phase's limit."""
    return phase_limit if caller_limit is None else min(phase_limit, caller_limit)
