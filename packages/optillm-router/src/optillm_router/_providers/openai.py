"""Chat completions over the OpenAI wire format (OpenAI, Groq, OpenRouter, vLLM, llama.cpp, Ollama /v1, custom)."""

from __future__ import annotations as _annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from optillm_core import (
    Completed,
    Completion,
    FinishReason,
    GenerationSettings,
    Message,
    ModelProfile,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    ToolCall,
)

from .._failures import FewerChoices
from .._sse import iter_sse
from ._common import HttpModelClient, json_object, map_finish, wire_messages
from ._tools import (
    ToolCallPieces,
    arguments_text,
    has_tool_turns,
    openai_call_signature,
    openai_tool_call,
    openai_tool_choice,
    openai_tools,
    synthetic_id,
)

__all__ = ("OpenAIClient", "OpenAICompatibleClient")

CHAT_PATH = "/chat/completions"
REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Where OpenAI-compatible servers put thinking: ``reasoning_content`` (DeepSeek, vLLM, llama.cpp),
``reasoning`` (OpenRouter, newer vLLM)."""

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "error": "error",
}


class OpenAICompatibleClient(HttpModelClient):
    """``POST {base_url}/chat/completions``: JSON for :meth:`request`, SSE for :meth:`request_stream`.

    The output limit goes out as the profile's ``max_tokens_field`` (``max_completion_tokens`` for
    OpenAI itself). Thinking in ``reasoning_content`` or ``reasoning`` comes back as the
    completion's thinking and as :class:`~optillm_core.ReasoningDelta` events. Tools, tool choices,
    assistant tool calls and tool results go out in OpenAI's own shapes; ``message.tool_calls``
    come back as the completion's tool calls and streamed ``delta.tool_calls`` fragments as
    :class:`~optillm_core.ToolCallDelta` pieces.
    """

    max_tokens_fields = frozenset({"max_tokens", "max_completion_tokens"})

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def build_body(
        self, prompt: Prompt, settings: GenerationSettings, profile: ModelProfile, *, stream: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model}
        turns = wire_messages(prompt, profile)
        if has_tool_turns(turns):
            body["messages"] = [_message(m) for m in turns]
        else:
            body["messages"] = [{"role": m.role, "content": m.content} for m in turns]
        if settings.tools:
            body["tools"] = openai_tools(settings.tools)
            if settings.tool_choice is not None:
                body["tool_choice"] = openai_tool_choice(settings.tool_choice)
                if settings.tool_choice.parallel is not None:
                    body["parallel_tool_calls"] = settings.tool_choice.parallel
        if settings.temperature is not None:
            body["temperature"] = settings.temperature
        if settings.top_p is not None:
            body["top_p"] = settings.top_p
        if settings.max_tokens is not None:
            body[profile.max_tokens_field] = settings.max_tokens
        if settings.n > 1:
            body["n"] = settings.n
        if settings.stop:
            body["stop"] = list(settings.stop)
        if settings.seed is not None:
            body["seed"] = settings.seed
        body.update(settings.extra)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        payload = await self.post_json(CHAT_PATH, prompt, settings)
        self._raise_embedded_error(payload)
        choices = payload.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ProtocolError(f"{self.provider} answered without choices: {_short(payload)}", provider=self.provider)
        texts: list[str] = [""] * len(choices)
        thinking: list[str] = [""] * len(choices)
        calls: list[tuple[ToolCall, ...]] = [()] * len(choices)
        finish: list[FinishReason | None] = [None] * len(choices)
        for position, choice in enumerate(choices):
            index = choice.get("index", position)
            if not isinstance(index, int) or not 0 <= index < len(choices):
                index = position
            message = choice.get("message") or {}
            texts[index] = message.get("content") or ""
            thinking[index] = _reasoning(message)
            if message.get("tool_calls"):
                calls[index] = _tool_calls(message["tool_calls"], index)
            finish[index] = map_finish(_FINISH, choice.get("finish_reason"))
        completion = Completion(
            texts=tuple(texts),
            thinking=tuple(thinking) if any(thinking) else (),
            tool_calls=tuple(calls) if any(calls) else (),
            usage=_usage(payload.get("usage")),
            finish_reasons=tuple(finish),
            model=payload.get("model") or self.model,
        )
        self._check_choice_count(completion, settings.n)
        return completion

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        finish: list[FinishReason | None] = [None] * settings.n
        seen: set[int] = set()
        usage: TokenUsage | None = None
        model: str | None = None
        done = False
        pieces = ToolCallPieces()
        async with self.post_stream(CHAT_PATH, prompt, settings, iter_sse) as items:
            async for event in items:
                if event.data == "[DONE]":
                    done = True
                    break
                payload = json_object(self.provider, event.data)
                self._raise_embedded_error(payload)
                model = model or payload.get("model")
                if payload.get("usage"):
                    usage = _usage(payload["usage"])
                for choice in payload.get("choices") or ():
                    index = choice.get("index", 0)
                    if not isinstance(index, int) or index < 0:
                        raise ProtocolError(f"{self.provider} sent choice index {index!r}", provider=self.provider)
                    while index >= len(finish):
                        finish.append(None)
                    seen.add(index)
                    delta = choice.get("delta") or {}
                    thought = _reasoning(delta)
                    if thought:
                        yield ReasoningDelta(delta=thought, index=index)
                    text = delta.get("content")
                    if text:
                        yield OutputTextDelta(delta=text, index=index)
                    for item in delta.get("tool_calls") or ():
                        piece = pieces.piece(index, item)
                        if piece is not None:
                            yield piece
                    if choice.get("finish_reason"):
                        finish[index] = map_finish(_FINISH, choice["finish_reason"])
        if not done:
            raise ProtocolError(f"{self.provider} stream ended before data: [DONE]", provider=self.provider)
        missing = tuple(index for index in range(settings.n) if index not in seen) if seen else ()
        if missing:
            raise FewerChoices(
                f"{self.provider} streamed {len(seen)} choice(s) for n={settings.n}: it ignores n",
                provider=self.provider,
                completion=Completion(texts=(), usage=usage or TokenUsage(), finish_reasons=tuple(finish), model=model),
                missing=missing,
            )
        yield Completed(usage=usage, finish_reasons=tuple(finish), model=model or self.model)

    def _raise_embedded_error(self, payload: dict[str, Any]) -> None:
        """OpenAI-compatible servers report some failures as ``{"error": ...}`` in a 200 body or mid-stream."""
        error = payload.get("error")
        if not error:
            return
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code <= 599 else 500
        raise self.error(status, {}, json.dumps(payload).encode())

    def _check_choice_count(self, completion: Completion, wanted: int) -> None:
        got = len(completion.texts)
        if got < wanted:
            raise FewerChoices(
                f"{self.provider} returned {got} choice(s) for n={wanted}: it ignores n; "
                "declare the provider without native n so that choices are fanned out",
                provider=self.provider,
                completion=completion,
            )


class OpenAIClient(OpenAICompatibleClient):
    """OpenAI itself (its profile sends ``max_completion_tokens``, which its reasoning models require)."""


def _message(message: Message) -> dict[str, Any]:
    """A message: with its tool calls (``content`` null when empty), or a tool result with its call's id."""
    if not message.tool_calls and message.tool_call_id is None:
        return {"role": message.role, "content": message.content}
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
    return {
        "role": message.role,
        "content": message.content or None,
        "tool_calls": [openai_tool_call(call) for call in message.tool_calls],
    }


def _tool_calls(raw: object, choice: int) -> tuple[ToolCall, ...]:
    """``message.tool_calls`` of an answer (arguments sent as an object by some servers are written as JSON)."""
    calls: list[ToolCall] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, dict):
            continue
        function = item.get("function")
        if not isinstance(function, dict):
            function = {}
        call_id = item.get("id")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else synthetic_id(choice, len(calls)),
                name=str(function.get("name") or ""),
                arguments=arguments_text(function.get("arguments")) or "{}",
                signature=openai_call_signature(item),
            )
        )
    return tuple(calls)


def _reasoning(message: dict[str, Any]) -> str:
    for field in REASONING_FIELDS:
        value = message.get(field)
        if isinstance(value, str) and value:
            return value
    return ""


def _usage(raw: object) -> TokenUsage:
    if not isinstance(raw, dict):
        return TokenUsage()
    return TokenUsage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
    )


def _short(payload: object) -> str:
    text = json.dumps(payload)
    return text if len(text) <= 300 else text[:300] + "…"
