"""How real providers take tools and answer with tool calls, for the fake servers.

Pure functions over request bodies and replies, shared by every fake (``FakeOpenAIServer``,
``FakeProviderServer``, the real-model fakes of ``tests/router/fakes_real.py``):

- :func:`tool_refusal`: the 400 a provider answers a request's tools and tool turns with, in its
  own words: tools sent to a model without them, a tool choice naming no offered tool, a tool
  result answering no call of the turn before it (and, where the provider insists, a call left
  unanswered), arguments in the wrong form, a schema field Gemini does not know, a Gemini 3 function
  call turn without its thought signature;
- renderers of tool calls in each format, plain and streamed the way each provider streams them:
  OpenAI an id-and-name delta then argument fragments, Anthropic a ``tool_use`` block start then
  ``input_json_delta`` fragments, Gemini and Ollama whole calls;
- :func:`chat_tools`, :func:`chat_tool_choice`: a request's tools and tool choice in OpenAI's shape,
  whatever its format, so that one reply function serves every format.

The messages are the providers' own where known (OpenAI's, Anthropic's, Gemini's and Ollama's
errors as their APIs word them), close paraphrases otherwise.
"""

from __future__ import annotations as _annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from optillm_core import ToolCall

__all__ = (
    "FakeError",
    "anthropic_tool_blocks",
    "anthropic_tool_events",
    "argument_pieces",
    "chat_tool_choice",
    "chat_tools",
    "gemini_call_parts",
    "offered_calls",
    "ollama_tool_calls",
    "openai_tool_calls",
    "openai_tool_deltas",
    "tool_refusal",
)

ToolWire = Literal["openai", "anthropic", "gemini", "ollama"]

GEMINI_SCHEMA_FIELDS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "items", "properties", "required",
        "minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
        "minimum", "maximum", "anyOf", "propertyOrdering", "default", "example",
    }
)  # fmt: skip
"""The fields of Gemini's ``Schema``, written down apart from the client's list so that a mistake shows."""


@dataclass(frozen=True)
class FakeError:
    """The provider's error answer: status and JSON payload."""

    status: int
    payload: Mapping[str, Any] = field(default_factory=dict)

    @property
    def message(self) -> str:
        error = self.payload.get("error")
        if isinstance(error, str):
            return error
        return str(error.get("message")) if isinstance(error, Mapping) else ""


def error_of(wire: ToolWire, message: str, *, param: str | None = None, code: str | None = None) -> FakeError:
    """A 400 in ``wire``'s error shape."""
    if wire == "openai":
        return FakeError(
            400, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
        )
    if wire == "anthropic":
        error = {"type": "invalid_request_error", "message": message}
        return FakeError(400, {"type": "error", "error": error, "request_id": "req_fake"})
    if wire == "gemini":
        return FakeError(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})
    return FakeError(400, {"error": message})


# -- what providers refuse ---------------------------------------------------------------------------


def tool_refusal(
    wire: ToolWire, body: Mapping[str, Any], *, tools: bool = True, model: str = "fake-model"
) -> FakeError | None:
    """The 400 the provider of ``wire`` answers ``body``'s tools and tool turns with; ``None`` when it takes them.

    ``tools``: whether the model takes tools at all.
    """
    if wire == "openai":
        return _openai(body, tools)
    if wire == "anthropic":
        return _anthropic(body, tools)
    if wire == "gemini":
        return _gemini(body, tools, model)
    return _ollama(body, tools, model)


def _names(tools: object, *path: str) -> list[str]:
    names: list[str] = []
    for tool in tools if isinstance(tools, list) else ():
        for key in path:
            tool = tool.get(key) if isinstance(tool, Mapping) else None
        if isinstance(tool, str):
            names.append(tool)
    return names


def _openai(body: Mapping[str, Any], takes_tools: bool) -> FakeError | None:
    tools = body.get("tools")
    if tools and not takes_tools:
        return error_of(
            "openai", "Unsupported parameter: 'tools' is not supported with this model.", param="tools",
            code="unsupported_parameter",
        )  # fmt: skip
    choice = body.get("tool_choice")
    if choice is not None and not tools:
        return error_of(
            "openai", "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            param="tool_choice",
        )  # fmt: skip
    if body.get("parallel_tool_calls") is not None and not tools:
        return error_of(
            "openai",
            "Invalid value for 'parallel_tool_calls': "
            "'parallel_tool_calls' is only allowed when 'tools' are specified.",
            param="parallel_tool_calls",
        )  # fmt: skip
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name")
        if name not in _names(tools, "function", "name"):
            return error_of(
                "openai", f"Invalid value for 'tool_choice': function '{name}' not found in 'tools'.",
                param="tool_choice",
            )  # fmt: skip
    return _openai_turns(body.get("messages") or ())


def _openai_turns(messages: Sequence[Any]) -> FakeError | None:
    """Every tool message answers a call of the assistant message before its run; every call is answered."""
    pending: list[str] = []
    open_ids: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            continue
        role = message.get("role")
        if role == "tool":
            if message.get("tool_call_id") not in open_ids:
                return error_of(
                    "openai",
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    param=f"messages.[{index}].role",
                )
            pending = [p for p in pending if p != message.get("tool_call_id")]
            continue
        if pending:
            return _unanswered(pending)
        open_ids = set()
        for position, call in enumerate(message.get("tool_calls") or ()):
            arguments = (call.get("function") or {}).get("arguments") if isinstance(call, Mapping) else None
            if not isinstance(arguments, str):
                return error_of(
                    "openai",
                    f"Invalid type for 'messages[{index}].tool_calls[{position}].function.arguments': expected a "
                    f"string, but got {type(arguments).__name__} instead.",
                    param=f"messages[{index}].tool_calls[{position}].function.arguments",
                    code="invalid_type",
                )
            open_ids.add(str(call.get("id")))
            pending.append(str(call.get("id")))
    return _unanswered(pending) if pending else None


def _unanswered(ids: list[str]) -> FakeError:
    return error_of(
        "openai",
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(ids)}",
        param="messages",
    )


def _blocks(message: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, Mapping) and b.get("type") == kind]


def _anthropic(body: Mapping[str, Any], takes_tools: bool) -> FakeError | None:
    tools = body.get("tools")
    if tools and not takes_tools:
        return error_of("anthropic", "tools: this model does not support tool use")
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping) and choice.get("type") == "none" and "disable_parallel_tool_use" in choice:
        return error_of("anthropic", "tool_choice.none.disable_parallel_tool_use: Extra inputs are not permitted")
    if isinstance(choice, Mapping) and choice.get("type") == "tool":
        name = choice.get("name")
        if name not in _names(tools, "name"):
            return error_of("anthropic", f"tool_choice: tool '{name}' was not found in the provided tools")
    messages = [m for m in body.get("messages") or () if isinstance(m, Mapping)]
    for index, message in enumerate(messages):
        for position, use in enumerate(_blocks(message, "tool_use")):
            if not isinstance(use.get("input"), Mapping):
                return error_of(
                    "anthropic",
                    f"messages.{index}.content.{position}.tool_use.input: Input should be a valid dictionary",
                )
        uses = [str(u.get("id")) for u in _blocks(messages[index - 1], "tool_use")] if index else []
        for position, result in enumerate(_blocks(message, "tool_result")):
            if result.get("tool_use_id") not in uses:
                return error_of(
                    "anthropic",
                    f"messages.{index}.content.{position}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{result.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                    "block in the previous message.",
                )
    for index, message in enumerate(messages[:-1]):
        answered = {str(r.get("tool_use_id")) for r in _blocks(messages[index + 1], "tool_result")}
        missing = [str(u.get("id")) for u in _blocks(message, "tool_use") if str(u.get("id")) not in answered]
        if missing:
            return error_of(
                "anthropic",
                f"messages.{index + 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                "next message.",
            )
    return None


def _declarations(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    declarations: list[Mapping[str, Any]] = []
    for tool in body.get("tools") or ():
        if isinstance(tool, Mapping):
            declarations += [d for d in tool.get("functionDeclarations") or () if isinstance(d, Mapping)]
    return declarations


def _gemini(body: Mapping[str, Any], takes_tools: bool, model: str) -> FakeError | None:
    declarations = _declarations(body)
    if declarations and not takes_tools:
        return error_of("gemini", f"Function calling is not enabled for models/{model}")
    for position, declaration in enumerate(declarations):
        parameters = declaration.get("parameters")
        if isinstance(parameters, Mapping):
            problem = _gemini_schema_problem(parameters, f"tools[0].function_declarations[{position}].parameters")
            if problem is not None:
                return error_of("gemini", problem)
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    names = [str(d.get("name")) for d in declarations]
    for name in config.get("allowedFunctionNames") or ():
        if name not in names:
            return error_of(
                "gemini",
                f"* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: function "
                f"'{name}' is not declared in tools",
            )
    contents = [c for c in body.get("contents") or () if isinstance(c, Mapping)]
    if _gemini_requires_signatures(model):
        for index, content in enumerate(contents):
            calls = [p for p in content.get("parts") or () if isinstance(p, Mapping) and "functionCall" in p]
            if calls and not calls[0].get("thoughtSignature"):
                name = (calls[0].get("functionCall") or {}).get("name")
                return error_of(
                    "gemini",
                    f"Function call `{name}` in the `{index + 1}.` content block is missing a `thought_signature`.",
                )
    return _gemini_turns(contents)


def _gemini_schema_problem(schema: Mapping[str, Any], where: str) -> str | None:
    for key in schema:
        if key not in GEMINI_SCHEMA_FIELDS:
            return f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': Cannot find field."
    if str(schema.get("type", "")).lower() == "object" and not schema.get("properties"):
        return f"* GenerateContentRequest.{where}.properties: should be non-empty for OBJECT type"
    for name, value in (schema.get("properties") or {}).items():
        if isinstance(value, Mapping) and (
            problem := _gemini_schema_problem(value, f"{where}.properties[{name}].value")
        ):
            return problem
    items = schema.get("items")
    return _gemini_schema_problem(items, f"{where}.items") if isinstance(items, Mapping) else None


def _parts(content: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [p[kind] for p in content.get("parts") or () if isinstance(p, Mapping) and isinstance(p.get(kind), Mapping)]


def _gemini_turns(contents: list[Mapping[str, Any]]) -> FakeError | None:
    for index, content in enumerate(contents):
        responses = _parts(content, "functionResponse")
        if not responses:
            continue
        calls = _parts(contents[index - 1], "functionCall") if index else []
        if not calls:
            return error_of(
                "gemini",
                "Please ensure that function response turn comes immediately after a function call turn.",
            )
        if len(responses) != len(calls):
            return error_of(
                "gemini",
                "Please ensure that the number of function response parts is equal to the number of function call "
                "parts of the function call turn.",
            )
    return None


def _ollama(body: Mapping[str, Any], takes_tools: bool, model: str) -> FakeError | None:
    if body.get("tools") and not takes_tools:
        return error_of("ollama", f"registry.ollama.ai/library/{model} does not support tools")
    for message in body.get("messages") or ():
        for call in (message.get("tool_calls") if isinstance(message, Mapping) else None) or ():
            arguments = (call.get("function") or {}).get("arguments") if isinstance(call, Mapping) else None
            if arguments is not None and not isinstance(arguments, Mapping):
                return error_of(
                    "ollama",
                    "json: cannot unmarshal string into Go struct field ToolCallFunction.messages.tool_calls.function"
                    ".arguments of type api.ToolCallFunctionArguments",
                )
    return None


def offered_calls(calls: tuple[ToolCall, ...], tools: object, tool_choice: object) -> tuple[ToolCall, ...]:
    """The calls a model can make: to tools the request (OpenAI's shape) offers, none under ``none``."""
    if not calls or tool_choice == "none":
        return ()
    names = set(_names(tools, "function", "name"))
    return tuple(call for call in calls if call.name in names)


# -- tools and tool choices in OpenAI's shape ----------------------------------------------------------


def chat_tools(wire: ToolWire, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The request's tools as OpenAI's ``[{"type": "function", "function": {...}}]``."""
    if wire in ("openai", "ollama"):
        return [dict(t) for t in body.get("tools") or () if isinstance(t, Mapping) and "function" in t]
    if wire == "anthropic":
        functions = [
            {"name": t.get("name"), "description": t.get("description"), "parameters": t.get("input_schema")}
            for t in body.get("tools") or ()
            if isinstance(t, Mapping)
        ]
    else:
        functions = [
            {
                "name": d.get("name"),
                "description": d.get("description"),
                "parameters": d.get("parameters") or {"type": "object", "properties": {}},
            }
            for d in _declarations(body)
        ]
    return [{"type": "function", "function": f} for f in functions]


def chat_tool_choice(wire: ToolWire, body: Mapping[str, Any]) -> str | dict[str, Any] | None:
    """The request's tool choice in OpenAI's shape (``None`` when it sets none)."""
    if wire == "openai":
        choice = body.get("tool_choice")
        return dict(choice) if isinstance(choice, Mapping) else choice
    if wire == "anthropic":
        choice = body.get("tool_choice")
        if not isinstance(choice, Mapping):
            return None
        kind = choice.get("type")
        if kind == "tool":
            return {"type": "function", "function": {"name": choice.get("name")}}
        return {"any": "required"}.get(str(kind), str(kind))
    if wire == "gemini":
        config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
        mode = config.get("mode")
        if mode is None:
            return None
        allowed = config.get("allowedFunctionNames") or []
        if mode == "ANY" and len(allowed) == 1:
            return {"type": "function", "function": {"name": allowed[0]}}
        return {"ANY": "required", "NONE": "none"}.get(str(mode), "auto")
    return None


# -- tool calls in each format --------------------------------------------------------------------------


def argument_pieces(arguments: str, pieces: int = 3) -> list[str]:
    """``arguments`` cut into ``pieces`` fragments (fewer when it is short), as providers stream them."""
    if not arguments:
        return []
    size = max(1, -(-len(arguments) // pieces))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def _object(call: ToolCall) -> Any:
    try:
        return json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        return {}


def openai_tool_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """``message.tool_calls`` of a chat completion; a call with a ``signature`` carries it as Google's
    OpenAI-compatible API does, in ``extra_content.google.thought_signature``."""
    return [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
            **({"extra_content": {"google": {"thought_signature": c.signature}}} if c.signature else {}),
        }
        for c in calls
    ]


def openai_tool_deltas(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """The ``delta`` objects streaming ``calls``: for each, its id and name, then its arguments in fragments."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        first = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        if call.signature:
            first["extra_content"] = {"google": {"thought_signature": call.signature}}
        deltas.append({"tool_calls": [first]})
        deltas += [
            {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
            for piece in argument_pieces(call.arguments)
        ]
    return deltas


def anthropic_tool_blocks(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """``tool_use`` content blocks (``input``: the arguments as an object)."""
    return [{"type": "tool_use", "id": c.id, "name": c.name, "input": _object(c)} for c in calls]


def anthropic_tool_events(calls: Sequence[ToolCall], first_index: int) -> list[tuple[str, dict[str, Any]]]:
    """A stream's ``tool_use`` blocks, numbered from ``first_index``: start (``input`` empty), fragments, stop."""
    events: list[tuple[str, dict[str, Any]]] = []
    for offset, call in enumerate(calls):
        index = first_index + offset
        block = {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": block}))
        for piece in argument_pieces(json.dumps(_object(call))):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def _gemini_signs_calls(model: str) -> bool:
    """Whether ``model`` signs its function calls: the thinking models, Gemini 2.5 and 3."""
    return model.startswith(("gemini-2.5", "gemini-3"))


def _gemini_requires_signatures(model: str) -> bool:
    """Gemini 3 refuses a function call turn sent back without its signature; 2.5 does not check."""
    return model.startswith("gemini-3")


def gemini_call_parts(calls: Sequence[ToolCall], *, ids: bool = False, model: str = "") -> list[dict[str, Any]]:
    """``functionCall`` parts; without ``ids`` as the older API sends them (no id). A model that signs
    its calls (the thinking models, 2.5 and 3) puts an opaque ``thoughtSignature`` on the first part, as
    Gemini does for each step's first call."""
    parts: list[dict[str, Any]] = []
    for position, call in enumerate(calls):
        function: dict[str, Any] = {"name": call.name, "args": _object(call)}
        if ids:
            function["id"] = call.id
        part: dict[str, Any] = {"functionCall": function}
        if position == 0 and _gemini_signs_calls(model):
            digest = hashlib.sha256(f"{model}/{call.name}/{call.arguments}".encode()).digest()
            part["thoughtSignature"] = base64.b64encode(digest).decode()
        parts.append(part)
    return parts


def ollama_tool_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    """``message.tool_calls`` of Ollama's ``/api/chat``: no ids, arguments as an object."""
    return [{"function": {"name": c.name, "arguments": _object(c)}} for c in calls]
