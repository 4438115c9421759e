"""Anthropic's Messages API: top-level system prompt, required ``max_tokens``, SSE event stream."""

from __future__ import annotations as _annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from optillm_core import (
    ClientError,
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

from .._sse import iter_sse
from ._common import HttpModelClient, json_object, map_finish, wire_messages

__all__ = ("ANTHROPIC_VERSION", "AnthropicClient")

ANTHROPIC_VERSION = "2023-06-01"
MESSAGES_PATH = "/v1/messages"

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class AnthropicClient(HttpModelClient):
    """``POST {base_url}/v1/messages``. The API has no ``n``: the core fans ``n`` > 1 out.

    ``max_tokens`` is required: without one from the caller the profile's default is sent.
    ``thinking`` content blocks (and ``thinking_delta`` events) come back as the thinking.
    """

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def build_body(
        self, prompt: Prompt, settings: GenerationSettings, profile: ModelProfile, *, stream: bool
    ) -> dict[str, Any]:
        turns = wire_messages(prompt, profile)
        # Anthropic has no tool-result role for plain text; such a message is sent as the user's.
        messages = [
            {"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
            for m in turns
            if m.role != "system"
        ]
        body: dict[str, Any] = {"model": self.model}
        if settings.max_tokens is not None:
            body["max_tokens"] = settings.max_tokens
        body["messages"] = messages
        system = "\n\n".join(m.content for m in turns if m.role == "system")
        if system:
            body["system"] = system
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        if settings.top_p is not None:
            body["top_p"] = settings.top_p
        if settings.stop:
            body["stop_sequences"] = list(settings.stop)
        body.update(settings.extra)
        if stream:
            body["stream"] = True
        return body

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        payload = await self.post_json(MESSAGES_PATH, prompt, settings)
        if payload.get("type") == "error":
            raise self._stream_error(payload)
        content = payload.get("content")
        if not isinstance(content, list):
            raise ProtocolError(
                f"{self.provider} answered without content: {str(payload)[:300]}", provider=self.provider
            )
        text = "".join(_block_text(b, "text") for b in content)
        thinking = "".join(_block_text(b, "thinking") for b in content)
        return Completion(
            texts=(text,),
            thinking=(thinking,) if thinking else (),
            usage=_usage(_usage_counts(payload.get("usage"), {})),
            finish_reasons=(map_finish(_FINISH, payload.get("stop_reason")),),
            model=payload.get("model") or self.model,
        )

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        counts: dict[str, int] = {}
        finish: FinishReason | None = None
        model: str | None = None
        stopped = False
        async with self.post_stream(MESSAGES_PATH, prompt, settings, iter_sse) as items:
            async for event in items:
                payload = json_object(self.provider, event.data)
                kind = payload.get("type", event.event)
                if kind == "content_block_delta":
                    delta = payload.get("delta") or {}
                    delta_kind = delta.get("type")
                    if delta_kind == "text_delta" and delta.get("text"):
                        yield OutputTextDelta(delta=delta["text"])
                    elif delta_kind == "thinking_delta" and delta.get("thinking"):
                        yield ReasoningDelta(delta=delta["thinking"])
                elif kind == "message_start":
                    message = payload.get("message") or {}
                    model = message.get("model")
                    counts = _usage_counts(message.get("usage"), counts)
                elif kind == "message_delta":
                    counts = _usage_counts(payload.get("usage"), counts)
                    finish = map_finish(_FINISH, (payload.get("delta") or {}).get("stop_reason")) or finish
                elif kind == "message_stop":
                    stopped = True
                    break
                elif kind == "error":
                    raise self._stream_error(payload)
        if not stopped:
            raise ProtocolError(f"{self.provider} stream ended before message_stop", provider=self.provider)
        yield Completed(usage=_usage(counts), finish_reasons=(finish,), model=model or self.model)

    def _stream_error(self, payload: dict[str, Any]) -> ClientError:
        error = payload.get("error")
        kind = error.get("type") if isinstance(error, dict) else None
        status = _ERROR_STATUS.get(str(kind), 500)
        return self.error(status, {}, json.dumps(payload).encode())


def _block_text(block: object, kind: str) -> str:
    """The text of a content block of ``kind`` ("text" or "thinking"); "" for any other block."""
    if not isinstance(block, dict) or block.get("type") != kind:
        return ""
    value = block.get(kind)
    return value if isinstance(value, str) else ""


def _usage_counts(raw: object, previous: dict[str, int]) -> dict[str, int]:
    """Anthropic reports cumulative counts, repeated in later events: keep the largest of each."""
    if not isinstance(raw, dict):
        return previous
    counts = dict(previous)
    for field in _USAGE_FIELDS:
        value = raw.get(field)
        if isinstance(value, int):
            counts[field] = max(counts.get(field, 0), value)
    return counts


def _usage(counts: dict[str, int]) -> TokenUsage:
    # Cached prompt tokens are reported apart from input_tokens; all of them were read by the model.
    prompt = counts.get("input_tokens", 0) + counts.get("cache_creation_input_tokens", 0)
    prompt += counts.get("cache_read_input_tokens", 0)
    return TokenUsage(input_tokens=prompt, output_tokens=counts.get("output_tokens", 0))
