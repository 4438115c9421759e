"""The prompts of a Mixture of Agents run: the candidates' approaches, the critique and the synthesis."""

from __future__ import annotations as _annotations

from collections.abc import Sequence
from itertools import combinations

__all__ = ("APPROACHES", "candidate_query", "critique_prompt", "synthesis_prompt")

APPROACHES = (
    "Work it out step by step from first principles, then state the answer.",
    "Before answering, consider where a quick answer would go wrong, and avoid that mistake.",
    "Answer as a specialist in the field would: precisely, checking every claim you make.",
    "Start from a concrete example or a special case, then generalise to the full answer.",
    "Work backwards from what a correct answer has to satisfy.",
    "Weigh two different ways of answering, pick the sounder one, and give the answer it leads to.",
    "Keep it short: the answer first, then only the reasoning needed to trust it.",
    "Write for a sceptical colleague: justify each step so that it can be checked.",
)
"""Ways of answering that set the candidates apart when sampling cannot (a model that refuses temperature)."""

# Candidate 1 answers the query as written; the others get one approach, then a pair of them: 1 + 8 + 28
# distinct prompts, more than the 32 candidates a config allows.
_VARIANTS: tuple[tuple[str, ...], ...] = (
    (),
    *((approach,) for approach in APPROACHES),
    *combinations(APPROACHES, 2),
)


def candidate_query(query: str, index: int) -> str:
    """The query as candidate ``index`` (0-based) is asked it when candidates must differ by their prompt."""
    approach = _VARIANTS[index % len(_VARIANTS)]
    if not approach:
        return query
    return f"{query}\n\n---\nHow to approach this response: {' '.join(approach)}"


def _candidate_block(candidates: Sequence[str]) -> str:
    return "\n\n".join(
        f'<candidate number="{i}">\n{text.strip()}\n</candidate>' for i, text in enumerate(candidates, start=1)
    )


def critique_prompt(query: str, candidates: Sequence[str]) -> str:
    count = len(candidates)
    noun = "response" if count == 1 else f"{count} responses"
    return (
        f"A question was answered independently with the candidate {noun} below.\n\n"
        f"<question>\n{query}\n</question>\n\n"
        f"{_candidate_block(candidates)}\n\n"
        "Review every candidate in turn, by its number. For each, state its strengths and its weaknesses: "
        "mistakes of fact or reasoning, missing parts, and anything unclear. Be specific and brief; do not "
        "write a new answer."
    )


def synthesis_prompt(query: str, candidates: Sequence[str], critique: str, *, critique_cut: bool) -> str:
    if not critique.strip():
        review = "(no review is available; judge the candidates yourself)"
    elif critique_cut:
        review = f"{critique.strip()}\n(the review was cut off at its length limit)"
    else:
        review = critique.strip()
    return (
        f"<question>\n{query}\n</question>\n\n"
        f"{_candidate_block(candidates)}\n\n"
        f"<review>\n{review}\n</review>\n\n"
        "Above are candidate responses to the question and a review of their strengths and weaknesses. "
        "Write the single best response to the question: keep what the candidates got right, correct what "
        "the review found wrong, and fill any gaps. Answer the question directly, as if it had been asked "
        "of you, without mentioning the candidates or the review."
    )
