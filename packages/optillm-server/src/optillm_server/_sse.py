"""Reading an upstream's server-sent events without changing them: where each event ends, and what it carries.

The pass-through relays the upstream's bytes unchanged; it only needs to know where one event
ends (so it never forwards half of one), whether an event is the closing ``[DONE]``, an error, a
chunk that carries part of the answer, or something it cannot read.
"""

from __future__ import annotations as _annotations

import json
import re
from enum import Enum
from typing import Any

__all__ = ("EventKind", "EventSplitter", "event_data", "event_kind")

# A blank line ends an event; lines end in CRLF, LF or CR (the SSE specification allows all three).
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE_END = re.compile(r"\r\n|\r|\n")


class EventKind(Enum):
    COMMENT = "comment"
    """No ``data:`` line: a keep-alive comment, or only ``event:`` / ``id:`` fields."""
    PREAMBLE = "preamble"
    """A chunk that carries none of the answer yet: a role-only delta."""
    CHUNK = "chunk"
    """A chunk with part of the answer: content, tool calls, logprobs, a finish reason or usage."""
    ERROR = "error"
    """``{"error": …}``: the upstream's own error event."""
    DONE = "done"
    """``[DONE]``: the stream is complete."""
    MALFORMED = "malformed"
    """Data that is not a JSON object."""


class EventSplitter:
    """Cuts a byte stream into complete events, each with its blank-line separator, as the pieces arrive."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, piece: bytes) -> list[bytes]:
        """The events that ``piece`` completes, byte for byte; an unfinished one waits for the next piece."""
        buffer = self._buffer + piece
        events: list[bytes] = []
        start = 0
        for match in _BOUNDARY.finditer(buffer):
            events.append(buffer[start : match.end()])
            start = match.end()
        self._buffer = buffer[start:]
        return events

    def rest(self) -> bytes:
        """What came after the last complete event (a stream may end without the final blank line)."""
        rest, self._buffer = self._buffer, b""
        return rest


def event_data(event: bytes) -> str | None:
    """The event's ``data:`` lines joined with newlines, or ``None`` when it has none."""
    lines = _LINE_END.split(event.decode("utf-8", errors="replace"))
    data = [line[5:].removeprefix(" ") for line in lines if line.startswith("data:")]
    return "\n".join(data) if data else None


def event_kind(event: bytes) -> tuple[EventKind, Any]:
    """What an event is, with its parsed JSON payload (``None`` when it has none)."""
    data = event_data(event)
    if data is None:
        return EventKind.COMMENT, None
    if data.strip() == "[DONE]":
        return EventKind.DONE, None
    try:
        payload = json.loads(data)
    except ValueError:
        return EventKind.MALFORMED, None
    if not isinstance(payload, dict):
        return EventKind.MALFORMED, None
    if "error" in payload and not payload.get("choices"):
        return EventKind.ERROR, payload
    return (EventKind.CHUNK if _carries_answer(payload) else EventKind.PREAMBLE), payload


def _carries_answer(payload: dict[str, Any]) -> bool:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices:
        return True  # a usage chunk, or a shape this reader does not know: treat it as part of the answer
    return any(_choice_carries_answer(choice) for choice in choices)


def _choice_carries_answer(choice: Any) -> bool:
    if not isinstance(choice, dict):
        return True
    if choice.get("finish_reason") or choice.get("logprobs"):
        return True
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return True
    return any(value not in (None, "", [], {}) for key, value in delta.items() if key != "role")
