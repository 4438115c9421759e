"""GenSelect's comparison: the prompt that shows every candidate, and a forgiving reader of the one it names."""

from __future__ import annotations as _annotations

import re
from collections.abc import Sequence

from optillm_core.toolkit import split_thinking

__all__ = ("comparison_prompt", "parse_choice")


def comparison_prompt(query: str, candidates: Sequence[str], *, tool_calls: bool = False) -> str:
    """The candidates first, numbered from 1, and the instruction last.

    ``tool_calls``: some candidates call a tool instead of answering (written out as
    :func:`~optillm_core.toolkit.render_reply` writes them); the instruction then says how to weigh them.
    """
    blocks = "\n\n".join(
        f'<candidate number="{i}">\n{text.strip()}\n</candidate>' for i, text in enumerate(candidates, start=1)
    )
    weighing = _TOOL_CALLS if tool_calls else ""
    return (
        f"Below are a question and {len(candidates)} candidate responses to it, numbered 1 to {len(candidates)}.\n\n"
        f"<question>\n{query.strip()}\n</question>\n\n"
        f"{blocks}\n\n"
        "Compare the candidates: check each one's reasoning and final answer against the question and against "
        f"each other.{weighing} Then choose the best candidate and end your reply with one line of the form "
        "`Best candidate: N`, where N is its number."
    )


_TOOL_CALLS = (
    " A candidate that calls a tool instead of answering is good when that call is what the question needs "
    "next: the right tool with the right arguments, and not a call whose result is already given above."
)


_ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
}
_NOUN = r"(?:candidate|response|answer|option|solution)"
_BEST_LINE = re.compile(
    rf"\bbest\s+{_NOUN}\b\s*(?:is)?\s*[:=\-—]?\s*(?:\*\*)?\s*(?:{_NOUN}|number|no\.|#)?\s*#?\s*(\d+)\b", re.IGNORECASE
)
_LABELLED = re.compile(
    rf"\b(?:best|chosen|choice|selected|selection|winner|pick)\b\s*(?:{_NOUN}|one)?\s*(?:is|:|=|-|—)?\s*(?:\*\*)?\s*"
    rf"(?:{_NOUN}|number|no\.|#)?\s*#?\s*(\d+)\b",
    re.IGNORECASE,
)
_MENTION = re.compile(rf"\b{_NOUN}\s*(?:number\s*|no\.\s*|#\s*)?(\d+)\b", re.IGNORECASE)
_ORDINAL = re.compile(rf"\b({'|'.join(_ORDINALS)})\s+{_NOUN}\b", re.IGNORECASE)
_BARE = re.compile(r"^\W*(\d+)\W*$")


def parse_choice(text: str, count: int) -> int | None:
    """The candidate number (1 to ``count``) a comparison reply names as the best, or ``None``.

    Thinking is ignored. In order: the last ``Best candidate: N`` (any case, markdown, ``#N``); the
    last number after a label (``Choice: 2``, ``Selected: #3``, ``the winner is candidate 4``); the
    one candidate the reply mentions, by number (``Candidate 3``) or ordinal (``the third
    response``), when it mentions exactly one; a reply that is only a number. A number outside 1 to
    ``count`` names none.
    """
    body = split_thinking(text)[1]
    for pattern in (_BEST_LINE, _LABELLED):
        matches = pattern.findall(body)
        if matches:
            return _in_range(int(matches[-1]), count)
    mentioned = {int(n) for n in _MENTION.findall(body)} | {_ORDINALS[w.lower()] for w in _ORDINAL.findall(body)}
    if len(mentioned) == 1:
        return _in_range(mentioned.pop(), count)
    bare = _BARE.match(body.strip())
    return _in_range(int(bare.group(1)), count) if bare else None


def _in_range(number: int, count: int) -> int | None:
    return number if 1 <= number <= count else None
