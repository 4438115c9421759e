"""The fake OpenAI server's own timing: its latency runs from each request's arrival."""

from __future__ import annotations

import time
from typing import Any

import httpx

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
