from __future__ import annotations

import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import AnswerExtractionError
from optillm_core._extract import VisibleTextStream
from optillm_core.toolkit import (
    answers_equal,
    extract_answer,
    extract_boxed,
    normalize_answer,
    require_answer,
    split_thinking,
)

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


def test_different_numbers_differ() -> None:
    assert not answers_equal("19", "20")
    assert not answers_equal("1/2", "2")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Trailing sentences that mention "answer" again do not replace the answer.
        ("The answer is 42. I hope this answers your question.", "42"),
        ("Final answer: 7 … need another answer.", "7"),
        ("Final answer: 7\n\nLet me know if you need another answer.", "7"),
        ("Reasoning...\nFinal Answer: 42\nThanks", "42"),
        ("The answer is 19! Let me know if anything is unclear.", "19"),
        ("So the answer is 12 apples, because 3 baskets hold 4 each.", "12 apples"),
        ("The answer is 3.14. Rounded to two places.", "3.14"),
        # Markdown and LaTeX as models write them.
        ("So **Answer:** $x = 3$.", "$x = 3$"),
        ("**Final Answer:** **42**", "42"),
        ("**Final Answer**: 1/2", "1/2"),
        ("The final answer is: **Paris**.", "Paris"),
        ("**Final Answer**\n\n\\boxed{12}", "12"),
        ("**Final Answer**\n\n12", "12"),
        ("## Answer\n\nThe train arrives at 3 pm.", "The train arrives at 3 pm"),
        ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "$\\frac{3}{4}$"),
        ("prefix \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("Therefore, the final answer is $\\boxed{2\\sqrt{3}}$.", "2\\sqrt{3}"),
        ("Answer: `O(n log n)`", "O(n log n)"),
        ("答案 Final answer：5", "5"),
        # Multiple choice.
        ("Answer: (B)", "B"),
        ("The correct answer is (D).", "D"),
        ("ANSWER: C", "C"),
        # Several markers: the last one that gives an answer.
        ("Answer: 3\nWait, I made an error. The answer is 4.", "4"),
        ("The answer is 10.\nTo double-check the answer: ", "10"),
        ("Final answer: 8\nIs that the answer?", "8"),
        # The word on its own, then a colon or "is".
        ("I hope this answers your question.", None),
        ("What is the answer? Nobody knows.", None),
        ("We need another answer here", None),
        ("nothing to see", None),
        # Thinking is not the answer.
        ("<think>12+7 is 19</think>The answer is 19.", "19"),
        ("<think>The answer is 5. No, wait.</think>\nFinal answer: 6", "6"),
        ("<think>hmm \\boxed{5}</think> I think it's six", None),
        ("<think>Final answer: 7, surely", None),
        ("Let me think.</think>\n\n**Answer:** 9", "9"),
    ],
)
def test_extract_answer(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


# Prose that holds no final answer: no "answer", no \boxed, no thinking tags, one line.
_PROSE = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs", "Cc"], blacklist_characters="\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
    ),
    max_size=40,
).filter(lambda line: "answer" not in line.lower() and "\\" not in line and "think>" not in line)
# An answer written cleanly: words of letters, digits and math signs, no sentence punctuation or markup.
_CLEAN_ANSWER = st.lists(
    st.text(alphabet="abcxyz0123456789+-=/^$", min_size=1, max_size=6), min_size=1, max_size=4
).map(" ".join)


@given(st.text(max_size=200))
def test_extraction_never_raises_and_finds_a_substring(text: str) -> None:
    result = extract_answer(text)
    if result is not None:
        assert result
        assert result in text or f"({result})" in text


@given(st.lists(_PROSE, max_size=3), _CLEAN_ANSWER, st.lists(_PROSE, max_size=3), st.sampled_from(["", "."]))
def test_one_clean_final_answer_line_is_found(before: list[str], answer: str, after: list[str], stop: str) -> None:
    text = "\n".join([*before, f"Final answer: {answer}{stop}", *after])
    assert extract_answer(text) == answer


@given(st.lists(_PROSE, max_size=3), _CLEAN_ANSWER)
def test_an_answer_only_in_the_thinking_is_no_answer(before: list[str], answer: str) -> None:
    text = "<think>" + "\n".join([*before, f"Final answer: {answer}"]) + "</think>\n" + "\n".join(before)
    assert extract_answer(text) is None


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


def _last_complete_box(text: str) -> str | None:
    """A plain reference for ``extract_boxed``: pair every brace with a stack, take the last closed box."""
    closes: dict[int, int] = {}
    opened: list[int] = []
    for index, char in enumerate(text):
        if char == "{":
            opened.append(index)
        elif char == "}" and opened:
            closes[opened.pop()] = index
    boxes = [m.end() - 1 for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    for open_index in reversed(boxes):
        if open_index in closes:
            return text[open_index + 1 : closes[open_index]].strip()
    return None


@given(st.lists(st.sampled_from(["\\boxed{", "\\fbox {", "\\boxed", "{", "}", "7", " ", "x"]), max_size=30))
def test_extract_boxed_agrees_with_pairing_every_brace(parts: list[str]) -> None:
    text = "".join(parts)
    assert extract_boxed(text) == _last_complete_box(text)
