"""Monte Carlo Tree Search over dialogue states, driven by the model at every step."""

from __future__ import annotations as _annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from optillm_core import CallRole, GenerationSettings, ModelClient, Optimizer, Outcome, RunContext

from ._config import MctsConfig
from ._search import Search
from ._tree import Node

__all__ = ("MctsOptimizer",)

_PREVIEW = 80


class MctsOptimizer(Optimizer[MctsConfig]):
    """Searches candidate replies by simulating how the dialogue goes on and having the model rate it."""

    name: ClassVar[str] = "mcts"
    description: ClassVar[str] = "Monte Carlo Tree Search over dialogue states, with model-rated rollouts."
    config_type: ClassVar[type[MctsConfig]] = MctsConfig
    phases: ClassVar[Mapping[str, CallRole]] = {
        "replies to the query": "returned",
        "user turns": "answer",
        "rollouts": "answer",
        "deeper replies": "answer",
        "evaluations": "judge",
    }
    """Each is entered once per simulation that makes such calls, with the simulation's number as its round.

    The replies to the query are answers that may be returned as they are (``returned``): the
    caller's tools, tool_choice and response_format reach them, and the caller's stop cuts them as
    the provider would.
    """
    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """See :meth:`Search.planned_calls`: deeper expansions, which depend on the scores, only add calls."""
        return Search(self.planning_context(client, settings)).planned_calls()

    async def run(self, ctx: RunContext[MctsConfig]) -> Outcome:
        search = Search(ctx)
        chosen = await search.run()
        return Outcome(
            answer=chosen.reply,
            tool_calls=chosen.tool_calls,
            thinking=chosen.thinking,
            finish_reason="length" if chosen.truncated else "stop",
            reasoning=_trace(search, chosen),
            iterations=len(search.records),
            extras={
                "chosen_child": search.root.children.index(chosen) + 1,
                "root_children": [_child_summary(c) for c in search.root.children],
                "simulations": [
                    {
                        "simulation": r.simulation,
                        "root_child": r.root_child,
                        "depth": r.depth,
                        "score": r.score.value,
                        "score_parsed": r.score.parsed,
                    }
                    for r in search.records
                ],
            },
        )


def _child_summary(child: Node) -> dict[str, Any]:
    return {
        "reply": child.reply,
        "tool_calls": [call.model_dump() for call in child.tool_calls],
        "visits": child.visits,
        "mean_value": child.mean_value,
        "truncated": child.truncated,
    }


def _trace(search: Search, chosen: Node) -> str:
    config = search.config
    lines = [
        f"MCTS: {len(search.records)} simulation(s), exploration weight {config.exploration_weight}, "
        f"rollout depth {config.simulation_depth}, {len(search.root.children)} root children.",
        "Root children (visits, mean value):",
    ]
    for index, child in enumerate(search.root.children, start=1):
        value = f"{child.mean_value:.3f}" if child.visits else "not evaluated"
        marker = "  <- chosen" if child is chosen else ""
        preview = " ".join(child.rendered.split())[:_PREVIEW]
        cut = " [cut off]" if child.truncated else ""
        lines.append(f"  [{index}] visits {child.visits}, value {value}{cut}: {preview!r}{marker}")
    lines.append("Simulations:")
    for record in sorted(search.records, key=lambda r: r.simulation):
        note = "" if record.score.parsed else " (no rating in the evaluation; neutral)"
        lines.append(
            f"  {record.simulation}: via root child {record.root_child}, node depth {record.depth}, "
            f"score {record.score.value:.3f}{note}"
        )
    return "\n".join(lines)
