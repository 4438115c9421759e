"""optillm-mars: MARS, the Multi-Agent Reasoning System, as an optillm optimizer."""

from __future__ import annotations as _annotations

from importlib.metadata import version as _version

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

__version__ = _version("optillm-mars")

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
