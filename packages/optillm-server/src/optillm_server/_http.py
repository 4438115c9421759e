"""The pooled HTTP client that forwards pass-through requests upstream (optillm-router's ``HttpPool``)."""

from __future__ import annotations as _annotations

import httpx

from optillm_router import HttpPool

__all__ = ("HttpPool", "http_timeout")

MAX_CONNECT_SECONDS = 10.0


def http_timeout(read_seconds: float) -> httpx.Timeout:
    """Long reads (generations take a while), a short connect, and no limit on waiting for a pooled connection."""
    return httpx.Timeout(read_seconds, connect=min(read_seconds, MAX_CONNECT_SECONDS), pool=None)
