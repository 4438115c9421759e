"""The one table from a model call's failures to the optillm error tree.

Every failure of a call ends up as a :class:`~optillm_core.ClientError` subclass, and the retry
policy (:mod:`optillm_router._retry`) reads only that class, its ``status_code`` and its
``retry_after``:

=======================================================  =======================  ==========
failure                                                  error                    retried
=======================================================  =======================  ==========
HTTP 400, 404, 413, 422, other 4xx                       BadRequestError          never
HTTP 401, 403                                            AuthenticationError      never
a setting the provider cannot honour (refused locally)   BadRequestError          never
HTTP 408; no answer in time (connect, read, attempt)     ProviderTimeout          yes
HTTP 429                                                 RateLimitError           yes
HTTP 409, 5xx, 529                                       ProviderUnavailable      yes
refused connection, connection reset or dropped          ProviderUnavailable      yes
malformed JSON; a body or stream cut short               ProtocolError            yes
fewer choices than ``n`` (:class:`FewerChoices`)         ProtocolError            no: the router
                                                                                  asks for the rest
=======================================================  =======================  ==========

HTTP statuses go through :func:`optillm_core.error_for_status` (from
:func:`optillm_router._http.error_from_response`); transport and parse failures through
:data:`TRANSPORT_FAILURES` here, both for the provider clients (``transport_errors``) and for the
router, which maps what a custom client raises the same way.
"""

from __future__ import annotations as _annotations

import errno
import json
import socket

import aiohttp
import httpx

from optillm_core import (
    BadRequestError,
    ClientError,
    Completion,
    InvalidConfiguration,
    ModelRequestsBlocked,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    redact,
)

__all__ = (
    "TRANSPORT_FAILURES",
    "FewerChoices",
    "attempt_timed_out",
    "client_error",
    "could_not_connect",
    "refused_locally",
)


class FewerChoices(ProtocolError):
    """A provider answered a request for ``n`` choices with fewer (Gemini's ``candidateCount``, a
    server that ignores ``n``).

    From a plain request, ``completion`` holds the choices it did return, the first ones. At the end
    of a stream, whose events have carried the choices it did return, ``missing`` names the indexes
    (below ``n``) that never came, and ``completion`` holds the stream's usage, model and finish
    reasons (``None`` at the missing indexes); its texts are not collected.

    Not retried as it is: the router keeps the choices it got, requests the missing ones as single
    calls, and remembers that the provider has no working native ``n``.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        completion: Completion,
        missing: tuple[int, ...] = (),
        provider: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.completion = completion
        self.missing = missing


_Row = tuple[tuple[type[BaseException], ...], type[ClientError], str]

TRANSPORT_FAILURES: tuple[_Row, ...] = (
    ((json.JSONDecodeError, UnicodeDecodeError), ProtocolError, "{who} sent malformed JSON: {detail}"),
    (
        (aiohttp.ClientPayloadError, httpx.RemoteProtocolError, httpx.DecodingError),
        ProtocolError,
        "{who} cut its answer short: {detail}",
    ),
    (
        (TimeoutError, httpx.TimeoutException, aiohttp.ServerTimeoutError),
        ProviderTimeout,
        "{who} timed out: {detail}",
    ),
    (
        (aiohttp.ServerDisconnectedError, ConnectionResetError, BrokenPipeError),
        ProviderUnavailable,
        "{who} dropped the connection: {detail}",
    ),
    ((aiohttp.ClientError, httpx.HTTPError, OSError), ProviderUnavailable, "could not reach {who}: {detail}"),
)
"""Transport and parse failures, first match wins: (exception classes, error class, message)."""

_RESETS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})
_DROPPED = TRANSPORT_FAILURES[3]


def client_error(
    exc: BaseException, who: str, *, provider: str | None = None, secrets: tuple[str | None, ...] = ()
) -> ClientError | None:
    """The :class:`ClientError` for a transport or parse failure, or ``None`` when the table has no row for it.

    ``who`` names the provider (or route) in the message; secrets are removed from it.
    """
    # httpx_aiohttp maps several aiohttp errors to the wrong httpx class (any connection error to
    # ConnectTimeout), so classify by the original aiohttp error when there is one.
    cause = exc.__cause__
    original = cause if isinstance(cause, aiohttp.ClientError | TimeoutError) else exc
    row = _row(original)
    if row is None:
        return None
    _, error, message = row
    detail = redact(str(original) or type(original).__name__, secrets)
    return error(message.format(who=who, detail=detail), provider=provider or who)


def attempt_timed_out(who: str, seconds: float, provider: str) -> ProviderTimeout:
    """The error of an attempt that ran out of its whole time (not a connect or read timeout)."""
    return ProviderTimeout(f"{who} did not answer within {seconds:g} s", provider=provider)


def _row(exc: BaseException) -> _Row | None:
    if isinstance(exc, OSError) and exc.errno in _RESETS:  # aiohttp reports a reset as a ClientOSError
        return _DROPPED
    return next((row for row in TRANSPORT_FAILURES if isinstance(exc, row[0])), None)


def refused_locally(exc: BaseException) -> bool:
    """Whether a call failed before anything was sent: a setting refused by the client itself,
    a configuration error, or model requests switched off. Provider answers always carry a status.
    """
    if isinstance(exc, BadRequestError):
        return exc.status_code is None and not isinstance(exc.__cause__, ClientError)
    return isinstance(exc, InvalidConfiguration | ModelRequestsBlocked)


_CONNECT_FAILURES = (aiohttp.ClientConnectorError, httpx.ConnectError, ConnectionRefusedError, socket.gaierror)


def could_not_connect(exc: BaseException) -> bool:
    """Whether a call failed to open a connection at all (refused, unknown host): nothing answered."""
    for cause in (exc, exc.__cause__, exc.__cause__.__cause__ if exc.__cause__ is not None else None):
        if isinstance(cause, _CONNECT_FAILURES):
            return True
    return False
