"""Each sampling strategy's ``planned_calls`` equals the calls a run makes when every sample is usable."""

from __future__ import annotations

from itertools import cycle
from typing import Any

import pytest

from optillm_core import GenerationSettings, ModelProfile, Optimizer
from optillm_core.testing import FunctionClient
from optillm_core.toolkit import FunctionScorer
from optillm_sampling import (
    BestOfNOptimizer,
    GenSelectOptimizer,
    MajorityVotingOptimizer,
    SelfConsistencyOptimizer,
)

from .support import QUERY, Model

pytestmark = pytest.mark.anyio

ANSWERS = ("The answer is 19.", "The answer is 19.", "The answer is 18.")

NATIVE = {"native_n": True}
NO_NATIVE = {"native_n": False}
MAX_N_3 = {"native_n": True, "profile": ModelProfile(max_n=3)}
NO_TEMPERATURE = {"native_n": True, "profile": ModelProfile(temperature=False)}


@pytest.mark.parametrize(
    ("strategy", "options", "client", "expected"),
    [
        pytest.param(SelfConsistencyOptimizer, {}, NATIVE, 1, id="sc-native"),
        pytest.param(SelfConsistencyOptimizer, {}, NO_NATIVE, 5, id="sc"),
        pytest.param(SelfConsistencyOptimizer, {"k": 7}, MAX_N_3, 3, id="sc-max-n"),
        pytest.param(SelfConsistencyOptimizer, {"k": 4}, NO_TEMPERATURE, 4, id="sc-no-temperature"),
        pytest.param(SelfConsistencyOptimizer, {"temperature": 0.0}, NATIVE, 5, id="sc-temperature-0"),
        pytest.param(GenSelectOptimizer, {"temperature": 0.0}, NATIVE, 5, id="genselect-temperature-0"),
        pytest.param(MajorityVotingOptimizer, {}, NATIVE, 1, id="mv-native"),
        pytest.param(MajorityVotingOptimizer, {}, NO_NATIVE, 8, id="mv"),
        pytest.param(MajorityVotingOptimizer, {"k": 10}, MAX_N_3, 4, id="mv-max-n"),
        pytest.param(BestOfNOptimizer, {}, NATIVE, 4, id="bon-native"),
        pytest.param(BestOfNOptimizer, {}, NO_NATIVE, 6, id="bon"),
        pytest.param(BestOfNOptimizer, {"n": 1}, NO_NATIVE, 1, id="bon-one"),
        pytest.param(BestOfNOptimizer, {"n": 5}, NO_TEMPERATURE, 10, id="bon-no-temperature"),
        pytest.param(GenSelectOptimizer, {}, NATIVE, 2, id="genselect-native"),
        pytest.param(GenSelectOptimizer, {}, NO_NATIVE, 5, id="genselect"),
        pytest.param(GenSelectOptimizer, {"n": 1}, NATIVE, 1, id="genselect-one"),
    ],
)
async def test_planned_calls_are_the_calls_a_run_makes(
    strategy: type[Optimizer[Any]], options: dict[str, Any], client: dict[str, Any], expected: int
) -> None:
    model = FunctionClient(Model(cycle(ANSWERS)), **client)
    optimizer = strategy.from_options(options)
    planned = optimizer.planned_calls(model, GenerationSettings())
    solution = await optimizer.optimize(QUERY, model)
    assert planned == expected
    assert solution.metadata.llm_calls == len(model.requests) == planned


async def test_best_of_n_with_a_function_scorer_plans_only_the_samples() -> None:
    model = FunctionClient(Model(cycle(ANSWERS)))
    optimizer = BestOfNOptimizer(scorer=FunctionScorer(lambda query, answer: len(answer)))
    solution = await optimizer.optimize(QUERY, model)
    assert optimizer.planned_calls(model) == solution.metadata.llm_calls == 3
