"""Incremental decoders for server-sent events and newline-delimited JSON over byte chunks.

Both decoders split lines on the bytes (so a multi-byte character cut between two chunks is
never mis-decoded) and keep only the unfinished line between chunks.
"""

from __future__ import annotations as _annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

__all__ = ("LineSplitter", "SseDecoder", "SseEvent", "iter_ndjson_lines", "iter_sse")


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched server-sent event. ``event`` is ``"message"`` unless the server named it."""

    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class LineSplitter:
    """Splits a byte stream into lines ending in ``\\n``, ``\\r\\n`` or ``\\r``."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed by ``chunk``, without their terminators."""
        data = self._buffer + chunk
        if b"\r" not in data:
            *lines, self._buffer = data.split(b"\n")
            return lines
        # A trailing "\r" may be the first half of "\r\n": keep it until the next chunk.
        hold = data.endswith(b"\r")
        if hold:
            data = data[:-1]
        *lines, rest = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        self._buffer = rest + b"\r" if hold else rest
        return lines

    def end(self) -> bytes | None:
        """Finish the stream: the unterminated last line, if any (``b"\\r"`` alone ends a line)."""
        rest, self._buffer = self._buffer, b""
        if rest.endswith(b"\r"):
            return None if rest == b"\r" else rest[:-1]
        return rest or None

    @property
    def pending(self) -> bool:
        """Whether an unterminated line is buffered."""
        return bool(self._buffer) and self._buffer != b"\r"


class SseDecoder:
    """The event-stream parser of the HTML standard, fed bytes incrementally.

    ``data`` lines of one event are joined with ``\\n``; lines starting with ``:`` are comments;
    an empty line dispatches the event; an event without data is not dispatched.
    """

    __slots__ = ("_data", "_event", "_id", "_lines", "_retry")

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        events: list[SseEvent] = []
        for raw in self._lines.feed(chunk):
            event = self._line(raw.decode("utf-8", "replace"))
            if event is not None:
                events.append(event)
        return events

    def end(self) -> list[SseEvent]:
        """Finish the stream. An event whose last line arrived whole is dispatched even without the
        blank line after it; a line cut in the middle is dropped with its event.
        """
        if self._lines.pending:
            self._lines.end()
            self._reset()
            return []
        event = self._dispatch()
        return [event] if event is not None else []

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id":
            if "\0" not in value:
                self._id = value
        elif field == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent(data="\n".join(self._data), event=self._event or "message", id=self._id, retry=self._retry)
        self._reset()
        return event

    def _reset(self) -> None:
        self._data = []
        self._event = ""
        self._retry = None


async def iter_sse(chunks: AsyncIterable[bytes]) -> AsyncGenerator[SseEvent, None]:
    """The events of an SSE byte stream, as they complete."""
    decoder = SseDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.end():
        yield event


async def iter_ndjson_lines(chunks: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
    """The non-blank lines of a newline-delimited JSON byte stream (an unterminated last line too)."""
    lines = LineSplitter()
    async for chunk in chunks:
        for line in lines.feed(chunk):
            if line.strip():
                yield line
    last = lines.end()
    if last is not None and last.strip():
        yield last
