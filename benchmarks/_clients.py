"""Clients and strategies the sections measure: the real router, and every installed strategy by name."""

from __future__ import annotations as _annotations

from collections.abc import Callable
from dataclasses import dataclass
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
from optillm_router import (
    HttpPool,
    ModelClientRouter,
    ProviderRoutingConfig,
    ProviderSpec,
    create_provider_client,
    model_profile,
)

__all__ = (
    "BASELINE",
    "Baseline",
    "StrategyCase",
    "local_client",
    "router_client",
    "strategy_cases",
)

BASELINE = "baseline"


class Baseline(Optimizer[OptimizerConfig]):
    """One plain model call: the single-sample baseline every strategy is compared with."""

    name = BASELINE
    description = "One model call, its reply returned as it is."
    config_type = OptimizerConfig
    answers_with_tools = True

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        prompt = ctx.conversation_prompt() if ctx.tools_offered else ctx.prompt(ctx.query)
        completion = await ctx.generate(prompt, ctx.settings)
        return Outcome(answer=completion.text, tool_calls=completion.calls)


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

    def __init__(self, wrapped: ModelClient, pool: HttpPool) -> None:
        super().__init__(wrapped)
        self._pool = pool

    async def aclose(self) -> None:
        await self.wrapped.aclose()
        await self._pool.aclose()


def router_client(base_url: str, *, model: str = "fake-model", native_n: bool = True) -> ModelClient:
    """The real router with one OpenAI-compatible ("custom") provider at ``base_url``.

    The ``custom`` provider declares no native ``n``, so the router fans ``n`` > 1 out into
    concurrent single requests; with ``native_n`` a client factory declares it (the fake server
    honours ``n``) and one request carries all ``n``.
    """
    pool = HttpPool()
    profile = model_profile("custom", model, {"native_n": native_n})
    spec = ProviderSpec(provider="custom", model=model, base_url=base_url, api_key="x")
    config = ProviderRoutingConfig.single(spec)

    def factory(spec: ProviderSpec, key: str | None) -> ModelClient:
        # The router's timeouts, as its own client factory passes them.
        return create_provider_client(
            spec.provider,
            model=spec.model,
            api_key=key,
            base_url=spec.base_url,
            http=pool,
            profile=profile,
            timeout=config.timeout_seconds,
            connect_timeout=config.connect_timeout_seconds,
        )

    return _PooledClient(ModelClientRouter(config, client_factory=factory), pool)


def local_client() -> ModelClient:
    """The router's embedded SmolLM2 model (provider "local", its default model)."""
    return ModelClientRouter(ProviderRoutingConfig.single(ProviderSpec(provider="local", model="smollm2")))
