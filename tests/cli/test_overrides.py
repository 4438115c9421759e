"""``--set key=value`` parsing and its validation against a strategy's config."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_cli._errors import UsageError
from optillm_cli._overrides import parse_assignment, parse_overrides, type_name
from optillm_core import InvalidConfiguration
from tests.cli.fanout import FanoutConfig

keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)


@given(key=keys, value=st.text())
def test_assignment_splits_at_the_first_equals_sign(key: str, value: str) -> None:
    assert parse_assignment(f"{key}={value}") == (key, value)


@given(text=st.text().filter(lambda t: "=" not in t))
def test_assignment_without_equals_sign_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="key=value"):
        parse_assignment(text)


@pytest.mark.parametrize("text", ["=3", "1x=3", "a-b=3", "a b=3"])
def test_assignment_key_must_be_a_field_name(text: str) -> None:
    with pytest.raises(UsageError, match="config field name"):
        parse_assignment(text)


def test_values_take_the_fields_types() -> None:
    overrides = parse_overrides(
        ["samples=5", "temperature=0.25", "weights=[0.5, 2]", "style=long", "label=null", "max_concurrency=2"],
        FanoutConfig,
        "fanout",
    )
    assert overrides == {
        "samples": 5,
        "temperature": 0.25,
        "weights": [0.5, 2.0],
        "style": "long",
        "label": None,
        "max_concurrency": 2,
    }
    config = FanoutConfig(**overrides)
    assert config.samples == 5


def test_a_string_field_keeps_text_that_looks_like_json() -> None:
    assert parse_overrides(["label=42", "style=short"], FanoutConfig, "fanout") == {"label": "42", "style": "short"}


@given(samples=st.integers(min_value=1, max_value=10**6))
def test_integers_round_trip(samples: int) -> None:
    assert parse_overrides([f"samples={samples}"], FanoutConfig, "fanout") == {"samples": samples}


def test_later_assignments_win() -> None:
    assert parse_overrides(["samples=2", "samples=4"], FanoutConfig, "fanout") == {"samples": 4}


def test_unknown_field_names_it_and_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidConfiguration) as info:
        parse_overrides(["sample=3"], FanoutConfig, "fanout")
    message = str(info.value)
    assert "'sample'" in message
    assert "fanout" in message
    assert "samples" in message
    assert "temperature" in message


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("samples=many", "expected int"),
        ("samples=0", "expected int"),
        ("temperature=hot", "expected float"),
        ("weights=1,2", "expected list[float]"),
        ("style=medium", "expected 'short' | 'long'"),
    ],
)
def test_wrong_type_names_the_field_and_expected_type(assignment: str, expected: str) -> None:
    field = assignment.partition("=")[0]
    with pytest.raises(InvalidConfiguration) as info:
        parse_overrides([assignment], FanoutConfig, "fanout")
    message = str(info.value)
    assert f"--set {field}:" in message
    assert expected in message


def test_constraint_violations_say_why() -> None:
    with pytest.raises(InvalidConfiguration, match="greater than or equal to 1"):
        parse_overrides(["samples=0"], FanoutConfig, "fanout")


@pytest.mark.parametrize(
    ("annotation", "name"),
    [
        (int, "int"),
        (list[float], "list[float]"),
        (int | None, "int | None"),
        (Literal["a", "b"], "'a' | 'b'"),
        (tuple[int, ...], "tuple[int, ...]"),
        (dict[str, int], "dict[str, int]"),
    ],
)
def test_type_names_are_readable(annotation: object, name: str) -> None:
    assert type_name(annotation) == name
