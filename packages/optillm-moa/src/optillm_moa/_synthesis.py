"""Phase 3: one final answer written from the candidates and the critique."""

from __future__ import annotations as _annotations

from dataclasses import dataclass
from typing import Literal

import structlog

from optillm_core import RunContext

from ._candidates import Candidates
from ._config import MoaConfig
from ._critique import Critique
from ._prompts import synthesis_prompt
from ._settings import answer_max_tokens

__all__ = ("Synthesis", "synthesize")

log = structlog.get_logger("optillm")


@dataclass(frozen=True)
class Synthesis:
    answer: str
    source: Literal["synthesis", "candidate"]
    truncated: bool


async def synthesize(ctx: RunContext[MoaConfig], candidates: Candidates, critique: Critique) -> Synthesis:
    """The synthesis, or, when it came back empty or cut off, the first complete candidate."""
    config = ctx.config
    settings = ctx.call_settings(
        temperature=config.synthesis_temperature,
        max_tokens=answer_max_tokens(config.synthesis_max_tokens, ctx.settings.max_tokens),
        n=1,
    )
    prompt = synthesis_prompt(ctx.query, candidates.texts, critique.text, critique_cut=critique.truncated)
    # Streamed live to callers that show answers as they are generated (the proxy's stream: true).
    completion = await ctx.generate_final(ctx.prompt(prompt), settings)
    text, truncated = completion.text, completion.truncated()
    if text.strip() and not truncated:
        return Synthesis(answer=text, source="synthesis", truncated=False)
    fallback = _first_complete(candidates)
    if fallback is None:
        # Every candidate was cut off too: a cut-off synthesis still holds more than a cut-off candidate.
        if text.strip():
            return Synthesis(answer=text, source="synthesis", truncated=True)
        return Synthesis(answer=candidates.texts[0], source="candidate", truncated=True)
    log.warning("moa: synthesis unusable, answering with a candidate", optimizer=ctx.optimizer, truncated=truncated)
    return Synthesis(answer=fallback, source="candidate", truncated=truncated)


def _first_complete(candidates: Candidates) -> str | None:
    return next((t for t, cut in zip(candidates.texts, candidates.truncated, strict=True) if not cut), None)
