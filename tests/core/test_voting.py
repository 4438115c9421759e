"""Answer keys and the plurality vote: what a sample votes for, and a tie rule that ignores order."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core.toolkit import MAX_PHRASE_WORDS, answer_key, normalize_answer, plurality_vote, tie_order


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("12 + 7 = 19, so the answer is \\boxed{19}.", "19"),
        ("We get $\\boxed{\\frac{3}{6}}$ after simplifying.", "1/2"),
        ("Working...\nFinal answer: 1,234", "1234"),
        ("The answer is 19.0", "19"),
        ("**Final answer:** Paris", "paris"),
        ("Paris", "paris"),
        ("**19**", "19"),
        ("No, it is not prime.", "no, it is not prime"),
        ("First add 12 and 7.\nThat makes 19 apples.", "19"),
        ("<think>maybe \\boxed{20}</think>It is 19", "it is 19"),
        ("The answer is 12 + 7 = 19", "19"),
        ("The answer is indeed 9, which is what you get by adding them up in the usual way.", "9"),
        ("Final answer: Paris, the capital of France, where the final is held every year.", "paris"),
        ("To add 12 and 7, combine the two numbers, which is 12 + 7 = 19.", "19"),
        ("12 + 7 = 8\n\nThis is the result of the operation of 12 and 7.", "8"),
        ("\\boxed{x = 5}", "x = 5"),
        ("12 + 7 equals 19", "19"),
        ("So the answer is simply 19.", "19"),
        ("Adding them up.\nTwelve plus seven is equal to 19.", "19"),
    ],
)
def test_answer_key_reads_the_final_answer(text: str, key: str) -> None:
    assert answer_key(text) == key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n ",
        "First add 12 and 7.\nThen compare 3 with 4 and stop.",
        "A long explanation that wanders about and never commits to anything at all, over many words.",
        "One line here.\nAnd a second line with no number.",
    ],
)
def test_answer_key_is_none_when_nothing_can_be_read(text: str) -> None:
    assert answer_key(text) is None


def test_a_short_phrase_is_at_most_the_phrase_limit() -> None:
    words = " ".join(["word"] * MAX_PHRASE_WORDS)
    assert answer_key(words) == words
    assert answer_key(words + " more") is None


@given(st.text(max_size=80))
def test_answer_keys_are_normal_forms(text: str) -> None:
    key = answer_key(text)
    if key is not None:
        assert key
        assert normalize_answer(key) == key


@given(st.integers(-(10**6), 10**6))
def test_spellings_of_one_number_share_a_key(value: int) -> None:
    spellings = [f"\\boxed{{{value}}}", f"The answer is {value}.", f"Final answer: {value}.0", f"{value}"]
    assert {answer_key(s) for s in spellings} == {str(value)}


ballots = st.lists(st.one_of(st.none(), st.sampled_from(["19", "20", "21", "paris", "x"])), max_size=12)


@given(ballots, st.randoms(use_true_random=False))
def test_a_vote_does_not_depend_on_the_order_of_the_ballots(keys: list[str | None], rng: random.Random) -> None:
    shuffled = list(keys)
    rng.shuffle(shuffled)
    assert plurality_vote(keys) == plurality_vote(shuffled)


@given(ballots)
def test_the_winner_has_the_most_votes_and_the_counts_add_up(keys: list[str | None]) -> None:
    vote = plurality_vote(keys)
    named = [k for k in keys if k is not None]
    assert vote.votes == len(named)
    assert vote.abstained == len(keys) - len(named)
    if not named:
        assert vote.winner is None
        assert vote.counts == ()
        return
    assert vote.winner_votes == max(named.count(k) for k in named)
    assert vote.support(vote.winner) == vote.winner_votes
    assert vote.tie == (sum(1 for _, count in vote.counts if count == vote.winner_votes) > 1)


def test_a_tie_goes_to_the_smallest_digest() -> None:
    vote = plurality_vote(["20", "19", "20", "19", None])
    expected = min(["19", "20"], key=tie_order)
    assert vote.winner == expected
    assert vote.tie
    assert set(vote.tied) == {"19", "20"}
    assert vote.tied[0] == expected
    assert "a tie between" in vote.summary()
    assert "no answer ×1" in vote.summary()


def test_a_clear_plurality_wins_whatever_the_tie_order() -> None:
    vote = plurality_vote(["a", "b", "b", "c", "a", "b"])
    assert (vote.winner, vote.winner_votes, vote.tie) == ("b", 3, False)
    assert vote.counts[0] == ("b", 3)
    assert vote.summary().startswith("b ×3")


def test_the_tie_order_favours_no_answer_over_many_questions() -> None:
    # Truth against a distractor, tied: the digest order picks the truth about half the time.
    wins = sum(min(str(n), str(n + 1), key=tie_order) == str(n) for n in range(2000))
    assert 900 < wins < 1100
