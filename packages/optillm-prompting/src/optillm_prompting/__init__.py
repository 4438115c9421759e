"""optillm-prompting: single-call prompt techniques, CoT reflection and RE2 re-reading."""

from __future__ import annotations as _annotations

from ._config import CotReflectionConfig, Re2Config
from ._cot_reflection import CotReflectionOptimizer
from ._re2 import Re2Optimizer
from ._sections import AnswerSource, Sections, parse_sections

__all__ = (
    "AnswerSource",
    "CotReflectionConfig",
    "CotReflectionOptimizer",
    "Re2Config",
    "Re2Optimizer",
    "Sections",
    "parse_sections",
)
