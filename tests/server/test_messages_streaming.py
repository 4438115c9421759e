"""Streamed Messages answers: Anthropic's event sequence, the SDK's stream helpers, pings, thinking, disconnects."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from anthropic.types import ThinkingBlock

from optillm_core import (
    GenerationSettings,
    ModelProfile,
    Optimizer,
    OptimizerConfig,
    Outcome,
    Prompt,
    RunContext,
)
from optillm_core.testing import FunctionClient, Reply

from .messages_support import USER, blocks, messages_proxy, raw_proxy, sse_events
from .support import replying, test_registry
from .test_disconnect import HangingModel
from .test_messages_api import expected_usage

pytestmark = pytest.mark.anyio

BODY = {"model": "m", "max_tokens": 100, "messages": USER, "stream": True}


async def test_a_pass_through_stream_is_anthropic_s_event_sequence() -> None:
    async with raw_proxy(FunctionClient(replying)) as http:
        response = await http.post("/v1/messages", json=BODY, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response.text)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert set(names[2:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    payloads = [json.loads(data) for _, data in events]
    assert all(payload["type"] == name for (name, _), payload in zip(events, payloads, strict=True))
    start = payloads[0]["message"]
    assert start["id"].startswith("msg_")
    assert (start["role"], start["content"], start["stop_reason"]) == ("assistant", [], None)
    assert start["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert payloads[1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    text = "".join(p["delta"]["text"] for p in payloads[2:-3])
    assert {p["delta"]["type"] for p in payloads[2:-3]} == {"text_delta"}
    assert text == "reply to Q"
    assert payloads[-2] == {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"input_tokens": 1, "output_tokens": 3},
    }


async def test_the_sdk_stream_helper_assembles_a_strategy_s_answer_and_usage() -> None:
    model = FunctionClient(replying)
    async with messages_proxy(model) as sdk:
        async with sdk.messages.stream(model="echo-m", max_tokens=100, messages=USER) as stream:
            pieces = [piece async for piece in stream.text_stream]
            final = await stream.get_final_message()
        usage = expected_usage(model)
        async with sdk.messages.stream(model="shout-m", max_tokens=100, messages=USER) as stream:
            shout_pieces = [piece async for piece in stream.text_stream]
    # echo's final call streams live, one word at a time; shout's answer is post-processed: one piece
    assert len(pieces) > 1
    assert "".join(pieces) == "reply to final: reply to draft: Q"
    assert blocks(final) == [("text", "reply to final: reply to draft: Q")]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert shout_pieces == ["REPLY TO SHOUT: Q"]


async def test_stream_true_yields_the_sdk_s_typed_events() -> None:
    async with messages_proxy(FunctionClient(replying)) as sdk:
        stream = await sdk.messages.create(model="m", max_tokens=100, messages=USER, stream=True)
        kinds = [event.type async for event in stream]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_a_working_strategy_sends_progress_comments_and_pings() -> None:
    release = anyio.Event()

    async def slow(prompt: Prompt, settings: GenerationSettings) -> str:
        if prompt.messages[-1].content.startswith("draft:"):
            await release.wait()  # the run waits until the client has seen a ping
        return replying(prompt, settings)

    seen: list[str] = []
    async with raw_proxy(FunctionClient(slow), keepalive_seconds=0.01) as http:
        body = {**BODY, "model": "echo-m"}
        async with http.stream("POST", "/v1/messages", json=body) as response:
            async for line in response.aiter_lines():
                seen.append(line)
                if line == "event: ping":
                    release.set()
    assert seen[0] == "event: message_start"
    assert ": echo started" in seen
    assert 'data: {"type":"ping"}' in seen
    assert seen[-2:] == ['data: {"type":"message_stop"}', ""]


def thinking_reply(prompt: Prompt, settings: GenerationSettings) -> Reply:
    return Reply(replying(prompt, settings), thinking="let me see")


class PonderStrategy(Optimizer[OptimizerConfig]):
    """One plain call: its answer and thinking are known only when the run ends."""

    name = "ponder"
    description = "test strategy: one call, answer and thinking returned whole"

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        completion = await ctx.generate(ctx.prompt(ctx.query))
        return Outcome(answer=completion.text, thinking=completion.reasoning)


async def test_thinking_streams_in_its_own_block_when_the_request_asks_for_it() -> None:
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    reasoner = FunctionClient(thinking_reply, profile=ModelProfile(thinking="reasoning_content"))
    registry = test_registry()
    registry.register(PonderStrategy)
    async with messages_proxy(reasoner, registry=registry) as sdk:
        async with sdk.messages.stream(model="m", max_tokens=2048, messages=USER, thinking=thinking) as stream:
            direct = await stream.get_final_message()
        async with sdk.messages.stream(model="echo-m", max_tokens=2048, messages=USER, thinking=thinking) as stream:
            live = await stream.get_final_message()
        async with sdk.messages.stream(model="ponder-m", max_tokens=2048, messages=USER, thinking=thinking) as stream:
            whole = await stream.get_final_message()
        async with sdk.messages.stream(model="m", max_tokens=2048, messages=USER) as stream:
            unasked = await stream.get_final_message()
    thought = ("thinking", "let me see")
    assert blocks(direct) == [thought, ("text", "reply to Q")]
    # a strategy's thinking is known when it ends: after the text that streamed live, first otherwise
    assert blocks(live) == [("text", "reply to final: reply to draft: Q"), thought]
    assert blocks(whole) == [thought, ("text", "reply to Q")]
    assert blocks(unasked) == [("text", "reply to Q")]
    assert isinstance(direct.content[0], ThinkingBlock)
    assert direct.content[0].signature == ""


async def test_disconnecting_from_a_messages_stream_cancels_the_run() -> None:
    model = HangingModel()
    async with messages_proxy(model.client) as sdk:
        stream = await sdk.messages.create(model="echo-m", max_tokens=100, messages=USER, stream=True)
        first = await anext(aiter(stream))
        assert first.type == "message_start"
        with anyio.fail_after(10):
            await model.started.wait()
        await stream.close()
        with anyio.fail_after(10):
            await model.cancelled.wait()
        later = await sdk.messages.create(model="shout-m", max_tokens=100, messages=USER)
    assert blocks(later) == [("text", "REPLY TO SHOUT: Q")]
    assert model.prompts() == ["draft: Q", "shout: Q"]


async def test_disconnecting_while_waiting_for_a_message_cancels_the_run() -> None:
    model = HangingModel()
    async with messages_proxy(model.client) as sdk:
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                await sdk.messages.create(model="echo-m", max_tokens=100, messages=USER)

            tg.start_soon(ask)
            with anyio.fail_after(10):
                await model.started.wait()
            tg.cancel_scope.cancel()
        with anyio.fail_after(10):
            await model.cancelled.wait()
    assert model.prompts() == ["draft: Q"]
