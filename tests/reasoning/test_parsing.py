"""Property tests of LEAP's readers: the ``<output>`` section and the examples' JSON."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from optillm_reasoning import Example, output_section, parse_examples

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="<>"), max_size=40)
fields = texts.filter(lambda s: s.strip() != "")


@given(st.lists(st.tuples(fields, fields), max_size=5), texts, st.booleans())
def test_examples_written_as_asked_are_read_back(pairs: list[tuple[str, str]], chatter: str, tagged: bool) -> None:
    array = json.dumps([{"question": q, "answer": a} for q, a in pairs])
    reply = f"{chatter}\n<output>\n{array}\n</output>" if tagged else array
    expected = tuple(Example(question=q.strip(), answer=a.strip()) for q, a in pairs)
    assert parse_examples(reply) == expected


@given(texts, texts, texts)
def test_the_last_output_section_is_read_and_thinking_is_ignored(before: str, inside: str, thought: str) -> None:
    reply = f"<think>{thought}<output>no</output></think>{before}<output>{inside}</output>"
    assert output_section(reply) == inside.strip()


@given(texts)
def test_a_reply_without_tags_has_no_section(text: str) -> None:
    assert output_section(text) is None


def test_an_unclosed_section_runs_to_the_end_and_an_empty_one_means_no_examples() -> None:
    assert output_section("Steps.\n<output> 42") == "42"
    assert parse_examples("<output>[]</output>") == ()
    assert parse_examples("<output></output>") == ()
    assert parse_examples("") is None
    assert parse_examples('<output>[{"question": "Q?", "answer": true}]</output>') is None
