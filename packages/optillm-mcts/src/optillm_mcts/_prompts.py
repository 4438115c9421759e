"""Instructions MCTS sends: predicting the user's next message, and rating a dialogue."""

from __future__ import annotations as _annotations

__all__ = ("EVALUATE", "PREDICT_USER", "RATING_SCALE")

RATING_SCALE = 10
"""The evaluation asks for a rating from 0 to this; :func:`~optillm_core.toolkit.parse_rating` reads it on it."""

PREDICT_USER = (
    "Step out of the assistant role for a moment. Given the conversation so far, write the message the user "
    "is most likely to send next, in the user's own words, and nothing else. If the user's need has been met "
    "and they would end the conversation, write a short goodbye."
)

EVALUATE = (
    "Step out of the assistant role and judge the conversation above. How good are the assistant's replies: "
    "correct, relevant to what was asked, coherent and helpful? An assistant turn written as "
    "`[calls the tool ...]` asks to run that tool; judge whether that call, with those arguments, is the right "
    "move at that point.\n\n"
    f"Rate the assistant's replies on a scale from 0 (poor) to {RATING_SCALE} (excellent): give your reasons "
    f"in a sentence or two, then end with one line of the form `Rating: N/{RATING_SCALE}`."
)
