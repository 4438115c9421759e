"""Round-trip optimization: code C1, a description of it, code C2 from the description alone, a merge C3 if they differ.

Calls in order (each needs the one before): C1 answers the query; the model then describes C1, in
the same conversation, as an instruction it could rewrite the code from; C2 is written from that
description alone (with the caller's system prompt, without the query); when C1 and C2 hold
different code (:func:`~optillm_code.same_code`: extracted blocks, whitespace ignored), C3 merges
them. The answer is C3's reply, or, when the round trip gave the same code back, C1's extracted code
(as upstream returns them).
"""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from optillm_core import (
    CallRole,
    Completion,
    GenerationSettings,
    Message,
    ModelClient,
    NoSolutions,
    Optimizer,
    Outcome,
    Prompt,
    RunContext,
)
from optillm_core.toolkit import apply_stop, settle

from ._code import extract_code, same_code
from ._config import RtoConfig
from ._log import log
from ._prompts import describe_instruction, merge_note, merge_prompt

__all__ = ("RtoOptimizer",)


class RtoOptimizer(Optimizer[RtoConfig]):
    """Round-trip optimization for code: write it, describe it, rewrite it from the description, merge if different."""

    name: ClassVar[str] = "rto"
    description: ClassVar[str] = (
        "Round-trip optimization for code: C1, a description of it, C2 from the description, a merge if they differ."
    )
    config_type: ClassVar[type[RtoConfig]] = RtoConfig
    phases: ClassVar[Mapping[str, CallRole]] = {
        "code": "returned",
        "describe": "answer",
        "rewrite": "answer",
        "merge": "final",
    }
    # C1 answers the caller's conversation with the caller's tools (it is returned when the round
    # trip confirms it, and a tool call ends the run there); the merge is the final call with them.
    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """C1, the description and C2; the merge adds a fourth call only when C1 and C2 differ."""
        return 3

    async def run(self, ctx: RunContext[RtoConfig]) -> Outcome:
        config = ctx.config
        pinned = config.pinned(temperature="temperature")

        ctx.phase("code")
        c1_settings = ctx.call_settings(
            "returned", temperature=config.temperature, max_tokens=config.code_max_tokens, pinned=pinned
        )
        c1_prompt = ctx.conversation_prompt() if ctx.tools_offered else ctx.prompt(ctx.query)
        c1 = await ctx.client.complete(c1_prompt, c1_settings)
        if c1.calls:
            return Outcome(
                answer=c1.text.strip(),
                thinking=c1.reasoning,
                tool_calls=c1.calls,
                finish_reason="length" if c1.truncated() else "stop",
                reasoning="The first version called the caller's tools instead of writing code; it is the answer.",
                extras=_extras(c1.text, None, None, source="c1", same=None),
            )
        if not c1.text.strip():
            raise NoSolutions(
                "rto: the first version of the code came back empty"
                + (" (only thinking)" if c1.reasoning.strip() else "")
                + f"; raise code_max_tokens (now {config.code_max_tokens}) or the caller's max_tokens"
            )
        code1 = extract_code(c1.text)
        ctx.record_best(apply_stop(code1, ctx.settings.stop), "rto stopped after the first version (C1).")

        ctx.phase("describe")
        describe = Prompt(
            messages=(Message.user(ctx.query), Message.assistant(c1.text), Message.user(describe_instruction)),
            system=ctx.system_prompt,
        )
        description = await _absorbed(
            ctx,
            describe,
            ctx.call_settings(
                "answer", temperature=config.temperature, max_tokens=config.description_max_tokens, pinned=pinned
            ),
            "description",
        )
        if description is None or not description.text.strip():
            return _first(ctx, c1, code1, None, None, why="the description came back empty or failed")

        ctx.phase("rewrite")
        c2 = await _absorbed(
            ctx,
            ctx.prompt(description.text.strip()),
            ctx.call_settings(
                "answer", temperature=config.temperature, max_tokens=config.code_max_tokens, pinned=pinned
            ),
            "second version",
        )
        if c2 is None or not c2.text.strip():
            return _first(ctx, c1, code1, description.text, None, why="the second version came back empty or failed")
        code2 = extract_code(c2.text)
        if same_code(code1, code2):
            return _first(ctx, c1, code1, description.text, c2.text, why=None)

        ctx.phase("merge")
        merge = (
            ctx.conversation_prompt(merge_note(code1, code2))
            if ctx.tools_offered
            else ctx.prompt(merge_prompt(ctx.query, code1, code2))
        )
        settings = ctx.call_settings(
            "final", temperature=config.temperature, max_tokens=config.code_max_tokens, pinned=pinned
        )
        (c3,) = await settle([lambda: ctx.generate_final(merge, settings)], optimizer=ctx.optimizer, what="merge")
        if (
            isinstance(c3, Exception)
            or (not c3.text.strip() and not c3.calls)
            or (c3.truncated() and not c1.truncated())
        ):
            why = "the merge failed" if isinstance(c3, Exception) else "the merge came back empty or cut off"
            log.warning(f"rto: {why}, answering with the first version", optimizer=ctx.optimizer)
            return _first(ctx, c1, code1, description.text, c2.text, why=why)
        return Outcome(
            answer=c3.text.strip(),
            thinking=c3.reasoning,
            tool_calls=c3.calls,
            finish_reason="length" if c3.truncated() else "stop",
            reasoning=_reasoning(code1, description.text, code2)
            + "\n\nThe versions differ, so the answer is their merge (C3).",
            extras=_extras(c1.text, description.text, c2.text, source="merge", same=False),
        )


async def _absorbed(
    ctx: RunContext[RtoConfig], prompt: Prompt, settings: GenerationSettings, what: str
) -> Completion | None:
    """One call under core's absorb policy: ``None`` when it failed retryably, any other error ends the run."""
    (result,) = await settle([lambda: ctx.client.complete(prompt, settings)], optimizer=ctx.optimizer, what=what)
    return None if isinstance(result, Exception) else result


def _first(
    ctx: RunContext[RtoConfig],
    c1: Completion,
    code1: str,
    description: str | None,
    c2: str | None,
    *,
    why: str | None,
) -> Outcome:
    """C1's code as the answer: the round trip confirmed it (``why`` is ``None``), or could not go on."""
    same = why is None
    note = (
        "The second version holds the same code, so the answer is the first version's code."
        if same
        else f"The round trip stopped ({why}), so the answer is the first version's code."
    )
    return Outcome(
        answer=apply_stop(code1, ctx.settings.stop),
        thinking=c1.reasoning,
        finish_reason="length" if c1.truncated() else "stop",
        reasoning=_reasoning(code1, description, extract_code(c2) if c2 is not None else None) + "\n\n" + note,
        extras=_extras(c1.text, description, c2, source="c1", same=same if c2 is not None else None),
    )


def _reasoning(code1: str, description: str | None, code2: str | None) -> str:
    parts = [f"First version (C1):\n{code1}"]
    if description is not None:
        parts.append(f"Description of C1:\n{description.strip() or '(empty)'}")
    if code2 is not None:
        parts.append(f"Second version (C2), from the description:\n{code2}")
    return "\n\n".join(parts)


def _extras(c1: str, description: str | None, c2: str | None, *, source: str, same: bool | None) -> dict[str, Any]:
    return {"c1": c1, "description": description, "c2": c2, "source": source, "same_code": same}
