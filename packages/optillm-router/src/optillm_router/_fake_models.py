"""How real models answer, for the fake servers' real-models mode.

A :class:`RealModel` describes one model the way its provider serves it (from the providers'
documentation and error messages, written down apart from the router's profiles so that a wrong
profile shows up as a 400): the settings it refuses, its output cap, whether it returns several
choices, and how it shows its thinking. Pure functions check a request body against it
(:func:`refusal`, the provider's own 400) and render a reply with thinking in its form (``<think>``
tags in the content, ``reasoning_content`` in JSON and SSE, hidden behind
``usage.completion_tokens_details.reasoning_tokens``, Anthropic ``thinking`` blocks, Gemini
``thought`` parts).
"""

from __future__ import annotations as _annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from optillm_core import ToolCall

from ._fake_tools import (
    FakeError,
    anthropic_tool_blocks,
    anthropic_tool_events,
    gemini_call_parts,
    openai_tool_calls,
    openai_tool_deltas,
    tool_refusal,
)

__all__ = (
    "REAL_MODELS",
    "FakeError",
    "RealModel",
    "anthropic_events",
    "anthropic_message",
    "default_thinking",
    "gemini_frames",
    "gemini_response",
    "openai_deltas",
    "openai_message",
    "openai_usage",
    "real_model",
    "refusal",
    "shown_thinking",
)

Wire = Literal["openai", "anthropic", "gemini"]
Sampling = Literal["any", "default_only", "removed", "exclusive"]
"""``default_only``: temperature and top_p only at their default 1 (OpenAI reasoning models);
``removed``: no sampling settings at all (Claude Opus 4.7); ``exclusive``: temperature or top_p,
not both (Claude 4.x)."""
Thinking = Literal["none", "tags", "reasoning_content", "hidden", "anthropic_blocks", "gemini_thoughts"]


@dataclass(frozen=True)
class RealModel:
    """One model as its provider serves it.

    ``limit_field``: the output-limit field it requires (``max_completion_tokens`` models refuse
    ``max_tokens``; others take either); ``refuses``: request fields answered with a 400 whatever their value;
    ``native_n``: whether ``n`` > 1 returns several choices (else a 400 in ``n_error``'s words);
    ``tools``: whether it takes tools (else a 400 for a request with them).
    """

    name: str
    wire: Wire
    output_cap: int | None = None
    sampling: Sampling = "any"
    temperature_max: float = 2.0
    limit_field: str = "max_tokens"
    refuses: frozenset[str] = frozenset()
    system_messages: bool = True
    native_n: bool = True
    n_error: str = "Only one completion choice is allowed"
    max_stop: int | None = None
    thinking: Thinking = "none"
    tools: bool = True


_OPENAI_REASONING_REFUSES = frozenset({"logprobs", "top_logprobs"})
_ANTHROPIC_REFUSES = frozenset({"n", "seed", "logprobs", "top_logprobs", "frequency_penalty", "presence_penalty"})

REAL_MODELS: Mapping[str, RealModel] = MappingProxyType(
    {
        model.name: model
        for model in (
            RealModel(
                "o3-mini", "openai", output_cap=100_000, sampling="default_only", limit_field="max_completion_tokens",
                refuses=_OPENAI_REASONING_REFUSES, max_stop=4, thinking="hidden",
            ),
            RealModel(
                "o1-mini", "openai", output_cap=65_536, sampling="default_only", limit_field="max_completion_tokens",
                refuses=_OPENAI_REASONING_REFUSES, system_messages=False, max_stop=4, thinking="hidden", tools=False,
            ),
            RealModel("gpt-4o-mini", "openai", output_cap=16_384, max_stop=4),
            # A DeepSeek-R1 distill behind llama.cpp's server: <think> tags in the content, no native n.
            RealModel("deepseek-r1", "openai", output_cap=32_768, native_n=False, thinking="tags"),
            # DeepSeek's own API: the thinking in reasoning_content, logprobs refused.
            RealModel(
                "deepseek-reasoner", "openai", output_cap=32_768, native_n=False,
                n_error="Invalid n value, only n=1 is supported", refuses=_OPENAI_REASONING_REFUSES,
                thinking="reasoning_content",
            ),
            RealModel(
                "llama-3.1-8b-instant", "openai", native_n=False,
                n_error="'n' : number must be at most 1", refuses=frozenset({"logprobs", "top_logprobs", "logit_bias"}),
                max_stop=4,
            ),
            RealModel(
                "claude-opus-4-7", "anthropic", output_cap=32_000, sampling="removed", temperature_max=1.0,
                refuses=_ANTHROPIC_REFUSES, native_n=False, thinking="anthropic_blocks",
            ),
            RealModel(
                "claude-sonnet-4", "anthropic", output_cap=64_000, sampling="exclusive", temperature_max=1.0,
                refuses=_ANTHROPIC_REFUSES, native_n=False, thinking="anthropic_blocks",
            ),
            RealModel(
                "claude-3-5-haiku", "anthropic", output_cap=8_192, temperature_max=1.0, refuses=_ANTHROPIC_REFUSES,
                native_n=False,
            ),
            RealModel("gemini-2.5-flash", "gemini", output_cap=65_536, max_stop=5, thinking="gemini_thoughts"),
        )
    }
)  # fmt: skip
"""The models the fakes can play, by name."""


def real_model(model: str | RealModel) -> RealModel:
    """``model`` itself, or the model of :data:`REAL_MODELS` by that name."""
    if isinstance(model, RealModel):
        return model
    found = REAL_MODELS.get(model)
    if found is None:
        raise ValueError(f"no real model named {model!r}; known: {', '.join(sorted(REAL_MODELS))}")
    return found


# -- what each model refuses, in its provider's words -------------------------------------------------


def refusal(model: RealModel, body: Mapping[str, Any]) -> FakeError | None:
    """The 400 ``model``'s provider answers ``body`` with, or ``None`` when the model accepts it
    (its settings, then its tools and tool turns: :func:`~optillm_router._fake_tools.tool_refusal`)."""
    if model.wire == "openai":
        refused = _openai_refusal(model, body)
    elif model.wire == "anthropic":
        refused = _anthropic_refusal(model, body)
    else:
        refused = _gemini_refusal(model, body)
    return refused or tool_refusal(model.wire, body, tools=model.tools, model=model.name)


def _openai_error(message: str, param: str | None, code: str | None) -> FakeError:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return FakeError(400, {"error": error})


def _openai_refusal(model: RealModel, body: Mapping[str, Any]) -> FakeError | None:
    other_limit = "max_tokens" if model.limit_field == "max_completion_tokens" else None
    if other_limit is not None and other_limit in body:
        return _openai_error(
            f"Unsupported parameter: '{other_limit}' is not supported with this model. "
            f"Use '{model.limit_field}' instead.",
            other_limit,
            "unsupported_parameter",
        )
    for name in sorted(model.refuses.intersection(body)):
        return _openai_error(
            f"Unsupported parameter: '{name}' is not supported with this model.", name, "unsupported_parameter"
        )
    if not model.system_messages:
        for index, message in enumerate(body.get("messages") or ()):
            role = message.get("role") if isinstance(message, Mapping) else None
            if role in ("system", "developer"):
                return _openai_error(
                    f"Unsupported value: 'messages[{index}].role' does not support '{role}' with this model.",
                    f"messages[{index}].role",
                    "unsupported_value",
                )
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is None:
            continue
        if model.sampling == "default_only" and value != 1:
            return _openai_error(
                f"Unsupported value: '{name}' does not support {value} with this model. "
                "Only the default (1) value is supported.",
                name,
                "unsupported_value",
            )
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and temperature > model.temperature_max:
        return _openai_error(
            f"Invalid 'temperature': decimal above maximum value. Expected a value <= {model.temperature_max:g}, "
            f"but got {temperature} instead.",
            "temperature",
            "decimal_above_max_value",
        )
    stop = body.get("stop")
    if isinstance(stop, list) and model.max_stop is not None and len(stop) > model.max_stop:
        return _openai_error(
            f"Invalid 'stop': array too long. Expected an array with maximum length {model.max_stop}, "
            f"but got an array with length {len(stop)} instead.",
            "stop",
            "array_above_max_length",
        )
    n = body.get("n")
    if isinstance(n, int) and n > 1 and not model.native_n:
        return _openai_error(model.n_error, "n", None)
    field = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    limit = body.get(field)
    if isinstance(limit, int) and model.output_cap is not None and limit > model.output_cap:
        return _openai_error(
            f"{field} is too large: {limit}. This model supports at most {model.output_cap} "
            f"completion tokens, whereas you provided {limit}.",
            field,
            "invalid_value",
        )
    return None


def _anthropic_error(message: str) -> FakeError:
    payload = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": "req_fake",
    }
    return FakeError(400, payload)


def _anthropic_refusal(model: RealModel, body: Mapping[str, Any]) -> FakeError | None:
    for name in sorted(model.refuses.intersection(body)):
        return _anthropic_error(f"{name}: Extra inputs are not permitted")
    limit = body.get("max_tokens")
    if limit is None:
        return _anthropic_error("max_tokens: Field required")
    if isinstance(limit, int) and model.output_cap is not None and limit > model.output_cap:
        return _anthropic_error(
            f"max_tokens: {limit} > {model.output_cap}, which is the maximum allowed number of output tokens "
            f"for {model.name}"
        )
    sampling = [name for name in ("temperature", "top_p", "top_k") if name in body]
    if model.sampling == "removed" and sampling:
        return _anthropic_error(f"`{sampling[0]}` is deprecated for this model.")
    if model.sampling == "exclusive" and "temperature" in body and "top_p" in body:
        return _anthropic_error(
            "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
        )
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and temperature > model.temperature_max:
        return _anthropic_error(f"temperature: Input should be less than or equal to {model.temperature_max:g}")
    return None


def _gemini_error(message: str) -> FakeError:
    return FakeError(400, {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})


def _gemini_refusal(model: RealModel, body: Mapping[str, Any]) -> FakeError | None:
    config = body.get("generationConfig") or {}
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int) and model.output_cap is not None and limit > model.output_cap:
        return _gemini_error(
            f"Unable to submit request because it has a maxOutputTokens value of {limit} but the supported range "
            f"is from 1 (inclusive) to {model.output_cap + 1} (exclusive). Update the value and try again."
        )
    stops = config.get("stopSequences")
    if isinstance(stops, list) and model.max_stop is not None and len(stops) > model.max_stop:
        return _gemini_error(
            f"Unable to submit request because it has {len(stops)} stop sequences; at most {model.max_stop} "
            "are supported."
        )
    return None


# -- thinking, in each model's form --------------------------------------------------------------------


def default_thinking(body: Mapping[str, Any]) -> str:
    """What a thinking model thinks before answering ``body``, when the reply does not say.

    It holds a tentative answer, as real thinking does, so that thinking leaking into an answer
    changes what an answer parser reads from it.
    """
    return "Let me work through this carefully before I answer. A first guess would be \\boxed{0}; checking it."


def shown_thinking(model: RealModel, body: Mapping[str, Any], thinking: str | None) -> str:
    """The thinking ``model`` returns for ``body`` ("" when it shows none).

    Anthropic and Gemini models show it only when the request turns it on (``thinking`` /
    ``thinkingConfig.includeThoughts``); the others always think (hidden ones count it in usage).
    """
    if model.thinking == "none":
        return ""
    if model.thinking == "anthropic_blocks" and (body.get("thinking") or {}).get("type") not in ("enabled", "adaptive"):
        return ""
    if model.thinking == "gemini_thoughts":
        config = (body.get("generationConfig") or {}).get("thinkingConfig") or {}
        if not config.get("includeThoughts"):
            return ""
    return thinking if thinking is not None else default_thinking(body)


def _words(text: str) -> list[str]:
    """``text`` in stream pieces: each word with the space before it."""
    return [w if i == 0 else " " + w for i, w in enumerate(text.split(" "))] if text else []


def _tagged(text: str, thinking: str) -> str:
    return f"<think>\n{thinking}\n</think>\n\n{text}"


def openai_message(model: RealModel, text: str, thinking: str, tool_calls: Sequence[ToolCall] = ()) -> dict[str, Any]:
    """The ``message`` of a chat completion choice (``content`` null when it only calls tools)."""
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if tool_calls else "")}
    if thinking and model.thinking == "tags":
        message["content"] = _tagged(text, thinking)
    elif thinking and model.thinking == "reasoning_content":
        message["reasoning_content"] = thinking
    if tool_calls:
        message["tool_calls"] = openai_tool_calls(tool_calls)
    return message


def openai_deltas(
    model: RealModel, text: str, thinking: str, tool_calls: Sequence[ToolCall] = ()
) -> list[dict[str, Any]]:
    """The ``delta`` objects of one choice's stream, one word each, then its tool calls."""
    calls = openai_tool_deltas(tool_calls)
    if thinking and model.thinking == "tags":
        return [{"content": piece} for piece in _words(_tagged(text, thinking))] + calls
    deltas: list[dict[str, Any]] = []
    if thinking and model.thinking == "reasoning_content":
        deltas += [{"content": None, "reasoning_content": piece} for piece in _words(thinking)]
    return deltas + [{"content": piece} for piece in _words(text)] + calls


def openai_usage(prompt_tokens: int, texts: Sequence[str], thinking: Sequence[str]) -> dict[str, Any]:
    """Usage with thinking counted as completion tokens and reported as ``reasoning_tokens``."""
    reasoning = sum(len(t.split()) for t in thinking)
    completion = sum(len(t.split()) for t in texts) + reasoning
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def anthropic_message(
    model: RealModel, text: str, thinking: str, usage: tuple[int, int], tool_calls: Sequence[ToolCall] = ()
) -> dict[str, Any]:
    """A Messages API answer: a ``thinking`` block (with its signature) before the text when there is
    thinking, ``tool_use`` blocks after it when the model calls tools (it then stops for ``tool_use``)."""
    content: list[dict[str, Any]] = []
    if thinking:
        content.append({"type": "thinking", "thinking": thinking, "signature": "c2lnbmF0dXJl"})
    if text or not tool_calls:
        content.append({"type": "text", "text": text})
    content += anthropic_tool_blocks(tool_calls)
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model.name,
        "content": content,
        "stop_reason": "tool_use" if tool_calls else "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": usage[0], "output_tokens": usage[1]},
    }


def anthropic_events(
    model: RealModel, text: str, thinking: str, usage: tuple[int, int], tool_calls: Sequence[ToolCall] = ()
) -> list[tuple[str, dict[str, Any]]]:
    """A Messages API stream as ``(event, data)`` pairs, thinking block first, ``tool_use`` blocks last."""
    start = {
        "type": "message_start",
        "message": {"id": "msg_fake", "model": model.name, "usage": {"input_tokens": usage[0], "output_tokens": 1}},
    }
    events: list[tuple[str, dict[str, Any]]] = [("message_start", start), ("ping", {"type": "ping"})]
    blocks: list[tuple[str, str, str]] = []
    if thinking:
        blocks.append(("thinking", "thinking_delta", thinking))
    if text or not tool_calls:
        blocks.append(("text", "text_delta", text))
    for index, (kind, delta_kind, value) in enumerate(blocks):
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": {"type": kind, kind: ""}},
            )
        )
        for piece in _words(value):
            delta = {"type": delta_kind, kind: piece}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        if kind == "thinking":
            signature = {"type": "signature_delta", "signature": "c2lnbmF0dXJl"}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": signature}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events += anthropic_tool_events(tool_calls, len(blocks))
    reason = "tool_use" if tool_calls else "end_turn"
    stop = {"type": "message_delta", "delta": {"stop_reason": reason}, "usage": {"output_tokens": usage[1]}}
    events += [("message_delta", stop), ("message_stop", {"type": "message_stop"})]
    return events


def _gemini_parts(model: str, text: str, thinking: str, tool_calls: Sequence[ToolCall] = ()) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": thinking, "thought": True}] if thinking else []
    if text or not tool_calls:
        parts.append({"text": text})
    return parts + gemini_call_parts(tool_calls, model=model)


def gemini_response(
    model: RealModel,
    texts: Sequence[str],
    thinking: Sequence[str],
    usage: tuple[int, int, int],
    tool_calls: Sequence[ToolCall] = (),
) -> dict[str, Any]:
    """A generateContent answer, thought parts before each candidate's text and ``functionCall`` parts
    after it (the same calls in every candidate); ``usage`` is (prompt, answer, thoughts)."""
    candidates = [
        {
            "content": {"role": "model", "parts": _gemini_parts(model.name, text, thought, tool_calls)},
            "finishReason": "STOP",
            "index": i,
        }
        for i, (text, thought) in enumerate(zip(texts, thinking, strict=True))
    ]
    return {"candidates": candidates, "usageMetadata": _gemini_usage(usage), "modelVersion": model.name}


def gemini_frames(
    model: RealModel,
    text: str,
    thinking: str,
    usage: tuple[int, int, int],
    n: int = 1,
    tool_calls: Sequence[ToolCall] = (),
) -> list[dict[str, Any]]:
    """A streamGenerateContent answer: for each of ``n`` candidates thought parts first, then the text,
    word by word, then each ``functionCall`` part whole in a frame of its own."""
    parts: list[dict[str, Any]] = [{"text": piece, "thought": True} for piece in _words(thinking)]
    parts += [{"text": p} for p in _words(text)] + gemini_call_parts(tool_calls, model=model.name)
    frames: list[dict[str, Any]] = []
    for index in range(n):
        candidates = [{"content": {"role": "model", "parts": [part]}, "index": index} for part in parts]
        candidates[-1]["finishReason"] = "STOP"
        frames += [{"candidates": [candidate], "modelVersion": model.name} for candidate in candidates]
    frames[-1]["usageMetadata"] = _gemini_usage(usage)
    return frames


def _gemini_usage(usage: tuple[int, int, int]) -> dict[str, int]:
    prompt, answer, thoughts = usage
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": answer,
        "thoughtsTokenCount": thoughts,
        "totalTokenCount": prompt + answer + thoughts,
    }
