"""One :class:`~optillm_core.ModelClient` per provider (the table of providers lives in ``_catalogue``).

Provider names:

- OpenAI chat-completions wire format: ``openai``, ``groq``, ``openrouter``, ``vllm``, ``llamacpp``
  (llama.cpp's ``llama-server``), ``ollama-openai`` (Ollama's ``/v1`` endpoint) and ``custom`` (any
  OpenAI-compatible server; ``base_url`` required). Their base URLs end in ``/v1``.
- ``anthropic`` (Messages API), ``gemini`` (generateContent) and ``ollama`` (Ollama's native
  ``/api/chat``): base URLs are server roots.
- ``local``: an embedded llama.cpp model in this process (extra ``optillm-router[local]``).

Each client fits every request to its model's profile. The clients never retry (except once
after a 400 that taught the profile something); the router does.
"""

from __future__ import annotations as _annotations

from collections.abc import Callable

from optillm_core import InvalidConfiguration, ModelClient, ModelProfile

from .._catalogue import PROVIDERS, ProviderInfo
from .._http import HttpPool
from .._profiles import model_profile
from ._common import HttpModelClient
from .anthropic import AnthropicClient
from .gemini import GeminiClient
from .ollama import OllamaClient
from .openai import OpenAIClient, OpenAICompatibleClient

__all__ = (
    "PROVIDERS",
    "AnthropicClient",
    "GeminiClient",
    "HttpModelClient",
    "OllamaClient",
    "OpenAIClient",
    "OpenAICompatibleClient",
    "ProviderInfo",
    "create_provider_client",
)

_HttpFactory = Callable[..., HttpModelClient]

_WIRE_CLIENTS: dict[str, _HttpFactory] = {
    "openai": OpenAICompatibleClient,
    "anthropic": AnthropicClient,
    "gemini": GeminiClient,
    "ollama": OllamaClient,
}
"""The client class of each HTTP wire format (the catalogue names each provider's)."""


def create_provider_client(
    provider: str,
    *,
    model: str,
    api_key: str | None,
    base_url: str | None,
    http: HttpPool,
    timeout: float = 600.0,
    connect_timeout: float = 5.0,
    profile: ModelProfile | None = None,
) -> ModelClient:
    """A client for one model at one provider.

    ``base_url`` defaults to the provider's (see :data:`PROVIDERS`); ``profile`` replaces the
    model's catalogue profile (:func:`~optillm_router.model_profile`), for example with
    ``native_n`` for a ``custom`` server known to honour ``n``.
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
    profile = profile or model_profile(provider, model)
    if provider == "local":
        if base_url:
            raise InvalidConfiguration("provider 'local' runs in this process and takes no base_url; remove it")
        from .local import LocalModelClient

        return LocalModelClient(model=model, profile=profile)
    url = base_url or info.default_base_url
    if not url:
        raise InvalidConfiguration(
            f"provider {provider!r} needs a base_url (an OpenAI-compatible server ending in /v1)"
        )
    if info.requires_key and not api_key and url == info.default_base_url:
        env = " or ".join(info.api_key_env)
        raise InvalidConfiguration(f"provider {provider!r} needs an API key: set {env} or pass api_key")
    factory = OpenAIClient if provider == "openai" else _WIRE_CLIENTS[info.wire]
    return factory(
        provider=provider,
        model=model,
        base_url=url,
        api_key=api_key,
        http=http,
        profile=profile,
        timeout=timeout,
        connect_timeout=connect_timeout,
    )
