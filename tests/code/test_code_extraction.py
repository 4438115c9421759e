"""The code strategies' one code reader and comparison: fenced blocks, the largest wins, whitespace ignored."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from optillm_code import code_blocks, extract_code, has_code_block, normalized_code, same_code

# Code without fences or surrounding whitespace: printable, with newlines, no backticks or tildes.
code_text = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="`~\r"),
    min_size=1,
    max_size=60,
).filter(lambda s: s.strip() == s and s != "")
prose = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs"), exclude_characters="`~"), max_size=40
)
language = st.sampled_from(["", "python", "py", "c++", "objective-c", "rust"])
whitespace = st.text(alphabet=" \t\n", max_size=4)


def fenced(code: str, lang: str = "python", fence: str = "```") -> str:
    return f"{fence}{lang}\n{code}\n{fence}"


def test_the_code_of_a_fenced_reply_is_the_block_without_the_prose() -> None:
    reply = "Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nIt adds."
    assert extract_code(reply) == "def add(a, b):\n    return a + b"
    assert code_blocks(reply)[0].language == "python"


def test_the_largest_block_wins_over_a_short_usage_example() -> None:
    reply = fenced("def add(a, b):\n    return a + b") + "\n\nUsage:\n\n" + fenced("add(1, 2)")
    assert extract_code(reply) == "def add(a, b):\n    return a + b"


def test_of_equally_large_blocks_the_last_wins() -> None:
    reply = "Draft:\n" + fenced("x = 1") + "\nFixed:\n" + fenced("x = 2")
    assert extract_code(reply) == "x = 2"


def test_a_reply_without_a_block_is_all_code() -> None:
    assert extract_code("  def f():\n    return 1\n") == "def f():\n    return 1"
    assert not has_code_block("def f(): return 1")
    assert not has_code_block("Inline ```x = 1``` is not a block.")


def test_a_block_left_open_by_a_cut_off_reply_runs_to_the_end() -> None:
    blocks = code_blocks("Here:\n```python\ndef f():\n    return")
    assert [(b.code, b.closed) for b in blocks] == [("def f():\n    return", False)]


def test_a_longer_fence_holds_a_shorter_one_and_tildes_work_too() -> None:
    reply = "````markdown\n```python\nx = 1\n```\n````"
    assert extract_code(reply) == "```python\nx = 1\n```"
    assert extract_code("~~~\ny = 2\n~~~") == "y = 2"


def test_an_empty_block_does_not_count() -> None:
    assert not has_code_block("```\n```")
    assert extract_code("Nothing here:\n```\n```") == "Nothing here:\n```\n```"


@given(before=prose, code=code_text, lang=language, after=prose)
def test_a_fenced_block_is_read_back_exactly(before: str, code: str, lang: str, after: str) -> None:
    reply = f"{before}\n{fenced(code, lang)}\n{after}"
    assert extract_code(reply) == code.rstrip()
    assert has_code_block(reply)
    assert code_blocks(reply)[0].language == lang


@given(code=code_text)
def test_a_reply_without_fences_is_its_own_code(code: str) -> None:
    assert extract_code(code) == code.strip()


@given(codes=st.lists(code_text, min_size=1, max_size=4))
def test_the_extracted_block_is_one_of_the_largest(codes: list[str]) -> None:
    reply = "\n\ntext\n\n".join(fenced(c) for c in codes)
    got = extract_code(reply)
    assert got in [c.rstrip() for c in codes]
    assert len(got) == max(len(c.rstrip()) for c in codes)


@given(code=code_text, pads=st.lists(whitespace, min_size=1, max_size=8))
def test_whitespace_never_makes_code_differ(code: str, pads: list[str]) -> None:
    # The same code with whitespace inserted between its characters, and fenced, is the same code.
    spaced = "".join(ch + pads[i % len(pads)] for i, ch in enumerate(code))
    assert same_code(code, fenced(spaced))
    assert same_code(fenced(spaced, "py"), code)


@given(first=code_text, second=code_text)
def test_same_code_is_symmetric_and_means_equal_without_whitespace(first: str, second: str) -> None:
    assert same_code(first, second) == same_code(second, first)
    assert same_code(first, second) == (normalized_code(first) == normalized_code(second))
    assert same_code(first, first)


def test_different_code_differs() -> None:
    assert not same_code(fenced("return a + b"), fenced("return a - b"))
    assert same_code(fenced("def f(a,b):\n  return a+b"), "def f(a, b):\n\n    return a + b\n")
