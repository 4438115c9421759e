"""Evaluation of a finished rollout by the model, read with the toolkit's one rating reader."""

from __future__ import annotations as _annotations

from dataclasses import dataclass

from optillm_core import Completion, Message, Prompt, RunContext
from optillm_core.toolkit import parse_rating, settle

from ._config import MctsConfig
from ._log import log
from ._prompts import EVALUATE, RATING_SCALE

__all__ = ("NEUTRAL_SCORE", "Score", "evaluate")


NEUTRAL_SCORE = 0.5


@dataclass(frozen=True)
class Score:
    """A rollout's value in [0, 1]; ``parsed`` is false when no rating was read and 0.5 stood in.

    ``text`` is the evaluator's reply, or what went wrong when the evaluation call failed.
    """

    value: float
    parsed: bool
    text: str


async def evaluate(ctx: RunContext[MctsConfig], system: str | None, transcript: tuple[Message, ...]) -> Score:
    """Ask the model to rate the conversation from 0 to 10 and read its rating (:func:`parse_rating`).

    A judge call: the caller's temperature, top_p, seed and stop do not reach it (its max_tokens
    does), nor do the caller's tools. The rating is read from the text outside the model's thinking.
    A reply without a rating, and a call that failed in a way the absorb policy lets a phase go on
    without (:func:`settle`: a rate limit, an overload, an unreadable reply), count as neutral 0.5,
    logged; any other failure (authentication, a bad request, the budget) ends the run.
    """
    settings = ctx.call_settings(
        "judge", temperature=ctx.config.evaluation_temperature, max_tokens=ctx.config.evaluation_max_tokens
    )
    prompt = Prompt(messages=(*transcript, Message.user(EVALUATE)), system=system)

    async def call() -> Completion:
        return await ctx.client.complete(prompt, settings)

    (result,) = await settle([call], optimizer=ctx.optimizer, what="evaluation")
    if isinstance(result, Exception):
        failure = f"the evaluation failed: {type(result).__name__}: {result}"
        return Score(value=NEUTRAL_SCORE, parsed=False, text=failure)
    text = result.text
    value = parse_rating(text, scale=RATING_SCALE)
    if value is None:
        log.warning("mcts: evaluation held no rating, using neutral", optimizer=ctx.optimizer, reply=text[:200])
        return Score(value=NEUTRAL_SCORE, parsed=False, text=text)
    return Score(value=value, parsed=True, text=text)
