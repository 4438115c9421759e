"""Settings of a Mixture of Agents run."""

from __future__ import annotations as _annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from optillm_core import OptimizerConfig

__all__ = ("MoaConfig",)


class MoaConfig(OptimizerConfig):
    """Settings of :class:`~optillm_moa.MoaOptimizer`; defaults follow upstream optillm's ``moa``.

    The ``*_max_tokens`` are each phase's own limit: the caller's ``max_tokens`` caps every phase and the
    model's output cap clips them. The caller's temperature replaces ``candidate_temperature`` and
    ``synthesis_temperature`` unless the config sets them; the critique keeps ``critique_temperature``.
    """

    num_completions: int = Field(default=3, ge=1, le=32, description="candidate answers to sample")
    candidate_temperature: float = Field(default=1.0, ge=0.0, description="temperature of the candidates")
    candidate_temperatures: tuple[float, ...] | None = Field(
        default=None, description="one temperature per candidate; only equal temperatures share a request"
    )
    critique_temperature: float = Field(default=0.1, ge=0.0)
    synthesis_temperature: float = Field(default=0.1, ge=0.0)
    candidate_max_tokens: int = Field(default=4096, ge=1)
    critique_max_tokens: int = Field(default=512, ge=1)
    synthesis_max_tokens: int = Field(default=8192, ge=1)
    truncated_candidates: Literal["drop", "keep"] = Field(
        default="drop", description="what to do with candidates cut off by max_tokens"
    )
    fallback: bool = Field(
        default=True,
        description="request missing or empty candidates once more (one extra round-trip, only when needed)",
    )
    min_candidates: int = Field(default=1, ge=1, description="fewest usable candidates to go on with")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        temps = self.candidate_temperatures
        if temps is not None:
            if len(temps) != self.num_completions:
                raise ValueError(
                    f"candidate_temperatures has {len(temps)} values but num_completions is "
                    f"{self.num_completions}: give exactly one temperature per candidate"
                )
            if any(t < 0 for t in temps):
                raise ValueError("candidate_temperatures must all be >= 0")
        if self.min_candidates > self.num_completions:
            raise ValueError(
                f"min_candidates ({self.min_candidates}) cannot exceed num_completions ({self.num_completions})"
            )
        return self
