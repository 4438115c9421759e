"""A Messages request runs on whatever provider the router serves: MoA over a Gemini model, end to end."""

from __future__ import annotations

import pytest
from anthropic.types import Message

from optillm_core import TokenUsage, default_registry
from optillm_router import ModelClientRouter, ProviderRoutingConfig
from optillm_router.testing import FakeProviderServer, ServedRequest, count_words
from optillm_server import create_app

from .messages_support import USER, blocks, sdk_for
from .support import serving

pytestmark = pytest.mark.anyio

GEMINI = "gemini-2.5-flash"


def served_usage(server: FakeProviderServer, requests: list[ServedRequest]) -> TokenUsage:
    """What the fake reported: prompt words in, the words of every choice's reply out."""
    total = TokenUsage()
    for request in requests:
        prompt = sum(count_words(str(m.get("content", ""))) for m in request.messages)
        n = int(request.chat.get("n") or 1)
        output = sum(count_words(str(server.reply(request.chat, choice))) for choice in range(n))
        total = total + TokenUsage(input_tokens=prompt, output_tokens=output)
    return total


@pytest.mark.parametrize("stream", [False, True])
async def test_moa_over_a_gemini_model_answers_a_messages_request_with_gemini_s_usage(stream: bool) -> None:
    async with FakeProviderServer("gemini", model=GEMINI) as fake:
        config = ProviderRoutingConfig(fake.spec(), max_retries=0)
        async with ModelClientRouter(config) as router:
            app = create_app(client=router, model=GEMINI, registry=default_registry())
            async with serving(app) as base_url:
                sdk = sdk_for(base_url)
                message: Message
                try:
                    if stream:
                        async with sdk.messages.stream(
                            model=f"moa-{GEMINI}", max_tokens=300, system="Answer briefly.", messages=USER
                        ) as events:
                            message = await events.get_final_message()
                    else:
                        message = await sdk.messages.create(
                            model=f"moa-{GEMINI}", max_tokens=300, system="Answer briefly.", messages=USER
                        )
                finally:
                    await sdk.close()
    requests = [r for r in fake.requests if r.status == 200]
    assert len(requests) == len(fake.requests) >= 3  # MoA: proposals, critique, synthesis
    assert all(":generateContent" in r.path or ":streamGenerateContent" in r.path for r in requests)
    assert all(r.body["systemInstruction"]["parts"][0]["text"].startswith("Answer briefly.") for r in requests)
    [(kind, text)] = blocks(message)
    assert kind == "text"
    assert text == fake.reply(requests[-1].chat, 0)  # the synthesis is the answer, as it came
    assert message.model == f"moa-{GEMINI}"
    assert message.stop_reason == "end_turn"
    usage = served_usage(fake, requests)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (usage.input_tokens, usage.output_tokens)
