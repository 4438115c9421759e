"""The shared workspace of one run: every solution ever written, which are in play, and their ranking."""

from __future__ import annotations as _annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from optillm_core.toolkit import plurality_vote

from ._types import MarsSolution, SelectionMethod, Strategy

__all__ = ("Workspace", "majority_answer", "rank")


def rank(solutions: Sequence[MarsSolution]) -> list[MarsSolution]:
    """Best first: verified, then more passes, higher score, more agreement, an answer, and newer."""
    vote = plurality_vote(s.answer_key for s in solutions)

    def key(item: tuple[int, MarsSolution]) -> tuple[bool, int, float, int, bool, int]:
        order, s = item
        answer = s.answer_key
        return (
            s.is_verified,
            s.consecutive_passes,
            s.verification_score,
            vote.support(answer),
            answer is not None,
            order,
        )

    return [s for _, s in sorted(enumerate(solutions), key=key, reverse=True)]


def majority_answer(solutions: Sequence[MarsSolution], minimum: int = 2) -> MarsSolution | None:
    """The best-ranked solution of the answer most solutions give, if at least ``minimum`` give it.

    The answer is the toolkit's :func:`~optillm_core.toolkit.plurality_vote` over the solutions'
    answer keys: a tie between answers goes by its fixed tie order (a digest of each answer), which
    depends neither on the solutions' order nor on their ranking. Among the solutions giving the
    winning answer, the best-ranked one is returned.
    """
    vote = plurality_vote(s.answer_key for s in solutions)
    if vote.winner is None or vote.winner_votes < minimum:
        return None
    return next(s for s in rank(solutions) if s.answer_key == vote.winner)


class Workspace:
    """Every solution of a run by id (latest revision), the ids in play, and the shared strategies."""

    def __init__(self) -> None:
        self._solutions: dict[str, MarsSolution] = {}
        self._active: list[str] = []
        self.strategies: list[Strategy] = []
        self._counters: Counter[str] = Counter()

    def snapshot(self) -> Workspace:
        """A copy that later changes to this workspace leave as it is (solutions are immutable)."""
        copy = Workspace()
        copy._solutions = dict(self._solutions)
        copy._active = list(self._active)
        copy.strategies = list(self.strategies)
        copy._counters = Counter(self._counters)
        return copy

    def next_number(self, prefix: str) -> int:
        """0, 1, 2 … per prefix, for ids such as ``aggregated-3``."""
        number = self._counters[prefix]
        self._counters[prefix] += 1
        return number

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{self.next_number(prefix)}"

    def add(self, solution: MarsSolution) -> MarsSolution:
        self._solutions[solution.id] = solution
        return solution

    def update(self, solution: MarsSolution) -> MarsSolution:
        """Store the latest state of a solution already in the workspace."""
        if solution.id not in self._solutions:
            raise KeyError(solution.id)
        self._solutions[solution.id] = solution
        return solution

    def get(self, solution_id: str) -> MarsSolution:
        return self._solutions[solution_id]

    def all(self) -> list[MarsSolution]:
        return list(self._solutions.values())

    def set_active(self, solutions: Iterable[MarsSolution]) -> None:
        self._active = [s.id for s in solutions]

    def active(self) -> list[MarsSolution]:
        return [self._solutions[i] for i in self._active]

    def verified(self) -> list[MarsSolution]:
        return [s for s in self.active() if s.is_verified]

    def unverified(self) -> list[MarsSolution]:
        return [s for s in self.active() if not s.is_verified]

    def best_verified(self) -> MarsSolution | None:
        """Among verified solutions, the best of the answer most of them agree on."""
        verified = self.verified()
        if not verified:
            return None
        return majority_answer(verified, minimum=1) or rank(verified)[0]

    def choice_without_call(self) -> tuple[MarsSolution, SelectionMethod] | None:
        """The answer synthesis would give if it could make no more calls: the best-so-far."""
        best = self.best_verified()
        if best is not None:
            return best, SelectionMethod.BEST_VERIFIED
        active = self.active()
        voted = majority_answer(active)
        if voted is not None:
            return voted, SelectionMethod.MAJORITY_VOTING
        if active:
            return rank(active)[0], SelectionMethod.HIGHEST_SCORE
        return None
