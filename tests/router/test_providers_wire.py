"""Behaviour every wire format shares: parsing answers and streams, error mapping, faults, cancellation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import anyio
import pytest

from optillm_core import (
    ClientError,
    Completed,
    GenerationSettings,
    ModelClient,
    ModelRequestsBlocked,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ProviderUnavailable,
    RateLimitError,
    collect_stream,
)
from optillm_router._http import HttpPool
from optillm_router._providers import create_provider_client

from .fakes_wire import (
    FIXTURES,
    STATUS_ERRORS,
    Scripted,
    WireFormat,
    WireServer,
    fixture_chunks,
    json_answer,
    ndjson_answer,
    ndjson_lines,
    speaks,
    sse_answer,
    sse_events,
)

pytestmark = pytest.mark.anyio

KEY = "sk-test-SECRET-0123456789"
PROMPT = Prompt.from_query("Say hello")


class StreamAnswer(Protocol):
    def __call__(self, chunks: Iterable[bytes], *, hold: bool = False) -> Scripted: ...


@dataclass(frozen=True)
class Wire:
    """How one wire format answers: a success, a stream, an error body, faults mid-stream."""

    provider: str
    model: str
    base_suffix: str
    answer: Scripted
    stream_fixture: str
    stream: StreamAnswer
    first_stream_frame: bytes
    error_body: Callable[[str], object]
    stream_error: list[bytes]

    def __str__(self) -> str:
        return self.provider


OPENAI = Wire(
    provider="vllm",
    model="gpt-test",
    base_suffix="/v1",
    answer=json_answer(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-test",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "Hello, wörld"}, "finish_reason": "length"}
            ],
            "usage": {"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40},
        }
    ),
    stream_fixture="openai_stream.txt",
    stream=sse_answer,
    first_stream_frame=sse_events({"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]})[0],
    error_body=lambda message: {"error": {"message": message, "type": "invalid_request_error", "code": None}},
    stream_error=sse_events(
        {"choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": None}]},
        {"error": {"message": "The server had an error while processing your request.", "type": "server_error"}},
    ),
)
ANTHROPIC = Wire(
    provider="anthropic",
    model="claude-test",
    base_suffix="",
    answer=json_answer(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": [{"type": "text", "text": "Hello, "}, {"type": "text", "text": "wörld"}],
            "stop_reason": "max_tokens",
            "stop_sequence": None,
            "usage": {"input_tokens": 20, "cache_read_input_tokens": 5, "output_tokens": 15},
        }
    ),
    stream_fixture="anthropic_stream.txt",
    stream=sse_answer,
    first_stream_frame=b"".join(
        sse_events(
            (
                "message_start",
                {"type": "message_start", "message": {"model": "claude-test", "usage": {"input_tokens": 3}}},
            ),
            ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hel"}}),
        )
    ),
    error_body=lambda message: {"type": "error", "error": {"type": "invalid_request_error", "message": message}},
    stream_error=sse_events(
        ("content_block_delta", {"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hel"}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    ),
)
GEMINI = Wire(
    provider="gemini",
    model="gemini-test",
    base_suffix="",
    answer=json_answer(
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": "Hello, wörld"}]},
                    "finishReason": "MAX_TOKENS",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 25, "candidatesTokenCount": 15, "totalTokenCount": 40},
            "modelVersion": "gemini-test",
        }
    ),
    stream_fixture="gemini_stream.txt",
    stream=sse_answer,
    first_stream_frame=sse_events({"candidates": [{"content": {"parts": [{"text": "Hel"}]}, "index": 0}]})[0],
    error_body=lambda message: {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}},
    stream_error=sse_events(
        {"candidates": [{"content": {"parts": [{"text": "Hel"}]}, "index": 0}]},
        {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}},
    ),
)
OLLAMA = Wire(
    provider="ollama",
    model="llama-test",
    base_suffix="",
    answer=json_answer(
        {
            "model": "llama-test",
            "message": {"role": "assistant", "content": "Hello, wörld"},
            "done": True,
            "done_reason": "length",
            "prompt_eval_count": 25,
            "eval_count": 15,
        }
    ),
    stream_fixture="ollama_stream.ndjson",
    stream=ndjson_answer,
    first_stream_frame=ndjson_lines({"message": {"role": "assistant", "content": "Hel"}, "done": False})[0],
    error_body=lambda message: {"error": message},
    stream_error=ndjson_lines(
        {"message": {"role": "assistant", "content": "Hel"}, "done": False},
        {"error": "an error was encountered while running the model: unexpected EOF"},
    ),
)
WIRES = [OPENAI, ANTHROPIC, GEMINI, OLLAMA]
wires = pytest.mark.parametrize("wire", WIRES, ids=str)


@asynccontextmanager
async def serve(wire: Wire, *answers: Scripted) -> AsyncIterator[tuple[WireServer, ModelClient]]:
    async with WireServer(list(answers)) as server, HttpPool() as http:
        client = create_provider_client(
            wire.provider, model=wire.model, api_key=KEY, base_url=server.url + wire.base_suffix, http=http
        )
        yield server, client


async def collect(client: ModelClient, settings: GenerationSettings | None = None) -> list[object]:
    async with client.stream(PROMPT, settings) as events:
        return [event async for event in events]


async def call(client: ModelClient, *, streaming: bool) -> object:
    if streaming:
        return await collect(client)
    return await client.complete(PROMPT)


@wires
async def test_json_answer(wire: Wire) -> None:
    async with serve(wire, wire.answer) as (_, client):
        completion = await client.complete(PROMPT)
    assert completion.texts == ("Hello, wörld",)
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (25, 15)
    assert completion.finish_reasons == ("length",)
    assert completion.truncated()


@wires
async def test_stream_transcript(wire: Wire) -> None:
    async with serve(wire, wire.stream(fixture_chunks(wire.stream_fixture))) as (_, client):
        events = await collect(client)
    deltas = [e for e in events if isinstance(e, OutputTextDelta)]
    assert "".join(d.delta for d in deltas) == "Hello, wörld"
    assert len(deltas) == 2
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.usage is not None
    assert (done.usage.input_tokens, done.usage.output_tokens) == (25, 15)
    assert done.finish_reasons == ("length",)


@wires
async def test_request_collected_from_stream_matches(wire: Wire) -> None:
    async with (
        serve(wire, wire.stream(fixture_chunks(wire.stream_fixture))) as (_, client),
        client.stream(PROMPT) as events,
    ):
        completion = await collect_stream(events)
    assert completion.text == "Hello, wörld"
    assert completion.usage.total_tokens == 40


@wires
@pytest.mark.parametrize(("status", "cls"), STATUS_ERRORS)
@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
async def test_error_statuses(wire: Wire, status: int, cls: type[ClientError], streaming: bool) -> None:
    body = json.dumps(wire.error_body(f"failure {status}; key was {KEY}")).encode()
    answer = Scripted(status=status, chunks=(body,), headers={"retry-after": "4"})
    async with serve(wire, answer) as (_, client):
        with pytest.raises(cls) as caught:
            await call(client, streaming=streaming)
    error = caught.value
    assert type(error) is cls
    assert error.status_code == status
    assert error.provider == wire.provider
    assert error.retry_after == 4.0
    assert f"failure {status}" in str(error)
    assert wire.provider in str(error)
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert KEY not in repr(client)


@wires
async def test_retry_after_ms_wins(wire: Wire) -> None:
    body = json.dumps(wire.error_body("slow down")).encode()
    answer = Scripted(status=429, chunks=(body,), headers={"retry-after-ms": "250", "retry-after": "9"})
    async with serve(wire, answer) as (_, client):
        with pytest.raises(RateLimitError) as caught:
            await client.complete(PROMPT)
    assert caught.value.retry_after == 0.25


@wires
async def test_non_json_error_body_is_quoted(wire: Wire) -> None:
    answer = Scripted(status=502, chunks=(b"<html><body>502 Bad Gateway</body></html>",), content_type="text/html")
    async with serve(wire, answer) as (_, client):
        with pytest.raises(ProviderUnavailable, match="502 Bad Gateway"):
            await client.complete(PROMPT)


@wires
async def test_malformed_json_answer(wire: Wire) -> None:
    async with serve(wire, Scripted(chunks=(b'{"id": "x", "choices": [',))) as (_, client):
        with pytest.raises(ProtocolError, match="malformed JSON"):
            await client.complete(PROMPT)


@wires
async def test_malformed_stream_frame(wire: Wire) -> None:
    frame = b"data: {not json\n\n" if wire.stream is sse_answer else b"{not json\n"
    async with serve(wire, wire.stream([wire.first_stream_frame, frame])) as (_, client):
        with pytest.raises(ProtocolError, match="malformed JSON"):
            await collect(client)


@wires
@pytest.mark.parametrize("keep", [0.5, 0.97])
async def test_stream_cut_in_the_middle(wire: Wire, keep: float) -> None:
    whole = (FIXTURES / wire.stream_fixture).read_bytes()
    async with serve(wire, wire.stream([whole[: int(len(whole) * keep)]])) as (_, client):
        with pytest.raises(ProtocolError):
            await collect(client)


@wires
async def test_stream_ending_without_its_last_frame(wire: Wire) -> None:
    async with serve(wire, wire.stream([wire.first_stream_frame])) as (_, client):
        with pytest.raises(ProtocolError, match="ended before"):
            await collect(client)


@wires
async def test_error_in_the_middle_of_a_stream(wire: Wire) -> None:
    async with serve(wire, wire.stream(wire.stream_error)) as (_, client):
        with pytest.raises(ProviderUnavailable) as caught:
            await collect(client)
    assert caught.value.provider == wire.provider


@wires
async def test_cancelling_a_stream_closes_the_connection(wire: Wire) -> None:
    async with serve(wire, wire.stream([wire.first_stream_frame], hold=True)) as (server, client):
        with anyio.fail_after(10):
            async with client.stream(PROMPT) as events:
                first = await anext(events)
                assert isinstance(first, OutputTextDelta)
            await server.disconnected.wait()


@wires
async def test_cancelling_the_task_closes_the_connection(wire: Wire) -> None:
    async with serve(wire, wire.stream([wire.first_stream_frame], hold=True)) as (server, client):
        got_first = anyio.Event()

        async def consume() -> None:
            async with client.stream(PROMPT) as events:
                async for _ in events:
                    got_first.set()

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await got_first.wait()
                tg.cancel_scope.cancel()
            await server.disconnected.wait()


@wires
@pytest.mark.parametrize("streaming", [False, True], ids=["json", "stream"])
async def test_network_guard_blocks_remote_hosts_before_connecting(wire: Wire, streaming: bool) -> None:
    async with HttpPool() as http:
        client = create_provider_client(
            wire.provider,
            model=wire.model,
            api_key=KEY,
            base_url="https://models.invalid" + wire.base_suffix,
            http=http,
        )
        with pytest.raises(ModelRequestsBlocked, match=r"models\.invalid"):
            await call(client, streaming=streaming)


SPEAKING = [
    ("vllm", "openai", "/v1"),
    ("groq", "openai", "/v1"),
    ("anthropic", "anthropic", ""),
    ("gemini", "gemini", ""),
    ("ollama", "ollama", ""),
]


@pytest.mark.parametrize(("provider", "wire", "suffix"), SPEAKING, ids=[s[0] for s in SPEAKING])
async def test_speaking_fakes_round_trip(provider: str, wire: WireFormat, suffix: str) -> None:
    prompt = Prompt.from_query("two words", system="be brief")
    async with WireServer(speaks(wire, lambda r: "one two three")) as server, HttpPool() as http:
        client = create_provider_client(provider, model="m", api_key=KEY, base_url=server.url + suffix, http=http)
        plain = await client.complete(prompt, GenerationSettings(n=2, max_tokens=8))
        async with client.stream(prompt) as events:
            streamed = await collect_stream(events)
    assert plain.texts == ("one two three", "one two three")
    assert streamed.text == "one two three"
    assert streamed.finish_reasons == ("stop",)
    assert (streamed.usage.input_tokens, streamed.usage.output_tokens) == (4, 3)
    assert plain.usage.output_tokens == 6
    assert len(server.requests) == (2 if client.supports_native_n else 3)
