"""The OpenAI Responses wire format: the requests ``POST /v1/responses`` reads, turned into core types.

A request's ``instructions``, ``input`` items and any stored earlier turns (``previous_response_id``)
become the system prompt's parts and core :class:`~optillm_core.Message` turns; its tools become
core :class:`~optillm_core.ToolDefinition` objects. ``custom`` (freeform) tools go to the model as a
function taking one string, ``input``, and their calls come back as ``custom_tool_call`` items.
Hosted tools the proxy cannot run for the model (``web_search``, ``image_generation``,
``local_shell``, ``namespace`` groups, any type it does not know) are left out of what the model
sees; the response lists them in ``optillm.dropped_tools``. Unknown top-level fields are ignored,
as OpenAI's own server ignores fields it added later.
"""

from __future__ import annotations as _annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from optillm_core import GenerationSettings, Message, ModelProfile, ToolCall, ToolChoice, ToolDefinition

from ._errors import ApiError

__all__ = ("ResponsesInput", "ResponsesRequest", "ToolSet", "read_input")

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SYSTEM_ROLES = frozenset({"system", "developer"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "refusal"})
_SKIPPED_ITEMS = frozenset({"reasoning", "web_search_call", "image_generation_call", "item_reference"})
"""Items a client sends back that no model reads as text: earlier reasoning and hosted tools' records."""
CUSTOM_INPUT = "input"
"""The one argument of the function a ``custom`` tool becomes for the model."""

# Reasoning effort as the providers' thinking budgets, in tokens (Anthropic's minimum is 1024).
_THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384, "xhigh": 32768}


class Reasoning(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None


class TextOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    format: dict[str, Any] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None

    @property
    def json_schema(self) -> dict[str, Any] | None:
        """The ``json_schema`` format asked for (``{"type": "json_schema", "name", "schema", "strict"}``), if any."""
        if self.format is None or self.format.get("type", "text") == "text":
            return None
        if self.format.get("type") == "json_object":
            return {"type": "json_object"}
        if self.format.get("type") != "json_schema" or not isinstance(self.format.get("schema"), dict):
            raise ApiError(
                400,
                "'text.format' must be {'type': 'text'}, {'type': 'json_object'} or "
                "{'type': 'json_schema', 'name': ..., 'schema': {...}}",
                param="text.format",
            )
        return self.format


class ResponsesRequest(BaseModel):
    """The fields of a Responses request that the proxy interprets; any other field is accepted and ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str = Field(min_length=1)
    input: str | tuple[dict[str, Any], ...] | None = None
    instructions: str | None = None
    tools: tuple[dict[str, Any], ...] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    reasoning: Reasoning | None = None
    text: TextOptions | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    prompt_cache_key: str | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    include: tuple[str, ...] | None = None
    user: str | None = None
    stream: bool = False
    optillm_approach: str | None = None
    optillm_config: dict[str, Any] | None = None
    optillm_drop_unsupported: Literal["drop", "error"] | None = None

    @classmethod
    def parse(cls, raw: bytes) -> ResponsesRequest:
        """The request, or a 400 naming the field that is missing or wrong."""
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"the request body is not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object with 'model' and 'input'")
        try:
            request = cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join(str(p) for p in first["loc"]) or None
            where = f"'{param}'" if param else "the request"
            raise ApiError(400, f"invalid {where}: {first['msg']}", param=param) from None
        if request.input is None and request.previous_response_id is None:
            raise ApiError(400, "'input' is required: a string or a list of input items", param="input")
        if request.text is not None:
            _ = request.text.json_schema  # a malformed format is a 400 at once
        return request

    @property
    def stored(self) -> bool:
        """Whether the response is kept for ``previous_response_id`` and ``GET`` (OpenAI's default: yes)."""
        return self.store is not False

    @property
    def wants_reasoning(self) -> bool:
        """Whether a strategy's thinking goes back as a ``reasoning`` item (the request asked for reasoning)."""
        return self.reasoning is not None and self.reasoning.effort != "none"

    def tool_set(self) -> ToolSet:
        return ToolSet.parse(self.tools or ())

    def settings(self, tools: ToolSet, profile: ModelProfile, *, pass_through: bool) -> GenerationSettings:
        """The sampling settings and tools; on pass-through, reasoning effort and structured output too.

        Reasoning effort reaches the model in its provider's form (OpenAI's ``reasoning_effort``,
        an Anthropic or Gemini thinking budget) and is left out for a model with neither;
        ``text.format`` becomes the provider's structured output where it has one; ``service_tier``,
        ``prompt_cache_key`` and (reasoning models) ``text.verbosity`` go to OpenAI's own API, whose
        profile is the one that sends ``max_completion_tokens``. Strategies set their own limits and
        temperatures per call, so these are for pass-through only.
        """
        definitions = tools.definitions
        choice = tools.choice(self.tool_choice)
        if definitions and self.parallel_tool_calls is not None:
            choice = (choice or ToolChoice()).model_copy(update={"parallel": self.parallel_tool_calls})
        extra: dict[str, Any] = {}
        if pass_through:
            extra.update(self._provider_fields(profile))
        values: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_output_tokens,
            "tools": definitions or None,
            "tool_choice": choice if definitions else None,
            "extra": extra,
        }
        return GenerationSettings(**{k: v for k, v in values.items() if v is not None})

    def _provider_fields(self, profile: ModelProfile) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        effort = self.reasoning.effort if self.reasoning is not None else None
        schema = self.text.json_schema if self.text is not None else None
        if profile.thinking == "anthropic_blocks":
            if effort in _THINKING_BUDGETS:
                fields["thinking"] = {"type": "enabled", "budget_tokens": _THINKING_BUDGETS[effort]}
            return fields  # Anthropic's API has no structured output field
        if profile.thinking == "gemini_thoughts":
            if effort in _THINKING_BUDGETS:
                fields["thinkingConfig"] = {"thinkingBudget": _THINKING_BUDGETS[effort], "includeThoughts": True}
            if schema is not None:
                fields["responseMimeType"] = "application/json"
                if "schema" in schema:
                    fields["responseJsonSchema"] = schema["schema"]
            return fields
        if profile.max_tokens_field == "num_predict":  # Ollama's own API
            if schema is not None:
                fields["format"] = schema.get("schema", "json")
            return fields
        if profile.thinking == "hidden" and effort is not None:  # OpenAI's reasoning models
            fields["reasoning_effort"] = effort
        if schema is not None:
            fields["response_format"] = _chat_response_format(schema)
        if profile.max_tokens_field == "max_completion_tokens":  # OpenAI's own API (and its reasoning models)
            optional = {"service_tier": self.service_tier, "prompt_cache_key": self.prompt_cache_key}
            if profile.thinking == "hidden" and self.text is not None:
                optional["verbosity"] = self.text.verbosity
            fields.update({key: value for key, value in optional.items() if value is not None})
        return fields

    def refuse_structured_output(self) -> None:
        """Strategies answer in free text; a JSON schema would silently not hold, so it is refused."""
        if self.text is not None and self.text.json_schema is not None:
            raise ApiError(
                400,
                "'text.format' cannot be used with a strategy: strategies answer in free text "
                "(ask for the format in the prompt, or send the request without a strategy)",
                param="text.format",
            )


def _chat_response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    if schema.get("type") == "json_object":
        return {"type": "json_object"}
    inner = {"name": schema.get("name") or "response", "schema": schema["schema"]}
    if schema.get("strict") is not None:
        inner["strict"] = schema["strict"]
    if schema.get("description"):
        inner["description"] = schema["description"]
    return {"type": "json_schema", "json_schema": inner}


# -- tools ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolSet:
    """The request's tools as the model sees them, which of them are ``custom``, and which were left out."""

    definitions: tuple[ToolDefinition, ...] = ()
    custom: frozenset[str] = frozenset()
    dropped: tuple[str, ...] = ()
    """The tools left out, as ``type`` or ``type:name``."""

    @classmethod
    def parse(cls, tools: Sequence[Mapping[str, Any]]) -> ToolSet:
        definitions: list[ToolDefinition] = []
        custom: set[str] = set()
        dropped: list[str] = []
        for index, tool in enumerate(tools):
            kind = tool.get("type")
            param = f"tools.{index}"
            if kind == "function":
                definitions.append(_function_tool(tool, param))
            elif kind == "custom":
                definitions.append(_custom_tool(tool, param))
                custom.add(definitions[-1].name)
            else:
                name = tool.get("name")
                dropped.append(f"{kind}:{name}" if isinstance(name, str) else str(kind))
        names = [d.name for d in definitions]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ApiError(400, f"tool name '{name}' is given twice: tool names must be unique", param="tools")
        return cls(tuple(definitions), frozenset(custom), tuple(dropped))

    def choice(self, value: str | Mapping[str, Any] | None) -> ToolChoice | None:
        """``tool_choice``: ``auto``, ``none``, ``required``, or ``{"type": "function" | "custom", "name"}``."""
        if value is None:
            return None
        if isinstance(value, str):
            if value not in ("auto", "none", "required"):
                raise ApiError(
                    400, f"'tool_choice' must be 'auto', 'none' or 'required' (got {value!r})", param="tool_choice"
                )
            if value == "required" and not self.definitions:
                raise ApiError(400, "'tool_choice' 'required' needs tools to choose from", param="tool_choice")
            return ToolChoice.model_validate({"mode": value})
        kind, name = value.get("type"), value.get("name")
        if kind in ("function", "custom"):
            if not isinstance(name, str) or name not in {d.name for d in self.definitions}:
                raise ApiError(
                    400, f"'tool_choice' names {name!r}, which is not one of the request's tools", param="tool_choice"
                )
            return ToolChoice.tool(name)
        if kind == "allowed_tools":
            mode = value.get("mode", "auto")
            return ToolChoice.model_validate({"mode": "required" if mode == "required" else "auto"})
        return None  # a hosted tool the model cannot see: it chooses among the others

    def is_custom(self, name: str) -> bool:
        return name in self.custom


def _function_tool(tool: Mapping[str, Any], param: str) -> ToolDefinition:
    name = tool.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiError(
            400,
            f"invalid function name {name!r}: use letters, digits, underscores and dashes, at most 64",
            param=f"{param}.name",
        )
    description, parameters, strict = tool.get("description"), tool.get("parameters"), tool.get("strict")
    if description is not None and not isinstance(description, str):
        raise ApiError(400, f"the description of '{name}' must be a string", param=f"{param}.description")
    if parameters is not None and not isinstance(parameters, dict):
        raise ApiError(400, f"the parameters of '{name}' must be a JSON Schema object", param=f"{param}.parameters")
    if strict is not None and not isinstance(strict, bool):
        raise ApiError(400, f"'strict' of '{name}' must be true or false", param=f"{param}.strict")
    fields: dict[str, Any] = {"name": name, "description": description, "strict": strict}
    if parameters is not None:
        fields["parameters"] = parameters
    return ToolDefinition(**fields)


def _custom_tool(tool: Mapping[str, Any], param: str) -> ToolDefinition:
    """A freeform tool as a function of one string; its grammar, if any, is described to the model."""
    name = tool.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ApiError(400, f"invalid custom tool name {name!r}", param=f"{param}.name")
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise ApiError(400, f"the description of '{name}' must be a string", param=f"{param}.description")
    text = "The tool's whole input, as free text."
    form = tool.get("format")
    if isinstance(form, dict) and form.get("type") == "grammar":
        syntax, definition = form.get("syntax"), form.get("definition")
        text = f"The tool's whole input, which must match this {syntax} grammar:\n{definition}"
    parameters = {
        "type": "object",
        "properties": {CUSTOM_INPUT: {"type": "string", "description": text}},
        "required": [CUSTOM_INPUT],
        "additionalProperties": False,
    }
    return ToolDefinition(name=name, description=description, parameters=parameters)


def custom_input(call: ToolCall) -> str:
    """The freeform input of a call to a ``custom`` tool (the model wrote it as ``{"input": "..."}``)."""
    try:
        value = call.parsed_arguments().get(CUSTOM_INPUT, "")
    except ValueError:
        return call.arguments
    return value if isinstance(value, str) else json.dumps(value)


# -- input ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponsesInput:
    """A request's input as core types: the system prompt's parts and the turns, oldest first."""

    system: tuple[str, ...]
    turns: tuple[Message, ...]

    def client_messages(self) -> tuple[Message, ...]:
        """The whole conversation turn by turn, for a model client (the system parts as one system message)."""
        head = (Message.system("\n\n".join(self.system)),) if self.system else ()
        return (*head, *self.turns)


def read_input(request: ResponsesRequest, earlier: Sequence[Message] = ()) -> ResponsesInput:
    """``instructions`` and ``input`` (after the ``earlier`` turns of a stored response) as a :class:`ResponsesInput`.

    Message items become turns by role (``developer`` and ``system`` messages: system parts);
    ``function_call`` and ``custom_tool_call`` items become the calls of an assistant turn, and
    their outputs tool results, each answering a call made before it. ``reasoning`` items and
    hosted tools' records are accepted and not shown to the model.
    """
    system: list[str] = [request.instructions] if request.instructions else []
    turns: list[Message] = list(earlier)
    calls = {call.id for turn in turns for call in turn.tool_calls}
    items: Sequence[Any] = [{"role": "user", "content": request.input}] if isinstance(request.input, str) else ()
    if isinstance(request.input, tuple):
        items = request.input
    for index, item in enumerate(items):
        param = f"input.{index}"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            text = _content_text(item.get("content"), param)
            if role in _SYSTEM_ROLES:
                system.append(text)
            elif role == "user":
                turns.append(Message.user(text))
            elif role == "assistant":
                turns.append(Message.assistant(text))
            else:
                raise ApiError(
                    400,
                    f"message role {role!r} is not supported (use developer, system, user or assistant)",
                    param=f"{param}.role",
                )
        elif kind in ("function_call", "custom_tool_call"):
            call = _call(item, kind, param)
            calls.add(call.id)
            if turns and turns[-1].role == "assistant":
                last = turns.pop()
                turns.append(Message.assistant(last.content, tool_calls=(*last.tool_calls, call)))
            else:
                turns.append(Message.assistant("", tool_calls=(call,)))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or call_id not in calls:
                raise ApiError(
                    400,
                    f"item {index} is the output of call {call_id!r}, but no earlier function_call or "
                    "custom_tool_call item has that call_id",
                    param=f"{param}.call_id",
                )
            turns.append(Message.tool_result(_output_text(item.get("output"), param), tool_call_id=call_id))
        elif kind in _SKIPPED_ITEMS:
            continue
        else:
            raise ApiError(
                400,
                f"input item type {kind!r} is not supported (message, function_call, function_call_output, "
                "custom_tool_call, custom_tool_call_output and reasoning are)",
                param=f"{param}.type",
            )
    return ResponsesInput(tuple(system), tuple(turns))


def _content_text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ApiError(400, "a message's 'content' must be a string or a list of parts", param=f"{param}.content")
    texts: list[str] = []
    for position, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        where = f"{param}.content.{position}"
        if kind in _TEXT_PARTS:
            text = part.get("text", part.get("refusal"))
            if not isinstance(text, str):
                raise ApiError(400, f"'{where}.text' must be a string", param=where)
            texts.append(text)
        elif kind in ("input_image", "input_file", "input_audio"):
            raise ApiError(
                400,
                f"content parts of type {kind!r} are not supported by this proxy (its messages carry text only): "
                "send the text, or send the request straight to a provider that reads images and files",
                param=where,
            )
        else:
            raise ApiError(400, f"unknown content part type {kind!r}", param=where)
    return "".join(texts)


def _output_text(output: Any, param: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return _content_text(output, f"{param}.output")
    raise ApiError(400, "a tool output must be a string or a list of input_text parts", param=f"{param}.output")


def _call(item: Mapping[str, Any], kind: str, param: str) -> ToolCall:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
        raise ApiError(400, f"a {kind} item needs its 'call_id' and 'name'", param=param)
    if kind == "custom_tool_call":
        value = item.get("input", "")
        if not isinstance(value, str):
            raise ApiError(400, "a custom_tool_call's 'input' must be a string", param=f"{param}.input")
        return ToolCall(id=call_id, name=name, arguments=json.dumps({CUSTOM_INPUT: value}))
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        raise ApiError(
            400, "a function_call's 'arguments' must be the JSON text of the call", param=f"{param}.arguments"
        )
    return ToolCall(id=call_id, name=name, arguments=arguments)
