"""The shared parts: the caller's stop on a returned sample, which sample stands for an answer,
similarity groups, the comparison prompt and its parser, and the package's registration."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import InvalidConfiguration, default_registry
from optillm_core.toolkit import Sample, apply_stop
from optillm_sampling import (
    BestOfNOptimizer,
    GenSelectConfig,
    GenSelectOptimizer,
    MajorityVotingOptimizer,
    SelfConsistencyOptimizer,
    comparison_prompt,
    parse_choice,
)
from optillm_sampling._common import representative
from optillm_sampling._similarity import SIMILAR_PREFIX, similarity, similarity_keys


@pytest.mark.parametrize(
    ("text", "stop", "cut"),
    [
        ("19\n\nbecause", ("\n\n",), "19"),
        ("a STOP b END c", ("END", "STOP"), "a"),
        ("nothing to cut", ("###",), "nothing to cut"),
        ("keep", None, "keep"),
        ("keep", ("",), "keep"),
    ],
)
def test_apply_stop_cuts_at_the_first_stop_sequence(text: str, stop: tuple[str, ...] | None, cut: str) -> None:
    assert apply_stop(text, stop) == cut


def test_the_representative_is_the_earliest_complete_sample_with_the_answer() -> None:
    samples = [Sample(0, "20"), Sample(1, "19 cut", truncated=True), Sample(2, "19"), Sample(3, "19 again")]
    keys = ["20", "19", "19", "19"]
    assert representative(samples, keys, "19").index == 2
    assert representative(samples, keys, "20").index == 0
    assert representative(samples[1:2], keys[1:2], "19").index == 1  # only a cut-off one carries it
    assert representative(samples, keys, None).index == 0


texts = st.lists(st.text(alphabet="ab \n", max_size=30), max_size=6)


@given(texts, st.randoms(use_true_random=False), st.floats(0.1, 1.0))
def test_similarity_groups_do_not_depend_on_order(items: list[str], rng: random.Random, threshold: float) -> None:
    order = list(range(len(items)))
    rng.shuffle(order)
    keys = similarity_keys(items, threshold)
    shuffled = similarity_keys([items[i] for i in order], threshold)
    assert [keys[i] for i in order] == shuffled
    assert all(key.startswith(SIMILAR_PREFIX) for key in keys)


@given(st.text(max_size=40), st.text(max_size=40))
def test_similarity_is_symmetric_and_in_range(a: str, b: str) -> None:
    assert similarity(a, b) == similarity(b, a)
    assert 0.0 <= similarity(a, b) <= 1.0
    assert similarity(a, a) == 1.0


def test_alike_texts_share_a_group_and_different_ones_do_not() -> None:
    a = "the cell makes energy in the mitochondria through respiration"
    keys = similarity_keys([a, a.replace("makes", "produces"), "photosynthesis happens in chloroplasts"], 0.8)
    assert keys[0] == keys[1] != keys[2]


@pytest.mark.parametrize(
    ("reply", "number"),
    [
        ("Best candidate: 2", 2),
        ("BEST CANDIDATE: 3", 3),
        ("**Best candidate:** Candidate 4", 4),
        ("The best candidate is #1.", 1),
        ("Candidate 1 slips.\n\nBest candidate: 2\n", 2),
        ("My choice: 3", 3),
        ("Selected: response 2", 2),
        ("The winner is candidate 4.", 4),
        ("Only candidate 3 is fully right.", 3),
        ("The second response is the strongest.", 2),
        ("3", 3),
        ("<think>Best candidate: 1</think>Best candidate: 4", 4),
        ("Candidate 1 looked good, but on reflection...\nBest candidate: 3", 3),
    ],
)
def test_parse_choice_reads_the_named_candidate(reply: str, number: int) -> None:
    assert parse_choice(reply, 4) == number


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "They are all fine.",
        "Best candidate: 5",
        "Best candidate: 0",
        "Candidate 1 is wrong and candidate 2 is right.",
        "<think>Best candidate: 2</think>",
        "Best candidate: N",
    ],
)
def test_parse_choice_names_none_when_the_reply_does_not(reply: str) -> None:
    assert parse_choice(reply, 4) is None


@given(st.integers(1, 16), st.text(max_size=40))
def test_a_best_candidate_line_after_any_text_is_read(number: int, preamble: str) -> None:
    assert parse_choice(f"{preamble}\n\nBest candidate: {number}", 16) == number


@given(st.text(max_size=80), st.integers(1, 8))
def test_parse_choice_never_fails_and_stays_in_range(reply: str, count: int) -> None:
    number = parse_choice(reply, count)
    assert number is None or 1 <= number <= count


def test_the_comparison_prompt_numbers_the_candidates_and_asks_last() -> None:
    prompt = comparison_prompt("What is 2 + 2?", ["It is 4.", "It is 5."])
    assert '<candidate number="1">\nIt is 4.\n</candidate>' in prompt
    assert '<candidate number="2">\nIt is 5.\n</candidate>' in prompt
    assert prompt.split("\n\n")[-1].endswith("`Best candidate: N`, where N is its number.")


@pytest.mark.parametrize(
    ("name", "optimizer", "phases"),
    [
        ("bon", BestOfNOptimizer, {"samples": "returned", "ratings": "judge"}),
        ("self_consistency", SelfConsistencyOptimizer, {"samples": "returned"}),
        ("majority_voting", MajorityVotingOptimizer, {"samples": "returned"}),
        ("genselect", GenSelectOptimizer, {"candidates": "returned", "comparison": "judge"}),
    ],
)
def test_each_strategy_is_registered_with_its_phases(name: str, optimizer: type, phases: dict[str, str]) -> None:
    info = default_registry().get(name)
    assert info.optimizer is optimizer
    assert info.package == "optillm-sampling"
    assert dict(info.phases) == phases


def test_configs_come_from_plain_values_and_bad_ones_name_the_field() -> None:
    optimizer = default_registry().create("genselect", {"n": "6", "comparison_temperature": "0"})
    assert isinstance(optimizer.config, GenSelectConfig)
    assert (optimizer.config.n, optimizer.config.comparison_temperature) == (6, 0.0)
    with pytest.raises(InvalidConfiguration, match="k"):
        default_registry().create("majority_voting", {"k": 0})
    with pytest.raises(InvalidConfiguration, match="unknown field 'samples'"):
        default_registry().create("bon", {"samples": 3})
    with pytest.raises(InvalidConfiguration, match="similarity_threshold"):
        default_registry().create("self_consistency", {"similarity_threshold": 1.5})
