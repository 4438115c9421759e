"""Reading code out of a model's reply, and telling whether two pieces of code are the same.

Both code strategies use these two rules, and only these:

- :func:`extract_code`: the code of a reply is its largest fenced block (```` ```lang ```` …
  ```` ``` ````, three or more backticks or tildes, closed by a fence of the same character at least
  as long; a block left open at the end of the reply, as a reply cut off by ``max_tokens`` leaves
  it, runs to the end). Of equally large blocks the last wins, since a model that revises its code
  writes the revision after the draft. A reply with no fenced block is all code: the whole reply,
  stripped.
- :func:`same_code`: two pieces of code are the same when they are equal once every whitespace
  character is taken out, so re-indentation, blank lines, line endings and spacing around
  operators do not count as differences.
"""

from __future__ import annotations as _annotations

import re
from dataclasses import dataclass

__all__ = ("CodeBlock", "code_blocks", "extract_code", "has_code_block", "normalized_code", "same_code")

# A fence line: up to three spaces of indentation (more inside list items is allowed too), then at
# least three backticks or tildes, then an optional info string (the language) on the same line.
_OPENING = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*?)[ \t]*$")
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block of a reply: its language (the fence's first word, possibly empty) and its code."""

    language: str
    code: str
    closed: bool = True


def code_blocks(text: str) -> tuple[CodeBlock, ...]:
    """Every fenced block of ``text``, in order (see the module for what a fence is)."""
    blocks: list[CodeBlock] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _OPENING.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening.group("fence")
        info = opening.group("info").split()
        language = info[0] if info else ""
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                closed = True
                break
            body.append(lines[i])
            i += 1
        i += 1
        blocks.append(CodeBlock(language=language, code="\n".join(body).strip("\n"), closed=closed))
    return tuple(blocks)


def has_code_block(text: str) -> bool:
    """Whether ``text`` holds a fenced block with some code in it."""
    return any(block.code.strip() for block in code_blocks(text))


def extract_code(text: str) -> str:
    """The code of a reply: its largest fenced block (the last of equals), else the whole reply, stripped."""
    blocks = [block for block in code_blocks(text) if block.code.strip()]
    if not blocks:
        return text.strip()
    largest = max(range(len(blocks)), key=lambda i: (len(blocks[i].code.strip()), i))
    return blocks[largest].code.strip("\n").rstrip()


def normalized_code(code: str) -> str:
    """``code`` with every whitespace character taken out: what :func:`same_code` compares."""
    return _WHITESPACE.sub("", code)


def same_code(first: str, second: str) -> bool:
    """Whether two replies hold the same code: their extracted code equal but for whitespace."""
    return normalized_code(extract_code(first)) == normalized_code(extract_code(second))
