"""Reading an upstream's event stream without changing it: event boundaries, kinds, and the retry decision."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import BadRequestError, ProtocolError, ProviderUnavailable, RateLimitError
from optillm_server import Upstream
from optillm_server._sse import EventKind, EventSplitter, event_data, event_kind

LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
FIELD = st.text(alphabet=st.characters(blacklist_characters="\r\n", codec="utf-8"), max_size=20)


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    """Whole events (each with its blank line, in one line-ending style) and the stream they make."""
    end = draw(LINE_ENDS)
    events = []
    for lines in draw(st.lists(st.lists(FIELD.map(lambda t: "data: " + t), min_size=1, max_size=3), max_size=6)):
        events.append((end.join(lines) + end + end).encode())
    return events, b"".join(events)


@given(streams(), st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_any_cutting_of_a_stream_gives_back_its_events_byte_for_byte(
    stream: tuple[list[bytes], bytes], cuts: list[int]
) -> None:
    events, raw = stream
    splitter = EventSplitter()
    seen: list[bytes] = []
    previous = 0
    for cut in [*sorted(c % (len(raw) + 1) for c in cuts), len(raw)]:
        seen += splitter.feed(raw[previous:cut])
        previous = cut
    assert seen == events
    assert splitter.rest() == b""


def test_an_unfinished_event_waits_and_the_rest_is_kept() -> None:
    splitter = EventSplitter()
    assert splitter.feed(b"data: {}\n\ndata: [DO") == [b"data: {}\n\n"]
    assert splitter.feed(b"NE]") == []
    assert splitter.rest() == b"data: [DONE]"


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (b": keep-alive\n\n", EventKind.COMMENT),
        (b"event: ping\n\n", EventKind.COMMENT),
        (b"data: [DONE]\n\n", EventKind.DONE),
        (b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n', EventKind.PREAMBLE),
        (b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n', EventKind.CHUNK),
        (b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0}]}}]}\n\n', EventKind.CHUNK),
        (b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', EventKind.CHUNK),
        (b'data: {"choices":[],"usage":{"total_tokens":3}}\n\n', EventKind.CHUNK),
        (b'data: {"error":{"message":"overloaded"}}\n\n', EventKind.ERROR),
        (b"data: {not json\n\n", EventKind.MALFORMED),
        (b"data: [1, 2]\n\n", EventKind.MALFORMED),
    ],
)
def test_event_kinds(event: bytes, kind: EventKind) -> None:
    assert event_kind(event)[0] is kind


def test_data_lines_are_joined_and_one_leading_space_dropped() -> None:
    assert event_data(b'data: {\r\ndata:  "a": 1}\r\n\r\n') == '{\n "a": 1}'
    assert event_data(b": only a comment\n\n") is None


def test_the_retry_decision_follows_the_router_policy() -> None:
    upstream = Upstream("http://127.0.0.1:1/v1", max_retries=2, initial_retry_delay=0.5, max_retry_after=60.0)
    assert upstream.retry_in(RateLimitError("slow", status_code=429, retry_after=3.0), 0) == 3.0
    assert upstream.retry_in(RateLimitError("quota", status_code=429, retry_after=3600.0), 0) is None
    assert upstream.retry_in(ProviderUnavailable("down", status_code=503), 2) is None  # retries spent
    assert upstream.retry_in(BadRequestError("bad", status_code=400), 0) is None
    delay = upstream.retry_in(ProtocolError("cut short"), 1)
    assert delay is not None and 0.75 <= delay <= 1.0


@pytest.mark.parametrize(
    "fields",
    [{"max_retries": -1}, {"initial_retry_delay": -0.1}, {"max_retry_after": float("inf")}],
)
def test_bad_retry_settings_are_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="upstream"):
        Upstream("http://127.0.0.1:1/v1", **fields)  # type: ignore[arg-type]
