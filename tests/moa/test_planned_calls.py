"""``MoaOptimizer.planned_calls`` equals the calls a run really makes when every candidate is usable."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import GenerationSettings, ModelProfile
from optillm_core.testing import FunctionClient
from optillm_moa import MoaOptimizer

from ..tools_support import WITH_TOOLS

pytestmark = pytest.mark.anyio


def answer(prompt: Any, settings: GenerationSettings) -> str:
    return "Adding gives 19. The answer is 19."


@pytest.mark.parametrize(
    ("options", "native_n", "settings", "profile", "expected"),
    [
        pytest.param({}, False, GenerationSettings(), None, 5, id="defaults"),
        pytest.param({}, True, GenerationSettings(), None, 3, id="native-n"),
        pytest.param({"num_completions": 6}, False, GenerationSettings(), None, 8, id="six-candidates"),
        pytest.param({"num_completions": 6}, True, GenerationSettings(temperature=0), None, 8, id="temperature-0"),
        pytest.param({}, True, GenerationSettings(), ModelProfile(temperature=False), 5, id="no-temperature"),
        pytest.param({"candidate_temperatures": (0.2, 0.9, 1.1)}, True, GenerationSettings(), None, 5, id="per-temp"),
        pytest.param({"num_completions": 4}, True, GenerationSettings(), ModelProfile(max_n=2), 4, id="max-n-2"),
        pytest.param({"num_completions": 5}, True, GenerationSettings(), ModelProfile(max_n=2), 5, id="max-n-2-of-5"),
        pytest.param({}, True, WITH_TOOLS, None, 3, id="tools"),
    ],
)
async def test_planned_calls_are_the_calls_a_run_makes(
    options: dict[str, Any],
    native_n: bool,
    settings: GenerationSettings,
    profile: ModelProfile | None,
    expected: int,
) -> None:
    client = FunctionClient(answer, native_n=native_n, profile=profile)
    optimizer = MoaOptimizer.from_options(options)
    planned = optimizer.planned_calls(client, settings)
    solution = await optimizer.optimize("What is 12 + 7?", client, settings=settings)
    assert planned == expected
    assert solution.metadata.llm_calls == len(client.requests) == planned


async def test_a_refill_of_empty_candidates_only_adds_calls() -> None:
    replies = iter(["", "The answer is 19.", "The answer is 19."])

    def sometimes_empty(prompt: Any, settings: GenerationSettings) -> str:
        return next(replies, "The answer is 19.")

    client = FunctionClient(sometimes_empty)
    optimizer = MoaOptimizer()
    solution = await optimizer.optimize("What is 12 + 7?", client)
    assert solution.metadata.llm_calls == optimizer.planned_calls(client) + 1
