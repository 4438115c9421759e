"""Majority voting: one native-n request (split at the model's limit), a plurality vote, ties and abstentions."""

from __future__ import annotations

import random

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import GenerationSettings, ModelProfile, ProviderUnavailable
from optillm_core.testing import O3_MINI, FaultyClient, FunctionClient, Reply, ScriptedClient, sequential_depth
from optillm_core.toolkit import tie_order
from optillm_sampling import MajorityVotingConfig, MajorityVotingOptimizer

from .support import QUERY, SYSTEM, Model

pytestmark = pytest.mark.anyio

EIGHT = ["\\boxed{19}", "19", "The answer is 19.", "\\boxed{20}", "Final answer: 20", "\\boxed{21}", "19.0", "x y"]


async def test_one_native_n_request_and_the_vote_in_the_response() -> None:
    client = ScriptedClient(EIGHT, native_n=True)
    solution = await MajorityVotingOptimizer().optimize(QUERY, client, system_prompt=SYSTEM)

    (request,) = client.requests
    assert (request.settings.n, request.settings.temperature, request.settings.max_tokens) == (8, 0.6, 4096)
    assert (request.user_text, request.system_text) == (QUERY, SYSTEM)
    assert solution.answer == "\\boxed{19}"
    assert solution.metadata.llm_calls == 1
    extras = solution.metadata.extras
    assert extras["votes"] == {"19": 4, "20": 2, "21": 1, "x y": 1}
    assert (extras["winner"], extras["winner_votes"], extras["abstained"], extras["tie"]) == ("19", 4, 0, False)
    assert extras["requests"] == 1
    assert "19 ×4, 20 ×2" in solution.reasoning
    assert "19 wins with 4 of 8 votes" in solution.reasoning


async def test_the_models_n_limit_splits_the_request_with_a_seed_each() -> None:
    profile = ModelProfile(native_n=True, max_n=3)
    client = ScriptedClient(EIGHT, native_n=True, profile=profile)
    solution = await MajorityVotingOptimizer().optimize(QUERY, client, settings=GenerationSettings(seed=40))
    assert sorted((r.settings.n, r.settings.seed) for r in client.requests) == [(2, 46), (3, 40), (3, 43)]
    assert client.refused == []
    assert solution.metadata.extras["requests"] == 3
    assert solution.metadata.extras["usable"] == 8


async def test_without_native_n_eight_concurrent_requests() -> None:
    client = FunctionClient(Model(EIGHT), latency=0.01)
    solution = await MajorityVotingOptimizer().optimize(QUERY, client)
    assert len(client.requests) == 8
    assert {r.settings.n for r in client.requests} == {1}
    assert sequential_depth(client.requests) == 1
    assert solution.metadata.extras["winner"] == "19"


async def test_a_model_that_refuses_temperature_fans_out_varied_prompts_not_native_n() -> None:
    client = FunctionClient(Model(EIGHT), native_n=True, profile=O3_MINI)
    solution = await MajorityVotingOptimizer().optimize(QUERY, client)
    assert client.refused == []
    assert len(client.requests) == 8
    assert all(r.settings.n == 1 and r.settings.temperature is None for r in client.requests)
    assert len({r.user_text for r in client.requests}) == 8
    assert solution.metadata.extras["varied_prompts"] is True


async def test_a_tie_is_settled_by_the_fixed_tie_order_whatever_the_sample_order() -> None:
    tied = ["\\boxed{19}", "\\boxed{20}", "\\boxed{20}", "\\boxed{19}"]
    answers = []
    for order in (tied, list(reversed(tied))):
        client = ScriptedClient(order, native_n=True)
        solution = await MajorityVotingOptimizer(MajorityVotingConfig(k=4)).optimize(QUERY, client)
        answers.append(solution.metadata.extras["winner"])
        assert solution.metadata.extras["tie"]
        assert sorted(solution.metadata.extras["tied"]) == ["19", "20"]
        assert "a tie between" in solution.reasoning
    assert answers == [min("19", "20", key=tie_order)] * 2


async def test_samples_with_no_answer_abstain_and_if_all_do_the_first_is_returned() -> None:
    rambling = [
        "Let me think about the numbers involved here and what they could mean in context.",
        "Some thoughts on addition follow, but I will not commit to a single value today.",
    ]
    client = ScriptedClient(rambling, native_n=True)
    solution = await MajorityVotingOptimizer(MajorityVotingConfig(k=2)).optimize(QUERY, client)
    extras = solution.metadata.extras
    assert (extras["winner"], extras["abstained"], extras["source"]) == (None, 2, "first")
    assert solution.answer == rambling[0]
    assert "No sample gave a readable answer" in solution.reasoning


async def test_a_cut_off_sample_is_not_the_one_returned_when_a_complete_one_agrees() -> None:
    client = ScriptedClient(
        [Reply("... so \\boxed{19}", finish_reason="length"), "\\boxed{19}", "\\boxed{20}"], native_n=True
    )
    solution = await MajorityVotingOptimizer(MajorityVotingConfig(k=3)).optimize(QUERY, client)
    assert solution.answer == "\\boxed{19}"
    assert solution.metadata.extras["chosen"] == 1
    assert solution.finish_reason == "stop"


@pytest.mark.parametrize(("stop", "finish"), [(None, "length"), (["END"], "stop")])
async def test_a_cut_off_sample_returned_says_so_unless_a_stop_sequence_ends_it(
    stop: list[str] | None, finish: str
) -> None:
    cut = Reply("... so \\boxed{19}\nEND and then more", finish_reason="length")
    client = ScriptedClient([cut, Reply("\\boxed{20} and", finish_reason="length")], native_n=True)
    settings = GenerationSettings(stop=stop)
    solution = await MajorityVotingOptimizer(MajorityVotingConfig(k=2)).optimize(QUERY, client, settings=settings)
    assert solution.finish_reason == finish


async def test_a_failed_split_request_loses_only_its_samples() -> None:
    profile = ModelProfile(native_n=True, max_n=4)
    inner = ScriptedClient(EIGHT[:4], native_n=True, profile=profile)
    client = FaultyClient(inner, {1: ProviderUnavailable("overloaded", status_code=529)})
    solution = await MajorityVotingOptimizer().optimize(QUERY, client)
    extras = solution.metadata.extras
    assert (extras["usable"], extras["failed"]) == (4, 4)
    assert extras["winner"] == "19"


@pytest.mark.parametrize("style", ["tags", "reasoning_content"])
async def test_thinking_never_votes(style: str) -> None:
    profile = ModelProfile(thinking=style, native_n=True)
    samples = [Reply("\\boxed{19}", thinking="\\boxed{20}"), Reply("\\boxed{20}"), Reply("\\boxed{19}", thinking="x")]
    client = ScriptedClient(samples, native_n=True, profile=profile)
    solution = await MajorityVotingOptimizer(MajorityVotingConfig(k=3)).optimize(QUERY, client)
    assert solution.metadata.extras["votes"] == {"19": 2, "20": 1}
    assert (solution.answer, solution.thinking) == ("\\boxed{19}", "\\boxed{20}")


replies = st.lists(
    st.sampled_from(
        ["\\boxed{19}", "19", "The answer is 20.", "20.0", "twenty-one", "I am not sure how to go about it."]
    ),
    min_size=1,
    max_size=8,
)


@given(replies, st.randoms(use_true_random=False))
def test_the_vote_does_not_depend_on_the_order_the_samples_came_in(texts: list[str], rng: random.Random) -> None:
    shuffled = list(texts)
    rng.shuffle(shuffled)

    async def vote(order: list[str]) -> tuple[object, ...]:
        client = ScriptedClient(order, native_n=True)
        solution = await MajorityVotingOptimizer(MajorityVotingConfig(k=len(order))).optimize(QUERY, client)
        extras = solution.metadata.extras
        return extras["winner"], extras["votes"], extras["abstained"], extras["tie"]

    assert anyio.run(vote, texts) == anyio.run(vote, shuffled)
