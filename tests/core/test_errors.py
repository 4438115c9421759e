from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    BudgetExhausted,
    ClientError,
    InvalidConfiguration,
    OptillmError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    Timeout,
    error_for_status,
    map_client_errors,
    redact,
)


@pytest.mark.parametrize(
    ("status", "cls", "retryable"),
    [
        (400, BadRequestError, False),
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (404, BadRequestError, False),
        (408, ProviderTimeout, True),
        (409, ProviderUnavailable, True),
        (422, BadRequestError, False),
        (429, RateLimitError, True),
        (500, ProviderUnavailable, True),
        (503, ProviderUnavailable, True),
        (529, ProviderUnavailable, True),
        (418, BadRequestError, False),
    ],
)
def test_status_maps_to_the_most_specific_class(status: int, cls: type[ClientError], retryable: bool) -> None:
    error = error_for_status(status, "msg", provider="openai", retry_after=2.0)
    assert type(error) is cls
    assert error.retryable is retryable
    assert (error.status_code, error.provider, error.retry_after) == (status, "openai", 2.0)


def test_builtin_errors_are_mapped_and_chained() -> None:
    with pytest.raises(ProviderTimeout) as timeout, map_client_errors("groq"):
        raise TimeoutError("read timed out")
    assert isinstance(timeout.value.__cause__, TimeoutError)
    assert "groq" in str(timeout.value)
    with pytest.raises(ProviderUnavailable), map_client_errors("groq"):
        raise ConnectionRefusedError("refused")


def test_optillm_errors_pass_through_unchanged() -> None:
    original = RateLimitError("slow down", retry_after=1)
    with pytest.raises(RateLimitError) as caught, map_client_errors():
        raise original
    assert caught.value is original


def test_tree_shape() -> None:
    assert issubclass(InvalidConfiguration, ValueError)
    assert issubclass(Timeout, TimeoutError)
    for cls in (ClientError, InvalidConfiguration, Timeout, BudgetExhausted):
        assert issubclass(cls, OptillmError)
    assert "3 of 3 LLM calls" in str(BudgetExhausted("calls", 3, 3))


@given(
    secret=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=4), before=st.text(), after=st.text()
)
def test_secrets_never_survive_redaction(secret: str, before: str, after: str) -> None:
    assert secret not in redact(before + secret + after, [secret])


def test_redaction_ignores_missing_and_tiny_secrets() -> None:
    assert redact("key sk-abc", [None, "", "k", "sk-abc"]) == "key ***"
