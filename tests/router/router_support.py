"""Helpers for the router tests: a client factory over test doubles (and core's virtual clocks)."""

from __future__ import annotations

from collections.abc import Mapping

from optillm_core import ModelClient
from optillm_router import ClientFactory, ProviderSpec


def factory(clients: Mapping[str, ModelClient]) -> ClientFactory:
    """A client factory that serves each spec the double registered under its label."""

    def make(spec: ProviderSpec, api_key: str | None) -> ModelClient:
        return clients[spec.label]

    return make


def spec(model: str, **fields: object) -> ProviderSpec:
    """A spec for a keyless provider, labelled ``vllm/<model>``."""
    return ProviderSpec("vllm", model, **fields)
