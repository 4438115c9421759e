"""The critique and synthesis prompts (the candidates answer the caller's query as it is)."""

from __future__ import annotations as _annotations

from collections.abc import Sequence

__all__ = ("critique_prompt", "synthesis_prompt")


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
