"""Failing calls, budgets, time limits and cancellation: what MARS does with each."""

from __future__ import annotations

import anyio
import pytest

from optillm_core import (
    AnswerDelta,
    AuthenticationError,
    BadRequestError,
    Budget,
    BudgetExhausted,
    ClientError,
    EventChannel,
    GenerationSettings,
    ModelProfile,
    NoSolutions,
    OptimizerEvent,
    Prompt,
    ProviderUnavailable,
    RateLimitError,
    Timeout,
)
from optillm_core.testing import Reply
from optillm_mars import Error, MarsConfig, MarsOptimizer, SelectionMethod, Verdict

from .fakes import CORRECT, INCORRECT, Answer, FakeMars, agent_of, boxed, user_text, verdict_by_answer

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
DEFAULT = GenerationSettings(max_tokens=8000)
NO_EXTRAS = MarsConfig(enable_aggregation=False, enable_strategy_network=False)


def errors(channel: EventChannel) -> list[Error]:
    return [e for e in channel.drain() if isinstance(e, Error)]


async def test_a_failed_exploration_call_leaves_that_agent_out() -> None:
    def explore(prompt: Prompt, settings: GenerationSettings) -> Answer:
        return ProviderUnavailable("upstream 503") if agent_of(prompt) == 2 else boxed("19")

    client = FakeMars(exploration=explore)
    channel = EventChannel()
    solution = await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT, events=channel)

    ids = {s["id"] for s in solution.metadata.extras["solutions"]}
    assert "agent2-initial" not in ids
    assert {"agent1-initial", "agent3-initial"} <= ids
    assert solution.metadata.extras["final_answer"] == "19"
    [error] = [e for e in errors(channel) if e.phase == "exploration"]
    assert "upstream 503" in error.message


async def test_every_exploration_call_failing_is_a_clear_error() -> None:
    client = FakeMars(exploration=RateLimitError("slow down"))
    with pytest.raises(NoSolutions, match=r"all 3 MARS exploration calls failed.*slow down"):
        await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT)


async def test_an_empty_reply_counts_as_a_failed_call() -> None:
    client = FakeMars(exploration=lambda p, s: "   " if agent_of(p) == 1 else boxed("19"))
    solution = await MarsOptimizer(NO_EXTRAS).optimize(QUERY, client, settings=DEFAULT)
    assert "agent1-initial" not in {s["id"] for s in solution.metadata.extras["solutions"]}


async def test_a_failed_verification_counts_as_not_verified_and_is_retried() -> None:
    failures = {"left": 1}

    def verify(prompt: Prompt, settings: GenerationSettings) -> Answer:
        if "written by agent 1" in user_text(prompt) and failures["left"]:
            failures["left"] -= 1
            return ProviderUnavailable("verifier down")
        return CORRECT

    client = FakeMars(verification=verify)
    config = NO_EXTRAS.with_overrides({"consensus_threshold": 3})
    solution = await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT)

    solutions = {s["id"]: s for s in solution.metadata.extras["solutions"]}
    first = solutions["agent1-initial"]
    assert first["revision"] == 0  # no review to act on, so no rewrite: verified again as it was
    assert client.calls()["improvement"] == 0
    rounds = [(v["round"], v["verdict"], v["error"] is not None) for v in first["verifications"]]
    assert (1, Verdict.UNCLEAR, True) in rounds
    assert first["is_verified"] is True
    assert solution.metadata.iterations == 2


async def test_a_failed_improvement_keeps_the_old_solution() -> None:
    client = FakeMars(
        exploration=boxed("20"), verification=verdict_by_answer("19"), improvement=ProviderUnavailable("down")
    )
    channel = EventChannel()
    config = NO_EXTRAS.with_max_iterations(2)
    solution = await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT, events=channel)

    assert all(s["revision"] == 0 for s in solution.metadata.extras["solutions"])
    assert client.calls()["improvement"] == 3 * 2
    assert client.calls()["verification"] == 3 * 2  # unchanged solutions are not reviewed again
    assert len([e for e in errors(channel) if e.phase == "improvement"]) == 6
    assert solution.metadata.extras["selection_method"] == SelectionMethod.MAJORITY_VOTING


async def test_failed_synthesis_falls_back_to_the_highest_ranked_solution() -> None:
    client = FakeMars(
        exploration=lambda p, s: boxed(str(17 + agent_of(p))),
        verification="VERDICT: INCORRECT\nSCORE: 0.3",
        synthesis=ProviderUnavailable("down"),
    )
    solution = await MarsOptimizer(NO_EXTRAS.with_max_iterations(0)).optimize(QUERY, client, settings=DEFAULT)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.HIGHEST_SCORE


@pytest.mark.parametrize(
    ("synthesis", "finish"), [(Reply("So 12 + 7 is", finish_reason="length"), "length"), ("\\boxed{19}", "stop")]
)
async def test_a_synthesis_cut_at_its_token_limit_is_answered_as_cut(synthesis: Reply | str, finish: str) -> None:
    client = FakeMars(
        exploration=lambda p, s: boxed(str(17 + agent_of(p))), verification=INCORRECT, synthesis=synthesis
    )
    solution = await MarsOptimizer(NO_EXTRAS.with_max_iterations(0)).optimize(QUERY, client, settings=DEFAULT)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.SYNTHESIZED
    assert solution.finish_reason == finish


async def test_failures_in_aggregation_and_strategy_network_degrade_gracefully() -> None:
    client = FakeMars(aggregation=ProviderUnavailable("down"), strategy=ProviderUnavailable("down"))
    channel = EventChannel()
    solution = await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT, events=channel)

    assert client.calls()["enhancement"] == 0  # no strategy to share
    assert solution.metadata.extras["active_solution_ids"] == ["agent1-initial", "agent2-initial", "agent3-initial"]
    phases = {e.phase for e in errors(channel)}
    assert phases == {"aggregation", "strategy extraction"}


async def test_a_programming_error_is_not_swallowed() -> None:
    client = FakeMars(verification=ValueError("bug in a client"))
    with pytest.raises(ValueError, match="bug in a client"):
        await MarsOptimizer(NO_EXTRAS).optimize(QUERY, client, settings=DEFAULT)


async def test_budget_exhaustion_returns_the_best_so_far() -> None:
    client = FakeMars()
    solution = await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT, budget=Budget(max_calls=10))
    assert solution.metadata.budget_exhausted is True
    assert solution.metadata.llm_calls == 10
    assert solution.metadata.extras["final_answer"] == "19"
    assert "budget" in solution.metadata.extras
    assert solution.thinking == "12 + 7 = 19, and 19 - 7 = 12 checks."  # the best-so-far keeps its thinking
    assert solution.reasoning.startswith("majority_voting: no solution was verified; 3 of 3 solutions")
    assert client.in_flight == 0


async def test_budget_exhausted_before_any_solution_raises() -> None:
    with pytest.raises(BudgetExhausted):
        await MarsOptimizer().optimize(QUERY, FakeMars(), settings=DEFAULT, budget=Budget(max_calls=2))


async def test_timeout_returns_the_best_so_far() -> None:
    async def hang(prompt: Prompt, settings: GenerationSettings) -> Answer:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    client = FakeMars(verification=hang)
    config = NO_EXTRAS.with_overrides({"timeout_seconds": 2.0})
    solution = await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT)
    assert solution.metadata.budget_exhausted is True
    assert solution.metadata.extras["final_answer"] == "19"
    assert "timeout" in solution.metadata.extras
    assert client.in_flight == 0


async def test_timeout_before_any_solution_raises_timeout() -> None:
    async def hang(prompt: Prompt, settings: GenerationSettings) -> Answer:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    config = MarsConfig(timeout_seconds=0.05)
    with pytest.raises(Timeout, match=r"timeout_seconds=0\.05"):
        await MarsOptimizer(config).optimize(QUERY, FakeMars(exploration=hang), settings=DEFAULT)


async def test_cancellation_mid_run_leaves_no_call_behind() -> None:
    reviewing = anyio.Event()
    seen = {"verification": 0}

    async def hang(prompt: Prompt, settings: GenerationSettings) -> Answer:
        seen["verification"] += 1
        if seen["verification"] == 18:
            reviewing.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    client = FakeMars(verification=hang)
    finished = False

    async def run() -> None:
        nonlocal finished
        await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT)
        finished = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        await reviewing.wait()
        assert client.in_flight == 18
        tg.cancel_scope.cancel()

    assert not finished
    assert client.in_flight == 0
    assert all(r.ended_at is not None for r in client.requests)


async def test_thousands_of_events_never_block_a_run_nobody_reads() -> None:
    channel = EventChannel(max_buffer=100)
    client = FakeMars(verification="VERDICT: INCORRECT\nSCORE: 0.1\nISSUES:\n- wrong")
    config = MarsConfig().with_num_agents(20).with_max_iterations(15)
    solution = await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT, events=channel)

    assert solution.metadata.iterations == 16
    assert channel.sent > 2000
    assert channel.dropped == channel.sent - 100
    assert channel.closed
    kinds = {e.kind for e in channel.drain()}
    assert isinstance(next(iter(kinds)), str)
    assert "RunCompleted" in kinds


async def test_every_event_kind_reaches_a_callback() -> None:
    seen: list[OptimizerEvent] = []

    def explore(prompt: Prompt, settings: GenerationSettings) -> Answer:
        return ProviderUnavailable("down") if agent_of(prompt) == 3 else boxed("20")

    client = FakeMars(exploration=explore, verification=verdict_by_answer("19"), improvement=boxed("19"))
    config = MarsConfig(consensus_threshold=10)  # keep improving until every solution is verified
    await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT, events=seen.append)

    kinds = {e.kind for e in seen}
    assert kinds >= {
        "ExplorationStarted",
        "SolutionGenerated",
        "AggregationStarted",
        "SolutionsAggregated",
        "StrategyNetworkStarted",
        "StrategyExtracted",
        "VerificationStarted",
        "SolutionVerified",
        "ImprovementStarted",
        "SolutionImproved",
        "SynthesisStarted",
        "AnswerSynthesized",
        "Completed",
        "Error",
    }
    assert all(e.optimizer == "mars" for e in seen)
    assert [e.kind for e in seen].index("ExplorationStarted") < [e.kind for e in seen].index("Completed")
    assert seen[-1].kind == "RunCompleted"


# -- replies real models send when something goes wrong ---------------------------------------------

THOUGHT_OUT = Reply("", thinking="Let me think. 12 + 7 … carry the one … let me recheck", finish_reason="length")
GARBAGE = ("I cannot help with that.", "Lorem ipsum dolor sit amet.", "SCORE: banana", "???", "VERDICT:")


async def test_a_reply_that_is_all_thinking_leaves_that_agent_out_and_says_why() -> None:
    client = FakeMars(exploration=lambda p, s: THOUGHT_OUT if agent_of(p) == 2 else boxed("19"))
    channel = EventChannel()
    solution = await MarsOptimizer(NO_EXTRAS).optimize(QUERY, client, settings=DEFAULT, events=channel)

    assert "agent2-initial" not in {s["id"] for s in solution.metadata.extras["solutions"]}
    [error] = [e for e in errors(channel) if e.phase == "exploration"]
    assert "whole output limit thinking" in error.message
    assert "raise max_tokens" in error.message
    assert "carry the one" not in solution.answer


async def test_every_explorer_thinking_without_answering_is_a_clear_error() -> None:
    client = FakeMars(exploration=Reply("", thinking="hmm, let me see"), profile=ModelProfile(thinking="tags"))
    with pytest.raises(NoSolutions, match="only thinking and no answer"):
        await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT)


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_garbage_reviews_never_trigger_rewrites_and_the_run_still_answers(garbage: str) -> None:
    client = FakeMars(exploration=lambda p, s: boxed("19") if agent_of(p) < 3 else boxed("20"), verification=garbage)
    config = NO_EXTRAS.with_max_iterations(2)
    solution = await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT)

    calls = client.calls()
    assert calls["improvement"] == 0  # nothing to act on: the solutions are reviewed again unchanged
    assert calls["verification"] == 3 * 2 * (1 + 2)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.MAJORITY_VOTING
    assert solution.metadata.extras["final_answer"] == "19"
    verdicts = {v["verdict"] for s in solution.metadata.extras["solutions"] for v in s["verifications"]}
    assert verdicts == {Verdict.UNCLEAR}


async def test_a_review_that_is_all_thinking_counts_as_a_failed_review() -> None:
    client = FakeMars(verification=THOUGHT_OUT)
    solution = await MarsOptimizer(NO_EXTRAS.with_max_iterations(1)).optimize(QUERY, client, settings=DEFAULT)

    reviews = [v for s in solution.metadata.extras["solutions"] for v in s["verifications"]]
    assert reviews
    assert all(v["verdict"] == Verdict.UNCLEAR and "thinking" in v["error"] for v in reviews)
    assert client.calls()["improvement"] == 0
    assert solution.metadata.extras["verified_solution_ids"] == []
    assert solution.metadata.extras["final_answer"] == "19"  # all three agree: a majority vote


async def test_a_synthesis_that_is_all_thinking_falls_back_to_the_best_solution() -> None:
    client = FakeMars(
        exploration=lambda p, s: boxed(str(17 + agent_of(p))), verification=INCORRECT, synthesis=THOUGHT_OUT
    )
    events: list[OptimizerEvent] = []
    solution = await MarsOptimizer(NO_EXTRAS.with_max_iterations(0)).optimize(
        QUERY, client, settings=DEFAULT, events=events.append
    )
    assert solution.metadata.extras["selection_method"] == SelectionMethod.HIGHEST_SCORE
    assert "carry the one" not in solution.answer + solution.thinking
    assert solution.answer.endswith("\\boxed{" + solution.metadata.extras["final_answer"] + "}.")
    assert not [e for e in events if isinstance(e, AnswerDelta) and e.delta.strip()]


@pytest.mark.parametrize(
    "error",
    [
        AuthenticationError("Incorrect API key provided: sk-...abcd", status_code=401),
        AuthenticationError("Your organization may not use this model", status_code=403),
        BadRequestError("Unsupported value: 'temperature' does not support 0.1", status_code=400),
    ],
    ids=["401", "403", "400"],
)
async def test_an_error_retrying_cannot_fix_during_verification_ends_the_run_with_the_providers_message(
    error: ClientError,
) -> None:
    """Only retryable errors and unreadable replies are absorbed (the one policy); this one is for the caller to fix."""

    def verify(prompt: Prompt, settings: GenerationSettings) -> Answer:
        return error if "written by agent 1" in user_text(prompt) else CORRECT

    client = FakeMars(verification=verify)
    with pytest.raises(type(error), match=str(error).split(":")[0]):
        await MarsOptimizer(NO_EXTRAS.with_max_iterations(1)).optimize(QUERY, client, settings=DEFAULT)
    assert client.of("synthesis") == []


@pytest.mark.parametrize("phase", ["exploration", "aggregation", "strategy", "enhancement", "improvement", "synthesis"])
async def test_a_401_in_any_phase_ends_the_run_with_the_providers_message(phase: str) -> None:
    unauthorised = AuthenticationError("Incorrect API key provided: sk-...abcd", status_code=401)
    handlers: dict[str, object] = {phase: unauthorised}
    if phase == "improvement":  # reached only when the reviews fail the solutions
        handlers["verification"] = INCORRECT
    if phase == "synthesis":  # reached only when no solution is verified and no two agree
        handlers["exploration"] = lambda p, s: boxed(str(17 + agent_of(p)))
        handlers["verification"] = INCORRECT
    config = MarsConfig(
        enable_aggregation=phase == "aggregation",
        enable_strategy_network=phase in ("strategy", "enhancement"),
        max_iterations=1 if phase == "improvement" else 0,
    )
    client = FakeMars(**handlers)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="Incorrect API key provided"):
        await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT)


async def test_every_verifier_down_ends_with_a_vote_not_a_crash() -> None:
    client = FakeMars(verification=RateLimitError("slow down"))
    channel = EventChannel()
    solution = await MarsOptimizer(NO_EXTRAS.with_max_iterations(2)).optimize(
        QUERY, client, settings=DEFAULT, events=channel
    )
    assert client.calls()["improvement"] == 0
    assert solution.metadata.extras["selection_method"] == SelectionMethod.MAJORITY_VOTING
    assert {e.phase for e in errors(channel)} == {"verification"}
    assert "3 verification round(s), 0 rewrite(s); 0 of 3 solutions verified." in solution.reasoning
