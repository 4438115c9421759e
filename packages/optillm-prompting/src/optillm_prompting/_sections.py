"""Reading a CoT-reflection reply: its <thinking>, <reflection> and <output> sections.

Models follow the format loosely: they forget a closing tag, run out of tokens mid-section, put the
reflection after the thinking instead of inside it, mention a tag while thinking, change the case
of a tag, or ignore the format altogether. :func:`parse_sections` reads all of these and never lets
text of the thinking or the reflection into the answer.
"""

from __future__ import annotations as _annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ("AnswerSource", "Sections", "parse_sections")

_TAG = re.compile(r"<\s*(/?)\s*(thinking|reflection|output)\s*>", re.IGNORECASE)

_NAMES = ("thinking", "reflection", "output")
_TAG_BEGUN = re.compile(r"<\s*/?\s*([a-z]*)\s*$", re.IGNORECASE)
"""A tag the reply had begun to write when it was cut off: ``<``, ``</outp``."""

AnswerSource = Literal["output", "unmarked", "none"]
"""Where the answer came from: the output section, the text outside any section, or nowhere."""


@dataclass(frozen=True)
class Sections:
    """The parts of one reply.

    ``thinking`` and ``reflection`` are the model's working (tags removed; the reflection is not
    repeated in the thinking); ``output`` the output section's text, ``None`` when the reply has
    none; ``output_closed`` whether ``</output>`` ended it; ``outside`` the text outside every
    section; ``marked`` whether the reply used any of the tags at all.
    """

    thinking: str
    reflection: str
    output: str | None
    output_closed: bool
    outside: str
    marked: bool

    @property
    def answer(self) -> str:
        """The output section; with none (or an empty one), the text outside the sections; else ``""``."""
        if self.output:
            return self.output
        return self.outside

    @property
    def source(self) -> AnswerSource:
        if self.output:
            return "output"
        return "unmarked" if self.outside else "none"


@dataclass(frozen=True)
class _Tag:
    start: int
    end: int
    closing: bool
    name: str


def parse_sections(text: str, *, truncated: bool = False) -> Sections:
    """Split ``text`` into its sections (see :class:`Sections`); a reply without tags is all ``outside``.

    ``truncated``: the reply was cut off at its token limit, so a tag it had begun to write at the
    very end (``</outp``) is dropped rather than read as text.
    """
    if truncated:
        begun = _TAG_BEGUN.search(text)
        if begun is not None and any(name.startswith(begun.group(1).lower()) for name in _NAMES):
            text = text[: begun.start()]
    tags = [_Tag(m.start(), m.end(), m.group(1) == "/", m.group(2).lower()) for m in _TAG.finditer(text)]
    if not tags:
        return Sections("", "", None, False, text.strip(), False)
    output_open = _output_opening(tags)
    working_end = output_open.start if output_open is not None else len(text)
    output: str | None = None
    output_closed = False
    after_output = ""
    if output_open is not None:
        close = next((t for t in tags if t.start >= output_open.end and t.closing and t.name == "output"), None)
        end = close.start if close is not None else len(text)
        output = _strip_tags(text[output_open.end : end]).strip()
        output_closed = close is not None
        after_output = text[close.end :] if close is not None else ""
    thinking, reflection, outside = _working(text[:working_end], [t for t in tags if t.end <= working_end])
    if output is not None:
        # Text after </output> is not part of the answer, but also not the model's working.
        outside = "\n\n".join(part for part in (outside, _strip_tags(after_output).strip()) if part)
    return Sections(thinking, reflection, output, output_closed, outside, True)


def _output_opening(tags: list[_Tag]) -> _Tag | None:
    """The ``<output>`` that opens the answer: the first one after the thinking is closed.

    An ``<output>`` written while the thinking is still open is only a mention of the tag, unless
    the thinking is never closed after it (the model forgot ``</thinking>``): then the first such
    ``<output>`` opens the answer.
    """
    depth = 0
    pending: _Tag | None = None
    for tag in tags:
        if tag.name == "thinking":
            if tag.closing:
                depth = max(depth - 1, 0)
                if depth == 0:
                    pending = None  # the outputs it held were mentions
            else:
                depth += 1
        elif tag.name == "output" and not tag.closing:
            if depth == 0:
                return tag
            if pending is None:
                pending = tag
    return pending


def _working(text: str, tags: list[_Tag]) -> tuple[str, str, str]:
    """``(thinking, reflection, outside)`` of the text before the output section."""
    thinking: list[str] = []
    reflection: list[str] = []
    outside: list[str] = []
    in_thinking = 0
    in_reflection = False
    position = 0
    for tag in [*tags, None]:
        piece = text[position : tag.start if tag is not None else len(text)]
        if in_reflection:
            reflection.append(piece)
        elif in_thinking:
            thinking.append(piece)
        else:
            outside.append(piece)
        if tag is None:
            break
        position = tag.end
        if tag.name == "reflection":
            in_reflection = not tag.closing
        elif tag.name == "thinking":
            in_thinking = max(in_thinking - 1, 0) if tag.closing else in_thinking + 1
            if tag.closing:
                in_reflection = False  # a reflection left open ends with the thinking
    return _join(thinking), _join(reflection), _join(outside)


def _join(pieces: list[str]) -> str:
    return "\n\n".join(p.strip() for p in pieces if p.strip())


def _strip_tags(text: str) -> str:
    return _TAG.sub("", text)
