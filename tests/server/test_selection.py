"""Strategy selection from the model name and ``optillm_approach``."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_server._errors import ApiError
from optillm_server._selection import Selection, select

INSTALLED = ("moa", "mars", "mcts")


def test_prefix_picks_the_strategy_and_the_rest_is_the_model() -> None:
    assert select("moa-gpt-4o-mini", None, INSTALLED, default_model="d") == Selection(("moa",), "single", "gpt-4o-mini")


def test_combinations() -> None:
    assert select("moa&mars-m", None, INSTALLED, default_model="d") == Selection(("moa", "mars"), "pipeline", "m")
    assert select("moa|mcts-m", None, INSTALLED, default_model="d") == Selection(("moa", "mcts"), "parallel", "m")
    assert select("m", "mars&moa", INSTALLED, default_model="d") == Selection(("mars", "moa"), "pipeline", "m")


def test_a_bare_strategy_name_runs_on_the_default_model() -> None:
    assert select("moa", None, INSTALLED, default_model="d") == Selection(("moa",), "single", "d")


@pytest.mark.parametrize("model", ["gpt-4o-mini", "llama-3-8b", "moatastic-7b", "json-mode", "m"])
def test_names_without_an_installed_prefix_pass_through(model: str) -> None:
    assert select(model, None, INSTALLED, default_model="d") == Selection((), "single", model)


@pytest.mark.parametrize("approach", ["none", "auto", "", " "])
def test_pass_through_approaches(approach: str) -> None:
    assert select("gpt-4o", approach, INSTALLED, default_model="d").pass_through


@pytest.mark.parametrize(
    ("model", "approach", "param"),
    [
        ("m", "bon", "optillm_approach"),
        ("moa&bon-m", None, "model"),
        ("moa&mars|mcts-m", None, "model"),
        ("moa-m", "mars", "optillm_approach"),
        ("m", "moa|", "optillm_approach"),
    ],
)
def test_bad_choices_are_400(model: str, approach: str | None, param: str) -> None:
    with pytest.raises(ApiError) as caught:
        select(model, approach, INSTALLED, default_model="d")
    assert caught.value.status == 400
    assert caught.value.param == param


@given(
    strategies=st.lists(st.sampled_from(INSTALLED), min_size=1, max_size=4),
    operator=st.sampled_from(["&", "|"]),
    model=st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,20}", fullmatch=True),
)
def test_any_combination_round_trips(strategies: list[str], operator: str, model: str) -> None:
    selection = select(f"{operator.join(strategies)}-{model}", None, INSTALLED, default_model="d")
    assert selection.strategies == tuple(strategies)
    assert selection.model == model
    assert selection.mode == ("single" if len(strategies) == 1 else {"&": "pipeline", "|": "parallel"}[operator])


@given(model=st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,20}", fullmatch=True))
def test_model_names_never_lose_text_unless_a_strategy_prefix_is_installed(model: str) -> None:
    selection = select(model, None, INSTALLED, default_model="d")
    head = model.split("-", 1)[0]
    if head in INSTALLED:
        assert selection.strategies == (head,)
        assert selection.model == (model.split("-", 1)[1] if "-" in model else "d") or "d"
    else:
        assert selection == Selection((), "single", model)
