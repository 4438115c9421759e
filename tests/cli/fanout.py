"""A small strategy for the CLI tests: samples answers concurrently, then asks the model to pick one."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field

from optillm_core import CallRole, Completion, Optimizer, OptimizerConfig, Outcome, RunContext
from optillm_core.toolkit import gather


class FanoutConfig(OptimizerConfig):
    samples: int = Field(default=3, ge=1, description="answers drawn concurrently")
    temperature: float = Field(default=0.8, ge=0.0, description="temperature of the samples")
    weights: list[float] = Field(default_factory=lambda: [1.0, 0.5])
    style: Literal["short", "long"] = "short"
    label: str | None = None


class FanoutOptimizer(Optimizer[FanoutConfig]):
    name = "fanout"
    description = "Draws a few answers concurrently, then asks the model to pick the best one."
    config_type = FanoutConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"sampling": "answer", "selection": "final"}

    async def run(self, ctx: RunContext[FanoutConfig]) -> Outcome:
        ctx.phase("sampling")
        pinned = ctx.config.pinned(temperature="temperature")
        prompt = ctx.prompt(ctx.query)

        async def sample(index: int) -> Completion:
            settings = ctx.call_settings("answer", temperature=ctx.config.temperature, seed_offset=index, pinned=pinned)
            return await ctx.client.complete(prompt, settings)

        completions = await gather(functools.partial(sample, i) for i in range(ctx.config.samples))
        ctx.record_best(completions[0].text, chosen=0)
        ctx.phase("selection")
        listing = "\n".join(f"Candidate {i}: {c.text}" for i, c in enumerate(completions))
        pick = await ctx.generate(f"Pick the best candidate for: {ctx.query}\n{listing}", ctx.call_settings("final"))
        return Outcome(
            answer=pick.text,
            reasoning=listing,
            extras={"candidates": len(completions), "method": "model pick", "style": ctx.config.style},
        )
