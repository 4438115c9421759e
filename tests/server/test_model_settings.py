"""The proxy on models that refuse settings and that think: the drop/error policy, and thinking in reasoning_content."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from optillm_core import GenerationSettings, Prompt
from optillm_core.testing import DEEPSEEK_REASONER, O3_MINI, FunctionClient, Reply
from tests.server.support import last_user, proxy

pytestmark = pytest.mark.anyio

O3 = O3_MINI.model_copy(update={"seed": False})
R1 = DEEPSEEK_REASONER


def thinking_reply(prompt: Prompt, settings: GenerationSettings) -> Reply:
    return Reply(f"reply to {last_user(prompt)}", thinking=f"thinking about {last_user(prompt)}")


async def test_settings_the_model_refuses_are_left_out_by_default() -> None:
    client = FunctionClient(thinking_reply, profile=O3)
    async with proxy(client) as sdk:
        reply = await sdk.chat.completions.create(
            model="echo-m", messages=[{"role": "user", "content": "Q"}], temperature=0.3, seed=4
        )
    assert reply.choices[0].message.content == "reply to final: reply to draft: Q"
    assert client.refused == []
    assert all(s.temperature is None and s.seed is None for s in client.settings_seen)


@pytest.mark.parametrize("model", ["echo-m", "m"])
async def test_the_error_policy_answers_400_naming_the_setting_before_any_call(model: str) -> None:
    client = FunctionClient(thinking_reply, profile=O3, model_name="o3-mini")
    extra: dict[str, Any] = {"optillm_drop_unsupported": "error"}
    async with proxy(client) as sdk:
        with pytest.raises(openai.BadRequestError) as caught:
            await sdk.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Q"}], temperature=0.3, extra_body=extra
            )
    assert caught.value.status_code == 400
    body: Any = caught.value.body
    assert body["param"] == "temperature"
    assert body["code"] == "unsupported_setting"
    assert "'o3-mini' does not accept temperature" in body["message"]
    assert client.requests == []


async def test_the_servers_policy_applies_when_the_request_names_none() -> None:
    client = FunctionClient(thinking_reply, profile=O3)
    async with proxy(client, drop_unsupported="error") as sdk:
        with pytest.raises(openai.BadRequestError):
            await sdk.chat.completions.create(model="echo-m", messages=[{"role": "user", "content": "Q"}], seed=1)
        ok = await sdk.chat.completions.create(model="echo-m", messages=[{"role": "user", "content": "Q"}])
    assert ok.choices[0].message.content


async def test_a_strategys_answer_carries_the_final_calls_thinking_in_reasoning_content() -> None:
    client = FunctionClient(thinking_reply, profile=R1)
    async with proxy(client) as sdk:
        reply = await sdk.chat.completions.create(model="echo-m", messages=[{"role": "user", "content": "Q"}])
    message: Any = reply.choices[0].message
    assert message.content == "reply to final: reply to draft: Q"
    assert message.reasoning_content == "thinking about final: reply to draft: Q"


async def test_a_streamed_strategy_answer_sends_thinking_apart_from_the_content() -> None:
    client = FunctionClient(thinking_reply, profile=R1)
    async with proxy(client) as sdk:
        stream = await sdk.chat.completions.create(
            model="echo-m", messages=[{"role": "user", "content": "Q"}], stream=True
        )
        content, reasoning = [], []
        async for chunk in stream:
            for choice in chunk.choices:
                delta: Any = choice.delta
                content.append(delta.content or "")
                reasoning.append(getattr(delta, "reasoning_content", None) or "")
    assert "".join(content) == "reply to final: reply to draft: Q"
    assert "".join(reasoning) == "thinking about final: reply to draft: Q"


async def test_pass_through_a_client_keeps_tag_thinking_out_of_the_content() -> None:
    client = FunctionClient(thinking_reply)  # no profile: thinks in <think> tags in the text
    async with proxy(client) as sdk:
        reply = await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Q"}])
        stream = await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "Q"}], stream=True)
        content, reasoning = [], []
        async for chunk in stream:
            for choice in chunk.choices:
                delta: Any = choice.delta
                content.append(delta.content or "")
                reasoning.append(getattr(delta, "reasoning_content", None) or "")
    message: Any = reply.choices[0].message
    assert message.content == "reply to Q"
    assert message.reasoning_content == "thinking about Q"
    assert "".join(content).strip() == "reply to Q"
    assert "".join(reasoning).strip() == "thinking about Q"
