"""Phase 2: one review of the strengths and weaknesses of every candidate."""

from __future__ import annotations as _annotations

from dataclasses import dataclass

import structlog

from optillm_core import RunContext

from ._config import MoaConfig
from ._prompts import critique_prompt

__all__ = ("Critique", "critique_candidates")

log = structlog.get_logger("optillm")


@dataclass(frozen=True)
class Critique:
    text: str
    truncated: bool


async def critique_candidates(ctx: RunContext[MoaConfig], candidates: tuple[str, ...]) -> Critique:
    """A cut-off critique is kept as it is (the synthesis is told so); an empty one is passed on as missing."""
    settings = ctx.call_settings(
        temperature=ctx.config.critique_temperature, max_tokens=ctx.config.critique_max_tokens, n=1
    )
    completion = await ctx.client.complete(ctx.prompt(critique_prompt(ctx.query, candidates)), settings)
    critique = Critique(text=completion.text.strip(), truncated=completion.truncated())
    if critique.truncated or not critique.text:
        log.warning(
            "moa: critique incomplete", optimizer=ctx.optimizer, truncated=critique.truncated, empty=not critique.text
        )
    return critique
