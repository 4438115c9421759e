"""Model profiles by provider and model name: what each known model family accepts.

A model's profile starts from its provider's (``PROVIDERS[provider].profile``); every
:class:`ProfileRule` whose pattern matches the model's name then applies its changes, in the order
of :data:`PROFILE_RULES`, so a later, narrower rule refines an earlier, broader one. Names are
matched lowercased, without a vendor path (``openai/o3-mini``, ``models/gemini-2.5-flash``), from
their start. An unknown model gets its provider's profile unchanged.

The facts come from the providers' documentation and error messages (see docs/router.md, "Model
profiles"). A config or a caller can override any field (:func:`model_profile`'s ``overrides``).
"""

from __future__ import annotations as _annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from optillm_core import InvalidConfiguration, ModelProfile

from ._catalogue import PROVIDERS

__all__ = ("PROFILE_RULES", "ProfileRule", "matching_rules", "model_key", "model_profile")


@dataclass(frozen=True)
class ProfileRule:
    """Changes to a provider's profile for the models whose name matches ``pattern``.

    ``pattern`` is a regular expression matched at the start of the model's key (see
    :func:`model_key`); ``providers`` limits the rule to those providers (``None``: any).
    """

    family: str
    pattern: str
    changes: Mapping[str, Any]
    providers: frozenset[str] | None = None
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.pattern))
        object.__setattr__(self, "changes", MappingProxyType(dict(self.changes)))

    def matches(self, provider: str, key: str) -> bool:
        if self.providers is not None and provider not in self.providers:
            return False
        return self._compiled.match(key) is not None


_REASONING = r"(?:o1|o3|o4)(?:-|$)|gpt-5(?![\w.]*-chat)"
"""OpenAI's reasoning models: o1, o3, o4-mini and the gpt-5 family (not gpt-5-chat)."""
_OPUS_47_ON = r"claude-opus-(?:4-(?:[7-9]|[1-9]\d)|[5-9]|[1-9]\d)(?!\d)"
"""Opus 4.7 and later (a dated snapshot such as ``claude-opus-4-20250514`` is Opus 4)."""
_CLAUDE_4_ON = r"claude-(?:opus|sonnet|haiku)-(?:[4-9]|[1-9]\d)(?!\d)"

PROFILE_RULES: tuple[ProfileRule, ...] = (
    # OpenAI reasoning models: only the default sampling, no logprobs, reasoning kept by OpenAI.
    ProfileRule(
        "openai-reasoning",
        _REASONING,
        {"temperature": False, "top_p": False, "logprobs": False, "thinking": "hidden", "max_output_tokens": 100_000},
    ),
    ProfileRule(
        "openai-reasoning",
        _REASONING,
        {"max_tokens_field": "max_completion_tokens"},
        providers=frozenset({"openai", "custom"}),
    ),
    # o1-mini and o1-preview: no system messages and no tools ("Unsupported parameter: 'tools' ...").
    ProfileRule("o1-mini", r"o1-mini", {"system_messages": False, "tools": False, "max_output_tokens": 65_536}),
    ProfileRule("o1-preview", r"o1-preview", {"system_messages": False, "tools": False, "max_output_tokens": 32_768}),
    ProfileRule("gpt-5", r"gpt-5(?![\w.]*-chat)", {"max_output_tokens": 128_000}),
    ProfileRule("gpt-4o", r"(?:chatgpt-)?gpt-4o", {"max_output_tokens": 16_384}),
    # Anthropic: no n, seed or logprobs; temperature 0-1; thinking as content blocks.
    ProfileRule("claude", r"claude", {"temperature_max": 1.0, "seed": False, "logprobs": False, "native_n": False}),
    ProfileRule("claude-3-haiku", r"claude-3-(?:haiku|opus)", {"max_output_tokens": 4_096}),
    ProfileRule("claude-3.5", r"claude-3-5-(?:haiku|sonnet)", {"max_output_tokens": 8_192}),
    ProfileRule("claude-3.7-sonnet", r"claude-3-7-sonnet", {"max_output_tokens": 64_000}),
    ProfileRule("claude-4", _CLAUDE_4_ON, {"sampling_exclusive": True}),
    ProfileRule("claude-opus-4", r"claude-opus-4", {"max_output_tokens": 32_000}),
    ProfileRule("claude-sonnet-4", r"claude-(?:sonnet|haiku)-4", {"max_output_tokens": 64_000}),
    ProfileRule("claude-opus-4.7+", _OPUS_47_ON, {"temperature": False, "top_p": False}),
    # Gemini: at most 5 stop sequences; 2.5 models think in thought parts.
    ProfileRule("gemini", r"gemini", {"max_stop": 5}),
    ProfileRule("gemini-1.5/2.0", r"gemini-(?:1\.5|2\.0)", {"max_output_tokens": 8_192}),
    ProfileRule("gemini-2.5", r"gemini-2\.5", {"max_output_tokens": 65_536}),
    # Reasoning models that write their thinking into the answer as <think>...</think>.
    ProfileRule("deepseek-r1", r"deepseek-r1|r1-distill", {"thinking": "tags", "max_output_tokens": 32_768}),
    ProfileRule(
        "deepseek-reasoner",
        r"deepseek-reasoner",
        # DeepSeek's API ignores sampling settings on its reasoner and refuses logprobs.
        {
            "thinking": "reasoning_content",
            "max_output_tokens": 32_768,
            "temperature": False,
            "top_p": False,
            "logprobs": False,
        },
    ),
    ProfileRule("qwq", r"qwq", {"thinking": "tags"}),
    ProfileRule("qwen3", r"qwen3(?!.*(?:instruct|coder))", {"thinking": "tags"}),
    ProfileRule("smollm3", r"smollm3", {"thinking": "tags"}),
)
"""The model families the router knows, broad rules first."""


def model_key(model: str) -> str:
    """The part of a model name the rules match: lowercased, without a vendor or ``models/`` path."""
    return model.strip().lower().rsplit("/", 1)[-1]


def matching_rules(provider: str, model: str) -> tuple[ProfileRule, ...]:
    """The rules that apply to ``model`` at ``provider``, in the order they are applied."""
    key = model_key(model)
    return tuple(rule for rule in PROFILE_RULES if rule.matches(provider, key))


def model_profile(provider: str, model: str, overrides: Mapping[str, Any] | None = None) -> ModelProfile:
    """What ``model`` at ``provider`` accepts: the provider's profile, the matching families, then ``overrides``.

    ``overrides`` may set any :class:`~optillm_core.ModelProfile` field; a bad field or value
    raises :class:`~optillm_core.InvalidConfiguration`.
    """
    info = PROVIDERS.get(provider)
    if info is None:
        raise InvalidConfiguration(f"unknown provider {provider!r}; valid providers: {', '.join(sorted(PROVIDERS))}")
    fields: dict[str, Any] = info.profile.model_dump()
    family = None
    for rule in matching_rules(provider, model):
        fields.update(rule.changes)
        family = rule.family
    fields["name"] = f"{provider}/{family}" if family else provider
    if overrides:
        fields.update(overrides)
    try:
        return ModelProfile.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors(include_url=False)
        )
        raise InvalidConfiguration(f"invalid profile for {provider}/{model}: {problems}") from None
