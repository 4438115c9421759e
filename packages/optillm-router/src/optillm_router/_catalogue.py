"""The providers optillm-router knows: name, wire format, where they live, their keys and defaults.

This module is light on purpose (no HTTP stack, no YAML): the CLI reads it to build ``--help`` and
to pick a provider without importing the router's clients.

Each provider's ``profile`` is what an unknown model there accepts; the model families in
:mod:`optillm_router._profiles` refine it per model.
"""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from optillm_core import ModelProfile

__all__ = ("PROVIDERS", "ProviderInfo", "WireFormat")

WireFormat = Literal["openai", "anthropic", "gemini", "ollama", "local"]
"""How a provider is spoken to: OpenAI chat completions, Anthropic Messages, Gemini
generateContent, Ollama's native ``/api/chat``, or an embedded model in this process."""


@dataclass(frozen=True)
class ProviderInfo:
    """A provider's defaults.

    ``default_base_url`` is ``None`` where the user must give one (``custom``) or none applies
    (``local``); ``api_key_env`` lists the environment variables that may hold its key;
    ``default_model`` is ``None`` for servers you run yourself, where only you know the model;
    ``profile`` is what an unknown model at this provider accepts.
    """

    name: str
    wire: WireFormat
    default_base_url: str | None
    api_key_env: tuple[str, ...]
    requires_key: bool
    default_model: str | None
    profile: ModelProfile


def _profile(name: str, **fields: Any) -> ModelProfile:
    """A provider's profile from literal values, built without validation: validating would build
    pydantic's schema (and scan the installed plugins) while the module is imported.
    tests/router/test_profiles_catalogue.py checks that each one validates to itself."""
    return ModelProfile.model_construct(name=name, **fields)


_INFOS = (
    ProviderInfo(
        "openai", "openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",), True, "gpt-4o-mini",
        _profile("openai", native_n=True, max_stop=4, max_tokens_field="max_completion_tokens"),
    ),
    ProviderInfo(
        "groq", "openai", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",), True, "llama-3.1-8b-instant",
        # Groq itself turns temperature 0 into 1e-8; sending that keeps the request honest.
        _profile("groq", max_stop=4, logprobs=False, temperature_min=1e-8),
    ),
    ProviderInfo(
        "openrouter", "openai", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), True, "openai/gpt-4o-mini",
        _profile("openrouter"),
    ),
    ProviderInfo(
        "vllm", "openai", "http://localhost:8000/v1", ("VLLM_API_KEY",), False, None,
        _profile("vllm", native_n=True, temperature_max=None),
    ),
    ProviderInfo(
        "llamacpp", "openai", "http://localhost:8080/v1", ("LLAMACPP_API_KEY",), False, None,
        _profile("llamacpp", temperature_max=None),
    ),
    ProviderInfo(
        "ollama-openai", "openai", "http://localhost:11434/v1", (), False, None,
        _profile("ollama-openai", temperature_max=None, logprobs=False),
    ),
    ProviderInfo(
        "custom", "openai", None, ("OPENAI_API_KEY",), False, "default",
        _profile("custom", temperature_max=None),
    ),
    ProviderInfo(
        "anthropic", "anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",), True,
        "claude-3-5-haiku-latest",
        _profile(
            "anthropic", temperature_max=1.0, seed=False, logprobs=False, requires_max_tokens=True,
            default_max_tokens=4096, thinking="anthropic_blocks",
        ),
    ),
    ProviderInfo(
        "gemini", "gemini", "https://generativelanguage.googleapis.com", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), True,
        "gemini-2.0-flash",
        _profile(
            "gemini", native_n=True, max_n=8, max_stop=5, max_tokens_field="maxOutputTokens",
            thinking="gemini_thoughts",
        ),
    ),
    ProviderInfo(
        "ollama", "ollama", "http://localhost:11434", (), False, None,
        _profile("ollama", temperature_max=None, logprobs=False, max_tokens_field="num_predict"),
    ),
    ProviderInfo(
        "local", "local", None, (), False, "smollm2",
        # SmolLM2-135M's chat template has no tool calling, and the client renders plain text turns.
        _profile("local", temperature_max=None, logprobs=False, tools=False),
    ),
)  # fmt: skip

PROVIDERS: Mapping[str, ProviderInfo] = MappingProxyType({info.name: info for info in _INFOS})
"""Every provider name the router accepts, with its wire format, defaults and default profile."""
