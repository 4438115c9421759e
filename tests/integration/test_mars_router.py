"""MARS through optillm-router against a local fake OpenAI-compatible server."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import GenerationSettings
from optillm_core.testing import sequential_depth
from optillm_mars import MarsOptimizer, SelectionMethod, _prompts
from optillm_router import (
    ModelClientRouter,
    ProviderRoutingConfig,
    ProviderSpec,
)
from optillm_router.testing import FakeOpenAIServer, count_words

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
SOLUTION = "<think>12 + 7 = 19; 19 - 7 = 12 checks.</think>\nThe sum is 19, so the answer is \\boxed{19}."
VERDICT = "VERDICT: CORRECT\nSCORE: 0.9\nISSUES:\n- none\nSUGGESTIONS:\n- none"
STRATEGY = "- Add the numbers\n- Check by subtracting"


def _system(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "system")


def reply(body: dict[str, Any], choice: int) -> str:
    system = _system(body)
    if _prompts.VERIFIER_SYSTEM in system:
        return VERDICT
    if _prompts.STRATEGIST_SYSTEM in system:
        return STRATEGY
    return SOLUTION


def _max_tokens(body: dict[str, Any]) -> object:
    return body.get("max_tokens", body.get("max_completion_tokens"))


async def test_mars_runs_through_the_router() -> None:
    async with FakeOpenAIServer(reply=reply, latency=0.05) as server:
        spec = ProviderSpec(provider="custom", model="fake-model", base_url=server.base_url, api_key="test")
        async with ModelClientRouter(ProviderRoutingConfig.single(spec)) as router:
            solution = await MarsOptimizer().optimize(QUERY, router, settings=GenerationSettings(max_tokens=8000))

        requests = server.chat_requests
        assert solution.metadata.llm_calls == len(requests) == 32
        assert solution.metadata.extras["selection_method"] == SelectionMethod.BEST_VERIFIED
        assert solution.metadata.extras["final_answer"] == "19"
        assert "\\boxed{19}" in solution.answer

        bodies = [r.body for r in requests]
        assert {_max_tokens(b) for b in bodies} == {8000}
        explorers = [b for b in bodies if "solve this problem on your own" in str(b["messages"][-1]["content"])]
        assert sorted(b["temperature"] for b in explorers) == [0.3, 0.6, 1.0]
        verifiers = [b for b in bodies if _prompts.VERIFIER_SYSTEM in _system(b)]
        assert len(verifiers) == 18
        assert {b["temperature"] for b in verifiers} == {0.1}

        # Usage comes from the server's own counts, exactly.
        assert solution.usage.output_tokens == sum(count_words(reply(b, 0)) for b in bodies)
        assert solution.usage.input_tokens > 0
        assert sequential_depth(server.intervals()) == 5
        assert server.max_in_flight == 18
