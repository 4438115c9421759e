"""Pooled HTTP sessions and the mapping of HTTP and transport failures to the optillm error tree.

httpx's own async transport slows down as requests wait for its pool, so connections here live in
aiohttp: one pooled ``aiohttp.ClientSession`` per base URL, with limits far above any concurrency
optillm reaches. Provider clients call the session directly (each layer on top of aiohttp costs
client CPU on every call); :meth:`HttpPool.client` wraps the same session in an
``httpx.AsyncClient`` (through ``httpx_aiohttp.AiohttpTransport``) for code that wants httpx's API.
"""

from __future__ import annotations as _annotations

import json
import math
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from optillm_core import ClientError, OptillmError, error_for_status, redact

from ._failures import attempt_timed_out, client_error

__all__ = (
    "DEFAULT_MAX_CONNECTIONS",
    "HttpPool",
    "error_from_response",
    "error_message_from_body",
    "parse_retry_after",
    "transport_errors",
    "whole_request_timeout",
)

DEFAULT_MAX_CONNECTIONS = 8192
"""Open connections per base URL; far above 1,000 concurrent calls so none waits for a slot."""
KEEPALIVE_SECONDS = 30.0
MAX_ERROR_TEXT = 500
"""Characters of a non-JSON error body quoted in an error message."""


class HttpPool:
    """One pooled ``aiohttp.ClientSession`` per base URL, shared by every provider client that uses it.

    Sessions are created on first use, inside the running event loop. The pool owns them: close it
    once with :meth:`aclose` (or ``async with``) when done.
    """

    def __init__(
        self, *, max_connections: int = DEFAULT_MAX_CONNECTIONS, keepalive_expiry: float = KEEPALIVE_SECONDS
    ) -> None:
        self._max_connections = max_connections
        self._keepalive_expiry = keepalive_expiry
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}

    def session(self, base_url: str) -> aiohttp.ClientSession:
        """The shared aiohttp session for ``base_url`` (created on first use; call it inside the event loop)."""
        key = base_url.rstrip("/")
        session = self._sessions.get(key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=self._keepalive_expiry)
            # No cookies (API calls carry none, and aiohttp's jar costs CPU on every call), no proxy
            # settings from the environment, and no total timeout: each call sets its own.
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._sessions[key] = session
        return session

    def client(self, base_url: str) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` for ``base_url`` over the same pooled connections as :meth:`session`."""
        key = base_url.rstrip("/")
        client = self._clients.get(key)
        if client is None:
            transport = AiohttpTransport(client=lambda: self.session(key))
            # Per-request timeouts are set by each call; pool=None because aiohttp maps the pool
            # timeout to its total connect wait, and queued calls must never fail on it.
            client = httpx.AsyncClient(
                base_url=key,
                transport=transport,
                timeout=httpx.Timeout(None),
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        sessions, self._sessions = list(self._sessions.values()), {}
        for client in clients:
            await client.aclose()
        for session in sessions:
            await session.close()

    async def __aenter__(self) -> HttpPool:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"HttpPool(base_urls={sorted(self._sessions.keys() | self._clients.keys())!r})"


def request_timeout(timeout: float, connect_timeout: float) -> aiohttp.ClientTimeout:
    """A stream's: ``timeout`` between reads, ``connect_timeout`` to connect, no limit on the whole stream."""
    return aiohttp.ClientTimeout(total=None, sock_read=timeout, sock_connect=connect_timeout)


def whole_request_timeout(timeout: float, connect_timeout: float) -> aiohttp.ClientTimeout:
    """A plain request's: ``timeout`` for all of it (pool wait, connecting, sending, the whole answer),
    ``connect_timeout`` to connect. aiohttp raises a bare ``TimeoutError`` when ``timeout`` runs out."""
    return aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)


# -- error bodies -----------------------------------------------------------------------------------


def error_message_from_body(body: bytes) -> str:
    """The human-readable message of a provider's error body, whatever its shape.

    Understands OpenAI's and Gemini's ``{"error": {"message": ...}}``, Anthropic's
    ``{"type": "error", "error": {"type", "message"}}`` and Ollama's ``{"error": "..."}``;
    anything else is quoted, shortened.
    """
    payload = _json_or_none(body)
    message = _message_in(payload) if payload is not None else None
    if message:
        return message
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return "(empty body)"
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "…"


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _message_in(payload: Any) -> str | None:
    if isinstance(payload, list) and payload:  # Gemini without alt=sse wraps errors in an array
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    error = payload.get("error", payload)
    if isinstance(error, str):
        return error
    if not isinstance(error, dict):
        return None
    message = error.get("message") or error.get("detail")
    if not isinstance(message, str):
        return None
    kind = error.get("type") or error.get("status") or error.get("code")
    return f"{message} ({kind})" if isinstance(kind, str) and kind else message


def _gemini_retry_delay(payload: Any) -> float | None:
    """``RetryInfo.retryDelay`` ("23s", "1.5s") from a Google RPC error body."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return None
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and (match := _DURATION.fullmatch(delay.strip())):
                return float(match.group(1))
    return None


_DURATION = re.compile(r"(\d+(?:\.\d*)?)s")


def parse_retry_after(headers: Mapping[str, str], body: bytes = b"") -> float | None:
    """The delay in seconds a provider asked for, if any.

    Reads ``retry-after-ms``, then ``retry-after`` (seconds or an HTTP date), then Gemini's
    ``RetryInfo.retryDelay`` in the body. Negative or unparseable values count as absent.
    """
    millis = headers.get("retry-after-ms")
    if millis is not None:
        value = _finite(millis)
        if value is not None:
            return value / 1000.0
    seconds = headers.get("retry-after")
    if seconds is not None:
        value = _finite(seconds)
        if value is not None:
            return value
        when = _http_date(seconds)
        if when is not None:
            return max(0.0, when - time.time())
    if body:
        return _gemini_retry_delay(_json_or_none(body))
    return None


def _finite(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _http_date(text: str) -> float | None:
    try:
        return parsedate_to_datetime(text.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def error_from_response(
    provider: str,
    status_code: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    model: str | None = None,
    secrets: tuple[str | None, ...] = (),
) -> ClientError:
    """The :class:`ClientError` for an HTTP error answer, with the provider's own message.

    529 (Anthropic's "overloaded") becomes :class:`ProviderUnavailable`. Any secret passed is
    removed from the message.
    """
    detail = redact(error_message_from_body(body), secrets)
    who = f"{provider} ({model})" if model else provider
    message = f"{who} answered HTTP {status_code}: {detail}"
    return error_for_status(status_code, message, provider=provider, retry_after=parse_retry_after(headers, body))


# -- transport failures -----------------------------------------------------------------------------


def transport_errors(
    provider: str, *, secrets: tuple[str | None, ...] = (), timeout: float | None = None
) -> _TransportErrors:
    """Map httpx/aiohttp transport failures and malformed JSON inside the block to the error tree.

    The mapping is :data:`optillm_router._failures.TRANSPORT_FAILURES`: timeouts become
    :class:`ProviderTimeout`; refused, reset or dropped connections :class:`ProviderUnavailable`;
    a body cut short or not JSON :class:`ProtocolError`. ``timeout``: the whole request's limit
    (:func:`whole_request_timeout`), which a bare ``TimeoutError`` in the block means ran out.
    """
    return _TransportErrors(provider, secrets, timeout)


_TRANSPORT_FAILURES = (json.JSONDecodeError, httpx.HTTPError, aiohttp.ClientError, OSError, TimeoutError)


class _TransportErrors:
    """:func:`transport_errors`'s context manager: a plain class, entered twice per request, where a
    generator-based one would cost a generator and its frame every time."""

    __slots__ = ("_provider", "_secrets", "_timeout")

    def __init__(self, provider: str, secrets: tuple[str | None, ...], timeout: float | None) -> None:
        self._provider = provider
        self._secrets = secrets
        self._timeout = timeout

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        if exc is None or isinstance(exc, OptillmError) or not isinstance(exc, _TRANSPORT_FAILURES):
            return False
        if self._timeout is not None and type(exc) is TimeoutError:  # not a connect or read timeout
            raise attempt_timed_out(self._provider, self._timeout, self._provider) from exc
        error = client_error(exc, self._provider, secrets=self._secrets)
        if error is None:  # every class above has a row in the table
            return False
        raise error from exc
