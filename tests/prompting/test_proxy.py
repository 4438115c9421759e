"""Both strategies through the proxy with the installed strategies: model prefixes, pipelines, streams, tools."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import GenerationSettings, Prompt, default_registry
from optillm_core.testing import FunctionClient, Reply

from ..server.support import last_user, proxy
from ..tools_support import CALL

pytestmark = pytest.mark.anyio

QUESTION = "What is 12 + 7?"
USER: list[Any] = [{"role": "user", "content": QUESTION}]
WEATHER_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
COT_REPLY = "<thinking>2 + 7 = 9, so 19; or \\boxed{0}?</thinking>\n<output>12 + 7 = 19.</output>"


def model(prompt: Prompt, settings: GenerationSettings) -> str | Reply:
    """Answers each call by what it asks: MoA's critique, CoT reflection's format, anything else plainly."""
    text = last_user(prompt)
    if "<output>" in (prompt.system_text() or ""):
        return Reply("", tool_calls=(CALL,)) if settings.tools else COT_REPLY
    if "Review every candidate" in text:
        return "Candidate 1 is right."
    if settings.tools:
        return Reply("", tool_calls=(CALL,))
    return "12 + 7 = 19."


async def test_re2_then_moa_rereads_first_and_moa_answers_with_the_draft() -> None:
    client = FunctionClient(model)
    async with proxy(client, registry=default_registry()) as sdk:
        response = await sdk.chat.completions.create(model="re2&moa-m", messages=USER)
    assert response.choices[0].message.content == "12 + 7 = 19."
    first, *moa = client.requests
    assert first.user_text == f"{QUESTION}\n\nRead the question again: {QUESTION}"
    assert len(moa) == 5  # three candidates (no native n), the critique, the synthesis
    assert all("Draft answer:\n12 + 7 = 19." in r.user_text for r in moa)


async def test_moa_then_re2_rereads_the_handoff_in_its_one_call() -> None:
    client = FunctionClient(model)
    async with proxy(client, registry=default_registry()) as sdk:
        response = await sdk.chat.completions.create(model="moa&re2-m", messages=USER, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in response if c.choices])
    assert text == "12 + 7 = 19."
    last = client.requests[-1]
    assert len(client.requests) == 6
    assert "Draft answer:" in last.user_text
    assert "\n\nRead the question again: " in last.user_text


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_cot_reflection_through_the_proxy_answers_with_the_output_section_only(stream: bool) -> None:
    client = FunctionClient(model)
    async with proxy(client, registry=default_registry()) as sdk:
        if stream:
            chunks = await sdk.chat.completions.create(model="cot_reflection-m", messages=USER, stream=True)
            content = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
        else:
            response = await sdk.chat.completions.create(model="cot_reflection-m", messages=USER, temperature=0.1)
            content = response.choices[0].message.content or ""
            assert response.usage is not None and response.usage.total_tokens > 0
    assert content == "12 + 7 = 19."
    (request,) = client.requests
    assert request.settings.temperature == (0.6 if stream else 0.1)


@pytest.mark.parametrize("name", ["re2", "cot_reflection"])
async def test_with_tools_the_one_call_answers_with_a_tool_call(name: str) -> None:
    client = FunctionClient(model)
    async with proxy(client, registry=default_registry()) as sdk:
        response = await sdk.chat.completions.create(model=f"{name}-m", messages=USER, tools=[WEATHER_TOOL])
    (choice,) = response.choices
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].id == CALL.id
    (request,) = client.requests
    assert request.settings.tools is not None and request.user_text == QUESTION
