"""LEAP and the prover-verifier game through optillm-router against the local fake OpenAI server."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import AuthenticationError
from optillm_core.testing import sequential_depth
from optillm_reasoning import LeapOptimizer, PvgOptimizer
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeOpenAIServer, Fault, count_words

from ._support import FEW_SHOT, FINAL, HIGH_LEVEL, PVG_QUERY, REFINED, LeapModel, PvgModel

pytestmark = pytest.mark.anyio

SYSTEM = "Answer with a number."


def last_user(body: dict[str, Any]) -> str:
    return next(str(m["content"]) for m in reversed(body["messages"]) if m["role"] == "user")


def router_for(server: FakeOpenAIServer, provider: str = "custom") -> ModelClientRouter:
    spec = ProviderSpec(provider=provider, model="fake-model", base_url=server.base_url, api_key="test")
    return ModelClientRouter(ProviderRoutingConfig.single(spec))


def wire_tokens(server: FakeOpenAIServer) -> int:
    return sum(count_words(str(m.get("content", ""))) for r in server.chat_requests for m in r.messages)


class LeapServerModel:
    """LeapModel on the wire: the fake server gives the request body, not a Prompt."""

    def __init__(self) -> None:
        self.model = LeapModel()

    def __call__(self, body: dict[str, Any], choice: int) -> str:
        reply = self.model.answer(last_user(body))
        return reply if isinstance(reply, str) else reply.text


async def test_leap_through_the_router_runs_five_round_trips_with_its_settings_on_the_wire() -> None:
    async with (
        FakeOpenAIServer(reply=LeapServerModel(), native_n=False, latency=0.02) as server,
        router_for(server) as client,
    ):
        solution = await LeapOptimizer().optimize(FEW_SHOT, client, system_prompt=SYSTEM)
    bodies = [r.body for r in server.chat_requests]
    assert len(bodies) == 7
    assert sequential_depth(server.intervals()) == 5
    assert all(b["messages"][0] == {"role": "system", "content": SYSTEM} for b in bodies)
    mistakes = [b for b in bodies if "deliberate mistake" in last_user(b)]
    assert [b.get("temperature") for b in mistakes] == [0.7, 0.7]
    assert all("temperature" not in b for b in bodies if b not in mistakes)
    assert {b.get("max_tokens") for b in bodies} == {4096}
    assert HIGH_LEVEL in last_user(bodies[-1])
    assert solution.answer == FINAL
    assert solution.usage.input_tokens == wire_tokens(server)


async def test_leap_through_the_router_ends_on_a_401_with_the_provider_message() -> None:
    def unauthorized(index: int, body: dict[str, Any]) -> Fault | None:
        if "Compare the attempt" not in last_user(body):
            return None
        error = {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}
        return Fault(status=401, body={"error": error})

    async with (
        FakeOpenAIServer(reply=LeapServerModel(), native_n=False, faults=unauthorized) as server,
        router_for(server) as client,
    ):
        with pytest.raises(AuthenticationError, match="Incorrect API key"):
            await LeapOptimizer().optimize(FEW_SHOT, client)


def pvg_server_model(body: dict[str, Any], choice: int) -> str:
    system = next((str(m["content"]) for m in body["messages"] if m["role"] == "system"), "")
    reply = PvgModel().answer(system, last_user(body))
    return reply if isinstance(reply, str) else reply.text


@pytest.mark.parametrize(("provider", "native_n", "calls"), [("vllm", True, 17), ("custom", False, 25)])
async def test_pvg_through_the_router_plays_two_rounds_in_five_round_trips(
    provider: str, native_n: bool, calls: int
) -> None:
    async with (
        FakeOpenAIServer(reply=pvg_server_model, native_n=native_n, latency=0.02) as server,
        router_for(server, provider) as client,
    ):
        optimizer = PvgOptimizer()
        planned = optimizer.planned_calls(client)
        solution = await optimizer.optimize(PVG_QUERY, client, system_prompt=SYSTEM)
    bodies = [r.body for r in server.chat_requests]
    assert len(bodies) == planned == calls
    assert sequential_depth(server.intervals()) == 5
    verifications = [b for b in bodies if "Verify the solution above" in last_user(b)]
    assert len(verifications) == 12
    assert {(b.get("temperature"), b.get("max_tokens")) for b in verifications} == {(0.2, 1024)}
    solvers = [b for b in bodies if "mode:" in str(b["messages"][0]["content"])]
    assert {b.get("temperature") for b in solvers} == {0.7, 0.6}
    assert all(str(b["messages"][0]["content"]).startswith(SYSTEM) for b in bodies)
    assert solution.answer == "12 + 7 = 19. The answer is 19."
    assert solution.metadata.extras["refined_queries"] == [REFINED]
    assert solution.usage.input_tokens == wire_tokens(server)


async def test_pvg_through_the_router_ends_on_a_401_during_verification() -> None:
    def unauthorized(index: int, body: dict[str, Any]) -> Fault | None:
        if "Verify the solution above" not in last_user(body):
            return None
        error = {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key"}
        return Fault(status=401, body={"error": error})

    async with (
        FakeOpenAIServer(reply=pvg_server_model, native_n=False, faults=unauthorized) as server,
        router_for(server) as client,
    ):
        with pytest.raises(AuthenticationError, match="Incorrect API key"):
            await PvgOptimizer().optimize(PVG_QUERY, client)
    assert not any("Write a refined version" in last_user(r.body) for r in server.chat_requests)
