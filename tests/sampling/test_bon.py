"""Best-of-n: the call graph, ratings on the wire, scorers, garbage ratings, failures and thinking."""

from __future__ import annotations

import pytest

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    Budget,
    GenerationSettings,
    ModelProfile,
    OptimizerEvent,
    PhaseStarted,
    ProviderUnavailable,
    RateLimitError,
)
from optillm_core.testing import O3_MINI, FaultyClient, FunctionClient, Reply, ScriptedClient, sequential_depth
from optillm_core.toolkit import FunctionScorer, rating_prompt
from optillm_sampling import BestOfNConfig, BestOfNOptimizer

from .support import QUERY, SYSTEM, Model, kind_of

pytestmark = pytest.mark.anyio

SAMPLES = ["12 + 7 = 19, so \\boxed{19}.", "It is \\boxed{20}.", "Counting on: \\boxed{19}"]
RATINGS = {SAMPLES[0]: "Rating: 9/10", SAMPLES[1]: "Rating: 2/10", SAMPLES[2]: "Score: 0.6"}


def rate_by_table(answer: str) -> str:
    return RATINGS[answer]


async def test_native_n_one_sample_request_then_one_rating_per_sample() -> None:
    model = Model(SAMPLES, rate=rate_by_table)
    client = FunctionClient(model, native_n=True, latency=0.01)
    solution = await BestOfNOptimizer().optimize(QUERY, client, system_prompt=SYSTEM)

    assert solution.answer == SAMPLES[0]
    assert model.seen == ["sample"] * 3 + ["rating"] * 3  # the function runs once per choice
    first, *ratings = client.requests
    assert (first.settings.n, first.settings.temperature, first.settings.max_tokens) == (3, 1.0, 4096)
    assert first.user_text == QUERY
    assert {(r.settings.n, r.settings.temperature, r.settings.max_tokens) for r in ratings} == {(1, 0.1, 512)}
    assert sorted(r.user_text for r in ratings) == sorted(rating_prompt(QUERY, s) for s in SAMPLES)
    assert all(r.system_text == SYSTEM for r in client.requests)
    assert all(r.started_at >= first.ended_at for r in ratings if first.ended_at is not None)
    assert sequential_depth(client.requests) == 2
    assert solution.metadata.llm_calls == 4
    extras = solution.metadata.extras
    assert extras["ratings"] == [pytest.approx(0.9), pytest.approx(0.2), pytest.approx(0.6)]
    assert (extras["chosen"], extras["source"], extras["scorer"], extras["rating_calls"]) == (
        0,
        "rating",
        "llm-judge",
        3,
    )
    assert "Sample 2: rated 0.2" in solution.reasoning


async def test_without_native_n_the_samples_fan_out_with_seeds_and_the_depth_stays_two() -> None:
    model = Model(SAMPLES, rate=rate_by_table)
    client = FunctionClient(model, latency=0.01)
    caller = GenerationSettings(seed=11, temperature=0.4, max_tokens=1000)
    solution = await BestOfNOptimizer().optimize(QUERY, client, settings=caller)

    samples = [r for r in client.requests if kind_of(r.user_text) == "sample"]
    ratings = [r for r in client.requests if kind_of(r.user_text) == "rating"]
    assert sorted(r.settings.seed or 0 for r in samples) == [11, 12, 13]
    assert {(r.settings.temperature, r.settings.max_tokens, r.settings.n) for r in samples} == {(0.4, 1000, 1)}
    assert {(r.settings.temperature, r.settings.seed, r.settings.max_tokens) for r in ratings} == {(0.1, None, 512)}
    assert sequential_depth(client.requests) == 2
    assert solution.metadata.llm_calls == 6
    assert solution.answer == SAMPLES[0]


async def test_a_temperature_set_in_the_config_wins_over_the_callers() -> None:
    client = FunctionClient(Model(SAMPLES, rate=rate_by_table), native_n=True)
    config = BestOfNConfig(temperature=0.8, n=3, rating_temperature=0.0, rating_max_tokens=64)
    await BestOfNOptimizer(config).optimize(QUERY, client, settings=GenerationSettings(temperature=0.2))
    assert [r.settings.temperature for r in client.requests] == [0.8, 0.0, 0.0, 0.0]
    assert {r.settings.max_tokens for r in client.requests[1:]} == {64}


async def test_the_callers_stop_cuts_the_returned_sample_but_not_the_samples_or_ratings() -> None:
    samples = ["Answer: 19\n\nBecause 12 + 7 = 19.", "20", "21"]
    client = FunctionClient(Model(samples, rate=lambda a: "9" if "19" in a else "1"), native_n=True)
    solution = await BestOfNOptimizer().optimize(QUERY, client, settings=GenerationSettings(stop=("\n\n",)))
    assert solution.answer == "Answer: 19"
    assert all(r.settings.stop is None for r in client.requests)
    assert any("Because 12 + 7 = 19." in r.user_text for r in client.requests[1:])


async def test_garbage_ratings_fall_back_to_the_vote() -> None:
    samples = ["\\boxed{20}", "\\boxed{19}", "The answer is 19."]
    client = FunctionClient(Model(samples, rate=lambda a: "Looks fine, Rating: N/10"), native_n=True)
    solution = await BestOfNOptimizer().optimize(QUERY, client)
    assert solution.answer == "\\boxed{19}"
    assert solution.metadata.extras["source"] == "vote"
    assert solution.metadata.extras["ratings"] == [None, None, None]
    assert "No rating could be read" in solution.reasoning


async def test_equal_ratings_go_to_the_answer_the_vote_ranks_higher() -> None:
    samples = ["\\boxed{20}", "\\boxed{19}", "19"]
    client = FunctionClient(Model(samples, rate=lambda a: "Rating: 7/10"), native_n=True)
    solution = await BestOfNOptimizer().optimize(QUERY, client)
    assert solution.answer == "\\boxed{19}"
    assert solution.metadata.extras["source"] == "rating"


async def test_a_failed_rating_is_unrated_and_the_others_decide() -> None:
    def rate(answer: str) -> str | BaseException:
        if answer == SAMPLES[0]:
            return ProviderUnavailable("upstream overloaded", status_code=529)
        return RATINGS[answer]

    client = FunctionClient(Model(SAMPLES, rate=rate), native_n=True)
    solution = await BestOfNOptimizer().optimize(QUERY, client)
    assert solution.answer == SAMPLES[2]
    assert solution.metadata.extras["ratings"][0] is None
    assert "ProviderUnavailable" in solution.metadata.extras["rating_details"][0]


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("Incorrect API key provided: sk-...abcd", status_code=401),
        AuthenticationError("The key may not use this model", status_code=403),
        BadRequestError("This model's maximum context length is 8192 tokens", status_code=400),
    ],
    ids=["401", "403", "400"],
)
async def test_a_rating_that_fails_for_good_ends_the_run_with_the_providers_message(error: Exception) -> None:
    def rate(answer: str) -> str | BaseException:
        return error if answer == SAMPLES[1] else RATINGS[answer]

    client = FunctionClient(Model(SAMPLES, rate=rate), native_n=True)
    with pytest.raises(type(error), match=str(error).split(":")[0]):
        await BestOfNOptimizer().optimize(QUERY, client)


async def test_some_samples_failing_leaves_the_rest_to_rate() -> None:
    model = Model(SAMPLES[1:], rate=rate_by_table)
    client = FaultyClient(FunctionClient(model), {0: RateLimitError("slow down", status_code=429)})
    solution = await BestOfNOptimizer().optimize(QUERY, client)
    assert model.seen.count("rating") == 2
    assert solution.answer == SAMPLES[2]
    assert solution.metadata.extras["failed"] == 1
    assert solution.metadata.extras["errors"] == ["RateLimitError: slow down"]


async def test_all_samples_failing_raises_the_provider_error() -> None:
    client = FaultyClient(ScriptedClient([]), lambda n, p, s: ProviderUnavailable("down", status_code=503))
    with pytest.raises(ProviderUnavailable, match="down"):
        await BestOfNOptimizer().optimize(QUERY, client)
    assert client.calls == 3


async def test_one_usable_sample_is_returned_without_a_rating() -> None:
    client = FunctionClient(Model(["", "\\boxed{19}", "  "]), native_n=True)
    solution = await BestOfNOptimizer().optimize(QUERY, client)
    assert solution.answer == "\\boxed{19}"
    assert len(client.requests) == 1
    assert solution.metadata.extras["source"] == "single"


async def test_any_scorer_replaces_the_judge() -> None:
    client = FunctionClient(Model(["def f(): return 1", "def f(): return 2", "oops"]), native_n=True)
    scorer = FunctionScorer(lambda query, answer: answer.endswith("2"), name="unit-tests")
    solution = await BestOfNOptimizer(scorer=scorer).optimize("Write f returning 2.", client)
    assert solution.answer == "def f(): return 2"
    assert len(client.requests) == 1
    assert solution.metadata.extras["scorer"] == "unit-tests"
    assert solution.metadata.llm_calls == 1


async def test_a_model_that_refuses_temperature_gets_no_refused_request() -> None:
    model = Model(SAMPLES, rate=rate_by_table)
    client = FunctionClient(model, native_n=True, profile=O3_MINI)
    solution = await BestOfNOptimizer().optimize(QUERY, client, settings=GenerationSettings(temperature=0.7))
    assert client.refused == []
    assert all(r.settings.temperature is None for r in client.requests)
    samples = [r for r in client.requests if kind_of(r.user_text) == "sample"]
    assert len(samples) == 3 and len({r.user_text for r in samples}) == 3  # varied prompts, one request each
    assert solution.metadata.extras["varied_prompts"] is True
    assert solution.metadata.dropped_settings == ("temperature",)


@pytest.mark.parametrize("style", ["tags", "reasoning_content"])
async def test_thinking_never_reaches_a_rating_or_the_answer(style: str) -> None:
    profile = ModelProfile(thinking=style, native_n=True)
    samples = [Reply(s, thinking=f"private thought {i}: maybe \\boxed{{{i}}}") for i, s in enumerate(SAMPLES)]
    model = Model(samples, rate=rate_by_table)
    client = FunctionClient(model, native_n=True, profile=profile)
    solution = await BestOfNOptimizer().optimize(QUERY, client)
    assert solution.answer == SAMPLES[0]
    assert solution.thinking == "private thought 0: maybe \\boxed{0}"
    assert not any("private thought" in r.user_text for r in client.requests)


async def test_a_judges_thinking_does_not_decide_its_rating() -> None:
    profile = ModelProfile(thinking="tags", native_n=True)

    def rate(answer: str) -> Reply:
        return Reply(RATINGS[answer], thinking="first impression: 10/10")

    client = FunctionClient(Model(SAMPLES, rate=rate), native_n=True, profile=profile)
    solution = await BestOfNOptimizer().optimize(QUERY, client)
    assert solution.metadata.extras["ratings"] == [pytest.approx(0.9), pytest.approx(0.2), pytest.approx(0.6)]


async def test_when_the_budget_runs_out_during_the_ratings_the_votes_sample_returns() -> None:
    samples = ["\\boxed{20}", "\\boxed{19}", "19"]
    client = FunctionClient(Model(samples), native_n=True)
    solution = await BestOfNOptimizer().optimize(QUERY, client, budget=Budget(max_calls=2))
    assert solution.metadata.budget_exhausted
    assert solution.answer == "\\boxed{19}"


async def test_phases_are_samples_then_ratings() -> None:
    events: list[OptimizerEvent] = []
    client = FunctionClient(Model(SAMPLES, rate=rate_by_table), native_n=True)
    await BestOfNOptimizer().optimize(QUERY, client, events=events.append)
    assert [e.phase for e in events if isinstance(e, PhaseStarted)] == ["samples", "ratings"]
    assert dict(BestOfNOptimizer.phases) == {"samples": "returned", "ratings": "judge"}


async def test_the_budgets_answer_keeps_its_thinking() -> None:
    profile = ModelProfile(thinking="reasoning_content", native_n=True)
    samples = [Reply("\\boxed{20}", thinking="a"), Reply("\\boxed{19}", thinking="b"), Reply("19", thinking="c")]
    client = FunctionClient(Model(samples), native_n=True, profile=profile)
    solution = await BestOfNOptimizer().optimize(QUERY, client, budget=Budget(max_calls=1))
    assert solution.metadata.budget_exhausted
    assert (solution.answer, solution.thinking) == ("\\boxed{19}", "b")
    assert solution.metadata.extras["source"] == "vote"
