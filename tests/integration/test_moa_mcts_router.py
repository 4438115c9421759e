"""MoA and MCTS through optillm-router against the local fake OpenAI server: real HTTP, real wire settings."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import AuthenticationError, Optimizer
from optillm_core.testing import sequential_depth
from optillm_mcts import MctsOptimizer
from optillm_mcts._prompts import EVALUATE, PREDICT_USER
from optillm_moa import MoaOptimizer
from optillm_router import (
    ModelClientRouter,
    ProviderRoutingConfig,
    ProviderSpec,
)
from optillm_router.testing import FakeOpenAIServer, FakeRequest, count_words

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
SYSTEM = "Answer briefly."
ROOT_REPLIES = ("It is 19.", "It is 20.", "It is 21.")


def router_for(server: FakeOpenAIServer, provider: str = "custom", api_key: str = "test") -> Any:
    spec = ProviderSpec(provider=provider, model="fake-model", base_url=server.base_url, api_key=api_key)
    return ModelClientRouter(ProviderRoutingConfig.single(spec))


def last_user(body: dict[str, Any]) -> str:
    return next(str(m["content"]) for m in reversed(body["messages"]) if m["role"] == "user")


def moa_reply(body: dict[str, Any], choice: int) -> str:
    text = last_user(body)
    if "<review>" in text:
        return "12 + 7 = 19."
    if "Review every candidate" in text:
        return "Candidates 1 and 2 are right; 3 is wrong."
    return ("It is 19.", "19", "20")[choice]


class MctsModel:
    """Plays every MCTS role; the evaluation rates the dialogue by the root reply it started with."""

    def __init__(self) -> None:
        self.roots = 0

    def __call__(self, body: dict[str, Any], choice: int) -> str:
        messages = body["messages"]
        text = last_user(body)
        first_reply = next((str(m["content"]) for m in messages if m["role"] == "assistant"), "")
        if text == EVALUATE:
            return {"It is 19.": "0.95", "It is 20.": "Score: 2/10"}.get(first_reply, "0.1")
        if text == PREDICT_USER:
            return "Can you show the working?"
        if not first_reply:
            self.roots += 1
            return ROOT_REPLIES[(self.roots - 1) % len(ROOT_REPLIES)]
        return f"Working for {first_reply!r}: 12 + 7."


def wire_tokens(requests: list[FakeRequest]) -> int:
    return sum(count_words(str(m.get("content", ""))) for r in requests for m in r.messages)


async def run(optimizer: Optimizer[Any], server: FakeOpenAIServer, provider: str = "custom") -> tuple[Any, bool]:
    """The solution, and whether the router took ``n`` as one call (core then counts it as one)."""
    async with router_for(server, provider) as client:
        solution = await optimizer.optimize(QUERY, client, system_prompt=SYSTEM)
        return solution, bool(client.supports_native_n)


async def test_moa_fans_out_over_a_server_without_native_n() -> None:
    async with FakeOpenAIServer(reply=moa_reply, native_n=False, latency=0.02) as server:
        solution, router_takes_n = await run(MoaOptimizer(), server)
    bodies = [r.body for r in server.chat_requests]
    assert solution.answer == "12 + 7 = 19."
    assert len(bodies) == 5
    assert [b.get("temperature") for b in bodies] == [1.0, 1.0, 1.0, 0.1, 0.1]
    assert [b.get("max_tokens") for b in bodies] == [4096, 4096, 4096, 512, 8192]
    assert all(b["messages"][0] == {"role": "system", "content": SYSTEM} for b in bodies)
    assert sequential_depth(server.intervals()) == 3
    # A router that fans n out itself takes the n=3 request as one call; otherwise core fans it out.
    assert solution.metadata.llm_calls == (3 if router_takes_n else 5)
    assert solution.usage.input_tokens == wire_tokens(server.chat_requests)


async def test_moa_sends_one_native_n_request() -> None:
    async with FakeOpenAIServer(reply=moa_reply, native_n=True) as server:
        solution, _ = await run(MoaOptimizer(), server, provider="vllm")
    bodies = [r.body for r in server.chat_requests]
    assert [b.get("n", 1) for b in bodies] == [3, 1, 1]
    assert solution.metadata.extras["candidates"] == ["It is 19.", "19", "20"]
    assert solution.answer == "12 + 7 = 19."


async def test_mcts_answer_follows_the_evaluations() -> None:
    async with FakeOpenAIServer(reply=MctsModel(), native_n=False, latency=0.02) as server:
        solution, router_takes_n = await run(MctsOptimizer(), server)
    bodies = [r.body for r in server.chat_requests]
    assert solution.answer == "It is 19."
    # Two simulations rate two replies, so the root samples two: 2 replies, 2 predicted user turns,
    # 2 rollouts, 2 evaluations.
    assert len(bodies) == 8
    assert sorted({(b.get("temperature"), b.get("max_tokens")) for b in bodies}) == [
        (0.1, 256),
        (1.0, 1024),
        (1.0, 4096),
    ]
    assert sequential_depth(server.intervals()) == 4
    assert solution.metadata.llm_calls == (7 if router_takes_n else 8)
    assert solution.usage.input_tokens == wire_tokens(server.chat_requests)
    assert "[1] visits 1, value 0.950" in solution.reasoning


@pytest.mark.parametrize("optimizer", [MoaOptimizer(), MctsOptimizer()], ids=["moa", "mcts"])
async def test_a_rejected_key_is_a_clear_error_without_the_key(optimizer: Optimizer[Any]) -> None:
    async with (
        FakeOpenAIServer(api_key="the-right-key") as server,
        router_for(server, api_key="sk-wrong-key-123") as client,
    ):
        with pytest.raises(AuthenticationError) as caught:
            await optimizer.optimize(QUERY, client)
    assert "sk-wrong-key-123" not in str(caught.value)
