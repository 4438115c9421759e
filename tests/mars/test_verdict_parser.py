"""The verifier's reply parser: verdicts written the way models write them.

The leading CORRECT / INCORRECT / INCOMPLETE of the verdict statement decides; explanations after
it never overturn it; thinking is never read; prose without a verdict never passes on a flaw.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core.toolkit import parse_rating
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
    # The requested format copied back states nothing.
    ("VERDICT: CORRECT, INCORRECT or INCOMPLETE\nSCORE: 0.5", Verdict.UNCLEAR, 0.5, ()),
    ("Result: PASS\nConfidence: 8 out of 10", Verdict.CORRECT, 0.8, ()),
    ("Assessment - partially correct; the bound is never proved.\nScore: 5", Verdict.INCOMPLETE, 0.5, ()),
    (
        "<think>Looks CORRECT at first glance... no, step 2 is off.</think>\nVERDICT: INCORRECT\nSCORE: 0.2",
        Verdict.INCORRECT,
        0.2,
        (),
    ),
    ("VERDICT:\n**CORRECT**\nRATING: 10/10", Verdict.CORRECT, 1.0, ()),
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
    # The leading verdict decides; what follows explains it (issue 14).
    ("Verdict: Correct – no step fails", Verdict.CORRECT, 1.0, ()),
    ("VERDICT: CORRECT (missing case trivial)\nSCORE: 0.9", Verdict.CORRECT, 0.9, ()),
    ("VERDICT: CORRECT, though step 2 could be wrong-footed by n = 0\nSCORE: 0.85", Verdict.CORRECT, 0.85, ()),
    ("VERDICT: Incorrect, even though the method is correct", Verdict.INCORRECT, 0.0, ()),
    ("VERDICT: INCOMPLETE – correct as far as it goes", Verdict.INCOMPLETE, 0.5, ()),
    ("VERDICT: CORRECT (not INCORRECT or INCOMPLETE as agent 2 thought)", Verdict.CORRECT, 1.0, ()),
    # Markdown, LaTeX and case.
    ("**VERDICT:** CORRECT\n**SCORE:** 0.9", Verdict.CORRECT, 0.9, ()),
    ("**Verdict**: **Incorrect.** The final answer should be 20.", Verdict.INCORRECT, 0.0, ()),
    ("verdict: correct\nscore: 0.8", Verdict.CORRECT, 0.8, ()),
    ("### Verdict\n**INCOMPLETE**\n### Score\n0.4", Verdict.INCOMPLETE, 0.4, ()),
    ("Verdict: $\\boxed{\\text{CORRECT}}$", Verdict.CORRECT, 1.0, ()),
    ("| Verdict | CORRECT |", Verdict.CORRECT, 1.0, ()),
    # The verdict in the last line, after reasoning that mentions flaws it then dismisses.
    (
        "Step 1 is fine. Step 2 looked wrong at first, but 12 + 7 = 19 holds. Nothing is missing.\n\n**CORRECT**",
        Verdict.CORRECT,
        1.0,
        (),
    ),
    ("I recomputed the sum and it fails: 12 + 7 = 19, not 18.\n\nINCORRECT", Verdict.INCORRECT, 0.0, ()),
    ("Checked every case; the argument holds.\nSo my final verdict is: **CORRECT**.", Verdict.CORRECT, 1.0, ()),
    ("The last step fails.\nMy verdict: incorrect", Verdict.INCORRECT, 0.0, ()),
    ("\\boxed{\\text{INCORRECT}}", Verdict.INCORRECT, 0.0, ()),
    # A weak header in the reasoning does not overrule the verdict line.
    ("Result: the draft sum was wrong, then fixed\nVERDICT: CORRECT\nSCORE: 0.9", Verdict.CORRECT, 0.9, ()),
    # Thinking before the verdict is never read, whatever it says.
    ("<think>Step 2 is wrong. VERDICT: INCORRECT</think>\nVERDICT: CORRECT\nSCORE: 0.9", Verdict.CORRECT, 0.9, ()),
    ("<think>\nVERDICT: CORRECT\n</think>", Verdict.UNCLEAR, 0.0, ()),
    ("<think>It is correct", Verdict.UNCLEAR, 0.0, ()),
    # No verdict at all: prose is read whole, and a flaw it names is never a pass.
    ("The solution is correct; no step fails.", Verdict.CORRECT, 1.0, ()),
    ("Looks correct overall, but the case n = 0 is missing.", Verdict.INCOMPLETE, 0.5, ()),
    ("Lorem ipsum dolor sit amet.", Verdict.UNCLEAR, 0.0, ()),
    ("SCORE: 0.7\nISSUES:\n- none", Verdict.UNCLEAR, 0.7, ()),
    # A bullet is an issue, not the verdict.
    (
        "VERDICT: CORRECT\nISSUES:\n- wrong units in step 2 (harmless)",
        Verdict.CORRECT,
        1.0,
        ("wrong units in step 2 (harmless)",),
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


# Text that may follow a verdict on its line: it starts with a separator, never a letter that would extend the word.
TAIL = st.tuples(
    st.sampled_from([" ", " – ", ", ", " (", ". ", ": ", " - "]),
    st.text(max_size=80).filter(lambda text: "think>" not in text),  # thinking tags are read as thinking
).map(lambda parts: (parts[0] + parts[1]).splitlines()[0] if (parts[0] + parts[1]).strip() else parts[0])
EXPLANATIONS = st.sampled_from(
    [
        "no step fails",
        "missing case trivial",
        "but the write-up is incomplete in places",
        "the sign error in step 2 is fixed later",
        "not wrong anywhere",
        "though one could call step 3 flawed",
        "incorrect claims in the draft were removed",
    ]
)
WRAPPERS = st.sampled_from(["{}", "**{}**", "*{}*", "`{}`", "{}.", "[{}]", "\\boxed{{\\text{{{}}}}}"])
HEADERS = st.sampled_from(
    ["VERDICT: {}", "**VERDICT:** {}", "Verdict: {}", "verdict - {}", "## Verdict: {}", "Final verdict: {}"]
)
CASES = st.sampled_from([str.upper, str.lower, str.title])


@given(st.sampled_from(list(Verdict)[:3]), HEADERS, WRAPPERS, CASES, EXPLANATIONS, NOISE)
def test_the_leading_verdict_decides_whatever_follows_it(
    verdict: Verdict, header: str, wrapper: str, case: object, explanation: str, before: str
) -> None:
    word = case(verdict.value)  # type: ignore[operator]
    statement = header.format(wrapper.format(word))
    before = "\n".join(line for line in before.splitlines() if "verdict" not in line.lower())
    parsed = parse_verdict(f"<think>{before}</think>\n{statement} – {explanation}\nSCORE: 0.5")
    assert parsed.verdict is verdict


# "CORRECT, INCORRECT …" is the requested format copied back, which states nothing.
ECHO = re.compile(r"^\s*(?:,|/|\||or\b)\s*\W*(?:(?:in)?correct|incomplete)\b", re.IGNORECASE)


@given(st.sampled_from(list(Verdict)[:3]), TAIL)
def test_any_tail_on_the_verdict_line_keeps_the_verdict(verdict: Verdict, tail: str) -> None:
    parsed = parse_verdict(f"VERDICT: {verdict.value.upper()}{tail}")
    if ECHO.match(tail):
        assert parsed.verdict is Verdict.UNCLEAR
    else:
        assert parsed.verdict is verdict


@given(NOISE, st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200))
def test_thinking_never_changes_the_reading(thinking: str, reply: str) -> None:
    thinking = thinking.replace("<think>", "").replace("</think>", "")
    reply = reply.replace("<think>", "").replace("</think>", "")
    assert parse_verdict(f"<think>{thinking}</think>\n{reply}") == parse_verdict(reply)


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


@given(st.sampled_from(list(Verdict)[:3]), st.integers(min_value=0, max_value=10))
def test_the_requested_rating_round_trips(verdict: Verdict, rating: int) -> None:
    parsed = parse_verdict(f"VERDICT: {verdict.value.upper()}\nRATING: {rating}/10\nISSUES:\n- none")
    assert parsed.verdict is verdict
    assert parsed.score == pytest.approx(rating / 10)


@pytest.mark.parametrize(
    "line",
    ["RATING: 8/10", "Rating: 8", "SCORE: 0.8", "**Score:** 80%", "Confidence: 8 out of 10", "SCORE: 1", "Rating: 7.5"],
)
def test_a_verifiers_rating_reads_as_the_toolkits_parse_rating_reads_it(line: str) -> None:
    """The same judge number means the same to MARS as to every strategy: "SCORE: 1" is 1 on the asked scale of 10."""
    expected = parse_rating(line, scale=10)
    assert expected is not None
    assert parse_verdict(f"VERDICT: CORRECT\n{line}\nISSUES:\n- none").score == pytest.approx(expected)


def test_numbers_the_review_discusses_are_not_its_rating() -> None:
    """Without a rating line the verdict's default stands, whatever numbers the review cites."""
    assert parse_verdict("VERDICT: INCORRECT - the answer should be 20, not 19.").score == 0.0
    assert parse_verdict("VERDICT: CORRECT\nISSUES:\n- step 2 rounds 0.5 up").score == 1.0


def test_the_most_severe_of_several_verdict_lines_stands() -> None:
    assert parse_verdict("VERDICT: CORRECT\nSCORE: 0.9\n\nVERDICT: INCORRECT").verdict is Verdict.INCORRECT


def test_explanation_under_a_verdict_does_not_change_it() -> None:
    text = "VERDICT: CORRECT\nThe worry that step 2 is wrong does not hold.\nSCORE: 0.9"
    assert parse_verdict(text).verdict is Verdict.CORRECT


def test_math_in_issues_reaches_the_author_intact() -> None:
    parsed = parse_verdict("**VERDICT:** INCORRECT\n**ISSUES:**\n- **Step 2:** it needs x_1 > 0 but `x_1 = -2`")
    assert parsed.issues == ("Step 2: it needs x_1 > 0 but x_1 = -2",)
