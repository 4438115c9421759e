"""Phase 2: one review of the strengths and weaknesses of every candidate."""

from __future__ import annotations as _annotations

from dataclasses import dataclass

from optillm_core import ClientError, RunContext

from ._config import MoaConfig
from ._log import log
from ._prompts import critique_prompt

__all__ = ("Critique", "critique_candidates")


@dataclass(frozen=True)
class Critique:
    text: str
    truncated: bool
    failed: bool = False


async def critique_candidates(ctx: RunContext[MoaConfig], candidates: tuple[str, ...]) -> Critique:
    """A cut-off critique is kept as it is (the synthesis is told so); an empty one is passed on as missing.

    A judge call: the caller's temperature, top_p, seed and stop do not reach it (its max_tokens does).
    Only the critique's text outside any thinking is passed on. A request that fails with a
    retryable error (the router has already retried it) leaves the synthesis without a review.
    """
    settings = ctx.call_settings(
        "judge", temperature=ctx.config.critique_temperature, max_tokens=ctx.config.critique_max_tokens
    )
    try:
        completion = await ctx.client.complete(ctx.prompt(critique_prompt(ctx.query, candidates)), settings)
    except ClientError as exc:
        if not exc.retryable:
            raise
        log.warning("moa: critique failed, synthesizing without it", optimizer=ctx.optimizer, error=str(exc))
        return Critique(text="", truncated=False, failed=True)
    critique = Critique(text=completion.text.strip(), truncated=completion.truncated())
    if critique.truncated or not critique.text:
        log.warning(
            "moa: critique incomplete", optimizer=ctx.optimizer, truncated=critique.truncated, empty=not critique.text
        )
    return critique
