"""The code strategies through optillm-router against the local fake OpenAI server: real HTTP and wire settings."""

from __future__ import annotations

import re
from typing import Any

import pytest

from optillm_code import RtoOptimizer
from optillm_core import ModelProfile, WrapperClient
from optillm_core.testing import O3_MINI, sequential_depth
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeOpenAIServer, Fault, count_words

pytestmark = pytest.mark.anyio

QUERY = "Write a Python function is_even(n) that tells whether n is even."
SYSTEM = "You write short, correct Python."


def last_user(body: dict[str, Any]) -> str:
    return next(str(m["content"]) for m in reversed(body["messages"]) if m["role"] == "user")


class FakeCoder:
    """Writes is_even with ``%`` for the query, describes shown code, writes a bitwise version from a description."""

    def __call__(self, body: dict[str, Any], choice: int) -> str:
        text = last_user(body)
        if "Reply with the final code only" in text:
            return "```python\ndef is_even(n):\n    return n % 2 == 0\n```"
        if "write this exact code again" in text:
            return "Write is_even(n) returning whether n is divisible by two."
        if text.startswith("Write is_even"):
            return "```python\ndef is_even(n):\n    return not n & 1\n```"
        return "<think>easy</think>Sure:\n```python\ndef is_even(n):\n    return n % 2 == 0\n```"


def router_for(server: FakeOpenAIServer, provider: str = "custom") -> ModelClientRouter:
    spec = ProviderSpec(provider=provider, model="fake-model", base_url=server.base_url, api_key="test")
    return ModelClientRouter(ProviderRoutingConfig.single(spec))


def wire_tokens(server: FakeOpenAIServer) -> int:
    return sum(count_words(str(m.get("content", ""))) for r in server.chat_requests for m in r.messages)


async def test_rto_round_trips_over_http_and_merges_the_two_versions() -> None:
    async with FakeOpenAIServer(reply=FakeCoder(), latency=0.02) as server, router_for(server) as client:
        solution = await RtoOptimizer().optimize(QUERY, client, system_prompt=SYSTEM)
    bodies = [r.body for r in server.chat_requests]
    assert len(bodies) == solution.metadata.llm_calls == 4
    assert sequential_depth(server.intervals()) == 4
    assert [b.get("temperature") for b in bodies] == [0.1] * 4
    assert [b.get("max_tokens") for b in bodies] == [4096, 1024, 4096, 4096]
    assert all(b["messages"][0] == {"role": "system", "content": SYSTEM} for b in bodies)
    assert [m["role"] for m in bodies[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert "easy" not in str(bodies[1]["messages"][2]["content"])  # C1's thinking stays out
    assert "return n % 2 == 0" in last_user(bodies[3]) and "return not n & 1" in last_user(bodies[3])
    assert re.search(r"return n % 2 == 0", solution.answer)
    assert solution.usage.input_tokens == wire_tokens(server)


class RefusesTemperature(WrapperClient):
    """The router over a model that refuses temperature, with the profile that says so."""

    @property
    def profile(self) -> ModelProfile:
        return O3_MINI


def refuse_temperature(index: int, body: dict[str, Any]) -> Fault | None:
    """The 400 OpenAI's reasoning models answer a request carrying a temperature with."""
    if "temperature" not in body:
        return None
    message = "Unsupported parameter: 'temperature' is not supported with this model."
    return Fault(status=400, body={"error": {"message": message, "type": "invalid_request_error"}})


async def test_rto_on_a_model_that_refuses_temperature_sends_none() -> None:
    async with (
        FakeOpenAIServer(reply=FakeCoder(), faults=refuse_temperature) as server,
        router_for(server) as router,
    ):
        solution = await RtoOptimizer().optimize(QUERY, RefusesTemperature(router))
    assert all(r.status == 200 for r in server.chat_requests)
    assert all("temperature" not in r.body for r in server.chat_requests)
    assert len(server.chat_requests) == 4
    assert "is_even" in solution.answer
