"""Clients and strategies the sections measure: the real router, and every installed strategy by name."""

from __future__ import annotations as _annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from optillm_core import (
    GenerationSettings,
    ModelClient,
    Optimizer,
    OptimizerConfig,
    Outcome,
    RunContext,
    WrapperClient,
    default_registry,
)

__all__ = (
    "BASELINE",
    "Baseline",
    "Missing",
    "NoNativeN",
    "StrategyCase",
    "client_label",
    "router_client",
    "strategy_cases",
)

BASELINE = "baseline"


class Missing(RuntimeError):
    """A package a section needs is not installed (or lacks what the harness uses)."""


class Baseline(Optimizer[OptimizerConfig]):
    """One plain model call: the single-sample baseline every strategy is compared with."""

    name = BASELINE
    description = "One model call, its text returned as it is."
    config_type = OptimizerConfig

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        completion = await ctx.generate(ctx.query, ctx.settings)
        return Outcome(answer=completion.text)


class NoNativeN(WrapperClient):
    """Hides native ``n`` so that core fans ``n`` > 1 out into concurrent single requests."""

    @property
    def supports_native_n(self) -> bool:
        return False


@dataclass(frozen=True)
class StrategyCase:
    """A strategy to measure: its name, how to build it, and the caller's generation settings."""

    name: str
    build: Callable[[], Optimizer[Any]]
    settings: GenerationSettings


def strategy_cases(
    max_tokens: int | None = None, options: dict[str, dict[str, Any]] | None = None
) -> list[StrategyCase]:
    """The baseline and every installed strategy at its defaults (``options`` overrides per name)."""
    options = options or {}
    settings = GenerationSettings(max_tokens=max_tokens) if max_tokens else GenerationSettings()
    cases = [StrategyCase(BASELINE, Baseline, settings)]
    registry = default_registry()
    for name in registry.names():
        overrides = options.get(name, {})
        cases.append(StrategyCase(name, partial(registry.create, name, overrides), settings))
    return cases


class _PooledClient(WrapperClient):
    """A provider client that also owns its connection pool (the fallback when the router is absent)."""

    def __init__(self, wrapped: ModelClient, pool: Any) -> None:
        super().__init__(wrapped)
        self._pool = pool

    async def aclose(self) -> None:
        await self.wrapped.aclose()
        await self._pool.aclose()


def client_label(client: ModelClient) -> str:
    """Which client a section measured, for its notes."""
    inner = client.wrapped if isinstance(client, WrapperClient) else client
    if isinstance(client, _PooledClient):
        return f"optillm_router's {type(inner).__name__} on an HttpPool (ModelClientRouter not installed)"
    return f"optillm_router's {type(inner).__name__}"


def _import(module: str) -> Any:
    """An optional module, typed loosely: the harness adapts to what the installed packages offer."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Missing(f"{module} is not installed ({exc})") from None


def _router(spec_fields: dict[str, Any]) -> ModelClient:
    router = _import("optillm_router")
    if not hasattr(router, "ModelClientRouter"):
        raise Missing("optillm_router has no ModelClientRouter yet")
    spec = router.ProviderSpec(**spec_fields)
    client: ModelClient = router.ModelClientRouter(router.ProviderRoutingConfig.single(spec))
    return client


def router_client(base_url: str, *, model: str = "fake-model", native_n: bool = True) -> ModelClient:
    """The real router with one OpenAI-compatible ("custom") provider at ``base_url``.

    With ``native_n`` the provider is declared to honour ``n`` (the fake server does); without, the
    client hides native ``n`` so that core fans ``n`` > 1 out into concurrent single requests.
    Before the router lands, the router package's OpenAI-compatible provider client is used alone.
    """
    router = _import("optillm_router")
    client: ModelClient
    if hasattr(router, "ModelClientRouter"):
        fields = router.ProviderSpec.model_fields
        spec: dict[str, Any] = {"provider": "custom", "model": model, "base_url": base_url, "api_key": "x"}
        if "native_n" in fields:
            spec["native_n"] = native_n
        elif "capabilities" in fields:
            spec["capabilities"] = {"native_n": native_n}
        client = _router(spec)
    else:
        providers = _import("optillm_router._providers")
        pool = _import("optillm_router._http").HttpPool()
        caps = replace(providers.PROVIDERS["custom"].capabilities, native_n=native_n)
        inner: ModelClient = providers.create_provider_client(
            "custom", model=model, api_key="x", base_url=base_url, http=pool, capabilities=caps
        )
        client = _PooledClient(inner, pool)
    return client if native_n else NoNativeN(client)


def local_client() -> ModelClient:
    """The router's embedded SmolLM2 model (provider "local", its default model)."""
    return _router({"provider": "local", "model": "smollm2"})
