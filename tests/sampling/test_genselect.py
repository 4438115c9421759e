"""GenSelect: candidates, one comparison that names the best, and the vote when it names none."""

from __future__ import annotations

import pytest

from optillm_core import (
    AuthenticationError,
    Budget,
    BudgetExhausted,
    GenerationSettings,
    ModelProfile,
    ProviderUnavailable,
)
from optillm_core.testing import O3_MINI, FaultyClient, FunctionClient, Reply, ScriptedClient, sequential_depth
from optillm_sampling import GenSelectConfig, GenSelectOptimizer, comparison_prompt

from .support import QUERY, SYSTEM, Model, candidates_in, kind_of

pytestmark = pytest.mark.anyio

CANDIDATES = ["\\boxed{20}", "12 + 7 = \\boxed{19}", "It is \\boxed{21}.", "19, so \\boxed{19}"]


async def test_candidates_in_one_request_then_one_comparison_naming_the_best() -> None:
    model = Model(CANDIDATES, compare="Candidate 2 checks out.\n\nBest candidate: 2")
    client = FunctionClient(model, native_n=True, latency=0.01)
    solution = await GenSelectOptimizer().optimize(QUERY, client, system_prompt=SYSTEM)

    candidates, comparison = client.requests
    assert (candidates.settings.n, candidates.settings.temperature, candidates.settings.max_tokens) == (4, 0.7, 4096)
    assert (comparison.settings.n, comparison.settings.temperature, comparison.settings.max_tokens) == (1, 0.3, 1024)
    assert comparison.user_text == comparison_prompt(QUERY, CANDIDATES)
    assert comparison.system_text == SYSTEM
    assert sequential_depth(client.requests) == 2
    assert solution.answer == CANDIDATES[1]
    extras = solution.metadata.extras
    assert (extras["named"], extras["source"], extras["chosen"]) == (2, "comparison", 1)
    assert solution.metadata.llm_calls == 2


async def test_without_native_n_the_candidates_fan_out_and_the_depth_stays_two() -> None:
    client = FunctionClient(Model(CANDIDATES, compare="BEST CANDIDATE: 4"), latency=0.01)
    caller = GenerationSettings(temperature=0.9, seed=1, max_tokens=700)
    solution = await GenSelectOptimizer().optimize(QUERY, client, settings=caller)
    candidates = [r for r in client.requests if kind_of(r.user_text) == "sample"]
    (comparison,) = [r for r in client.requests if kind_of(r.user_text) == "comparison"]
    assert sorted(r.settings.seed or 0 for r in candidates) == [1, 2, 3, 4]
    assert {(r.settings.temperature, r.settings.max_tokens) for r in candidates} == {(0.9, 700)}
    assert (comparison.settings.temperature, comparison.settings.seed, comparison.settings.max_tokens) == (
        0.3,
        None,
        700,
    )
    assert sequential_depth(client.requests) == 2
    assert solution.answer == CANDIDATES[3]


@pytest.mark.parametrize(
    "reply",
    [
        "They all look plausible to me.",
        "Best candidate: 7",
        "Candidate 1 is wrong but candidate 3 might be right.",
        "",
    ],
)
async def test_a_comparison_that_names_none_falls_back_to_the_vote(reply: str) -> None:
    client = FunctionClient(Model(CANDIDATES, compare=reply), native_n=True)
    solution = await GenSelectOptimizer().optimize(QUERY, client)
    assert solution.answer == CANDIDATES[1]  # 19 holds two votes; the earliest carrying it
    assert solution.metadata.extras["source"] == "vote"
    assert solution.metadata.extras["named"] is None
    assert "named no candidate" in solution.reasoning


async def test_a_failed_comparison_call_falls_back_to_the_vote() -> None:
    model = Model(CANDIDATES, compare=ProviderUnavailable("overloaded", status_code=529))
    solution = await GenSelectOptimizer().optimize(QUERY, FunctionClient(model, native_n=True))
    assert solution.answer == CANDIDATES[1]
    assert solution.metadata.extras["source"] == "vote"
    assert solution.metadata.extras["comparison"] is None


@pytest.mark.parametrize("status", [401, 403])
async def test_a_comparison_refused_for_the_key_fails_the_run_with_the_providers_message(status: int) -> None:
    error = AuthenticationError("Incorrect API key provided: sk-...abcd", status_code=status)
    client = FunctionClient(Model(CANDIDATES, compare=error), native_n=True)
    with pytest.raises(AuthenticationError, match="Incorrect API key provided"):
        await GenSelectOptimizer().optimize(QUERY, client)
    assert len(client.requests) == 2  # the candidates, then the comparison that was refused


async def test_the_budget_running_out_before_the_comparison_returns_the_votes_candidate() -> None:
    client = FunctionClient(Model(CANDIDATES), native_n=True)
    solution = await GenSelectOptimizer().optimize(QUERY, client, budget=Budget(max_calls=1))
    assert solution.metadata.budget_exhausted
    assert solution.answer == CANDIDATES[1]


async def test_a_budget_that_stops_some_candidates_ends_the_run() -> None:
    # The budget is not a failure a phase absorbs: with nothing chosen yet, the run ends with it.
    client = FunctionClient(Model(CANDIDATES))
    with pytest.raises(BudgetExhausted, match="2 of 2 LLM calls"):
        await GenSelectOptimizer().optimize(QUERY, client, budget=Budget(max_calls=2))
    assert len(client.requests) == 2


async def test_failed_candidates_are_left_out_of_the_comparison() -> None:
    inner = FunctionClient(Model(CANDIDATES[:3], compare="Best candidate: 3"))
    client = FaultyClient(inner, {0: ProviderUnavailable("down", status_code=503)})
    solution = await GenSelectOptimizer().optimize(QUERY, client)
    (comparison,) = [r for r in inner.requests if kind_of(r.user_text) == "comparison"]
    assert comparison.user_text.count("<candidate number=") == 3
    assert solution.answer == CANDIDATES[2]


async def test_one_usable_candidate_needs_no_comparison() -> None:
    client = ScriptedClient(["", "\\boxed{19}", " ", ""], native_n=True)
    solution = await GenSelectOptimizer().optimize(QUERY, client)
    assert solution.answer == "\\boxed{19}"
    assert len(client.requests) == 1
    assert solution.metadata.extras["source"] == "single"


async def test_a_model_that_refuses_temperature_gets_no_refused_request() -> None:
    profile = O3_MINI.model_copy(update={"seed": False})
    model = Model(CANDIDATES, compare=lambda text: f"Best candidate: {candidates_in(text).index(CANDIDATES[1]) + 1}")
    client = FunctionClient(model, native_n=True, profile=profile)
    caller = GenerationSettings(temperature=0.5, seed=3)
    solution = await GenSelectOptimizer().optimize(QUERY, client, settings=caller)
    assert client.refused == []
    assert all(r.settings.temperature is None and r.settings.seed is None for r in client.requests)
    assert len(client.requests) == 5
    assert solution.answer == CANDIDATES[1]
    assert set(solution.metadata.dropped_settings) == {"temperature", "seed"}


@pytest.mark.parametrize("style", ["tags", "reasoning_content"])
async def test_thinking_stays_out_of_the_comparison_and_its_choice(style: str) -> None:
    profile = ModelProfile(thinking=style, native_n=True)
    candidates = [Reply(text, thinking=f"scratch work {i}") for i, text in enumerate(CANDIDATES)]
    compare = Reply("Best candidate: 4", thinking="Best candidate: 1")
    client = FunctionClient(Model(candidates, compare=compare), native_n=True, profile=profile)
    solution = await GenSelectOptimizer().optimize(QUERY, client)
    assert not any("scratch work" in r.user_text for r in client.requests)
    assert (solution.answer, solution.thinking) == (CANDIDATES[3], "scratch work 3")
    assert "Best candidate: 1" not in solution.metadata.extras["comparison"]


async def test_the_comparison_keeps_its_own_settings_when_configured() -> None:
    config = GenSelectConfig(n=2, temperature=1.1, comparison_temperature=0.0, comparison_max_tokens=50)
    client = FunctionClient(Model(CANDIDATES[:2], compare="2"), native_n=True)
    solution = await GenSelectOptimizer(config).optimize(QUERY, client, settings=GenerationSettings(temperature=0.2))
    assert [(r.settings.n, r.settings.temperature, r.settings.max_tokens) for r in client.requests] == [
        (2, 1.1, 4096),
        (1, 0.0, 50),
    ]
    assert solution.answer == CANDIDATES[1]
