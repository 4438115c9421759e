"""optillm-mcts: Monte Carlo Tree Search over dialogue states, with the model rating every rollout."""

from __future__ import annotations as _annotations

from ._config import MctsConfig
from ._events import NodeExpanded, SimulationFinished
from ._optimizer import MctsOptimizer
from ._tree import DialogueState

__all__ = ("DialogueState", "MctsConfig", "MctsOptimizer", "NodeExpanded", "SimulationFinished")
