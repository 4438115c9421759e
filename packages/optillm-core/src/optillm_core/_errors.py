"""The optillm exception tree.

Every error raised on purpose by an optillm package derives from :class:`OptillmError`::

    OptillmError
    ├── ClientError                 a model call failed (``.provider``, ``.status_code``, ``.retry_after``)
    │   ├── RateLimitError          429 / quota; retryable, honours ``retry_after``
    │   ├── ProviderTimeout         connect or read timeout; retryable
    │   ├── AuthenticationError     401 / 403: the API key is missing, wrong or lacks permission
    │   ├── BadRequestError         400 / 404 / 422: the request itself is wrong; never retried
    │   ├── ProviderUnavailable     5xx, 529 overloaded, connection refused; retryable
    │   └── ProtocolError           malformed JSON, a stream cut in the middle
    ├── InvalidConfiguration        a config or argument is invalid (also a ``ValueError``)
    │   └── UnsupportedSetting      the caller asked for a setting the model refuses (``.settings``, ``.model``)
    ├── NoSolutions                 a strategy ended with nothing usable to answer with
    ├── ParsingError                model output could not be parsed
    │   └── AnswerExtractionError   no final answer could be found in a text
    ├── Timeout                     a run exceeded its time limit (also a ``TimeoutError``)
    ├── BudgetExhausted             a run reached its call, token or time budget
    └── OptimizerError              a strategy failed for another reason

Lower-layer exceptions are mapped to the most specific class with :func:`error_for_status`
and :func:`map_client_errors`; the original is kept as ``__cause__``.
"""

from __future__ import annotations as _annotations

import builtins
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Literal

__all__ = (
    "AnswerExtractionError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExhausted",
    "ClientError",
    "InvalidConfiguration",
    "NoSolutions",
    "OptillmError",
    "OptimizerError",
    "ParsingError",
    "ProtocolError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimitError",
    "Timeout",
    "UnsupportedSetting",
    "error_for_status",
    "map_client_errors",
    "redact",
)


class OptillmError(Exception):
    """Base class of every error raised on purpose by optillm packages."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ClientError(OptillmError):
    """A call to a model failed.

    ``retryable`` says whether sending the same request again may succeed; ``retry_after`` is the
    delay in seconds the provider asked for, when it asked for one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status_code = status_code
        self.retry_after = retry_after


class RateLimitError(ClientError):
    """The provider refused the call for rate or quota reasons (HTTP 429)."""

    retryable = True


class ProviderTimeout(ClientError):
    """The provider did not connect or answer in time."""

    retryable = True


class AuthenticationError(ClientError):
    """The API key is missing, wrong or not allowed to use this model (HTTP 401/403)."""


class BadRequestError(ClientError):
    """The provider rejected the request itself (HTTP 400/404/422); sending it again will not help."""


class ProviderUnavailable(ClientError):
    """The provider is down, overloaded or unreachable (HTTP 5xx, 529, refused connections)."""

    retryable = True


class ProtocolError(ClientError):
    """The provider's answer could not be understood: malformed JSON or a stream cut short.

    Retryable, because a cut connection usually succeeds when tried again.
    """

    retryable = True


class InvalidConfiguration(OptillmError, ValueError):
    """A configuration value or argument is invalid; the message names it and says what is expected."""


class UnsupportedSetting(InvalidConfiguration):
    """The caller asked for generation settings the model refuses, under the ``error`` policy.

    Raised before any call is made; ``settings`` names them and ``model`` the model.
    """

    def __init__(self, settings: tuple[str, ...], model: str) -> None:
        names = ", ".join(settings)
        super().__init__(
            f"model {model!r} does not accept {names}: remove {'it' if len(settings) == 1 else 'them'} "
            "from the request, or choose the 'drop' policy for settings the model refuses"
        )
        self.settings = settings
        self.model = model


class NoSolutions(OptillmError):
    """A strategy ended without any usable candidate to answer with."""


class ParsingError(OptillmError):
    """Model output could not be parsed into the structure a strategy needs."""


class AnswerExtractionError(ParsingError):
    """No final answer could be found in a text."""


class Timeout(OptillmError, builtins.TimeoutError):
    """A run took longer than its time limit."""


BudgetKind = Literal["calls", "tokens", "time"]


class BudgetExhausted(OptillmError):
    """A run reached one of its budget limits (LLM calls, tokens or wall time).

    Optimizers may catch it to return their best solution so far; ``Optimizer.optimize`` does this
    for them when the strategy recorded one with ``RunContext.record_best``.
    """

    def __init__(self, kind: BudgetKind, limit: float, used: float) -> None:
        unit = {"calls": "LLM calls", "tokens": "tokens", "time": "seconds"}[kind]
        super().__init__(f"budget exhausted: {used:g} of {limit:g} {unit} used")
        self.kind: BudgetKind = kind
        self.limit = limit
        self.used = used


class OptimizerError(OptillmError):
    """A strategy failed for a reason not covered by a more specific class."""


_STATUS_CLASSES: dict[int, type[ClientError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: BadRequestError,
    408: ProviderTimeout,
    409: ProviderUnavailable,
    413: BadRequestError,
    422: BadRequestError,
    429: RateLimitError,
    529: ProviderUnavailable,
}


def error_for_status(
    status_code: int,
    message: str,
    *,
    provider: str | None = None,
    retry_after: float | None = None,
) -> ClientError:
    """Build the most specific :class:`ClientError` for an HTTP status code.

    409 (a conflict, usually a lock held by a concurrent request) counts as retryable, as the
    official OpenAI and Anthropic SDKs treat it.
    """
    cls = _STATUS_CLASSES.get(status_code)
    if cls is None:
        cls = ProviderUnavailable if status_code >= 500 else BadRequestError
    return cls(message, provider=provider, status_code=status_code, retry_after=retry_after)


@contextmanager
def map_client_errors(provider: str | None = None) -> Iterator[None]:
    """Map builtin timeout and connection errors raised inside the block to :class:`ClientError` classes.

    Errors that already belong to the optillm tree pass through unchanged.
    """
    try:
        yield
    except OptillmError:
        raise
    except builtins.TimeoutError as exc:
        raise ProviderTimeout(f"{provider or 'model'} timed out: {exc}", provider=provider) from exc
    except ConnectionError as exc:
        raise ProviderUnavailable(f"could not reach {provider or 'model'}: {exc}", provider=provider) from exc


MIN_SECRET_LENGTH = 4
"""Shorter "secrets" are left in place: replacing one or two characters would garble text and hide nothing."""


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret (an API key, a proxy key) replaced by ``***``, for logs and messages."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, "***")
    return text
