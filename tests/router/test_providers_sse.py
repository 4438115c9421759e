"""The SSE and NDJSON decoders, fed byte streams cut at arbitrary points."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_router._sse import LineSplitter, SseDecoder, SseEvent, iter_ndjson_lines, iter_sse

_text = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=20)
_name = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=8)
_events = st.lists(
    st.builds(
        SseEvent,
        data=st.lists(_text, min_size=1, max_size=3).map("\n".join),
        event=st.one_of(st.just("message"), _name),
    ),
    max_size=6,
)


def _encode(events: list[SseEvent], newline: str, comments: bool) -> bytes:
    out: list[str] = []
    for event in events:
        if comments:
            out.append(": keep-alive" + newline)
        if event.event != "message":
            out.append(f"event: {event.event}{newline}")
        out.extend(f"data: {line}{newline}" for line in event.data.split("\n"))
        out.append(newline)
    return "".join(out).encode()


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def _decode(pieces: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    events = [e for piece in pieces for e in decoder.feed(piece)]
    return events + decoder.end()


@given(_events, st.sampled_from(["\n", "\r\n", "\r"]), st.booleans(), st.lists(st.integers(0, 400), max_size=8))
def test_sse_round_trip_at_any_chunking(events: list[SseEvent], newline: str, comments: bool, cuts: list[int]) -> None:
    data = _encode(events, newline, comments)
    assert _decode(_cut(data, cuts)) == events


@given(st.lists(st.integers(0, 40), max_size=6))
def test_multibyte_characters_split_between_chunks(cuts: list[int]) -> None:
    data = "data: héllo — 世界 🎉\n\n".encode()
    assert _decode(_cut(data, cuts)) == [SseEvent(data="héllo — 世界 🎉")]


def test_fields_and_edge_cases() -> None:
    data = b"retry: 10\nid: 7\nevent: ping\ndata\n\ndata:x\nunknown: y\n\nevent: only-type\n\n"
    assert _decode([data]) == [
        SseEvent(data="", event="ping", id="7", retry=10),
        SseEvent(data="x", id="7"),
    ]


def test_event_without_trailing_blank_line_is_kept_but_cut_line_is_dropped() -> None:
    assert _decode([b"data: done\n"]) == [SseEvent(data="done")]
    assert _decode([b"data: whole\n\ndata: cut in the mid"]) == [SseEvent(data="whole")]


@given(
    st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1), max_size=6),
    st.lists(st.integers(0, 200), max_size=6),
    st.booleans(),
)
def test_line_splitter(lines: list[str], cuts: list[int], trailing_newline: bool) -> None:
    data = "\n".join(lines).encode() + (b"\n" if trailing_newline and lines else b"")
    splitter = LineSplitter()
    got = [line for piece in _cut(data, cuts) for line in splitter.feed(piece)]
    last = splitter.end()
    if last is not None:
        got.append(last)
    assert [g.decode() for g in got] == lines


async def _chunks(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        await anyio.lowlevel.checkpoint()
        yield piece


@pytest.mark.anyio
async def test_async_decoders() -> None:
    events = [e async for e in iter_sse(_chunks([b"data: a\n", b"\ndata: b\n\n"]))]
    assert [e.data for e in events] == ["a", "b"]
    lines = [x async for x in iter_ndjson_lines(_chunks([b'{"a":1}\n\n{"b"', b':2}\n{"c":3}']))]
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']
