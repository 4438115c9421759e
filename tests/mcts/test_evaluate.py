"""MCTS's evaluations: rated from 0 to 10, read by the toolkit's one reader, and what the absorb policy lets go."""

from __future__ import annotations

import anyio
import pytest

from optillm_core import (
    AuthenticationError,
    GenerationSettings,
    OptimizerEvent,
    Prompt,
    ProviderUnavailable,
    RateLimitError,
    RunFailed,
)
from optillm_core.testing import FaultyClient, FunctionClient, Reply
from optillm_core.toolkit import parse_rating
from optillm_mcts import MctsOptimizer
from optillm_mcts._prompts import EVALUATE

from .test_mcts import QUERY, ROOT_REPLIES, DialogueModel, kind

pytestmark = pytest.mark.anyio


def test_the_evaluation_asks_for_a_rating_line_out_of_ten() -> None:
    instruction = EVALUATE.split("\n\n")[-1]
    assert "from 0 (poor) to 10 (excellent)" in instruction
    assert instruction.endswith("end with one line of the form `Rating: N/10`.")
    # The instruction echoed back with no number in it is no rating.
    assert parse_rating(EVALUATE) is None


@pytest.mark.parametrize(
    "reply",
    [
        "Correct and to the point.\nRating: 8/10",
        "Rating: 7",
        "**Rating:** 9/10",
        "0.85",
        "6",
        "Helpful, though it misses an edge case. I'd give it 7 out of 10.",
        "<think>maybe 2/10</think>The replies are right.\nRating: 9/10",
        "Score: 3/10",
        "Not much to go on; Rating: N/10",
        "It is fine.",
    ],
)
async def test_a_judge_reply_is_scored_as_parse_rating_reads_it(reply: str) -> None:
    model = DialogueModel(dict.fromkeys(ROOT_REPLIES, reply))
    solution = await MctsOptimizer().optimize(QUERY, FunctionClient(model, native_n=True))
    expected = parse_rating(reply, scale=10)
    simulations = solution.metadata.extras["simulations"]
    assert [s["score"] for s in simulations] == [pytest.approx(0.5 if expected is None else expected)] * 2
    assert [s["score_parsed"] for s in simulations] == [expected is not None] * 2


async def test_a_401_during_an_evaluation_fails_the_run_with_the_providers_message() -> None:
    def rule(number: int, prompt: Prompt, settings: GenerationSettings) -> BaseException | None:
        if kind(prompt) == "evaluate":
            return AuthenticationError("Incorrect API key provided: sk-proj-****1234", status_code=401)
        return None

    client = FaultyClient(FunctionClient(DialogueModel(delay=0.001), native_n=True), rule)
    events: list[OptimizerEvent] = []
    with anyio.fail_after(5), pytest.raises(AuthenticationError, match=r"Incorrect API key provided: sk-proj-\*+1234"):
        await MctsOptimizer().optimize(QUERY, client, events=events.append)
    assert any(isinstance(e, RunFailed) for e in events)


@pytest.mark.parametrize(
    "error",
    [ProviderUnavailable("model server went away", status_code=503), RateLimitError("slow down", status_code=429)],
    ids=["503", "429"],
)
async def test_an_evaluation_that_fails_retryably_counts_as_neutral_and_says_why(error: Exception) -> None:
    calls = {"evaluations": 0}

    def rule(number: int, prompt: Prompt, settings: GenerationSettings) -> BaseException | None:
        if kind(prompt) != "evaluate":
            return None
        calls["evaluations"] += 1
        return error if calls["evaluations"] == 1 else None

    model = DialogueModel(dict.fromkeys(ROOT_REPLIES, "Rating: 9/10"))
    client = FaultyClient(FunctionClient(model, native_n=True), rule)
    solution = await MctsOptimizer().optimize(QUERY, client)
    simulations = sorted(solution.metadata.extras["simulations"], key=lambda s: s["score_parsed"])
    assert [(s["score"], s["score_parsed"]) for s in simulations] == [(0.5, False), (0.9, True)]
    assert "no rating in the evaluation; neutral" in solution.reasoning
    # The run answers with the reply whose evaluation came back.
    assert solution.answer == next(
        c["reply"] for c in solution.metadata.extras["root_children"] if c["mean_value"] > 0.5
    )


async def test_an_evaluation_whose_rating_is_only_in_its_thinking_is_neutral() -> None:
    class Thinking(DialogueModel):
        async def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply:
            if kind(prompt) == "evaluate":
                return Reply("The replies are fine.", thinking="Rating: 2/10")
            return await super().__call__(prompt, settings)

    solution = await MctsOptimizer().optimize(QUERY, FunctionClient(Thinking(), native_n=True))
    assert [(s["score"], s["score_parsed"]) for s in solution.metadata.extras["simulations"]] == [(0.5, False)] * 2
