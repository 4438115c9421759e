"""Ollama's native ``/api/chat``: sampling settings inside ``options``, NDJSON streaming."""

from __future__ import annotations as _annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from optillm_core import (
    BadRequestError,
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
    ToolDefinition,
)

from .._sse import iter_ndjson_lines
from ._common import HttpModelClient, json_object, map_finish, wire_messages
from ._tools import (
    answered_calls,
    arguments_object,
    arguments_text,
    has_tool_turns,
    openai_tools,
    synthetic_id,
    whole_call_deltas,
)

__all__ = ("OllamaClient",)

CHAT_PATH = "/api/chat"
TOP_LEVEL_EXTRA = frozenset({"format", "keep_alive", "think", "tools"})
"""``settings.extra`` keys sent at the top level; every other key (``top_k``, ``num_ctx``…) goes in ``options``."""

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


class OllamaClient(HttpModelClient):
    """``POST {base_url}/api/chat`` with ``stream`` false (JSON) or true (NDJSON).

    A thinking model's ``message.thinking`` comes back as the thinking. Tools go out in OpenAI's
    shape; assistant calls with their arguments as an object, tool results with the ``tool_name``
    of the call they answer. Ollama has no tool choice: ``none`` sends no tools, one named tool
    sends that tool alone, ``required`` sends them all (the model may still answer in text).
    ``message.tool_calls`` come back whole, with the id Ollama gives or ``call_0_<position>``.
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
        turns = wire_messages(prompt, profile)
        body: dict[str, Any] = {"model": self.model}
        if has_tool_turns(turns):
            body["messages"] = [self._message(m, answered) for m, answered in answered_calls(turns)]
        else:
            body["messages"] = [{"role": m.role, "content": m.content} for m in turns]
        body["stream"] = stream
        if settings.tools:
            tools = self._offered(settings)
            if tools:
                body["tools"] = openai_tools(tools)
        for key, value in settings.extra.items():
            (body if key in TOP_LEVEL_EXTRA else options)[key] = value
        if options:
            body["options"] = options
        return body

    def _offered(self, settings: GenerationSettings) -> tuple[ToolDefinition, ...]:
        """The tools sent, Ollama having no tool choice: none for ``none``, the named one alone for a tool."""
        tools, choice = settings.tools or (), settings.tool_choice
        if choice is None or choice.mode in ("auto", "required"):
            return tools
        if choice.mode == "none":
            return ()
        named = tuple(tool for tool in tools if tool.name == choice.name)
        if tools and not named:
            raise BadRequestError(
                f"the tool choice names {choice.name!r}, which is not among the tools offered "
                f"({', '.join(t.name for t in tools)})",
                provider=self.provider,
            )
        return named

    def _message(self, message: Message, answered: ToolCall | None) -> dict[str, Any]:
        wire: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            wire["tool_calls"] = [
                {"function": {"name": c.name, "arguments": arguments_object(self.provider, c)}}
                for c in message.tool_calls
            ]
        if answered is not None:
            wire["tool_name"] = answered.name
        return wire

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        payload = await self.post_json(CHAT_PATH, prompt, settings)
        self._raise_embedded_error(payload)
        message = payload.get("message")
        if not isinstance(message, dict) or not payload.get("done"):
            raise ProtocolError(f"{self.provider} answered without a finished message", provider=self.provider)
        thinking = _thinking(message)
        calls = _calls(message.get("tool_calls"))
        return Completion(
            texts=(message.get("content") or "",),
            thinking=(thinking,) if thinking else (),
            tool_calls=(calls,) if calls else (),
            usage=_usage(payload),
            finish_reasons=(_finish(payload.get("done_reason"), bool(calls)),),
            model=payload.get("model") or self.model,
        )

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        final: dict[str, Any] | None = None
        called = 0
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
                calls = _calls(message.get("tool_calls"), called)
                for piece in whole_call_deltas(0, calls, called):
                    yield piece
                called += len(calls)
                if payload.get("done"):
                    final = payload
                    break
        if final is None:
            raise ProtocolError(f"{self.provider} stream ended before its done line", provider=self.provider)
        yield Completed(
            usage=_usage(final),
            finish_reasons=(_finish(final.get("done_reason"), called > 0),),
            model=final.get("model") or self.model,
        )

    def _raise_embedded_error(self, payload: dict[str, Any]) -> None:
        if payload.get("error"):
            raise self.error(500, {}, json.dumps(payload).encode())


def _calls(raw: object, before: int = 0) -> tuple[ToolCall, ...]:
    """``message.tool_calls`` (arguments as an object) as tool calls; ``before`` calls came in earlier lines."""
    calls: list[ToolCall] = []
    for item in raw if isinstance(raw, list) else ():
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(function, dict):
            continue
        call_id = item.get("id")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else synthetic_id(0, before + len(calls)),
                name=str(function.get("name") or ""),
                arguments=arguments_text(function.get("arguments")),
            )
        )
    return tuple(calls)


def _finish(reason: object, called: bool) -> FinishReason | None:
    """Ollama finishes an answer that called a tool with ``stop``: that is OpenAI's ``tool_calls``."""
    finish = map_finish(_FINISH, reason or "stop")
    return "tool_calls" if called and finish == "stop" else finish


def _thinking(message: dict[str, Any]) -> str:
    value = message.get("thinking")
    return value if isinstance(value, str) else ""


def _usage(payload: dict[str, Any]) -> TokenUsage:
    return TokenUsage(
        input_tokens=int(payload.get("prompt_eval_count") or 0),
        output_tokens=int(payload.get("eval_count") or 0),
    )
