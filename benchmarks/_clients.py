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


@dataclass(frozen=True)
class StrategyCase:
    """A strategy to measure: its name, how to build it, and the caller's generation settings."""

    name: str
    build: Callable[[], Optimizer[Any]]
    settings: GenerationSettings


SMOKE_STRATEGIES = frozenset({BASELINE, "moa"})


def strategy_cases(
    max_tokens: int | None = None, options: dict[str, dict[str, Any]] | None = None, *, smoke: bool = False
) -> list[StrategyCase]:
    """The baseline and every installed strategy at its defaults (``options`` overrides per name).

    ``smoke`` keeps only the cheapest ones, to check the harness quickly.
    """
    options = options or {}
    settings = GenerationSettings(max_tokens=max_tokens) if max_tokens else GenerationSettings()
    cases = [StrategyCase(BASELINE, Baseline, settings)]
    registry = default_registry()
    for name in registry.names():
        overrides = options.get(name, {})
        cases.append(StrategyCase(name, partial(registry.create, name, overrides), settings))
    return [c for c in cases if c.name in SMOKE_STRATEGIES] if smoke else cases


class _PooledClient(WrapperClient):
    """A client that also owns the connection pool its provider clients share."""

    def __init__(self, wrapped: ModelClient, pool: Any) -> None:
        super().__init__(wrapped)
        self._pool = pool

    async def aclose(self) -> None:
        await self.wrapped.aclose()
        await self._pool.aclose()


def client_label(client: ModelClient) -> str:
    """Which client a section measured, for its notes."""
    inner = client.wrapped if isinstance(client, WrapperClient) else client
    if type(inner).__name__ == "ModelClientRouter":
        return "optillm_router's ModelClientRouter"
    return f"optillm_router's {type(inner).__name__} alone (ModelClientRouter not installed)"


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

    The ``custom`` provider declares no native ``n``, so the router fans ``n`` > 1 out into
    concurrent single requests; with ``native_n`` a client factory declares it (the fake server
    honours ``n``) and one request carries all ``n``. Before the router lands, the router package's
    OpenAI-compatible provider client is used alone.
    """
    router = _import("optillm_router")
    providers = router if hasattr(router, "create_provider_client") else _import("optillm_router._providers")
    pool = (router.HttpPool if hasattr(router, "HttpPool") else _import("optillm_router._http").HttpPool)()
    caps = replace(providers.PROVIDERS["custom"].capabilities, native_n=native_n)

    def provider_client(provider: str, key: str | None, url: str | None, name: str) -> ModelClient:
        client: ModelClient = providers.create_provider_client(
            provider, model=name, api_key=key, base_url=url, http=pool, capabilities=caps
        )
        return client

    if not hasattr(router, "ModelClientRouter"):
        return _PooledClient(provider_client("custom", "x", base_url, model), pool)
    spec = router.ProviderSpec(provider="custom", model=model, base_url=base_url, api_key="x")
    config = router.ProviderRoutingConfig.single(spec)

    def factory(spec: Any, key: str | None) -> ModelClient:
        return provider_client(spec.provider, key, spec.base_url, spec.model)

    return _PooledClient(router.ModelClientRouter(config, client_factory=factory), pool)


def local_client() -> ModelClient:
    """The router's embedded SmolLM2 model (provider "local", its default model)."""
    router = _import("optillm_router")
    if hasattr(router, "ModelClientRouter"):
        return _router({"provider": "local", "model": "smollm2"})
    providers = router if hasattr(router, "create_provider_client") else _import("optillm_router._providers")
    pool = _import("optillm_router._http").HttpPool()
    client: ModelClient = providers.create_provider_client(
        "local", model="smollm2", api_key=None, base_url=None, http=pool
    )
    return _PooledClient(client, pool)
