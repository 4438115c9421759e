"""optillm-mars: MARS, the Multi-Agent Reasoning System, as an optillm optimizer."""

from __future__ import annotations as _annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._config import MarsConfig
from ._coordinator import MarsCoordinator, MarsOptimizer
from ._types import GenerationPhase, MarsSolution, SelectionMethod, Strategy, Verdict, VerificationResult
from ._verdicts import ParsedVerdict, parse_verdict

if _TYPE_CHECKING:
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

    __version__: str

_EVENTS = frozenset(
    {
        "AggregationStarted",
        "AnswerSynthesized",
        "Completed",
        "Error",
        "ExplorationStarted",
        "ImprovementStarted",
        "MarsEvent",
        "SolutionGenerated",
        "SolutionImproved",
        "SolutionVerified",
        "SolutionsAggregated",
        "StrategyExtracted",
        "StrategyNetworkStarted",
        "SynthesisStarted",
        "VerificationStarted",
    }
)
"""The event classes, imported when first asked for (see ``_events``)."""


def __getattr__(name: str) -> _Any:
    """The event classes, and ``__version__`` read from the distribution's metadata (importlib.metadata
    is heavy), when first asked for."""
    if name in _EVENTS:
        from . import _events

        value: _Any = getattr(_events, name)
    elif name == "__version__":
        from importlib.metadata import version

        value = version("optillm-mars")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


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
