"""GenSelect: N candidates, then one comparison call that reads them all and names the best — two round-trips."""

from __future__ import annotations as _annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from optillm_core import CallRole, GenerationSettings, ModelClient, Outcome, RunContext
from optillm_core.toolkit import Sample, settle

from ._common import SampledConfig, SamplingOptimizer, chosen_outcome, samples_extras, voted
from ._comparison import comparison_prompt, parse_choice
from ._log import log

__all__ = ("GenSelectConfig", "GenSelectOptimizer")


class GenSelectConfig(SampledConfig):
    """Settings of :class:`GenSelectOptimizer`; defaults follow upstream optillm's plugin."""

    n: int = Field(default=4, ge=1, le=16, description="candidates to draw")
    temperature: float = Field(default=0.7, ge=0.0, description="temperature of the candidates")
    max_tokens: int = Field(default=4096, ge=1, description="token limit of each candidate")
    comparison_temperature: float = Field(default=0.3, ge=0.0, description="temperature of the comparison")
    comparison_max_tokens: int = Field(default=1024, ge=1, description="token limit of the comparison")

    @property
    def sample_count(self) -> int:
        return self.n


class GenSelectOptimizer(SamplingOptimizer[GenSelectConfig]):
    """Draws ``n`` candidates and has the model compare them in one call and name the best.

    Candidates that call tools are shown to the comparison with the calls written out, so a tool
    call can be chosen over a text answer. A comparison that names no candidate (or fails in a
    way the phase may absorb) falls back to a plurality vote on the candidates' replies.
    """

    name: ClassVar[str] = "genselect"
    description: ClassVar[str] = "GenSelect: N candidates, one comparison call that names the best."
    config_type: ClassVar[type[GenSelectConfig]] = GenSelectConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"candidates": "returned", "comparison": "judge"}

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The candidates' requests and one comparison (none with a single candidate)."""
        return super().planned_calls(client, settings) + (1 if self.config.n > 1 else 0)

    async def run(self, ctx: RunContext[GenSelectConfig]) -> Outcome:
        samples = await self.draw(ctx, "candidates")
        candidates = samples.samples
        keys = [s.key for s in candidates]
        vote, fallback = voted(ctx, samples, keys)
        extras: dict[str, Any] = {**samples_extras(samples, keys), "vote": vote.summary()}
        if len(candidates) == 1:
            return chosen_outcome(
                ctx, fallback, source="single", reasoning="Only one candidate was usable; no comparison.", extras=extras
            )

        ctx.phase("comparison")
        reply = await self._compare(ctx, candidates)
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

    async def _compare(self, ctx: RunContext[GenSelectConfig], candidates: Sequence[Sample]) -> str | None:
        """The comparison's reply (its text, never its thinking), or ``None`` when the call failed absorbably.

        Any other failure (authentication, permission, a bad request, the budget) ends the run.
        """
        settings = ctx.call_settings(
            "judge", temperature=ctx.config.comparison_temperature, max_tokens=ctx.config.comparison_max_tokens
        )
        text = comparison_prompt(
            ctx.query, [c.rendered for c in candidates], tool_calls=any(c.tool_calls for c in candidates)
        )
        (result,) = await settle(
            [lambda: ctx.client.complete(ctx.prompt(text), settings)], optimizer=ctx.optimizer, what="comparison"
        )
        return None if isinstance(result, Exception) else result.text
