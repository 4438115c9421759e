"""Settings of the code strategies."""

from __future__ import annotations as _annotations

from pydantic import Field

from optillm_core import OptimizerConfig

__all__ = ("PlanSearchConfig", "RtoConfig")


class RtoConfig(OptimizerConfig):
    """Settings of :class:`~optillm_code.RtoOptimizer`; defaults are upstream optillm's ``rto``.

    The caller's temperature replaces ``temperature`` unless the config sets it; the caller's
    ``max_tokens`` caps both limits.
    """

    temperature: float = Field(default=0.1, ge=0.0, description="temperature of every call")
    code_max_tokens: int = Field(default=4096, ge=1, description="token limit of each version of the code")
    description_max_tokens: int = Field(default=1024, ge=1, description="token limit of the description")


class PlanSearchConfig(OptimizerConfig):
    """Settings of :class:`~optillm_code.PlanSearchOptimizer`; defaults are upstream optillm's ``plansearch``.

    Like upstream, no temperature is sent by default (``None``: the provider's own, 1 on OpenAI), so
    the plans differ by sampling; a model that takes no temperature gets varied observation prompts
    instead. The caller's temperature replaces each unless the config sets it; the caller's
    ``max_tokens`` caps ``max_tokens``.
    """

    num_plans: int = Field(default=3, ge=1, le=16, description="plans searched, each observations → plan → code")
    num_observations: int = Field(default=3, ge=1, le=20, description="first observations asked for per plan")
    num_derived_observations: int = Field(default=2, ge=0, le=20, description="derived observations per plan")
    observation_temperature: float | None = Field(
        default=None, ge=0.0, description="temperature of both observation steps (None: the provider's)"
    )
    plan_temperature: float | None = Field(
        default=None, ge=0.0, description="temperature of the plan (None: the provider's)"
    )
    code_temperature: float | None = Field(
        default=None, ge=0.0, description="temperature of the code (None: the provider's)"
    )
    max_tokens: int = Field(default=4096, ge=1, description="token limit of every call")
