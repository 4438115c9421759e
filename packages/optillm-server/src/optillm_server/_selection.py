"""Which strategies a request asks for: a slug prefix in the model name or ``optillm_approach``.

``moa-gpt-4o-mini`` runs ``moa`` on ``gpt-4o-mini``; ``moa&mars-gpt-4o-mini`` pipes moa's answer
into mars; ``moa|mars-gpt-4o-mini`` runs both concurrently, one choice each. Only installed
strategy names count as a prefix, so ``gpt-4o-mini`` or ``llama-3-8b`` pass through unchanged.
"""

from __future__ import annotations as _annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from ._errors import ApiError

__all__ = ("PASS_THROUGH_NAMES", "Selection", "select")

Mode = Literal["single", "pipeline", "parallel"]

# optillm_approach values that ask for no strategy at all ("auto" is upstream optillm's default).
PASS_THROUGH_NAMES = frozenset({"none", "auto"})

_OPERATORS: dict[str, Mode] = {"&": "pipeline", "|": "parallel"}


@dataclass(frozen=True)
class Selection:
    """The strategies to run (none: pass-through), how they combine, and the model they run on."""

    strategies: tuple[str, ...]
    mode: Mode
    model: str

    @property
    def pass_through(self) -> bool:
        return not self.strategies


def select(model: str, approach: str | None, installed: Collection[str], *, default_model: str) -> Selection:
    """Parse the request's strategy choice; an unknown strategy or a malformed combination is a 400."""
    prefixed = _from_model(model, installed, default_model)
    if approach is None or not approach.strip():
        return prefixed or Selection(strategies=(), mode="single", model=model)
    if prefixed is not None:
        raise ApiError(
            400,
            "the strategy is chosen twice: use a strategy prefix in 'model' or 'optillm_approach', not both",
            param="optillm_approach",
        )
    if approach.strip() in PASS_THROUGH_NAMES:
        return Selection(strategies=(), mode="single", model=model)
    strategies, mode = _combination(approach.strip(), installed, param="optillm_approach")
    return Selection(strategies=strategies, mode=mode, model=model)


def _from_model(model: str, installed: Collection[str], default_model: str) -> Selection | None:
    head, _, rest = model.partition("-")
    rest = rest or default_model
    if any(op in head for op in _OPERATORS):
        strategies, mode = _combination(head, installed, param="model")
        return Selection(strategies=strategies, mode=mode, model=rest)
    if head in installed:
        return Selection(strategies=(head,), mode="single", model=rest)
    return None


def _combination(text: str, installed: Collection[str], *, param: str) -> tuple[tuple[str, ...], Mode]:
    used = [op for op in _OPERATORS if op in text]
    if len(used) > 1:
        raise ApiError(400, f"'{text}' mixes '&' and '|': use one of them per request", param=param)
    mode: Mode = _OPERATORS[used[0]] if used else "single"
    names = tuple(part.strip() for part in text.split(used[0])) if used else (text,)
    for name in names:
        if name not in installed:
            known = ", ".join(sorted(installed)) or "none"
            raise ApiError(
                400,
                f"unknown strategy '{name}' (installed: {known})",
                param=param,
                code="unknown_strategy",
            )
    return names, mode
