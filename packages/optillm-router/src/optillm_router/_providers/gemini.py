"""Google's Gemini API: ``generateContent`` and ``streamGenerateContent?alt=sse``."""

from __future__ import annotations as _annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

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
    ToolChoice,
    ToolDefinition,
)

from .._failures import FewerChoices
from .._sse import iter_sse
from ._common import HttpModelClient, json_object, map_finish, wire_messages
from ._tools import (
    answered_calls,
    arguments_object,
    arguments_text,
    has_tool_turns,
    synthetic_id,
    whole_call_deltas,
)

__all__ = ("SCHEMA_FIELDS", "GeminiClient", "gemini_schema")

API_VERSION = "v1beta"
TOP_LEVEL_EXTRA = frozenset({"safetySettings", "tools", "toolConfig", "cachedContent", "labels"})
"""``settings.extra`` keys sent beside ``generationConfig``; every other key goes inside it."""

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
    "UNEXPECTED_TOOL_CALL": "error",
}
SCHEMA_FIELDS = frozenset(
    {
        "type", "format", "title", "description", "nullable", "enum", "items", "properties", "required",
        "minItems", "maxItems", "minProperties", "maxProperties", "minLength", "maxLength", "pattern",
        "minimum", "maximum", "anyOf", "propertyOrdering", "default", "example",
    }
)  # fmt: skip
"""The fields of Gemini's ``Schema`` (an OpenAPI subset); a tool's JSON Schema keeps only these
(``additionalProperties``, ``$schema``, ``$ref``/``$defs``, ``const``… are refused as unknown fields)."""


UNSIGNED_CALL_SIGNATURE = "skip_thought_signature_validator"
"""The thought signature Google documents for function calls that no Gemini model signed."""


class GeminiClient(HttpModelClient):
    """``POST {base_url}/v1beta/models/{model}:generateContent``; ``n`` > 1 becomes ``candidateCount``.

    Parts marked ``thought: true`` (sent with ``thinkingConfig.includeThoughts``) are the thinking.
    Tools go out as ``functionDeclarations`` (parameters fitted to Gemini's schema subset, see
    :data:`SCHEMA_FIELDS`) and the tool choice as ``toolConfig.functionCallingConfig``; assistant
    calls as ``functionCall`` parts and results as ``functionResponse`` parts named after the call
    they answer. ``functionCall`` parts come back as tool calls, whole (Gemini streams whole calls),
    with the id Gemini gives or ``call_<candidate>_<position>``; a candidate that called a tool and
    stopped finishes with ``tool_calls``.

    A call's ``thoughtSignature`` (a sibling of ``functionCall`` in its part; older models put it
    inside) is kept as the call's ``signature`` and sent back with it, as thinking models ask (Gemini
    3 refuses a function call turn without it). The first call of a turn that has none (a history
    written by another model, or by a client that dropped it) is sent with
    :data:`UNSIGNED_CALL_SIGNATURE`, the value Google documents for such histories.
    """

    max_tokens_fields = frozenset({"maxOutputTokens"})

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["x-goog-api-key"] = api_key
        return headers

    def _path(self, method: str) -> str:
        model = self.model.removeprefix("models/")
        return f"/{API_VERSION}/models/{quote(model, safe='-._~')}:{method}"

    def build_body(
        self, prompt: Prompt, settings: GenerationSettings, profile: ModelProfile, *, stream: bool
    ) -> dict[str, Any]:
        turns = wire_messages(prompt, profile)
        if has_tool_turns(turns):
            contents = self._contents(turns)
        else:
            contents = [
                {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
                for m in turns
                if m.role != "system"
            ]
        body: dict[str, Any] = {"contents": contents}
        system = "\n\n".join(m.content for m in turns if m.role == "system")
        if system:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        if settings.tools:
            body["tools"] = [{"functionDeclarations": [_declaration(tool) for tool in settings.tools]}]
            if settings.tool_choice is not None:
                body["toolConfig"] = {"functionCallingConfig": _calling_config(settings.tool_choice)}
        config: dict[str, Any] = {}
        if settings.temperature is not None:
            config["temperature"] = settings.temperature
        if settings.top_p is not None:
            config["topP"] = settings.top_p
        if settings.max_tokens is not None:
            config["maxOutputTokens"] = settings.max_tokens
        if settings.stop:
            config["stopSequences"] = list(settings.stop)
        if settings.seed is not None:
            config["seed"] = settings.seed
        if settings.n > 1:
            config["candidateCount"] = settings.n
        for key, value in settings.extra.items():
            if key == "tools" and "tools" in body and isinstance(value, list):
                body["tools"] = [*value, *body["tools"]]  # Google Search and the like, beside the functions
            else:
                (body if key in TOP_LEVEL_EXTRA else config)[key] = value
        if config:
            body["generationConfig"] = config
        return body

    def _contents(self, turns: tuple[Message, ...]) -> list[dict[str, Any]]:
        """The turns with tool calls as ``functionCall`` parts and results as ``functionResponse`` parts."""
        contents: list[dict[str, Any]] = []
        for m, answered in answered_calls(turns):
            if m.role == "system":
                continue
            if m.role == "tool":
                if answered is None:
                    raise BadRequestError(
                        f"{self.provider} names a tool result after its tool, and no earlier assistant message "
                        f"made the call {m.tool_call_id!r} it answers",
                        provider=self.provider,
                    )
                part = {"functionResponse": {"name": answered.name, "response": _response(m.content)}}
                last = contents[-1] if contents else None
                if last is not None and last["role"] == "user" and "functionResponse" in last["parts"][0]:
                    last["parts"].append(part)  # Gemini wants every response to a turn's calls in one turn
                else:
                    contents.append({"role": "user", "parts": [part]})
            elif m.tool_calls:
                parts: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
                for position, c in enumerate(m.tool_calls):
                    call: dict[str, Any] = {
                        "functionCall": {"name": c.name, "args": arguments_object(self.provider, c)}
                    }
                    signature = c.signature or (UNSIGNED_CALL_SIGNATURE if position == 0 else None)
                    if signature:
                        call["thoughtSignature"] = signature
                    parts.append(call)
                contents.append({"role": "model", "parts": parts})
            else:
                contents.append({"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]})
        return contents

    async def request(self, prompt: Prompt, settings: GenerationSettings) -> Completion:
        payload = await self.post_json(self._path("generateContent"), prompt, settings)
        self._raise_embedded_error(payload)
        candidates = self._candidates(payload)
        texts = [""] * len(candidates)
        thinking = [""] * len(candidates)
        calls: list[tuple[ToolCall, ...]] = [()] * len(candidates)
        finish: list[FinishReason | None] = [None] * len(candidates)
        for position, candidate in enumerate(candidates):
            index = _index(candidate, position, len(candidates))
            texts[index] = _text(candidate)
            thinking[index] = _text(candidate, thought=True)
            calls[index] = _calls(candidate, index)
            finish[index] = _finish(candidate.get("finishReason"), bool(calls[index]))
        completion = Completion(
            texts=tuple(texts),
            thinking=tuple(thinking) if any(thinking) else (),
            tool_calls=tuple(calls) if any(calls) else (),
            usage=_usage(payload.get("usageMetadata")),
            finish_reasons=tuple(finish),
            model=payload.get("modelVersion") or self.model,
        )
        if len(texts) < settings.n:
            raise FewerChoices(
                f"{self.provider} returned {len(texts)} candidate(s) for candidateCount={settings.n}",
                provider=self.provider,
                completion=completion,
            )
        return completion

    async def request_stream(self, prompt: Prompt, settings: GenerationSettings) -> AsyncIterator[ResponseEvent]:
        """The events of ``streamGenerateContent``; a stream that never sends some of the ``candidateCount``
        candidates (models that ignore it) ends with :class:`~optillm_router.FewerChoices` naming them."""
        finish: list[FinishReason | None] = [None] * settings.n
        seen: set[int] = set()
        usage = TokenUsage()
        model: str | None = None
        called: dict[int, int] = {}
        """Calls each candidate has made so far."""
        path = self._path("streamGenerateContent") + "?alt=sse"
        async with self.post_stream(path, prompt, settings, iter_sse) as items:
            async for event in items:
                payload = json_object(self.provider, event.data)
                self._raise_embedded_error(payload)
                self._check_prompt_feedback(payload)
                model = model or payload.get("modelVersion")
                if payload.get("usageMetadata"):
                    usage = _usage(payload["usageMetadata"])
                for position, candidate in enumerate(payload.get("candidates") or ()):
                    index = _index(candidate, position, len(finish))
                    seen.add(index)
                    thought = _text(candidate, thought=True)
                    if thought:
                        yield ReasoningDelta(delta=thought, index=index)
                    text = _text(candidate)
                    if text:
                        yield OutputTextDelta(delta=text, index=index)
                    before = called.get(index, 0)
                    calls = _calls(candidate, index, before)
                    if calls:
                        for piece in whole_call_deltas(index, calls, before):
                            yield piece
                        called[index] = before + len(calls)
                    if candidate.get("finishReason"):
                        finish[index] = _finish(candidate["finishReason"], index in called)
        missing = tuple(index for index in range(settings.n) if index not in seen)
        if any(finish[index] is None for index in seen) or len(missing) == settings.n:
            raise ProtocolError(
                f"{self.provider} stream ended before every candidate had a finishReason", provider=self.provider
            )
        if missing:
            raise FewerChoices(
                f"{self.provider} streamed {len(seen)} candidate(s) for candidateCount={settings.n}",
                provider=self.provider,
                completion=Completion(texts=(), usage=usage, finish_reasons=tuple(finish), model=model or self.model),
                missing=missing,
            )
        yield Completed(usage=usage, finish_reasons=tuple(finish), model=model or self.model)

    def _candidates(self, payload: dict[str, Any]) -> list[dict[str, Any]]:
        self._check_prompt_feedback(payload)
        candidates = payload.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            raise ProtocolError(
                f"{self.provider} answered without candidates: {json.dumps(payload)[:300]}", provider=self.provider
            )
        return [c for c in candidates if isinstance(c, dict)]

    def _check_prompt_feedback(self, payload: dict[str, Any]) -> None:
        feedback = payload.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if reason:
            raise BadRequestError(
                f"{self.provider} ({self.model}) blocked the prompt: {reason}; change the prompt",
                provider=self.provider,
            )

    def _raise_embedded_error(self, payload: dict[str, Any]) -> None:
        error = payload.get("error")
        if not error:
            return
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code <= 599 else 500
        raise self.error(status, {}, json.dumps(payload).encode())


def _index(candidate: dict[str, Any], position: int, count: int) -> int:
    index = candidate.get("index", position)
    if not isinstance(index, int) or not 0 <= index < count:
        raise ProtocolError(f"gemini sent candidate index {index!r} for {count} candidate(s)", provider="gemini")
    return index


def _text(candidate: dict[str, Any], *, thought: bool = False) -> str:
    """The answer text of a candidate, or with ``thought`` its thinking (the parts marked ``thought: true``)."""
    content = candidate.get("content") or {}
    parts = content.get("parts") or ()
    return "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict) and bool(p.get("thought")) is thought)


def _finish(reason: object, called: bool) -> FinishReason | None:
    """Gemini finishes a candidate that called a tool with ``STOP``: that is OpenAI's ``tool_calls``."""
    finish = map_finish(_FINISH, reason)
    return "tool_calls" if called and finish == "stop" else finish


def _calls(candidate: dict[str, Any], choice: int, before: int = 0) -> tuple[ToolCall, ...]:
    """The candidate's ``functionCall`` parts as tool calls; ``before`` calls came in earlier stream frames."""
    content = candidate.get("content") or {}
    calls: list[ToolCall] = []
    for part in content.get("parts") or ():
        call = part.get("functionCall") if isinstance(part, dict) else None
        if not isinstance(call, dict):
            continue
        call_id = call.get("id")
        signature = part.get("thoughtSignature") or call.get("thoughtSignature")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) and call_id else synthetic_id(choice, before + len(calls)),
                name=str(call.get("name") or ""),
                arguments=arguments_text(call.get("args") or {}),
                signature=signature if isinstance(signature, str) and signature else None,
            )
        )
    return tuple(calls)


def _declaration(tool: ToolDefinition) -> dict[str, Any]:
    """A ``functionDeclaration``; a tool without parameters has none (Gemini refuses an OBJECT with no properties)."""
    declaration: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        declaration["description"] = tool.description
    parameters = gemini_schema(tool.parameters)
    if parameters.get("type") != "object" or parameters.get("properties"):
        declaration["parameters"] = parameters
    return declaration


def gemini_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema as Gemini's ``Schema`` takes it: its fields only (:data:`SCHEMA_FIELDS`), a type
    list such as ``["string", "null"]`` as ``type`` with ``nullable``, a ``const`` as a one-value ``enum``."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) < len(value):
                out["nullable"] = True
            if len(types) == 1:
                out["type"] = types[0]
            elif types:
                out["anyOf"] = [{"type": t} for t in types]
        elif key == "const" and "enum" not in schema:
            out["enum"] = [value]
        elif key not in SCHEMA_FIELDS:
            continue
        elif key == "properties" and isinstance(value, Mapping):
            out[key] = {name: gemini_schema(v) if isinstance(v, Mapping) else v for name, v in value.items()}
        elif key == "items" and isinstance(value, Mapping):
            out[key] = gemini_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out[key] = [gemini_schema(v) if isinstance(v, Mapping) else v for v in value]
        else:
            out[key] = value
    return out


_CALLING_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}


def _calling_config(choice: ToolChoice) -> dict[str, Any]:
    """``AUTO``, ``NONE``, ``ANY``; one named tool is ``ANY`` limited to it (``allowedFunctionNames``)."""
    config: dict[str, Any] = {"mode": _CALLING_MODES[choice.mode]}
    if choice.name is not None:
        config["allowedFunctionNames"] = [choice.name]
    return config


def _response(content: str) -> dict[str, Any]:
    """A tool result as ``functionResponse.response``: its JSON object, or ``{"content": text}``."""
    try:
        value = json.loads(content)
    except ValueError:
        return {"content": content}
    return value if isinstance(value, dict) else {"content": content}


def _usage(raw: object) -> TokenUsage:
    if not isinstance(raw, dict):
        return TokenUsage()
    # Thinking tokens are billed as output but reported apart from candidatesTokenCount.
    output = int(raw.get("candidatesTokenCount") or 0) + int(raw.get("thoughtsTokenCount") or 0)
    prompt = int(raw.get("promptTokenCount") or 0) + int(raw.get("toolUsePromptTokenCount") or 0)
    return TokenUsage(input_tokens=prompt, output_tokens=output)
