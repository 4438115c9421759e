"""Ollama's native ``/api/chat``: sampling settings inside ``options``, NDJSON streaming."""

from __future__ import annotations as _annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from optillm_core import (
    Completed,
    Completion,
    FinishReason,
    GenerationSettings,
    ModelProfile,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
)

from .._sse import iter_ndjson_lines
from ._common import HttpModelClient, json_object, map_finish, wire_messages

__all__ = ("OllamaClient",)

CHAT_PATH = "/api/chat"
TOP_LEVEL_EXTRA = frozenset({"format", "keep_alive", "think", "tools"})
"""``settings.extra`` keys sent at the top level; every other key (``top_k``, ``num_ctx``…) goes in ``options``."""

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


class OllamaClient(HttpModelClient):
    """``POST {base_url}/api/chat`` with ``stream`` false (JSON) or true (NDJSON).

    A thinking model's ``message.thinking`` comes back as the thinking.
    """

    max_tokens_fields = frozenset({"num_predict"})

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def build_body(
        self, prompt: Prompt, settings: GenerationSettings, profile: ModelProfile, *, stream: bool
    ) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if settings.temperature is not None:
            options["temperature"] = settings.temperature
        if settings.top_p is not None:
            options["top_p"] = settings.top_p
        if settings.seed is not None:
            options["seed"] = settings.seed
        if settings.max_tokens is not None:
            options["num_predict"] = settings.max_tokens
        if settings.stop:
            options["stop"] = list(settings.stop)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in wire_messages(prompt, profile)],
            "stream": stream,
        }
        for key, value in settings.extra.items():
            (body if key in TOP_LEVEL_EXTRA else options)[key] = value
        if options:
            body["options"] = options
        return body

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        payload = await self.post_json(CHAT_PATH, prompt, settings)
        self._raise_embedded_error(payload)
        message = payload.get("message")
        if not isinstance(message, dict) or not payload.get("done"):
            raise ProtocolError(f"{self.provider} answered without a finished message", provider=self.provider)
        thinking = _thinking(message)
        return Completion(
            texts=(message.get("content") or "",),
            thinking=(thinking,) if thinking else (),
            usage=_usage(payload),
            finish_reasons=(map_finish(_FINISH, payload.get("done_reason") or "stop"),),
            model=payload.get("model") or self.model,
        )

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        final: dict[str, Any] | None = None
        async with self.post_stream(CHAT_PATH, prompt, settings, iter_ndjson_lines) as items:
            async for line in items:
                payload = json_object(self.provider, line)
                self._raise_embedded_error(payload)
                message = payload.get("message") or {}
                thought = _thinking(message)
                if thought:
                    yield ReasoningDelta(delta=thought)
                text = message.get("content")
                if text:
                    yield OutputTextDelta(delta=text)
                if payload.get("done"):
                    final = payload
                    break
        if final is None:
            raise ProtocolError(f"{self.provider} stream ended before its done line", provider=self.provider)
        yield Completed(
            usage=_usage(final),
            finish_reasons=(map_finish(_FINISH, final.get("done_reason") or "stop"),),
            model=final.get("model") or self.model,
        )

    def _raise_embedded_error(self, payload: dict[str, Any]) -> None:
        if payload.get("error"):
            raise self.error(500, {}, json.dumps(payload).encode())


def _thinking(message: dict[str, Any]) -> str:
    value = message.get("thinking")
    return value if isinstance(value, str) else ""


def _usage(payload: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input_tokens=int(payload.get("prompt_eval_count") or 0),
        output_tokens=int(payload.get("eval_count") or 0),
    )
