"""Progress events of a Mixture of Agents run, one per phase."""

from __future__ import annotations as _annotations

from typing import Literal

from optillm_core import OptimizerEvent

__all__ = ("CandidatesReady", "CritiqueReady", "SynthesisReady")


class CandidatesReady(OptimizerEvent):
    """Phase 1 ended: how many candidates are usable and why the others were dropped.

    ``empty`` counts candidates still empty after any refill (including failed ones), ``failed`` those
    whose request failed with a retryable error.
    """

    requested: int
    usable: int
    empty: int
    truncated: int
    refilled: int
    failed: int = 0


class CritiqueReady(OptimizerEvent):
    """Phase 2 ended; ``truncated`` when the critique hit its token limit, ``failed`` when its request failed."""

    truncated: bool
    empty: bool
    failed: bool = False


class SynthesisReady(OptimizerEvent):
    """Phase 3 ended; ``source`` says whether the answer is the synthesis or a candidate fallback."""

    source: Literal["synthesis", "candidate"]
    truncated: bool
