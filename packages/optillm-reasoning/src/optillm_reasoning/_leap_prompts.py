"""LEAP's prompts, in our words with upstream's structure: the material first, the instruction last."""

from __future__ import annotations as _annotations

from collections.abc import Sequence

__all__ = (
    "answer_note",
    "answer_prompt",
    "extraction_prompt",
    "high_level_prompt",
    "low_level_prompt",
    "mistake_prompt",
)


def extraction_prompt(query: str) -> str:
    """Asks whether the query holds worked examples, and for them as a JSON array in ``<output>``."""
    return (
        "Here is a query as someone wrote it:\n\n"
        f"<query>\n{query.strip()}\n</query>\n\n"
        "Look for worked examples in the query above (few-shot examples: sample questions shown together "
        "with their answers), not the question the query finally asks. Write each example as a JSON object "
        'with a "question" and an "answer" field, all of them in one JSON array inside <output></output> '
        'tags with nothing else inside the tags, for instance <output>[{"question": "How many legs has a '
        'spider?", "answer": "8"}]</output>; when the query holds no worked examples, reply <output>[]</output>.'
    )


def mistake_prompt(question: str) -> str:
    """Asks for a step-by-step answer to an example with a deliberate, plausible mistake in it."""
    return (
        f"Question: {question.strip()}\n\n"
        "Answer the question above step by step, but make one deliberate mistake along the way, in the "
        "reasoning or in a calculation, of the kind that is easy to make and easy to miss. Show the steps, "
        "then give the answer they lead to inside <output></output> tags."
    )


def low_level_prompt(question: str, reasoning: str, answer: str, correct: str) -> str:
    """Asks what went wrong in one mistaken attempt and for the principles that would have avoided it."""
    return (
        f"Question: {question.strip()}\n\n"
        f"<attempt>\n{reasoning.strip()}\n</attempt>\n\n"
        f"The attempt's answer: {answer.strip() or '(none given)'}\n"
        f"The correct answer: {correct.strip()}\n\n"
        "Compare the attempt with the correct answer and work out where and why its reasoning went wrong: the "
        "misunderstanding, slip or false step behind the wrong answer. Then identify the general principles, the "
        "approach that would avoid this kind of error in future answers to other questions too, not only this "
        "one. Write your analysis first, then only the principles inside <output></output> tags."
    )


def high_level_prompt(low_level: Sequence[str]) -> str:
    """Asks for at most 8 unique, general principles distilled from the low-level ones."""
    listed = "\n\n".join(f"<insights>\n{text.strip()}\n</insights>" for text in low_level)
    return (
        "Below are insights drawn from mistakes made while answering questions.\n\n"
        f"{listed}\n\n"
        "Summarize these insights into the general approach for future answers: a numbered list of at most 8 "
        "principles, each clear, concise and taken from the insights, with no two saying the same thing and the "
        "specific details that matter left in. Put only the numbered list inside <output></output> tags."
    )


def answer_note(principles: str) -> str:
    """The principles as a note for the final answer (after the caller's system prompt, when tools are offered)."""
    return f"Principles learned from mistakes on similar questions; keep them in mind when you answer:\n{principles}"


def answer_prompt(query: str, principles: str) -> str:
    """The final question: the principles, then the query itself (so that its last paragraph is the question)."""
    return f"{answer_note(principles)}\n\nAnswer the query below, keeping these principles in mind.\n\n{query.strip()}"
