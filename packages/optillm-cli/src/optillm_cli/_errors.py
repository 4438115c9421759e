"""Exit codes, and the one-line message each failure gets on stderr."""

from __future__ import annotations as _annotations

from collections.abc import Iterable

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    BudgetExhausted,
    ClientError,
    InvalidConfiguration,
    ModelRequestsBlocked,
    NoSolutions,
    OptimizerError,
    ParsingError,
    ProtocolError,
    ProviderTimeout,
    RateLimitError,
    Timeout,
    redact,
)

from ._codes import ExitCode, UsageError

__all__ = ("ExitCode", "UsageError", "classify", "error_line")


_LABELS: dict[ExitCode, str] = {
    ExitCode.AUTH: "the provider rejected the API key",
    ExitCode.REJECTED: "the provider rejected the request",
    ExitCode.STRATEGY: "the strategy failed",
}


_HINTS: dict[ExitCode, str] = {
    ExitCode.AUTH: " (check --api-key or the provider's key variable)",
    ExitCode.BUDGET: " (raise --budget-calls, --budget-tokens or --timeout)",
}


def _unavailable_label(error: BaseException) -> str:
    """What kind of provider failure ended the run (every retry of the call failed the same way)."""
    match error:
        case RateLimitError():
            return "the provider is rate-limiting requests"
        case ProviderTimeout():
            return "the provider did not answer in time"
        case ProtocolError():
            return "the provider's answers were malformed"
        case _:
            return "the provider is unavailable"


def _leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    for inner in exc.exceptions:
        leaf = _leaf(inner)
        if isinstance(leaf, Exception):  # cancellations are BaseExceptions: they only follow the real error
            return leaf
    return exc


def _code_for(exc: BaseException) -> ExitCode:
    match exc:
        case UsageError():
            return ExitCode.USAGE
        case InvalidConfiguration() | ModelRequestsBlocked():
            return ExitCode.CONFIG
        case AuthenticationError():
            return ExitCode.AUTH
        case BadRequestError():
            return ExitCode.REJECTED
        case ClientError():
            return ExitCode.UNAVAILABLE
        case BudgetExhausted() | Timeout():
            return ExitCode.BUDGET
        case NoSolutions() | ParsingError() | OptimizerError():
            return ExitCode.STRATEGY
        case OSError():
            return ExitCode.CONFIG
        case _:
            return ExitCode.INTERNAL


def _provider_cause(exc: BaseException) -> ClientError | None:
    """The failed model call a strategy's error was raised from (``raise NoSolutions(…) from error``), if any."""
    if not isinstance(exc, (NoSolutions, OptimizerError)):
        return None
    cause = exc.__cause__
    while cause is not None and not isinstance(cause, ClientError):
        cause = cause.__cause__
    return cause


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code for a failure and the text of its one-line message.

    A strategy that gave up because its model calls failed exits as the provider's failure, not as
    a strategy failure: the run failed upstream.
    """
    leaf = _leaf(exc)
    cause = _provider_cause(leaf)
    code = _code_for(leaf if cause is None else cause)
    text = str(leaf) or type(leaf).__name__
    if code is ExitCode.INTERNAL:
        text = f"internal error ({type(leaf).__name__}): {text}"
    elif code is ExitCode.CONFIG and isinstance(leaf, OSError):
        text = f"{leaf.strerror or text}: {leaf.filename}" if leaf.filename else text
    elif code is ExitCode.UNAVAILABLE:
        text = f"{_unavailable_label(leaf if cause is None else cause)}: {text}"
    elif code in _LABELS:
        text = f"{_LABELS[code]}: {text}"
    return code, text + _HINTS.get(code, "")


def error_line(text: str, secrets: Iterable[str | None] = ()) -> str:
    """The one line printed on stderr: ``optillm: error: …``."""
    flat = " ".join(redact(text, secrets).split())
    return f"optillm: error: {flat}\n"
