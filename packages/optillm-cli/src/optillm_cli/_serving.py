"""What ``optillm serve`` serves: every model of the provider (or of the router config), and its environment settings.

With one provider (``--provider`` / ``--base-url``) any model name is served: ``moa-gpt-4o-mini``
runs MoA on ``gpt-4o-mini`` and ``gpt-4o-mini`` passes through, each model through a router of its
own made when first asked for (at most :data:`MAX_MODELS`), as upstream optillm serves whatever
its upstream has. With a router config, the configured models are served: the config's first
model (and the name of its primary provider) through the whole route with its fallbacks, every
other provider's model (and its ``name``) through that provider alone. The embedded local model
serves its one model.

Server settings can also come from the environment, as users of upstream optillm set them:
``OPTILLM_BASE_URL``, ``OPTILLM_API_KEY``, ``OPTILLM_MODEL``, ``OPTILLM_PROVIDER``,
``OPTILLM_CONFIG``, ``OPTILLM_APPROACH``, ``OPTILLM_HOST``, ``OPTILLM_PORT`` and
``OPTILLM_REQUIRE_KEY``; a flag wins over its variable.
"""

from __future__ import annotations as _annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from optillm_core import InvalidConfiguration, ModelClient

from ._providers import ProviderChoice, routing_config

if TYPE_CHECKING:
    from optillm_router import ProviderSpec

__all__ = ("ENVIRONMENT", "MAX_MODELS", "ServedModels", "apply_environment")

MAX_MODELS = 64
"""The most distinct models one ``serve`` process makes clients for (each holds its own connection pool)."""

ENVIRONMENT: Mapping[str, str] = {
    "base_url": "OPTILLM_BASE_URL",
    "api_key": "OPTILLM_API_KEY",
    "model": "OPTILLM_MODEL",
    "provider": "OPTILLM_PROVIDER",
    "config": "OPTILLM_CONFIG",
    "approach": "OPTILLM_APPROACH",
    "host": "OPTILLM_HOST",
    "port": "OPTILLM_PORT",
}
"""The ``serve`` flags (by argparse dest) that an environment variable sets when the flag is not given."""

_DEFAULTS = {"host": "127.0.0.1", "port": 8000}


def apply_environment(args: argparse.Namespace, env: Mapping[str, str]) -> argparse.Namespace:
    """``args`` with each flag left at its default taken from its ``OPTILLM_*`` variable, when that is set."""
    changes: dict[str, object] = {}
    for dest, variable in ENVIRONMENT.items():
        value = env.get(variable)
        if not value or getattr(args, dest, None) not in (None, _DEFAULTS.get(dest)):
            continue
        if dest == "port":
            if not value.isdigit() or not 0 < int(value) <= 65535:
                raise InvalidConfiguration(f"{variable} must be a port number from 1 to 65535 (got {value!r})")
            changes[dest] = int(value)
        elif dest == "config":
            changes[dest] = Path(value)
        else:
            changes[dest] = value
    return argparse.Namespace(**{**vars(args), **changes})


ClientMaker = Callable[[ProviderChoice, Mapping[str, str]], ModelClient]


class ServedModels:
    """The client for each model name a request asks for; the default ``client`` serves the default model.

    :meth:`names` are the models ``/v1/models`` lists (``None``: any of the provider's models is
    served). :meth:`aclose` closes the clients it made, in the server's event loop.
    """

    def __init__(self, choice: ProviderChoice, env: Mapping[str, str], client: ModelClient, make: ClientMaker) -> None:
        self._choice = choice
        self._env = env
        self._default = client
        self._make = make
        self._made: dict[str, ModelClient] = {}
        self._routes = _configured(choice) if choice.config is not None else None

    @property
    def names(self) -> tuple[str, ...] | None:
        if self._routes is not None:
            return tuple(self._routes)
        if self._choice.provider == "local":
            return (self._default.model_name,)
        return None

    def describe(self) -> str:
        """What is served, in a few words, for the startup line."""
        names = self.names
        if names is None:
            return (
                f"every model of {self._choice.base_url or self._choice.provider} (default {self._default.model_name})"
            )
        return f"{', '.join(names)} (default {self._default.model_name})"

    def __call__(self, name: str) -> ModelClient:
        if name == self._default.model_name:
            return self._default
        client = self._made.get(name)
        if client is not None:
            return client
        return self._new(name)

    def _new(self, name: str) -> ModelClient:
        from optillm_server import ApiError

        names = self.names
        if names is not None and name not in names:
            raise ApiError(
                400,
                f"model '{name}' is not served by this proxy (it serves {', '.join(names)}; a strategy prefix such "
                f"as 'moa-{self._default.model_name}' runs a strategy on one of them)",
                param="model",
                code="model_not_found",
            )
        if len(self._made) >= MAX_MODELS:
            raise ApiError(
                400,
                f"this proxy already serves {MAX_MODELS} other models, its limit: use one of those or restart it",
                param="model",
                code="model_not_found",
            )
        client = self._route(name) if self._routes is not None else self._make(self._with_model(name), self._env)
        self._made[name] = client
        return client

    def _with_model(self, name: str) -> ProviderChoice:
        return dataclasses.replace(self._choice, model=name)

    def _route(self, name: str) -> ModelClient:
        from optillm_router import ModelClientRouter

        assert self._routes is not None
        spec = self._routes[name]
        if spec is None:  # the config's own model: the whole route
            return self._default
        config = routing_config(self._choice).model_copy(update={"primary": spec, "alternatives": ()})
        return ModelClientRouter(config, environ=self._env)

    async def aclose(self) -> None:
        made, self._made = list(self._made.values()), {}
        for client in made:
            if client is not self._default:
                await client.aclose()


def _configured(choice: ProviderChoice) -> dict[str, ProviderSpec | None]:
    """The models of a router config by name: the first provider's (``None``: the whole route), then each other's."""
    config = routing_config(choice)
    served: dict[str, ProviderSpec | None] = {}
    for position, spec in enumerate((config.primary, *config.alternatives)):
        for name in (spec.model, spec.name):
            if name is not None and name not in served:
                served[name] = None if position == 0 else spec
    return served
