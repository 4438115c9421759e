"""Tool calls on the wire: what every provider's translation shares.

The core's shapes follow OpenAI's chat format (see :mod:`optillm_core`'s ``ToolDefinition``,
``ToolCall``, ``ToolCallDelta``); each provider module writes them in its own format with these
helpers: OpenAI-shaped tool lists (OpenAI-compatible servers and Ollama), the name of the call a
tool result answers (Gemini and Ollama name results, not ids), arguments as a JSON object (Anthropic,
Gemini and Ollama send objects, not text), ids for providers that give none, and the stream state
that turns OpenAI's ``delta.tool_calls`` fragments into :class:`~optillm_core.ToolCallDelta` pieces.
"""

from __future__ import annotations as _annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from optillm_core import BadRequestError, Message, ToolCall, ToolCallDelta, ToolChoice, ToolDefinition

__all__ = (
    "ToolCallPieces",
    "add_openai_signature",
    "answered_calls",
    "arguments_object",
    "arguments_text",
    "has_tool_turns",
    "openai_call_signature",
    "openai_tool_call",
    "openai_tool_choice",
    "openai_tools",
    "synthetic_id",
    "whole_call_deltas",
)


def openai_tool_call(call: ToolCall) -> dict[str, Any]:
    """A tool call in OpenAI's chat shape. Its ``signature`` (Gemini's thought signature) rides in
    ``extra_content.google.thought_signature``, where Google's OpenAI-compatible API puts it, so
    that whoever sends the conversation back sends it too."""
    payload = {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
    return add_openai_signature(payload, call.signature)


def add_openai_signature(payload: dict[str, Any], signature: str | None) -> dict[str, Any]:
    """``payload`` (an OpenAI-shaped tool call or a stream piece of one) with ``signature`` in
    ``extra_content.google.thought_signature``, when there is one; returned for convenience."""
    if signature:
        payload["extra_content"] = {"google": {"thought_signature": signature}}
    return payload


def openai_call_signature(item: object) -> str | None:
    """The signature of an OpenAI-shaped tool call (or stream piece of one), if it carries one (see
    :func:`openai_tool_call`)."""
    extra = item.get("extra_content") if isinstance(item, dict) else None
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def has_tool_turns(messages: Iterable[Message]) -> bool:
    """Whether any message carries tool calls or a tool result (most prompts have none: the fast path)."""
    for message in messages:  # noqa: SIM110 - a plain loop: no generator on every request
        if message.tool_calls or message.tool_call_id is not None:
            return True
    return False


def openai_tools(tools: Sequence[ToolDefinition]) -> list[dict[str, Any]]:
    """``tools`` as OpenAI's ``[{"type": "function", "function": {...}}]`` (also Ollama's shape)."""
    wire: list[dict[str, Any]] = []
    for tool in tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        function["parameters"] = dict(tool.parameters)
        if tool.strict is not None:
            function["strict"] = tool.strict
        wire.append({"type": "function", "function": function})
    return wire


def openai_tool_choice(choice: ToolChoice) -> str | dict[str, Any]:
    """``auto``, ``none`` and ``required`` as strings; one named tool as ``{"type": "function", ...}``."""
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def answered_calls(messages: Iterable[Message]) -> Iterator[tuple[Message, ToolCall | None]]:
    """Each message with, for a ``tool`` message, the latest earlier assistant call with its id (else ``None``).

    Ids a provider did not give are synthesised per answer (``call_0_0``…) and repeat from one turn
    to the next, so the latest call with the id is the one answered.
    """
    calls: dict[str, ToolCall] = {}
    for message in messages:
        for call in message.tool_calls:
            calls[call.id] = call
        answered = calls.get(message.tool_call_id) if message.tool_call_id is not None else None
        yield message, answered


def arguments_object(provider: str, call: ToolCall) -> dict[str, Any]:
    """The call's arguments as the JSON object the provider takes; refused locally when they are not one."""
    try:
        return call.parsed_arguments()
    except ValueError:
        raise BadRequestError(
            f"{provider} takes a tool call's arguments as a JSON object, and those of call {call.id!r} "
            f"({call.name}) are not one: {call.arguments[:200]!r}",
            provider=provider,
        ) from None


def arguments_text(value: object) -> str:
    """Arguments the provider sent, as JSON text: text as it is, an object written as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "{}"
    return json.dumps(value, ensure_ascii=False)


def synthetic_id(choice: int, position: int) -> str:
    """The id of a call the provider gave none: stable for the same choice and position."""
    return f"call_{choice}_{position}"


def whole_call_deltas(choice: int, calls: Sequence[ToolCall], start: int = 0) -> list[ToolCallDelta]:
    """One piece per call, with everything (how providers that stream whole calls are relayed);
    the first call is the choice's call ``start``."""
    return [
        ToolCallDelta(
            index=choice,
            call=start + offset,
            id=call.id,
            name=call.name,
            arguments=call.arguments,
            signature=call.signature,
        )
        for offset, call in enumerate(calls)
    ]


class ToolCallPieces:
    """The pieces of the tool calls of one stream, from OpenAI-style ``delta.tool_calls`` items.

    A call's first piece carries its id and name, later pieces argument fragments only, whatever
    the server repeats; an item without ``index`` continues the choice's last call unless it
    brings another id. A call the server gave no id gets a synthetic one when it starts.
    """

    __slots__ = ("_calls", "_last")

    def __init__(self) -> None:
        self._calls: dict[tuple[int, int], tuple[str, bool]] = {}
        """(choice, position) → the call's id and whether its name was given."""
        self._last: dict[int, int] = {}

    def piece(self, choice: int, item: object) -> ToolCallDelta | None:
        """The piece an item of ``delta.tool_calls`` of ``choice`` brings (``None`` when it brings nothing)."""
        if not isinstance(item, dict):
            return None
        function = item.get("function")
        function = function if isinstance(function, dict) else {}
        call_id = item.get("id") if isinstance(item.get("id"), str) and item.get("id") else None
        position = item.get("index")
        if not isinstance(position, int) or position < 0:
            position = self._position(choice, call_id)
        self._last[choice] = position
        arguments = function.get("arguments")
        text = arguments_text(arguments) if arguments is not None and arguments != "" else ""
        name = function.get("name") if isinstance(function.get("name"), str) else None
        key = (choice, position)
        signature = openai_call_signature(item)
        started = self._calls.get(key)
        if started is None:
            self._calls[key] = (call_id or synthetic_id(choice, position), bool(name))
            call_id = self._calls[key][0]
            return ToolCallDelta(
                index=choice, call=position, id=call_id, name=name, arguments=text, signature=signature
            )
        named = started[1]
        if name and not named:
            self._calls[key] = (started[0], True)
            return ToolCallDelta(index=choice, call=position, name=name, arguments=text, signature=signature)
        if text or signature:
            return ToolCallDelta(index=choice, call=position, arguments=text, signature=signature)
        return None

    def _position(self, choice: int, call_id: str | None) -> int:
        last = self._last.get(choice)
        if last is None:
            return 0
        if call_id is not None and call_id != self._calls[(choice, last)][0]:
            return last + 1
        return last

    def called(self, choice: int) -> bool:
        """Whether ``choice`` has started any call."""
        return choice in self._last
