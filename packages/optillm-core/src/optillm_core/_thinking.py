"""Moving ``<think>…</think>`` text out of answers, for whole completions and for streams.

Models that think in tags write the thinking into the answer's own text. Every
:class:`~optillm_core.ModelClient` passes its results through these functions, so a strategy,
a vote or a user only ever sees the text outside the thinking, and the thinking is kept beside it
(``Completion.thinking``, :class:`~optillm_core.ReasoningDelta`).
"""

from __future__ import annotations as _annotations

from collections.abc import AsyncIterator

from ._extract import split_thinking
from ._responses import Completion, OutputTextDelta, ReasoningDelta, ResponseEvent, ToolCallDelta

__all__ = ("ThinkingSplitter", "separate_thinking", "split_thinking_stream")

_OPEN = "<think>"
_CLOSE = "</think>"


def separate_thinking(completion: Completion) -> Completion:
    """``completion`` with ``<think>`` text moved from each choice's text into its thinking."""
    if not any(_OPEN in text or _CLOSE in text for text in completion.texts):
        return completion
    texts: list[str] = []
    thinking: list[str] = []
    for index, text in enumerate(completion.texts):
        earlier = completion.thinking[index] if index < len(completion.thinking) else ""
        if _OPEN in text or _CLOSE in text:
            thought, visible = split_thinking(text)
            texts.append(visible)
            thinking.append("\n\n".join(part for part in (earlier, thought) if part))
        else:
            texts.append(text)
            thinking.append(earlier)
    return completion.model_copy(update={"texts": tuple(texts), "thinking": tuple(thinking)})


class ThinkingSplitter:
    """One choice's text as it streams in, split into thinking and answer pieces.

    A reply whose first non-blank text is ``<think>`` is thinking up to ``</think>``. With
    ``expect_close`` (a model known to think in tags, whose template may already have opened the
    tag) any text is held until ``</think>`` shows it was thinking, or the end shows it was not.
    Otherwise text that does not start with ``<think>`` passes on at once.
    """

    __slots__ = ("_buffer", "_expect_close", "_state")

    def __init__(self, *, expect_close: bool = False) -> None:
        self._expect_close = expect_close
        self._state = "start"
        self._buffer = ""

    def feed(self, piece: str) -> tuple[str, str]:
        """``(thinking, text)`` that can be passed on after this piece."""
        if self._state == "text":
            return "", piece
        if self._state == "after":  # the blank lines between thinking and answer are neither
            piece = piece.lstrip()
            if piece:
                self._state = "text"
            return "", piece
        self._buffer += piece
        if self._state == "start":
            return self._decide()
        return self._scan()

    def finish(self) -> tuple[str, str]:
        """What is still held when the reply ends."""
        buffer, self._buffer = self._buffer, ""
        if self._state == "thinking":
            return buffer, ""
        if self._state == "maybe":
            self._state = "text"
            return "", buffer
        if self._state == "after":
            return "", ""
        if self._state == "start":
            stripped = buffer.lstrip()
            if stripped.startswith(_OPEN):
                return stripped[len(_OPEN) :], ""
        self._state = "text"
        return "", buffer

    def _decide(self) -> tuple[str, str]:
        stripped = self._buffer.lstrip()
        if len(stripped) < len(_OPEN) and _OPEN.startswith(stripped):
            return "", ""  # too early to tell
        if stripped.startswith(_OPEN):
            self._state = "thinking"
            self._buffer = stripped[len(_OPEN) :]
            return self._scan()
        if self._expect_close:
            self._state = "maybe"
            return self._scan()
        self._state = "text"
        buffer, self._buffer = self._buffer, ""
        return "", buffer

    def _scan(self) -> tuple[str, str]:
        close = self._buffer.find(_CLOSE)
        if close != -1:
            thought, rest = self._buffer[:close], self._buffer[close + len(_CLOSE) :].lstrip()
            self._state = "text" if rest else "after"
            self._buffer = ""
            open_index = thought.find(_OPEN)
            if open_index != -1:  # "maybe" text that opened the tag after all
                thought = thought[open_index + len(_OPEN) :]
            return thought, rest
        if self._state == "maybe":
            return "", ""
        # Hold back what could be the start of "</think>" split across pieces.
        keep = len(_CLOSE) - 1
        ready, self._buffer = self._buffer[:-keep], self._buffer[-keep:]
        if len(ready) == 0:
            return "", ""
        return ready, ""


async def split_thinking_stream(
    events: AsyncIterator[ResponseEvent], *, expect_close: bool = False
) -> AsyncIterator[ResponseEvent]:
    """``events`` with ``<think>`` text of every choice sent as :class:`ReasoningDelta` instead."""
    splitters: dict[int, ThinkingSplitter] = {}
    async for event in events:
        if isinstance(event, OutputTextDelta):
            splitter = splitters.get(event.index)
            if splitter is None:
                splitter = splitters[event.index] = ThinkingSplitter(expect_close=expect_close)
            for out in _pieces(event.index, *splitter.feed(event.delta)):
                yield out
            continue
        if isinstance(event, ToolCallDelta):  # its choice's text has ended; the other choices' go on
            splitter = splitters.pop(event.index, None)
            for out in _pieces(event.index, *splitter.finish()) if splitter is not None else ():
                yield out
        elif not isinstance(event, ReasoningDelta):
            for out in _flush(splitters):
                yield out
        yield event
    for out in _flush(splitters):  # a stream that ended without its Completed event
        yield out


def _flush(splitters: dict[int, ThinkingSplitter]) -> list[ResponseEvent]:
    out = [piece for index, splitter in splitters.items() for piece in _pieces(index, *splitter.finish())]
    splitters.clear()
    return out


def _pieces(index: int, thinking: str, text: str) -> list[ResponseEvent]:
    out: list[ResponseEvent] = []
    if thinking:
        out.append(ReasoningDelta(delta=thinking, index=index))
    if text:
        out.append(OutputTextDelta(delta=text, index=index))
    return out
