"""optillm-router: one ModelClient over many providers, with routing, retries, fallback and limits.

Build a :class:`ModelClientRouter` from a :class:`ProviderRoutingConfig` (in code, or from a
TOML/YAML/JSON file with :func:`load_routing_config`) and use it as any
:class:`~optillm_core.ModelClient`. The provider clients (:func:`create_provider_client`) can
also be used on their own. :data:`PROVIDERS` is the catalogue of providers and
:func:`model_profile` what each model accepts.

Importing the package is light (the catalogue, profiles and policy constants); the HTTP stack,
the clients and the config loader are imported on first use of one of their names.
"""

from __future__ import annotations as _annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._catalogue import PROVIDERS, ProviderInfo, WireFormat
from ._clock import AnyioClock, Clock
from ._limits import DEFAULT_OUTPUT_TOKENS_ESTIMATE, RATE_WINDOW_SECONDS, TokenEstimate, estimate_tokens
from ._profiles import PROFILE_RULES, ProfileRule, model_profile
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
    retry_allowed,
    retry_delay,
    should_retry,
)
from ._usage import CallRecord, ProviderStats, UsageTotals, cost_of

if TYPE_CHECKING:
    from ._config import ENV_PREFIX, ProviderRoutingConfig, ProviderSpec, RoutingStrategy, load_routing_config
    from ._failures import TRANSPORT_FAILURES, FewerChoices, client_error, could_not_connect
    from ._http import HttpPool, parse_retry_after
    from ._providers import create_provider_client
    from ._providers._tools import add_openai_signature, openai_call_signature, openai_tool_call
    from ._router import ClientFactory, ModelClientRouter
    from ._strategies import Candidate, RouteOrder, route_order

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
    "PROFILE_RULES",
    "PROVIDERS",
    "RATE_WINDOW_SECONDS",
    "RETRY_JITTER",
    "RETRY_STATUSES",
    "TRANSPORT_FAILURES",
    "UNREACHED_RETRIES",
    "AnyioClock",
    "CallRecord",
    "Candidate",
    "ClientFactory",
    "Clock",
    "FewerChoices",
    "HttpPool",
    "ModelClientRouter",
    "ProfileRule",
    "ProviderInfo",
    "ProviderRoutingConfig",
    "ProviderSpec",
    "ProviderStats",
    "RouteOrder",
    "RoutingStrategy",
    "TokenEstimate",
    "UsageTotals",
    "WireFormat",
    "add_openai_signature",
    "beyond_cap",
    "client_error",
    "cost_of",
    "could_not_connect",
    "create_provider_client",
    "estimate_tokens",
    "load_routing_config",
    "model_profile",
    "openai_call_signature",
    "openai_tool_call",
    "parse_retry_after",
    "retry_allowed",
    "retry_delay",
    "route_order",
    "should_retry",
)

_LAZY = {
    "ENV_PREFIX": "._config",
    "ProviderRoutingConfig": "._config",
    "ProviderSpec": "._config",
    "RoutingStrategy": "._config",
    "load_routing_config": "._config",
    "TRANSPORT_FAILURES": "._failures",
    "FewerChoices": "._failures",
    "client_error": "._failures",
    "could_not_connect": "._failures",
    "HttpPool": "._http",
    "parse_retry_after": "._http",
    "create_provider_client": "._providers",
    "add_openai_signature": "._providers._tools",
    "openai_call_signature": "._providers._tools",
    "openai_tool_call": "._providers._tools",
    "ClientFactory": "._router",
    "ModelClientRouter": "._router",
    "Candidate": "._strategies",
    "RouteOrder": "._strategies",
    "route_order": "._strategies",
}
"""Names whose modules import aiohttp, httpx or yaml: imported when first asked for."""


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
