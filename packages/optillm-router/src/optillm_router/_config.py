"""Router configuration: one :class:`ProviderSpec` per provider, one :class:`ProviderRoutingConfig` per router.

Both are frozen pydantic models. Invalid values raise :class:`~optillm_core.InvalidConfiguration`
naming the field; API keys are :class:`~pydantic.SecretStr` and never appear in a repr.
"""

from __future__ import annotations as _annotations

import json
import os
import tomllib
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from optillm_core import InvalidConfiguration, ModelProfile

from ._catalogue import PROVIDERS
from ._profiles import model_profile
from ._retry import (
    COOLDOWN_FAILURES,
    COOLDOWN_SECONDS,
    INITIAL_RETRY_DELAY,
    MAX_COOLDOWN_SECONDS,
    MAX_RETRIES,
    MAX_RETRY_AFTER,
    MAX_RETRY_DELAY,
)

__all__ = (
    "ENV_PREFIX",
    "ProviderRoutingConfig",
    "ProviderSpec",
    "RoutingStrategy",
    "load_routing_config",
)

ENV_PREFIX = "env:"
"""A secret written ``env:VAR`` is read from the environment variable ``VAR`` when the router starts."""


class RoutingStrategy(StrEnum):
    """How a router orders its providers for each request; the first is tried first, the rest are fallbacks."""

    PRIMARY = "primary"
    """The primary, then the alternatives in the order given."""
    ROUND_ROBIN = "round_robin"
    """Each request starts one provider further along the list."""
    HIGHEST_PRIORITY = "highest_priority"
    """Highest ``priority`` first; ties keep the order given."""
    RANDOM = "random"
    """Weighted random by ``weight`` (a provider of weight 0 only serves as a fallback)."""
    CHEAPEST = "cheapest"
    """Lowest estimated cost of this request from the per-million-token prices."""
    FASTEST = "fastest"
    """Lowest moving average of observed latency; providers not yet measured go first."""
    BALANCE_LOAD = "balance_load"
    """Fewest calls in flight."""

    @classmethod
    def _missing_(cls, value: object) -> RoutingStrategy | None:
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_").replace(" ", "_")
            for member in cls:
                if member.value == key:
                    return member
        return None


def _describe(exc: ValidationError, what: str) -> str:
    """A one-line account of every validation error, never quoting a secret."""
    parts = []
    for error in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        value = error.get("input")
        secret = "api_key" in loc and "api_key_env" not in loc
        if not secret and isinstance(value, int | float | str | bool) and "valid providers" not in message:
            shown = repr(value)
            message += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
        parts.append(f"{loc}: {message}" if loc else message)
    return f"invalid {what}: " + "; ".join(parts)


_VALIDATING: ContextVar[bool] = ContextVar("optillm_router_validating", default=False)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    def _validate_or_raise(self, fields: dict[str, Any]) -> None:
        """Validate; outside another model's validation, errors become one InvalidConfiguration."""
        token = _VALIDATING.set(True)
        try:
            super().__init__(**fields)
        except ValidationError as exc:
            if token.old_value is True:
                raise  # nested in a config: pydantic merges it into the outer errors with their location
            raise InvalidConfiguration(_describe(exc, type(self).__name__)) from None
        finally:
            _VALIDATING.reset(token)

    def _replace(self, **changes: Any) -> Self:
        fields = {name: getattr(self, name) for name in type(self).model_fields}
        fields.update(changes)
        return type(self)(**fields)


class ProviderSpec(_Frozen):
    """One model at one provider, with its key, limits and prices.

    ``api_key`` may be the key itself or ``env:VAR``; without it the key comes from ``api_key_env``,
    else from the provider's usual variables (``PROVIDERS[provider].api_key_env``).
    ``max_concurrency`` caps calls in flight; ``rpm``/``tpm`` cap requests and tokens per minute.
    Prices are per million tokens, used for cost accounting and the CHEAPEST strategy.
    ``native_n`` overrides whether the server returns ``n`` choices in one request (for example a
    ``custom`` server that does). ``profile`` overrides fields of the model's profile (any
    :class:`~optillm_core.ModelProfile` field, e.g. ``{"temperature": False, "thinking": "tags"}``)
    over what the catalogue knows of the model (:func:`~optillm_router.model_profile`).
    ``name`` labels the provider in logs and statistics (default ``provider/model``).
    """

    provider: str
    model: str = Field(min_length=1)
    api_key: SecretStr | None = None
    api_key_env: str | None = Field(default=None, min_length=1)
    base_url: str | None = None
    enabled: bool = True
    priority: int = 0
    weight: float = Field(default=1.0, ge=0.0, allow_inf_nan=False)
    max_concurrency: int | None = Field(default=None, ge=1)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    input_price_per_million: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    output_price_per_million: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    timeout_seconds: float | None = Field(default=None, gt=0.0)
    connect_timeout_seconds: float | None = Field(default=None, gt=0.0)
    native_n: bool | None = None
    profile: dict[str, Any] = Field(default_factory=dict)
    name: str | None = Field(default=None, min_length=1)

    def __init__(self, provider: str | None = None, model: str | None = None, **fields: Any) -> None:
        if provider is not None:
            fields["provider"] = provider
        if model is not None:
            fields["model"] = model
        self._validate_or_raise(fields)

    @field_validator("provider", mode="before")
    @classmethod
    def _known_provider(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        name = value.strip().lower()
        if name not in PROVIDERS:
            raise ValueError(f"unknown provider {value!r}; valid providers: {', '.join(sorted(PROVIDERS))}")
        return name

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _non_empty_key(cls, value: object) -> object:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, str) and (not raw.strip() or raw.strip() == ENV_PREFIX):
            raise ValueError("api_key is empty; give the key, env:VAR, or leave it out")
        return value

    @model_validator(mode="after")
    def _valid_profile(self) -> Self:
        if self.profile:
            try:
                self.model_profile()
            except InvalidConfiguration as exc:
                raise ValueError(str(exc)) from None
        return self

    def model_profile(self) -> ModelProfile:
        """What this model accepts: the catalogue's profile with ``native_n`` and ``profile`` applied."""
        overrides = dict(self.profile)
        if self.native_n is not None:
            overrides.setdefault("native_n", self.native_n)
        return model_profile(self.provider, self.model, overrides)

    @property
    def label(self) -> str:
        """How logs, statistics and errors name this provider (never with its key)."""
        return self.name or f"{self.provider}/{self.model}"

    # -- builders (the seed's names) ------------------------------------------------------------

    def with_api_key(self, api_key: str) -> Self:
        """The key itself, or ``env:VAR``."""
        return self._replace(api_key=SecretStr(api_key))

    def with_env_key(self, variable: str) -> Self:
        """Read the key from environment variable ``variable`` when the router starts."""
        return self._replace(api_key_env=variable)

    def with_base_url(self, base_url: str) -> Self:
        return self._replace(base_url=base_url)

    def with_enabled(self, enabled: bool) -> Self:
        return self._replace(enabled=enabled)

    def with_priority(self, priority: int) -> Self:
        return self._replace(priority=priority)

    def with_weight(self, weight: float) -> Self:
        return self._replace(weight=weight)

    def with_limits(
        self, *, max_concurrency: int | None = None, rpm: int | None = None, tpm: int | None = None
    ) -> Self:
        return self._replace(max_concurrency=max_concurrency, rpm=rpm, tpm=tpm)

    def with_prices(self, *, input_per_million: float, output_per_million: float) -> Self:
        return self._replace(input_price_per_million=input_per_million, output_price_per_million=output_per_million)

    def with_name(self, name: str) -> Self:
        return self._replace(name=name)

    def with_profile(self, **fields: Any) -> Self:
        """Override fields of the model's profile (added to any overrides already set)."""
        return self._replace(profile={**self.profile, **fields})

    # -- keys ------------------------------------------------------------------------------------

    def resolve_api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The API key to send, or ``None`` when the provider needs none.

        Order: ``api_key`` (``env:VAR`` read from the environment), ``api_key_env``, then the
        provider's usual variables. A provider that requires a key and has none raises
        :class:`InvalidConfiguration` saying which variable to set.
        """
        env = os.environ if environ is None else environ
        if self.api_key is not None:
            raw = self.api_key.get_secret_value().strip()
            if not raw.startswith(ENV_PREFIX):
                return raw
            return self._from_env(env, raw.removeprefix(ENV_PREFIX).strip(), "api_key")
        if self.api_key_env is not None:
            return self._from_env(env, self.api_key_env, "api_key_env")
        info = PROVIDERS[self.provider]
        for variable in info.api_key_env:
            value = env.get(variable, "").strip()
            if value:
                return value
        own_server = self.base_url is not None and self.base_url.rstrip("/") != info.default_base_url
        if info.requires_key and not own_server:
            variables = " or ".join(info.api_key_env)
            raise InvalidConfiguration(
                f"{self.label}: no API key for provider {self.provider!r}; "
                f"set {variables}, or give api_key (the key or env:VAR) or api_key_env"
            )
        return None

    def _from_env(self, env: Mapping[str, str], variable: str, field: str) -> str:
        value = env.get(variable, "").strip()
        if not value:
            raise InvalidConfiguration(
                f"{self.label}: {field} refers to environment variable {variable}, which is not set; set {variable}"
            )
        return value


class ProviderRoutingConfig(_Frozen):
    """A router's providers and policy.

    Each provider gets ``1 + max_retries`` attempts per request for transient failures (backoff
    between them, see :mod:`optillm_router._retry`); with ``enable_fallback`` the next provider in
    the strategy's order then serves it. A ``retry-after`` longer than ``max_retry_after`` is not
    waited for. ``timeout_seconds`` bounds one attempt (for a stream: until its first event);
    ``connect_timeout_seconds`` bounds connecting. After ``cooldown_failures`` consecutive failed
    attempts a provider (of several) cools down for ``cooldown_seconds``: it is tried after the
    others, and once it is back one probe request decides. Failing again while cooling down
    extends the cooldown, up to ``max_cooldown_seconds`` (see :mod:`optillm_router._health`).
    """

    primary: ProviderSpec
    alternatives: tuple[ProviderSpec, ...] = ()
    strategy: RoutingStrategy = RoutingStrategy.PRIMARY
    enable_fallback: bool = True
    max_retries: int = Field(default=MAX_RETRIES, ge=0, le=100)
    timeout_seconds: float = Field(default=300.0, gt=0.0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0.0)
    cooldown_failures: int = Field(default=COOLDOWN_FAILURES, ge=1)
    cooldown_seconds: float = Field(default=COOLDOWN_SECONDS, ge=0.0, allow_inf_nan=False)
    max_cooldown_seconds: float = Field(default=MAX_COOLDOWN_SECONDS, ge=0.0, allow_inf_nan=False)
    initial_retry_delay: float = Field(default=INITIAL_RETRY_DELAY, ge=0.0, allow_inf_nan=False)
    max_retry_delay: float = Field(default=MAX_RETRY_DELAY, ge=0.0, allow_inf_nan=False)
    max_retry_after: float = Field(default=MAX_RETRY_AFTER, ge=0.0, allow_inf_nan=False)

    def __init__(self, primary: ProviderSpec | Mapping[str, Any] | None = None, **fields: Any) -> None:
        if primary is not None:
            fields["primary"] = primary
        self._validate_or_raise(fields)

    @property
    def providers(self) -> tuple[ProviderSpec, ...]:
        """The primary, then the alternatives."""
        return (self.primary, *self.alternatives)

    @classmethod
    def single(cls, spec: ProviderSpec) -> Self:
        """One provider: PRIMARY, the default retries, 300 s timeout."""
        return cls(primary=spec, strategy=RoutingStrategy.PRIMARY, enable_fallback=True)

    @classmethod
    def multi(cls, primary: ProviderSpec, alternatives: Sequence[ProviderSpec]) -> Self:
        """Several providers: ROUND_ROBIN, fallback on, the default retries."""
        return cls(
            primary=primary,
            alternatives=tuple(alternatives),
            strategy=RoutingStrategy.ROUND_ROBIN,
            enable_fallback=True,
        )

    def with_strategy(self, strategy: RoutingStrategy | str) -> Self:
        return self._replace(strategy=strategy)

    def with_fallback(self, enabled: bool = True) -> Self:
        return self._replace(enable_fallback=enabled)

    def with_max_retries(self, max_retries: int) -> Self:
        return self._replace(max_retries=max_retries)

    def with_timeout(self, seconds: float, *, connect: float | None = None) -> Self:
        return self._replace(
            timeout_seconds=seconds,
            connect_timeout_seconds=self.connect_timeout_seconds if connect is None else connect,
        )

    def with_alternative(self, spec: ProviderSpec) -> Self:
        return self._replace(alternatives=(*self.alternatives, spec))

    def with_cooldown(self, *, failures: int, seconds: float, maximum: float | None = None) -> Self:
        return self._replace(
            cooldown_failures=failures,
            cooldown_seconds=seconds,
            max_cooldown_seconds=self.max_cooldown_seconds if maximum is None else maximum,
        )

    def with_retry_delays(
        self,
        *,
        initial: float = INITIAL_RETRY_DELAY,
        maximum: float = MAX_RETRY_DELAY,
        max_retry_after: float = MAX_RETRY_AFTER,
    ) -> Self:
        return self._replace(initial_retry_delay=initial, max_retry_delay=maximum, max_retry_after=max_retry_after)


def load_routing_config(source: str | os.PathLike[str] | Mapping[str, Any]) -> ProviderRoutingConfig:
    """A :class:`ProviderRoutingConfig` from a mapping or a ``.toml``, ``.yaml``/``.yml`` or ``.json`` file.

    The settings sit at the top level or under a ``router`` table. Providers are given as
    ``primary`` (+ ``alternatives``) or as a ``providers`` list whose first entry is the primary.
    """
    if isinstance(source, Mapping):
        data: object = source
        what = "router config"
    else:
        path = Path(source)
        data = _read(path)
        what = f"router config {path}"
    if not isinstance(data, Mapping):
        raise InvalidConfiguration(f"{what}: expected a table of settings, got {type(data).__name__}")
    section = data.get("router")
    settings = dict(section if isinstance(section, Mapping) else data)
    providers = settings.pop("providers", None)
    if providers is not None:
        if "primary" in settings or "alternatives" in settings:
            raise InvalidConfiguration(f"{what}: give either 'providers' or 'primary'/'alternatives', not both")
        if not isinstance(providers, list) or not providers:
            raise InvalidConfiguration(f"{what}: 'providers' must be a non-empty list of provider tables")
        settings["primary"], settings["alternatives"] = providers[0], providers[1:]
    try:
        return ProviderRoutingConfig.model_validate(settings)
    except ValidationError as exc:
        raise InvalidConfiguration(_describe(exc, what)) from None


def _read(path: Path) -> object:
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise InvalidConfiguration(f"router config {path}: unsupported file type; use .toml, .yaml, .yml or .json")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidConfiguration(f"router config file not found: {path}") from None
    except OSError as exc:
        raise InvalidConfiguration(f"router config {path} cannot be read: {exc.strerror}") from None
    try:
        if suffix == ".toml":
            return tomllib.loads(text)
        if suffix == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidConfiguration(f"router config {path} is not valid {suffix.lstrip('.').upper()}: {exc}") from None
