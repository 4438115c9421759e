"""Phase 2: one review of the strengths and weaknesses of every candidate."""

from __future__ import annotations as _annotations

from dataclasses import dataclass

from optillm_core import RunContext
from optillm_core.toolkit import settle

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

    A judge call: the caller's temperature, top_p, seed and stop do not reach it (its max_tokens does),
    nor do the caller's tools: it is asked the conversation as one question (``ctx.query``). Only
    the critique's text outside any thinking is passed on. What a failed request costs is core's one
    policy (:func:`optillm_core.toolkit.settle`): a retryable error (the router has already retried
    it) or an unreadable reply leaves the synthesis without a review; any other error (401, 403,
    400, an exhausted budget) ends the run with the provider's message.
    """
    settings = ctx.call_settings(
        "judge", temperature=ctx.config.critique_temperature, max_tokens=ctx.config.critique_max_tokens
    )
    prompt = ctx.prompt(critique_prompt(ctx.query, candidates))
    (result,) = await settle([lambda: ctx.client.complete(prompt, settings)], optimizer=ctx.optimizer, what="critique")
    if isinstance(result, Exception):  # settle logged it
        return Critique(text="", truncated=False, failed=True)
    critique = Critique(text=result.text.strip(), truncated=result.truncated())
    if critique.truncated or not critique.text:
        log.warning(
            "moa: critique incomplete", optimizer=ctx.optimizer, truncated=critique.truncated, empty=not critique.text
        )
    return critique
