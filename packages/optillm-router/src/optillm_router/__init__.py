"""optillm-router: one ModelClient over many providers, with routing, retries, fallback and limits.

Build a :class:`ModelClientRouter` from a :class:`ProviderRoutingConfig` (in code, or from a
TOML/YAML/JSON file with :func:`load_routing_config`) and use it as any
:class:`~optillm_core.ModelClient`. The provider clients (:func:`create_provider_client`) can
also be used on their own.
"""

from __future__ import annotations as _annotations

from ._clock import AnyioClock, Clock
from ._config import ENV_PREFIX, ProviderRoutingConfig, ProviderSpec, RoutingStrategy, load_routing_config
from ._failures import TRANSPORT_FAILURES, FewerChoices
from ._http import HttpPool, parse_retry_after
from ._limits import DEFAULT_OUTPUT_TOKENS_ESTIMATE, RATE_WINDOW_SECONDS, TokenEstimate, estimate_tokens
from ._providers import PROVIDERS, Capabilities, ProviderInfo, create_provider_client
from ._retry import (
    COOLDOWN_FAILURES,
    COOLDOWN_SECONDS,
    INITIAL_RETRY_DELAY,
    MAX_COOLDOWN_SECONDS,
    MAX_RETRIES,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
    NEVER_RETRY_STATUSES,
    RETRY_JITTER,
    RETRY_STATUSES,
    UNREACHED_RETRIES,
    beyond_cap,
    retry_delay,
    should_retry,
)
from ._router import ClientFactory, ModelClientRouter
from ._strategies import Candidate, RouteOrder, route_order
from ._usage import CallRecord, ProviderStats, UsageTotals, cost_of

__all__ = (
    "COOLDOWN_FAILURES",
    "COOLDOWN_SECONDS",
    "DEFAULT_OUTPUT_TOKENS_ESTIMATE",
    "ENV_PREFIX",
    "INITIAL_RETRY_DELAY",
    "MAX_COOLDOWN_SECONDS",
    "MAX_RETRIES",
    "MAX_RETRY_AFTER",
    "MAX_RETRY_DELAY",
    "NEVER_RETRY_STATUSES",
    "PROVIDERS",
    "RATE_WINDOW_SECONDS",
    "RETRY_JITTER",
    "RETRY_STATUSES",
    "TRANSPORT_FAILURES",
    "UNREACHED_RETRIES",
    "AnyioClock",
    "CallRecord",
    "Candidate",
    "Capabilities",
    "ClientFactory",
    "Clock",
    "FewerChoices",
    "HttpPool",
    "ModelClientRouter",
    "ProviderInfo",
    "ProviderRoutingConfig",
    "ProviderSpec",
    "ProviderStats",
    "RouteOrder",
    "RoutingStrategy",
    "TokenEstimate",
    "UsageTotals",
    "beyond_cap",
    "cost_of",
    "create_provider_client",
    "estimate_tokens",
    "load_routing_config",
    "parse_retry_after",
    "retry_delay",
    "route_order",
    "should_retry",
)
