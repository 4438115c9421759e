"""The MARS pipeline end to end over a fake model: phases, call counts, settings on the wire, selection."""

from __future__ import annotations

import pytest

from optillm_core import AnswerDelta, EventChannel, GenerationSettings, OptimizerEvent, PhaseStarted, Prompt
from optillm_core.testing import count_tokens
from optillm_core.toolkit import normalize_answer
from optillm_mars import MarsConfig, MarsOptimizer, SelectionMethod, Verdict

from .fakes import (
    CORRECT,
    INCORRECT,
    SOLUTION,
    STRATEGY,
    FakeMars,
    agent_of,
    boxed,
    phase_of,
    user_text,
    verdict_by_answer,
)

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
DEFAULT = GenerationSettings(max_tokens=8000)
NO_EXTRAS = MarsConfig(enable_aggregation=False, enable_strategy_network=False)


async def test_defaults_run_every_phase_and_stop_once_verified() -> None:
    client = FakeMars()
    solution = await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT)

    assert client.calls() == {
        "exploration": 3,
        "aggregation": 5,  # 1 group in loop 1 (3 solutions are one group), then 2 distinct groups per loop
        "strategy": 3,
        "enhancement": 3,
        "verification": 18,  # 6 population + 3 enhanced, 2 concurrent passes each
    }
    assert solution.metadata.llm_calls == 32
    assert solution.metadata.iterations == 1
    extras = solution.metadata.extras
    assert extras["selection_method"] == SelectionMethod.BEST_VERIFIED
    assert extras["final_answer"] == "19"
    assert "\\boxed{19}" in solution.answer
    assert "<think>" not in solution.answer
    assert solution.thinking == "12 + 7 = 19, and 19 - 7 = 12 checks."  # the chosen solution's own
    assert solution.reasoning.startswith(f"best_verified: solution {extras['final_solution_id']} (agent ")
    assert "Answers in play: 19 ×9." in solution.reasoning
    assert "9 of 9 solutions verified" in solution.reasoning
    assert len(extras["verified_solution_ids"]) == 9
    assert {s["id"] for s in extras["solutions"]} >= set(extras["active_solution_ids"])
    assert len(extras["strategies"]) == 3


async def test_usage_is_exact_and_nonzero() -> None:
    client = FakeMars()
    solution = await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT)

    replies = {"verification": CORRECT, "strategy": STRATEGY}
    output = sum(count_tokens(replies.get(phase_of(r.prompt), SOLUTION)) for r in client.requests)
    prompt = sum(count_tokens(m.content) for r in client.requests for m in r.messages)
    assert solution.metadata.llm_calls == len(client.requests)
    assert solution.usage.output_tokens == output > 0
    assert solution.usage.input_tokens == prompt > 0


async def test_phase_temperatures_reach_the_wire_without_caller_settings() -> None:
    client = FakeMars()
    await MarsOptimizer().optimize(QUERY, client, settings=GenerationSettings(max_tokens=8000, n=3))

    explore = sorted(client.of("exploration"), key=lambda r: agent_of(r.prompt))
    assert [r.settings.temperature for r in explore] == [0.3, 0.6, 1.0]
    assert {r.settings.temperature for r in client.of("verification")} == {0.1}
    assert {r.settings.temperature for r in client.of("aggregation")} == {0.7}
    assert {r.settings.temperature for r in client.of("strategy")} == {0.3}
    assert sorted(r.settings.temperature or 0.0 for r in client.of("enhancement")) == [0.3, 0.6, 1.0]
    assert {r.settings.max_tokens for r in client.requests} == {8000}
    assert {r.settings.n for r in client.requests} == {1}  # the caller's n never multiplies MARS's calls
    assert {r.settings.seed for r in client.requests} == {None}


async def test_without_caller_max_tokens_no_call_sends_a_limit() -> None:
    client = FakeMars()
    await MarsOptimizer().optimize(QUERY, client)
    assert {r.settings.max_tokens for r in client.requests} == {None}


async def test_phase_limits_are_capped_by_the_caller() -> None:
    config = MarsConfig(token_budget_reasoning=12_345, token_budget_review=2_000)
    free, capped = FakeMars(), FakeMars()
    await MarsOptimizer(config).optimize(QUERY, free)
    await MarsOptimizer(config).optimize(QUERY, capped, settings=GenerationSettings(max_tokens=9_000))

    judges = ("verification", "strategy")
    assert {r.settings.max_tokens for r in free.requests if phase_of(r.prompt) in judges} == {2_000}
    assert {r.settings.max_tokens for r in free.requests if phase_of(r.prompt) not in judges} == {12_345}
    assert {r.settings.max_tokens for r in capped.requests if phase_of(r.prompt) in judges} == {2_000}
    assert {r.settings.max_tokens for r in capped.requests if phase_of(r.prompt) not in judges} == {9_000}


async def test_lightweight_mode_for_small_max_tokens() -> None:
    client = FakeMars(verification=verdict_by_answer("19"), exploration=boxed("20"), improvement=boxed("19"))
    solution = await MarsOptimizer().optimize(QUERY, client, settings=GenerationSettings(max_tokens=4000))

    calls = client.calls()
    assert calls["exploration"] == 2
    assert calls["aggregation"] == calls["strategy"] == calls["enhancement"] == 0
    assert calls["verification"] == 2 + 2  # one pass each, then again after the single improvement
    assert calls["improvement"] == 2
    assert {r.settings.max_tokens for r in client.requests} == {4000}
    assert solution.metadata.extras["lightweight"] is True
    assert solution.metadata.extras["final_answer"] == "19"


async def test_improvement_really_replaces_a_failing_solution() -> None:
    def explore(prompt: Prompt, settings: GenerationSettings) -> str:
        return boxed("20") if agent_of(prompt) == 1 else boxed("19")

    client = FakeMars(exploration=explore, verification=verdict_by_answer("19"), improvement=boxed("19"))
    config = NO_EXTRAS.with_overrides({"consensus_threshold": 3})  # agents 2 and 3 alone would end the loop
    solution = await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT)

    [improve] = client.of("improvement")
    assert "\\boxed{20}" in user_text(improve.prompt)
    assert "the sum is wrong" in user_text(improve.prompt)  # the verifier's issue is in the rewrite prompt
    assert improve.settings.temperature == pytest.approx(0.3 * 0.8)

    solutions = {s["id"]: s for s in solution.metadata.extras["solutions"]}
    fixed = solutions["agent1-initial"]
    assert fixed["revision"] == 1
    assert fixed["phase"] == "improved"
    assert fixed["answer"] == "19"
    assert fixed["is_verified"] is True
    history = [(v["revision"], v["verdict"]) for v in fixed["verifications"]]
    assert history == [(0, Verdict.INCORRECT), (0, Verdict.INCORRECT), (1, Verdict.CORRECT), (1, Verdict.CORRECT)]
    assert solution.metadata.iterations == 2


async def test_consensus_stops_the_improvement_loop_early() -> None:
    def improve(prompt: Prompt, settings: GenerationSettings) -> str:
        # Agents 1 and 2 fix their solutions; agent 3 never does.
        return boxed("19") if settings.temperature in (0.3 * 0.8, 0.6 * 0.8) else boxed("21")

    client = FakeMars(exploration=boxed("20"), verification=verdict_by_answer("19"), improvement=improve)
    solution = await MarsOptimizer(NO_EXTRAS).optimize(QUERY, client, settings=DEFAULT)

    assert client.calls()["improvement"] == 3  # one iteration, not five
    assert solution.metadata.iterations == 2
    assert len(solution.metadata.extras["verified_solution_ids"]) == 2
    assert solution.metadata.extras["selection_method"] == SelectionMethod.BEST_VERIFIED
    assert solution.metadata.extras["final_answer"] == "19"


async def test_unverifiable_run_uses_every_iteration_then_votes() -> None:
    client = FakeMars(verification=INCORRECT)
    config = NO_EXTRAS.with_max_iterations(3)
    solution = await MarsOptimizer(config).optimize(QUERY, client, settings=DEFAULT)

    calls = client.calls()
    assert calls["improvement"] == 3 * 3
    assert calls["verification"] == 3 * 2 * (1 + 3)
    assert solution.metadata.iterations == 4
    assert solution.metadata.extras["selection_method"] == SelectionMethod.MAJORITY_VOTING
    assert calls["synthesis"] == 0


async def test_every_phase_a_run_enters_is_declared_and_repeats_count_rounds() -> None:
    client = FakeMars(
        exploration=lambda p, s: boxed(str(17 + agent_of(p))), verification=INCORRECT, improvement=boxed("21")
    )
    channel = EventChannel()
    await MarsOptimizer(MarsConfig(max_iterations=2)).optimize(QUERY, client, settings=DEFAULT, events=channel)

    started = [e for e in channel.drain() if isinstance(e, PhaseStarted)]
    declared = set(MarsOptimizer.phases)
    assert {e.phase for e in started} == declared  # every declared phase is entered, and nothing else
    labels = [e.label for e in started]
    assert labels[:1] == ["exploration"]
    assert [label for label in labels if label.startswith("aggregation")] == [
        "aggregation 1",
        "aggregation 2",
        "aggregation 3",
    ]
    assert [label for label in labels if label.startswith(("verification", "improvement"))] == [
        "verification 1",
        "improvement 1",
        "improvement 2",
    ]
    assert labels[-1] == "synthesis"


@pytest.mark.parametrize(
    ("answers", "expected"),
    [(("19", "19.0", "$19$"), "19"), (("\\frac{38}{2}", "20", "19"), "19"), (("7/2", "3.5", "4"), "7/2")],
)
async def test_majority_vote_over_equivalent_answers(answers: tuple[str, str, str], expected: str) -> None:
    client = FakeMars(exploration=lambda p, s: boxed(answers[agent_of(p) - 1]), verification=INCORRECT)
    solution = await MarsOptimizer(NO_EXTRAS.with_max_iterations(0)).optimize(QUERY, client, settings=DEFAULT)

    assert solution.metadata.extras["selection_method"] == SelectionMethod.MAJORITY_VOTING
    assert normalize_answer(solution.metadata.extras["final_answer"]) == expected
    assert client.calls()["synthesis"] == 0


async def test_synthesis_call_when_nothing_is_verified_and_answers_differ() -> None:
    client = FakeMars(
        exploration=lambda p, s: boxed(str(17 + agent_of(p))),
        verification=INCORRECT,
        synthesis="Checking each candidate, 12 + 7 = 19. \\boxed{19}",
    )
    solution = await MarsOptimizer(NO_EXTRAS.with_max_iterations(0)).optimize(QUERY, client, settings=DEFAULT)

    [synthesis] = client.of("synthesis")
    assert synthesis.settings.temperature == 0.3
    assert all(f"\\boxed{{{n}}}" in user_text(synthesis.prompt) for n in (18, 19, 20))
    assert "the sum is wrong" in user_text(synthesis.prompt)
    extras = solution.metadata.extras
    assert extras["selection_method"] == SelectionMethod.SYNTHESIZED
    assert extras["final_answer"] == "19"
    assert extras["final_solution_id"].startswith("synthesized-")


async def test_the_synthesis_reaches_the_caller_as_it_is_generated_without_its_thinking() -> None:
    client = FakeMars(
        exploration=lambda p, s: boxed(str(17 + agent_of(p))),
        verification=INCORRECT,
        synthesis="<think>18, 19 and 20 were proposed; 12 + 7 = 19.</think>\n\nThe sum is \\boxed{19}.",
    )
    events: list[OptimizerEvent] = []
    solution = await MarsOptimizer(NO_EXTRAS.with_max_iterations(0)).optimize(
        QUERY, client, settings=DEFAULT, events=events.append
    )

    deltas = [e.delta for e in events if isinstance(e, AnswerDelta)]
    assert len(deltas) > 1
    assert "".join(deltas) == solution.answer == "The sum is \\boxed{19}."
    assert all(e.optimizer == "mars" for e in events if isinstance(e, AnswerDelta))


async def test_no_answer_is_streamed_when_a_solution_is_chosen_without_a_call() -> None:
    events: list[OptimizerEvent] = []
    solution = await MarsOptimizer(NO_EXTRAS).optimize(QUERY, FakeMars(), settings=DEFAULT, events=events.append)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.BEST_VERIFIED
    assert not [e for e in events if isinstance(e, AnswerDelta)]


async def test_cross_agent_verification_never_asks_the_author() -> None:
    client = FakeMars()
    solution = await MarsOptimizer().optimize(QUERY, client, settings=DEFAULT)
    for s in solution.metadata.extras["solutions"]:
        for v in s["verifications"]:
            assert v["verifier_agent_id"] != s["agent_id"]
    # The two concurrent passes over one solution come from two different agents.
    for s in solution.metadata.extras["solutions"]:
        assert len({v["verifier_agent_id"] for v in s["verifications"]}) == len(s["verifications"])


async def test_caller_system_prompt_and_thinking_tags() -> None:
    client = FakeMars()
    await MarsOptimizer(NO_EXTRAS).optimize(QUERY, client, system_prompt="Answer in French.", settings=DEFAULT)
    for request in client.of("exploration"):
        assert "Answer in French." in (request.system_text or "")
        assert "<think>" in (request.system_text or "")
    for request in client.of("verification"):
        assert "Answer in French." not in (request.system_text or "")

    plain = FakeMars()
    await MarsOptimizer(NO_EXTRAS.with_overrides({"use_thinking_tags": False})).optimize(QUERY, plain)
    assert all("<think>" not in (r.system_text or "") for r in plain.of("exploration"))


async def test_concurrency_limit_bounds_calls_in_flight() -> None:
    # A little latency, so that calls started together are in flight together (with none, a call
    # can end before the next one starts, whatever the concurrency).
    limited = FakeMars(latency=0.01)
    await MarsOptimizer(MarsConfig(max_concurrency=2)).optimize(QUERY, limited, settings=DEFAULT)
    assert limited.max_in_flight == 2

    free = FakeMars(latency=0.01)
    await MarsOptimizer().optimize(QUERY, free, settings=DEFAULT)
    assert free.max_in_flight == 18  # the whole verification round at once


async def test_debug_logs_phase_summaries_at_info_level() -> None:
    from structlog.testing import capture_logs

    with capture_logs() as quiet:
        await MarsOptimizer(NO_EXTRAS).optimize(QUERY, FakeMars(), settings=DEFAULT)
    with capture_logs() as loud:
        await MarsOptimizer(NO_EXTRAS.with_debug()).optimize(QUERY, FakeMars(), settings=DEFAULT)
    assert {e["log_level"] for e in quiet if e["event"] == "exploration done"} == {"debug"}
    assert {e["log_level"] for e in loud if e["event"] == "exploration done"} == {"info"}
