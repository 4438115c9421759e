"""The fake OpenAI server's own timing: its latency runs from each request's arrival."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import anyio
import httpx
import pytest

from optillm_router._loopback import TIMER_SLACK, sleep_until
from optillm_router.testing import FakeOpenAIServer

LATENCY = 0.5
REPLY_WORK = 0.2  # the reply blocks the server's loop this long, as slow CPU-bound reply work would


def test_reply_work_happens_inside_the_latency() -> None:
    def slow_reply(body: dict[str, Any], choice: int) -> str:
        time.sleep(REPLY_WORK)
        return "The answer is 42."

    server = FakeOpenAIServer(reply=slow_reply, latency=LATENCY)
    with server.running_in_thread():
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "question"}]}
        response = httpx.post(server.base_url + "/chat/completions", json=body, timeout=10)

    assert response.status_code == 200
    (record,) = server.chat_requests
    assert record.ended_at is not None
    duration = record.ended_at - record.started_at
    # Not before the latency is up, and not latency + reply work (which would be >= 0.7 s).
    assert LATENCY - 0.005 <= duration < LATENCY + REPLY_WORK / 2


@pytest.mark.anyio
async def test_concurrent_requests_are_never_answered_before_their_latency() -> None:
    # The server waits out the last stretch of each latency on the loop instead of a millisecond
    # timer; none of that may answer early, however many requests wait together.
    latency = 0.03
    async with FakeOpenAIServer(latency=latency) as server, httpx.AsyncClient() as client:
        body = {"model": "fake-model", "messages": [{"role": "user", "content": "question"}]}
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(partial(client.post, server.base_url + "/chat/completions", json=body, timeout=10))

    assert len(server.intervals()) == 8
    assert all(end - start >= latency for start, end in server.intervals())


@pytest.mark.anyio
@pytest.mark.parametrize("ahead", [0.0, 0.0005, TIMER_SLACK, TIMER_SLACK + 0.004, -0.001])
async def test_sleep_until_returns_at_or_after_its_deadline(ahead: float) -> None:
    deadline = time.monotonic() + ahead
    await sleep_until(deadline)
    assert time.monotonic() >= deadline
