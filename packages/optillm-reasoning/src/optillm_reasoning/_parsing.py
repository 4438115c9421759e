"""Readers of LEAP's model output: the ``<output>`` section and the examples' JSON."""

from __future__ import annotations as _annotations

import json
import re
from dataclasses import dataclass

from optillm_core.toolkit import split_thinking

__all__ = ("Example", "output_section", "parse_examples")

_OUTPUT = re.compile(r"<output>(.*?)(?:</output>|$)", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


@dataclass(frozen=True)
class Example:
    """A worked example found in the query: its question and the answer the query gives."""

    question: str
    answer: str


def output_section(text: str) -> str | None:
    """What a reply holds in its ``<output>`` section (the last one; to the end when unclosed), else ``None``.

    Thinking is left out first, so an ``<output>`` the model only thought about does not count.
    """
    body = split_thinking(text)[1]
    sections = _OUTPUT.findall(body)
    return sections[-1].strip() if sections else None


def parse_examples(text: str) -> tuple[Example, ...] | None:
    """The examples of an extraction reply, ``()`` when it says there are none, ``None`` when unreadable.

    The JSON array is read from the ``<output>`` section, or from the whole reply when it has none
    (a bare array, possibly in a code fence). Entries without a question or an answer are skipped (a list of nothing
    else is unreadable).
    """
    section = output_section(text)
    raw = section if section is not None else split_thinking(text)[1].strip()
    fenced = _FENCE.match(raw)
    if fenced:
        raw = fenced.group(1).strip()
    if not raw:
        return () if section is not None else None
    try:
        value = json.loads(raw)
    except ValueError:
        start, end = raw.find("["), raw.rfind("]")
        if start == -1 or end <= start:
            return None
        try:
            value = json.loads(raw[start : end + 1])
        except ValueError:
            return None
    if not isinstance(value, list):
        return None
    examples = []
    for item in value:
        if not isinstance(item, dict):
            continue
        question, answer = item.get("question"), item.get("answer")
        if _text(question) and _text(answer):
            examples.append(Example(question=_text(question), answer=_text(answer)))
    if value and not examples:
        return None  # a list, but of nothing usable: unreadable rather than "no examples"
    return tuple(examples)


def _text(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, str | int | float):
        return str(value).strip()
    return ""
