"""optillm-sampling: sample several answers, then pick one — best-of-n, self-consistency, majority voting, GenSelect."""

from __future__ import annotations as _annotations

from ._bon import BestOfNConfig, BestOfNOptimizer
from ._comparison import comparison_prompt, parse_choice
from ._genselect import GenSelectConfig, GenSelectOptimizer
from ._majority_voting import MajorityVotingConfig, MajorityVotingOptimizer
from ._self_consistency import SelfConsistencyConfig, SelfConsistencyOptimizer

__all__ = (
    "BestOfNConfig",
    "BestOfNOptimizer",
    "GenSelectConfig",
    "GenSelectOptimizer",
    "MajorityVotingConfig",
    "MajorityVotingOptimizer",
    "SelfConsistencyConfig",
    "SelfConsistencyOptimizer",
    "comparison_prompt",
    "parse_choice",
)
