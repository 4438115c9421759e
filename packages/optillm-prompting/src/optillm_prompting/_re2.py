"""RE2: the question, then the request to read it again and the question once more, in one call."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import ClassVar

from optillm_core import CallRole, GenerationSettings, ModelClient, Optimizer, Outcome, Prompt, RunContext

from ._config import Re2Config
from ._prompts import reread_note, reread_query

__all__ = ("Re2Optimizer",)


class Re2Optimizer(Optimizer[Re2Config]):
    """Re-reading: states the question twice ("Read the question again: ..."); the reply is the answer as it is.

    The one call is the run's final call, under the caller's settings, streamed to callers that
    show answers live. With the caller's tools offered, the conversation goes turn by turn as the
    caller sent it (so its last turn stays the user's message or the tool results) and the second
    reading goes after the system prompt.
    """

    name: ClassVar[str] = "re2"
    description: ClassVar[str] = "Re-reading: the question stated, then read again, in one call."
    config_type: ClassVar[type[Re2Config]] = Re2Config
    phases: ClassVar[Mapping[str, CallRole]] = {"reread": "final"}
    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """One call, whatever the settings and the model."""
        return 1

    async def run(self, ctx: RunContext[Re2Config]) -> Outcome:
        ctx.phase("reread")
        config = ctx.config
        settings = ctx.call_settings(
            "final",
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            pinned=config.pinned(temperature="temperature"),
        )
        completion = await ctx.generate_final(_prompt(ctx), settings)
        truncated = completion.truncated()
        calls = () if truncated else completion.calls
        return Outcome(
            answer=completion.text,
            thinking=completion.reasoning.strip(),
            tool_calls=calls,
            finish_reason="length" if truncated and not calls else "stop",
            reasoning="The question was stated, then read again, in one call.",
        )


def _prompt(ctx: RunContext[Re2Config]) -> Prompt:
    if ctx.tools_offered:
        return ctx.conversation_prompt(reread_note(ctx.conversation.question))
    return ctx.prompt(reread_query(ctx.query, ctx.conversation.question))
