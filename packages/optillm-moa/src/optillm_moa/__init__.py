"""optillm-moa: Mixture of Agents — diverse candidates, one critique, one synthesis."""

from __future__ import annotations as _annotations

from ._config import MoaConfig
from ._events import CandidatesReady, CritiqueReady, SynthesisReady
from ._optimizer import MoaOptimizer

__all__ = ("CandidatesReady", "CritiqueReady", "MoaConfig", "MoaOptimizer", "SynthesisReady")
