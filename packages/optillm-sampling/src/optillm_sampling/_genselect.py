"""GenSelect: N candidates, then one comparison call that reads them all and names the best — two round-trips."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from optillm_core import (
    BudgetExhausted,
    CallRole,
    ClientError,
    GenerationSettings,
    ModelClient,
    Optimizer,
    OptimizerConfig,
    Outcome,
    RunContext,
    answer_key,
    plurality_vote,
    sample_answers,
    sample_requests,
)

from ._common import chosen_outcome, record_fallback, samples_extras
from ._comparison import comparison_prompt, parse_choice
from ._log import log

__all__ = ("GenSelectConfig", "GenSelectOptimizer")


class GenSelectConfig(OptimizerConfig):
    """Settings of :class:`GenSelectOptimizer`; defaults follow upstream optillm's plugin."""

    n: int = Field(default=4, ge=1, le=16, description="candidates to draw")
    temperature: float = Field(default=0.7, ge=0.0, description="temperature of the candidates")
    max_tokens: int = Field(default=4096, ge=1, description="token limit of each candidate")
    comparison_temperature: float = Field(default=0.3, ge=0.0, description="temperature of the comparison")
    comparison_max_tokens: int = Field(default=1024, ge=1, description="token limit of the comparison")


class GenSelectOptimizer(Optimizer[GenSelectConfig]):
    """Draws ``n`` candidates and has the model compare them in one call and name the best.

    A comparison that names no candidate (or fails) falls back to a plurality vote on the candidates' answers.
    """

    name: ClassVar[str] = "genselect"
    description: ClassVar[str] = "GenSelect: N candidates, one comparison call that names the best."
    config_type: ClassVar[type[GenSelectConfig]] = GenSelectConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"candidates": "answer", "comparison": "judge"}

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The candidates' requests and one comparison (none with a single candidate)."""
        n = self.config.n
        return sample_requests(self.planning_context(client, settings), n) + (1 if n > 1 else 0)

    async def run(self, ctx: RunContext[GenSelectConfig]) -> Outcome:
        config = ctx.config
        ctx.phase("candidates")
        samples = await sample_answers(
            ctx,
            config.n,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            pinned=config.pinned(temperature="temperature"),
        )
        candidates = samples.samples
        keys = [answer_key(s.text) for s in candidates]
        vote = plurality_vote(keys)
        fallback = record_fallback(ctx, samples, keys, vote)
        extras: dict[str, Any] = {**samples_extras(samples, keys), "vote": vote.summary()}
        if len(candidates) == 1:
            return chosen_outcome(
                ctx, fallback, source="single", reasoning="Only one candidate was usable; no comparison.", extras=extras
            )

        ctx.phase("comparison")
        reply = await self._compare(ctx, [c.text for c in candidates])
        extras["comparison"] = reply
        number = parse_choice(reply, len(candidates)) if reply is not None else None
        extras["named"] = number
        if number is None:
            log.warning("genselect: the comparison named no candidate, using the vote", optimizer=ctx.optimizer)
            reasoning = (
                f"The comparison named no candidate, so the vote chose ({vote.summary()}); "
                f"returned candidate {candidates.index(fallback) + 1}."
            )
            return chosen_outcome(ctx, fallback, source="vote", reasoning=reasoning, extras=extras)
        chosen = candidates[number - 1]
        reasoning = f"The comparison of {len(candidates)} candidates named candidate {number}:\n{reply}"
        return chosen_outcome(ctx, chosen, source="comparison", reasoning=reasoning, extras=extras)

    async def _compare(self, ctx: RunContext[GenSelectConfig], candidates: list[str]) -> str | None:
        """The comparison's reply (its text, never its thinking), or ``None`` when the call failed."""
        settings = ctx.call_settings(
            "judge", temperature=ctx.config.comparison_temperature, max_tokens=ctx.config.comparison_max_tokens
        )
        try:
            completion = await ctx.client.complete(ctx.prompt(comparison_prompt(ctx.query, candidates)), settings)
        except BudgetExhausted:
            raise
        except ClientError as exc:
            log.warning("genselect: the comparison call failed", optimizer=ctx.optimizer, error=str(exc))
            return None
        return completion.text
