"""Every generation setting reaches the wire, in the place each provider expects it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from optillm_core import (
    BadRequestError,
    GenerationSettings,
    InvalidConfiguration,
    Message,
    ModelClient,
    ModelProfile,
    Prompt,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    collect_stream,
)
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec, model_profile
from optillm_router._http import HttpPool
from optillm_router._providers import PROVIDERS, create_provider_client
from optillm_router.testing import FakeOpenAIServer

from .fakes_wire import Scripted, WireServer, fixture_chunks, json_answer, ndjson_answer, speaks, sse_answer

pytestmark = pytest.mark.anyio

KEY = "sk-test-SECRET-0123456789"
PROMPT = Prompt(
    messages=(Message.system("replaced"), Message.user("Q1"), Message.assistant("A1"), Message.user("Q2")),
    system="SYS",
)
FULL = GenerationSettings(temperature=0.5, top_p=0.9, max_tokens=77, stop=("END", "STOP"), seed=7)
OPENAI_MESSAGES = [
    {"role": "system", "content": "SYS"},
    {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "Q2"},
]


@asynccontextmanager
async def client_for(provider: str, base_url: str, **kwargs: Any) -> AsyncIterator[ModelClient]:
    async with HttpPool() as http:
        yield create_provider_client(
            provider, model=kwargs.pop("model", "m"), api_key=KEY, base_url=base_url, http=http, **kwargs
        )


# -- OpenAI-compatible ------------------------------------------------------------------------------


async def test_openai_body_and_headers() -> None:
    async with FakeOpenAIServer() as server, client_for("openai", server.base_url) as client:
        await client.complete(PROMPT, FULL.with_(n=2, extra={"logprobs": True}))
        async with client.stream(PROMPT, FULL) as events:
            await collect_stream(events)
    plain, streamed = server.chat_requests
    assert plain.body == {
        "model": "m",
        "messages": OPENAI_MESSAGES,
        "temperature": 0.5,
        "top_p": 0.9,
        "max_completion_tokens": 77,
        "n": 2,
        "stop": ["END", "STOP"],
        "seed": 7,
        "logprobs": True,
    }
    assert streamed.body == {
        "model": "m",
        "messages": OPENAI_MESSAGES,
        "temperature": 0.5,
        "top_p": 0.9,
        "max_completion_tokens": 77,
        "stop": ["END", "STOP"],
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert plain.headers["Authorization"] == f"Bearer {KEY}"


async def test_native_n_returns_every_choice_from_one_request() -> None:
    async with FakeOpenAIServer() as server, client_for("vllm", server.base_url) as client:
        completion = await client.complete(Prompt.from_query("hi"), GenerationSettings(n=3, max_tokens=5))
        async with client.stream(Prompt.from_query("hi"), GenerationSettings(n=2)) as events:
            streamed = await collect_stream(events, 2)
    assert len(server.chat_requests) == 2
    assert server.chat_requests[0].body["max_tokens"] == 5
    assert server.chat_requests[0].body["n"] == 3
    assert [t.startswith(f"Reply {i} ") for i, t in enumerate(completion.texts)] == [True] * 3
    assert completion.finish_reasons == ("stop", "stop", "stop")
    assert [t.startswith(f"Reply {i} ") for i, t in enumerate(streamed.texts)] == [True] * 2


async def test_server_that_ignores_n_is_reported() -> None:
    def one_choice(body: Any) -> Any:
        return json_answer({"choices": [{"index": 0, "message": {"content": "x"}, "finish_reason": "stop"}]})

    async with WireServer(one_choice) as server, client_for("vllm", server.url + "/v1") as client:
        with pytest.raises(ProtocolError, match="returned 1 choice"):
            await client.complete(PROMPT, GenerationSettings(n=2))


async def test_groq_fans_n_out_and_sends_zero_temperature_as_1e_8() -> None:
    async with FakeOpenAIServer(native_n=False) as server, client_for("groq", server.base_url) as client:
        completion = await client.complete(PROMPT, GenerationSettings(n=3, temperature=0))
    assert len(completion.texts) == 3
    assert len(server.chat_requests) == 3
    for request in server.chat_requests:
        assert "n" not in request.body
        assert request.body["temperature"] == 1e-8


@pytest.mark.parametrize("provider", ["vllm", "llamacpp", "ollama-openai", "custom", "openrouter", "groq"])
async def test_compatible_providers_send_max_tokens(provider: str) -> None:
    async with FakeOpenAIServer() as server, client_for(provider, server.base_url) as client:
        await client.complete(PROMPT, GenerationSettings(max_tokens=9, temperature=0.25))
    body = server.chat_requests[0].body
    assert body["max_tokens"] == 9
    assert body["temperature"] == 0.25
    assert "max_completion_tokens" not in body


async def test_stop_sequences_beyond_the_limit_keep_the_first_ones() -> None:
    async with FakeOpenAIServer() as server, client_for("openai", server.base_url) as client:
        await client.complete(PROMPT, GenerationSettings(stop=("a", "b", "c", "d", "e")))
    assert server.chat_requests[0].body["stop"] == ["a", "b", "c", "d"]


async def test_temperature_above_the_provider_maximum_is_lowered_to_it() -> None:
    async with FakeOpenAIServer() as server, client_for("openai", server.base_url) as client:
        await client.complete(PROMPT, GenerationSettings(temperature=2.5))
    assert server.chat_requests[0].body["temperature"] == 2.0


@pytest.mark.parametrize(
    ("provider", "wire", "suffix"),
    [("groq", "openai", "/v1"), ("anthropic", "anthropic", ""), ("ollama", "ollama", "")],
)
async def test_logprobs_are_left_out_where_unsupported(provider: str, wire: Any, suffix: str) -> None:
    async with WireServer(speaks(wire)) as server, client_for(provider, server.url + suffix) as client:
        await client.complete(PROMPT, GenerationSettings(extra={"logprobs": True, "top_logprobs": 2}))
    body = server.last.body
    assert "logprobs" not in body and "top_logprobs" not in body
    assert "logprobs" not in body.get("options", {})


async def test_a_silent_server_times_out() -> None:
    async with (
        WireServer([Scripted(hold=True)]) as server,
        client_for("vllm", server.url + "/v1", timeout=0.2) as client,
    ):
        with pytest.raises(ProviderTimeout, match=r"vllm did not answer within 0\.2 s"):  # the whole request
            await client.complete(PROMPT)
        with pytest.raises(ProviderTimeout, match="vllm timed out"):  # a stream: the wait for a read
            async with client.stream(PROMPT) as events:
                await collect_stream(events)


async def test_a_profile_can_be_given() -> None:
    profile = ModelProfile(native_n=True, temperature_max=None, logprobs=False)
    async with FakeOpenAIServer() as server, client_for("custom", server.base_url, profile=profile) as client:
        assert client.supports_native_n
        assert client.profile == profile
        await client.complete(PROMPT, GenerationSettings(n=2))
    assert server.chat_requests[0].body["n"] == 2


async def test_error_inside_a_200_body() -> None:
    payload = {"error": {"message": "Upstream provider failed", "code": 502}}
    async with WireServer([json_answer(payload)]) as server, client_for("openrouter", server.url + "/v1") as client:
        with pytest.raises(ProviderUnavailable, match="Upstream provider failed") as caught:
            await client.complete(PROMPT)
    assert caught.value.status_code == 502


# -- Anthropic --------------------------------------------------------------------------------------


async def test_anthropic_body_and_headers() -> None:
    answer = sse_answer(fixture_chunks("anthropic_stream.txt"))
    async with WireServer([answer]) as server, client_for("anthropic", server.url, model="claude-test") as client:
        settings = FULL.with_(seed=None, extra={"top_k": 5})
        async with client.stream(PROMPT, settings) as events:
            await collect_stream(events)
    request = server.last
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.body == {
        "model": "claude-test",
        "max_tokens": 77,
        "messages": [
            {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A1"},
            {"role": "user", "content": "Q2"},
        ],
        "system": "SYS",
        "temperature": 0.5,
        "top_p": 0.9,
        "stop_sequences": ["END", "STOP"],
        "top_k": 5,
        "stream": True,
    }


async def test_anthropic_defaults_max_tokens_and_fans_n_out() -> None:
    answer = json_answer({"content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {}})
    async with WireServer([answer]) as server, client_for("anthropic", server.url) as client:
        completion = await client.complete(Prompt.from_query("hi"), GenerationSettings(n=2))
    assert completion.texts == ("ok", "ok")
    assert completion.finish_reasons == ("stop", "stop")
    assert len(server.requests) == 2
    assert all(r.body["max_tokens"] == 4096 and "n" not in r.body and "system" not in r.body for r in server.requests)


async def test_anthropic_gets_what_it_can_honour() -> None:
    async with WireServer(speaks("anthropic")) as server, client_for("anthropic", server.url) as client:
        await client.complete(PROMPT, GenerationSettings(temperature=1.2, seed=3))
    assert server.last.body["temperature"] == 1.0
    assert "seed" not in server.last.body


# -- Gemini -----------------------------------------------------------------------------------------


GEMINI_CONTENTS = [
    {"role": "user", "parts": [{"text": "Q1"}]},
    {"role": "model", "parts": [{"text": "A1"}]},
    {"role": "user", "parts": [{"text": "Q2"}]},
]


async def test_gemini_body_path_and_headers() -> None:
    answer = json_answer(
        {
            "candidates": [
                {"content": {"parts": [{"text": "a"}]}, "finishReason": "STOP", "index": 0},
                {
                    "content": {"parts": [{"text": "thinking", "thought": True}, {"text": "b"}]},
                    "finishReason": "SAFETY",
                    "index": 1,
                },
            ],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 3},
        }
    )
    async with WireServer([answer]) as server, client_for("gemini", server.url, model="models/gemini-test") as client:
        settings = FULL.with_(n=2, extra={"topK": 5, "safetySettings": []})
        completion = await client.complete(PROMPT, settings)
    request = server.last
    assert request.path == "/v1beta/models/gemini-test:generateContent"
    assert request.headers["x-goog-api-key"] == KEY
    assert request.body == {
        "contents": GEMINI_CONTENTS,
        "systemInstruction": {"parts": [{"text": "SYS"}]},
        "safetySettings": [],
        "generationConfig": {
            "temperature": 0.5,
            "topP": 0.9,
            "maxOutputTokens": 77,
            "stopSequences": ["END", "STOP"],
            "seed": 7,
            "candidateCount": 2,
            "topK": 5,
        },
    }
    assert completion.texts == ("a", "b")
    assert completion.finish_reasons == ("stop", "content_filter")
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (4, 5)


async def test_gemini_stream_uses_alt_sse() -> None:
    async with (
        WireServer([sse_answer(fixture_chunks("gemini_stream.txt"))]) as server,
        client_for("gemini", server.url, model="gemini-test") as client,
        client.stream(Prompt.from_query("hi"), GenerationSettings(max_tokens=3)) as events,
    ):
        completion = await collect_stream(events)
    assert server.last.path == "/v1beta/models/gemini-test:streamGenerateContent"
    assert server.last.query == {"alt": "sse"}
    assert server.last.body["generationConfig"] == {"maxOutputTokens": 3}
    assert completion.text == "Hello, wörld"


async def test_gemini_retry_info_sets_retry_after() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}],
        }
    }
    async with WireServer([json_answer(body, status=429)]) as server, client_for("gemini", server.url) as client:
        with pytest.raises(RateLimitError, match="Resource has been exhausted") as caught:
            await client.complete(PROMPT)
    assert caught.value.retry_after == 17.0


async def test_gemini_blocked_prompt() -> None:
    answer = json_answer({"promptFeedback": {"blockReason": "SAFETY"}})
    async with WireServer([answer]) as server, client_for("gemini", server.url) as client:
        with pytest.raises(BadRequestError, match="blocked the prompt: SAFETY"):
            await client.complete(PROMPT)


async def test_gemini_gets_its_first_five_stop_sequences() -> None:
    async with WireServer(speaks("gemini")) as server, client_for("gemini", server.url) as client:
        await client.complete(PROMPT, GenerationSettings(stop=tuple("abcdef")))
    assert server.last.body["generationConfig"]["stopSequences"] == list("abcde")


# -- Ollama native ----------------------------------------------------------------------------------


async def test_ollama_sends_sampling_settings_inside_options() -> None:
    answer = ndjson_answer(fixture_chunks("ollama_stream.ndjson"))
    async with WireServer([answer]) as server, client_for("ollama", server.url, model="llama-test") as client:
        settings = FULL.with_(extra={"top_k": 5, "keep_alive": "5m", "num_ctx": 8192})
        async with client.stream(PROMPT, settings) as events:
            await collect_stream(events)
    request = server.last
    assert request.path == "/api/chat"
    assert request.body == {
        "model": "llama-test",
        "messages": OPENAI_MESSAGES,
        "stream": True,
        "keep_alive": "5m",
        "options": {
            "temperature": 0.5,
            "top_p": 0.9,
            "seed": 7,
            "num_predict": 77,
            "stop": ["END", "STOP"],
            "top_k": 5,
            "num_ctx": 8192,
        },
    }


async def test_ollama_json_call_has_stream_false() -> None:
    answer = json_answer({"message": {"content": "hi"}, "done": True, "done_reason": "stop", "eval_count": 1})
    async with WireServer([answer]) as server, client_for("ollama", server.url) as client:
        completion = await client.complete(Prompt.from_query("hi"))
    assert server.last.body == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": False}
    assert completion.text == "hi"
    assert completion.finish_reasons == ("stop",)


# -- the factory ------------------------------------------------------------------------------------


async def test_unknown_provider_lists_the_valid_ones() -> None:
    async with HttpPool() as http:
        with pytest.raises(InvalidConfiguration, match="unknown provider 'opneai'; valid providers: anthropic, custom"):
            create_provider_client("opneai", model="m", api_key=None, base_url=None, http=http)


async def test_vendor_endpoint_without_a_key_is_a_configuration_error() -> None:
    async with HttpPool() as http:
        with pytest.raises(InvalidConfiguration, match="ANTHROPIC_API_KEY"):
            create_provider_client("anthropic", model="m", api_key=None, base_url=None, http=http)
        with pytest.raises(InvalidConfiguration, match="GEMINI_API_KEY or GOOGLE_API_KEY"):
            create_provider_client("gemini", model="m", api_key="", base_url=None, http=http)
        with pytest.raises(InvalidConfiguration, match="needs a base_url"):
            create_provider_client("custom", model="m", api_key=None, base_url=None, http=http)
        with pytest.raises(InvalidConfiguration, match="takes no base_url"):
            create_provider_client("local", model="smollm2", api_key=None, base_url="http://127.0.0.1:1", http=http)
        with pytest.raises(InvalidConfiguration, match="timeouts must be positive"):
            create_provider_client("vllm", model="m", api_key=None, base_url=None, http=http, timeout=0)
        local_server = create_provider_client(
            "openai", model="m", api_key=None, base_url="http://127.0.0.1:1/v1", http=http
        )
        assert local_server.model_name == "m"


def test_provider_table() -> None:
    assert set(PROVIDERS) == {
        "openai", "groq", "openrouter", "vllm", "llamacpp", "ollama-openai", "custom",
        "anthropic", "gemini", "ollama", "local",
    }  # fmt: skip
    assert PROVIDERS["groq"].default_base_url == "https://api.groq.com/openai/v1"
    assert PROVIDERS["ollama"].default_base_url == "http://localhost:11434"
    assert PROVIDERS["ollama-openai"].default_base_url == "http://localhost:11434/v1"
    assert PROVIDERS["anthropic"].profile.temperature_max == 1.0
    assert not any(PROVIDERS[p].profile.native_n for p in ("llamacpp", "anthropic", "groq", "ollama-openai"))
    assert PROVIDERS["openai"].profile.native_n


async def test_clients_expose_provider_and_profile_and_hide_the_key() -> None:
    async with HttpPool() as http:
        client = create_provider_client("groq", model="llama-3", api_key=KEY, base_url=None, http=http)
        assert getattr(client, "provider", None) == "groq"
        assert client.profile == model_profile("groq", "llama-3")
        assert KEY not in repr(client)


async def test_a_plain_answer_that_stops_halfway_times_out_as_a_whole() -> None:
    async with (
        WireServer([Scripted(chunks=(b'{"choices": [{"index": 0, ',), hold=True)]) as server,
        client_for("vllm", server.url + "/v1", timeout=0.2) as client,
    ):
        with anyio.fail_after(5), pytest.raises(ProviderTimeout, match=r"vllm did not answer within 0\.2 s"):
            await client.complete(PROMPT)


@pytest.mark.parametrize(("client_timeout", "route_timeout"), [(0.2, 0.2), (30.0, 0.2)])
async def test_a_router_attempt_ends_at_the_route_timeout(client_timeout: float, route_timeout: float) -> None:
    """The client's own timeout bounds an attempt when it is no longer than the route's; else the route's does."""
    spec = ProviderSpec(provider="vllm", model="m", base_url="http://127.0.0.1:1/v1", timeout_seconds=route_timeout)
    async with WireServer([Scripted(hold=True)]) as server, HttpPool() as http:

        def factory(spec: ProviderSpec, key: str | None) -> ModelClient:
            url = server.url + "/v1"
            return create_provider_client(
                "vllm", model="m", api_key=key, base_url=url, http=http, timeout=client_timeout
            )

        router = ModelClientRouter(ProviderRoutingConfig.single(spec).with_max_retries(0), client_factory=factory)
        with anyio.fail_after(5), pytest.raises(ProviderTimeout, match=r"did not answer within 0\.2 s"):
            await router.complete(PROMPT)


async def test_a_request_sent_again_after_a_learned_400_is_still_bounded() -> None:
    """The second sending, without the refused setting, gets a whole-request timeout of its own."""
    refusal = {
        "error": {
            "message": "Unsupported parameter: 'seed' is not supported with this model.",
            "type": "invalid_request_error",
            "param": "seed",
            "code": "unsupported_parameter",
        }
    }
    async with (
        WireServer([json_answer(refusal, status=400), Scripted(hold=True)]) as server,
        client_for("vllm", server.url + "/v1", timeout=0.2) as client,
    ):
        with anyio.fail_after(5), pytest.raises(ProviderTimeout, match=r"vllm did not answer within 0\.2 s"):
            await client.complete(PROMPT, GenerationSettings(seed=7))
        assert [("seed" in r.body) for r in server.requests] == [True, False]
