"""Scorers: what rates a candidate answer to a query (higher is better) and says what the rating cost.

A :class:`Scorer` is given the run's context, the query and one candidate answer, and returns a
:class:`Rating`. Two ship here: :class:`LlmJudgeScorer` asks the model (one ``judge`` call) and
reads the number it writes with :func:`parse_rating`; :class:`FunctionScorer` wraps any Python
callable (a unit-test runner, a regex check, a reward model).
"""

from __future__ import annotations as _annotations

import inspect
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, ConfigDict, Field

from ._context import RunContext
from ._errors import InvalidConfiguration
from ._extract import split_thinking
from ._responses import TokenUsage

__all__ = (
    "FunctionScorer",
    "LlmJudgeScorer",
    "Rating",
    "ScoreFunction",
    "Scorer",
    "parse_rating",
    "rating_prompt",
)


class Rating(BaseModel):
    """One candidate's rating: higher is better, on the scorer's own scale.

    ``parsed`` is false when the scorer could not rate (a judge reply with no number, a function
    that returned ``None``): such a rating ranks below every parsed one, whatever its ``value``.
    ``usage`` and ``llm_calls`` say what the rating cost; ``detail`` is the judge's reply or a note.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    value: float = Field(allow_inf_nan=False)
    parsed: bool = True
    detail: str = ""
    usage: TokenUsage = Field(default_factory=TokenUsage)
    llm_calls: int = Field(default=0, ge=0)

    @classmethod
    def unrated(cls, detail: str, *, usage: TokenUsage | None = None, llm_calls: int = 0) -> Rating:
        return cls(value=0.0, parsed=False, detail=detail, usage=usage or TokenUsage(), llm_calls=llm_calls)


class Scorer(ABC):
    """Rates a candidate answer to a query. Implementations make model calls only through ``ctx``."""

    @property
    def name(self) -> str:
        return type(self).__name__

    @abstractmethod
    async def rate(self, ctx: RunContext[Any], query: str, answer: str) -> Rating:
        """The rating of ``answer`` as an answer to ``query``. A provider error may propagate."""


# -- the LLM judge -----------------------------------------------------------------------------------


def rating_prompt(query: str, answer: str, scale: int = 10) -> str:
    """The judge's prompt: the material first, the instruction (with the scale) last."""
    return (
        "Below are a question and one response to it.\n\n"
        f"<question>\n{query.strip()}\n</question>\n\n"
        f"<response>\n{answer.strip()}\n</response>\n\n"
        f"Rate the response on a scale from 0 to {scale} for how correct and complete it is as an answer "
        f"to the question: 0 means wrong or no answer, {scale} means fully correct and well supported. "
        "A response that calls a tool instead of answering is rated on whether that call is the right next step "
        "towards a correct answer. "
        f"Check its reasoning and its final answer yourself, then end your reply with one line of the form "
        f"`Rating: N/{scale}`."
    )


_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
# "on a scale from 0 to 10", "(0-10)", "0–1": the scale itself is not the rating.
_SCALE = re.compile(
    r"(?:(?:on\s+)?a\s+scale\s+(?:of|from)\s+)?(?<![\d.])0(?:\.0+)?\s*(?:-|–|—|to)\s*(?:1|5|10|100)(?:\.0+)?(?![\d.])",
    re.IGNORECASE,
)
# "/10" or "out of 10" after no number ("Rating: N/10" echoed from the prompt) is not a rating.
_DENOMINATOR = re.compile(rf"({_NUM})?\s*(?:/|\bout\s+of)\s*{_NUM}", re.IGNORECASE)
_LABELLED = re.compile(
    rf"\b(?:rating|score|grade|mark)\b[^\d\n+\-.]{{0,30}}({_NUM})(?:\s*(?:/|out\s+of)\s*({_NUM}))?", re.IGNORECASE
)
_FRACTION = re.compile(rf"({_NUM})\s*(?:/|out\s+of)\s*({_NUM})", re.IGNORECASE)
_PERCENT = re.compile(rf"({_NUM})\s*%")
_NUMBER = re.compile(rf"(?<![\w.]){_NUM}(?![\w])")
_LETTER = re.compile(r"[^\W\d_]")


def parse_rating(text: str, *, scale: float = 10) -> float | None:
    """The rating in a judge's reply as a fraction in [0, 1], or ``None`` when it holds none.

    Thinking (``<think>…</think>``) is ignored, and so are mentions of the scale ("from 0 to 10").
    In order: the last labelled number (``Rating: 8``, ``**Score:** 0.8``, ``Grade: 7/10``), the last
    fraction (``7/10``, ``4 out of 5``), the last percentage (``80%``), then the reply's only
    number. A fraction is read as it is; a number with a decimal point up to 1 (``0.8``) as a
    fraction of 1; any other number up to ``scale`` on the asked scale (``8`` → 0.8), up to 100
    as a percentage. Anything else (negative, too large, several unlabelled numbers) is ``None``.
    """
    body = _DENOMINATOR.sub(_keep_fractions, _SCALE.sub(" ", split_thinking(text)[1]))
    labelled = _last(_LABELLED, body)
    if labelled is not None:
        top, bottom = labelled.group(1), labelled.group(2)
        return _fraction(top, bottom) if bottom is not None else _on_scale(top, scale)
    fraction = _last(_FRACTION, body)
    if fraction is not None:
        return _fraction(fraction.group(1), fraction.group(2))
    percent = _last(_PERCENT, body)
    if percent is not None:
        value = float(percent.group(1))
        return value / 100 if 0 <= value <= 100 else None
    first_line = next((line for line in body.splitlines() if line.strip()), "")
    if not _LETTER.search(first_line):
        only = {m.group(0) for m in _NUMBER.finditer(first_line)}
        if len(only) == 1:
            return _on_scale(only.pop(), scale)
    numbers = {float(m.group(0)): m.group(0) for m in _NUMBER.finditer(body)}
    return _on_scale(numbers.popitem()[1], scale) if len(numbers) == 1 else None


def _keep_fractions(match: re.Match[str]) -> str:
    return match.group(0) if match.group(1) is not None else " "


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    matches = list(pattern.finditer(text))
    return matches[-1] if matches else None


def _fraction(top: str, bottom: str) -> float | None:
    numerator, denominator = float(top), float(bottom)
    return numerator / denominator if denominator > 0 and 0 <= numerator <= denominator else None


def _on_scale(number: str, scale: float) -> float | None:
    value = float(number)
    if value < 0 or not math.isfinite(value):
        return None
    if "." in number and value <= 1:
        return value
    if value <= scale:
        return value / scale
    return value / 100 if value <= 100 else None


class LlmJudgeScorer(Scorer):
    """Asks the model to rate the answer from 0 to ``scale`` (one ``judge`` call) and parses the reply.

    The rating's value is a fraction in [0, 1]. A reply with no readable rating (see
    :func:`parse_rating`) gives an unparsed :class:`Rating`, which ranks below every parsed one.
    The caller's system prompt goes with the call; the caller's temperature does not (a judge
    keeps its own, as the caller-settings rule says), the caller's ``max_tokens`` caps it.
    """

    def __init__(self, *, temperature: float = 0.1, max_tokens: int | None = 512, scale: int = 10) -> None:
        if scale < 1:
            raise InvalidConfiguration(f"LlmJudgeScorer scale must be at least 1 (got {scale})")
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.scale = scale

    @property
    def name(self) -> str:
        return "llm-judge"

    async def rate(self, ctx: RunContext[Any], query: str, answer: str) -> Rating:
        settings = ctx.call_settings("judge", temperature=self.temperature, max_tokens=self.max_tokens)
        completion = await ctx.client.complete(ctx.prompt(rating_prompt(query, answer, self.scale)), settings)
        value = parse_rating(completion.text, scale=self.scale)
        if value is None:
            return Rating.unrated(completion.text, usage=completion.usage, llm_calls=1)
        return Rating(value=value, detail=completion.text, usage=completion.usage, llm_calls=1)


# -- any Python callable ----------------------------------------------------------------------------

ScoreResult = float | int | bool | Rating | None
ScoreFunction = Callable[[str, str], ScoreResult | Awaitable[ScoreResult]]
"""``function(query, answer)``: a number (higher is better), a bool (pass / fail), a :class:`Rating`, or
``None`` when it cannot rate; sync or async."""


class FunctionScorer(Scorer):
    """Rates with ``function(query, answer)`` (see :data:`ScoreFunction`): no model call.

    ``in_thread=True`` runs a blocking sync function (a test runner, a local reward model) in a
    worker thread, so that the other candidates' ratings go on meanwhile. An exception from the
    function propagates: a scorer that fails is a bug to see, not a low rating.
    """

    def __init__(self, function: ScoreFunction, *, name: str | None = None, in_thread: bool = False) -> None:
        if in_thread and inspect.iscoroutinefunction(function):
            raise InvalidConfiguration("FunctionScorer: in_thread=True is for blocking sync functions, not async ones")
        self.function = function
        self.in_thread = in_thread
        self._name: str = name or str(getattr(function, "__name__", type(function).__name__))

    @property
    def name(self) -> str:
        return self._name

    async def rate(self, ctx: RunContext[Any], query: str, answer: str) -> Rating:
        if self.in_thread:
            result: Any = await anyio.to_thread.run_sync(self.function, query, answer)
        else:
            result = self.function(query, answer)
            if inspect.isawaitable(result):
                result = await result
        return self._as_rating(result)

    def _as_rating(self, result: object) -> Rating:
        if isinstance(result, Rating):
            return result
        if result is None:
            return Rating.unrated(f"{self.name} gave no rating")
        if isinstance(result, bool):
            return Rating(value=1.0 if result else 0.0)
        if isinstance(result, int | float):
            value = float(result)
            return Rating(value=value) if math.isfinite(value) else Rating.unrated(f"{self.name} returned {value}")
        raise InvalidConfiguration(
            f"scorer {self.name!r} returned {type(result).__name__}: return a number, a bool, a Rating or None"
        )
