"""Scorers: the judge's prompt and parser, the judge's call settings, and scorers around Python callables."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    GenerationSettings,
    InvalidConfiguration,
    ModelProfile,
    Optimizer,
    OptimizerConfig,
    Outcome,
    RunContext,
    TokenUsage,
)
from optillm_core.testing import Reply, ScriptedClient
from optillm_core.toolkit import FunctionScorer, LlmJudgeScorer, Rating, Scorer, parse_rating, rating_prompt

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("reply", "value"),
    [
        ("7/10", 0.7),
        ("Score: 0.8", 0.8),
        ("**Rating:** 8", 0.8),
        ("Rating: 8/10", 0.8),
        ("The response is right.\nRating: 9/10", 0.9),
        ("I would give it 4 out of 5.", 0.8),
        ("85%", 0.85),
        ("9", 0.9),
        ("0.35\nThe method is fine but the arithmetic slips.", 0.35),
        ("Rating: 10", 1.0),
        ("Rating: 0", 0.0),
        ("On a scale from 0 to 10, I rate it 6.", 0.6),
        ("Rating (0-10): 3", 0.3),
        ("<think>Maybe 2/10... no, it is right.</think>Rating: 9/10", 0.9),
        ("Score: 7/10 at first sight.\nFinal score: 8/10", 0.8),
        ("Grade: 75", 0.75),
    ],
)
def test_parse_rating_reads_the_forms_judges_write(reply: str, value: float) -> None:
    assert parse_rating(reply) == pytest.approx(value)


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "The response looks correct to me.",
        "Rating: N/10",  # the template echoed without a number
        "<think>I think 9/10.</think>I cannot decide.",
        "Rating: -3",
        "Rating: 250",
        "Steps 1 and 2 are fine, step 3 is not.",
        "12/10",
    ],
)
def test_parse_rating_gives_none_without_a_rating(reply: str) -> None:
    assert parse_rating(reply) is None


@given(st.integers(0, 10), st.sampled_from(["{}/10", "Rating: {}", "**Rating:** {}", "Score: {}/10", "{} out of 10"]))
def test_integer_ratings_in_every_form(value: int, form: str) -> None:
    assert parse_rating(form.format(value)) == pytest.approx(value / 10)


@given(st.floats(0.0, 1.0).map(lambda v: round(v, 2)))
def test_fractions_of_one_are_read_as_they_are(value: float) -> None:
    assert parse_rating(f"Score: {value:.2f}") == pytest.approx(value)


@given(st.text(max_size=120))
def test_parse_rating_never_fails_and_stays_in_range(text: str) -> None:
    value = parse_rating(text)
    assert value is None or 0.0 <= value <= 1.0


def test_rating_prompt_puts_the_instruction_last() -> None:
    prompt = rating_prompt("What is 2 + 2?", "It is \\boxed{4}.")
    last = prompt.split("\n\n")[-1]
    assert last.startswith("Rate the response on a scale from 0 to 10")
    assert "Rating: N/10" in last
    assert "<response>\nIt is \\boxed{4}.\n</response>" in prompt


class Rate(Optimizer[OptimizerConfig]):
    """Rates one fixed answer with the scorer it is given and returns the rating as extras."""

    name = "rate"
    description = "rates one answer"

    def __init__(self, scorer: Scorer) -> None:
        super().__init__()
        self.scorer = scorer

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        rating = await self.scorer.rate(ctx, ctx.query, "It is \\boxed{4}.")
        return Outcome(answer="done", extras={"rating": rating})


async def rate(scorer: Scorer, client: Any, settings: GenerationSettings | None = None) -> Rating:
    solution = await Rate(scorer).optimize("What is 2 + 2?", client, system_prompt="Be fair.", settings=settings)
    rating = solution.metadata.extras["rating"]
    assert isinstance(rating, Rating)
    return rating


async def test_the_judge_is_one_judge_call_that_keeps_its_own_temperature() -> None:
    client = ScriptedClient(["Checked. Rating: 8/10"])
    caller = GenerationSettings(temperature=1.3, max_tokens=200, seed=4, stop=("\n",))
    rating = await rate(LlmJudgeScorer(temperature=0.2, max_tokens=300), client, caller)

    assert rating.value == pytest.approx(0.8)
    assert (rating.parsed, rating.llm_calls) == (True, 1)
    assert rating.detail == "Checked. Rating: 8/10"
    assert rating.usage.output_tokens == 3
    (request,) = client.requests
    assert request.settings.temperature == 0.2  # a judge keeps its own
    assert request.settings.max_tokens == 200  # the caller's limit caps it
    assert request.settings.seed is None
    assert request.settings.stop is None  # the caller's stop is for the answer only
    assert request.system_text == "Be fair."
    assert request.user_text == rating_prompt("What is 2 + 2?", "It is \\boxed{4}.")


async def test_a_judge_reply_without_a_number_is_unrated_not_zero() -> None:
    rating = await rate(LlmJudgeScorer(), ScriptedClient(["It looks fine to me."]))
    assert not rating.parsed
    assert rating.llm_calls == 1
    assert rating.detail == "It looks fine to me."


@pytest.mark.parametrize("style", ["tags", "reasoning_content"])
async def test_the_judges_thinking_is_not_read(style: str) -> None:
    profile = ModelProfile(thinking=style)
    client = ScriptedClient([Reply("Rating: 3/10", thinking="At first I thought 9/10.")], profile=profile)
    rating = await rate(LlmJudgeScorer(), client)
    assert rating.value == pytest.approx(0.3)
    assert "9/10" not in rating.detail


async def test_the_judge_sends_no_temperature_to_a_model_that_refuses_one() -> None:
    client = ScriptedClient(["Rating: 7/10"], profile=ModelProfile(temperature=False, top_p=False))
    rating = await rate(LlmJudgeScorer(), client)
    assert rating.value == pytest.approx(0.7)
    assert client.refused == []
    assert client.requests[0].settings.temperature is None


async def test_function_scorers_take_numbers_bools_ratings_and_none() -> None:
    client = ScriptedClient([])

    def passes(query: str, answer: str) -> bool:
        return "4" in answer

    async def length(query: str, answer: str) -> float:
        return float(len(answer))

    assert (await rate(FunctionScorer(passes), client)).value == 1.0
    assert (await rate(FunctionScorer(length), client)).value == len("It is \\boxed{4}.")
    given = Rating(value=3.0, detail="reward model", usage=TokenUsage(input_tokens=5))
    assert await rate(FunctionScorer(lambda q, a: given), client) == given
    unrated = await rate(FunctionScorer(lambda q, a: None, name="check"), client)
    assert (unrated.parsed, unrated.detail) == (False, "check gave no rating")
    assert not (await rate(FunctionScorer(lambda q, a: float("nan")), client)).parsed
    assert client.requests == []


async def test_a_blocking_function_runs_in_a_worker_thread() -> None:
    threads: list[str] = []

    def blocking(query: str, answer: str) -> int:
        threads.append(threading.current_thread().name)
        return 5

    rating = await rate(FunctionScorer(blocking, in_thread=True), ScriptedClient([]))
    assert rating.value == 5
    assert threads and threads[0] != threading.main_thread().name


async def test_a_function_returning_something_else_is_a_clear_error() -> None:
    with pytest.raises(InvalidConfiguration, match="returned str: return a number, a bool, a Rating or None"):
        await rate(FunctionScorer(lambda q, a: "good"), ScriptedClient([]))  # type: ignore[arg-type,return-value]


def test_scorer_arguments_are_checked() -> None:
    async def rate_async(query: str, answer: str) -> float:
        return 1.0

    with pytest.raises(InvalidConfiguration, match="in_thread=True is for blocking sync functions"):
        FunctionScorer(rate_async, in_thread=True)
    with pytest.raises(InvalidConfiguration, match="scale must be at least 1"):
        LlmJudgeScorer(scale=0)
    assert FunctionScorer(rate_async).name == "rate_async"
    assert LlmJudgeScorer().name == "llm-judge"
