"""Pass-through streams under upstream faults on all three endpoints: chat completions, Messages and Responses.

A stream that fails before any of the answer reached the client is retried like a plain request,
so the client sees the whole answer and no error; one cut after part of the answer was sent ends
with the format's error event (chat: ``data: {"error"}`` and ``[DONE]``; Messages: ``event: error``;
Responses: ``response.failed``), never with a normal finish on half an answer. Chat pass-through is
forwarded to the upstream byte for byte; Messages and Responses pass-through go through the router.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import pytest

from optillm_core import default_registry
from optillm_core.testing import JumpClock
from optillm_router import ModelClientRouter, ProviderRoutingConfig
from optillm_router.testing import RECOVERABLE_STREAM_FAULTS, FakeProviderServer, FaultPlan
from optillm_server import Upstream, create_app
from tests.server.support import serving

pytestmark = pytest.mark.anyio

LIMIT = 60
QUESTION = "What is six times seven?"
SEEDS = 6


@asynccontextmanager
async def proxy_to(server: FakeProviderServer) -> AsyncIterator[str]:
    config = ProviderRoutingConfig(primary=server.spec(), timeout_seconds=1.0)
    async with ModelClientRouter(config, clock=JumpClock()) as router:
        app = create_app(
            client=router,
            model="fake-model",
            upstream=Upstream(server.base_url, "upstream-secret"),
            registry=default_registry(),
            clock=JumpClock(),
            upstream_timeout=1.0,
        )
        async with serving(app) as url:
            yield url.removesuffix("/v1")


def payloads(text: str) -> list[Any]:
    found = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            found.append(data if data == "[DONE]" else json.loads(data))
    return found


def chat_outcome(events: list[Any]) -> tuple[str, bool, bool]:
    text = "".join(
        (c["choices"][0]["delta"].get("content") or "") for c in events if isinstance(c, dict) and c.get("choices")
    )
    failed = any(isinstance(e, dict) and "error" in e for e in events)
    finished = any(isinstance(c, dict) and c.get("choices") and c["choices"][0].get("finish_reason") for c in events)
    return text, failed, finished and not failed


def messages_outcome(events: list[Any]) -> tuple[str, bool, bool]:
    text = "".join(
        e["delta"]["text"] for e in events if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )
    return text, any(e["type"] == "error" for e in events), any(e["type"] == "message_stop" for e in events)


def responses_outcome(events: list[Any]) -> tuple[str, bool, bool]:
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    failed = any(e["type"] == "response.failed" for e in events)
    return text, failed, any(e["type"] == "response.completed" for e in events)


ENDPOINTS: dict[str, tuple[str, Callable[[], dict[str, Any]], Callable[[list[Any]], tuple[str, bool, bool]]]] = {
    "chat": (
        "/v1/chat/completions",
        lambda: {"model": "fake-model", "messages": [{"role": "user", "content": QUESTION}]},
        chat_outcome,
    ),
    "messages": (
        "/v1/messages",
        lambda: {"model": "fake-model", "max_tokens": 200, "messages": [{"role": "user", "content": QUESTION}]},
        messages_outcome,
    ),
    "responses": ("/v1/responses", lambda: {"model": "fake-model", "input": QUESTION}, responses_outcome),
}


async def streamed(url: str, endpoint: str) -> tuple[int, str, bool, bool]:
    path, body, outcome = ENDPOINTS[endpoint]
    async with httpx.AsyncClient(base_url=url, timeout=LIMIT) as http:
        response = await http.post(path, json={**body(), "stream": True})
    if not response.headers["content-type"].startswith("text/event-stream"):
        return response.status_code, "", True, False
    text, failed, finished = outcome(payloads(response.text))
    return response.status_code, text, failed, finished


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_a_stream_that_fails_before_any_answer_is_retried_on_every_endpoint(endpoint: str) -> None:
    faulted = 0
    for seed in range(SEEDS):
        with anyio.fail_after(LIMIT):
            plan = FaultPlan(rate=0.3, kinds=RECOVERABLE_STREAM_FAULTS, seed=seed)
            async with FakeProviderServer("openai", faults=plan) as server, proxy_to(server) as url:
                status, text, failed, finished = await streamed(url, endpoint)
        faulted += sum(server.faults_injected.values())
        assert status == 200, (seed, text)
        assert not failed, seed
        assert finished, seed
        assert "boxed{42}" in text, (seed, text)
    assert faulted > 0


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
async def test_a_stream_cut_after_part_of_the_answer_ends_with_an_error_event_never_a_finish(endpoint: str) -> None:
    with anyio.fail_after(LIMIT):
        async with (
            FakeProviderServer("openai", faults=FaultPlan(rate=1.0, kinds=("cut",))) as server,
            proxy_to(server) as url,
        ):
            status, text, failed, finished = await streamed(url, endpoint)
    assert status == 200
    assert failed
    assert not finished
    assert "upstream-secret" not in text
