"""A client that goes away cancels its run: the call in flight is cancelled and no further calls are made."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai
import pytest
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from optillm_core import Completion, GenerationSettings, ModelClient, Prompt, WrapperClient
from optillm_core.testing import FunctionClient
from optillm_router import ModelClientRouter, ProviderRoutingConfig, ProviderSpec
from optillm_router.testing import FakeOpenAIServer
from optillm_server import Upstream, create_app

from .support import last_user, proxy, replying, serving, test_registry

pytestmark = pytest.mark.anyio

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Q"}]


class HangingModel:
    """Draft calls hang until cancelled; every other call answers at once."""

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.cancelled = anyio.Event()
        self.client = FunctionClient(self._reply)

    async def _reply(self, prompt: Prompt, settings: GenerationSettings) -> str:
        if last_user(prompt).startswith("draft:"):
            self.started.set()
            try:
                await anyio.sleep_forever()
            finally:
                self.cancelled.set()
        return replying(prompt, settings)

    def prompts(self) -> list[str]:
        return [last_user(r.prompt) for r in self.client.requests]


async def test_disconnecting_from_a_stream_cancels_the_run() -> None:
    model = HangingModel()
    async with proxy(model.client) as sdk:
        stream = await sdk.chat.completions.create(model="echo-m", messages=USER, stream=True)
        first = await anext(aiter(stream))
        assert first.choices[0].delta.role == "assistant"
        with anyio.fail_after(10):
            await model.started.wait()
        await stream.close()
        with anyio.fail_after(10):
            await model.cancelled.wait()
        # a later request on the same server finishes: the cancelled run made no call meanwhile
        later = await sdk.chat.completions.create(model="shout-m", messages=USER)
    assert later.choices[0].message.content == "REPLY TO SHOUT: Q"
    assert model.prompts() == ["draft: Q", "shout: Q"]


async def test_disconnecting_while_waiting_for_a_complete_answer_cancels_the_run() -> None:
    model = HangingModel()
    async with proxy(model.client) as sdk:
        async with anyio.create_task_group() as tg:

            async def ask() -> None:
                await sdk.chat.completions.create(model="echo-m", messages=USER)

            tg.start_soon(ask)
            with anyio.fail_after(10):
                await model.started.wait()
            tg.cancel_scope.cancel()  # the SDK's request is abandoned and its connection closed
        with anyio.fail_after(10):
            await model.cancelled.wait()
        later = await sdk.chat.completions.create(model="shout-m", messages=USER)
    assert later.choices[0].message.content == "REPLY TO SHOUT: Q"
    assert model.prompts() == ["draft: Q", "shout: Q"]


class CancelWatch(WrapperClient):
    """Sets ``cancelled`` when a call through it is cancelled."""

    def __init__(self, wrapped: ModelClient) -> None:
        super().__init__(wrapped)
        self.cancelled = anyio.Event()

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        try:
            return await self.wrapped.request(prompt, settings)
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise


async def test_a_disconnect_stops_calls_to_the_upstream_through_the_router() -> None:
    drafting = anyio.Event()
    release = anyio.Event()

    async def reply(body: dict[str, Any], choice: int) -> str:
        text = str(body["messages"][-1]["content"])
        if text.startswith("draft:"):
            drafting.set()
            await release.wait()
        return f"reply to {text}"

    async with FakeOpenAIServer(reply=reply, native_n=False) as fake:
        config = ProviderRoutingConfig(ProviderSpec("vllm", "fake-model", base_url=fake.base_url), max_retries=0)
        async with ModelClientRouter(config) as router:
            watch = CancelWatch(router)
            async with proxy(watch, model="fake-model") as sdk:
                stream = await sdk.chat.completions.create(model="echo-fake-model", messages=USER, stream=True)
                await anext(aiter(stream))
                with anyio.fail_after(10):
                    await drafting.wait()
                await stream.close()
                with anyio.fail_after(10):
                    await watch.cancelled.wait()
                release.set()  # the upstream may now answer the abandoned call: nobody is left to use it
                later = await sdk.chat.completions.create(model="shout-fake-model", messages=USER)
    assert later.choices[0].message.content == "REPLY TO SHOUT: Q"
    sent = [r.user_text for r in fake.chat_requests]
    assert sent == ["draft: Q", "shout: Q"]


async def test_requests_still_running_at_shutdown_end_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    model = HangingModel()
    app = create_app(client=model.client, model="m", registry=test_registry())
    failures: list[BaseException] = []
    with caplog.at_level(logging.INFO):
        async with anyio.create_task_group() as tg, serving(app, graceful_seconds=0) as base_url:
            sdk = AsyncOpenAI(base_url=base_url, api_key="unused", max_retries=0)

            async def ask() -> None:
                try:
                    await sdk.chat.completions.create(model="echo-m", messages=USER)
                except openai.APIError as exc:
                    failures.append(exc)
                finally:
                    await sdk.close()

            tg.start_soon(ask)
            with anyio.fail_after(10):
                await model.started.wait()
        # leaving `serving` shut uvicorn down: its zero grace period cancelled the running request
    assert model.cancelled.is_set()
    assert len(failures) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert not any("Exception in ASGI application" in m for m in messages)
    assert not any(record.exc_info for record in caplog.records)


async def test_disconnecting_from_a_pass_through_stream_closes_the_upstream_stream() -> None:
    first_sent = anyio.Event()
    upstream_closed = anyio.Event()
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}],
    }

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield f"data: {json.dumps(chunk)}\n\n".encode()
            first_sent.set()
            await anyio.sleep_forever()
        finally:
            upstream_closed.set()

    async def chat(request: Request) -> Response:
        return StreamingResponse(endless(), media_type="text/event-stream")

    upstream_app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    async with (
        serving(upstream_app) as upstream_url,
        proxy(FunctionClient(replying), upstream=Upstream(upstream_url)) as sdk,
    ):
        stream = await sdk.chat.completions.create(model="m", messages=USER, stream=True)
        first = await anext(aiter(stream))
        assert first.choices[0].delta.content == "Hel"
        await stream.close()
        with anyio.fail_after(10):
            await upstream_closed.wait()
    assert first_sent.is_set()
