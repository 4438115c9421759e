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
    Message,
    ModelProfile,
    OutputTextDelta,
    Prompt,
    ProtocolError,
    ReasoningDelta,
    ResponseEvent,
    TokenUsage,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
)

from .._sse import iter_sse
from ._common import HttpModelClient, json_object, map_finish, wire_messages
from ._tools import arguments_object, arguments_text, has_tool_turns, synthetic_id

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
    Assistant tool calls go out as ``tool_use`` blocks and tool results as ``tool_result`` blocks
    of a user message (consecutive results in one); ``tool_use`` blocks come back as tool calls,
    streamed as a ``content_block_start`` piece followed by its ``input_json_delta`` fragments.
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
        body: dict[str, Any] = {"model": self.model}
        if settings.max_tokens is not None:
            body["max_tokens"] = settings.max_tokens
        if has_tool_turns(turns):
            body["messages"] = self._messages(turns)
        else:
            body["messages"] = [
                {"role": "assistant" if m.role == "assistant" else "user", "content": m.content}
                for m in turns
                if m.role != "system"
            ]
        system = "\n\n".join(m.content for m in turns if m.role == "system")
        if system:
            body["system"] = system
        if settings.tools:
            body["tools"] = [_tool(tool) for tool in settings.tools]
            if settings.tool_choice is not None:
                body["tool_choice"] = _tool_choice(settings.tool_choice)
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

    def _messages(self, turns: tuple[Message, ...]) -> list[dict[str, Any]]:
        """The turns after the system text: tool calls as ``tool_use`` blocks, results as ``tool_result`` blocks."""
        messages: list[dict[str, Any]] = []
        for m in turns:
            if m.role == "system":
                continue
            if m.role == "tool":
                result = {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
                if _opens_with_results(messages):
                    messages[-1]["content"].append(result)  # results of one turn go back in one message
                else:
                    messages.append({"role": "user", "content": [result]})
            elif m.tool_calls:
                blocks: list[dict[str, Any]] = [{"type": "text", "text": m.content}] if m.content else []
                blocks += [
                    {"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_object(self.provider, c)}
                    for c in m.tool_calls
                ]
                messages.append({"role": "assistant", "content": blocks})
            elif m.role == "user" and _opens_with_results(messages):
                if m.content:  # after the results, as Anthropic requires
                    messages[-1]["content"].append({"type": "text", "text": m.content})
            else:
                messages.append({"role": "assistant" if m.role == "assistant" else "user", "content": m.content})
        return messages

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
        calls = _tool_uses(content)
        return Completion(
            texts=(text,),
            thinking=(thinking,) if thinking else (),
            tool_calls=(calls,) if calls else (),
            usage=_usage(_usage_counts(payload.get("usage"), {})),
            finish_reasons=(map_finish(_FINISH, payload.get("stop_reason")),),
            model=payload.get("model") or self.model,
        )

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        counts: dict[str, int] = {}
        finish: FinishReason | None = None
        model: str | None = None
        stopped = False
        uses = _ToolUses()
        async with self.post_stream(MESSAGES_PATH, prompt, settings, iter_sse) as items:
            async for event in items:
                payload = json_object(self.provider, event.data)
                kind = payload.get("type", event.event)
                if kind in _BLOCK_EVENTS:
                    piece = _block_event(kind, payload, uses)
                    if piece is not None:
                        yield piece
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


def _tool(tool: ToolDefinition) -> dict[str, Any]:
    wire: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        wire["description"] = tool.description
    wire["input_schema"] = dict(tool.parameters)
    return wire


_CHOICE_TYPES = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}


def _tool_choice(choice: ToolChoice) -> dict[str, Any]:
    """``auto``, ``none``, ``any`` (OpenAI's ``required``), or ``tool`` with the tool's name.

    One call at a time is ``disable_parallel_tool_use``, which ``none`` does not take (it calls none).
    """
    wire: dict[str, Any] = {"type": _CHOICE_TYPES[choice.mode]}
    if choice.name is not None:
        wire["name"] = choice.name
    if choice.parallel is False and choice.mode != "none":
        wire["disable_parallel_tool_use"] = True
    return wire


def _opens_with_results(messages: list[dict[str, Any]]) -> bool:
    """Whether the last message is a user message of tool results (more results or text may join it)."""
    if not messages or messages[-1]["role"] != "user":
        return False
    content = messages[-1]["content"]
    return isinstance(content, list) and bool(content) and content[0].get("type") == "tool_result"


def _tool_uses(content: list[Any]) -> tuple[ToolCall, ...]:
    """The ``tool_use`` blocks of an answer as tool calls (arguments: the JSON of ``input``)."""
    calls: list[ToolCall] = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            continue
        call_id = block.get("id")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else synthetic_id(0, len(calls)),
                name=str(block.get("name") or ""),
                arguments=arguments_text(block.get("input")),
            )
        )
    return tuple(calls)


_BLOCK_EVENTS = frozenset({"content_block_start", "content_block_delta", "content_block_stop"})


def _block_event(kind: str, payload: dict[str, Any], uses: _ToolUses) -> ResponseEvent | None:
    """The piece of answer, thinking or tool call a content block event brings, if any."""
    if kind == "content_block_start":
        return uses.start(payload.get("index"), payload.get("content_block"))
    if kind == "content_block_stop":
        return uses.stop(payload.get("index"))
    delta = payload.get("delta") or {}
    delta_kind = delta.get("type")
    if delta_kind == "text_delta" and delta.get("text"):
        return OutputTextDelta(delta=delta["text"])
    if delta_kind == "thinking_delta" and delta.get("thinking"):
        return ReasoningDelta(delta=delta["thinking"])
    if delta_kind == "input_json_delta" and delta.get("partial_json"):
        return uses.fragment(payload.get("index"), delta["partial_json"])
    return None


class _ToolUses:
    """The ``tool_use`` blocks of a stream: content block index → the call's position among them."""

    __slots__ = ("_empty", "_last", "_positions")

    def __init__(self) -> None:
        self._positions: dict[int, int] = {}
        self._empty: set[int] = set()
        """Positions of calls that have had no argument fragment yet."""
        self._last: int | None = None

    def start(self, index: object, block: object) -> ToolCallDelta | None:
        if not isinstance(block, dict) or block.get("type") != "tool_use":
            return None
        position = len(self._positions)
        self._positions[index if isinstance(index, int) else -1 - position] = position
        self._last = position
        call_id = block.get("id")
        # The block's ``input`` is ``{}`` here; the arguments follow as input_json_delta fragments.
        self._empty.add(position)
        return ToolCallDelta(
            call=position,
            id=call_id if isinstance(call_id, str) and call_id else synthetic_id(0, position),
            name=str(block.get("name") or ""),
        )

    def fragment(self, index: object, partial_json: str) -> ToolCallDelta | None:
        position = self._positions.get(index) if isinstance(index, int) else self._last
        if position is None:
            return None
        self._empty.discard(position)
        return ToolCallDelta(call=position, arguments=partial_json)

    def stop(self, index: object) -> ToolCallDelta | None:
        """A call whose block ended without any argument fragment took no arguments: ``{}``."""
        position = self._positions.get(index) if isinstance(index, int) else None
        if position is None or position not in self._empty:
            return None
        self._empty.discard(position)
        return ToolCallDelta(call=position, arguments="{}")


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
