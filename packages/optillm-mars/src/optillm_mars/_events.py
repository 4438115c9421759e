"""MARS progress events (the seed's ``MarsEvent`` kinds), sent through core's never-blocking channel.

Nothing imports this module when the package is imported: the phases import their events when a
run first reaches them, and the package exports them lazily. Its fifteen model classes were a third
of what importing the package added to core (about 5 ms), paid by every ``optillm`` command that
lists or loads strategies, whether or not a MARS run is ever watched.
"""

from __future__ import annotations as _annotations

from optillm_core import OptimizerEvent

from ._types import SelectionMethod, Verdict

__all__ = (
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
)


class MarsEvent(OptimizerEvent):
    """Base of every MARS event; ``kind`` is the class name, as in the seed's enum."""


class ExplorationStarted(MarsEvent):
    num_agents: int


class SolutionGenerated(MarsEvent):
    solution_id: str
    agent_id: int
    phase: str


class AggregationStarted(MarsEvent):
    loop: int
    population: int


class SolutionsAggregated(MarsEvent):
    result_solution_id: str
    source_solution_ids: tuple[str, ...]


class StrategyNetworkStarted(MarsEvent):
    num_solutions: int


class StrategyExtracted(MarsEvent):
    strategy_id: str
    agent_id: int


class VerificationStarted(MarsEvent):
    round: int
    num_solutions: int


class SolutionVerified(MarsEvent):
    solution_id: str
    verifier_agent_id: int
    is_correct: bool
    verdict: Verdict
    score: float
    is_verified: bool


class ImprovementStarted(MarsEvent):
    iteration: int
    num_solutions: int


class SolutionImproved(MarsEvent):
    solution_id: str
    revision: int


class SynthesisStarted(MarsEvent):
    num_solutions: int


class AnswerSynthesized(MarsEvent):
    answer: str
    method: SelectionMethod


class Completed(MarsEvent):
    """The MARS pipeline chose its final answer (core's ``RunCompleted`` follows with the usage)."""

    final_answer: str
    method: SelectionMethod
    solution_id: str


class Error(MarsEvent):
    """A model call failed and the run went on without it (see the README for what each phase does)."""

    phase: str
    message: str
