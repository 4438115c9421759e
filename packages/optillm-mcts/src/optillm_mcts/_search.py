"""The search loop: select, expand, roll out, evaluate, back up — overlapping independent simulations."""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio

from optillm_core import (
    CallRole,
    Completion,
    GenerationSettings,
    Message,
    NoSolutions,
    Prompt,
    RunContext,
    gather,
    task_group,
)

from ._config import MctsConfig
from ._evaluate import Score, evaluate
from ._events import NodeExpanded, SimulationFinished
from ._prompts import PREDICT_USER, varied_query
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

    Every child an expansion makes is rolled out and evaluated: the simulation that expands a node
    takes its first child, and the next simulations take the others, so an expansion samples no
    more replies than there are simulations left to rate them. The children's simulations run
    concurrently. Otherwise simulation ``k+1`` starts as soon as its starting node no longer
    depends on simulations still in flight (see :func:`next_start`); when UCB would need a pending
    value it waits, so every choice is the one a sequential search would make.
    """

    def __init__(self, ctx: RunContext[MctsConfig]) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.root = Node(DialogueState(ctx.system_prompt, (), ctx.query))
        self.records: list[SimulationRecord] = []
        self._changed = anyio.Event()
        self._queued: list[Node] = []  # children of the last expansion, each waiting for its simulation
        self._pinned = self.config.pinned(temperature="generation_temperature")

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
            if self._queued:
                return self._queued.pop(0)
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
        """Give ``node`` its children and return the first, the one this simulation rolls out.

        It samples as many replies as simulations are left to rate them (``num_actions`` at most);
        the next simulations take the other children.
        """
        config, state = self.config, node.state
        count = min(config.num_actions, config.num_simulations - simulation + 1)
        # The root's replies are the answers the run chooses from: final calls, under the caller's stop.
        role: CallRole = "final" if node is self.root else "answer"
        replies = [
            (text.strip(), thinking, cut)
            for text, thinking, cut in await self._sample_replies(state, count, role)
            if text.strip()
        ]
        if node is self.root and replies:
            first, first_thinking, _ = replies[0]
            self.ctx.record_best(
                first, "MCTS stopped before any evaluation; first sampled reply.", thinking=first_thinking
            )
        queries = await gather(self._predict_thunk(state, reply, index) for index, (reply, _, _) in enumerate(replies))
        node.children = [
            Node(state=state.after(reply, query), parent=node, reply=reply, thinking=thinking, truncated=cut)
            for (reply, thinking, cut), query in zip(replies, queries, strict=True)
        ]
        node.expanding, node.expanded = False, True
        self._queued.extend(node.children[1:])
        self.ctx.emit(NodeExpanded(simulation=simulation, depth=_depth(node), children=len(node.children)))
        if not node.children:
            if node is self.root:
                raise NoSolutions(
                    f"mcts: the model returned no usable reply to the query (all {count} requested came back "
                    "empty, or held only thinking)"
                )
            return node  # a dead end: evaluated as it stands
        return node.children[0]

    async def _sample_replies(self, state: DialogueState, count: int, role: CallRole) -> list[tuple[str, str, bool]]:
        """``count`` replies as (text, thinking, cut off): one ``n`` request, or one request each with its own prompt.

        Where sampling cannot set the replies apart (the model refuses temperature, or the
        temperature is 0), or the client has no native ``n`` up to ``count``, each reply gets a
        request of its own and a distinct seed offset; the first case also asks each for another
        way of replying.
        """
        shared = self._reply_settings(role, count)
        varied = self._varied(count, role)
        if self._one_request(count, role):
            return _choices(await self.ctx.client.complete(state.prompt(), shared))

        def one(index: int) -> Callable[[], Awaitable[Completion]]:
            query = varied_query(state.query, index) if varied else state.query
            prompt = Prompt(messages=(*state.history, Message.user(query)), system=state.system)
            settings = self._reply_settings(role, 1, seed_offset=index)
            return lambda: self.ctx.client.complete(prompt, settings)

        return [choice for completion in await gather(one(i) for i in range(count)) for choice in _choices(completion)]

    def _varied(self, count: int, role: CallRole) -> bool:
        """Whether sampling cannot set ``count`` replies apart, so each is asked another way."""
        return count > 1 and (not self.ctx.profile.temperature or self._reply_settings(role, count).temperature == 0)

    def _one_request(self, count: int, role: CallRole) -> bool:
        max_n = self.ctx.profile.max_n
        native = self.ctx.client.supports_native_n and (max_n is None or count <= max_n)
        return native and not self._varied(count, role)

    def planned_calls(self) -> int:
        """The calls of a search whose replies all come back usable, counting only what every such search makes.

        The root's replies (one ``n`` request, or one each) and a predicted user turn per reply;
        each root child's rollout; one evaluation per simulation. Expansions deeper in the tree,
        which depend on the scores, only add calls.
        """
        config = self.config
        count = min(config.num_actions, config.num_simulations)
        replies = 1 if self._one_request(count, "final") else count
        return replies + count + count * _rollout_calls(config, history=2) + config.num_simulations

    def _reply_settings(self, role: CallRole, n: int = 1, *, seed_offset: int = 0) -> GenerationSettings:
        config = self.config
        return self.ctx.call_settings(
            role,
            temperature=config.generation_temperature,
            max_tokens=config.generation_max_tokens,
            n=n,
            seed_offset=seed_offset,
            pinned=self._pinned,
        )

    def _predict_thunk(self, state: DialogueState, reply: str, index: int) -> Callable[[], Awaitable[str]]:
        settings = self.ctx.call_settings(
            "answer",
            temperature=self.config.generation_temperature,
            max_tokens=self.config.prediction_max_tokens,
            seed_offset=index,
            pinned=self._pinned,
        )
        prompt = state.prompt(Message.assistant(reply), Message.user(PREDICT_USER))

        async def predict() -> str:
            return (await self.ctx.client.complete(prompt, settings)).text.strip()

        return predict

    async def _rollout(self, leaf: Node) -> tuple[Message, ...]:
        """Play ``simulation_depth`` more assistant turns from ``leaf``; return the dialogue to evaluate.

        The user turn after the last reply is not predicted: the evaluation reads the dialogue up
        to the assistant's last reply, so it could not change the result. Only the text outside
        the model's thinking enters the dialogue.
        """
        config, state = self.config, leaf.state
        transcript = state.history
        if not leaf.children and leaf.expanded:
            return transcript  # a dead end: nothing more to say
        offset = _sibling_index(leaf)
        settings = self._reply_settings("answer", seed_offset=offset)
        for step in range(config.simulation_depth):
            if state.is_terminal(config.max_history_length):
                break
            reply = (await self.ctx.client.complete(state.prompt(), settings)).text.strip()
            if not reply:
                break
            transcript = state.with_reply(reply)
            if step == config.simulation_depth - 1:
                break
            state = state.after(reply, await self._predict_thunk(state, reply, offset)())
        return transcript

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
        self.ctx.record_best(
            best.reply, f"MCTS stopped after {len(self.records)} simulation(s).", thinking=best.thinking
        )


def _rollout_calls(config: MctsConfig, *, history: int) -> int:
    """The calls of :meth:`Search._rollout` from a node whose dialogue holds ``history`` messages (replies usable)."""
    calls = 0
    for step in range(config.simulation_depth):
        if history > config.max_history_length:
            break
        calls += 1  # the reply
        if step == config.simulation_depth - 1:
            break
        calls += 1  # the predicted user turn
        history += 2
    return calls


def _choices(completion: Completion) -> list[tuple[str, str, bool]]:
    """Each choice's text outside the thinking, its thinking, and whether it was cut off."""
    return [
        (text, completion.thinking[i].strip() if i < len(completion.thinking) else "", completion.truncated(i))
        for i, text in enumerate(completion.texts)
    ]


def _sibling_index(node: Node) -> int:
    return node.parent.children.index(node) if node.parent is not None else 0


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
