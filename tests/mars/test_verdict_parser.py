"""The verifier's reply parser: real-looking verdicts, and no negative ever read as a pass."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_mars import Verdict, parse_verdict

TABLE: list[tuple[str, Verdict, float, tuple[str, ...]]] = [
    (
        "VERDICT: CORRECT\nSCORE: 0.95\nISSUES:\n- none\nSUGGESTIONS:\n- none",
        Verdict.CORRECT,
        0.95,
        (),
    ),
    (
        "VERDICT: INCORRECT\nSCORE: 0.1\nISSUES:\n- Step 3 drops a minus sign\n- The final sum is 21, not 19\n"
        "SUGGESTIONS:\n- Redo step 3",
        Verdict.INCORRECT,
        0.1,
        ("Step 3 drops a minus sign", "The final sum is 21, not 19"),
    ),
    (
        "**Verdict:** INCOMPLETE\n**Score:** 6/10\n**Issues:**\n1. The case n = 0 is never treated",
        Verdict.INCOMPLETE,
        0.6,
        ("The case n = 0 is never treated",),
    ),
    ("## Verdict\nVERDICT: Not correct\nSCORE: 30%", Verdict.INCORRECT, 0.3, ()),
    ("Verdict: The solution is not entirely correct.\nScore: 0.4", Verdict.INCORRECT, 0.4, ()),
    ("VERDICT: incorrect", Verdict.INCORRECT, 0.0, ()),
    ("VERDICT: CORRECT, INCORRECT or INCOMPLETE\nSCORE: 0.5", Verdict.INCORRECT, 0.5, ()),
    ("Result: PASS\nConfidence: 8 out of 10", Verdict.CORRECT, 0.8, ()),
    ("Assessment - partially correct; the bound is never proved.\nScore: 5", Verdict.INCOMPLETE, 0.5, ()),
    (
        "<think>Looks CORRECT at first glance... no, step 2 is off.</think>\nVERDICT: INCORRECT\nSCORE: 0.2",
        Verdict.INCORRECT,
        0.2,
        (),
    ),
    ("VERDICT:\n**CORRECT**\nSCORE: 1", Verdict.CORRECT, 1.0, ()),
    ("The solution is correct and complete.", Verdict.CORRECT, 1.0, ()),
    ("The method is correct but the final answer is wrong.", Verdict.INCORRECT, 0.0, ()),
    ("I could not follow this argument.", Verdict.UNCLEAR, 0.0, ()),
    ("", Verdict.UNCLEAR, 0.0, ()),
    ("Final verdict: isn't correct — the answer should be 20.", Verdict.INCORRECT, 0.0, ()),
    (
        "VERDICT: INCOMPLETE\nSCORE: 0.7\nISSUES: the proof of the lemma is missing",
        Verdict.INCOMPLETE,
        0.7,
        ("the proof of the lemma is missing",),
    ),
]


@pytest.mark.parametrize(("text", "verdict", "score", "issues"), TABLE)
def test_real_looking_verdicts(text: str, verdict: Verdict, score: float, issues: tuple[str, ...]) -> None:
    parsed = parse_verdict(text)
    assert parsed.verdict is verdict
    assert parsed.score == pytest.approx(score)
    assert parsed.issues == issues


def test_suggestions_are_collected() -> None:
    parsed = parse_verdict("VERDICT: INCORRECT\nISSUES:\n- wrong sign\nSUGGESTIONS:\n- flip the sign\n- recheck step 4")
    assert parsed.suggestions == ("flip the sign", "recheck step 4")
    assert parsed.issues == ("wrong sign",)


NEGATIVE = st.sampled_from(
    ["INCORRECT", "incorrect", "Not correct", "NOT CORRECT", "INCOMPLETE", "incomplete", "isn't correct", "Wrong"]
)
NOISE = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200)


@given(NEGATIVE, NOISE, NOISE)
def test_a_negative_verdict_line_is_never_a_pass(verdict: str, before: str, after: str) -> None:
    parsed = parse_verdict(f"{before}\nVERDICT: {verdict}\n{after}")
    assert parsed.verdict is not Verdict.CORRECT


@given(NOISE)
def test_the_parser_never_raises_and_scores_stay_in_range(text: str) -> None:
    parsed = parse_verdict(text)
    assert 0.0 <= parsed.score <= 1.0
    assert isinstance(parsed.verdict, Verdict)


@given(st.sampled_from(list(Verdict)[:3]), st.floats(min_value=0, max_value=1))
def test_the_requested_format_round_trips(verdict: Verdict, score: float) -> None:
    parsed = parse_verdict(
        f"VERDICT: {verdict.value.upper()}\nSCORE: {score:.3f}\nISSUES:\n- none\nSUGGESTIONS:\n- none"
    )
    assert parsed.verdict is verdict
    assert parsed.score == pytest.approx(round(score, 3))
    assert parsed.issues == ()


def test_the_most_severe_of_several_verdict_lines_stands() -> None:
    assert parse_verdict("VERDICT: CORRECT\nSCORE: 0.9\n\nVERDICT: INCORRECT").verdict is Verdict.INCORRECT


def test_explanation_under_a_verdict_does_not_change_it() -> None:
    text = "VERDICT: CORRECT\nThe worry that step 2 is wrong does not hold.\nSCORE: 0.9"
    assert parse_verdict(text).verdict is Verdict.CORRECT


def test_math_in_issues_reaches_the_author_intact() -> None:
    parsed = parse_verdict("**VERDICT:** INCORRECT\n**ISSUES:**\n- **Step 2:** it needs x_1 > 0 but `x_1 = -2`")
    assert parsed.issues == ("Step 2: it needs x_1 > 0 but x_1 = -2",)
