"""PlanSearch: for each of ``num_plans`` plans, observations → derived observations → a plan in words → code.

The plans run concurrently, each a chain of four dependent calls, so a run is four round-trips
deep however many plans it searches (upstream ran the ``4n`` calls one after another). The first
observations of every plan are asked with core's one sampler (native ``n`` where the client has it;
varied prompts where the model takes no temperature), then each plan goes on by itself. The answer
is the code reply of the best plan: rated by the optimizer's :class:`~optillm_core.toolkit.Scorer`
when one is given, else the first plan whose reply parses (holds a code block, or calls a tool).
"""

from __future__ import annotations as _annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from optillm_core import (
    CallRole,
    ClientError,
    Completion,
    GenerationSettings,
    ModelClient,
    NoSolutions,
    Optimizer,
    Outcome,
    ParsingError,
    Prompt,
    RunContext,
    ToolCall,
)
from optillm_core.toolkit import (
    LlmJudgeScorer,
    Rating,
    Sample,
    Scorer,
    apply_stop,
    render_reply,
    sample,
    sample_requests,
    settle,
)

from ._code import extract_code, has_code_block
from ._config import PlanSearchConfig
from ._log import log
from ._prompts import derived_observations_prompt, implement_note, implement_prompt, observations_prompt, plan_prompt

__all__ = ("PlanSearchOptimizer", "observation_lines")

_MARKER = re.compile(r"^\s*(?:(?:[-*•+]|\d+[.)]|\(\d+\))\s+|(?:\*\*)?observation\s*\d*\s*[:.](?:\*\*)?\s*)", re.I)


def observation_lines(text: str) -> tuple[str, ...]:
    """The observations of a reply: its non-empty lines, list markers ("1.", "-", "Observation 2:") taken off."""
    lines = (_MARKER.sub("", line, count=1).strip() for line in text.splitlines())
    return tuple(line for line in lines if line)


@dataclass(frozen=True)
class Plan:
    """One searched plan: its observations, the plan in words, and the code reply written from it."""

    index: int
    observations: tuple[str, ...]
    derived: tuple[str, ...]
    plan: str
    reply: str
    thinking: str
    tool_calls: tuple[ToolCall, ...]
    truncated: bool

    @property
    def parses(self) -> bool:
        """Whether the reply holds code in a fenced block, or calls a tool."""
        return bool(self.tool_calls) or has_code_block(self.reply)

    @property
    def rendered(self) -> str:
        return render_reply(self.reply, self.tool_calls)


class PlanSearchOptimizer(Optimizer[PlanSearchConfig]):
    """Searches several plans in natural language, each from its own observations, and returns the best plan's code.

    Give ``scorer=`` (a :class:`~optillm_core.toolkit.FunctionScorer` around a test runner, an
    :class:`~optillm_core.toolkit.LlmJudgeScorer`, …) to choose among the plans' code; without one,
    the first plan whose reply parses is returned.
    """

    name: ClassVar[str] = "plansearch"
    description: ClassVar[str] = (
        "PlanSearch for code: observations, derived observations, a plan in words, then code, for several "
        "plans concurrently; the best plan's code."
    )
    config_type: ClassVar[type[PlanSearchConfig]] = PlanSearchConfig
    phases: ClassVar[Mapping[str, CallRole]] = {
        "observations": "answer",
        "derived_observations": "answer",
        "plan": "answer",
        "code": "returned",
        "scoring": "judge",
    }
    # Each plan's code is asked with the caller's conversation as real turns and the caller's tools
    # ("returned": it may be the answer as it is), so the chosen reply may be a tool call.
    answers_with_tools: ClassVar[bool] = True

    def __init__(self, config: PlanSearchConfig | None = None, *, scorer: Scorer | None = None) -> None:
        super().__init__(config)
        self.scorer = scorer

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """The observations' requests, then 2 or 3 calls per plan, and a judge call per plan with an LLM judge."""
        ctx = self.planning_context(client, settings)
        config = ctx.config
        steps = 3 if config.num_derived_observations > 0 else 2
        ratings = config.num_plans if config.num_plans > 1 and isinstance(self.scorer, LlmJudgeScorer) else 0
        return _observation_requests(ctx) + steps * config.num_plans + ratings

    async def run(self, ctx: RunContext[PlanSearchConfig]) -> Outcome:
        config = ctx.config
        ctx.phase("observations")
        observed = await sample(
            ctx,
            config.num_plans,
            temperature=config.observation_temperature,
            max_tokens=config.max_tokens,
            pinned=config.pinned(temperature="observation_temperature"),
            prompt=ctx.prompt(observations_prompt(ctx.query, config.num_observations)),
        )
        lost = config.num_plans - len(observed.samples)

        def chain(first: Sample) -> Callable[[], Awaitable[Plan]]:
            return lambda: _search(ctx, first)

        results = await settle([chain(s) for s in observed.samples], optimizer=ctx.optimizer, what="plan")
        plans = [r for r in results if isinstance(r, Plan)]
        if not plans:
            errors = [r for r in results if isinstance(r, Exception)]
            client_errors = [e for e in errors if isinstance(e, ClientError)]
            if client_errors:
                raise client_errors[0]
            raise NoSolutions(
                f"plansearch: none of the {config.num_plans} plans came to code ("
                + "; ".join(str(e) for e in errors)
                + f"); raise max_tokens (now {config.max_tokens}) or the caller's max_tokens"
            )
        ctx.record_best(plans[0].reply, "plansearch stopped before choosing; this is the first plan's code.")

        ratings: list[Rating] | None = None
        if self.scorer is not None and len(plans) > 1:
            ctx.phase("scoring")
            ratings = await _rate(ctx, self.scorer, plans)
        chosen, how = _choose(plans, ratings)
        if not chosen.parses:
            log.warning("plansearch: no plan's reply holds a code block; returning the first", optimizer=ctx.optimizer)
        return Outcome(
            answer=apply_stop(chosen.reply, ctx.settings.stop),
            thinking=chosen.thinking,
            tool_calls=chosen.tool_calls,
            finish_reason="length" if chosen.truncated else "stop",
            reasoning=_reasoning(plans, ratings, chosen, how),
            extras={
                "plans": [_plan_extras(p) for p in plans],
                "chosen_plan": chosen.index + 1,
                "chosen_by": how,
                "ratings": None if ratings is None else [r.value if r.parsed else None for r in ratings],
                "scorer": None if self.scorer is None else self.scorer.name,
                "dropped_plans": lost + len(results) - len(plans),
                "varied_prompts": observed.varied,
            },
        )


def _observation_requests(ctx: RunContext[PlanSearchConfig]) -> int:
    config = ctx.config
    return sample_requests(
        ctx,
        config.num_plans,
        temperature=config.observation_temperature,
        max_tokens=config.max_tokens,
        pinned=config.pinned(temperature="observation_temperature"),
    )


async def _search(ctx: RunContext[PlanSearchConfig], first: Sample) -> Plan:
    """One plan after its first observations: derived observations, the plan, the code (three dependent calls)."""
    config = ctx.config
    index = first.index
    observations = observation_lines(first.text)
    derived: tuple[str, ...] = ()
    if config.num_derived_observations > 0:
        ctx.phase("derived_observations", round=index + 1)
        asked = derived_observations_prompt(ctx.query, observations, config.num_derived_observations)
        reply = await _ask(ctx, ctx.prompt(asked), "answer", config.observation_temperature, "observation", index)
        derived = observation_lines(reply.text)  # none is fine: the plan builds on the first ones

    ctx.phase("plan", round=index + 1)
    reply = await _ask(
        ctx,
        ctx.prompt(plan_prompt(ctx.query, observations + derived)),
        "answer",
        config.plan_temperature,
        "plan",
        index,
    )
    plan = reply.text.strip()
    if not plan:
        raise ParsingError(f"plan {index + 1} came back empty" + (" (only thinking)" if reply.reasoning else ""))

    ctx.phase("code", round=index + 1)
    prompt = (
        ctx.conversation_prompt(implement_note(plan))
        if ctx.tools_offered
        else ctx.prompt(implement_prompt(ctx.query, plan))
    )
    code = await _ask(ctx, prompt, "returned", config.code_temperature, "code", index)
    if not code.text.strip() and not code.calls:
        raise ParsingError(f"plan {index + 1}'s code came back empty" + (" (only thinking)" if code.reasoning else ""))
    return Plan(
        index=index,
        observations=observations,
        derived=derived,
        plan=plan,
        reply=code.text.strip(),
        thinking=code.reasoning,
        tool_calls=code.calls,
        truncated=code.truncated(),
    )


async def _ask(
    ctx: RunContext[PlanSearchConfig], prompt: Prompt, role: CallRole, temperature: float | None, field: str, index: int
) -> Completion:
    config = ctx.config
    settings = ctx.call_settings(
        role,
        temperature=temperature,
        max_tokens=config.max_tokens,
        seed_offset=index,
        pinned=config.pinned(temperature=f"{field}_temperature"),
    )
    return await ctx.client.complete(prompt, settings)


async def _rate(ctx: RunContext[PlanSearchConfig], scorer: Scorer, plans: Sequence[Plan]) -> list[Rating]:
    """Every plan's code rated concurrently; a rating that failed absorbably counts as unrated."""

    def rate(plan: Plan) -> Callable[[], Awaitable[Rating]]:
        return lambda: scorer.rate(ctx, ctx.query, plan.rendered)

    results = await settle([rate(p) for p in plans], optimizer=ctx.optimizer, what="rating")
    return [
        Rating.unrated(f"the rating failed: {type(r).__name__}: {r}") if isinstance(r, Exception) else r
        for r in results
    ]


def _choose(plans: Sequence[Plan], ratings: Sequence[Rating] | None) -> tuple[Plan, str]:
    """The scorer's best (ties: parses, complete, earlier); without ratings, the first complete plan that parses."""
    if ratings is not None and any(r.parsed for r in ratings):

        def rank(i: int) -> tuple[bool, float, bool, bool, int]:
            plan = plans[i]
            return (ratings[i].parsed, ratings[i].value, plan.parses, not plan.truncated, -i)

        return plans[max(range(len(plans)), key=rank)], "scorer"
    for plan in plans:
        if plan.parses and not plan.truncated:
            return plan, "first that parses"
    for plan in plans:
        if plan.parses:
            return plan, "first that parses"
    return plans[0], "first (none parses)"


def _plan_extras(plan: Plan) -> dict[str, Any]:
    return {
        "plan_number": plan.index + 1,
        "observations": list(plan.observations),
        "derived_observations": list(plan.derived),
        "plan": plan.plan,
        "reply": plan.reply,
        "code": extract_code(plan.reply),
        "parses": plan.parses,
        "truncated": plan.truncated,
        "tool_calls": [call.name for call in plan.tool_calls],
    }


def _reasoning(plans: Sequence[Plan], ratings: Sequence[Rating] | None, chosen: Plan, how: str) -> str:
    parts = []
    for position, plan in enumerate(plans):
        rating = ""
        if ratings is not None:
            r = ratings[position]
            rating = f" (rated {r.value:.3g})" if r.parsed else " (no rating)"
        observations = "\n".join(f"- {o}" for o in plan.observations + plan.derived) or "- (none)"
        parts.append(f"Plan {plan.index + 1}{rating}:\nObservations:\n{observations}\nPlan:\n{plan.plan}")
    parts.append(f"Returned the code of plan {chosen.index + 1} ({how}).")
    return "\n\n".join(parts)
