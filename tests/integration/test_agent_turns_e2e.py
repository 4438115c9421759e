"""Every installed strategy serves an agent's turn, through the official SDKs, the proxy and a provider's wire.

The upstream model trusts only real tool turns, as chat models do: when the request offers the
weather tool and the conversation does not end with tool results (``tool`` messages on OpenAI's
wire, ``tool_result`` blocks on Anthropic's), it calls the tool again, whatever text the prompt
holds. An agent loop through a strategy that flattened the earlier tool call and result into text
would therefore never end; each loop here must end in two turns, the second answering from the
tool's result.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from anthropic import AsyncAnthropic
from openai import AsyncOpenAI

from optillm_core import default_registry
from optillm_core.testing import JumpClock
from optillm_router import ModelClientRouter, ProviderRoutingConfig
from optillm_router.testing import FakeProviderServer, HttpWireFormat, tool_caller
from optillm_server import create_app
from tests.server.support import serving

pytestmark = pytest.mark.anyio

LIMIT = 60
TURNS = 4  # an agent's turn limit: a loop that needs more never ends on this model
QUESTION = "What is the weather in Paris?"
PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
OPENAI_TOOL: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The current weather in a city.", "parameters": PARAMETERS},
}
ANTHROPIC_TOOL: Any = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": PARAMETERS,
}

# Small configs so that each loop stays quick; every strategy runs its whole algorithm.
STRATEGIES: dict[str, dict[str, Any]] = {
    "moa": {"num_completions": 2},
    "mars": {"num_agents": 2, "max_iterations": 1, "verification_passes_required": 1},
    "mcts": {"num_simulations": 1, "simulation_depth": 1},
    "bon": {"n": 2},
    "majority_voting": {"k": 3},
    "self_consistency": {"k": 3},
    "genselect": {"n": 2},
}


def test_every_installed_strategy_is_covered() -> None:
    assert {info.name for info in default_registry().infos()} == set(STRATEGIES)


@asynccontextmanager
async def stack(wire: HttpWireFormat) -> AsyncIterator[tuple[str, FakeProviderServer]]:
    """The proxy over a router to a fake ``wire`` provider whose model calls the weather tool until it has a result."""
    server = FakeProviderServer(wire, reply=tool_caller(when="weather", arguments={"city": "Paris"}))
    async with server:
        router = ModelClientRouter(ProviderRoutingConfig(primary=server.spec()), clock=JumpClock())
        async with router:
            app = create_app(client=router, model="fake-model", registry=default_registry())
            async with serving(app) as url:
                yield url, server


def assert_tools_only_where_they_may_answer(server: FakeProviderServer) -> None:
    """Requests that offered the tools carried the earlier tool turns as tool turns; the others offered none."""
    offered = [r for r in server.requests if r.chat.get("tools")]
    assert offered, "no upstream request offered the tools"
    for request in offered:
        roles = [m.get("role") for m in request.chat.get("messages") or ()]
        if "Tools have already been called" in json.dumps(request.chat):
            pytest.fail("a request offering tools carried the tool results as text")
        if any(m.get("role") == "user" and "18 C" in str(m.get("content")) for m in request.chat["messages"]):
            pytest.fail("a tool result reached a request offering tools inside a user message")
        assert roles[0] in ("system", "user")


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_an_openai_sdk_agent_loop_ends_through_every_strategy(strategy: str) -> None:
    config = STRATEGIES[strategy]
    with anyio.fail_after(LIMIT):
        async with stack("openai") as (url, server):
            sdk = AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=0)
            messages: list[Any] = [{"role": "user", "content": QUESTION}]
            for _turn in range(TURNS):
                reply = await sdk.chat.completions.create(
                    model=f"{strategy}-fake-model",
                    messages=messages,
                    tools=[OPENAI_TOOL],
                    extra_body={"optillm_config": config},
                )
                choice = reply.choices[0]
                if not choice.message.tool_calls:
                    break
                assert choice.finish_reason == "tool_calls"
                messages.append(choice.message.model_dump(exclude_none=True))
                for call in choice.message.tool_calls:
                    assert call.function.name == "get_weather"  # type: ignore[union-attr]
                    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
                    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 C"})
            await sdk.close()
    assert len(messages) == 3, f"{strategy}: the agent loop did not end after one tool call"
    assert choice.finish_reason == "stop"
    assert "18 C" in (choice.message.content or "")
    assert_tools_only_where_they_may_answer(server)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
async def test_an_anthropic_sdk_agent_loop_ends_through_every_strategy(strategy: str) -> None:
    config = STRATEGIES[strategy]
    with anyio.fail_after(LIMIT):
        async with stack("anthropic") as (url, server):
            sdk = AsyncAnthropic(base_url=url.removesuffix("/v1"), api_key="not-needed", max_retries=0)
            turns: list[Any] = [{"role": "user", "content": QUESTION}]
            for _turn in range(TURNS):
                async with sdk.messages.stream(
                    model=f"{strategy}-fake-model",
                    max_tokens=300,
                    messages=turns,
                    tools=[ANTHROPIC_TOOL],
                    extra_body={"optillm_config": config},
                ) as events:
                    reply = await events.get_final_message()
                uses = [b for b in reply.content if b.type == "tool_use"]
                if not uses:
                    break
                assert reply.stop_reason == "tool_use"
                turns.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in reply.content]})
                turns.append(
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "18 C"} for u in uses],
                    }
                )
            await sdk.close()
    assert len(turns) == 3, f"{strategy}: the agent loop did not end after one tool call"
    assert reply.stop_reason == "end_turn"
    assert "18 C" in "".join(b.text for b in reply.content if b.type == "text")
    assert_tools_only_where_they_may_answer(server)
