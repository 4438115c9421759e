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


def __getattr__(name: str) -> _Any:
    """``__version__``, read from the distribution's metadata (importlib.metadata is heavy), and the event
    classes (the names of ``__all__`` not imported above: see ``_events``), when first asked for."""
    if name == "__version__":
        from importlib.metadata import version

        value: _Any = version("optillm-mars")
    elif name in __all__:
        from . import _events

        value = getattr(_events, name)
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
