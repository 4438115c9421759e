"""CoT reflection: one call that thinks, reflects on its thinking, then answers in an output section."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import ClassVar

from optillm_core import CallRole, GenerationSettings, ModelClient, Optimizer, Outcome, Prompt, RunContext

from ._config import CotReflectionConfig
from ._log import log
from ._prompts import cot_reflection_instructions
from ._sections import Sections, parse_sections

__all__ = ("CotReflectionOptimizer",)


class CotReflectionOptimizer(Optimizer[CotReflectionConfig]):
    """Asks for reasoning, a reflection on it and the answer in marked sections; returns the answer section.

    The one call is the run's final call: the caller's temperature, top_p, seed, max_tokens, stop,
    response_format, tools and tool_choice reach it (see :class:`CotReflectionConfig` for
    ``temperature`` and ``max_tokens``). Its thinking and reflection go to the solution's
    ``reasoning``, never into the answer; a reply that ignores the format is the answer as a whole
    (less any thinking the model does natively, which the client keeps apart as ``thinking``).
    """

    name: ClassVar[str] = "cot_reflection"
    description: ClassVar[str] = "Chain of thought with reflection: think, check the thinking, answer; one call."
    config_type: ClassVar[type[CotReflectionConfig]] = CotReflectionConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"reflect": "final"}
    # The one call gets the caller's tools and the conversation as real turns; its tool calls return.
    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """One call, whatever the settings and the model."""
        return 1

    async def run(self, ctx: RunContext[CotReflectionConfig]) -> Outcome:
        ctx.phase("reflect")
        completion = await ctx.generate(_prompt(ctx), _settings(ctx))
        truncated = completion.truncated()
        sections = parse_sections(completion.text, truncated=truncated)
        calls = () if truncated else completion.calls  # a call cut off at max_tokens has broken arguments
        answer = sections.answer
        answer_cut = truncated and not (sections.output is not None and sections.output_closed)
        if sections.marked and sections.source != "output" and not calls:
            log.warning(
                "cot_reflection: the reply has no output section",
                optimizer=ctx.optimizer,
                truncated=truncated,
                answered_with="the text outside the sections" if answer else "nothing",
            )
        return Outcome(
            answer=answer,
            thinking=completion.reasoning.strip(),
            tool_calls=calls,
            finish_reason="length" if answer_cut and not calls else "stop",
            reasoning=_reasoning(sections, truncated=truncated, called=bool(calls)),
            extras={
                "answer_source": sections.source,
                "followed_format": sections.output is not None,
                "output_closed": sections.output_closed,
                "truncated": truncated,
            },
        )


def _settings(ctx: RunContext[CotReflectionConfig]) -> GenerationSettings:
    config = ctx.config
    pinned = config.pinned(temperature="temperature", max_tokens="max_tokens")
    # Upstream's request values override its defaults: the caller's max_tokens replaces the default
    # (None here lets the caller's stand alone) unless the config set its own.
    own_limit = ctx.settings.max_tokens is None or "max_tokens" in pinned
    return ctx.call_settings(
        "final",
        temperature=config.temperature,
        max_tokens=config.max_tokens if own_limit else None,
        pinned=pinned,
    )


def _prompt(ctx: RunContext[CotReflectionConfig]) -> Prompt:
    if ctx.tools_offered:
        caller_system = "\n\n".join(ctx.conversation.system) or None
        return ctx.conversation_prompt(system=cot_reflection_instructions(caller_system, tools=True))
    return ctx.prompt(ctx.query, system=cot_reflection_instructions(ctx.system_prompt))


def _reasoning(sections: Sections, *, truncated: bool, called: bool) -> str:
    parts = []
    if sections.thinking:
        parts.append(f"Thinking:\n{sections.thinking}")
    if sections.reflection:
        parts.append(f"Reflection:\n{sections.reflection}")
    if called:
        parts.append("The reply called the caller's tools.")
    elif sections.source == "output":
        if not sections.output_closed and truncated:
            parts.append("The output section was cut off at the token limit.")
    elif not sections.marked:
        parts.append("The reply did not use the sections: the whole reply is the answer.")
    elif sections.source == "unmarked":
        parts.append("The reply has no output section: the answer is its text outside the thinking and reflection.")
    elif truncated:
        parts.append("The reply was cut off at the token limit before its output section: there is no answer.")
    else:
        parts.append("The reply has no output section and no text outside its thinking: there is no answer.")
    return "\n\n".join(parts)
