"""The OpenAI Chat Completions wire format: requests the proxy reads, responses and chunks it writes."""

from __future__ import annotations as _annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optillm_core import FinishReason, GenerationSettings, TokenUsage, ToolCall, ToolChoice

from ._errors import ApiError
from ._tools import choice_finish_reason, message_tool_calls, parse_tool_choice, parse_tools

__all__ = (
    "ChatMessage",
    "ChatRequest",
    "ResponseHeader",
    "StreamOptions",
    "chunk",
    "completion",
    "parse_body",
    "usage_payload",
)


def parse_body(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object with ``model`` and ``messages``, or a 400 naming what is wrong."""
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON ({exc}); send a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object with 'model' and 'messages'")
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise ApiError(400, "'model' is required: a model name, optionally prefixed by a strategy", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "'messages' is required: a non-empty list of chat messages", param="messages")
    return body


class StreamOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    include_usage: bool = False


class ChatMessage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[Any] | None = None
    tool_call_id: str | None = None


class ChatRequest(BaseModel):
    """The fields of a chat request that the proxy itself interprets (the others are ignored)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str
    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=128)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    tools: Any = None  # read by _tools.parse_tools, which names what is wrong
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: str | dict[str, Any] | None = None
    logprobs: bool | None = None
    response_format: dict[str, Any] | None = None
    optillm_approach: str | None = None
    optillm_config: dict[str, Any] | None = None
    optillm_drop_unsupported: Literal["drop", "error"] | None = None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> ChatRequest:
        """The request, its fields checked (tools included), or a 400 naming the first one that is wrong."""
        try:
            request = cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            raise ApiError(400, f"invalid '{param}': {first['msg']}", param=param) from None
        request.reject_legacy_functions()
        request.settings()  # tools and tool_choice are read here: a malformed one is a 400 at once
        return request

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def settings(self) -> GenerationSettings:
        """The request's sampling settings (one choice; ``n`` is handled by the caller)."""
        tools = parse_tools(self.tools)
        choice = parse_tool_choice(self.tool_choice, tools)
        if tools and self.parallel_tool_calls is not None:  # without tools it asks for nothing
            choice = (choice or ToolChoice()).model_copy(update={"parallel": self.parallel_tool_calls})
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
            "tools": tools,
            "tool_choice": choice,
        }
        return GenerationSettings(**{k: v for k, v in values.items() if v is not None})

    def reject_logprobs(self, why: str) -> None:
        """A clear 400 for logprobs where the answer cannot carry them, instead of silently dropping them."""
        if self.logprobs:
            raise ApiError(400, f"'logprobs' cannot be used here: {why}", param="logprobs")

    def reject_legacy_functions(self) -> None:
        """``functions`` and ``function_call`` are OpenAI's deprecated forms of tools: a 400 saying what to send."""
        for name, new in (("functions", "tools"), ("function_call", "tool_choice")):
            if getattr(self, name) is not None:
                raise ApiError(
                    400,
                    f"'{name}' is OpenAI's deprecated form of '{new}', which this proxy reads instead: send the "
                    "functions as 'tools' ({'type': 'function', 'function': {...}}) and the choice as 'tool_choice'",
                    param=name,
                )

    def reject_structured_output(self) -> None:
        """Strategies answer in free text; a JSON schema would silently not hold, so it is refused."""
        if self.response_format and self.response_format.get("type", "text") != "text":
            raise ApiError(
                400,
                "'response_format' cannot be used with a strategy: strategies answer in free text "
                "(ask for the format in the prompt, or send the request without a strategy)",
                param="response_format",
            )


@dataclass(frozen=True)
class ResponseHeader:
    """The fields every completion and chunk of one response share."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def usage_payload(usage: TokenUsage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def completion(
    header: ResponseHeader,
    choices: list[tuple[str, FinishReason | None]],
    usage: TokenUsage,
    thinking: list[str] | None = None,
    tool_calls: list[tuple[ToolCall, ...]] | None = None,
) -> dict[str, Any]:
    """A complete ``chat.completion`` object; a choice's thinking goes in ``reasoning_content``, never in content.

    A choice with tool calls carries them in ``message.tool_calls`` with ``finish_reason``
    ``tool_calls``, and ``content`` null when it wrote no text, as OpenAI answers.
    """
    body: list[dict[str, Any]] = []
    for index, (text, reason) in enumerate(choices):
        calls = tool_calls[index] if tool_calls and index < len(tool_calls) else ()
        body.append(
            {
                "index": index,
                "message": _message(text, thinking[index] if thinking and index < len(thinking) else "", calls),
                "finish_reason": choice_finish_reason(reason, bool(calls)),
                "logprobs": None,
            }
        )
    return {
        "id": header.id,
        "object": "chat.completion",
        "created": header.created,
        "model": header.model,
        "choices": body,
        "usage": usage_payload(usage),
    }


def _message(text: str, thinking: str, calls: tuple[ToolCall, ...]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = message_tool_calls(calls)
    if thinking:
        message["reasoning_content"] = thinking  # what DeepSeek's API and vLLM clients read
    return message


def chunk(
    header: ResponseHeader,
    *,
    index: int | None = None,
    delta: dict[str, Any] | None = None,
    finish_reason: str | None = None,
    usage: TokenUsage | None = None,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """A ``chat.completion.chunk``: one choice's delta, or (``index`` None) the closing usage chunk."""
    payload: dict[str, Any] = {
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": header.model,
        "choices": []
        if index is None
        else [{"index": index, "delta": delta or {}, "finish_reason": finish_reason, "logprobs": None}],
    }
    if usage is not None:
        payload["usage"] = usage_payload(usage)
    elif with_usage_field:
        payload["usage"] = None
    return payload
