"""One :class:`~optillm_core.ModelClient` per provider, and the table of known providers.

Provider names:

- OpenAI chat-completions wire format: ``openai``, ``groq``, ``openrouter``, ``vllm``, ``llamacpp``
  (llama.cpp's ``llama-server``), ``ollama-openai`` (Ollama's ``/v1`` endpoint) and ``custom`` (any
  OpenAI-compatible server; ``base_url`` required). Their base URLs end in ``/v1``.
- ``anthropic`` (Messages API), ``gemini`` (generateContent) and ``ollama`` (Ollama's native
  ``/api/chat``): base URLs are server roots.
- ``local``: an embedded llama.cpp model in this process (extra ``optillm-router[local]``).

The clients never retry; the router does.
"""

from __future__ import annotations as _annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

from optillm_core import InvalidConfiguration, ModelClient

from .._http import HttpPool
from ._common import Capabilities, HttpModelClient, ProviderInfo, check_settings
from .anthropic import AnthropicClient
from .gemini import GeminiClient
from .ollama import OllamaClient
from .openai import OpenAIClient, OpenAICompatibleClient

__all__ = (
    "PROVIDERS",
    "AnthropicClient",
    "Capabilities",
    "GeminiClient",
    "HttpModelClient",
    "OllamaClient",
    "OpenAIClient",
    "OpenAICompatibleClient",
    "ProviderInfo",
    "check_settings",
    "create_provider_client",
)

_UNLIMITED = math.inf


def _caps(
    *, native_n: bool, temperature_max: float = 2.0, max_stop: int | None = None, logprobs: bool, seed: bool = True
) -> Capabilities:
    return Capabilities(
        native_n=native_n, temperature_max=temperature_max, max_stop=max_stop, logprobs=logprobs, seed=seed
    )


_INFOS = (
    ProviderInfo(
        "openai", "https://api.openai.com/v1", ("OPENAI_API_KEY",), True,
        _caps(native_n=True, max_stop=4, logprobs=True),
    ),
    ProviderInfo(
        "groq", "https://api.groq.com/openai/v1", ("GROQ_API_KEY",), True,
        _caps(native_n=False, max_stop=4, logprobs=False),
    ),
    ProviderInfo(
        "openrouter", "https://openrouter.ai/api/v1", ("OPENROUTER_API_KEY",), True,
        _caps(native_n=False, logprobs=True),
    ),
    ProviderInfo(
        "vllm", "http://localhost:8000/v1", ("VLLM_API_KEY",), False,
        _caps(native_n=True, temperature_max=_UNLIMITED, logprobs=True),
    ),
    ProviderInfo(
        "llamacpp", "http://localhost:8080/v1", ("LLAMACPP_API_KEY",), False,
        _caps(native_n=False, temperature_max=_UNLIMITED, logprobs=True),
    ),
    ProviderInfo(
        "ollama-openai", "http://localhost:11434/v1", (), False,
        _caps(native_n=False, temperature_max=_UNLIMITED, logprobs=False),
    ),
    ProviderInfo(
        "custom", None, ("OPENAI_API_KEY",), False,
        _caps(native_n=False, temperature_max=_UNLIMITED, logprobs=False),
    ),
    ProviderInfo(
        "anthropic", "https://api.anthropic.com", ("ANTHROPIC_API_KEY",), True,
        _caps(native_n=False, temperature_max=1.0, logprobs=False, seed=False),
    ),
    ProviderInfo(
        "gemini", "https://generativelanguage.googleapis.com", ("GEMINI_API_KEY", "GOOGLE_API_KEY"), True,
        _caps(native_n=True, max_stop=5, logprobs=True),
    ),
    ProviderInfo(
        "ollama", "http://localhost:11434", (), False,
        _caps(native_n=False, temperature_max=_UNLIMITED, logprobs=False),
    ),
    ProviderInfo(
        "local", None, (), False,
        _caps(native_n=False, temperature_max=_UNLIMITED, logprobs=False),
    ),
)  # fmt: skip

PROVIDERS: Mapping[str, ProviderInfo] = MappingProxyType({info.name: info for info in _INFOS})
"""Every provider name :func:`create_provider_client` accepts, with its defaults and capabilities."""

_HttpFactory = Callable[..., HttpModelClient]

_HTTP_CLIENTS: dict[str, _HttpFactory] = {
    "openai": OpenAIClient,
    "groq": OpenAICompatibleClient,
    "openrouter": OpenAICompatibleClient,
    "vllm": OpenAICompatibleClient,
    "llamacpp": OpenAICompatibleClient,
    "ollama-openai": OpenAICompatibleClient,
    "custom": OpenAICompatibleClient,
    "anthropic": AnthropicClient,
    "gemini": GeminiClient,
    "ollama": OllamaClient,
}


def create_provider_client(
    provider: str,
    *,
    model: str,
    api_key: str | None,
    base_url: str | None,
    http: HttpPool,
    timeout: float = 600.0,
    connect_timeout: float = 5.0,
    capabilities: Capabilities | None = None,
) -> ModelClient:
    """A client for one model at one provider.

    ``base_url`` defaults to the provider's (see :data:`PROVIDERS`); ``capabilities`` overrides the
    provider's defaults (for example ``native_n`` for a ``custom`` server known to honour ``n``).
    The caller resolves ``api_key`` (from :attr:`ProviderInfo.api_key_env` when not given); a
    vendor endpoint that requires one and gets none raises :class:`InvalidConfiguration` (a key is
    optional when ``base_url`` points elsewhere, for example at a local server or a fake).
    """
    info = PROVIDERS.get(provider)
    if info is None:
        raise InvalidConfiguration(f"unknown provider {provider!r}; valid providers: {', '.join(sorted(PROVIDERS))}")
    if not model:
        raise InvalidConfiguration(f"provider {provider!r} needs a model name")
    if timeout <= 0 or connect_timeout <= 0:
        raise InvalidConfiguration(
            f"timeouts must be positive, got timeout={timeout} and connect_timeout={connect_timeout}"
        )
    caps = capabilities or info.capabilities
    if provider == "local":
        if base_url:
            raise InvalidConfiguration("provider 'local' runs in this process and takes no base_url; remove it")
        from .local import LocalModelClient

        return LocalModelClient(model=model, capabilities=caps)
    url = base_url or info.default_base_url
    if not url:
        raise InvalidConfiguration(
            f"provider {provider!r} needs a base_url (an OpenAI-compatible server ending in /v1)"
        )
    if info.requires_key and not api_key and url == info.default_base_url:
        env = " or ".join(info.api_key_env)
        raise InvalidConfiguration(f"provider {provider!r} needs an API key: set {env} or pass api_key")
    factory = _HTTP_CLIENTS[provider]
    return factory(
        provider=provider,
        model=model,
        base_url=url,
        api_key=api_key,
        http=http,
        capabilities=caps,
        timeout=timeout,
        connect_timeout=connect_timeout,
    )
