"""The prover-verifier game: call graph and critical path, settings, scores, refinement, failures, tools."""

from __future__ import annotations

import pytest

from optillm_core import (
    AuthenticationError,
    GenerationSettings,
    ModelProfile,
    PhaseStarted,
    Prompt,
    RateLimitError,
    default_registry,
)
from optillm_core.testing import CLAUDE_OPUS, O3_MINI, FunctionClient, RecordedRequest, Reply, sequential_depth
from optillm_reasoning import PvgConfig, PvgOptimizer

from ..tools_support import CALL, WEATHER, WITH_TOOLS
from ._support import PVG_QUERY, REFINED, PvgModel, user_text

pytestmark = pytest.mark.anyio

SYSTEM = "Answer briefly."


def kind(request: RecordedRequest) -> str:
    text, system = request.user_text, request.system_text or ""
    if "Verify the solution above" in text:
        return "verify"
    if "Write a refined version" in text:
        return "refine"
    return "sneaky" if "sneaky mode" in system else "helpful"


def kinds(client: FunctionClient) -> list[str]:
    return [kind(r) for r in client.requests]


async def test_two_rounds_with_native_n_are_upstreams_17_calls_in_five_round_trips() -> None:
    client = FunctionClient(PvgModel(), native_n=True, latency=0.01)
    events: list[object] = []
    solution = await PvgOptimizer().optimize(PVG_QUERY, client, system_prompt=SYSTEM, events=events.append)

    assert solution.metadata.llm_calls == len(client.requests) == 17
    assert sequential_depth(client.requests) == 5
    assert sorted(kinds(client)[:2]) == ["helpful", "sneaky"]
    assert kinds(client)[2:8] == ["verify"] * 6
    assert kinds(client)[8] == "refine"
    assert kinds(client)[11:] == ["verify"] * 6
    solvers = [r for r in client.requests if kind(r) in ("helpful", "sneaky")]
    assert [r.settings.n for r in solvers] == [3, 3, 3, 3]
    assert [r.settings.temperature for r in solvers] == [0.7, 0.7, 0.6, 0.6]
    assert {r.settings.max_tokens for r in solvers} == {4096}
    judges = [r for r in client.requests if kind(r) in ("verify", "refine")]
    assert {(kind(r), r.settings.temperature, r.settings.max_tokens) for r in judges} == {
        ("verify", 0.2, 1024),
        ("refine", 0.5, 1024),
    }
    assert all((r.system_text or "").startswith(SYSTEM) for r in client.requests)
    assert solution.answer == "12 + 7 = 19. The answer is 19."
    assert solution.metadata.iterations == 2
    extras = solution.metadata.extras
    assert extras["winner"] == {"round": 1, "solution": 1, "score": 0.9}
    assert extras["refined_queries"] == [REFINED]
    assert [s["score"] for s in extras["scores"][:6]] == [0.9, 0.9, 0.9, 0.3, 0.3, 0.3]
    phases = [(e.phase, e.round) for e in events if isinstance(e, PhaseStarted)]
    assert ("refinement", 1) in phases and ("verification", 2) in phases and ("refinement", 2) not in phases


async def test_without_native_n_each_solution_is_a_request_and_the_depth_stays_five() -> None:
    client = FunctionClient(PvgModel(), latency=0.01)
    solution = await PvgOptimizer().optimize(PVG_QUERY, client)
    assert solution.metadata.llm_calls == 2 * (6 + 6) + 1
    assert sequential_depth(client.requests) == 5
    assert client.max_in_flight == 6


async def test_three_rounds_take_eight_round_trips() -> None:
    client = FunctionClient(PvgModel(), native_n=True, latency=0.01)
    await PvgOptimizer(PvgConfig(num_rounds=3)).optimize(PVG_QUERY, client)
    assert sequential_depth(client.requests) == 3 * 3 - 1
    solvers = [r.settings.temperature for r in client.requests if kind(r) == "helpful"]
    assert solvers == [0.7, 0.6, 0.5]


async def test_the_best_scored_helpful_solution_wins_even_when_a_sneaky_one_scores_higher() -> None:
    model = PvgModel(helpful="The answer is 20.", sneaky="The answer is 19.")  # the verifier likes 19
    client = FunctionClient(model, native_n=True)
    solution = await PvgOptimizer().optimize(PVG_QUERY, client)
    assert solution.answer == "The answer is 20."


async def test_the_second_round_sees_the_refined_query_and_the_verifier_the_callers_question() -> None:
    client = FunctionClient(PvgModel(), native_n=True)
    await PvgOptimizer().optimize(PVG_QUERY, client)
    refine = next(r for r in client.requests if kind(r) == "refine")
    assert PVG_QUERY in refine.user_text and "The answer is 19." in refine.user_text
    first, second = [r for r in client.requests if kind(r) == "helpful"]
    assert first.user_text == PVG_QUERY
    assert REFINED in second.user_text and second.user_text.endswith(PVG_QUERY)  # the question keeps the last word
    verifications = [r for r in client.requests if kind(r) == "verify"]
    assert all(
        REFINED not in r.user_text and f"<problem>\n{PVG_QUERY}\n</problem>" in r.user_text for r in verifications
    )


async def test_a_later_round_wins_only_with_a_strictly_higher_score() -> None:
    answers = iter(["Round one: 19.", "x", "y", "Round two: 19.", "z", "w"])

    def reply(prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        text = user_text(prompt)
        if "Verify the solution above" in text:
            return "Score: 9" if "19" in text.split("<solution>")[1] else "Score: 1"
        if "Write a refined version" in text:
            return REFINED
        return "The answer is 20." if "sneaky mode" in (prompt.system_text() or "") else next(answers)

    solution = await PvgOptimizer().optimize(PVG_QUERY, FunctionClient(reply, native_n=True))
    assert solution.answer == "Round one: 19."


@pytest.mark.parametrize(
    "verdict",
    ["The solution looks fine overall.", "Explanation: the steps are 1, 2 and 3 and all are fine.", ""],
    ids=["prose", "several-numbers", "empty"],
)
async def test_verdicts_without_a_score_leave_the_solutions_unscored_and_the_first_helpful_one_answers(
    verdict: str,
) -> None:
    client = FunctionClient(PvgModel(verdict=verdict), native_n=True)
    solution = await PvgOptimizer().optimize(PVG_QUERY, client)
    assert solution.answer == "12 + 7 = 19. The answer is 19."
    assert all(s["score"] is None for s in solution.metadata.extras["scores"])
    assert solution.metadata.extras["winner"]["score"] is None
    assert "no score could be read" in solution.reasoning


async def test_scores_are_read_by_the_toolkits_rating_parser() -> None:
    client = FunctionClient(
        PvgModel(verdict="<think>Score: 1?</think>**Score:** 8/10\nExplanation: good"), native_n=True
    )
    solution = await PvgOptimizer().optimize(PVG_QUERY, client)
    assert {s["score"] for s in solution.metadata.extras["scores"]} == {0.8}


async def test_an_empty_refinement_keeps_the_query() -> None:
    client = FunctionClient(PvgModel(refined="  "), native_n=True)
    await PvgOptimizer().optimize(PVG_QUERY, client)
    assert [r.user_text for r in client.requests if kind(r) == "helpful"] == [PVG_QUERY, PVG_QUERY]


async def test_the_caller_s_settings_follow_the_one_rule() -> None:
    client = FunctionClient(PvgModel(helpful="The answer is 19.\n###\nmore"), native_n=True)
    caller = GenerationSettings(temperature=0.3, max_tokens=800, seed=5, stop=("###",))
    solution = await PvgOptimizer().optimize(PVG_QUERY, client, settings=caller)
    assert {r.settings.max_tokens for r in client.requests} == {800}
    solvers = [r.settings for r in client.requests if kind(r) in ("helpful", "sneaky")]
    assert {s.temperature for s in solvers} == {0.3}
    assert all(s.stop is None for s in solvers)
    judges = [r.settings for r in client.requests if kind(r) in ("verify", "refine")]
    assert {s.temperature for s in judges} == {0.2, 0.5} and all(s.seed is None for s in judges)
    assert solution.answer == "The answer is 19."  # the caller's stop, applied to the returned sample

    pinned = FunctionClient(PvgModel(), native_n=True)
    await PvgOptimizer(PvgConfig(temperature=0.9)).optimize(PVG_QUERY, pinned, settings=caller)
    assert [r.settings.temperature for r in pinned.requests if kind(r) == "helpful"] == [0.9, 0.8]


@pytest.mark.parametrize("profile", [O3_MINI, CLAUDE_OPUS], ids=["o3-mini", "claude-opus"])
async def test_a_model_that_refuses_temperature_gets_varied_prompts(profile: ModelProfile) -> None:
    client = FunctionClient(PvgModel(), native_n=profile.native_n, profile=profile)
    solution = await PvgOptimizer().optimize(PVG_QUERY, client, settings=GenerationSettings(temperature=0.5))
    assert client.refused == []
    assert all(r.settings.temperature is None for r in client.requests)
    helpful_round_1 = [r.user_text for r in client.requests if kind(r) == "helpful"][:3]
    assert len(set(helpful_round_1)) == 3 and PVG_QUERY in helpful_round_1
    assert all(p.endswith(PVG_QUERY) for p in helpful_round_1)
    assert solution.metadata.llm_calls == 25 == PvgOptimizer().planned_calls(client)
    assert "19" in solution.answer


async def test_a_401_during_verification_ends_the_run_with_the_provider_message() -> None:
    model = PvgModel()

    def reply(prompt: Prompt, settings: GenerationSettings) -> str | Reply | Exception:
        if "Verify the solution above" in user_text(prompt):
            return AuthenticationError("Incorrect API key provided: sk-…abcd", status_code=401)
        return model(prompt, settings)

    client = FunctionClient(reply, native_n=True)
    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        await PvgOptimizer().optimize(PVG_QUERY, client)
    assert "refine" not in kinds(client)


async def test_a_rate_limited_verification_leaves_one_solution_unscored() -> None:
    model = PvgModel()
    seen = {"verify": 0}

    def reply(prompt: Prompt, settings: GenerationSettings) -> str | Reply | Exception:
        if "Verify the solution above" in user_text(prompt):
            seen["verify"] += 1
            if seen["verify"] == 1:
                return RateLimitError("Rate limit reached", status_code=429)
        return model(prompt, settings)

    solution = await PvgOptimizer().optimize(PVG_QUERY, FunctionClient(reply, native_n=True))
    scores = [s["score"] for s in solution.metadata.extras["scores"]]
    assert scores.count(None) == 1
    assert "19" in solution.answer


async def test_sneaky_solutions_that_all_fail_leave_the_round_to_the_helpful_ones() -> None:
    model = PvgModel()

    def reply(prompt: Prompt, settings: GenerationSettings) -> str | Reply | Exception:
        if "sneaky mode" in (prompt.system_text() or ""):
            return RateLimitError("Rate limit reached", status_code=429)
        return model(prompt, settings)

    solution = await PvgOptimizer().optimize(PVG_QUERY, FunctionClient(reply, native_n=True))
    assert {s["mode"] for s in solution.metadata.extras["scores"]} == {"helpful"}
    assert len(solution.metadata.extras["scores"]) == 6


async def test_with_tools_the_helpful_solutions_get_them_and_a_tool_call_can_win() -> None:
    client = FunctionClient(PvgModel(helpful=Reply("", tool_calls=(CALL,))), native_n=True)
    solution = await PvgOptimizer().optimize("What should I wear in Paris?", client, settings=WITH_TOOLS)
    for request in client.requests:
        tools = request.settings.tools
        assert tools == ((WEATHER,) if kind(request) == "helpful" else None), kind(request)
    helpful = [r for r in client.requests if kind(r) == "helpful"]
    assert helpful[0].user_text == "What should I wear in Paris?"  # the caller's own turn
    assert "helpful mode" in (helpful[0].system_text or "")
    assert REFINED in (helpful[1].system_text or "")  # the refined statement goes in the note
    verifications = [r.user_text for r in client.requests if kind(r) == "verify"]
    assert sum("[calls the tool `get_weather`" in v for v in verifications) == 6
    assert solution.tool_calls == (CALL,)


@pytest.mark.parametrize(
    ("options", "native_n", "settings", "profile"),
    [
        pytest.param({}, False, GenerationSettings(), None, id="defaults"),
        pytest.param({}, True, GenerationSettings(), None, id="native-n"),
        pytest.param({"num_rounds": 3, "num_solutions": 2}, True, GenerationSettings(), None, id="3x2"),
        pytest.param({"num_rounds": 1}, True, GenerationSettings(), None, id="one-round"),
        pytest.param({}, True, GenerationSettings(), ModelProfile(max_n=2), id="max-n-2"),
        pytest.param({}, True, GenerationSettings(temperature=0), None, id="temperature-0"),
        pytest.param({}, True, WITH_TOOLS, None, id="tools"),
    ],
)
async def test_planned_calls_are_the_calls_a_run_makes(
    options: dict[str, object], native_n: bool, settings: GenerationSettings, profile: ModelProfile | None
) -> None:
    client = FunctionClient(PvgModel(), native_n=native_n, profile=profile)
    optimizer = PvgOptimizer.from_options(options)
    planned = optimizer.planned_calls(client, settings)
    solution = await optimizer.optimize(PVG_QUERY, client, settings=settings)
    assert solution.metadata.llm_calls == len(client.requests) == planned


async def test_pvg_is_registered() -> None:
    info = default_registry().get("pvg")
    assert info.optimizer is PvgOptimizer
    assert PvgOptimizer.answers_with_tools
