"""The real-models mode of the fakes refuses what the real models refuse, in the providers' words (models.md)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from optillm_router._fake_models import (
    REAL_MODELS,
    RealModel,
    openai_deltas,
    openai_message,
    real_model,
    refusal,
    shown_thinking,
)
from optillm_router._http import HttpPool
from optillm_router.testing import FakeOpenAIServer, FakeReply

pytestmark = pytest.mark.anyio

USER = [{"role": "user", "content": "hi"}]
SYSTEM = [{"role": "system", "content": "be brief"}, *USER]

# model, request body, the start of the provider's message (None: accepted)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("o3-mini", {"messages": USER}, None),
    ("o3-mini", {"messages": USER, "max_completion_tokens": 100_000, "temperature": 1}, None),
    ("o3-mini", {"messages": USER, "max_tokens": 100}, "Unsupported parameter: 'max_tokens' is not supported"),
    ("o3-mini", {"messages": USER, "temperature": 0.3}, "Unsupported value: 'temperature' does not support 0.3"),
    ("o3-mini", {"messages": USER, "top_p": 0.5}, "Unsupported value: 'top_p' does not support 0.5"),
    ("o3-mini", {"messages": USER, "logprobs": True}, "Unsupported parameter: 'logprobs'"),
    ("o3-mini", {"messages": USER, "max_completion_tokens": 100_001}, "max_completion_tokens is too large: 100001"),
    ("o3-mini", {"messages": SYSTEM}, None),
    ("o1-mini", {"messages": SYSTEM}, "Unsupported value: 'messages[0].role' does not support 'system'"),
    ("gpt-4o-mini", {"messages": USER, "max_tokens": 16_385}, "max_tokens is too large: 16385"),
    ("gpt-4o-mini", {"messages": USER, "max_completion_tokens": 16_384, "n": 3, "logprobs": True}, None),
    ("gpt-4o-mini", {"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "Invalid 'stop': array too long"),
    ("gpt-4o-mini", {"messages": USER, "temperature": 2.5}, "Invalid 'temperature': decimal above maximum value"),
    ("deepseek-r1", {"messages": USER, "n": 2}, "Only one completion choice is allowed"),
    ("deepseek-r1", {"messages": USER, "max_tokens": 32_769}, "max_tokens is too large"),
    ("deepseek-reasoner", {"messages": USER, "logprobs": True}, "Unsupported parameter: 'logprobs'"),
    ("llama-3.1-8b-instant", {"messages": USER, "n": 2}, "'n' : number must be at most 1"),
    ("claude-opus-4-7", {"max_tokens": 10, "messages": USER}, None),
    ("claude-opus-4-7", {"max_tokens": 10, "messages": USER, "temperature": 0}, "`temperature` is deprecated"),
    ("claude-opus-4-7", {"max_tokens": 32_001, "messages": USER}, "max_tokens: 32001 > 32000"),
    ("claude-opus-4-7", {"messages": USER}, "max_tokens: Field required"),
    ("claude-opus-4-7", {"max_tokens": 10, "messages": USER, "seed": 1}, "seed: Extra inputs are not permitted"),
    ("claude-sonnet-4", {"max_tokens": 10, "messages": USER, "temperature": 0.5}, None),
    ("claude-sonnet-4", {"max_tokens": 10, "messages": USER, "temperature": 0.5, "top_p": 0.9}, "`temperature` and"),
    ("claude-sonnet-4", {"max_tokens": 10, "messages": USER, "temperature": 1.5}, "temperature: Input should be"),
    ("claude-3-5-haiku", {"max_tokens": 8_193, "messages": USER}, "max_tokens: 8193 > 8192"),
    ("gemini-2.5-flash", {"contents": [], "generationConfig": {"maxOutputTokens": 65_537}}, "Unable to submit"),
    ("gemini-2.5-flash", {"contents": [], "generationConfig": {"stopSequences": list("abcdef")}}, "Unable to submit"),
    ("gemini-2.5-flash", {"contents": [], "generationConfig": {"maxOutputTokens": 65_536}}, None),
]


@pytest.mark.parametrize(("model", "body", "message"), CASES)
def test_each_model_refuses_as_its_provider_does(model: str, body: dict[str, Any], message: str | None) -> None:
    error = refusal(real_model(model), body)
    if message is None:
        assert error is None
        return
    assert error is not None
    assert error.status == 400
    assert error.message.startswith(message)


def test_each_provider_writes_its_own_error_shape() -> None:
    openai = refusal(real_model("o3-mini"), {"messages": USER, "temperature": 0.3})
    anthropic = refusal(real_model("claude-opus-4-7"), {"messages": USER})
    gemini = refusal(real_model("gemini-2.5-flash"), {"generationConfig": {"maxOutputTokens": 10**6}})
    assert openai is not None and anthropic is not None and gemini is not None
    assert openai.payload["error"]["param"] == "temperature"
    assert openai.payload["error"]["type"] == "invalid_request_error"
    assert anthropic.payload["type"] == "error" and anthropic.payload["error"]["type"] == "invalid_request_error"
    assert gemini.payload["error"]["status"] == "INVALID_ARGUMENT"


def test_thinking_takes_each_models_form() -> None:
    tags, content, hidden = real_model("deepseek-r1"), real_model("deepseek-reasoner"), real_model("o3-mini")
    assert openai_message(tags, "42", "hmm")["content"] == "<think>\nhmm\n</think>\n\n42"
    assert openai_message(content, "42", "hmm") == {"role": "assistant", "content": "42", "reasoning_content": "hmm"}
    assert openai_message(hidden, "42", "hmm") == {"role": "assistant", "content": "42"}
    assert openai_deltas(content, "4 2", "h m")[:2] == [
        {"content": None, "reasoning_content": "h"},
        {"content": None, "reasoning_content": " m"},
    ]
    assert "".join(d["content"] for d in openai_deltas(tags, "4 2", "h m")) == "<think>\nh m\n</think>\n\n4 2"
    claude, gemini = real_model("claude-opus-4-7"), real_model("gemini-2.5-flash")
    assert shown_thinking(claude, {}, "x") == ""  # Anthropic thinks aloud only when asked
    assert shown_thinking(claude, {"thinking": {"type": "enabled"}}, "x") == "x"
    assert shown_thinking(gemini, {"generationConfig": {"thinkingConfig": {"includeThoughts": True}}}, None)


def test_unknown_models_are_named() -> None:
    with pytest.raises(ValueError, match=r"known: .*o3-mini"):
        real_model("gpt-9")
    custom = RealModel("mine", "openai", output_cap=5)
    assert real_model(custom) is custom
    assert set(REAL_MODELS) >= {"o3-mini", "gpt-4o-mini", "deepseek-r1", "claude-opus-4-7", "gemini-2.5-flash"}


async def test_the_fake_server_answers_a_refused_request_with_the_providers_400_and_no_reply() -> None:
    calls: list[int] = []

    def reply(body: dict[str, Any], choice: int) -> str:
        calls.append(choice)
        return "42"

    async with FakeOpenAIServer(real_model="o3-mini", reply=reply) as server, HttpPool() as http:
        session = http.session(server.base_url)
        body = {"model": "o3-mini", "messages": USER, "max_tokens": 5}
        async with session.post(server.base_url + "/chat/completions", json=body) as response:
            status, payload = response.status, await response.json()
        stream = {"model": "o3-mini", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
        async with session.post(server.base_url + "/chat/completions", json=stream) as response:
            frames = [line for line in (await response.text()).splitlines() if line.startswith("data: {")]
    assert status == 400
    assert payload["error"]["code"] == "unsupported_parameter"
    assert calls == [0]  # only the accepted request was answered
    usage = json.loads(frames[-1].removeprefix("data: "))["usage"]
    assert usage["completion_tokens_details"]["reasoning_tokens"] > 0
    assert [r.status for r in server.chat_requests] == [400, 200]


async def test_a_reply_can_bring_its_own_thinking() -> None:
    thinks = FakeOpenAIServer(real_model="deepseek-reasoner", reply=lambda b, c: FakeReply("42", thinking="6x7"))
    async with thinks as server, HttpPool() as http:
        body = {"model": "deepseek-reasoner", "messages": USER}
        async with http.session(server.base_url).post(server.base_url + "/chat/completions", json=body) as response:
            message = (await response.json())["choices"][0]["message"]
    assert message == {"role": "assistant", "content": "42", "reasoning_content": "6x7"}
