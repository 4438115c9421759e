"""Each provider client sends only what its model accepts, and reads the model's thinking in every form.

The servers play real models (``optillm_router._fake_models``): they answer a refused setting or a
limit above the cap with the provider's own 400, so a request that reaches them and succeeds
carried nothing the model refuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from optillm_core import (
    BadRequestError,
    Completion,
    GenerationSettings,
    Message,
    ModelClient,
    ModelProfile,
    Prompt,
    ReasoningDelta,
    ResponseEvent,
    collect_stream,
)
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router._http import HttpPool
from optillm_router._providers import create_provider_client
from optillm_router.testing import FakeOpenAIServer, FakeReply

from .fakes_real import plays
from .fakes_wire import WireServer, json_answer, ndjson_answer, ndjson_lines

pytestmark = pytest.mark.anyio

PROMPT = Prompt(messages=(Message.user("What is 6 x 7?"),), system="Answer briefly.")
GREEDY = GenerationSettings(
    temperature=0.3, top_p=0.9, max_tokens=64_000, seed=5, stop=("\n\n",), n=2, extra={"logprobs": True}
)
"""Everything a strategy might ask for, more than any of these models takes."""
THOUGHT = "Six sevens: 7, 14, 21, 28, 35, 42."
ANSWER = "The answer is 42."


def reply(body: dict[str, Any], choice: int) -> FakeReply:
    return FakeReply(ANSWER, thinking=THOUGHT)


@asynccontextmanager
async def client_for(provider: str, base_url: str, model: str) -> AsyncIterator[ModelClient]:
    async with HttpPool() as http:
        yield create_provider_client(provider, model=model, api_key="sk-test", base_url=base_url, http=http)


async def complete_and_stream(client: ModelClient, settings: GenerationSettings) -> tuple[Completion, Completion]:
    completion = await client.complete(PROMPT, settings)
    async with client.stream(PROMPT, settings) as events:
        streamed = await collect_stream(events, settings.n)
    return completion, streamed


# provider, model: what must hold of every body sent, and whether the answer comes with visible thinking
OPENAI_WIRE: list[tuple[str, str, dict[str, Any], bool]] = [
    (
        "openai",
        "o3-mini",
        {"max_completion_tokens": 64_000, "temperature": None, "top_p": None, "logprobs": None, "seed": 5},
        False,  # hidden: only counted in usage
    ),
    (
        "openai",
        "o1-mini",
        {"max_completion_tokens": 64_000, "temperature": None, "max_tokens": None, "stop": ["\n\n"]},
        False,
    ),
    (
        "openai",
        "gpt-4o-mini",
        {"max_completion_tokens": 16_384, "temperature": 0.3, "top_p": 0.9, "logprobs": True, "max_tokens": None},
        False,
    ),
    ("llamacpp", "deepseek-r1", {"max_tokens": 32_768, "temperature": 0.3, "n": None}, True),
    (
        "custom",
        "deepseek-reasoner",
        {"max_tokens": 32_768, "temperature": None, "top_p": None, "logprobs": None, "n": None},
        True,
    ),
    ("groq", "llama-3.1-8b-instant", {"max_tokens": 64_000, "logprobs": None, "n": None}, False),
]


@pytest.mark.parametrize(
    ("provider", "model", "expected", "shows_thinking"), OPENAI_WIRE, ids=[m for _, m, *_ in OPENAI_WIRE]
)
async def test_openai_wire_bodies_carry_only_what_the_model_takes(
    provider: str, model: str, expected: dict[str, Any], shows_thinking: bool
) -> None:
    async with (
        FakeOpenAIServer(real_model=model, reply=reply) as server,
        client_for(provider, server.base_url, model) as client,
    ):
        results = await complete_and_stream(client, GREEDY)
    assert [r.status for r in server.chat_requests] == [200] * len(server.chat_requests)
    for request in server.chat_requests:
        assert {name: request.body.get(name) for name in expected} == expected
    for completion in results:
        assert completion.texts == (ANSWER, ANSWER)
        assert tuple(t.strip() for t in completion.thinking) == ((THOUGHT, THOUGHT) if shows_thinking else ())


async def test_the_groq_model_refuses_n_and_logprobs_and_the_profile_keeps_them_off_the_wire() -> None:
    async with FakeOpenAIServer(real_model="llama-3.1-8b-instant", reply=reply) as server, HttpPool() as http:
        # A client whose profile wrongly promised native n gets Groq's refusal.
        unaware = create_provider_client(
            "custom", model="m", api_key=None, base_url=server.base_url, http=http, profile=ModelProfile(native_n=True)
        )
        with pytest.raises(BadRequestError, match="'n' : number must be at most 1"):
            await unaware.complete(PROMPT, GenerationSettings(n=2))
        async with client_for("groq", server.base_url, "llama-3.1-8b-instant") as client:
            await client.complete(PROMPT, GREEDY.with_(temperature=0))
    sent = server.chat_requests[1:]
    assert len(sent) == 2 and all(r.status == 200 for r in sent)
    assert all(r.body["temperature"] == 1e-8 and "n" not in r.body and "logprobs" not in r.body for r in sent)


async def test_o1_mini_gets_the_system_text_in_its_first_user_turn() -> None:
    async with (
        FakeOpenAIServer(real_model="o1-mini", reply=reply) as server,
        client_for("openai", server.base_url, "o1-mini") as client,
    ):
        await client.complete(PROMPT)
    assert server.chat_requests[0].body["messages"] == [
        {"role": "user", "content": "Answer briefly.\n\nWhat is 6 x 7?"}
    ]


@pytest.mark.parametrize(
    ("provider", "model"), [("openai", "o3-mini"), ("openai", "gpt-4o-mini"), ("llamacpp", "deepseek-r1")]
)
async def test_no_output_limit_is_sent_when_none_is_given(provider: str, model: str) -> None:
    async with (
        FakeOpenAIServer(real_model=model, reply=reply) as server,
        client_for(provider, server.base_url, model) as client,
    ):
        await complete_and_stream(client, GenerationSettings())
    for request in server.chat_requests:
        assert request.status == 200
        assert "max_tokens" not in request.body and "max_completion_tokens" not in request.body


async def test_hidden_reasoning_is_reported_in_usage_only() -> None:
    async with FakeOpenAIServer(real_model="o3-mini", reply=reply) as server:
        async with client_for("openai", server.base_url, "o3-mini") as client:
            completion = await client.complete(PROMPT)
        raw = await _raw_json(server.base_url, {"model": "o3-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert completion.text == ANSWER and completion.reasoning == ""
    assert completion.usage.output_tokens == len(ANSWER.split()) + len(THOUGHT.split())
    assert raw["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert "reasoning_content" not in raw["choices"][0]["message"]


async def _raw_json(base_url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with HttpPool() as http, http.session(base_url).post(base_url + "/chat/completions", json=body) as response:
        payload: dict[str, Any] = await response.json()
        return payload


# -- Anthropic ----------------------------------------------------------------------------------------------

THINK = {"thinking": {"type": "enabled", "budget_tokens": 2048}}


async def test_claude_opus_4_7_gets_no_sampling_settings_and_thinks_in_blocks() -> None:
    async with (
        WireServer(plays("claude-opus-4-7", thinking=THOUGHT)) as server,
        client_for("anthropic", server.url, "claude-opus-4-7") as client,
    ):
        results = await complete_and_stream(client, GREEDY.with_(extra=THINK))
        plain = await client.complete(PROMPT)
    assert len(server.requests) == 5  # n=2 fanned out twice, then one plain request
    for request in server.requests[:4]:
        assert request.body["max_tokens"] == 32_000
        assert not {"temperature", "top_p", "seed", "n", "logprobs"} & request.body.keys()
        assert request.body["stop_sequences"] == ["\n\n"]
        assert request.body["system"] == "Answer briefly."
    for completion in results:
        assert completion.texts == ("The answer is 42.",) * 2
        assert completion.thinking == (THOUGHT, THOUGHT)
    assert server.requests[4].body["max_tokens"] == 4096  # required: the profile's default
    assert plain.thinking == ()  # thinking not enabled: none shown


async def test_claude_sonnet_4_gets_temperature_or_top_p_and_its_cap() -> None:
    async with (
        WireServer(plays("claude-sonnet-4")) as server,
        client_for("anthropic", server.url, "claude-sonnet-4-20250514") as client,
    ):
        await client.complete(PROMPT, GenerationSettings(temperature=1.5, top_p=0.9, max_tokens=100_000))
        await client.complete(PROMPT, GenerationSettings(top_p=0.9))
    first, second = (r.body for r in server.requests)
    assert (first["temperature"], first["max_tokens"]) == (1.0, 64_000)
    assert "top_p" not in first
    assert second["top_p"] == 0.9


# -- Gemini -------------------------------------------------------------------------------------------------


async def test_gemini_thought_parts_are_the_thinking() -> None:
    thoughts = {"thinkingConfig": {"includeThoughts": True}}
    async with (
        WireServer(plays("gemini-2.5-flash", thinking=THOUGHT)) as server,
        client_for("gemini", server.url, "gemini-2.5-flash") as client,
    ):
        completion, streamed = await complete_and_stream(
            client, GREEDY.with_(stop=tuple("abcdef"), max_tokens=100_000, extra=thoughts)
        )
    for request in server.requests:
        config = request.body["generationConfig"]
        assert config["maxOutputTokens"] == 65_536
        assert config["stopSequences"] == list("abcde")
        assert config["candidateCount"] == 2
    assert completion.texts == ("The answer is 42.",) * 2
    assert completion.thinking == (THOUGHT, THOUGHT)
    assert streamed.texts[0] == "The answer is 42." and streamed.thinking[0] == THOUGHT


# -- Ollama native ------------------------------------------------------------------------------------------


async def test_ollama_message_thinking_is_the_thinking() -> None:
    done = {"done": True, "done_reason": "stop", "prompt_eval_count": 3, "eval_count": 9}
    answers = [
        json_answer({"message": {"role": "assistant", "content": ANSWER, "thinking": THOUGHT}, **done}),
        ndjson_answer(
            ndjson_lines(
                {"message": {"role": "assistant", "content": "", "thinking": "Six sevens:"}, "done": False},
                {"message": {"role": "assistant", "content": "", "thinking": " 42."}, "done": False},
                {"message": {"role": "assistant", "content": ANSWER}, "done": False},
                {"message": {"role": "assistant", "content": ""}, **done},
            )
        ),
    ]
    async with WireServer(answers) as server, client_for("ollama", server.url, "qwen3:8b") as client:
        completion, streamed = await complete_and_stream(client, GenerationSettings())
    assert (completion.text, completion.reasoning) == (ANSWER, THOUGHT)
    assert (streamed.text, streamed.reasoning) == (ANSWER, "Six sevens: 42.")


# -- the router's own paths ---------------------------------------------------------------------------------


async def test_a_tags_model_streams_its_answer_apart_from_its_thinking_through_the_router() -> None:
    async with FakeOpenAIServer(real_model="deepseek-r1", reply=reply) as server:
        spec = ProviderSpec("llamacpp", "deepseek-r1", base_url=server.base_url)
        async with (
            ModelClientRouter(ProviderRoutingConfig.single(spec)) as router,
            router.stream(PROMPT, GenerationSettings(n=2)) as events,
        ):
            seen = [event async for event in events]
    for index in (0, 1):
        text = "".join(e.delta for e in seen if e.type == "output_text_delta" and e.index == index)
        thought = "".join(e.delta for e in seen if isinstance(e, ReasoningDelta) and e.index == index)
        assert (text, thought.strip()) == (ANSWER, THOUGHT)


async def test_the_routers_fan_out_inside_a_stream_keeps_the_thinking() -> None:
    async with FakeOpenAIServer(real_model="deepseek-reasoner", reply=reply) as server:
        spec = ProviderSpec("custom", "deepseek-reasoner", base_url=server.base_url, api_key="x")
        async with ModelClientRouter(ProviderRoutingConfig.single(spec)) as router:
            events: list[ResponseEvent] = [e async for e in router.request_stream(PROMPT, GenerationSettings(n=2))]
    thinking = [e for e in events if isinstance(e, ReasoningDelta)]
    assert sorted(e.index for e in thinking) == [0, 1]
    assert all(e.delta == THOUGHT for e in thinking)
