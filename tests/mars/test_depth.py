"""Calls and sequential depth (model round-trips on the critical path) at defaults, max_tokens 8000.

Structural, not timed: ``sequential_depth`` counts the longest chain of calls in which each starts
after the previous one ended. Upstream optillm needs about 23 round-trips for a simple question.

Best case (everything verified in the first round):
  exploration 1 + max(aggregation loops 3, strategy network 2) + verification 1 = 5.
Worst case (nothing ever verified, answers all differ):
  5 + max_iterations 5 x (rewrite 1 + verification 1) + synthesis 1 = 16.

The fake's latency is spent inside each recorded request. ``LatencyClient(FunctionClient(...))``
sleeps before the inner client records the request, so each recorded span is only the instant
after the delay and calls that overlapped can look sequential (it measured 16 to 20 for the
worst case here); with the delay inside the span the depth is exact.
"""

from __future__ import annotations

import pytest

from optillm_core import GenerationSettings, Prompt
from optillm_core.testing import sequential_depth
from optillm_mars import MarsConfig, MarsOptimizer, SelectionMethod

from .fakes import INCORRECT, FakeMars, agent_of, boxed

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
DEFAULT = GenerationSettings(max_tokens=8000)
# Long enough that calls started together always overlap, even on a loaded machine.
LATENCY = 0.05


async def test_simple_question_at_defaults() -> None:
    fake = FakeMars(latency=LATENCY)
    solution = await MarsOptimizer().optimize(QUERY, fake, settings=DEFAULT)
    assert solution.metadata.llm_calls == 32
    assert sequential_depth(fake.requests) == 5


async def test_worst_case_at_defaults() -> None:
    counter = iter(range(10_000))

    def distinct(prompt: Prompt, settings: GenerationSettings) -> str:
        return boxed(str(100 + next(counter)))  # no two solutions ever agree

    fake = FakeMars(
        latency=LATENCY,
        exploration=lambda p, s: boxed(str(agent_of(p))),
        aggregation=distinct,
        enhancement=distinct,
        improvement=distinct,
        verification=INCORRECT,
    )
    solution = await MarsOptimizer().optimize(QUERY, fake, settings=DEFAULT)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.SYNTHESIZED
    assert solution.metadata.iterations == 6
    calls = fake.calls()
    assert calls["improvement"] == 5 * 9
    assert calls["verification"] == 6 * 18
    assert solution.metadata.llm_calls == 3 + 5 + 3 + 3 + 6 * 18 + 5 * 9 + 1
    assert sequential_depth(fake.requests) == 16


async def test_aggregation_and_strategy_network_run_side_by_side() -> None:
    both, alone = FakeMars(latency=LATENCY), FakeMars(latency=LATENCY)
    await MarsOptimizer().optimize(QUERY, both, settings=DEFAULT)
    config = MarsConfig(enable_strategy_network=False)
    await MarsOptimizer(config).optimize(QUERY, alone, settings=DEFAULT)
    assert sequential_depth(both.requests) == sequential_depth(alone.requests)


async def test_lightweight_depth() -> None:
    fake = FakeMars(latency=LATENCY)
    solution = await MarsOptimizer().optimize(QUERY, fake, settings=GenerationSettings(max_tokens=2000))
    assert solution.metadata.llm_calls == 4
    assert sequential_depth(fake.requests) == 2


async def test_lightweight_worst_case() -> None:
    counter = iter(range(10_000))

    def distinct(prompt: Prompt, settings: GenerationSettings) -> str:
        return boxed(str(100 + next(counter)))

    fake = FakeMars(latency=LATENCY, exploration=distinct, improvement=distinct, verification=INCORRECT)
    solution = await MarsOptimizer().optimize(QUERY, fake, settings=GenerationSettings(max_tokens=4000))
    assert solution.metadata.llm_calls == 13
    assert solution.metadata.extras["selection_method"] == SelectionMethod.SYNTHESIZED
    assert sequential_depth(fake.requests) == 7
