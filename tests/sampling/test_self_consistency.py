"""Self-consistency: one round of samples, a vote on normalised answers, similarity only for the rest."""

from __future__ import annotations

import random

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import GenerationSettings, ModelProfile, ProviderUnavailable
from optillm_core.testing import O3_MINI, FaultyClient, FunctionClient, Reply, ScriptedClient, sequential_depth
from optillm_sampling import SelfConsistencyConfig, SelfConsistencyOptimizer

from .support import QUERY, Model

pytestmark = pytest.mark.anyio

WORDED_DIFFERENTLY = [
    "Adding 12 and 7 gives 19.\nThe answer is 19.",
    "12 + 7 = \\boxed{20}",
    "Start at 12 and count up seven steps: 13, 14, 15, 16, 17, 18, 19. So \\boxed{19}.",
    "Final answer: 19.0",
    "I believe it is 20.\nFinal answer: 20",
]


async def test_one_round_trip_of_k_samples_and_the_vote_on_their_answers() -> None:
    client = FunctionClient(Model(WORDED_DIFFERENTLY), latency=0.01)
    solution = await SelfConsistencyOptimizer().optimize(QUERY, client, settings=GenerationSettings(seed=3))

    assert len(client.requests) == 5
    assert {(r.settings.n, r.settings.temperature, r.settings.max_tokens) for r in client.requests} == {(1, 1.0, 4096)}
    assert sorted(r.settings.seed or 0 for r in client.requests) == [3, 4, 5, 6, 7]
    assert sequential_depth(client.requests) == 1
    extras = solution.metadata.extras
    assert extras["winner"] == "19"
    assert extras["votes"] == {"19": 3, "20": 2}
    assert not extras["tie"]
    assert extras["by_similarity"] == 0
    assert solution.answer in {WORDED_DIFFERENTLY[0], WORDED_DIFFERENTLY[2], WORDED_DIFFERENTLY[3]}
    assert "19 ×3, 20 ×2" in solution.reasoning


async def test_native_n_makes_it_one_request() -> None:
    client = ScriptedClient(WORDED_DIFFERENTLY, native_n=True)
    solution = await SelfConsistencyOptimizer().optimize(QUERY, client)
    assert [r.settings.n for r in client.requests] == [5]
    assert solution.metadata.llm_calls == 1
    assert solution.answer == WORDED_DIFFERENTLY[0]  # the earliest sample carrying the winner


async def test_replies_with_no_readable_answer_are_grouped_by_similarity() -> None:
    essay = "Mitochondria make most of the cell's energy, through respiration, as well as a few other jobs."
    samples = [
        essay,
        essay.replace("most", "nearly all"),
        essay.replace("a few other", "several other"),
        "\\boxed{ATP}",
        "The answer is ATP.",
    ]
    client = ScriptedClient(samples, native_n=True)
    solution = await SelfConsistencyOptimizer().optimize("What do mitochondria do?", client)
    extras = solution.metadata.extras
    assert extras["by_similarity"] == 3
    assert extras["winner"].startswith("≈ ")
    assert extras["votes"][extras["winner"]] == 3
    assert solution.answer == essay


async def test_a_strict_threshold_keeps_alike_replies_apart() -> None:
    essay = "Mitochondria make most of the cell's energy, through respiration, as well as a few other jobs."
    samples = [essay, essay.replace("most", "nearly all"), "\\boxed{ATP}", "The answer is ATP.", "ATP"]
    client = ScriptedClient(samples, native_n=True)
    config = SelfConsistencyConfig(similarity_threshold=1.0)
    solution = await SelfConsistencyOptimizer(config).optimize("What do mitochondria do?", client)
    assert solution.metadata.extras["winner"] == "atp"
    assert solution.answer == "\\boxed{ATP}"


async def test_a_failing_sample_is_left_out() -> None:
    client = FaultyClient(
        FunctionClient(Model(WORDED_DIFFERENTLY[1:])), {2: ProviderUnavailable("503", status_code=503)}
    )
    solution = await SelfConsistencyOptimizer().optimize(QUERY, client)
    assert solution.metadata.extras["usable"] == 4
    assert sum(solution.metadata.extras["votes"].values()) == 4


async def test_all_samples_failing_raises_the_provider_error() -> None:
    client = FaultyClient(ScriptedClient([]), lambda n, p, s: ProviderUnavailable("overloaded", status_code=529))
    with pytest.raises(ProviderUnavailable, match="overloaded"):
        await SelfConsistencyOptimizer().optimize(QUERY, client)


async def test_a_model_that_refuses_temperature_gets_varied_prompts() -> None:
    client = FunctionClient(Model(WORDED_DIFFERENTLY), native_n=True, profile=O3_MINI)
    solution = await SelfConsistencyOptimizer().optimize(QUERY, client, settings=GenerationSettings(top_p=0.5))
    assert client.refused == []
    assert len({r.user_text for r in client.requests}) == 5
    assert all(r.settings.temperature is None and r.settings.top_p is None for r in client.requests)
    assert solution.metadata.extras["winner"] == "19"


@pytest.mark.parametrize("style", ["tags", "reasoning_content"])
async def test_thinking_does_not_vote_and_stays_out_of_the_answer(style: str) -> None:
    profile = ModelProfile(thinking=style, native_n=True)
    samples = [
        Reply("\\boxed{19}", thinking="surely \\boxed{20}"),
        Reply("\\boxed{19}", thinking="surely \\boxed{20}"),
        Reply("\\boxed{20}", thinking="hmm"),
    ]
    client = ScriptedClient(samples, native_n=True, profile=profile)
    solution = await SelfConsistencyOptimizer(SelfConsistencyConfig(k=3)).optimize(QUERY, client)
    assert solution.metadata.extras["votes"] == {"19": 2, "20": 1}
    assert solution.answer == "\\boxed{19}"
    assert solution.thinking == "surely \\boxed{20}"


async def test_the_callers_stop_cuts_the_returned_sample() -> None:
    client = ScriptedClient(["19\nmore", "19", "20"], native_n=True)
    caller = GenerationSettings(stop=("\nmore",))
    solution = await SelfConsistencyOptimizer(SelfConsistencyConfig(k=3)).optimize(QUERY, client, settings=caller)
    assert client.requests[0].settings.stop is None
    assert solution.answer == "19"


replies = st.lists(
    st.sampled_from(
        [
            "\\boxed{19}",
            "The answer is 19.",
            "\\boxed{20}",
            "Mitochondria make the energy of the cell, through respiration, among a few other jobs.",
            "Mitochondria make the energy of the cell, by respiration, among a few other jobs.",
            "Photosynthesis happens in chloroplasts, which mitochondria have nothing to do with here.",
        ]
    ),
    min_size=1,
    max_size=6,
)


@given(replies, st.randoms(use_true_random=False))
def test_the_vote_does_not_depend_on_the_order_the_samples_came_in(texts: list[str], rng: random.Random) -> None:
    shuffled = list(texts)
    rng.shuffle(shuffled)

    async def vote(order: list[str]) -> tuple[object, ...]:
        client = ScriptedClient(order, native_n=True)
        solution = await SelfConsistencyOptimizer(SelfConsistencyConfig(k=len(order))).optimize(QUERY, client)
        extras = solution.metadata.extras
        # The returned sample is the earliest carrying the winner; the answer it gives is the same.
        return (
            extras["winner"],
            extras["votes"],
            extras["tie"],
            extras["answers"][extras["sample_indices"].index(extras["chosen"])],
        )

    assert anyio.run(vote, texts) == anyio.run(vote, shuffled)
