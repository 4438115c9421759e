"""Settings of the single-call prompt techniques."""

from __future__ import annotations as _annotations

from pydantic import Field

from optillm_core import OptimizerConfig

__all__ = ("CotReflectionConfig", "Re2Config")


class CotReflectionConfig(OptimizerConfig):
    """Settings of :class:`~optillm_prompting.CotReflectionOptimizer`; defaults follow upstream optillm's.

    Upstream's request values override its defaults, so here too: the caller's ``temperature``
    replaces ``temperature`` and the caller's ``max_tokens`` replaces ``max_tokens`` (even when it
    is larger), unless the config sets them explicitly; an explicit ``max_tokens`` is then capped by
    the caller's, as every phase's own limit is.
    """

    temperature: float = Field(default=0.6, ge=0.0, description="temperature of the one call")
    max_tokens: int = Field(default=4096, ge=1, description="output limit of the one call (thinking included)")


class Re2Config(OptimizerConfig):
    """Settings of :class:`~optillm_prompting.Re2Optimizer`: upstream sends the caller's settings as they are.

    Unset, the call gets the caller's temperature and max_tokens (or the model's defaults); set,
    ``temperature`` wins over the caller's and ``max_tokens`` is capped by the caller's.
    """

    temperature: float | None = Field(default=None, ge=0.0, description="temperature of the one call")
    max_tokens: int | None = Field(default=None, ge=1, description="output limit of the one call")
