"""Errors in OpenAI's wire shape, mapped from the optillm error tree, with secrets scrubbed."""

from __future__ import annotations as _annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from starlette.responses import JSONResponse

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    BudgetExhausted,
    ClientError,
    InvalidConfiguration,
    NoSolutions,
    OptillmError,
    OptimizerError,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    Timeout,
)

__all__ = ("ApiError", "Scrubber", "api_error_for", "error_response", "log_error")

log = structlog.get_logger("optillm")

# Bearer tokens and provider-style keys that an upstream error message may quote back.
_KEY_PATTERN = re.compile(r"(?i)\b(bearer\s+)[^\s\"',]+|\b(sk|key|pk|rk)-[A-Za-z0-9_\-]{8,}")


class ApiError(Exception):
    """An error the proxy answers with: HTTP status and OpenAI's ``{"error": {...}}`` fields."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.extra_headers: dict[str, str] = dict(headers or {})

    def payload(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        """The response headers the error needs: ``Retry-After``, and any given (``Connection: close`` for a 413)."""
        if self.retry_after is None:
            return dict(self.extra_headers)
        # Rounded up: a client told to wait 0 s after a 0.4 s Retry-After would only be refused again.
        return {**self.extra_headers, "retry-after": str(max(0, math.ceil(self.retry_after)))}

    def stream_end(self) -> bytes:
        """The last bytes of an event stream this error ends once it has started: an error event and ``[DONE]``."""
        return b"data: " + json.dumps(self.payload(), separators=(",", ":")).encode() + b"\n\ndata: [DONE]\n\n"


class Scrubber:
    """Removes secrets from text before it reaches a response or a log."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets = tuple(s for s in secrets if s)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return _KEY_PATTERN.sub(lambda m: (m.group(1) or "") + "[redacted]", text)


def api_error_for(exc: BaseException, scrub: Scrubber) -> ApiError:
    """The response for an exception raised while serving a request; unknown errors hide their details."""
    if isinstance(exc, ApiError):
        return ApiError(
            exc.status,
            scrub(exc.message),
            kind=exc.kind,
            param=exc.param,
            code=exc.code,
            retry_after=exc.retry_after,
            headers=exc.extra_headers,
        )
    if isinstance(exc, BudgetExhausted):
        return _budget_error(exc)
    if isinstance(exc, ClientError):
        return _client_error(exc, scrub(str(exc)))
    cause = _provider_cause(exc)
    if cause is not None:
        # A strategy that gave up because its model calls failed: the client learns what failed upstream.
        return _client_error(cause, scrub(str(exc)))
    if isinstance(exc, InvalidConfiguration):
        return ApiError(400, scrub(str(exc)))
    if isinstance(exc, Timeout):
        return ApiError(504, scrub(str(exc)), kind="timeout_error", code="timeout")
    if isinstance(exc, OptillmError):
        return ApiError(500, f"the strategy failed: {scrub(str(exc))}", kind="server_error", code="strategy_failed")
    return ApiError(500, "internal server error", kind="server_error", code="internal_error")


def _provider_cause(exc: BaseException) -> ClientError | None:
    """The failed model call a strategy's error was raised from (``raise NoSolutions(…) from error``), if any."""
    if not isinstance(exc, (NoSolutions, OptimizerError)):
        return None
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, ClientError):
        cause = cause.__cause__
    return cause


def _client_error(exc: ClientError, message: str) -> ApiError:
    upstream = f"upstream model call failed: {message}"
    if isinstance(exc, RateLimitError):
        return ApiError(429, upstream, kind="rate_limit_error", code="rate_limit_exceeded", retry_after=exc.retry_after)
    if isinstance(exc, ProviderTimeout):
        return ApiError(504, upstream, kind="timeout_error", code="upstream_timeout")
    if isinstance(exc, AuthenticationError):
        # The proxy's own upstream credentials were refused: the caller cannot fix that.
        return ApiError(502, upstream, kind="upstream_error", code="upstream_authentication_failed")
    if isinstance(exc, BadRequestError):
        if exc.status_code == 404:  # the upstream has no such model: answered as pass-through answers it
            return ApiError(404, upstream, code="upstream_not_found")
        if exc.status_code == 413:  # the prompt is too large for the upstream: the client's to shorten
            return ApiError(413, upstream, code="upstream_request_too_large")
        return ApiError(400, upstream, code="upstream_bad_request")
    if isinstance(exc, ProviderUnavailable):
        if exc.status_code in (503, 529):
            retry = exc.retry_after
            return ApiError(503, upstream, kind="upstream_error", code="upstream_unavailable", retry_after=retry)
        return ApiError(502, upstream, kind="upstream_error", code="upstream_error")
    if isinstance(exc, ProtocolError):
        return ApiError(502, upstream, kind="upstream_error", code="upstream_protocol_error")
    return ApiError(502, upstream, kind="upstream_error", code="upstream_error")


def _budget_error(exc: BudgetExhausted) -> ApiError:
    """A run that reached the request's budget before any answer was recorded (the proxy's only budget)."""
    message = (
        f"the request's budget ran out before the strategy had any answer ({exc}): lower n or the strategy's "
        "settings, or ask the server's operator to raise --max-request-calls, --max-request-tokens or "
        "--max-request-seconds"
    )
    if exc.kind == "time":
        return ApiError(504, message, kind="timeout_error", code="request_budget_exhausted")
    return ApiError(400, message, code="request_budget_exhausted")


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.payload(), status_code=error.status, headers=error.headers())


def log_error(error: ApiError, exc: BaseException, scrub: Scrubber, **context: Any) -> None:
    """Log a failed request without a traceback: its type and scrubbed message only."""
    level = log.error if error.status >= 500 else log.info
    level("request failed", status=error.status, error_type=type(exc).__name__, detail=scrub(str(exc)), **context)
