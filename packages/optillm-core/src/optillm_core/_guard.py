"""A switch that stops real model requests leaving the machine, for test suites."""

from __future__ import annotations as _annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from ._errors import OptillmError

__all__ = (
    "ModelRequestsBlocked",
    "allow_model_requests",
    "check_allow_model_requests",
    "set_model_requests_allowed",
)

ALLOW_MODEL_REQUESTS = True
"""When false, clients refuse to send requests to any non-loopback address. Test suites set it off."""


class ModelRequestsBlocked(OptillmError):
    """A client tried to reach a remote model while ``ALLOW_MODEL_REQUESTS`` is off."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_allow_model_requests(url: str) -> None:
    """Raise :class:`ModelRequestsBlocked` if ``url`` is remote and model requests are switched off."""
    if ALLOW_MODEL_REQUESTS:
        return
    host = urlsplit(url).hostname or ""
    if not _is_loopback(host):
        raise ModelRequestsBlocked(f"refusing a model request to {host!r}: ALLOW_MODEL_REQUESTS is off (loopback only)")


@contextmanager
def allow_model_requests(allow: bool) -> Iterator[None]:
    """Switch real model requests on or off inside the block."""
    global ALLOW_MODEL_REQUESTS
    previous = ALLOW_MODEL_REQUESTS
    ALLOW_MODEL_REQUESTS = allow
    try:
        yield
    finally:
        ALLOW_MODEL_REQUESTS = previous


def set_model_requests_allowed(allow: bool) -> None:
    """Switch real model requests on or off for the whole process (test suites call it at start-up)."""
    global ALLOW_MODEL_REQUESTS
    ALLOW_MODEL_REQUESTS = allow
