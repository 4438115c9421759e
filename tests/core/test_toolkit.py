"""The toolkit's one policy of what a phase absorbs, and the canonical comparison of tool calls."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_core import (
    AuthenticationError,
    BadRequestError,
    BudgetExhausted,
    ParsingError,
    ProtocolError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitError,
    ToolCall,
)
from optillm_core.toolkit import absorbable, canonical_arguments, render_reply, reply_key, settle, tool_calls_key

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    "error",
    [
        RateLimitError("slow down", status_code=429),
        ProviderUnavailable("overloaded", status_code=529),
        ProviderTimeout("read timeout"),
        ProtocolError("truncated body"),
        ParsingError("no answer in the reply"),
    ],
    ids=type,
)
def test_retryable_provider_errors_and_unreadable_replies_may_be_absorbed(error: Exception) -> None:
    assert absorbable(error)


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("Incorrect API key provided", status_code=401),
        AuthenticationError("permission denied", status_code=403),
        BadRequestError("context length exceeded", status_code=400),
        BudgetExhausted("calls", 3, 3),
        KeyError("bug"),
    ],
    ids=type,
)
def test_auth_permission_bad_request_budget_and_bugs_end_the_run(error: Exception) -> None:
    assert not absorbable(error)


async def test_settle_keeps_absorbed_failures_in_their_slots() -> None:
    async def ok() -> int:
        return 1

    async def overloaded() -> int:
        raise ProviderUnavailable("overloaded", status_code=529)

    results = await settle([ok, overloaded, ok], optimizer="test", what="rating")
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], ProviderUnavailable)


async def test_settle_raises_what_it_may_not_absorb_with_the_providers_message() -> None:
    async def ok() -> int:
        return 1

    async def unauthorised() -> int:
        raise AuthenticationError("Incorrect API key provided: sk-...abcd", status_code=401)

    with pytest.raises(AuthenticationError, match="Incorrect API key provided"):
        await settle([ok, unauthorised, ok])


# -- tool calls compared canonically ------------------------------------------------------------------

JSON_LEAF = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8)
JSON_VALUE = st.recursive(
    JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
ARGUMENTS = st.dictionaries(st.text(max_size=6), JSON_VALUE, max_size=4)


def _reordered(value: Any) -> Any:
    """The same JSON value with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: _reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(item) for item in value]
    return value


def _floated(value: Any) -> Any:
    """The same JSON value with every integer written as a float (2 as 2.0)."""
    if isinstance(value, dict):
        return {key: _floated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_floated(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@given(ARGUMENTS, st.sampled_from([None, 0, 2, 4]))
def test_key_order_whitespace_and_whole_floats_do_not_change_the_canonical_form(args: Any, indent: int | None) -> None:
    written = json.dumps(args)
    assert canonical_arguments(json.dumps(_reordered(args), indent=indent)) == canonical_arguments(written)
    assert canonical_arguments(json.dumps(_floated(args))) == canonical_arguments(written)
    assert json.loads(canonical_arguments(written)) == args


@given(ARGUMENTS, ARGUMENTS)
def test_different_arguments_have_different_canonical_forms(first: Any, second: Any) -> None:
    same = canonical_arguments(json.dumps(first)) == canonical_arguments(json.dumps(second))
    assert same == (json.loads(json.dumps(first)) == json.loads(json.dumps(second)))


@given(st.lists(st.tuples(st.sampled_from(["get_weather", "search"]), ARGUMENTS), min_size=1, max_size=3))
def test_a_replys_key_ignores_call_ids_and_the_order_of_parallel_calls(calls: list[tuple[str, Any]]) -> None:
    made = [ToolCall(id=f"call_{i}", name=name, arguments=json.dumps(args)) for i, (name, args) in enumerate(calls)]
    again = [
        ToolCall(id=f"other_{i}", name=call.name, arguments=json.dumps(_reordered(json.loads(call.arguments))))
        for i, call in enumerate(reversed(made))
    ]
    assert tool_calls_key(made) == tool_calls_key(again)
    assert reply_key("whatever text", made) == tool_calls_key(made)


def test_a_different_tool_or_argument_is_a_different_key() -> None:
    paris = ToolCall(id="a", name="get_weather", arguments='{"city": "Paris"}')
    lyon = ToolCall(id="b", name="get_weather", arguments='{"city":"Lyon"}')
    other = ToolCall(id="c", name="get_time", arguments='{"city": "Paris"}')
    assert len({tool_calls_key([paris]), tool_calls_key([lyon]), tool_calls_key([other])}) == 3
    assert reply_key("The answer is 19.") == "19"


def test_arguments_that_are_not_json_are_compared_as_written() -> None:
    assert canonical_arguments(" not json ") == "not json"
    assert canonical_arguments("") == canonical_arguments("{}") == "{}"


def test_a_judge_sees_a_tool_calling_reply_with_its_arguments() -> None:
    call = ToolCall(id="a", name="get_weather", arguments='{"city": "Paris"}')
    assert render_reply("Let me check.", [call]) == (
        'Let me check.\n[calls the tool `get_weather` with arguments {"city": "Paris"}]'
    )
