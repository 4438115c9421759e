"""The search tree: dialogue states, nodes, UCB selection and backpropagation (no model calls here)."""

from __future__ import annotations as _annotations

import math
from dataclasses import dataclass, field

from optillm_core import Message, Prompt, ToolCall
from optillm_core.toolkit import render_reply

__all__ = (
    "DialogueState",
    "Node",
    "backpropagate",
    "best_child",
    "mark_pending",
    "next_start",
    "select_child",
    "ucb_score",
)

GOODBYE = "goodbye"


@dataclass(frozen=True)
class DialogueState:
    """A conversation waiting for the assistant: the system prompt, the turns so far and the user's message."""

    system: str | None
    history: tuple[Message, ...]
    query: str

    def prompt(self, *after: Message) -> Prompt:
        """The conversation up to the user's message, with ``after`` appended, under the system prompt."""
        return Prompt(messages=(*self.history, Message.user(self.query), *after), system=self.system)

    def with_reply(self, reply: str) -> tuple[Message, ...]:
        """The turns once the assistant has answered the user's message with ``reply``."""
        return (*self.history, Message.user(self.query), Message.assistant(reply))

    def after(self, reply: str, next_query: str) -> DialogueState:
        """The state after ``reply``, waiting on the user's ``next_query``."""
        return DialogueState(self.system, self.with_reply(reply), next_query)

    def is_terminal(self, max_history_length: int) -> bool:
        """The dialogue is over: too long, the user left (said goodbye) or has nothing more to say."""
        query = self.query.strip()
        return len(self.history) > max_history_length or not query or GOODBYE in query.lower()


@dataclass(eq=False)
class Node:
    """A dialogue state in the tree; ``reply`` is the assistant turn that led to it from its parent.

    ``reply`` is the text outside the model's thinking; ``thinking`` keeps that thinking, returned
    with the reply when it is the answer and never sent back to the model. ``tool_calls`` are the
    caller's tools a reply to the query calls (only root children have any): such a node is
    terminal, since no tool result exists to go on from, and is evaluated as it is.

    ``pending`` counts simulations in flight through this node; ``expanding`` is set while its
    children are being generated. Both let the next simulation start before earlier ones end,
    but only where its path cannot depend on them.
    """

    state: DialogueState
    parent: Node | None = None
    reply: str = ""
    thinking: str = ""
    truncated: bool = False
    tool_calls: tuple[ToolCall, ...] = ()
    children: list[Node] = field(default_factory=list)
    visits: int = 0
    value_sum: float = 0.0
    pending: int = 0
    expanding: bool = False
    expanded: bool = False

    @property
    def mean_value(self) -> float:
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def rendered(self) -> str:
        """The reply as the evaluator and the trace show it: its text, then each tool call it makes."""
        return render_reply(self.reply, self.tool_calls)

    @property
    def fresh(self) -> bool:
        """Never simulated and no simulation on its way through it."""
        return self.visits == 0 and self.pending == 0


def ucb_score(child: Node, parent_visits: int, exploration_weight: float) -> float:
    """UCB1 as upstream: mean value plus ``w·sqrt(ln(N+1)/n)``; an unvisited child scores infinity."""
    if child.visits == 0:
        return math.inf
    return child.mean_value + exploration_weight * math.sqrt(math.log(parent_visits + 1) / child.visits)


def select_child(parent: Node, exploration_weight: float) -> Node:
    """The child with the highest UCB score; the first one on ties."""
    scores = [ucb_score(c, parent.visits, exploration_weight) for c in parent.children]
    return parent.children[scores.index(max(scores))]


def next_start(root: Node, exploration_weight: float) -> Node | None:
    """Where the next simulation starts, or ``None`` while that depends on a simulation still in flight.

    Descends from the root: a node without children is the start (it gets expanded); a child never
    tried is the start (it gets rolled out); otherwise UCB picks the child to descend into. UCB needs
    the values of every child, so a child with a simulation in flight blocks the choice, as does a
    node whose children are still being generated.
    """
    node = root
    while True:
        if node.expanding:
            return None
        if not node.children:
            return node
        fresh = next((c for c in node.children if c.fresh), None)
        if fresh is not None:
            return fresh
        if any(c.pending for c in node.children):
            return None
        node = select_child(node, exploration_weight)


def mark_pending(node: Node, delta: int) -> None:
    """Count a simulation in flight (``+1``) or finished (``-1``) on ``node`` and its ancestors."""
    current: Node | None = node
    while current is not None:
        current.pending += delta
        current = current.parent


def backpropagate(node: Node, value: float) -> None:
    """Add one visit and ``value`` to ``node`` and every ancestor."""
    current: Node | None = node
    while current is not None:
        current.visits += 1
        current.value_sum += value
        current = current.parent


def best_child(root: Node) -> Node:
    """The root child to answer with: best mean value among visited children, more visits on ties.

    Upstream picked the most visited child, which at two simulations is always a one-visit tie
    settled by list order; here the evaluations decide. Before any visit, the first child.
    """
    visited = [c for c in root.children if c.visits]
    if not visited:
        return root.children[0]
    return max(visited, key=lambda c: (c.mean_value, c.visits))
