"""The data MARS works on: solutions, verdicts, strategies and how the final answer was chosen."""

from __future__ import annotations as _annotations

from enum import StrEnum
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, computed_field

from optillm_core import ToolCall
from optillm_core.toolkit import answer_key, extract_answer

__all__ = (
    "GenerationPhase",
    "MarsSolution",
    "SelectionMethod",
    "Strategy",
    "Verdict",
    "VerificationResult",
)


class GenerationPhase(StrEnum):
    """Which phase wrote a solution's current text."""

    INITIAL = "initial"
    AGGREGATED = "aggregated"
    STRATEGY_ENHANCED = "strategy_enhanced"
    IMPROVED = "improved"
    SYNTHESIZED = "synthesized"


class Verdict(StrEnum):
    """A verifier's judgement. Only ``CORRECT`` counts as a pass."""

    CORRECT = "correct"
    INCORRECT = "incorrect"
    INCOMPLETE = "incomplete"
    UNCLEAR = "unclear"


class SelectionMethod(StrEnum):
    """How the final answer was chosen, in the order synthesis tries them."""

    BEST_VERIFIED = "best_verified"
    MAJORITY_VOTING = "majority_voting"
    SYNTHESIZED = "synthesized"
    HIGHEST_SCORE = "highest_score"


class VerificationResult(BaseModel):
    """One verifier's review of one revision of a solution.

    ``error`` is set when the verification call itself failed; such a result never passes.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    solution_id: str
    revision: int
    verifier_agent_id: int
    round: int
    verdict: Verdict
    score: float = Field(ge=0.0, le=1.0)
    issues: tuple[str, ...] = ()
    suggestions: tuple[str, ...] = ()
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.CORRECT and self.error is None

    @property
    def actionable(self) -> bool:
        """A review an author can act on: it failed the solution and says something (not a failed call or noise)."""
        if self.error is not None or self.passed:
            return False
        return self.verdict is not Verdict.UNCLEAR or bool(self.issues or self.suggestions)

    def feedback(self) -> str:
        """The review as text an author can act on."""
        lines = [f"Verdict: {self.verdict.value} (score {self.score:.2f})"]
        lines += [f"- issue: {issue}" for issue in self.issues]
        lines += [f"- suggestion: {suggestion}" for suggestion in self.suggestions]
        return "\n".join(lines)


class Strategy(BaseModel):
    """The approach behind one agent's solution, as the strategy network shares it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    agent_id: int
    source_solution_id: str
    steps: tuple[str, ...]

    def describe(self) -> str:
        return "\n".join(f"- {step}" for step in self.steps)


class MarsSolution(BaseModel):
    """One candidate solution and everything that happened to it.

    ``text`` is the reply outside the model's thinking, the only part any other call sees;
    ``thinking`` is the thinking behind it, kept for the caller when this solution becomes the
    answer. ``temperature`` is the one the call was sent with (``None`` when the model takes none).
    ``tool_calls`` are the calls the synthesis made to the caller's tools (its text may then be empty).
    ``truncated``: the text was cut off at the call's token limit.
    An improvement keeps the ``id`` and raises ``revision``: the text is replaced, the
    verification history is kept (each result names the revision it judged), and the pass count
    starts again from zero.
    """

    model_config = ConfigDict(frozen=True, defer_build=True)

    id: str
    agent_id: int
    phase: GenerationPhase
    text: str
    temperature: float | None
    thinking: str = ""
    revision: int = 0
    parent_ids: tuple[str, ...] = ()
    strategy_ids: tuple[str, ...] = ()
    output_tokens: int = 0
    verifications: tuple[VerificationResult, ...] = ()
    consecutive_passes: int = 0
    is_verified: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    truncated: bool = False

    @computed_field  # type: ignore[prop-decorator]
    @property
    def answer(self) -> str | None:
        """The final answer extracted from the text (``\\boxed{}`` or an answer marker), if any."""
        return _answer_in(self.text)

    @property
    def answer_key(self) -> str | None:
        """The answer as the toolkit's :func:`~optillm_core.toolkit.answer_key` reads it, to compare and vote with.

        ``None`` when no answer can be read. Equal keys, equal answers: "19", "19.0" and
        ``\\boxed{19}`` agree, as they do for every strategy that votes.
        """
        return _answer_key(self.text)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verification_score(self) -> float:
        """Mean verifier score of the current revision (0 before any review)."""
        scores = [v.score for v in self.verifications if v.revision == self.revision]
        return sum(scores) / len(scores) if scores else 0.0

    @property
    def visible(self) -> str:
        """The text as other calls are shown it."""
        return self.text.strip()

    def current_verifications(self) -> tuple[VerificationResult, ...]:
        return tuple(v for v in self.verifications if v.revision == self.revision)

    def last_round(self) -> tuple[VerificationResult, ...]:
        """The verdicts of the most recent verification round of this revision."""
        current = self.current_verifications()
        if not current:
            return ()
        last = max(v.round for v in current)
        return tuple(v for v in current if v.round == last)

    def with_round(self, results: tuple[VerificationResult, ...], passes_required: int) -> MarsSolution:
        """This solution after a verification round: every verdict must pass for the count to grow."""
        passes = self.consecutive_passes + len(results) if results and all(r.passed for r in results) else 0
        return self.model_copy(
            update={
                "verifications": (*self.verifications, *results),
                "consecutive_passes": passes,
                "is_verified": passes >= passes_required,
            }
        )

    def rewritten(
        self, text: str, temperature: float | None, output_tokens: int, thinking: str = "", *, truncated: bool = False
    ) -> MarsSolution:
        """The next revision of this solution with new text; its pass count starts again."""
        return self.model_copy(
            update={
                "text": text,
                "thinking": thinking,
                "truncated": truncated,
                "temperature": temperature,
                "revision": self.revision + 1,
                "phase": GenerationPhase.IMPROVED,
                "output_tokens": output_tokens,
                "consecutive_passes": 0,
                "is_verified": False,
            }
        )


# Ranking and voting ask for the same solutions' answers many times per run; the text decides them.
# Bounded: a run has a few dozen texts in play, and concurrent runs share the cache.
@lru_cache(maxsize=256)
def _answer_in(text: str) -> str | None:
    return extract_answer(text)


@lru_cache(maxsize=256)
def _answer_key(text: str) -> str | None:
    return answer_key(text)
