"""Phase 3: one final answer written from the candidates and the critique."""

from __future__ import annotations as _annotations

from dataclasses import dataclass
from typing import Literal

from optillm_core import Prompt, RunContext, ToolCall

from ._candidates import Candidates
from ._config import MoaConfig
from ._critique import Critique
from ._log import log
from ._prompts import synthesis_instructions, synthesis_prompt

__all__ = ("Synthesis", "synthesize")


@dataclass(frozen=True)
class Synthesis:
    """The answer and where it came from; ``truncated``: the synthesis (or, with every candidate
    cut off, the answer) hit its token limit; ``answer_cut``: the answer itself ends there."""

    answer: str
    thinking: str
    source: Literal["synthesis", "candidate"]
    truncated: bool
    tool_calls: tuple[ToolCall, ...] = ()
    answer_cut: bool = False


async def synthesize(ctx: RunContext[MoaConfig], candidates: Candidates, critique: Critique) -> Synthesis:
    """The synthesis, or, when it came back empty or cut off, the first complete candidate.

    The run's final call: the caller's temperature, top_p and seed replace ``synthesis_temperature``
    (unless the config set it), and the caller's stop, response_format, tools and tool_choice reach
    it. With tools offered it is asked the caller's conversation as it is, turn by turn (assistant
    tool calls and tool results as real tool turns, ending as the caller's did), with the
    candidates, the review and the instruction after the caller's system prompt; else one question
    holding the flattened conversation. A synthesis that calls the caller's tools is the
    answer as it is, its text empty or not: the calls are returned with it (a candidate, written
    without the tools, could not stand in for them).
    """
    config = ctx.config
    settings = ctx.call_settings(
        "final",
        temperature=config.synthesis_temperature,
        max_tokens=config.synthesis_max_tokens,
        pinned=config.pinned(temperature="synthesis_temperature"),
    )
    # Streamed live to callers that show answers as they are generated (the proxy's stream: true).
    completion = await ctx.generate_final(_prompt(ctx, candidates, critique), settings)
    text, thinking, truncated = completion.text, completion.reasoning.strip(), completion.truncated()
    if completion.calls and not truncated:
        return Synthesis(
            answer=text, thinking=thinking, source="synthesis", truncated=False, tool_calls=completion.calls
        )
    if text.strip() and not truncated:
        return Synthesis(answer=text, thinking=thinking, source="synthesis", truncated=False)
    fallback = _first_complete(candidates)
    if fallback is None:
        # Every candidate was cut off too: a cut-off synthesis still holds more than a cut-off candidate.
        if text.strip():
            return Synthesis(answer=text, thinking=thinking, source="synthesis", truncated=True, answer_cut=True)
        return Synthesis(
            answer=candidates.texts[0],
            thinking=candidates.thinking[0],
            source="candidate",
            truncated=True,
            answer_cut=candidates.truncated[0],
        )
    log.warning(
        "moa: synthesis unusable, answering with a candidate",
        optimizer=ctx.optimizer,
        truncated=truncated,
        thinking_only=not text.strip() and bool(thinking.strip()),
    )
    return Synthesis(
        answer=candidates.texts[fallback],
        thinking=candidates.thinking[fallback],
        source="candidate",
        truncated=truncated,
    )


def _prompt(ctx: RunContext[MoaConfig], candidates: Candidates, critique: Critique) -> Prompt:
    if ctx.tools_offered:
        caller_system = "\n\n".join(ctx.conversation.system) or None
        system = synthesis_instructions(
            caller_system,
            candidates.texts,
            critique.text,
            critique_cut=critique.truncated,
            tool_results=ctx.conversation.has_tool_turns,
        )
        return ctx.conversation_prompt(system=system)
    text = synthesis_prompt(ctx.query, candidates.texts, critique.text, critique_cut=critique.truncated)
    return ctx.prompt(text)


def _first_complete(candidates: Candidates) -> int | None:
    return next((i for i, cut in enumerate(candidates.truncated) if not cut), None)
