"""Every installed strategy, through the router, on servers that answer as today's models do.

The fake server plays each model family as models.md describes it: o3-mini refuses temperature
and ``max_tokens`` and hides its thinking, gpt-4o-mini caps output at 16,384 tokens, a DeepSeek-R1
distill behind llama.cpp writes ``<think>`` tags and has no native ``n``; Claude Opus 4.7 refuses
sampling settings, Claude Sonnet 4 takes temperature or top_p but not both, both require
``max_tokens`` and think in blocks, and Gemini thinks in thought parts. A run must complete with
no 400 on the wire and no thinking in its answer or in any prompt built from another call's
output. The model's thinking holds a tentative answer (``\\boxed{0}``), so thinking that leaked
into a candidate, a vote or the answer would show.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from optillm_core import GenerationSettings, default_registry
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router._fake_models import default_thinking
from optillm_router.testing import FakeOpenAIServer
from tests.router.fakes_real import plays
from tests.router.fakes_wire import Received, Scripted, WireServer

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
ANSWER = "12 + 7 = 19, so the answer is \\boxed{19}."
THINKING = default_thinking({})
STRATEGIES = default_registry().names()
FAMILIES = [("openai", "o3-mini"), ("openai", "gpt-4o-mini"), ("llamacpp", "deepseek-r1")]


def plays_every_role(body: dict[str, Any], choice: int) -> str:
    """Answers each strategy's calls by what they ask for, whatever their exact wording."""
    messages = body.get("messages") or []
    everything = "\n".join(str(m.get("content", "")) for m in messages)
    last = str(messages[-1].get("content", "")) if messages else ""
    if "VERDICT:" in everything:
        return "VERDICT: CORRECT\nSCORE: 0.9\nISSUES:\n- none\nSUGGESTIONS:\n- none"
    if "problem-solving strategy" in everything:
        return "- Add the two numbers\n- Check by subtracting one of them"
    if "Rate them" in last or "single number" in last:
        return "0.9"
    if "most likely to send next" in last:
        return "Thanks, that is clear."
    if "Review every candidate" in last:
        return "Candidate 1 is right; the others agree."
    return ANSWER


@pytest.mark.parametrize("caller", [None, GenerationSettings(temperature=0.3)], ids=["defaults", "temperature"])
@pytest.mark.parametrize(("provider", "model"), FAMILIES, ids=[m for _, m in FAMILIES])
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_every_strategy_completes_on_every_model_family(
    strategy: str, provider: str, model: str, caller: GenerationSettings | None
) -> None:
    async with FakeOpenAIServer(real_model=model, reply=plays_every_role) as server:
        spec = ProviderSpec(provider, model, base_url=server.base_url)
        async with ModelClientRouter(ProviderRoutingConfig.single(spec)) as router:
            optimizer = default_registry().create(strategy)
            solution = await optimizer.optimize(QUERY, router, settings=caller, system_prompt="Answer briefly.")
    refused = [(r.status, r.body) for r in server.chat_requests if r.status != 200]
    assert refused == [], f"{strategy} on {model}: {len(refused)} request(s) refused, first: {refused[:1]}"
    assert server.chat_requests, "the run sent no request"
    prompts = [str(m.get("content")) for r in server.chat_requests for m in r.messages]
    assert not [p for p in prompts if THINKING in p], "one call's thinking reached another call's prompt"
    assert "<think>" not in solution.answer and "</think>" not in solution.answer
    assert THINKING not in solution.answer and "\\boxed{0}" not in solution.answer
    assert "19" in solution.answer


def test_the_installed_strategies_are_the_ones_this_test_runs() -> None:
    assert {"moa", "mcts", "mars"} <= set(STRATEGIES)


NATIVE_FAMILIES = [("anthropic", "claude-opus-4-7"), ("anthropic", "claude-sonnet-4"), ("gemini", "gemini-2.5-flash")]


def plays_every_role_natively(received: Received) -> str:
    """``plays_every_role`` for Anthropic and Gemini bodies: their messages are read as one text."""
    body = received.body if isinstance(received.body, dict) else {}
    everything = json.dumps(body.get("messages") or body.get("contents") or [])
    return plays_every_role({"messages": [{"content": everything}]}, 0)


@pytest.mark.parametrize(("provider", "model"), NATIVE_FAMILIES, ids=[m for _, m in NATIVE_FAMILIES])
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_every_strategy_completes_on_claude_and_gemini(strategy: str, provider: str, model: str) -> None:
    caller = GenerationSettings(temperature=0.3)
    script = plays(model, reply=plays_every_role_natively, thinking=THINKING)
    statuses: list[int] = []

    def answering(received: Received) -> Scripted:
        answer = script(received)
        statuses.append(answer.status)
        return answer

    async with WireServer(answering) as server:
        spec = ProviderSpec(provider, model, base_url=server.url, api_key="test-key")
        async with ModelClientRouter(ProviderRoutingConfig.single(spec)) as router:
            optimizer = default_registry().create(strategy)
            solution = await optimizer.optimize(QUERY, router, settings=caller, system_prompt="Answer briefly.")
    assert server.requests, "the run sent no request"
    assert [s for s in statuses if s != 200] == [], f"{strategy} on {model}: a request was refused"
    bodies = [r.body for r in server.requests if isinstance(r.body, dict)]
    if model == "claude-opus-4-7":
        assert not [b for b in bodies if {"temperature", "top_p"} & b.keys()], "sampling settings reached Opus 4.7"
    assert THINKING not in solution.answer and "<think>" not in solution.answer
    assert "19" in solution.answer
