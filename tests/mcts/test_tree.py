"""Pure tree logic: UCB selection, backpropagation, where a simulation may start, the final choice."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from optillm_core import Message
from optillm_mcts import DialogueState
from optillm_mcts._tree import (
    Node,
    backpropagate,
    best_child,
    mark_pending,
    next_start,
    select_child,
    ucb_score,
)

STATE = DialogueState(system=None, history=(), query="q")

child_stats = st.tuples(st.integers(min_value=0, max_value=50), st.floats(min_value=0.0, max_value=1.0))


def node_with_children(stats: list[tuple[int, float]]) -> Node:
    parent = Node(STATE)
    for visits, mean in stats:
        parent.children.append(Node(STATE, parent=parent, visits=visits, value_sum=visits * mean))
    parent.visits = sum(v for v, _ in stats)
    return parent


@given(st.lists(child_stats, min_size=1, max_size=8), st.floats(min_value=0.0, max_value=10.0))
def test_an_unvisited_child_is_selected_before_any_visited_one(stats: list[tuple[int, float]], w: float) -> None:
    parent = node_with_children(stats)
    chosen = select_child(parent, w)
    unvisited = [c for c in parent.children if c.visits == 0]
    if unvisited:
        assert chosen is unvisited[0]
    else:
        best = max(ucb_score(c, parent.visits, w) for c in parent.children)
        assert ucb_score(chosen, parent.visits, w) == best


@given(st.lists(child_stats.filter(lambda s: s[0] > 0), min_size=1, max_size=8))
def test_without_exploration_the_best_mean_is_selected(stats: list[tuple[int, float]]) -> None:
    parent = node_with_children(stats)
    chosen = select_child(parent, 0.0)
    assert chosen.mean_value == max(c.mean_value for c in parent.children)


@given(st.integers(min_value=1, max_value=100), st.integers(min_value=1, max_value=100))
def test_exploration_bonus_shrinks_with_visits(parent_visits: int, visits: int) -> None:
    parent = Node(STATE, visits=parent_visits + visits)
    few = Node(STATE, parent=parent, visits=visits, value_sum=0.5 * visits)
    more = Node(STATE, parent=parent, visits=visits + 1, value_sum=0.5 * (visits + 1))
    assert ucb_score(few, parent.visits, 0.2) > ucb_score(more, parent.visits, 0.2)
    assert math.isinf(ucb_score(Node(STATE), parent.visits, 0.2))


@st.composite
def trees_and_rollouts(draw: st.DrawFn) -> tuple[Node, list[Node], list[tuple[int, float]]]:
    root = Node(STATE)
    nodes = [root]
    for _ in range(draw(st.integers(min_value=0, max_value=12))):
        parent = nodes[draw(st.integers(min_value=0, max_value=len(nodes) - 1))]
        child = Node(STATE, parent=parent)
        parent.children.append(child)
        nodes.append(child)
    rollouts = draw(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=len(nodes) - 1), st.floats(min_value=0.0, max_value=1.0)),
            max_size=30,
        )
    )
    return root, nodes, rollouts


@given(trees_and_rollouts())
def test_backpropagation_keeps_visits_consistent_and_values_in_range(
    case: tuple[Node, list[Node], list[tuple[int, float]]],
) -> None:
    root, nodes, rollouts = case
    started_at = {id(n): 0 for n in nodes}
    for index, value in rollouts:
        backpropagate(nodes[index], value)
        started_at[id(nodes[index])] += 1
    assert root.visits == len(rollouts)
    for node in nodes:
        assert node.visits == started_at[id(node)] + sum(c.visits for c in node.children)
        assert 0.0 <= node.mean_value <= 1.0 + 1e-9
        assert node.value_sum <= node.visits + 1e-9


@given(trees_and_rollouts())
def test_pending_marks_cancel_out(case: tuple[Node, list[Node], list[tuple[int, float]]]) -> None:
    _, nodes, rollouts = case
    for index, _ in rollouts:
        mark_pending(nodes[index], 1)
    assert nodes[0].pending == len(rollouts)
    for index, _ in rollouts:
        mark_pending(nodes[index], -1)
    assert all(n.pending == 0 for n in nodes)


def test_next_start_waits_only_when_the_choice_depends_on_a_simulation_in_flight() -> None:
    root = Node(STATE)
    assert next_start(root, 0.2) is root
    root.expanding = True
    assert next_start(root, 0.2) is None
    root.expanding = False
    a, b = Node(STATE, parent=root), Node(STATE, parent=root)
    root.children = [a, b]
    mark_pending(a, 1)
    assert next_start(root, 0.2) is b  # an untried sibling does not depend on a's value
    mark_pending(b, 1)
    assert next_start(root, 0.2) is None  # UCB over a and b would need their values
    mark_pending(a, -1)
    backpropagate(a, 0.9)
    assert next_start(root, 0.2) is None  # b is still in flight
    mark_pending(b, -1)
    backpropagate(b, 0.1)
    assert next_start(root, 0.2) is a  # a visited leaf: the next simulation expands it


@given(st.lists(child_stats, min_size=1, max_size=8))
def test_best_child_has_the_best_mean_among_visited_and_more_visits_on_ties(stats: list[tuple[int, float]]) -> None:
    root = node_with_children(stats)
    chosen = best_child(root)
    visited = [c for c in root.children if c.visits]
    if not visited:
        assert chosen is root.children[0]
        return
    assert chosen.visits > 0
    assert all((chosen.mean_value, chosen.visits) >= (c.mean_value, c.visits) for c in visited)


def test_best_child_ignores_list_order_when_values_differ() -> None:
    root = node_with_children([(1, 0.2), (1, 0.9), (0, 0.0)])
    assert best_child(root) is root.children[1]
    root = node_with_children([(1, 0.7), (2, 0.7)])
    assert best_child(root) is root.children[1]


def test_dialogue_state_turns_and_terminal_states() -> None:
    state = DialogueState(system="s", history=(), query="hi")
    after = state.after("hello!", "what's 2+2?")
    assert after.history == (Message.user("hi"), Message.assistant("hello!"))
    assert after.prompt().effective_messages() == (
        Message.system("s"),
        Message.user("hi"),
        Message.assistant("hello!"),
        Message.user("what's 2+2?"),
    )
    assert not after.is_terminal(10)
    assert state.after("bye", "Thanks, GOODBYE!").is_terminal(10)
    assert state.after("bye", "   ").is_terminal(10)
    assert after.is_terminal(1)
