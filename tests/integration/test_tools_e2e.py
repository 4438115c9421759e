"""An agent's tool loop through the whole stack: an official SDK, the proxy, a strategy, the router, a provider's wire.

Each test runs the loop an agent runs: ask with tools, get a tool call back from the strategy's
answer, send the tool's result, get the final text. The upstream is a fault-injecting fake of each
wire format whose model calls the offered tool when asked about the weather (as a chat model does),
and refuses tool turns that do not fit (a result that answers no call, a call left unanswered).
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
from optillm_router.testing import FakeProviderServer, FaultPlan, HttpWireFormat, tool_caller
from optillm_server import create_app
from tests.server.support import serving

pytestmark = pytest.mark.anyio

LIMIT = 60
WIRES: tuple[HttpWireFormat, ...] = ("openai", "anthropic", "gemini", "ollama")
WEATHER: Any = {  # the SDKs type tool params as TypedDicts; this one goes to both
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
QUESTION = "What is the weather in Paris?"
SMALL_MARS = {"num_agents": 2, "max_iterations": 1, "verification_passes_required": 1}


_CALLER = tool_caller(when="weather", arguments={"city": "Paris"})


def reads_results(body: dict[str, Any], choice: int) -> Any:
    """A model that calls the weather tool, and answers once the results are before it.

    Results come as tool messages on pass-through, and inside the last user message when a strategy
    gives them (it renders the calls and results since the question into its query).
    """
    users = [m for m in body.get("messages") or () if m.get("role") == "user"]
    if users and "18 C" in str(users[-1].get("content")):
        return "It is 18 C in Paris."
    return _CALLER(body, choice)


@asynccontextmanager
async def stack(wire: HttpWireFormat, faults: FaultPlan | None = None) -> AsyncIterator[tuple[str, FakeProviderServer]]:
    """The proxy over a router to a fake ``wire`` provider whose model calls tools: its base URL and the fake."""
    server = FakeProviderServer(wire, faults=faults, reply=reads_results)
    async with server:
        router = ModelClientRouter(ProviderRoutingConfig(primary=server.spec()), clock=JumpClock())
        async with router:
            app = create_app(client=router, model="fake-model", registry=default_registry())
            async with serving(app) as url:
                yield url, server


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("strategy", ["moa", "mars"])
async def test_an_openai_agent_loop_through_a_strategy_on_every_wire(wire: HttpWireFormat, strategy: str) -> None:
    config = SMALL_MARS if strategy == "mars" else {}
    with anyio.fail_after(LIMIT):
        async with stack(wire) as (url, server):
            sdk = AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=0)
            messages: list[Any] = [{"role": "user", "content": QUESTION}]
            first = await sdk.chat.completions.create(
                model=f"{strategy}-fake-model",
                messages=messages,
                tools=[WEATHER],
                extra_body={"optillm_config": config},
            )
            choice = first.choices[0]
            assert choice.finish_reason == "tool_calls"
            (call,) = choice.message.tool_calls or []
            assert call.function.name == "get_weather"  # type: ignore[union-attr]
            assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
            messages += [
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "18 C"},
            ]
            final = await sdk.chat.completions.create(
                model=f"{strategy}-fake-model",
                messages=messages,
                tools=[WEATHER],
                extra_body={"optillm_config": config},
            )
            await sdk.close()
    assert final.choices[0].finish_reason == "stop"
    assert "18 C" in (final.choices[0].message.content or "")
    # only the strategies' final calls offered the tools on the provider's wire; its other calls did not
    offered = [bool(r.chat.get("tools")) for r in server.requests]
    assert any(offered) and not all(offered)


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
async def test_an_anthropic_agent_loop_through_moa_streamed(wire: HttpWireFormat) -> None:
    tool: Any = {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "input_schema": WEATHER["function"]["parameters"],
    }
    with anyio.fail_after(LIMIT):
        async with stack(wire) as (url, _server):
            sdk = AsyncAnthropic(base_url=url.removesuffix("/v1"), api_key="not-needed", max_retries=0)
            turns: list[Any] = [{"role": "user", "content": QUESTION}]
            async with sdk.messages.stream(
                model="moa-fake-model", max_tokens=200, messages=turns, tools=[tool]
            ) as events:
                first = await events.get_final_message()
            assert first.stop_reason == "tool_use"
            (use,) = [b for b in first.content if b.type == "tool_use"]
            assert use.name == "get_weather" and use.input == {"city": "Paris"}
            turns += [
                {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 C"}]},
            ]
            async with sdk.messages.stream(
                model="moa-fake-model", max_tokens=200, messages=turns, tools=[tool]
            ) as events:
                final = await events.get_final_message()
            await sdk.close()
    assert final.stop_reason == "end_turn"
    assert "18 C" in "".join(b.text for b in final.content if b.type == "text")


async def test_the_tool_loop_survives_30_percent_transient_faults() -> None:
    for seed in range(3):
        with anyio.fail_after(LIMIT):
            async with stack("openai", FaultPlan(rate=0.3, seed=seed)) as (url, _server):
                sdk = AsyncOpenAI(base_url=url, api_key="not-needed", max_retries=0)
                for stream in (False, True):
                    done: Any
                    if stream:
                        async with sdk.chat.completions.stream(
                            model="moa-fake-model", messages=[{"role": "user", "content": QUESTION}], tools=[WEATHER]
                        ) as events:
                            done = await events.get_final_completion()
                    else:
                        done = await sdk.chat.completions.create(
                            model="moa-fake-model", messages=[{"role": "user", "content": QUESTION}], tools=[WEATHER]
                        )
                    assert done.choices[0].message.tool_calls, (seed, stream)
                await sdk.close()
