"""``MctsOptimizer.planned_calls``: exact while only the root expands, a lower bound once the search goes deeper."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import GenerationSettings, ModelProfile, Prompt
from optillm_core.testing import FunctionClient
from optillm_mcts import MctsOptimizer
from optillm_mcts._prompts import EVALUATE, PREDICT_USER

pytestmark = pytest.mark.anyio

NO_TEMPERATURE = ModelProfile(temperature=False)


def model(prompt: Prompt, settings: GenerationSettings) -> str:
    """Usable replies at every step: an answer, a follow-up question, a score."""
    last = prompt.effective_messages()[-1].content
    if last == EVALUATE:
        return "0.8"
    if last == PREDICT_USER:
        return "Can you check that once more?"
    return "Adding gives 19. The answer is 19."


@pytest.mark.parametrize(
    ("options", "native_n", "settings", "profile", "expected"),
    [
        # root: 1 n request for 2 replies, 2 predicted user turns; 2 rollouts of 1 reply; 2 evaluations
        pytest.param({}, True, GenerationSettings(), None, 7, id="defaults-native-n"),
        pytest.param({}, False, GenerationSettings(), None, 8, id="defaults"),
        # 1 + 3 at the root, 3 rollouts of 2 replies and 1 predicted turn, 3 evaluations
        pytest.param({"num_simulations": 3, "simulation_depth": 2}, True, GenerationSettings(), None, 16, id="depth-2"),
        pytest.param({"num_simulations": 3}, True, GenerationSettings(temperature=0), None, 12, id="temperature-0"),
        pytest.param({"num_simulations": 3}, True, GenerationSettings(), NO_TEMPERATURE, 12, id="no-temperature"),
        # the dialogue is over after 2 of the 4 rollout steps: 1 + 2, 2 x (2 replies + 2 turns), 2
        pytest.param(
            {"num_simulations": 2, "simulation_depth": 4, "max_history_length": 4},
            True,
            GenerationSettings(),
            None,
            13,
            id="dialogue-ends",
        ),
        pytest.param({"num_simulations": 1, "simulation_depth": 0}, False, GenerationSettings(), None, 3, id="one"),
    ],
)
async def test_planned_calls_are_the_calls_a_root_only_search_makes(
    options: dict[str, Any],
    native_n: bool,
    settings: GenerationSettings,
    profile: ModelProfile | None,
    expected: int,
) -> None:
    client = FunctionClient(model, native_n=native_n, profile=profile)
    optimizer = MctsOptimizer.from_options(options)
    planned = optimizer.planned_calls(client, settings)
    solution = await optimizer.optimize("What is 12 + 7?", client, settings=settings)
    assert planned == expected
    assert solution.metadata.llm_calls == len(client.requests) == planned


@pytest.mark.parametrize("native_n", [True, False])
@pytest.mark.parametrize(("simulations", "actions", "depth"), [(6, 2, 1), (8, 3, 2), (10, 2, 3)])
async def test_deeper_searches_make_at_least_the_planned_calls(
    simulations: int, actions: int, depth: int, native_n: bool
) -> None:
    client = FunctionClient(model, native_n=native_n)
    options = {"num_simulations": simulations, "num_actions": actions, "simulation_depth": depth}
    optimizer = MctsOptimizer.from_options(options)
    solution = await optimizer.optimize("What is 12 + 7?", client)
    assert solution.metadata.llm_calls == len(client.requests) >= optimizer.planned_calls(client)
