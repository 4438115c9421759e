"""``MarsOptimizer.planned_calls``: the calls up to the first verification round, counted from the config."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import GenerationSettings
from optillm_mars import MarsOptimizer

from .fakes import INCORRECT, FakeMars

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"


@pytest.mark.parametrize(
    ("options", "settings", "expected"),
    [
        # 3 explorers, 5 combining calls (1, 2, 2 over 3 loops), 3 extractions + 3 enhancements,
        # 2 passes over the 6 of the population and the 3 enhanced solutions
        pytest.param({}, GenerationSettings(), 32, id="defaults"),
        # lightweight: 2 explorers, 1 pass each
        pytest.param({}, GenerationSettings(max_tokens=1000), 4, id="lightweight"),
        pytest.param({"enable_aggregation": False}, GenerationSettings(), 21, id="no-aggregation"),
        pytest.param({"enable_strategy_network": False}, GenerationSettings(), 20, id="no-network"),
        pytest.param(
            {"num_agents": 5, "aggregation_population_size": 4, "aggregation_loops": 2},
            GenerationSettings(),
            37,
            id="five-agents",
        ),
        pytest.param({"num_agents": 1, "verification_passes_required": 3}, GenerationSettings(), 4, id="one-agent"),
        pytest.param({"aggregation_groups_per_loop": 1}, GenerationSettings(), 30, id="one-group"),
    ],
)
async def test_planned_calls_are_the_calls_a_run_makes_when_the_first_review_passes(
    options: dict[str, Any], settings: GenerationSettings, expected: int
) -> None:
    client = FakeMars()
    optimizer = MarsOptimizer.from_options(options)
    planned = optimizer.planned_calls(client, settings)
    solution = await optimizer.optimize(QUERY, client, settings=settings)
    assert planned == expected
    assert solution.metadata.llm_calls == len(client.requests) == planned


@pytest.mark.parametrize("options", [{}, {"aggregation_groups_per_loop": 4}, {"num_agents": 4}])
async def test_failed_reviews_and_extra_groups_only_add_calls(options: dict[str, Any]) -> None:
    client = FakeMars(verification=INCORRECT)
    optimizer = MarsOptimizer.from_options({**options, "max_iterations": 1})
    solution = await optimizer.optimize(QUERY, client)
    assert solution.metadata.llm_calls == len(client.requests) > optimizer.planned_calls(client)
