"""Instructions MCTS appends to a conversation to predict the user's next turn and to rate a dialogue."""

from __future__ import annotations as _annotations

__all__ = ("EVALUATE", "PREDICT_USER")

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
