"""What a provider's 400 says a model refuses, as a change to the model's profile.

The safety net behind the profiles: a model the catalogue does not know (or knows wrongly) may
refuse a setting its profile allowed. The providers name the setting in their error message;
:func:`refusal_in` reads it and :func:`learned_profile` turns it into a stricter profile, under
which the client sends the request again.
"""

from __future__ import annotations as _annotations

import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from optillm_core import ModelProfile

__all__ = ("Refusal", "learned_profile", "refusal_in")


@dataclass(frozen=True)
class Refusal:
    """A setting a provider refused: ``setting`` is its request field, or ``system`` (system messages),
    ``sampling_together`` (temperature and top_p in one request) or ``output_cap`` (with ``cap``).
    ``instead`` is the field the provider asked for instead, when it named one.
    """

    setting: str
    instead: str | None = None
    cap: int | None = None


def _cap(offset: int = 0) -> Callable[[re.Match[str]], Refusal]:
    return lambda match: Refusal("output_cap", cap=int(match["cap"]) + offset)


def _param(match: re.Match[str]) -> Refusal:
    param = match["param"]
    rest = match.groupdict().get("rest") or ""
    if re.fullmatch(r"messages\[\d+\]\.role", param) and re.search(r"'(?:system|developer)'", rest):
        return Refusal("system")
    return Refusal(param, instead=match.groupdict().get("instead"))


_TOOLS = Refusal("tools")

_PATTERNS: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], Refusal]], ...] = (
    # OpenAI: "max_tokens is too large: 64000. This model supports at most 16384 completion tokens, ..."
    (re.compile(r"too large: \d+\. This model supports at most (?P<cap>\d+)"), _cap()),
    # Anthropic: "max_tokens: 64000 > 32000, which is the maximum allowed number of output tokens for ..."
    (re.compile(r"max_tokens: \d+ > (?P<cap>\d+), which is the maximum"), _cap()),
    # DeepSeek: "Invalid max_tokens value, the valid range of max_tokens is [1, 8192]"
    (re.compile(r"valid range of max_tokens is \[1, (?P<cap>\d+)\]"), _cap()),
    # Gemini: "... maxOutputTokens value of 100000 but the supported range is from 1 (inclusive) to 65537 (exclusive)"
    (
        re.compile(r"maxOutputTokens value of \d+ but the supported range is from 1 \(inclusive\) to (?P<cap>\d+)"),
        _cap(-1),
    ),
    # OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' …"
    (re.compile(r"Unsupported parameter: '(?P<param>[\w.\[\]]+)'.*?Use '(?P<instead>\w+)' instead", re.S), _param),
    # OpenAI: "Unsupported value: 'temperature' does not support 0.3 with this model. ..."
    (re.compile(r"Unsupported (?:parameter|value): '(?P<param>[\w.\[\]]+)'(?P<rest>.*)", re.S), _param),
    # Anthropic (Claude 4.x): "`temperature` and `top_p` cannot both be specified for this model."
    (re.compile(r"`?temperature`? and `?top_p`? cannot both be specified"), lambda _: Refusal("sampling_together")),
    # Anthropic (Opus 4.7 and later): "`temperature` is deprecated for this model."
    (re.compile(r"`?(?P<param>temperature|top_p|top_k)`? is deprecated for this model"), _param),
    # Groq and others: "'logprobs' is not supported with this model", "`seed` is unsupported"
    (re.compile(r"[`'\"](?P<param>\w+)[`'\"] (?:is not supported|is unsupported)"), _param),
    # Anthropic (pydantic): "seed: Extra inputs are not permitted"
    (re.compile(r"\b(?P<param>\w+): Extra inputs are not permitted"), _param),
    # OpenAI (o1 previews): "tools is not supported in this model. For a list of supported models, ..."
    (
        re.compile(r"\b(?:tools|functions) (?:is|are) not supported (?:in|with|by) this model"),
        lambda _: Refusal("tools"),
    ),
    # Ollama: "registry.ollama.ai/library/gemma:2b does not support tools"; others: "... does not support
    # function calling"; Gemini (Gemma models): "Function calling is not enabled for models/gemma-3-27b-it"
    (
        re.compile(
            r"does not support (?:tools|tool use|tool calling|function calling)|function calling is not enabled", re.I
        ),
        lambda _: Refusal("tools"),
    ),
)

_SETTING_CHANGES: dict[str, dict[str, Any]] = {
    "temperature": {"temperature": False},
    "top_p": {"top_p": False},
    "topP": {"top_p": False},
    "logprobs": {"logprobs": False},
    "top_logprobs": {"logprobs": False},
    "responseLogprobs": {"logprobs": False},
    "seed": {"seed": False},
    "stop": {"max_stop": 0},
    "stop_sequences": {"max_stop": 0},
    "stopSequences": {"max_stop": 0},
    "system": {"system_messages": False},
    "tools": {"tools": False},
    "functions": {"tools": False},
    "sampling_together": {"sampling_exclusive": True},
}


def refusal_in(message: str) -> Refusal | None:
    """The setting a provider's error message says the model refused, if it names one."""
    for pattern, read in _PATTERNS:
        match = pattern.search(message)
        if match is not None:
            return read(match)
    return None


def learned_profile(profile: ModelProfile, message: str, max_tokens_fields: Collection[str]) -> ModelProfile | None:
    """``profile`` tightened by what ``message`` says the model refused; ``None`` when it teaches nothing.

    ``max_tokens_fields`` are the output-limit fields of the wire format, among which a refused
    one is exchanged for the other.
    """
    refusal = refusal_in(message)
    if refusal is None:
        return None
    changes = _changes(refusal, profile, max_tokens_fields)
    if not changes:
        return None
    learned = profile.model_copy(update=changes)
    return None if learned == profile else learned


def _changes(refusal: Refusal, profile: ModelProfile, max_tokens_fields: Collection[str]) -> dict[str, Any]:
    if refusal.setting == "output_cap":
        cap = refusal.cap
        known = profile.max_output_tokens
        if cap is None or cap < 1 or (known is not None and known <= cap):
            return {}
        return {"max_output_tokens": cap}
    if refusal.setting in max_tokens_fields:
        return _other_limit_field(refusal, profile, max_tokens_fields)
    return dict(_SETTING_CHANGES.get(refusal.setting, {}))


def _other_limit_field(refusal: Refusal, profile: ModelProfile, fields: Collection[str]) -> dict[str, Any]:
    if refusal.setting != profile.max_tokens_field:
        return {}
    if refusal.instead in fields:
        return {"max_tokens_field": refusal.instead}
    others = [field for field in fields if field != refusal.setting]
    return {"max_tokens_field": others[0]} if len(others) == 1 else {}
