"""Helpers for the Messages endpoint tests: the proxy served on loopback, the official anthropic SDK pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from anthropic import AsyncAnthropic
from anthropic.types import Message, MessageParam

from optillm_core import ModelClient
from optillm_server import create_app

from .support import serving, test_registry

USER: list[MessageParam] = [{"role": "user", "content": "Q"}]


def sdk_for(base_url: str, *, api_key: str | None = "not-needed", auth_token: str | None = None) -> AsyncAnthropic:
    """The SDK pointed at a proxy served at ``base_url`` (``…/v1``); it adds ``/v1/messages`` itself."""
    return AsyncAnthropic(base_url=base_url.removesuffix("/v1"), api_key=api_key, auth_token=auth_token, max_retries=0)


@asynccontextmanager
async def messages_proxy(
    client: ModelClient, *, model: str = "m", require_key: str | None = None, **options: Any
) -> AsyncIterator[AsyncAnthropic]:
    """The proxy (with the test strategies unless ``registry`` is given) and the anthropic SDK pointed at it."""
    options.setdefault("registry", test_registry())
    app = create_app(client=client, model=model, require_key=require_key, **options)
    async with serving(app) as base_url:
        sdk = sdk_for(base_url, api_key=require_key or "not-needed")
        try:
            yield sdk
        finally:
            await sdk.close()


@asynccontextmanager
async def raw_proxy(client: ModelClient, **options: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The proxy and a plain HTTP client on its root, for what the SDK hides (the bytes of an event stream)."""
    options.setdefault("registry", test_registry())
    app = create_app(client=client, model="m", **options)
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url.removesuffix("/v1")) as http:
        yield http


def sse_events(text: str) -> list[tuple[str | None, str]]:
    """The (event name, data) pairs of an event stream; comments are left out."""
    events = []
    for frame in text.split("\n\n"):
        name: str | None = None
        data: list[str] = []
        for line in frame.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if name is not None or data:
            events.append((name, "\n".join(data)))
    return events


def blocks(message: Message) -> list[tuple[Any, ...]]:
    """A message's content as tuples: ``("text", text)``, ``("thinking", thinking)``, ``("tool_use", id, name, input)``.

    The SDK's stream helper returns its own block subclasses; tuples compare the same either way.
    """
    shown: list[tuple[Any, ...]] = []
    for block in message.content:
        if block.type == "text":
            shown.append(("text", block.text))
        elif block.type == "thinking":
            shown.append(("thinking", block.thinking))
        elif block.type == "tool_use":
            shown.append(("tool_use", block.id, block.name, block.input))
        else:
            shown.append((block.type,))
    return shown
