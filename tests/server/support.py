"""Helpers for the proxy tests: serving an ASGI app on 127.0.0.1, test strategies, a tool-calling upstream."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio
import anyio.lowlevel
import uvicorn
from openai import AsyncOpenAI
from pydantic import Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from optillm_core import (
    CallRole,
    Completion,
    GenerationSettings,
    ModelClient,
    Optimizer,
    OptimizerConfig,
    OptimizerRegistry,
    Outcome,
    Prompt,
    RunContext,
)
from optillm_core.toolkit import gather
from optillm_server import Upstream, create_app


@asynccontextmanager
async def serving(app: ASGIApp, *, graceful_seconds: int = 5) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in this event loop on a free loopback port; yields its ``/v1`` base URL.

    The socket listens before uvicorn starts, so requests made at once wait in the backlog
    until the app has finished its lifespan start-up.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", timeout_graceful_shutdown=graceful_seconds)
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, [sock])
            try:
                yield f"http://127.0.0.1:{port}/v1"
            finally:
                server.should_exit = True
    finally:
        sock.close()


class EchoConfig(OptimizerConfig):
    drafts: int = Field(default=1, ge=1, le=8)
    temperature: float = 0.3


class EchoStrategy(Optimizer[EchoConfig]):
    """Drafts concurrently, then streams a final generation that is the answer as it is."""

    name = "echo"
    description = "test strategy: drafts, then a streamed final answer"
    config_type = EchoConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"draft": "answer", "final": "final"}

    async def run(self, ctx: RunContext[EchoConfig]) -> Outcome:
        ctx.phase("draft")
        pinned = ctx.config.pinned(temperature="temperature")

        async def draft(index: int) -> Completion:
            settings = ctx.call_settings("answer", temperature=ctx.config.temperature, seed_offset=index, pinned=pinned)
            return await ctx.generate(ctx.prompt(f"draft: {ctx.query}"), settings)

        drafts = await gather(functools.partial(draft, i) for i in range(ctx.config.drafts))
        ctx.phase("final")
        final = await ctx.generate_final(ctx.prompt(f"final: {drafts[0].text}"))
        return Outcome(answer=final.text, thinking=final.reasoning)


class ShoutStrategy(Optimizer[OptimizerConfig]):
    """One call; the answer is post-processed, so it cannot stream live."""

    name = "shout"
    description = "test strategy: one call, upper-cased"

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        completion = await ctx.generate(ctx.prompt(f"shout: {ctx.query}"))
        return Outcome(answer=completion.text.upper())


class BrokenStrategy(Optimizer[OptimizerConfig]):
    """Fails with an unexpected error whose text holds a secret."""

    name = "broken"
    description = "test strategy: raises"

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        raise RuntimeError("boom with sk-abcdefghijklmnopqrstuvwxyz123456")


def test_registry() -> OptimizerRegistry:
    registry = OptimizerRegistry(source=[])
    for strategy in (EchoStrategy, ShoutStrategy, BrokenStrategy):
        registry.register(strategy)
    return registry


test_registry.__test__ = False  # type: ignore[attr-defined]


TOOL_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
LOGPROBS = {"content": [{"token": "x", "logprob": -0.5, "bytes": [120], "top_logprobs": []}]}


class ToolUpstream:
    """An OpenAI-compatible upstream that answers with tool calls and logprobs, recording each request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])])

    def stream_chunks(self) -> list[dict[str, Any]]:
        base = {"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": 1, "model": "tool-model"}
        first_call = {"index": 0, **TOOL_CALL, "function": {"name": "get_weather", "arguments": ""}}
        return [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first_call]}}]},
            {
                **base,
                "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}}],
            },
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Paris"}'}}]}}
                ],
            },
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        ]

    def stream_bytes(self) -> bytes:
        return b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in self.stream_chunks()) + b"data: [DONE]\n\n"

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.bodies.append(body)
        if body.get("stream"):
            payload = self.stream_bytes()

            async def chunks() -> AsyncIterator[bytes]:
                for line in payload.split(b"\n\n"):
                    if line:
                        yield line + b"\n\n"

            return StreamingResponse(chunks(), media_type="text/event-stream")
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]},
                "finish_reason": "tool_calls",
                "logprobs": LOGPROBS,
            }
            for i in range(int(body.get("n") or 1))
        ]
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        return JSONResponse(
            {
                "id": "chatcmpl-tool",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": choices,
                "usage": usage,
            }
        )


def last_user(prompt: Prompt) -> str:
    return next((m.content for m in reversed(prompt.effective_messages()) if m.role == "user"), "")


def replying(prompt: Prompt, settings: GenerationSettings) -> str:
    """The test model: says which prompt it answers, in a few words."""
    return f"reply to {last_user(prompt)}"


@asynccontextmanager
async def proxy(
    client: ModelClient,
    *,
    model: str = "m",
    upstream: Upstream | None = None,
    require_key: str | None = None,
    **options: Any,
) -> AsyncIterator[AsyncOpenAI]:
    """The proxy served on loopback (with the test strategies unless ``registry`` is given), the SDK pointed at it."""
    options.setdefault("registry", test_registry())
    app = create_app(client=client, model=model, upstream=upstream, require_key=require_key, **options)
    async with serving(app) as base_url:
        sdk = AsyncOpenAI(base_url=base_url, api_key=require_key or "not-needed", max_retries=0)
        try:
            yield sdk
        finally:
            await sdk.close()
