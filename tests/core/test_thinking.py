"""Thinking kept out of answers: whole completions, streams cut anywhere, and the doubles' forms of thinking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    Completion,
    GenerationSettings,
    ModelProfile,
    OutputTextDelta,
    Prompt,
    ReasoningDelta,
    ThinkingStyle,
    collect_stream,
)
from optillm_core.testing import Reply, ScriptedClient
from optillm_core.toolkit import ThinkingSplitter, separate_thinking

pytestmark = pytest.mark.anyio

PROMPT = Prompt.from_query("question")


def test_separate_thinking_moves_tags_out_of_each_choice() -> None:
    completion = Completion(texts=("<think>12 + 7 is 19</think>\n\nThe answer is 19.", "plain"))
    separated = separate_thinking(completion)
    assert separated.texts == ("The answer is 19.", "plain")
    assert separated.thinking == ("12 + 7 is 19", "")


def test_a_completion_without_tags_is_returned_as_it_is() -> None:
    completion = Completion(texts=("no thinking here",))
    assert separate_thinking(completion) is completion


def split_all(pieces: list[str], *, expect_close: bool = False) -> tuple[str, str]:
    splitter = ThinkingSplitter(expect_close=expect_close)
    thinking, text = [], []
    for piece in pieces:
        t, v = splitter.feed(piece)
        thinking.append(t)
        text.append(v)
    t, v = splitter.finish()
    return "".join(thinking) + t, "".join(text) + v


def cut(text: str, points: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(p % (len(text) + 1) for p in points)})
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@given(
    thinking=st.text(alphabet="ab </>\n", max_size=30).filter(lambda s: "</think>" not in s and "<think>" not in s),
    answer=st.text(alphabet="xy <>\n", max_size=30).filter(lambda s: "</think>" not in s),
    points=st.lists(st.integers(0, 200), max_size=8),
)
def test_a_streamed_reply_splits_as_the_whole_text_does_wherever_it_is_cut(
    thinking: str, answer: str, points: list[int]
) -> None:
    text = f"<think>{thinking}</think>{answer}"
    streamed_thinking, streamed_text = split_all(cut(text, points))
    assert streamed_thinking == thinking
    assert streamed_text == answer.lstrip()


@given(answer=st.text(max_size=40).filter(lambda s: not s.lstrip().startswith("<")), points=st.lists(st.integers()))
def test_text_that_does_not_open_with_a_think_tag_passes_unchanged(answer: str, points: list[int]) -> None:
    assert split_all(cut(answer, points)) == ("", answer)


def test_a_model_known_to_think_in_tags_may_omit_the_opening_tag() -> None:
    assert split_all(["12 + 7", " = 19</th", "ink>\n19"], expect_close=True) == ("12 + 7 = 19", "19")
    assert split_all(["just an answer"], expect_close=True) == ("", "just an answer")


def test_an_unclosed_think_is_all_thinking() -> None:
    assert split_all(["<think>still going"]) == ("still going", "")


async def test_complete_and_stream_return_the_answer_without_tag_thinking() -> None:
    client = ScriptedClient([Reply("The answer is 19.", thinking="12 + 7 = 19")] * 2)
    completion = await client.complete(PROMPT)
    assert completion.text == "The answer is 19."
    assert completion.reasoning == "12 + 7 = 19"
    async with client.stream(PROMPT) as events:
        streamed = await collect_stream(events)
    assert streamed.text == "The answer is 19."
    assert streamed.reasoning.strip() == "12 + 7 = 19"


@pytest.mark.parametrize("style", ["reasoning_content", "anthropic_blocks", "gemini_thoughts"])
async def test_thinking_in_a_channel_of_its_own_arrives_as_reasoning_events(style: ThinkingStyle) -> None:
    profile = ModelProfile(thinking=style)
    client = ScriptedClient([Reply("19", thinking="add them")], profile=profile)
    async with client.stream(PROMPT) as events:
        seen = [event async for event in events]
    assert "".join(e.delta for e in seen if isinstance(e, ReasoningDelta)) == "add them"
    assert "".join(e.delta for e in seen if isinstance(e, OutputTextDelta)) == "19"


async def test_hidden_thinking_never_arrives() -> None:
    client = ScriptedClient([Reply("19", thinking="secret")], profile=ModelProfile(thinking="hidden"))
    completion = await client.complete(PROMPT)
    assert completion.text == "19"
    assert completion.reasoning == ""


async def test_fanned_out_choices_each_lose_their_thinking() -> None:
    client = ScriptedClient([Reply("a", thinking="t1"), Reply("b", thinking="t2")])
    completion = await client.complete(PROMPT, GenerationSettings(n=2))
    assert sorted(completion.texts) == ["a", "b"]
    assert sorted(completion.thinking) == ["t1", "t2"]
