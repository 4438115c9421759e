"""Both strategies through optillm-router against the fake OpenAI server playing real models: the wire bodies."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import AnswerDelta, GenerationSettings, Optimizer, OptimizerEvent
from optillm_prompting import CotReflectionOptimizer, Re2Optimizer
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router._fake_models import default_thinking
from optillm_router.testing import FakeOpenAIServer

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
SYSTEM = "Answer briefly."
THINKING = default_thinking({})
COT_REPLY = (
    "<thinking>\n2 + 7 = 9: 19.\n<reflection>19 - 7 = 12.</reflection>\n</thinking>\n<output>\n\\boxed{19}\n</output>"
)


def reply(body: dict[str, Any], choice: int) -> str:
    system = next((str(m["content"]) for m in body["messages"] if m["role"] in ("system", "developer")), "")
    return COT_REPLY if "<output>" in system else "12 + 7 = \\boxed{19}."


def limit(body: dict[str, Any]) -> Any:
    """The output limit as the provider's wire spells it (OpenAI's API: ``max_completion_tokens``)."""
    return body.get("max_completion_tokens", body.get("max_tokens"))


def router_for(server: FakeOpenAIServer, provider: str, model: str) -> ModelClientRouter:
    return ModelClientRouter(ProviderRoutingConfig.single(ProviderSpec(provider, model, base_url=server.base_url)))


FAMILIES = [("openai", "o3-mini"), ("openai", "gpt-4o-mini"), ("llamacpp", "deepseek-r1")]
OPTIMIZERS: list[Optimizer[Any]] = [CotReflectionOptimizer(), Re2Optimizer()]


@pytest.mark.parametrize(("provider", "model"), FAMILIES, ids=[m for _, m in FAMILIES])
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o.name)
async def test_one_request_the_model_accepts_with_the_callers_settings(
    optimizer: Optimizer[Any], provider: str, model: str
) -> None:
    caller = GenerationSettings(temperature=0.3, max_tokens=600, seed=5)
    async with FakeOpenAIServer(real_model=model, reply=reply) as server, router_for(server, provider, model) as router:
        solution = await optimizer.optimize(QUERY, router, settings=caller, system_prompt=SYSTEM)
    (request,) = server.chat_requests
    assert request.status == 200, request.body
    body = request.body
    if model == "o3-mini":
        assert "temperature" not in body
    else:
        assert body["temperature"] == 0.3 and body["seed"] == 5
    assert limit(body) == 600
    assert body.get("n", 1) == 1
    assert "\\boxed{19}" in solution.answer
    assert "<" not in solution.answer.replace("\\boxed{19}", "")  # no tag and no thinking in the answer
    assert THINKING not in solution.answer
    if model == "deepseek-r1":
        assert solution.thinking == THINKING
    assert solution.usage.output_tokens > 0 and solution.metadata.llm_calls == 1


async def test_cot_reflection_keeps_upstreams_defaults_on_the_wire() -> None:
    async with (
        FakeOpenAIServer(real_model="gpt-4o-mini", reply=reply) as server,
        router_for(server, "openai", "gpt-4o-mini") as router,
    ):
        solution = await CotReflectionOptimizer().optimize(QUERY, router)
    (request,) = server.chat_requests
    assert (request.body["temperature"], limit(request.body)) == (0.6, 4096)
    assert request.messages[-1] == {"role": "user", "content": QUERY}
    assert solution.answer == "\\boxed{19}"
    assert "19 - 7 = 12." in solution.reasoning


async def test_re2_streams_its_answer_over_the_wire() -> None:
    events: list[OptimizerEvent] = []
    async with (
        FakeOpenAIServer(real_model="gpt-4o-mini", reply=reply) as server,
        router_for(server, "openai", "gpt-4o-mini") as router,
    ):
        solution = await Re2Optimizer().optimize(QUERY, router, events=events.append)
    (request,) = server.chat_requests
    assert request.body.get("stream") is True
    assert request.user_text == f"{QUERY}\n\nRead the question again: {QUERY}"
    assert "".join(e.delta for e in events if isinstance(e, AnswerDelta)) == solution.answer == "12 + 7 = \\boxed{19}."
