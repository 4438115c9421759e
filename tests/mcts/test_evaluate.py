"""The evaluation score parser: forgiving about format, never out of [0, 1], never raising."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_mcts import parse_score


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.8", 0.8),
        ("  1\n", 1.0),
        ("0", 0.0),
        (".75", 0.75),
        ("**0.9**", 0.9),
        ("Score: 0.65", 0.65),
        ("Score: 8/10", 0.8),
        ("I'd give it 4 out of 5.", 0.8),
        ("85%", 0.85),
        ("7", 0.7),
        ("Rating (0-1): 0.7", 0.7),
        ("On a scale from 0 to 1, I would rate this conversation 0.85.", 0.85),
        ("<think>maybe 0.2, maybe 0.3</think>0.9", 0.9),
        ("0.9 — coherent, relevant and helpful", 0.9),
        ("0.85\n\nThe assistant solved it in 2 steps.", 0.85),
        ("**8/10**\nIt covers 3 of 4 points, 75% of the task.", 0.8),
    ],
)
def test_reads_common_score_formats(text: str, expected: float) -> None:
    assert parse_score(text) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "excellent",
        "I cannot rate this conversation.",
        "-0.5",
        "250",
        "between 0.6 and 0.8",
        "11/10",
        "3/0",
        "0.6-0.8\nhard to say",
    ],
)
def test_no_score_when_there_is_none_or_it_is_ambiguous(text: str) -> None:
    assert parse_score(text) is None


@given(st.text())
def test_any_text_gives_none_or_a_score_in_range(text: str) -> None:
    score = parse_score(text)
    assert score is None or 0.0 <= score <= 1.0


@given(st.text(alphabet=st.characters(exclude_categories=["Nd"])))
def test_text_without_digits_has_no_score(text: str) -> None:
    assert parse_score(text) is None


@given(st.floats(min_value=0.0, max_value=1.0), st.sampled_from(["{}", "Score: {}", "{}\n", "Rating: **{}**"]))
def test_a_plain_score_round_trips(value: float, template: str) -> None:
    text = template.format(f"{value:.4f}")
    assert parse_score(text) == pytest.approx(round(value, 4))


@given(st.integers(min_value=1, max_value=100), st.data())
def test_fractions_are_divided_out(bottom: int, data: st.DataObject) -> None:
    top = data.draw(st.integers(min_value=0, max_value=bottom))
    assert parse_score(f"Score: {top}/{bottom}") == pytest.approx(top / bottom)
