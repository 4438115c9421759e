"""PlanSearch: call graph, concurrency, wire settings, choosing a plan, malformed replies, failures and tools."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from optillm_code import PlanSearchConfig, PlanSearchOptimizer, observation_lines
from optillm_core import (
    AuthenticationError,
    GenerationSettings,
    NoSolutions,
    OptimizerEvent,
    PhaseStarted,
    Prompt,
    ProviderUnavailable,
    default_registry,
)
from optillm_core.testing import (
    CLAUDE_OPUS,
    O3_MINI,
    FaultyClient,
    FunctionClient,
    RecordedRequest,
    Reply,
    ReplyLike,
    sequential_depth,
)
from optillm_core.toolkit import FunctionScorer, LlmJudgeScorer

from ..tools_support import CALL, WEATHER, WITH_TOOLS

pytestmark = pytest.mark.anyio

PROBLEM = "Given a list of integers, return the length of its longest strictly increasing subsequence."
SYSTEM = "You are an expert competitive programmer."


def step_of(text: str) -> str:
    if "Rate the response" in text:
        return "judge"
    if "new observations" in text:
        return "derived"
    if "List " in text and "observations" in text:
        return "observations"
    if "write the plan in plain words" in text:
        return "plan"
    if "Reply with the program only" in text:
        return "code"
    return "other"


def step(request: RecordedRequest) -> str:
    return step_of(request.user_text + "\n" + (request.system_text or ""))


class Coder:
    """A model that tells its plans apart: plan i's observations name i, and its code returns i."""

    def __init__(self, code: dict[int, str] | None = None) -> None:
        self.code = code or {}
        self.observations = 0

    def __call__(self, prompt: Prompt, settings: GenerationSettings) -> ReplyLike:
        text = "\n".join(m.content for m in prompt.effective_messages())
        kind = step_of(text)
        if kind == "observations":
            self.observations += 1
            i = self.observations
            return f"1. Idea {i}a: patience sorting.\n2. Idea {i}b: binary search.\n3. Idea {i}c: tails array."
        plan = re.search(r"Idea (\d+)a", text)
        i = int(plan.group(1)) if plan else 0
        if kind == "derived":
            return f"- Derived {i}: tails stay sorted.\n- Derived {i}: replace the first larger tail."
        if kind == "plan":
            return f"Plan {i}: keep tails; for each x, bisect and replace. (Idea {i}a)"
        if kind == "code":
            return self.code.get(i, f"```python\ndef lis(xs):\n    return {i}\n```")
        if kind == "judge":
            value = re.search(r"return (\d+)", text)
            return f"Rating: {8 if value and value.group(1) == '2' else 3}/10"
        return "?"


async def test_three_plans_run_concurrently_four_calls_deep_and_the_first_that_parses_wins() -> None:
    client = FunctionClient(Coder(), latency=0.01)
    events: list[OptimizerEvent] = []
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client, system_prompt=SYSTEM, events=events.append)

    assert len(client.requests) == solution.metadata.llm_calls == 12
    assert sequential_depth(client.requests) == 4
    assert [step(r) for r in client.requests].count("code") == 3
    assert {r.settings.temperature for r in client.requests} == {None}  # upstream sends none
    assert {r.settings.max_tokens for r in client.requests} == {4096}
    assert all(r.system_text == SYSTEM for r in client.requests)
    assert solution.answer == "```python\ndef lis(xs):\n    return 1\n```"
    extras = solution.metadata.extras
    assert (extras["chosen_plan"], extras["chosen_by"], extras["scorer"]) == (1, "first that parses", None)
    assert [p["code"] for p in extras["plans"]] == [f"def lis(xs):\n    return {i}" for i in (1, 2, 3)]
    first = extras["plans"][0]
    assert first["observations"] == ["Idea 1a: patience sorting.", "Idea 1b: binary search.", "Idea 1c: tails array."]
    assert first["derived_observations"] == [
        "Derived 1: tails stay sorted.",
        "Derived 1: replace the first larger tail.",
    ]
    phases = [(e.phase, e.round) for e in events if isinstance(e, PhaseStarted)]
    assert phases[0] == ("observations", None)
    assert sorted(p for p in phases[1:]) == sorted(
        (name, i) for name in ("derived_observations", "plan", "code") for i in (1, 2, 3)
    )


async def test_each_step_builds_on_its_own_plans_material() -> None:
    client = FunctionClient(Coder())
    await PlanSearchOptimizer().optimize(PROBLEM, client)
    by_step: dict[str, list[str]] = {}
    for r in client.requests:
        by_step.setdefault(step(r), []).append(r.user_text)
    assert all(PROBLEM in text for texts in by_step.values() for text in texts)
    assert all("List 3 useful observations" in t for t in by_step["observations"])
    assert all("list 2 new observations" in t for t in by_step["derived"])
    for text in by_step["plan"]:
        i = re.search(r"Idea (\d)a", text)
        assert i is not None and f"Derived {i.group(1)}: tails stay sorted." in text
        assert "quote exactly" in text
    for text in by_step["code"]:
        assert re.search(r"Plan \d: keep tails", text)


async def test_with_native_n_the_first_observations_share_one_request() -> None:
    client = FunctionClient(Coder(), native_n=True)
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client)
    assert [r.settings.n for r in client.requests][:1] == [3]
    assert solution.metadata.llm_calls == len(client.requests) == 10


async def test_without_derived_observations_a_plan_is_three_calls_deep() -> None:
    client = FunctionClient(Coder(), latency=0.01)
    solution = await PlanSearchOptimizer(PlanSearchConfig(num_derived_observations=0)).optimize(PROBLEM, client)
    assert sequential_depth(client.requests) == 3
    assert solution.metadata.llm_calls == 9
    assert "derived" not in [step(r) for r in client.requests]


async def test_a_function_scorer_chooses_the_plan() -> None:
    scorer = FunctionScorer(lambda query, answer: "return 3" in answer)
    client = FunctionClient(Coder())
    solution = await PlanSearchOptimizer(scorer=scorer).optimize(PROBLEM, client)
    assert "return 3" in solution.answer
    assert solution.metadata.extras["chosen_by"] == "scorer"
    assert solution.metadata.extras["ratings"] == [0.0, 0.0, 1.0]
    assert solution.metadata.llm_calls == 12


async def test_an_llm_judge_rates_every_plan_concurrently_one_round_trip_more() -> None:
    client = FunctionClient(Coder(), latency=0.01)
    solution = await PlanSearchOptimizer(scorer=LlmJudgeScorer()).optimize(PROBLEM, client)
    judges = [r for r in client.requests if step(r) == "judge"]
    assert len(judges) == 3
    assert {r.settings.temperature for r in judges} == {0.1}
    assert sequential_depth(client.requests) == 5
    assert "return 2" in solution.answer
    assert solution.metadata.extras["ratings"] == [0.3, 0.8, 0.3]


async def test_the_first_reply_with_a_code_block_wins_and_without_any_the_first_is_returned() -> None:
    client = FunctionClient(Coder({1: "I would use patience sorting.", 2: "```\nprint(2)\n```"}))
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client)
    assert solution.answer == "```\nprint(2)\n```"
    assert [p["parses"] for p in solution.metadata.extras["plans"]] == [False, True, True]

    client = FunctionClient(Coder({1: "no code", 2: "none here", 3: "nor here"}))
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client)
    assert solution.answer == "no code"
    assert solution.metadata.extras["chosen_by"] == "first (none parses)"


async def test_a_cut_off_code_reply_loses_to_a_complete_one() -> None:
    cut = Reply("```python\ndef lis(xs):\n    ret", finish_reason="length")
    client = FunctionClient(Coder({1: cut}))  # type: ignore[dict-item]
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client)
    assert "return 2" in solution.answer
    assert solution.finish_reason == "stop"


async def test_malformed_steps_an_unnumbered_list_and_empty_derived_observations_still_make_a_plan() -> None:
    def model(prompt: Prompt, settings: GenerationSettings) -> str:
        kind = step_of(prompt.messages[-1].content)
        return {"observations": "Tails stay sorted\n\nBisect them", "derived": "", "plan": "Bisect."}.get(
            kind, "```python\nprint(1)\n```"
        )

    solution = await PlanSearchOptimizer(PlanSearchConfig(num_plans=1)).optimize(PROBLEM, FunctionClient(model))
    plan = solution.metadata.extras["plans"][0]
    assert (plan["observations"], plan["derived_observations"]) == (["Tails stay sorted", "Bisect them"], [])
    assert solution.answer == "```python\nprint(1)\n```"


async def test_a_plan_that_comes_back_empty_is_dropped_and_the_others_go_on() -> None:
    coder = Coder()

    def model(prompt: Prompt, settings: GenerationSettings) -> ReplyLike:
        if step_of(prompt.messages[-1].content) == "plan" and "Idea 1a" in prompt.messages[-1].content:
            return ""
        return coder(prompt, settings)

    solution = await PlanSearchOptimizer().optimize(PROBLEM, FunctionClient(model))
    assert solution.metadata.extras["dropped_plans"] == 1
    assert [p["plan_number"] for p in solution.metadata.extras["plans"]] == [2, 3]
    assert "return 2" in solution.answer


async def test_a_retryable_failure_drops_its_plan_and_a_401_ends_the_run() -> None:
    def fault(kind: str, error: Exception) -> Any:
        def rule(number: int, prompt: Prompt, settings: GenerationSettings) -> Exception | None:
            text = prompt.messages[-1].content
            return error if step_of(text) == kind and "Idea 2a" in text else None

        return rule

    client = FaultyClient(FunctionClient(Coder()), fault("derived", ProviderUnavailable("busy", status_code=503)))
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client)
    assert [p["plan_number"] for p in solution.metadata.extras["plans"]] == [1, 3]
    assert solution.metadata.extras["dropped_plans"] == 1

    client = FaultyClient(FunctionClient(Coder()), fault("code", AuthenticationError("bad key")))
    with pytest.raises(AuthenticationError, match="bad key"):
        await PlanSearchOptimizer().optimize(PROBLEM, client)


async def test_when_every_plan_fails_the_providers_error_or_no_solutions_ends_the_run() -> None:
    def busy(number: int, prompt: Prompt, settings: GenerationSettings) -> Exception | None:
        return ProviderUnavailable("busy", status_code=503) if step_of(prompt.messages[-1].content) == "plan" else None

    with pytest.raises(ProviderUnavailable, match="busy"):
        await PlanSearchOptimizer().optimize(PROBLEM, FaultyClient(FunctionClient(Coder()), busy))

    def empty_code(prompt: Prompt, settings: GenerationSettings) -> ReplyLike:
        return "" if step_of(prompt.messages[-1].content) == "code" else Coder()(prompt, settings)

    with pytest.raises(NoSolutions, match="none of the 3 plans came to code"):
        await PlanSearchOptimizer().optimize(PROBLEM, FunctionClient(empty_code))


@pytest.mark.parametrize("profile", [O3_MINI, CLAUDE_OPUS], ids=["o3-mini", "claude-opus"])
async def test_a_model_that_refuses_temperature_gets_varied_observation_prompts(profile: Any) -> None:
    client = FunctionClient(Coder(), profile=profile)
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client, settings=GenerationSettings(temperature=0.8))
    assert client.refused == []
    assert {r.settings.temperature for r in client.requests} == {None}
    firsts = [r.user_text for r in client.requests if step(r) == "observations"]
    assert len(firsts) == len(set(firsts)) == 3
    assert solution.metadata.extras["varied_prompts"] is True
    assert solution.metadata.extras["chosen_plan"] == 1  # the plan of the question as it is
    assert "def lis" in solution.answer


async def test_the_callers_temperature_applies_unless_the_config_sets_one() -> None:
    client = FunctionClient(Coder())
    await PlanSearchOptimizer().optimize(PROBLEM, client, settings=GenerationSettings(temperature=0.6, max_tokens=900))
    assert {r.settings.temperature for r in client.requests} == {0.6}
    assert {r.settings.max_tokens for r in client.requests} == {900}

    client = FunctionClient(Coder())
    config = PlanSearchConfig(observation_temperature=0.9, plan_temperature=0.7, code_temperature=0.1)
    await PlanSearchOptimizer(config).optimize(PROBLEM, client, settings=GenerationSettings(temperature=0.6))
    temperatures = {step(r): r.settings.temperature for r in client.requests}
    assert temperatures == {"observations": 0.9, "derived": 0.9, "plan": 0.7, "code": 0.1}


async def test_the_callers_stop_cuts_the_chosen_code() -> None:
    client = FunctionClient(Coder())
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client, settings=GenerationSettings(stop=("return",)))
    assert solution.answer == "```python\ndef lis(xs):"
    assert {r.settings.stop for r in client.requests} == {None}


# -- tools ------------------------------------------------------------------------------------------


async def test_with_tools_only_the_code_calls_get_them_and_a_tool_call_can_win() -> None:
    coder = Coder()

    def model(prompt: Prompt, settings: GenerationSettings) -> ReplyLike:
        if settings.tools and "Idea 1a" in (prompt.system_text() or ""):
            return Reply("", tool_calls=(CALL,))
        return coder(prompt, settings)

    client = FunctionClient(model)
    solution = await PlanSearchOptimizer().optimize(PROBLEM, client, system_prompt=SYSTEM, settings=WITH_TOOLS)
    for request in client.requests:
        assert request.settings.tools == ((WEATHER,) if step(request) == "code" else None)
    code = [r for r in client.requests if step(r) == "code"]
    assert all(r.user_text == PROBLEM for r in code)  # the caller's conversation, the plan in the system prompt
    assert all((r.system_text or "").startswith(SYSTEM) for r in code)
    assert solution.tool_calls == (CALL,)
    assert solution.metadata.extras["chosen_plan"] == 1


# -- planning, parsing, registration ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "native_n", "settings", "judge", "expected"),
    [
        pytest.param({}, False, GenerationSettings(), False, 12, id="defaults"),
        pytest.param({}, True, GenerationSettings(), False, 10, id="native-n"),
        pytest.param({"num_plans": 5}, False, GenerationSettings(), False, 20, id="five-plans"),
        pytest.param({"num_derived_observations": 0}, False, GenerationSettings(), False, 9, id="no-derived"),
        pytest.param({}, False, GenerationSettings(), True, 15, id="llm-judge"),
        pytest.param({"num_plans": 1}, False, GenerationSettings(), True, 4, id="one-plan-not-rated"),
        pytest.param({}, True, WITH_TOOLS, False, 10, id="tools"),
    ],
)
async def test_planned_calls_are_the_calls_a_run_makes(
    options: dict[str, Any], native_n: bool, settings: GenerationSettings, judge: bool, expected: int
) -> None:
    client = FunctionClient(Coder(), native_n=native_n)
    optimizer = PlanSearchOptimizer(PlanSearchConfig(**options), scorer=LlmJudgeScorer() if judge else None)
    planned = optimizer.planned_calls(client, settings)
    solution = await optimizer.optimize(PROBLEM, client, settings=settings)
    assert planned == solution.metadata.llm_calls == len(client.requests) == expected


def test_observation_lines_take_off_list_markers() -> None:
    reply = "1. First.\n2) Second.\n- Third.\n* Fourth.\n**Observation 5:** Fifth.\n\nObservation 6: Sixth."
    assert observation_lines(reply) == ("First.", "Second.", "Third.", "Fourth.", "Fifth.", "Sixth.")


@given(st.lists(st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=20), max_size=6))
def test_observation_lines_keep_every_numbered_observation(items: list[str]) -> None:
    reply = "\n".join(f"{i}. {item}" for i, item in enumerate(items, start=1))
    assert observation_lines(reply) == tuple(items)


def test_plansearch_is_registered_and_configurable_from_strings() -> None:
    optimizer = default_registry().create("plansearch", {"num_plans": "4"})
    assert isinstance(optimizer, PlanSearchOptimizer)
    assert optimizer.config.num_plans == 4
    assert optimizer.scorer is None
    assert PlanSearchOptimizer.answers_with_tools
