"""The same judge reply is rated the same way by every strategy that rates: one reader, the toolkit's parse_rating.

``bon`` rates samples, ``mcts`` rates simulated dialogues and ``mars`` reads a score from each
verification; each asks for a ``Rating: N/10`` line in its own words and reads the reply with
:func:`optillm_core.toolkit.parse_rating`, so a judge's reply means the same number everywhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from optillm_core import GenerationSettings, Prompt, Solution, default_registry
from optillm_core.testing import FunctionClient
from optillm_core.toolkit import parse_rating

pytestmark = pytest.mark.anyio

JUDGE_REPLIES = [
    "The steps check out.\nRating: 7/10",
    "**Rating:** 8",
    "Score: 0.6",
    "The response says 20 at first and then corrects itself to 19.\nRATING: 9/10",
    "rating: 4 out of 10",
]


def asks_for_a_rating(prompt: Prompt) -> bool:
    text = "\n".join([prompt.system or "", *(m.content for m in prompt.messages)])
    return "N/10" in text


def model(judge_reply: str) -> FunctionClient:
    def reply(prompt: Prompt, settings: GenerationSettings) -> str:
        if not asks_for_a_rating(prompt):
            return "12 + 7 = 19, so the answer is \\boxed{19}."
        text = "\n".join([prompt.system or "", *(m.content for m in prompt.messages)])
        verdict = "\nVERDICT: CORRECT" if "VERDICT" in text else ""  # MARS's verifiers also give a verdict
        return judge_reply + verdict

    return FunctionClient(reply)


def ratings(name: str, solution: Solution) -> list[float]:
    """Every rating the strategy recorded for the judge's replies."""
    extras: dict[str, Any] = solution.metadata.extras
    if name == "bon":
        return list(extras["ratings"])
    if name == "mcts":
        return [s["score"] for s in extras["simulations"] if s["score_parsed"]]
    return [v["score"] for s in extras["solutions"] for v in s["verifications"] if v["error"] is None]


STRATEGIES = {
    "bon": {"n": 2},
    "mcts": {"num_simulations": 2},
    "mars": {"num_agents": 2, "max_iterations": 1, "verification_passes_required": 1},
}


@pytest.mark.parametrize("judge_reply", JUDGE_REPLIES)
async def test_every_strategy_rates_the_same_judge_reply_alike(judge_reply: str) -> None:
    expected = parse_rating(judge_reply, scale=10)
    assert expected is not None
    seen: dict[str, set[float]] = {}
    for name, config in STRATEGIES.items():
        solution = await default_registry().create(name, config).optimize("What is 12 + 7?", model(judge_reply))
        recorded = ratings(name, solution)
        assert recorded, f"{name} recorded no rating"
        seen[name] = {round(value, 9) for value in recorded}
    assert all(values == {round(expected, 9)} for values in seen.values()), seen
