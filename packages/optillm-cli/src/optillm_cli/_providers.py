"""Provider options (``--provider``, ``--model``, ``--base-url``, ``--api-key``, ``--config``) → a router."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from optillm_core import InvalidConfiguration, ModelClient
from optillm_router import PROVIDERS  # the catalogue: light, the router's HTTP stack is not imported

from ._codes import PROVIDER_NAMES, UsageError

if TYPE_CHECKING:
    from optillm_router import ProviderRoutingConfig

__all__ = (
    "DEFAULT_MODELS",
    "LOCAL_NOTICE",
    "OPENAI_COMPATIBLE",
    "PROVIDER_NAMES",
    "ProviderChoice",
    "ProviderOptions",
    "build_client",
    "resolve",
    "routing_config",
)


DEFAULT_MODELS: Mapping[str, str] = {
    name: info.default_model for name, info in PROVIDERS.items() if info.default_model is not None
}
"""The model used when ``--model`` is not given; servers you run yourself (vllm, ollama …) need ``--model``.

``custom`` (any OpenAI-compatible ``--base-url``) sends ``default``, which single-model servers such as
llama.cpp's ``llama-server`` ignore.
"""

OPENAI_COMPATIBLE = frozenset(name for name, info in PROVIDERS.items() if info.wire == "openai")
"""Providers that speak OpenAI's chat API, which ``optillm serve`` can pass requests through to unchanged."""

# The order in which an API key found in the environment picks the provider when none is named.
_ENV_ORDER = ("openai", "anthropic", "gemini", "groq", "openrouter")

LOCAL_NOTICE = (
    "optillm: no provider configured; running on the embedded local model SmolLM2-135M-Instruct on the CPU "
    "(pass --provider, --base-url or --config, or set OPENAI_API_KEY, to use another model)"
)


@dataclass(frozen=True)
class ProviderOptions:
    """The provider flags as given on the command line (``None``: not given)."""

    provider: str | None = None
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    config: Path | None = None


@dataclass(frozen=True)
class ProviderChoice:
    """The provider a command will use, with the key taken from the flags or the environment.

    ``config`` is set when a router config file describes the providers instead.
    """

    provider: str
    model: str
    base_url: str | None = None
    api_key: str | None = None
    config: Path | None = None
    implicit_local: bool = False

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        return (
            f"ProviderChoice(provider={self.provider!r}, model={self.model!r}, base_url={self.base_url!r}, "
            f"api_key={key}, config={self.config!r}, implicit_local={self.implicit_local})"
        )

    @property
    def openai_base_url(self) -> str | None:
        """Where an OpenAI-compatible provider lives, for pass-through by the server."""
        if self.config is not None or self.provider not in OPENAI_COMPATIBLE:
            return None
        return self.base_url or PROVIDERS[self.provider].default_base_url


def _env_key(provider: str, env: Mapping[str, str]) -> str | None:
    info = PROVIDERS.get(provider)
    if info is None:
        return None
    return next((env[name] for name in info.api_key_env if env.get(name)), None)


def _pick_provider(options: ProviderOptions, env: Mapping[str, str]) -> tuple[str, bool]:
    if options.provider is not None:
        if options.provider not in PROVIDERS:
            names = ", ".join(sorted(PROVIDERS))
            raise UsageError(f"unknown provider '{options.provider}' (choose from: {names})")
        return options.provider, False
    if options.base_url is not None:
        return "custom", False
    if options.api_key is not None:
        return "openai", False
    found = next((name for name in _ENV_ORDER if _env_key(name, env)), None)
    if found is not None:
        return found, False
    return "local", True


def resolve(options: ProviderOptions, env: Mapping[str, str]) -> ProviderChoice:
    """Which provider, model and key the flags and the environment select."""
    if options.config is not None:
        given = [flag for flag, value in _provider_flags(options) if value is not None]
        if given:
            raise UsageError(f"--config describes the providers; drop {', '.join(given)} or drop --config")
        return ProviderChoice(provider="config", model="", config=options.config)
    provider, implicit = _pick_provider(options, env)
    model = options.model or DEFAULT_MODELS.get(provider)
    if model is None:
        raise UsageError(f"--model is required with --provider {provider}")
    api_key = options.api_key or _env_key(provider, env)
    info = PROVIDERS[provider]
    if api_key is None and info.requires_key and options.base_url is None:
        names = " or ".join(info.api_key_env) or "its key variable"
        raise InvalidConfiguration(f"provider '{provider}' needs an API key: pass --api-key or set {names}")
    return ProviderChoice(
        provider=provider,
        model=model,
        base_url=options.base_url,
        api_key=api_key,
        implicit_local=implicit,
    )


def _provider_flags(options: ProviderOptions) -> list[tuple[str, str | None]]:
    return [
        ("--provider", options.provider),
        ("--model", options.model),
        ("--base-url", options.base_url),
        ("--api-key", options.api_key),
    ]


def routing_config(choice: ProviderChoice) -> ProviderRoutingConfig:
    """The router config for a choice: the config file's, or a single provider."""
    from optillm_router import ProviderRoutingConfig, ProviderSpec, load_routing_config

    if choice.config is not None:
        return load_routing_config(choice.config)
    spec = ProviderSpec(provider=choice.provider, model=choice.model, api_key=choice.api_key, base_url=choice.base_url)
    return ProviderRoutingConfig.single(spec)


def build_client(choice: ProviderChoice, env: Mapping[str, str]) -> ModelClient:
    """A router over the chosen provider(s), taking keys from ``env``; close it with ``async with``."""
    from optillm_router import ModelClientRouter

    return ModelClientRouter(routing_config(choice), environ=env)
