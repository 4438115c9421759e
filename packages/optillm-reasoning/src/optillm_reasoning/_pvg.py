"""The prover-verifier game: helpful and sneaky solutions, a verifier's scores, a refined query, per round.

Per round, the helpful and the sneaky solutions are sampled concurrently, then the verifier scores
all of them concurrently, then (except in the last round) the query is refined: three sequential
round-trips per round, two in the last (five for upstream's two rounds, which ran 17 calls one
after another). The best-scored helpful solution of all rounds is the answer.
"""

from __future__ import annotations as _annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from optillm_core import (
    CallRole,
    GenerationSettings,
    ModelClient,
    NoSolutions,
    Optimizer,
    Outcome,
    Prompt,
    RunContext,
)
from optillm_core.toolkit import (
    Sample,
    Samples,
    absorbable,
    apply_stop,
    gather,
    parse_rating,
    render_reply,
    sample,
    sample_requests,
    settle,
    split_thinking,
)

from ._config import PvgConfig
from ._log import log
from ._pvg_prompts import Mode, refine_prompt, refined_note, role_instruction, solver_question, verifier_prompt

__all__ = ("PvgOptimizer", "Scored")


@dataclass(frozen=True)
class Scored:
    """One solution of one round and the verifier's score of it (a fraction of 1; ``None``: unreadable or failed)."""

    round: int
    mode: Mode
    sample: Sample
    score: float | None
    verdict: str

    @property
    def rendered(self) -> str:
        return render_reply(self.sample.text, self.sample.tool_calls)


class PvgOptimizer(Optimizer[PvgConfig]):
    """Plays helpful against sneaky solvers before a verifier, round after round; the best helpful solution wins."""

    name: ClassVar[str] = "pvg"
    description: ClassVar[str] = (
        "Prover-verifier game: helpful and sneaky solutions scored by a verifier, the query refined each round."
    )
    config_type: ClassVar[type[PvgConfig]] = PvgConfig
    phases: ClassVar[Mapping[str, CallRole]] = {
        "helpful_solutions": "returned",
        "sneaky_solutions": "answer",
        "verification": "judge",
        "refinement": "judge",
    }
    # The answer is a helpful solution as it was sampled: with tools offered, the helpful solutions
    # get them and the caller's conversation as real turns, so the winner may be a tool call.
    answers_with_tools: ClassVar[bool] = True

    def planned_calls(self, client: ModelClient, settings: GenerationSettings | None = None) -> int:
        """Per round: both kinds of solutions' requests and one verification each; a refinement between rounds."""
        ctx = self.planning_context(client, settings)
        config = self.config
        total = config.num_rounds - 1
        for round_index in range(config.num_rounds):
            for returned in (True, False):
                total += sample_requests(
                    ctx,
                    config.num_solutions,
                    temperature=config.round_temperature(round_index),
                    max_tokens=config.max_tokens,
                    pinned=config.pinned(temperature="temperature"),
                    returned=returned,
                )
            total += 2 * config.num_solutions
        return total

    async def run(self, ctx: RunContext[PvgConfig]) -> Outcome:
        config = ctx.config
        scored: list[Scored] = []
        refined: str | None = None
        refinements: list[str] = []
        best: Scored | None = None
        for round_index in range(config.num_rounds):
            helpful, sneaky = await _solutions(ctx, round_index, refined)
            ctx.phase("verification", round=round_index + 1)
            round_scored = await _verify(ctx, round_index, helpful, sneaky)
            scored += round_scored
            best = _best(scored) or best
            if best is not None:
                ctx.record_best(best.sample.text, f"PVG stopped in round {round_index + 1}; the best helpful solution.")
            if round_index < config.num_rounds - 1:
                ctx.phase("refinement", round=round_index + 1)
                refined = await _refine(ctx, best)
                refinements.append(refined or "")
        winner = _best(scored) or _first_helpful(scored)
        return _outcome(ctx, winner, scored, refinements)


async def _solutions(
    ctx: RunContext[PvgConfig], round_index: int, refined: str | None
) -> tuple[Samples, Samples | None]:
    """The round's helpful and sneaky solutions, sampled concurrently (core's sampler for each kind).

    The helpful ones may be returned as they are, so they are ``returned`` samples: with tools
    offered they get the caller's tools and conversation as real turns, the game's instruction and
    any refined statement after the caller's system prompt. The sneaky ones are never returned:
    they are asked the conversation as one question, without tools. Without a usable helpful
    solution the run ends (the sampler says why); sneaky ones that all fail absorbably are missed,
    and the round goes on with the helpful ones alone.
    """
    ctx.phase("helpful_solutions", round=round_index + 1)
    ctx.phase("sneaky_solutions", round=round_index + 1)

    async def helpful() -> Samples | None:
        return await _sample(ctx, "helpful", round_index, refined)

    async def sneaky() -> Samples | None:
        try:
            return await _sample(ctx, "sneaky", round_index, refined)
        except NoSolutions as exc:
            log.warning("pvg: no sneaky solution this round", optimizer=ctx.optimizer, error=str(exc))
            return None
        except Exception as exc:
            if not absorbable(exc):
                raise
            log.warning("pvg: no sneaky solution this round", optimizer=ctx.optimizer, error=str(exc))
            return None

    helpful_samples, sneaky_samples = await gather([helpful, sneaky])
    assert helpful_samples is not None  # the helpful sampling raises rather than return nothing
    return helpful_samples, sneaky_samples


async def _sample(ctx: RunContext[PvgConfig], mode: Mode, round_index: int, refined: str | None) -> Samples:
    config = ctx.config
    returned = mode == "helpful"
    return await sample(
        ctx,
        config.num_solutions,
        temperature=config.round_temperature(round_index),
        max_tokens=config.max_tokens,
        pinned=config.pinned(temperature="temperature"),
        prompt=_solver_prompt(ctx, mode, refined),
        returned=returned,
        truncated="keep",
    )


def _solver_prompt(ctx: RunContext[PvgConfig], mode: Mode, refined: str | None) -> Prompt:
    instruction = role_instruction(mode)
    if mode == "helpful" and ctx.tools_offered:
        note = instruction if refined is None else f"{instruction}\n\n{refined_note(refined)}"
        return ctx.conversation_prompt(note)
    system = f"{ctx.system_prompt}\n\n{instruction}" if ctx.system_prompt else instruction
    return ctx.prompt(solver_question(ctx.query, refined), system=system)


async def _verify(
    ctx: RunContext[PvgConfig], round_index: int, helpful: Samples, sneaky: Samples | None
) -> list[Scored]:
    """Every solution of the round scored by the verifier, concurrently, against the caller's question.

    A reply with no readable score, or a verification that failed in a way core's policy absorbs,
    leaves its solution unscored (upstream scored it 0); any other error ends the run.
    """
    config = ctx.config
    settings = ctx.call_settings(
        "judge", temperature=config.verifier_temperature, max_tokens=config.verifier_max_tokens
    )
    solutions: list[tuple[Mode, Sample]] = [("helpful", s) for s in helpful.samples]
    solutions += [("sneaky", s) for s in (sneaky.samples if sneaky is not None else ())]

    def verify(solution: Sample) -> Callable[[], Awaitable[Any]]:
        prompt = ctx.prompt(verifier_prompt(ctx.query, render_reply(solution.text, solution.tool_calls)))
        return lambda: ctx.client.complete(prompt, settings)

    results = await settle((verify(s) for _, s in solutions), optimizer=ctx.optimizer, what="verification")
    scored = []
    for (mode, solution), result in zip(solutions, results, strict=True):
        if isinstance(result, Exception):
            scored.append(Scored(round_index, mode, solution, None, f"the verification failed: {result}"))
            continue
        verdict = split_thinking(result.text)[1].strip()
        score = parse_rating(result.text, scale=10)
        if score is None:
            log.warning("pvg: a verification held no score", optimizer=ctx.optimizer, round=round_index + 1)
        scored.append(Scored(round_index, mode, solution, score, verdict))
    return scored


async def _refine(ctx: RunContext[PvgConfig], best: Scored | None) -> str | None:
    """The query refined for the next round from the best helpful solution so far (``None``: keep the query)."""
    config = ctx.config
    settings = ctx.call_settings("judge", temperature=config.refine_temperature, max_tokens=config.refine_max_tokens)
    best_text = best.rendered if best is not None else ""
    prompt = ctx.prompt(refine_prompt(ctx.query, best_text))
    thunk = [lambda: ctx.client.complete(prompt, settings)]
    (result,) = await settle(thunk, optimizer=ctx.optimizer, what="refinement")
    if isinstance(result, Exception):
        return None
    refined = split_thinking(result.text)[1].strip()
    if not refined:
        log.warning("pvg: the refined query came back empty; the next round keeps the query", optimizer=ctx.optimizer)
        return None
    return refined


def _best(scored: Sequence[Scored]) -> Scored | None:
    """The highest-scored helpful solution; ties go to a complete one, then to the earliest (as upstream)."""
    rated = [s for s in scored if s.mode == "helpful" and s.score is not None]
    if not rated:
        return None
    return max(rated, key=lambda s: (s.score or 0.0, not s.sample.truncated, -s.round, -s.sample.index))


def _first_helpful(scored: Sequence[Scored]) -> Scored:
    """No helpful solution was scored: the first complete one (else the first), as the verifier cannot choose."""
    helpful = [s for s in scored if s.mode == "helpful"]
    log.warning("pvg: no helpful solution could be scored; answering with the first", optimizer="pvg")
    return next((s for s in helpful if not s.sample.truncated), helpful[0])


def _outcome(ctx: RunContext[PvgConfig], winner: Scored, scored: Sequence[Scored], refinements: list[str]) -> Outcome:
    solution = winner.sample
    calls = solution.tool_calls if not solution.truncated else ()
    # A returned sample was asked without the caller's stop: cut it as the provider would have.
    answer = apply_stop(solution.text, ctx.settings.stop)
    rounds = max(s.round for s in scored) + 1
    lines = [
        f"Round {s.round + 1}, {s.mode} solution {s.sample.index + 1}: "
        + (f"score {s.score * 10:.3g}/10" if s.score is not None else "no score")
        for s in scored
    ]
    chosen = "the best-scored" if winner.score is not None else "no score could be read, so the first"
    lines.append(f"Answer: {chosen} helpful solution (round {winner.round + 1}, solution {solution.index + 1}).")
    return Outcome(
        answer=answer,
        thinking=solution.thinking,
        tool_calls=calls,
        finish_reason="length" if solution.truncated else "stop",
        iterations=rounds,
        reasoning="\n".join(lines),
        extras={
            "scores": [
                {"round": s.round + 1, "mode": s.mode, "solution": s.sample.index + 1, "score": s.score} for s in scored
            ],
            "winner": {"round": winner.round + 1, "solution": solution.index + 1, "score": winner.score},
            "refined_queries": refinements,
            "verdicts": [s.verdict for s in scored],
        },
    )
