"""Evaluation of a finished rollout by the model, and a forgiving parser for the score it writes."""

from __future__ import annotations as _annotations

import re
from dataclasses import dataclass

from optillm_core import Message, Prompt, RunContext, split_thinking

from ._config import MctsConfig
from ._log import log
from ._prompts import EVALUATE

__all__ = ("NEUTRAL_SCORE", "Score", "evaluate", "parse_score")


NEUTRAL_SCORE = 0.5

_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
# "on a scale from 0 to 1", "(0-10)": the scale itself is not the score.
_SCALE = re.compile(r"(?<![\d.])0(?:\.0+)?\s*(?:-|–|—|to)\s*(?:1|10|100)(?:\.0+)?(?![\d.])", re.IGNORECASE)
_FRACTION = re.compile(rf"({_NUM})\s*(?:/|out of)\s*({_NUM})", re.IGNORECASE)
_PERCENT = re.compile(rf"({_NUM})\s*%")
_LABELLED = re.compile(rf"(?:score|rating|rate|rated|grade)\b[^\d\n+\-.]{{0,40}}({_NUM})", re.IGNORECASE)
_NUMBER = re.compile(rf"(?<![\w.]){_NUM}")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Score:
    """A rollout's value in [0, 1]; ``parsed`` is false when the reply held no score and 0.5 stood in."""

    value: float
    parsed: bool
    text: str


def parse_score(text: str) -> float | None:
    """Read a score in [0, 1] from an evaluator's reply, or ``None`` when there is none.

    A first line without letters (``0.8`` then an explanation) is read on its own first. Then, in
    order: a fraction (``8/10``, ``4 out of 5``), a percentage (``80%``), a number after a label
    (``Score: 0.8``), else the only number in the reply. A bare number above 1 is read on the
    scale it fits: up to 10 as tenths, up to 100 as a percentage. Negative numbers, numbers past
    100 and replies with several unlabelled numbers give ``None``.
    """
    body = _SCALE.sub(" ", split_thinking(text)[1])
    first_line = next((line for line in body.splitlines() if line.strip()), "")
    if first_line.strip() != body.strip() and not _LETTER.search(first_line):
        score = _read(first_line)
        if score is not None:
            return score
    return _read(body)


def _read(body: str) -> float | None:
    fraction = _last(_FRACTION, body)
    if fraction is not None:
        top, bottom = float(fraction.group(1)), float(fraction.group(2))
        return top / bottom if bottom > 0 and 0 <= top <= bottom else None
    percent = _last(_PERCENT, body)
    if percent is not None:
        value = float(percent.group(1))
        return value / 100 if 0 <= value <= 100 else None
    labelled = _last(_LABELLED, body)
    if labelled is not None:
        return _on_scale(float(labelled.group(1)))
    numbers = {float(m.group(0)) for m in _NUMBER.finditer(body)}
    return _on_scale(numbers.pop()) if len(numbers) == 1 else None


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def _on_scale(value: float) -> float | None:
    for top in (1.0, 10.0, 100.0):
        if 0 <= value <= top:
            return value / top
    return None


async def evaluate(ctx: RunContext[MctsConfig], system: str | None, transcript: tuple[Message, ...]) -> Score:
    """Ask the model to rate the conversation; a reply without a score counts as neutral 0.5, logged.

    A judge call: the caller's temperature, top_p, seed and stop do not reach it (its max_tokens does).
    The score is read from the text outside the model's thinking.
    """
    settings = ctx.call_settings(
        "judge", temperature=ctx.config.evaluation_temperature, max_tokens=ctx.config.evaluation_max_tokens
    )
    prompt = Prompt(messages=(*transcript, Message.user(EVALUATE)), system=system)
    text = (await ctx.client.complete(prompt, settings)).text
    value = parse_score(text)
    if value is None:
        log.warning("mcts: evaluation held no score, using neutral", optimizer=ctx.optimizer, reply=text[:200])
        return Score(value=NEUTRAL_SCORE, parsed=False, text=text)
    return Score(value=value, parsed=True, text=text)
