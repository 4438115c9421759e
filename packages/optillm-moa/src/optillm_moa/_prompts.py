"""The prompts of a Mixture of Agents run: the critique and the synthesis (the candidates are asked the question)."""

from __future__ import annotations as _annotations

from collections.abc import Sequence

__all__ = ("critique_prompt", "synthesis_instructions", "synthesis_prompt")


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


def _review(critique: str, critique_cut: bool) -> str:
    if not critique.strip():
        return "(no review is available; judge the candidates yourself)"
    if critique_cut:
        return f"{critique.strip()}\n(the review was cut off at its length limit)"
    return critique.strip()


def synthesis_prompt(query: str, candidates: Sequence[str], critique: str, *, critique_cut: bool) -> str:
    """The synthesis as one question, for a run without the caller's tools."""
    return (
        f"<question>\n{query}\n</question>\n\n"
        f"{_candidate_block(candidates)}\n\n"
        f"<review>\n{_review(critique, critique_cut)}\n</review>\n\n"
        "Above are candidate responses to the question and a review of their strengths and weaknesses. "
        "Write the single best response to the question: keep what the candidates got right, correct what "
        "the review found wrong, and fill any gaps. Answer the question directly, as if it had been asked "
        "of you, without mentioning the candidates or the review."
    )


def synthesis_instructions(
    system: str | None, candidates: Sequence[str], critique: str, *, critique_cut: bool, tool_results: bool
) -> str:
    """The synthesis's system prompt when it answers the caller's conversation as it is, with the tools.

    The caller's ``system`` prompt comes first, then the candidates, the review and the instruction,
    so that the conversation itself ends as the caller sent it: with the user's latest message, or
    with the results of the tools called for it (``tool_results``), which the synthesis is told to
    use rather than ask for again.
    """
    tools = "You may answer in text or call one of the available tools."
    if tool_results:
        tools += (
            " The tool results in the conversation are already in: use them, and call a tool only for "
            "information they do not hold, never again for what they already say."
        )
    own = (
        "You write the assistant's reply to the conversation that follows: to the user's latest message, "
        "with any tool results that came after it. Candidate replies to it were drafted independently and "
        "then reviewed:\n\n"
        f"{_candidate_block(candidates)}\n\n"
        f"<review>\n{_review(critique, critique_cut)}\n</review>\n\n"
        "Write the single best response to the user's latest message: keep what the candidates got right, "
        f"correct what the review found wrong, and fill any gaps. {tools} Reply to the user directly, "
        "without mentioning the candidates or the review."
    )
    return f"{system}\n\n---\n{own}" if system else own
