"""Exit codes: each class of failure has its own, and the message is one line without secrets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_cli import ExitCode
from optillm_cli._errors import UsageError, classify, error_line
from optillm_core import (
    AnswerExtractionError,
    AuthenticationError,
    BadRequestError,
    BudgetExhausted,
    InvalidConfiguration,
    NoSolutions,
    OptimizerError,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    Timeout,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError("bad flag"), ExitCode.USAGE),
        (InvalidConfiguration("unknown field"), ExitCode.CONFIG),
        (FileNotFoundError(2, "No such file or directory", "router.toml"), ExitCode.CONFIG),
        (AuthenticationError("401 Incorrect API key", status_code=401), ExitCode.AUTH),
        (ProviderUnavailable("could not reach openai"), ExitCode.UNAVAILABLE),
        (ProviderTimeout("openai timed out"), ExitCode.UNAVAILABLE),
        (RateLimitError("429"), ExitCode.UNAVAILABLE),
        (ProtocolError("malformed JSON"), ExitCode.UNAVAILABLE),
        (BadRequestError("model not found", status_code=404), ExitCode.REJECTED),
        (BudgetExhausted("calls", 3, 3), ExitCode.BUDGET),
        (Timeout("too slow"), ExitCode.BUDGET),
        (NoSolutions("nothing"), ExitCode.STRATEGY),
        (AnswerExtractionError("no answer"), ExitCode.STRATEGY),
        (OptimizerError("broke"), ExitCode.STRATEGY),
        (RuntimeError("bug"), ExitCode.INTERNAL),
    ],
)
def test_each_failure_class_has_its_exit_code(error: Exception, code: ExitCode) -> None:
    assert classify(error)[0] is code


def test_a_strategy_that_gave_up_because_its_calls_failed_exits_as_the_provider_failure() -> None:
    try:
        try:
            raise RateLimitError("429 Rate limit reached", status_code=429)
        except RateLimitError as failed:
            raise NoSolutions("all 3 exploration calls failed") from failed
    except NoSolutions as exc:
        code, text = classify(exc)
    assert code is ExitCode.UNAVAILABLE
    assert text == "the provider is rate-limiting requests: all 3 exploration calls failed"
    assert classify(NoSolutions("every answer was empty"))[0] is ExitCode.STRATEGY


@pytest.mark.parametrize(
    ("error", "label"),
    [
        (RateLimitError("429"), "the provider is rate-limiting requests"),
        (ProviderTimeout("slow"), "the provider did not answer in time"),
        (ProtocolError("cut"), "the provider's answers were malformed"),
        (ProviderUnavailable("503"), "the provider is unavailable"),
    ],
)
def test_provider_failures_say_how_the_provider_failed(error: Exception, label: str) -> None:
    assert classify(error)[1].startswith(label + ": ")


def test_exit_codes_are_distinct() -> None:
    values = [code.value for code in ExitCode]
    assert len(values) == len(set(values))


def test_the_first_real_error_inside_a_group_decides() -> None:
    group = ExceptionGroup("tasks", [ExceptionGroup("inner", [AuthenticationError("denied")]), ValueError("x")])
    code, text = classify(group)
    assert code is ExitCode.AUTH
    assert "denied" in text


def test_messages_say_what_kind_of_failure_it_was() -> None:
    assert classify(AuthenticationError("401"))[1].startswith("the provider rejected the API key")
    assert classify(RuntimeError("bug"))[1] == "internal error (RuntimeError): bug"
    assert (
        classify(FileNotFoundError(2, "No such file or directory", "x.toml"))[1] == "No such file or directory: x.toml"
    )


@given(text=st.text())
def test_error_line_is_one_line(text: str) -> None:
    line = error_line(text)
    assert line.startswith("optillm: error: ")
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert "\r" not in line
