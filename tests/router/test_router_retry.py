"""The retry policy's pure functions: classification table, backoff bounds, retry-after."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    ClientError,
    InvalidConfiguration,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    error_for_status,
)
from optillm_router import (
    INITIAL_RETRY_DELAY,
    MAX_RETRIES,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
    RETRY_JITTER,
    UNREACHED_RETRIES,
    parse_retry_after,
    retry_allowed,
    retry_delay,
    should_retry,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (413, False),
        (422, False),
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (529, True),
    ],
)
def test_status_table(status: int, expected: bool) -> None:
    assert should_retry(error_for_status(status, "x")) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ProviderTimeout("read timed out"), True),
        (ProtocolError("stream cut"), True),
        (ProviderUnavailable("connection refused"), True),
        (RateLimitError("slow down", retry_after=3), True),
        (AuthenticationError("bad key", status_code=401), False),
        (BadRequestError("bad request", status_code=400), False),
        (BadRequestError("no status"), False),
        (ClientError("generic"), False),
        (InvalidConfiguration("not a client error"), False),
        (ValueError("nope"), False),
    ],
)
def test_error_table(error: BaseException, expected: bool) -> None:
    assert should_retry(error) is expected


def test_first_delays_follow_the_sdk_schedule() -> None:
    rng = random.Random(7)
    for attempt, base in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        delay = retry_delay(attempt, None, rng)
        assert base * (1 - RETRY_JITTER) <= delay <= base


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    initial=st.floats(min_value=0.0, max_value=10.0),
    maximum=st.floats(min_value=0.0, max_value=120.0),
)
def test_backoff_stays_within_zero_and_the_cap(attempt: int, seed: int, initial: float, maximum: float) -> None:
    delay = retry_delay(attempt, None, random.Random(seed), initial=initial, maximum=maximum)
    assert 0.0 <= delay <= maximum
    assert delay >= min(initial * 2.0 ** min(attempt, 62), maximum) * (1 - RETRY_JITTER) - 1e-12


@given(
    attempt=st.integers(min_value=0, max_value=50),
    retry_after=st.floats(min_value=0.0, max_value=1e6, allow_nan=False),
    cap=st.floats(min_value=0.0, max_value=600.0),
)
def test_retry_after_is_honoured_up_to_the_cap(attempt: int, retry_after: float, cap: float) -> None:
    assert retry_delay(attempt, retry_after, random.Random(0), max_retry_after=cap) == min(retry_after, cap)


@given(st.sampled_from([-1.0, float("nan"), float("inf"), -float("inf")]))
def test_nonsense_retry_after_falls_back_to_backoff(value: float) -> None:
    delay = retry_delay(0, value, random.Random(1))
    assert INITIAL_RETRY_DELAY * (1 - RETRY_JITTER) <= delay <= INITIAL_RETRY_DELAY


@given(st.integers(0, 30), st.integers(0, 30), st.booleans())
def test_retry_allowed_counts_retries_up_to_the_limit(retries: int, max_retries: int, unreached: bool) -> None:
    error = ProviderUnavailable("down", status_code=503)
    limit = min(max_retries, UNREACHED_RETRIES) if unreached else max_retries
    assert retry_allowed(error, retries, max_retries=max_retries, unreached=unreached) is (retries < limit)


def test_retry_allowed_defaults_and_refusals() -> None:
    transient = ProviderUnavailable("down", status_code=503)
    assert retry_allowed(transient, MAX_RETRIES - 1)
    assert not retry_allowed(transient, MAX_RETRIES)
    assert not retry_allowed(transient, UNREACHED_RETRIES, unreached=True)
    assert not retry_allowed(BadRequestError("bad", status_code=400), 0)  # permanent
    quota = RateLimitError("quota", status_code=429, retry_after=MAX_RETRY_AFTER + 1)
    assert not retry_allowed(quota, 0)  # a pause beyond the cap is not waited for
    assert retry_allowed(quota, 0, max_retry_after=MAX_RETRY_AFTER + 1)


def test_defaults() -> None:
    assert (INITIAL_RETRY_DELAY, MAX_RETRY_DELAY, MAX_RETRY_AFTER) == (0.5, 8.0, 60.0)
    assert retry_delay(0, 3600.0) == MAX_RETRY_AFTER


@given(st.integers(min_value=0, max_value=10**7))
def test_retry_after_headers_in_seconds_and_milliseconds(millis: int) -> None:
    assert parse_retry_after({"retry-after-ms": str(millis)}) == pytest.approx(millis / 1000)
    assert parse_retry_after({"retry-after": str(millis)}) == millis


@given(st.integers(min_value=2, max_value=86_400))
def test_retry_after_as_http_date(seconds: int) -> None:
    when = datetime.now(UTC) + timedelta(seconds=seconds)
    before = time.time()
    parsed = parse_retry_after({"retry-after": format_datetime(when, usegmt=True)})
    assert parsed is not None
    # HTTP dates have whole seconds; allow for that and for the time this test takes.
    assert seconds - 1 - (time.time() - before) - 1 <= parsed <= seconds + 1


def test_past_http_date_means_now_and_garbage_means_absent() -> None:
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
