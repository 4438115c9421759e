"""The prompts of the single-call techniques, in this project's words with upstream's structure."""

from __future__ import annotations as _annotations

__all__ = ("REREAD_LEAD", "cot_reflection_instructions", "reread_note", "reread_query")

_COT_REFLECTION = """\
Answer the user's request by reasoning first, then checking that reasoning, and only then answering.
Work through it in these steps:

1. Inside <thinking> tags, reason about the problem step by step.
2. Inside <reflection> tags (within the thinking), look back over that reasoning: find mistakes, \
gaps or a better route.
3. Still inside the thinking, correct whatever the reflection found.
4. Inside <output> tags, give the final answer, complete and concise.

The thinking and the reflection are your private working: the user never sees them, so do not rely \
on them to carry any part of the answer. Only the text inside <output> reaches the user, so it must \
stand on its own.

Write your reply in exactly this shape:
<thinking>
(your step-by-step reasoning)
<reflection>
(your check of that reasoning: errors, omissions, improvements)
</reflection>
(the corrections the reflection calls for)
</thinking>
<output>
(the final answer, the only part the user reads)
</output>"""

_WITH_TOOLS = """\
You may call the tools offered to you. When the request needs one (information you do not have, \
an action to take), call it after your thinking instead of writing the <output> section; once the \
tool results you need are in the conversation, answer in the <output> section."""


def cot_reflection_instructions(system: str | None, *, tools: bool = False) -> str:
    """The one call's system prompt: the caller's system prompt (if any), then the format to answer in."""
    parts = [part for part in (system, _COT_REFLECTION, _WITH_TOOLS if tools else None) if part]
    return "\n\n".join(parts)


REREAD_LEAD = "Read the question again:"
"""What introduces the question's second reading (upstream's wording, from the RE2 paper)."""


def reread_query(query: str, question: str | None = None) -> str:
    """The query, then the request to read it again followed by the question once more.

    ``question`` is what is read again when the query holds more than the user's message (the tool
    results since it, flattened into the query): those are not repeated.
    """
    return f"{query}\n\n{REREAD_LEAD} {question if question is not None else query}"


def reread_note(question: str) -> str:
    """For calls with the caller's tools: the second reading, after the system prompt.

    The conversation's turns stay as the caller sent them (its last turn the user's message or a
    tool result), so the re-reading cannot be appended to the last user message; the note holds it.
    """
    return (
        "Before you answer, read the user's latest message again, carefully:\n\n"
        f"{question}\n\n"
        "Answer the conversation's last turn with that message in mind."
    )
