"""The server's limits on the Messages endpoint: the same checks as chat completions, in Anthropic's error shape."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from optillm_core import default_registry
from optillm_core.testing import FunctionClient
from optillm_server import ServerLimits, create_app

from .support import replying, serving
from .test_limits import registry

pytestmark = pytest.mark.anyio

LIMIT = 30  # seconds any one exchange may take: only a hang reaches it
USER = [{"role": "user", "content": "What is 12 + 7?"}]


async def post(base_url: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
    with anyio.fail_after(LIMIT):
        async with httpx.AsyncClient(timeout=LIMIT) as http:
            return await http.post(f"{base_url}/messages", json=body, **kwargs)


def anthropic_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["type"] == "error"
    error: dict[str, Any] = payload["error"]
    return error


async def test_a_body_over_the_limit_is_a_413_request_too_large() -> None:
    app = create_app(
        client=FunctionClient(replying), model="m", registry=registry(), limits=ServerLimits(max_body_bytes=4096)
    )
    async with serving(app) as url:
        response = await post(
            url, {"model": "echo-m", "max_tokens": 10, "messages": [{"role": "user", "content": "x" * 8000}]}
        )
    error = anthropic_error(response, 413)
    assert error["type"] == "request_too_large"
    assert response.headers["connection"] == "close"


async def test_a_plan_over_the_call_budget_is_refused_before_any_call() -> None:
    client = FunctionClient(replying)
    app = create_app(client=client, model="m", registry=default_registry(), limits=ServerLimits(max_request_calls=3))
    async with serving(app) as url:
        response = await post(url, {"model": "moa-m", "max_tokens": 50, "messages": USER})
    error = anthropic_error(response, 400)
    assert error["type"] == "invalid_request_error"
    assert "moa" in error["message"] and "--max-request-calls" in error["message"]
    assert client.requests == []


async def test_too_many_messages_are_refused_as_on_chat() -> None:
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(5)]
    app = create_app(
        client=FunctionClient(replying), model="m", registry=registry(), limits=ServerLimits(max_messages=3)
    )
    async with serving(app) as url:
        response = await post(url, {"model": "echo-m", "max_tokens": 10, "messages": turns})
    assert "3" in anthropic_error(response, 400)["message"]


async def test_a_run_the_budget_cut_answers_its_best_so_far_marked() -> None:
    client = FunctionClient(replying)
    app = create_app(client=client, model="m", registry=registry(), limits=ServerLimits(max_request_calls=3))
    async with serving(app) as url:
        response = await post(url, {"model": "greedy-m", "max_tokens": 50, "messages": USER})
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["content"][0]["text"].startswith("reply to round 3")
    assert payload["optillm"]["budget_exhausted"] is True
    assert response.headers["x-optillm-budget-exhausted"] == "calls"
    assert len(client.requests) == 3
