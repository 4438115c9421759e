"""The sampling strategies through optillm-router against the local fake OpenAI server: real HTTP and wire settings."""

from __future__ import annotations

import re
from typing import Any

import pytest

from optillm_core import ModelProfile, Optimizer, WrapperClient
from optillm_core.testing import O3_MINI, sequential_depth
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeOpenAIServer, Fault, count_words
from optillm_sampling import (
    BestOfNOptimizer,
    GenSelectOptimizer,
    MajorityVotingOptimizer,
    SelfConsistencyOptimizer,
)

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
SYSTEM = "Answer briefly."
# The fake model's answers, by choice: right, right worded differently, wrong; thinking in tags.
ANSWERS = ("<think>secret working</think>12 + 7 = \\boxed{19}", "The answer is 19.", "\\boxed{20}")


def last_user(body: dict[str, Any]) -> str:
    return next(str(m["content"]) for m in reversed(body["messages"]) if m["role"] == "user")


class FakeModel:
    """Answers samples in turn, rates 19 high and anything else low, and names the first candidate with 19."""

    def __init__(self) -> None:
        self.samples = 0

    def __call__(self, body: dict[str, Any], choice: int) -> str:
        text = last_user(body)
        if "Rate the response" in text:
            return "<think>hmm, 1/10?</think>Rating: 9/10" if "19" in text.split("<response>")[1] else "Rating: 2/10"
        if "Best candidate: N" in text:
            blocks = re.findall(r'<candidate number="(\d+)">\n(.*?)\n</candidate>', text, re.S)
            best = next((number for number, answer in blocks if "19" in answer), "1")
            return f"Candidate {best} is right.\n\nBest candidate: {best}"
        self.samples += 1
        return ANSWERS[(self.samples - 1) % len(ANSWERS)]


def router_for(server: FakeOpenAIServer, provider: str = "custom") -> ModelClientRouter:
    spec = ProviderSpec(provider=provider, model="fake-model", base_url=server.base_url, api_key="test")
    return ModelClientRouter(ProviderRoutingConfig.single(spec))


def wire_tokens(server: FakeOpenAIServer) -> int:
    return sum(count_words(str(m.get("content", ""))) for r in server.chat_requests for m in r.messages)


CASES: list[tuple[Optimizer[Any], int, float, int, float | None, int]] = [
    # (optimizer, samples, sample temperature, judge calls, judge temperature, sequential depth)
    (BestOfNOptimizer(), 3, 1.0, 3, 0.1, 2),
    (SelfConsistencyOptimizer(), 5, 1.0, 0, None, 1),
    (MajorityVotingOptimizer(), 8, 0.6, 0, None, 1),
    (GenSelectOptimizer(), 4, 0.7, 1, 0.3, 2),
]


@pytest.mark.parametrize(
    ("optimizer", "samples", "temperature", "judges", "judge_temperature", "depth"),
    CASES,
    ids=[c[0].name for c in CASES],
)
async def test_without_native_n_every_sample_is_its_own_request(
    optimizer: Optimizer[Any],
    samples: int,
    temperature: float,
    judges: int,
    judge_temperature: float | None,
    depth: int,
) -> None:
    async with (
        FakeOpenAIServer(reply=FakeModel(), native_n=False, latency=0.02) as server,
        router_for(server) as client,
    ):
        solution = await optimizer.optimize(QUERY, client, system_prompt=SYSTEM)
    bodies = [r.body for r in server.chat_requests]
    sample_bodies = bodies[:samples]
    judge_bodies = bodies[samples:]
    assert len(bodies) == samples + judges
    assert all(b.get("n", 1) == 1 for b in bodies)
    assert {b.get("temperature") for b in sample_bodies} == {temperature}
    assert {b.get("max_tokens") for b in sample_bodies} == {4096}
    assert {b.get("temperature") for b in judge_bodies} <= {judge_temperature}
    assert all(b["messages"][0] == {"role": "system", "content": SYSTEM} for b in bodies)
    assert sequential_depth(server.intervals()) == depth
    assert "19" in solution.answer
    assert "secret" not in solution.answer
    assert not any("secret working" in last_user(b) for b in judge_bodies)
    assert solution.usage.input_tokens == wire_tokens(server)


@pytest.mark.parametrize(
    ("optimizer", "samples", "judges"),
    [(BestOfNOptimizer(), 3, 3), (MajorityVotingOptimizer(), 8, 0), (GenSelectOptimizer(), 4, 1)],
    ids=["bon", "majority_voting", "genselect"],
)
async def test_a_native_n_provider_gets_all_samples_in_one_request(
    optimizer: Optimizer[Any], samples: int, judges: int
) -> None:
    async with FakeOpenAIServer(reply=FakeModel(), native_n=True) as server, router_for(server, "vllm") as client:
        solution = await optimizer.optimize(QUERY, client)
        native = client.supports_native_n
    assert native  # vllm's capabilities declare native n
    assert [r.body.get("n", 1) for r in server.chat_requests] == [samples] + [1] * judges
    assert solution.metadata.llm_calls == 1 + judges
    assert "19" in solution.answer


async def test_majority_voting_reports_the_vote_and_the_thinking_of_its_answer() -> None:
    async with FakeOpenAIServer(reply=FakeModel(), native_n=False) as server, router_for(server) as client:
        solution = await MajorityVotingOptimizer().optimize(QUERY, client)
    extras = solution.metadata.extras
    assert extras["votes"] == {"19": 6, "20": 2}  # 8 samples cycling through right, right, wrong
    assert extras["winner"] == "19"
    assert solution.answer == "12 + 7 = \\boxed{19}"
    assert solution.thinking == "secret working"


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
    error = {"message": message, "type": "invalid_request_error", "param": "temperature"}
    return Fault(status=400, body={"error": error})


@pytest.mark.parametrize("optimizer", [c[0] for c in CASES], ids=[c[0].name for c in CASES])
async def test_a_model_that_refuses_temperature_gets_varied_prompts_and_no_temperature(
    optimizer: Optimizer[Any],
) -> None:
    async with (
        FakeOpenAIServer(reply=FakeModel(), native_n=True, faults=refuse_temperature) as server,
        router_for(server, provider="vllm") as router,
    ):
        solution = await optimizer.optimize(QUERY, RefusesTemperature(router))
    bodies = [r.body for r in server.chat_requests]
    assert all(r.status == 200 for r in server.chat_requests)
    assert all("temperature" not in b and b.get("n", 1) == 1 for b in bodies)
    prompts = [last_user(b) for b in bodies if "Rate the response" not in last_user(b)]
    sample_prompts = [p for p in prompts if "Best candidate: N" not in p]
    assert len(set(sample_prompts)) == len(sample_prompts) > 1
    assert "19" in solution.answer
