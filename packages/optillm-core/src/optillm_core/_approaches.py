"""The approaches that set samples apart when sampling cannot, and the one way a prompt is varied with them."""

from __future__ import annotations as _annotations

from ._messages import Message, Prompt

__all__ = ("APPROACHES", "approach", "varied_prompt", "varied_query")


APPROACHES: tuple[str | None, ...] = (
    None,
    "Work through this step by step from first principles, then state your answer.",
    "First restate the problem in your own words and list what is given, then solve it.",
    "Start from what is asked and work backwards to what is given, then state your answer.",
    "Break the problem into smaller parts, settle each one, then combine them into your answer.",
    "Solve this with a different method from the most obvious one, and state your answer.",
    "Estimate roughly what the answer should be, then work it out exactly and check it against the estimate.",
    "Answer as a careful expert who double-checks every step before stating the answer.",
)
"""How sample ``i`` is asked to work when sampling cannot set it apart (cycled; the first is the question as is)."""


def approach(index: int) -> str | None:
    """The approach of sample ``index``; past the last one they repeat, numbered so that each prompt differs."""
    chosen = APPROACHES[index % len(APPROACHES)]
    if index < len(APPROACHES):
        return chosen
    attempt = f"(Attempt {index + 1}.)"
    return f"{attempt} {chosen}" if chosen else attempt


def varied_query(query: str, index: int) -> str:
    """``query`` for sample ``index``: its approach, a blank line, then the query (sample 0: the query as it is).

    The approach comes first, so that the question keeps the last word.
    """
    chosen = approach(index)
    return f"{chosen}\n\n{query}" if chosen else query


def varied_prompt(prompt: Prompt, index: int) -> Prompt:
    """``prompt`` for sample ``index``: its last user message varied as :func:`varied_query` varies a query."""
    chosen = approach(index)
    if chosen is None:
        return prompt
    messages = list(prompt.messages)
    last_user = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last_user is None:
        return prompt
    messages[last_user] = Message.user(varied_query(messages[last_user].content, index))
    return prompt.model_copy(update={"messages": tuple(messages)})
