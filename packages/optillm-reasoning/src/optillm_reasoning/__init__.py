"""Reasoning strategies for optillm: LEAP (principles from mistakes) and the prover-verifier game."""

from __future__ import annotations as _annotations

from ._config import LeapConfig, PvgConfig
from ._leap import LeapOptimizer
from ._parsing import Example, output_section, parse_examples
from ._pvg import PvgOptimizer

__all__ = ("Example", "LeapConfig", "LeapOptimizer", "PvgConfig", "PvgOptimizer", "output_section", "parse_examples")
