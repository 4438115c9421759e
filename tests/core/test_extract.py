from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    AnswerExtractionError,
    answers_equal,
    extract_answer,
    extract_boxed,
    normalize_answer,
    require_answer,
    split_thinking,
)
from optillm_core._extract import VisibleTextStream

# Brace-balanced LaTeX-ish content, to nest inside \boxed{}.
balanced = st.recursive(
    st.text(alphabet=st.characters(blacklist_characters="{}\\", blacklist_categories=["Cs"]), max_size=8),
    lambda inner: st.builds(lambda a, b: f"{a}{{{b}}}", inner, inner),
    max_leaves=6,
)


@given(balanced)
def test_boxed_content_with_nested_braces_round_trips(content: str) -> None:
    assert extract_boxed(f"Work... so \\boxed{{{content}}} is it.") == content.strip()


@given(balanced, balanced)
def test_the_last_boxed_wins(first: str, last: str) -> None:
    assert extract_boxed(f"\\boxed{{{first}}} then \\boxed{{{last}}}") == last.strip()


def test_unclosed_boxed_is_ignored() -> None:
    assert extract_boxed("\\boxed{12} and \\boxed{unfinished") == "12"
    assert extract_boxed("no box") is None


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_integer_spellings_compare_equal(value: int) -> None:
    spellings = [str(value), f"{value}.0", f"${value}$", f"\\boxed{{{value}}}", f"{value}."]
    if abs(value) >= 1000:
        spellings.append(f"{value:,}")
    assert {normalize_answer(s) for s in spellings} == {str(value)}


@given(st.fractions(min_value=-1000, max_value=1000, max_denominator=50))
def test_fraction_spellings_compare_equal(value: Fraction) -> None:
    p, q = value.numerator, value.denominator
    assert answers_equal(f"{p}/{q}", f"\\frac{{{p}}}{{{q}}}")
    if q in (1, 2, 4, 5, 8, 10, 20, 25, 40, 50):
        assert answers_equal(f"{p}/{q}", str(float(value)))


@given(st.text(max_size=40))
def test_normalize_is_idempotent(text: str) -> None:
    once = normalize_answer(text)
    assert normalize_answer(once) == once


@given(st.text(max_size=60))
def test_extraction_never_crashes(text: str) -> None:
    result = extract_answer(text)
    assert result is None or isinstance(result, str)


def test_different_numbers_differ() -> None:
    assert not answers_equal("19", "20")
    assert not answers_equal("1/2", "2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>12+7 is 19</think>The answer is 19.", "19"),
        ("Reasoning...\nFinal Answer: 42\nThanks", "42"),
        ("So **Answer:** $x = 3$.", "$x = 3$"),
        ("<think>hmm \\boxed{5}</think> I think it's six", "5"),
        ("prefix \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("nothing to see", None),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_split_thinking_variants() -> None:
    assert split_thinking("<think>a</think>b") == ("a", "b")
    assert split_thinking("a</think>b") == ("a", "b")
    assert split_thinking("x<think>unfinished") == ("unfinished", "x")
    assert split_thinking("plain") == ("", "plain")


def test_require_answer_raises_a_parsing_error() -> None:
    with pytest.raises(AnswerExtractionError, match="no final answer"):
        require_answer("just words")
    assert require_answer("\\boxed{7}") == "7"


# -- the visible text of a streamed reply ----------------------------------------------------------


def _streamed(pieces: list[str]) -> str:
    stream = VisibleTextStream()
    return "".join(stream.feed(piece) for piece in pieces)


def _pieces(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(c, len(text)) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["<think>let me see", "</think>", "\n\nThe answer ", "is 4.\n"], "The answer is 4."),
        (["<thi", "nk>x</th", "ink> 42 "], "42"),
        (["reasoning without an opening tag </think> done"], "done"),
        (["Intro. <think>hidden</think> rest"], "Intro.  rest"),
        (["no thinking tags at all"], ""),
        (["<think>never closed"], ""),
        (["<think>a</think>", "   ", "\n"], ""),
    ],
)
def test_visible_text_stream_passes_on_only_what_follows_the_thinking(pieces: list[str], expected: str) -> None:
    assert _streamed(pieces) == expected


_REPLY_PART = st.sampled_from(["<think>", "</think>", " ", "\n", "x", "42", "\\boxed{7}", "ok."])


@given(st.lists(_REPLY_PART, max_size=12), st.lists(st.integers(0, 60), max_size=8))
def test_visible_text_stream_is_the_visible_part_of_the_whole_reply(parts: list[str], cuts: list[int]) -> None:
    text = "".join(parts)
    streamed = _streamed(_pieces(text, cuts))
    visible = split_thinking(text)[1]
    if text.count("</think>") == 1:
        assert streamed == visible
    elif "</think>" not in text:
        assert streamed == ""
    # However the reply is cut, the same pieces of it are passed on.
    assert streamed == _streamed([text])
