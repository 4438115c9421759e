"""The proxy's one pooled HTTP client for forwarding to the upstream server (opened in the app lifespan)."""

from __future__ import annotations as _annotations

import httpx

__all__ = ("open_pool",)

MAX_CONNECTIONS = 1024
MAX_KEEPALIVE = 256


def open_pool(timeout: float) -> httpx.AsyncClient:
    """A pooled client shared by every request; long read timeout because generations take a while."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_KEEPALIVE),
        follow_redirects=False,
    )
