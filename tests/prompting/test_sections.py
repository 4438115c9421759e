"""The CoT-reflection reply parser: well-formed replies, the ways models break the format, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_prompting import parse_sections

WELL_FORMED = """<thinking>
12 + 7: add the units, 2 + 7 = 9, then the ten: 19.
<reflection>
Checked by subtracting: 19 - 7 = 12. Correct.
</reflection>
No change needed.
</thinking>
<output>
12 + 7 = 19.
</output>"""


def test_a_well_formed_reply_answers_with_its_output_and_keeps_the_working_apart() -> None:
    sections = parse_sections(WELL_FORMED)
    assert sections.answer == "12 + 7 = 19."
    assert sections.source == "output"
    assert sections.output_closed
    assert sections.thinking == "12 + 7: add the units, 2 + 7 = 9, then the ten: 19.\n\nNo change needed."
    assert sections.reflection == "Checked by subtracting: 19 - 7 = 12. Correct."
    assert sections.outside == ""


def test_an_output_cut_off_before_its_closing_tag_is_the_answer_so_far() -> None:
    sections = parse_sections("<thinking>add</thinking>\n<output>\n12 + 7 = 1")
    assert (sections.answer, sections.output_closed) == ("12 + 7 = 1", False)


def test_a_reply_cut_off_while_thinking_has_no_answer_and_leaks_nothing() -> None:
    sections = parse_sections("<thinking>\nFirst, 12 + 7 is probably 20, but")
    assert sections.answer == ""
    assert sections.source == "none"
    assert sections.thinking == "First, 12 + 7 is probably 20, but"


def test_a_reply_that_ignores_the_format_is_the_answer_as_a_whole() -> None:
    text = "12 + 7 = 19.\n\nThat is the sum."
    sections = parse_sections(text)
    assert (sections.answer, sections.source, sections.marked) == (text, "unmarked", False)


def test_without_an_output_section_the_text_outside_the_thinking_is_the_answer() -> None:
    sections = parse_sections("<thinking>2 + 7 = 9</thinking>\n<reflection>fine</reflection>\nThe answer is 19.")
    assert sections.answer == "The answer is 19."
    assert sections.source == "unmarked"
    assert (sections.thinking, sections.reflection) == ("2 + 7 = 9", "fine")


def test_an_output_tag_mentioned_while_thinking_does_not_open_the_answer() -> None:
    text = "<thinking>I will put 20 in the <output> section... no, 19.</thinking><output>19</output>"
    sections = parse_sections(text)
    assert sections.answer == "19"
    assert "20" in sections.thinking


def test_a_thinking_never_closed_ends_where_the_output_begins() -> None:
    sections = parse_sections("<thinking>2 + 7 = 9\n<reflection>ok</reflection>\n<output>19</output>")
    assert sections.answer == "19"
    assert (sections.thinking, sections.reflection) == ("2 + 7 = 9", "ok")


def test_tags_in_another_case_or_spacing_are_read() -> None:
    sections = parse_sections("<Thinking>work</Thinking>\n< OUTPUT >19</ output >")
    assert (sections.answer, sections.thinking, sections.output_closed) == ("19", "work", True)


def test_an_empty_output_falls_back_to_the_text_outside_the_sections() -> None:
    sections = parse_sections("<thinking>work</thinking>The answer is 19.<output></output>")
    assert sections.answer == "The answer is 19."


def test_a_reflection_left_open_ends_with_the_thinking() -> None:
    sections = parse_sections("<thinking>work<reflection>check</thinking><output>19</output>")
    assert (sections.thinking, sections.reflection, sections.answer) == ("work", "check", "19")


def test_text_after_the_output_is_not_the_answer() -> None:
    sections = parse_sections("<output>19</output>\nHope this helps!")
    assert sections.answer == "19"
    assert sections.outside == "Hope this helps!"


@pytest.mark.parametrize("stray", ["</output>", "</thinking>", "</reflection>", "<reflection>"])
def test_a_stray_tag_never_shows_in_the_answer(stray: str) -> None:
    sections = parse_sections(f"The answer is 19.{stray}")
    assert "<" not in sections.answer and "19" in sections.answer


# -- properties ------------------------------------------------------------------------------------

# Text that holds no tag of the format ("<" and ">" are left out, and so every tag).
plain = st.text(st.characters(exclude_characters="<>", exclude_categories=["Cs"]), max_size=80)
secret = st.text(st.sampled_from("abcxyz0123 "), min_size=1, max_size=20).map(lambda s: f"SECRET[{s}]")


@given(plain)
def test_a_reply_without_tags_is_the_answer(text: str) -> None:
    sections = parse_sections(text)
    assert sections.answer == text.strip()
    assert not sections.marked


@given(thinking=secret, reflection=secret, answer=plain, closed=st.booleans(), nested=st.booleans())
def test_the_working_never_reaches_the_answer(
    thinking: str, reflection: str, answer: str, closed: bool, nested: bool
) -> None:
    working = (
        f"<thinking>{thinking}<reflection>{reflection}</reflection></thinking>"
        if nested
        else f"<thinking>{thinking}</thinking><reflection>{reflection}</reflection>"
    )
    text = f"{working}\n<output>{answer}{'</output>' if closed else ''}"
    sections = parse_sections(text)
    assert "SECRET" not in sections.answer
    assert sections.thinking == thinking.strip()
    assert sections.reflection == reflection.strip()
    if answer.strip():
        assert sections.answer == answer.strip()
        assert sections.output_closed == closed


@given(thinking=secret, cut=st.integers(min_value=0, max_value=200))
def test_a_reply_cut_anywhere_never_leaks_its_working(thinking: str, cut: int) -> None:
    text = f"<thinking>{thinking}<reflection>{thinking}</reflection>{thinking}</thinking><output>19</output>"
    sections = parse_sections(text[: len("<thinking>") + cut], truncated=True)
    assert "SECRET" not in sections.answer
    assert "19".startswith(sections.answer)


@pytest.mark.parametrize("begun", ["<", "</", "</outp", "< / output"])
def test_a_tag_begun_when_the_reply_was_cut_off_is_dropped(begun: str) -> None:
    sections = parse_sections(f"<thinking>work</thinking><output>19{begun}", truncated=True)
    assert sections.answer == "19"


def test_a_reply_that_was_not_cut_off_keeps_what_looks_like_a_begun_tag() -> None:
    assert parse_sections("Is 3 <").answer == "Is 3 <"


@given(st.text(max_size=120))
def test_any_text_parses_and_the_answer_holds_no_tag(text: str) -> None:
    sections = parse_sections(text)
    if sections.marked:
        assert parse_sections(sections.answer).marked is False
    assert sections.answer == sections.answer.strip()
