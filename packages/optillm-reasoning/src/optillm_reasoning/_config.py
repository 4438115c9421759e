"""Settings of a LEAP run and of a prover-verifier game."""

from __future__ import annotations as _annotations

from pydantic import Field

from optillm_core import OptimizerConfig

__all__ = ("LeapConfig", "PvgConfig")


class LeapConfig(OptimizerConfig):
    """Settings of :class:`~optillm_reasoning.LeapOptimizer`; defaults follow upstream optillm's ``leap``.

    Upstream sends every call with ``max_tokens`` 4096 (the caller's when given) and a temperature
    only with the mistakes (0.7); the other calls get the provider's default temperature, as here
    (``None`` sends none). The caller's ``max_tokens`` caps every call.
    """

    max_tokens: int = Field(default=4096, ge=1, description="token limit of every call")
    mistake_temperature: float = Field(default=0.7, ge=0.0, description="temperature of the deliberate mistakes")
    answer_temperature: float | None = Field(
        default=None, ge=0.0, description="temperature of the final answer (None: the provider's default)"
    )
    max_examples: int | None = Field(
        default=None, ge=1, description="most examples to learn from (None: every example found, as upstream)"
    )


class PvgConfig(OptimizerConfig):
    """Settings of :class:`~optillm_reasoning.PvgOptimizer`; defaults follow upstream optillm's ``pvg``.

    Round ``r`` (from 0) samples its solutions at ``max(min_temperature, temperature - r *
    temperature_step)``: 0.7, then 0.6. The caller's temperature replaces that schedule unless the
    config sets ``temperature``; the verifier and the query refinement keep their own.
    """

    num_rounds: int = Field(default=2, ge=1, le=16, description="rounds of the game")
    num_solutions: int = Field(default=3, ge=1, le=32, description="helpful and as many sneaky solutions per round")
    temperature: float = Field(default=0.7, ge=0.0, description="temperature of the solutions in the first round")
    temperature_step: float = Field(default=0.1, ge=0.0, description="how much lower each later round samples")
    min_temperature: float = Field(default=0.2, ge=0.0, description="lowest temperature of the schedule")
    max_tokens: int = Field(default=4096, ge=1, description="token limit of each solution")
    verifier_temperature: float = Field(default=0.2, ge=0.0)
    verifier_max_tokens: int = Field(default=1024, ge=1)
    refine_temperature: float = Field(default=0.5, ge=0.0)
    refine_max_tokens: int = Field(default=1024, ge=1)

    def round_temperature(self, round_index: int) -> float:
        """The solutions' temperature in round ``round_index`` (from 0), by upstream's schedule."""
        return round(max(self.min_temperature, self.temperature - round_index * self.temperature_step), 6)
