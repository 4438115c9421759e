"""Settings of a Monte Carlo Tree Search run."""

from __future__ import annotations as _annotations

from pydantic import Field

from optillm_core import OptimizerConfig

__all__ = ("MctsConfig",)


class MctsConfig(OptimizerConfig):
    """Settings of :class:`~optillm_mcts.MctsOptimizer`; search defaults are the seed's, token limits upstream's.

    The ``*_max_tokens`` are each call's own limit: the caller's ``max_tokens`` caps every call and
    the model's output cap clips them. The caller's temperature replaces ``generation_temperature``
    unless the config sets it; the evaluations keep ``evaluation_temperature``.
    """

    num_simulations: int = Field(default=2, ge=1, le=1000)
    exploration_weight: float = Field(default=0.2, ge=0.0, description="weight of UCB's exploration term")
    simulation_depth: int = Field(default=1, ge=0, le=50, description="assistant turns a rollout adds")
    num_actions: int = Field(
        default=3, ge=1, le=32, description="assistant replies sampled per expansion (no more than simulations left)"
    )
    generation_temperature: float = Field(default=1.0, ge=0.0, description="replies and predicted user turns")
    evaluation_temperature: float = Field(default=0.1, ge=0.0)
    max_history_length: int = Field(default=10, ge=1, description="messages after which a dialogue is over")
    generation_max_tokens: int = Field(default=4096, ge=1)
    prediction_max_tokens: int = Field(default=1024, ge=1)
    evaluation_max_tokens: int = Field(default=256, ge=1)
