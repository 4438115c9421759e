"""``POST /v1/messages`` through the official anthropic SDK: answers, conversations, settings, strategies, thinking."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import TextBlock, ThinkingBlock

from optillm_core import GenerationSettings, ModelProfile, Prompt, TokenUsage
from optillm_core.testing import FunctionClient, Reply, count_tokens

from .messages_support import USER, messages_proxy
from .support import replying

pytestmark = pytest.mark.anyio


def expected_usage(client: FunctionClient) -> TokenUsage:
    """What the double reported for every call it answered: prompt words in, reply words out."""
    total = TokenUsage()
    for request in client.requests:
        reply = replying(request.prompt, request.settings)
        prompt = sum(count_tokens(m.content) for m in request.messages)
        total = total + TokenUsage(input_tokens=prompt, output_tokens=count_tokens(reply))
    return total


async def test_a_request_without_a_strategy_is_answered_by_the_model_with_its_usage() -> None:
    model = FunctionClient(replying)
    async with messages_proxy(model) as sdk:
        message = await sdk.messages.create(model="m", max_tokens=100, messages=USER)
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.id.startswith("msg_")
    assert message.model == "m"
    assert message.content == [TextBlock(type="text", text="reply to Q")]
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (1, 3)
    [request] = model.requests
    assert request.settings.max_tokens == 100


async def test_a_strategy_answers_with_the_exact_totals_of_every_call() -> None:
    model = FunctionClient(replying)
    async with messages_proxy(model) as sdk:
        message = await sdk.messages.create(model="echo-m", max_tokens=100, messages=USER)
    assert message.content == [TextBlock(type="text", text="reply to final: reply to draft: Q")]
    assert message.model == "echo-m"
    assert message.stop_reason == "end_turn"
    assert [r.user_text for r in model.requests] == ["draft: Q", "final: reply to draft: Q"]
    usage = expected_usage(model)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (usage.input_tokens, usage.output_tokens)


async def test_pipelines_and_optillm_fields_choose_strategies_as_in_chat() -> None:
    model = FunctionClient(replying)
    async with messages_proxy(model) as sdk:
        piped = await sdk.messages.create(model="shout&echo-m", max_tokens=50, messages=USER)
        approach = await sdk.messages.create(
            model="m", max_tokens=50, messages=USER, extra_body={"optillm_approach": "shout"}
        )
        configured = await sdk.messages.create(
            model="echo-m", max_tokens=50, messages=USER, extra_body={"optillm_config": {"drafts": 2}}
        )
    assert approach.content == [TextBlock(type="text", text="REPLY TO SHOUT: Q")]
    assert isinstance(piped.content[0], TextBlock)
    # the second stage answers the original question with the first stage's answer as a draft
    echo_draft = next(r for r in model.requests if r.user_text.startswith("draft: Q\n"))
    assert "REPLY TO SHOUT: Q" in echo_draft.user_text
    assert isinstance(configured.content[0], TextBlock)
    assert sum(r.user_text == "draft: Q" for r in model.requests) == 2


async def test_system_blocks_and_earlier_turns_reach_the_model() -> None:
    model = FunctionClient(replying)
    system: Any = [
        {"type": "text", "text": "Be brief."},
        {"type": "text", "text": "Use French.", "cache_control": {"type": "ephemeral"}},
    ]
    turns: Any = [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": [{"type": "text", "text": "Hello Ada."}]},
        {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "my name?"}]},
    ]
    async with messages_proxy(model) as sdk:
        await sdk.messages.create(model="m", max_tokens=50, system=system, messages=turns)
        await sdk.messages.create(model="shout-m", max_tokens=50, system="Be brief.", messages=turns)
    direct, strategy = model.requests
    assert [(m.role, m.content) for m in direct.messages] == [
        ("system", "Be brief.\n\nUse French."),
        ("user", "My name is Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
    ]
    # a strategy answers the last user message; the earlier turns are context in its system prompt
    assert strategy.user_text == "shout: What is my name?"
    assert strategy.system_text is not None
    assert strategy.system_text.startswith("Be brief.")
    assert "<user>\nMy name is Ada.\n</user>\n<assistant>\nHello Ada.\n</assistant>" in strategy.system_text


async def test_sampling_settings_reach_the_model_and_metadata_stays_behind() -> None:
    model = FunctionClient(replying)
    async with messages_proxy(model) as sdk:
        await sdk.messages.create(
            model="m",
            max_tokens=64,
            messages=USER,
            stop_sequences=["END", "STOP"],
            metadata={"user_id": "u-1"},
            # this SDK version has no arguments for the sampling fields the API still takes
            extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},
        )
    [request] = model.requests
    assert request.settings == GenerationSettings(
        max_tokens=64, temperature=0.5, top_p=0.9, stop=("END", "STOP"), extra={"top_k": 40}
    )


async def test_anthropic_version_and_beta_headers_are_accepted_with_any_value() -> None:
    async with messages_proxy(FunctionClient(replying)) as sdk:
        message = await sdk.messages.create(
            model="m",
            max_tokens=10,
            messages=USER,
            extra_headers={"anthropic-version": "2099-01-01", "anthropic-beta": "anything"},
        )
    assert message.content == [TextBlock(type="text", text="reply to Q")]


def thinking_reply(prompt: Prompt, settings: GenerationSettings) -> Reply:
    return Reply(replying(prompt, settings), thinking="let me see")


async def test_thinking_leads_the_answer_only_when_the_request_asks_for_it() -> None:
    model = FunctionClient(thinking_reply)
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    async with messages_proxy(model) as sdk:
        asked = await sdk.messages.create(model="m", max_tokens=2048, messages=USER, thinking=thinking)
        strategy = await sdk.messages.create(model="echo-m", max_tokens=2048, messages=USER, thinking=thinking)
        plain = await sdk.messages.create(model="m", max_tokens=2048, messages=USER)
    assert asked.content == [
        ThinkingBlock(type="thinking", thinking="let me see", signature=""),
        TextBlock(type="text", text="reply to Q"),
    ]
    assert [block.type for block in strategy.content] == ["thinking", "text"]
    assert plain.content == [TextBlock(type="text", text="reply to Q")]  # never in the text either


@pytest.mark.parametrize(
    ("style", "sent"),
    [
        ("anthropic_blocks", {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        ("gemini_thoughts", {"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}),
        ("reasoning_content", {}),
    ],
)
async def test_thinking_reaches_a_pass_through_model_in_its_provider_s_form(style: str, sent: dict[str, Any]) -> None:
    model = FunctionClient(replying, profile=ModelProfile(thinking=style))
    async with messages_proxy(model) as sdk:
        await sdk.messages.create(
            model="m", max_tokens=2048, messages=USER, thinking={"type": "enabled", "budget_tokens": 1024}
        )
        await sdk.messages.create(
            model="echo-m", max_tokens=2048, messages=USER, thinking={"type": "enabled", "budget_tokens": 1024}
        )
    direct, *strategy = model.requests
    assert dict(direct.settings.extra) == sent
    # strategies set their own limits and temperatures per call: thinking is not sent to them
    assert all(not r.settings.extra for r in strategy)


async def test_an_assistant_turn_last_is_passed_through_as_a_prefill() -> None:
    model = FunctionClient(replying)
    turns: Any = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "The answer is"}]
    async with messages_proxy(model) as sdk:
        await sdk.messages.create(model="m", max_tokens=10, messages=turns)
    [request] = model.requests
    assert [(m.role, m.content) for m in request.messages] == [("user", "Q"), ("assistant", "The answer is")]
