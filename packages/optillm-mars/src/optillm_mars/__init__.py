"""optillm-mars: MARS, the Multi-Agent Reasoning System, as an optillm optimizer."""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._config import MarsConfig
from ._coordinator import MarsCoordinator, MarsOptimizer
from ._events import (
    AggregationStarted,
    AnswerSynthesized,
    Completed,
    Error,
    ExplorationStarted,
    ImprovementStarted,
    MarsEvent,
    SolutionGenerated,
    SolutionImproved,
    SolutionsAggregated,
    SolutionVerified,
    StrategyExtracted,
    StrategyNetworkStarted,
    SynthesisStarted,
    VerificationStarted,
)
from ._types import GenerationPhase, MarsSolution, SelectionMethod, Strategy, Verdict, VerificationResult
from ._verdicts import ParsedVerdict, parse_verdict

if _TYPE_CHECKING:
    __version__: str


def __getattr__(name: str) -> str:
    """``__version__``, read from the distribution's metadata when first asked for (importlib.metadata is heavy)."""
    if name == "__version__":
        from importlib.metadata import version

        value = version("optillm-mars")
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = (
    "AggregationStarted",
    "AnswerSynthesized",
    "Completed",
    "Error",
    "ExplorationStarted",
    "GenerationPhase",
    "ImprovementStarted",
    "MarsConfig",
    "MarsCoordinator",
    "MarsEvent",
    "MarsOptimizer",
    "MarsSolution",
    "ParsedVerdict",
    "SelectionMethod",
    "SolutionGenerated",
    "SolutionImproved",
    "SolutionVerified",
    "SolutionsAggregated",
    "Strategy",
    "StrategyExtracted",
    "StrategyNetworkStarted",
    "SynthesisStarted",
    "Verdict",
    "VerificationResult",
    "VerificationStarted",
    "__version__",
    "parse_verdict",
)
