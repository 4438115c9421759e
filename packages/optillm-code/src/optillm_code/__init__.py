"""optillm-code: strategies for code: round-trip optimization (``rto``) and PlanSearch (``plansearch``)."""

from __future__ import annotations as _annotations

from ._code import CodeBlock, code_blocks, extract_code, has_code_block, normalized_code, same_code
from ._config import PlanSearchConfig, RtoConfig
from ._plansearch import Plan, PlanSearchOptimizer, observation_lines
from ._rto import RtoOptimizer

__all__ = (
    "CodeBlock",
    "Plan",
    "PlanSearchConfig",
    "PlanSearchOptimizer",
    "RtoConfig",
    "RtoOptimizer",
    "code_blocks",
    "extract_code",
    "has_code_block",
    "normalized_code",
    "observation_lines",
    "same_code",
)
