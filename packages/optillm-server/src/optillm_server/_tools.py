"""Tool calls on the OpenAI chat wire: ``tools`` and ``tool_choice`` in, ``tool_calls`` out, plain and streamed.

Requests are read into core's types (:class:`~optillm_core.ToolDefinition`,
:class:`~optillm_core.ToolChoice`, :class:`~optillm_core.ToolCall`), each shape checked with a 400
that names the field; answers are written back as OpenAI writes them: ``message.tool_calls`` with
``finish_reason: "tool_calls"``, or ``delta.tool_calls`` pieces in a stream. Which strategies can
answer with the caller's tools, and which calls of a pipeline get them, is decided here too.
"""

from __future__ import annotations as _annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from optillm_core import (
    FinishReason,
    GenerationSettings,
    Optimizer,
    OptimizerInfo,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    ToolDefinition,
)
from optillm_router import add_openai_signature, openai_call_signature, openai_tool_call

from ._errors import ApiError

__all__ = (
    "ToolCallPieces",
    "check_strategies_answer_with_tools",
    "choice_finish_reason",
    "message_tool_calls",
    "parse_tool_calls",
    "parse_tool_choice",
    "parse_tools",
    "stage_settings",
    "tool_call_chunks",
)

# OpenAI's rule for function names: letters, digits, underscores and dashes, at most 64.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_MODES = ("auto", "none", "required")


def parse_tools(value: Any) -> tuple[ToolDefinition, ...] | None:
    """The request's ``tools`` (``[{"type": "function", "function": {...}}]``); ``None`` when absent or empty."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ApiError(400, "'tools' must be a list of {'type': 'function', 'function': {...}} objects", param="tools")
    tools: list[ToolDefinition] = []
    for index, item in enumerate(value):
        param = f"tools.{index}"
        if not isinstance(item, dict) or item.get("type") != "function":
            kind = item.get("type") if isinstance(item, dict) else type(item).__name__
            raise ApiError(
                400,
                f"tool {index} must have type 'function' (got {kind!r}): only function tools are supported",
                param=param,
            )
        function = item.get("function")
        if not isinstance(function, dict):
            raise ApiError(400, f"tool {index} needs a 'function' object with its name and parameters", param=param)
        tools.append(_definition(function, f"{param}.function"))
    names = [tool.name for tool in tools]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ApiError(400, f"tool name '{name}' is given twice: tool names must be unique", param=f"tools.{index}")
    return tuple(tools) or None


def _definition(function: Mapping[str, Any], param: str) -> ToolDefinition:
    name = function.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiError(
            400,
            f"invalid function name {name!r}: use letters, digits, underscores and dashes, at most 64",
            param=f"{param}.name",
        )
    description = function.get("description")
    if description is not None and not isinstance(description, str):
        raise ApiError(400, f"the description of '{name}' must be a string", param=f"{param}.description")
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise ApiError(400, f"the parameters of '{name}' must be a JSON Schema object", param=f"{param}.parameters")
    strict = function.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise ApiError(400, f"'strict' of '{name}' must be true or false", param=f"{param}.strict")
    fields: dict[str, Any] = {"name": name, "description": description, "strict": strict}
    if parameters is not None:
        fields["parameters"] = parameters
    return ToolDefinition(**fields)


def parse_tool_choice(value: Any, tools: Sequence[ToolDefinition] | None) -> ToolChoice | None:
    """The request's ``tool_choice``: a mode, or ``{"type": "function", "function": {"name": ...}}``.

    ``auto`` or ``none`` without tools is left out (they ask for nothing); ``required`` or a named
    tool without tools, or a name that is not among them, is a 400.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value not in _MODES:
            raise ApiError(
                400,
                f"'tool_choice' must be 'auto', 'none', 'required' or a function (got {value!r})",
                param="tool_choice",
            )
        if not tools:
            if value == "required":
                raise ApiError(400, "'tool_choice' 'required' needs 'tools' to choose from", param="tool_choice")
            return None
        return ToolChoice.model_validate({"mode": value})
    function = value.get("function") if isinstance(value, dict) and value.get("type") == "function" else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str):
        raise ApiError(
            400,
            "'tool_choice' must be 'auto', 'none', 'required' or {'type': 'function', 'function': {'name': ...}}",
            param="tool_choice",
        )
    if name not in {tool.name for tool in tools or ()}:
        raise ApiError(
            400, f"'tool_choice' names '{name}', which is not one of the request's tools", param="tool_choice"
        )
    return ToolChoice.tool(name)


def parse_tool_calls(value: Any, param: str) -> tuple[ToolCall, ...]:
    """An assistant message's ``tool_calls`` (``[{"id", "type": "function", "function": {"name", "arguments"}}]``)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ApiError(400, "'tool_calls' must be a list of function calls", param=param)
    calls: list[ToolCall] = []
    for index, item in enumerate(value):
        where = f"{param}.{index}"
        function = item.get("function") if isinstance(item, dict) else None
        if not isinstance(item, dict) or item.get("type", "function") != "function" or not isinstance(function, dict):
            raise ApiError(400, "each tool call must be {'id', 'type': 'function', 'function': {...}}", param=where)
        call_id, name, arguments = item.get("id"), function.get("name"), function.get("arguments", "")
        if not isinstance(call_id, str) or not call_id:
            raise ApiError(400, "each tool call needs its 'id', which the tool's result answers", param=f"{where}.id")
        if not isinstance(name, str) or not name:
            raise ApiError(400, "each tool call needs the function's 'name'", param=f"{where}.function.name")
        if not isinstance(arguments, str):
            raise ApiError(
                400,
                "a tool call's 'arguments' must be the JSON text the model wrote",
                param=f"{where}.function.arguments",
            )
        calls.append(ToolCall(id=call_id, name=name, arguments=arguments, signature=openai_call_signature(item)))
    return tuple(calls)


def message_tool_calls(calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
    """``message.tool_calls`` of a ``chat.completion``; a call's signature rides in ``extra_content``
    (see :func:`optillm_router.openai_tool_call`)."""
    return [openai_tool_call(call) for call in calls]


def tool_call_chunks(calls: Iterable[ToolCall]) -> list[dict[str, Any]]:
    """The stream deltas of whole tool calls, one per call (each with its id, name and all its arguments)."""
    return [
        {"tool_calls": [{"index": position, **payload}]} for position, payload in enumerate(message_tool_calls(calls))
    ]


def choice_finish_reason(reason: FinishReason | None, has_calls: bool) -> str:
    """OpenAI's finish reason of a choice: ``tool_calls`` when it called tools and the provider said only ``stop``."""
    if has_calls and reason in (None, "stop", "tool_calls"):
        return "tool_calls"
    return reason or "stop"


class ToolCallPieces:
    """Turns :class:`~optillm_core.ToolCallDelta` events into ``delta.tool_calls`` pieces, as OpenAI streams them.

    A call's first piece carries its ``index`` (its position in the choice), ``id``, ``type`` and
    ``function.name``; later pieces carry fragments of ``function.arguments``. A call whose
    provider gave no id gets ``call_<choice>_<position>``, the id core gives it when collecting.
    """

    def __init__(self) -> None:
        self._started: set[tuple[int, int]] = set()

    def called(self, choice: int) -> bool:
        """Whether choice ``choice`` has begun a tool call."""
        return any(index == choice for index, _ in self._started)

    def delta(self, event: ToolCallDelta) -> dict[str, Any] | None:
        """The ``delta`` of one piece, or ``None`` for a piece that adds nothing."""
        key = (event.index, event.call)
        if key not in self._started:
            self._started.add(key)
            call_id = event.id or f"call_{event.index}_{event.call}"
            function = {"name": event.name or "", "arguments": event.arguments}
            first = {"index": event.call, "id": call_id, "type": "function", "function": function}
            return {"tool_calls": [add_openai_signature(first, event.signature)]}
        if not event.arguments and not event.signature:
            return None
        piece: dict[str, Any] = {"index": event.call, "function": {"arguments": event.arguments}}
        return {"tool_calls": [add_openai_signature(piece, event.signature)]}


def check_strategies_answer_with_tools(
    optimizers: Sequence[Optimizer[Any]], mode: str, settings: GenerationSettings, registry: Iterable[OptimizerInfo]
) -> None:
    """A 400 naming the strategy, before any call, when the tools would reach one that cannot answer with them.

    In a pipeline (``a&b``) only the last strategy's answer is returned, so only it gets the tools;
    the others write text drafts. With ``tool_choice: "none"`` no tool may be called, so a strategy
    that cannot answer with tools runs without them instead of being refused.
    """
    if not settings.tools or (settings.tool_choice is not None and settings.tool_choice.mode == "none"):
        return
    answering = optimizers[-1:] if mode == "pipeline" else optimizers
    if all(o.answers_with_tools for o in answering):
        return
    able = sorted(info.name for info in registry if info.optimizer.answers_with_tools)
    alternatives = f"strategies that can: {', '.join(able)}" if able else "no installed strategy can"
    refusing = next(o for o in answering if not o.answers_with_tools)
    raise ApiError(
        400,
        f"the {refusing.name} strategy cannot answer with tool calls: {refusing.without_tools_because}; send the "
        f"request without 'tools', without a strategy, or with a strategy that answers with tools ({alternatives})",
        param="tools",
        code="tools_not_supported_by_strategy",
    )


def stage_settings(optimizer: Optimizer[Any], settings: GenerationSettings, *, last: bool) -> GenerationSettings:
    """The settings one strategy of a request runs under: the caller's tools only where its answer is returned.

    An earlier stage of a pipeline writes a draft in text, and a strategy that cannot answer with
    tools runs without them when ``tool_choice`` is ``none``; both run without the tools.
    """
    if not settings.tools:
        return settings
    choice_none = settings.tool_choice is not None and settings.tool_choice.mode == "none"
    if last and (optimizer.answers_with_tools or not choice_none):
        return settings
    return settings.with_(tools=None, tool_choice=None)
