"""Instructions MCTS sends: ways of replying that set sibling replies apart, predicting the user, rating a dialogue."""

from __future__ import annotations as _annotations

from itertools import combinations

__all__ = ("EVALUATE", "PREDICT_USER", "REPLY_STYLES", "varied_query")

PREDICT_USER = (
    "Step out of the assistant role for a moment. Given the conversation so far, write the message the user "
    "is most likely to send next, in the user's own words, and nothing else. If the user's need has been met "
    "and they would end the conversation, write a short goodbye."
)

EVALUATE = (
    "Step out of the assistant role and judge the conversation above. How good are the assistant's replies: "
    "correct, relevant to what the user asked, coherent and helpful? Rate them on a scale from 0 (poor) to "
    "1 (excellent). Reply with that single number and nothing else."
)

REPLY_STYLES = (
    "Answer directly and briefly.",
    "Explain the reasoning behind your answer in a few sentences.",
    "Lead with a concrete example.",
    "Point out the pitfalls the user should watch for.",
    "Give step-by-step instructions.",
    "First make sure what the user really needs, then answer that.",
    "Reply as a patient teacher would.",
    "Reply as an experienced practitioner would, with practical advice.",
)
"""Ways of replying that set sibling replies apart when sampling cannot (a model that refuses temperature)."""

# Reply 1 answers the message as written; the others get one style, then a pair of them: 1 + 8 + 28
# distinct prompts, more than the 32 replies per expansion a config allows.
_VARIANTS: tuple[tuple[str, ...], ...] = (
    (),
    *((style,) for style in REPLY_STYLES),
    *combinations(REPLY_STYLES, 2),
)


def varied_query(query: str, index: int) -> str:
    """The user's message as reply ``index`` (0-based) of an expansion gets it when replies must differ by prompt."""
    styles = _VARIANTS[index % len(_VARIANTS)]
    if not styles:
        return query
    return f"{query}\n\n---\nHow to reply: {' '.join(styles)}"
