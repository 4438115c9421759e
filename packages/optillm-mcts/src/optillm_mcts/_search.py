"""The search loop: select, expand, roll out, evaluate, back up — overlapping independent simulations."""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from optillm_core import Message, NoSolutions, RunContext, gather, task_group

from ._config import MctsConfig
from ._evaluate import Score, evaluate
from ._events import NodeExpanded, SimulationFinished
from ._prompts import PREDICT_USER
from ._tree import DialogueState, Node, backpropagate, best_child, mark_pending, next_start

__all__ = ("Search", "SimulationRecord")


@dataclass(frozen=True)
class SimulationRecord:
    simulation: int
    root_child: int
    depth: int
    score: Score


class Search:
    """One MCTS over dialogue states, rooted at the caller's query.

    Simulation ``k+1`` starts as soon as its starting node no longer depends on simulations still
    in flight (see :func:`next_start`): with untried root children left, it starts right after the
    root's expansion, so rollouts and evaluations of sibling children run concurrently. When UCB
    would need a pending value it waits, so every choice is the one a sequential search would make.
    """

    def __init__(self, ctx: RunContext[MctsConfig]) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.root = Node(DialogueState(ctx.system_prompt, (), ctx.query))
        self.records: list[SimulationRecord] = []
        self._changed = anyio.Event()

    async def run(self) -> Node:
        """Run every simulation and return the root child to answer with."""
        async with task_group() as tg:
            for simulation in range(1, self.config.num_simulations + 1):
                start = await self._next_start()
                self.ctx.phase(f"simulation {simulation}")
                start.expanding = self._needs_expansion(start)
                mark_pending(start, 1)
                tg.start_soon(self._simulate, simulation, start)
        return best_child(self.root)

    async def _next_start(self) -> Node:
        while True:
            changed = self._changed
            start = next_start(self.root, self.config.exploration_weight)
            if start is not None:
                return start
            await changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _needs_expansion(self, node: Node) -> bool:
        if node.expanded:
            return False
        if node is self.root:
            return True
        return node.visits > 0 and not node.state.is_terminal(self.config.max_history_length)

    async def _simulate(self, simulation: int, start: Node) -> None:
        leaf = start
        if start.expanding:
            leaf = await self._expand(simulation, start)
            if leaf is not start:
                leaf.pending += 1  # its ancestors already count this simulation
            self._notify()
        transcript = await self._rollout(leaf)
        score = await evaluate(self.ctx, self.root.state.system, transcript)
        mark_pending(leaf, -1)
        backpropagate(leaf, score.value)
        self._record(simulation, leaf, score)
        self._notify()

    async def _expand(self, simulation: int, node: Node) -> Node:
        """Give ``node`` its children and return the first, the one this simulation rolls out."""
        config, state = self.config, node.state
        settings = self.ctx.call_settings(
            temperature=config.generation_temperature, max_tokens=self._reply_tokens(), n=config.num_actions
        )
        completion = await self.ctx.client.complete(state.prompt(), settings)
        replies = [(t.strip(), completion.truncated(i)) for i, t in enumerate(completion.texts) if t.strip()]
        if node is self.root and replies:
            self.ctx.record_best(replies[0][0], "MCTS stopped before any evaluation; first sampled reply.")
        queries = await gather(self._predict_thunk(state, reply) for reply, _ in replies)
        node.children = [
            Node(state=state.after(reply, query), parent=node, reply=reply, truncated=cut)
            for (reply, cut), query in zip(replies, queries, strict=True)
        ]
        node.expanding, node.expanded = False, True
        self.ctx.emit(NodeExpanded(simulation=simulation, depth=_depth(node), children=len(node.children)))
        if not node.children:
            if node is self.root:
                raise NoSolutions(
                    f"mcts: the model returned no usable reply to the query ({len(completion.texts)} empty "
                    f"of {config.num_actions} requested)"
                )
            return node  # a dead end: evaluated as it stands
        return node.children[0]

    def _predict_thunk(self, state: DialogueState, reply: str) -> Callable[[], Awaitable[str]]:
        settings = self.ctx.call_settings(
            temperature=self.config.generation_temperature, max_tokens=self.config.prediction_max_tokens, n=1
        )
        prompt = state.prompt(Message.assistant(reply), Message.user(PREDICT_USER))

        async def predict() -> str:
            return (await self.ctx.client.complete(prompt, settings)).text.strip()

        return predict

    async def _rollout(self, leaf: Node) -> tuple[Message, ...]:
        """Play ``simulation_depth`` more assistant turns from ``leaf``; return the dialogue to evaluate.

        The user turn after the last reply is not predicted: the evaluation reads the dialogue up
        to the assistant's last reply, so it could not change the result.
        """
        config, state = self.config, leaf.state
        transcript = state.history
        if not leaf.children and leaf.expanded:
            return transcript  # a dead end: nothing more to say
        settings = self.ctx.call_settings(
            temperature=config.generation_temperature, max_tokens=self._reply_tokens(), n=1
        )
        for step in range(config.simulation_depth):
            if state.is_terminal(config.max_history_length):
                break
            reply = (await self.ctx.client.complete(state.prompt(), settings)).text.strip()
            if not reply:
                break
            transcript = state.with_reply(reply)
            if step == config.simulation_depth - 1:
                break
            state = state.after(reply, await self._predict_thunk(state, reply)())
        return transcript

    def _reply_tokens(self) -> int:
        caller = self.ctx.settings.max_tokens
        limit = self.config.generation_max_tokens
        return limit if caller is None else min(limit, caller)

    def _record(self, simulation: int, leaf: Node, score: Score) -> None:
        root_child = _root_child(leaf)
        self.records.append(
            SimulationRecord(simulation=simulation, root_child=root_child, depth=_depth(leaf), score=score)
        )
        children = self.root.children
        self.ctx.emit(
            SimulationFinished(
                simulation=simulation,
                root_child=root_child,
                score=score.value,
                score_parsed=score.parsed,
                visits=[c.visits for c in children],
                values=[round(c.mean_value, 4) for c in children],
            )
        )
        best = best_child(self.root)
        self.ctx.record_best(best.reply, f"MCTS stopped after {len(self.records)} simulation(s).")


def _depth(node: Node) -> int:
    depth, current = 0, node
    while current.parent is not None:
        depth, current = depth + 1, current.parent
    return depth


def _root_child(node: Node) -> int:
    """The 1-based index of the root child on ``node``'s path."""
    current = node
    while current.parent is not None and current.parent.parent is not None:
        current = current.parent
    assert current.parent is not None, "a simulation always goes through a root child"
    return current.parent.children.index(current) + 1
