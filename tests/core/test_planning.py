"""The optional ``Optimizer.planned_calls`` hook and the planning context strategies work it out with."""

from __future__ import annotations

import pytest

from optillm_core import GenerationSettings, ModelProfile, Optimizer, OptimizerConfig, Outcome, RunContext
from optillm_core.testing import ScriptedClient

pytestmark = pytest.mark.anyio


class _Plain(Optimizer[OptimizerConfig]):
    name = "plain"
    description = "one call"

    async def run(self, ctx: RunContext[OptimizerConfig]) -> Outcome:
        return Outcome(answer=(await ctx.generate(ctx.query)).text)


def test_a_strategy_without_the_hook_plans_nothing() -> None:
    assert _Plain().planned_calls(ScriptedClient()) is None


async def test_the_planning_context_sees_the_settings_a_run_sees_and_makes_no_calls() -> None:
    client = ScriptedClient(["x"], native_n=True, profile=ModelProfile(temperature=False, seed=False))
    ctx = _Plain().planning_context(client, GenerationSettings(temperature=0.5, seed=3, max_tokens=10))
    assert (ctx.settings.temperature, ctx.settings.seed, ctx.settings.max_tokens) == (None, None, 10)
    assert ctx.client.supports_native_n
    assert not ctx.profile.temperature
    with pytest.raises(RuntimeError, match="no model calls"):
        await ctx.generate("hello")
    assert client.requests == []
