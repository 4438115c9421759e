"""Progress events of an MCTS run."""

from __future__ import annotations as _annotations

from optillm_core import OptimizerEvent

__all__ = ("NodeExpanded", "SimulationFinished")


class NodeExpanded(OptimizerEvent):
    """A node got its children: ``depth`` 0 is the root, ``children`` the usable replies."""

    simulation: int
    depth: int
    children: int


class SimulationFinished(OptimizerEvent):
    """One simulation was evaluated and backed up.

    ``root_child`` (1-based) is the root child it went through; ``visits`` and ``values`` are the
    visit counts and mean values of every root child afterwards.
    """

    simulation: int
    root_child: int
    score: float
    score_parsed: bool
    visits: list[int]
    values: list[float]
