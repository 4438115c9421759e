"""The Anthropic Messages wire format: the requests ``POST /v1/messages`` reads, the answers and errors it writes.

A request becomes the same things a chat request becomes: core :class:`~optillm_core.Message`
objects for pass-through through the model client, a query and a system prompt for strategies, and
:class:`~optillm_core.GenerationSettings`. Answers go back as a ``message`` object or as
Anthropic's event sequence (:class:`MessageEvents`); errors in Anthropic's shape
(:func:`anthropic_error`) with its status codes.
"""

from __future__ import annotations as _annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from optillm_core import (
    FinishReason,
    GenerationSettings,
    Message,
    ModelProfile,
    TokenUsage,
    ToolCall,
    ToolChoice,
    ToolDefinition,
)

from ._errors import ApiError
from ._streaming import Exchange

__all__ = (
    "AnthropicError",
    "MessageEvents",
    "MessagesRequest",
    "StopReason",
    "anthropic_error",
    "message_id",
    "message_payload",
    "stop_reason_for",
)

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "refusal"]

_STOP_REASONS: dict[FinishReason, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

# Anthropic's error types by status; any other 4xx is an invalid request.
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_IGNORED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
"""Blocks of earlier assistant turns that no model needs again: thinking is not sent back."""


# -- requests ------------------------------------------------------------------------------------


class ThinkingConfig(BaseModel):
    """``thinking``: ``enabled`` with a token budget, ``adaptive``, or ``disabled`` (as Anthropic accepts it)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(default=None, ge=1024)

    @model_validator(mode="after")
    def _budget_when_enabled(self) -> ThinkingConfig:
        if self.type == "enabled" and self.budget_tokens is None:
            raise ValueError("'budget_tokens' is required when thinking is enabled")
        return self

    @property
    def requested(self) -> bool:
        return self.type != "disabled"


class MessagesRequest(BaseModel):
    """The fields of a Messages request that the proxy interprets (others, such as ``service_tier``, are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str = Field(min_length=1)
    max_tokens: int = Field(ge=1)
    messages: tuple[dict[str, Any], ...] = Field(min_length=1)
    system: str | tuple[dict[str, Any], ...] | None = None
    temperature: float | None = Field(default=None, ge=0.0, le=1.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    stop_sequences: tuple[str, ...] | None = None
    stream: bool = False
    metadata: dict[str, Any] | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: ThinkingConfig | None = None
    optillm_approach: str | None = None
    optillm_config: dict[str, Any] | None = None
    optillm_drop_unsupported: Literal["drop", "error"] | None = None

    @model_validator(mode="after")
    def _thinking_fits(self) -> MessagesRequest:
        budget = self.thinking.budget_tokens if self.thinking is not None else None
        if budget is not None and budget >= self.max_tokens:
            raise ValueError("'max_tokens' must be greater than 'thinking.budget_tokens'")
        return self

    @classmethod
    def parse(cls, raw: bytes) -> MessagesRequest:
        """The request, or a 400 naming the field that is missing or wrong."""
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object with 'model', 'max_tokens' and 'messages'")
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            where = f"'{param}'" if param else "the request"
            raise ApiError(400, f"invalid {where}: {first['msg']}", param=param) from None

    @property
    def wants_thinking(self) -> bool:
        """Whether the answer carries a ``thinking`` block (only when the request asked for thinking)."""
        return self.thinking is not None and self.thinking.requested

    def system_texts(self) -> list[str]:
        """The system prompt's text blocks (a string is one block)."""
        if self.system is None:
            return []
        if isinstance(self.system, str):
            return [self.system] if self.system else []
        texts = []
        for index, block in enumerate(self.system):
            if block.get("type") != "text" or not isinstance(block.get("text"), str):
                raise ApiError(
                    400, f"'system' takes text blocks only (got type {block.get('type')!r})", param=f"system.{index}"
                )
            texts.append(block["text"])
        return texts

    def settings(self, profile: ModelProfile, *, pass_through: bool) -> GenerationSettings:
        """The sampling settings, tools and tool choice; ``top_k`` goes as a provider field.

        ``thinking`` reaches the model only on pass-through, in the form its provider takes
        (Anthropic's ``thinking``, Gemini's ``thinkingConfig``); strategies set their own limits
        and temperatures per call, which an Anthropic thinking budget would conflict with.
        """
        extra: dict[str, Any] = {}
        if self.top_k is not None:
            extra["top_k"] = self.top_k
        if pass_through and self.thinking is not None:
            extra.update(_thinking_fields(self.thinking, profile))
        tools = self.tool_definitions()
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": self.stop_sequences or None,
            "tools": tools or None,
            "tool_choice": self.core_tool_choice(tools) if tools else None,
            "extra": extra,
        }
        return GenerationSettings(**{k: v for k, v in values.items() if v is not None})

    def tool_definitions(self) -> tuple[ToolDefinition, ...]:
        definitions = []
        names: set[str] = set()
        for index, tool in enumerate(self.tools or ()):
            param = f"tools.{index}"
            kind = tool.get("type")
            if kind not in (None, "custom"):
                raise ApiError(
                    400,
                    f"tool type {kind!r} is a server tool this proxy cannot run; define client tools "
                    "with 'name', 'description' and 'input_schema'",
                    param=param,
                )
            schema = tool.get("input_schema")
            if not isinstance(schema, Mapping):
                raise ApiError(400, f"'{param}.input_schema' is required: a JSON Schema object", param=param)
            try:
                definition = ToolDefinition(
                    name=tool.get("name"), description=tool.get("description"), parameters=schema
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ApiError(400, f"invalid '{param}': {first['msg']}", param=param) from None
            if definition.name in names:
                raise ApiError(400, f"tool names must be unique: '{definition.name}' is defined twice", param=param)
            names.add(definition.name)
            definitions.append(definition)
        return tuple(definitions)

    def core_tool_choice(self, tools: Sequence[ToolDefinition]) -> ToolChoice | None:
        """``auto``, ``any`` (some tool), ``tool`` (the named one) or ``none``.

        ``disable_parallel_tool_use: true`` (one tool call at a time) is core's ``parallel=False``.
        """
        choice = self.tool_choice
        if choice is None:
            return None
        kind = choice.get("type")
        one_at_a_time = choice.get("disable_parallel_tool_use")
        if one_at_a_time is not None and (kind == "none" or not isinstance(one_at_a_time, bool)):
            raise ApiError(
                400,
                "'tool_choice.disable_parallel_tool_use' must be true or false, and only with auto, any or tool",
                param="tool_choice.disable_parallel_tool_use",
            )
        parallel = None if one_at_a_time is None else not one_at_a_time
        if kind == "any":
            return ToolChoice(mode="required", parallel=parallel)
        if kind in ("auto", "none"):
            return ToolChoice(mode=kind, parallel=parallel)
        if kind == "tool":
            name = choice.get("name")
            if not isinstance(name, str) or name not in {t.name for t in tools}:
                raise ApiError(
                    400,
                    f"'tool_choice.name' must name one of the request's tools (got {name!r})",
                    param="tool_choice.name",
                )
            return ToolChoice(mode="tool", name=name, parallel=parallel)
        raise ApiError(
            400, f"'tool_choice.type' must be auto, any, tool or none (got {kind!r})", param="tool_choice.type"
        )

    def conversation(self) -> tuple[Message, ...]:
        """The conversation as core messages, turn by turn: what pass-through sends the model.

        Assistant ``tool_use`` blocks become the message's tool calls (arguments: the JSON text of
        ``input``); user ``tool_result`` blocks become ``tool`` messages, in the order they came;
        earlier thinking blocks are left out.
        """
        converted: list[Message] = []
        system = self.system_texts()
        if system:
            converted.append(Message.system("\n\n".join(system)))
        for index, message in enumerate(self.messages):
            role = _role(message, index)
            blocks = _blocks(message, index)
            if role == "assistant":
                converted.append(_assistant_turn(blocks, index))
            else:
                converted.extend(_user_turn(blocks, index))
        return tuple(converted)

    def strategy_turns(self) -> list[Message]:
        """The conversation less its system prompt, for a strategy (which takes that separately)."""
        return [message for message in self.conversation() if message.role != "system"]


def _thinking_fields(thinking: ThinkingConfig, profile: ModelProfile) -> dict[str, Any]:
    if profile.thinking == "anthropic_blocks":
        return {"thinking": thinking.model_dump(exclude_none=True)}
    if profile.thinking == "gemini_thoughts" and thinking.requested:
        config: dict[str, Any] = {"includeThoughts": True}
        if thinking.budget_tokens is not None:
            config["thinkingBudget"] = thinking.budget_tokens
        return {"thinkingConfig": config}
    return {}  # other models think, or not, as they are configured; their thinking is returned when asked for


def _role(message: Mapping[str, Any], index: int) -> Literal["user", "assistant"]:
    role = message.get("role")
    if role not in ("user", "assistant"):
        raise ApiError(
            400, f"message role must be 'user' or 'assistant' (got {role!r})", param=f"messages.{index}.role"
        )
    return "user" if role == "user" else "assistant"


def _blocks(message: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(block, dict) for block in content):
        raise ApiError(
            400, "message content must be a string or a list of content blocks", param=f"messages.{index}.content"
        )
    return content


def _text_of(block: Mapping[str, Any], param: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise ApiError(400, f"'{param}.text' must be a string", param=param)
    return text


def _unsupported_block(kind: object, param: str) -> ApiError:
    return ApiError(
        400,
        f"content blocks of type {kind!r} are not supported here (text, tool_use in assistant turns and "
        "tool_result in user turns are)",
        param=param,
    )


def _assistant_turn(blocks: list[dict[str, Any]], index: int) -> Message:
    texts: list[str] = []
    calls: list[ToolCall] = []
    for position, block in enumerate(blocks):
        param = f"messages.{index}.content.{position}"
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_of(block, param))
        elif kind == "tool_use":
            calls.append(_tool_call(block, param))
        elif kind not in _IGNORED_BLOCKS:
            raise _unsupported_block(kind, param)
    return Message.assistant("".join(texts), tool_calls=tuple(calls))


def _tool_call(block: Mapping[str, Any], param: str) -> ToolCall:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input", {})
    if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, dict):
        raise ApiError(400, f"'{param}' must have a string 'id' and 'name' and an object 'input'", param=param)
    return ToolCall(id=call_id, name=name, arguments=json.dumps(arguments))


def _user_turn(blocks: list[dict[str, Any]], index: int) -> list[Message]:
    """Tool results become ``tool`` messages; the text between them one user message each."""
    messages: list[Message] = []
    texts: list[str] = []
    for position, block in enumerate(blocks):
        param = f"messages.{index}.content.{position}"
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_of(block, param))
        elif kind == "tool_result":
            if texts:
                messages.append(Message.user("".join(texts)))
                texts = []
            messages.append(_tool_result(block, param))
        else:
            raise _unsupported_block(kind, param)
    if texts or not messages:
        messages.append(Message.user("".join(texts)))
    return messages


def _tool_result(block: Mapping[str, Any], param: str) -> Message:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise ApiError(400, f"'{param}.tool_use_id' must be the id of the tool_use block it answers", param=param)
    content = block.get("content", "")
    if isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts = []
        for part, item in enumerate(content):
            if not isinstance(item, dict) or item.get("type") != "text":
                kind = item.get("type") if isinstance(item, dict) else item
                raise _unsupported_block(kind, f"{param}.content.{part}")
            parts.append(_text_of(item, f"{param}.content.{part}"))
        text = "".join(parts)
    else:
        raise ApiError(400, f"'{param}.content' must be a string or a list of text blocks", param=param)
    if block.get("is_error"):
        text = f"Error: {text}"  # core tool messages have no error flag: the model reads it in the text
    return Message.tool_result(text, tool_call_id=call_id)


# -- responses -----------------------------------------------------------------------------------


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def stop_reason_for(finish: FinishReason | None, tool_calls: Sequence[ToolCall] = ()) -> StopReason:
    """Anthropic's stop reason for a core finish reason.

    Core does not tell a stop sequence from the end of the turn, so both are ``end_turn``.
    """
    if tool_calls:
        return "tool_use"
    return _STOP_REASONS.get(finish or "stop", "end_turn")


def usage_payload(usage: TokenUsage) -> dict[str, int]:
    return {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}


def tool_input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the object Anthropic's ``input`` is; a model that wrote something else failed."""
    try:
        return call.parsed_arguments()
    except ValueError:
        raise ApiError(
            502,
            f"the model called tool '{call.name}' with arguments that are not a JSON object: {call.arguments[:200]!r}",
            kind="upstream_error",
            code="upstream_protocol_error",
        ) from None


def message_payload(
    *,
    msg_id: str,
    model: str,
    text: str,
    usage: TokenUsage,
    stop_reason: StopReason,
    thinking: str = "",
    tool_calls: Sequence[ToolCall] = (),
) -> dict[str, Any]:
    """A complete ``message``: a leading thinking block (when given), the text, then one ``tool_use`` block per call."""
    content: list[dict[str, Any]] = []
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": ""})
    if text or not tool_calls:
        content.append({"type": "text", "text": text})
    content += [{"type": "tool_use", "id": c.id, "name": c.name, "input": tool_input(c)} for c in tool_calls]
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage_payload(usage),
    }


class MessageEvents:
    """Writes one message as Anthropic's event stream: blocks open and close one at a time, in index order.

    ``message_start`` carries an empty message with zero usage (a strategy's input tokens are known
    only when it ends); ``message_delta`` carries the stop reason and the exact totals, input
    tokens included.
    """

    def __init__(self, exchange: Exchange, *, msg_id: str, model: str) -> None:
        self._exchange = exchange
        self._id = msg_id
        self._model = model
        self._next = 0
        self._open: str | None = None
        self._open_call: int | None = None
        self._calls_seen: set[int] = set()
        self.text_blocks = 0

    async def start(self) -> None:
        await self._exchange.start_stream()
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage_payload(TokenUsage()),
        }
        await self._event("message_start", {"type": "message_start", "message": message})

    async def ping(self) -> None:
        await self._event("ping", {"type": "ping"})

    async def text(self, piece: str) -> None:
        if self._open != "text":
            await self._open_block({"type": "text", "text": ""})
            self.text_blocks += 1
        if piece:
            await self._delta({"type": "text_delta", "text": piece})

    async def thinking(self, piece: str) -> None:
        if self._open != "thinking":
            await self._open_block({"type": "thinking", "thinking": "", "signature": ""})
        if piece:
            await self._delta({"type": "thinking_delta", "thinking": piece})

    async def tool_piece(self, call: int, *, call_id: str | None, name: str | None, arguments: str) -> None:
        """A piece of tool call ``call``: its first piece opens its block, the rest are ``input_json_delta``."""
        if call != self._open_call:
            if call in self._calls_seen:
                raise ApiError(
                    502,
                    f"the model's stream went back to tool call {call} after another block began",
                    kind="upstream_error",
                    code="upstream_protocol_error",
                )
            if call_id is None or name is None:
                raise ApiError(
                    502,
                    f"the model's stream began tool call {call} without its id and name",
                    kind="upstream_error",
                    code="upstream_protocol_error",
                )
            await self._open_block({"type": "tool_use", "id": call_id, "name": name, "input": {}})
            self._open_call = call
            self._calls_seen.add(call)
        if arguments:
            await self._delta({"type": "input_json_delta", "partial_json": arguments})

    async def tool_use(self, position: int, call: ToolCall) -> None:
        """A whole tool call as its own block, its arguments in one ``input_json_delta``."""
        tool_input(call)  # a call whose arguments are not an object fails before its block opens
        await self.tool_piece(position, call_id=call.id, name=call.name, arguments=call.arguments)
        await self.close_block()

    async def close_block(self) -> None:
        if self._open is not None:
            await self._event("content_block_stop", {"type": "content_block_stop", "index": self._next - 1})
            self._open = None
            self._open_call = None

    async def finish(self, stop_reason: StopReason, usage: TokenUsage) -> None:
        """Close the last block (an answer with no block gets an empty text block), then the stop reason and usage."""
        if self._next == 0:
            await self.text("")
        await self.close_block()
        delta = {"stop_reason": stop_reason, "stop_sequence": None}
        await self._event("message_delta", {"type": "message_delta", "delta": delta, "usage": usage_payload(usage)})
        await self._event("message_stop", {"type": "message_stop"})

    async def _open_block(self, block: dict[str, Any]) -> None:
        await self.close_block()
        self._open = str(block["type"])
        await self._event(
            "content_block_start", {"type": "content_block_start", "index": self._next, "content_block": block}
        )
        self._next += 1

    async def _delta(self, delta: dict[str, Any]) -> None:
        await self._event(
            "content_block_delta", {"type": "content_block_delta", "index": self._next - 1, "delta": delta}
        )

    async def _event(self, name: str, payload: dict[str, Any]) -> None:
        await self._exchange.event(name, payload)


# -- errors --------------------------------------------------------------------------------------


class AnthropicError(ApiError):
    """An :class:`ApiError` in Anthropic's shape: ``{"type": "error", "error": {"type", "message"}}``."""

    def payload(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.kind, "message": self.message}}

    def stream_end(self) -> bytes:
        """A started stream ends with an ``error`` event (Anthropic's streams have no ``[DONE]``)."""
        return b"event: error\ndata: " + json.dumps(self.payload(), separators=(",", ":")).encode() + b"\n\n"


def anthropic_error(error: ApiError) -> ApiError:
    """``error`` with Anthropic's status and type: 503 (overloaded or unavailable upstream) becomes 529,
    other 5xx but 504 become 500 ``api_error``, and an unknown model is a 404 as Anthropic answers it."""
    if isinstance(error, AnthropicError):
        return error
    status = error.status
    if error.code == "model_not_found":
        status = 404
    elif status == 503:
        status = 529
    elif status >= 500 and status not in _ERROR_TYPES:
        status = 500
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return AnthropicError(
        status,
        error.message,
        kind=kind,
        param=error.param,
        code=error.code,
        retry_after=error.retry_after,
        headers=error.extra_headers,
    )
