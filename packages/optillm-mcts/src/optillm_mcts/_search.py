"""The search loop: select, expand, roll out, evaluate, back up — overlapping independent simulations."""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import anyio

from optillm_core import Message, NoSolutions, Outcome, RunContext
from optillm_core.toolkit import Sample, apply_stop, gather, sample, sample_requests, task_group

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

    Every child an expansion makes is rolled out and evaluated: the simulation that expands a node
    takes its first child, and the next simulations take the others, so an expansion samples no
    more replies than there are simulations left to rate them. The children's simulations run
    concurrently. Otherwise simulation ``k+1`` starts as soon as its starting node no longer
    depends on simulations still in flight (see :func:`next_start`); when UCB would need a pending
    value it waits, so every choice is the one a sequential search would make.

    Each part of a simulation is announced as the declared phase it enters, with the simulation's
    number as its round (``rollouts`` round 2: simulation 2 rolls out).
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
        transcript = await self._rollout(simulation, leaf)
        self.ctx.phase("evaluations", round=simulation)
        score = await evaluate(self.ctx, self.root.state.system, transcript)
        mark_pending(leaf, -1)
        backpropagate(leaf, score.value)
        self._record(simulation, leaf, score)
        self._notify()

    async def _expand(self, simulation: int, node: Node) -> Node:
        """Give ``node`` its children and return the first, the one this simulation rolls out.

        It samples as many replies as simulations are left to rate them (``num_actions`` at most);
        the next simulations take the other children. A reply that calls the caller's tools gets
        no predicted user turn: it is a child whose dialogue is over.
        """
        config, state = self.config, node.state
        count = min(config.num_actions, config.num_simulations - simulation + 1)
        replies = await self._sample_replies(simulation, node, count)
        if node is self.root:
            self._record_first(replies[0])
        talking = [(index, reply) for index, reply in enumerate(replies) if not reply.tool_calls]
        if talking:
            self.ctx.phase("user turns", round=simulation)
        predicted = iter(await gather(self._predict_thunk(state, reply.text, index) for index, reply in talking))
        queries = ["" if reply.tool_calls else next(predicted) for reply in replies]
        node.children = [
            Node(
                state=state.after(reply.rendered, queries[index]),  # tool calls written out
                parent=node,
                reply=reply.text,
                thinking=reply.thinking,
                truncated=reply.truncated,
                tool_calls=reply.tool_calls,
            )
            for index, reply in enumerate(replies)
        ]
        node.expanding, node.expanded = False, True
        self._queued.extend(node.children[1:])
        self.ctx.emit(NodeExpanded(simulation=simulation, depth=_depth(node), children=len(node.children)))
        if not node.children:
            return node  # a dead end: evaluated as it stands
        return node.children[0]

    async def _sample_replies(self, simulation: int, node: Node, count: int) -> Sequence[Sample]:
        """``count`` replies to ``node``'s dialogue by the toolkit's sampler, the empty ones left out.

        The replies to the query may be the answer as they are (``returned``): with tools offered
        they are asked on the caller's conversation as real tool turns, with the tools, and may call
        them; the caller's ``stop`` cuts them as the provider would have. Deeper replies get the
        flattened dialogue and no tools. When no reply to the query is usable the run ends
        (:class:`NoSolutions`, or the provider's error when every request failed); a deeper node
        without one is a dead end.
        """
        root = node is self.root
        self.ctx.phase("replies to the query" if root else "deeper replies", round=simulation)
        prompt = self.ctx.conversation_prompt() if root and self.ctx.tools_offered else node.state.prompt()
        try:
            samples = await sample(
                self.ctx,
                count,
                prompt=prompt,
                temperature=self.config.generation_temperature,
                max_tokens=self.config.generation_max_tokens,
                pinned=self._pinned,
                returned=root,
            )
        except NoSolutions:
            if root:
                raise
            return ()
        if not root:
            return samples.samples
        replies = [reply for reply in (_stopped(s, self.ctx.settings.stop) for s in samples.samples) if not reply.empty]
        if not replies:
            raise NoSolutions(
                f"mcts: every reply to the query was empty once cut at the caller's stop sequences "
                f"({len(samples.samples)} sampled); check the stop sequences"
            )
        return replies

    def _record_first(self, reply: Sample) -> None:
        self.ctx.best = Outcome(
            answer=reply.text,
            tool_calls=reply.tool_calls,
            thinking=reply.thinking,
            reasoning="MCTS stopped before any evaluation; first sampled reply.",
            finish_reason="length" if reply.truncated else "stop",
            budget_exhausted=True,
        )

    def planned_calls(self) -> int:
        """The calls of a search whose replies all come back usable, counting only what every such search makes.

        The root's replies (the sampler's requests: one ``n`` request per ``max_n`` replies, or one
        each) and a predicted user turn per reply; each root child's rollout; one evaluation per
        simulation. Expansions deeper in the tree, which depend on the scores, only add calls; a
        reply that calls a tool saves its predicted turn and rollout.
        """
        config = self.config
        count = min(config.num_actions, config.num_simulations)
        replies = sample_requests(
            self.ctx,
            count,
            temperature=config.generation_temperature,
            max_tokens=config.generation_max_tokens,
            pinned=self._pinned,
            returned=True,
        )
        return replies + count + count * _rollout_calls(config, history=2) + config.num_simulations

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

    async def _rollout(self, simulation: int, leaf: Node) -> tuple[Message, ...]:
        """Play ``simulation_depth`` more assistant turns from ``leaf``; return the dialogue to evaluate.

        The user turn after the last reply is not predicted: the evaluation reads the dialogue up
        to the assistant's last reply, so it could not change the result. Only the text outside
        the model's thinking enters the dialogue. A dead end, a reply that calls a tool and a
        dialogue that is over are evaluated as they stand.
        """
        config, state = self.config, leaf.state
        transcript = state.history
        if (not leaf.children and leaf.expanded) or leaf.tool_calls:
            return transcript
        if config.simulation_depth == 0 or state.is_terminal(config.max_history_length):
            return transcript
        self.ctx.phase("rollouts", round=simulation)
        offset = _sibling_index(leaf)
        settings = self.ctx.call_settings(
            "answer",
            temperature=config.generation_temperature,
            max_tokens=config.generation_max_tokens,
            seed_offset=offset,
            pinned=self._pinned,
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
        self.ctx.best = Outcome(
            answer=best.reply,
            tool_calls=best.tool_calls,
            thinking=best.thinking,
            reasoning=f"MCTS stopped after {len(self.records)} simulation(s).",
            finish_reason="length" if best.truncated else "stop",
            budget_exhausted=True,
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


def _stopped(reply: Sample, stop: Sequence[str] | None) -> Sample:
    """``reply`` cut before the first of the caller's stop sequences, as the provider would have cut it.

    A reply cut there ends at a stop sequence, not at the token limit.
    """
    cut = apply_stop(reply.text, stop)
    if cut == reply.text:
        return reply
    return replace(reply, text=cut, truncated=False)


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
