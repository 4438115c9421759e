"""Mixture of Agents on real models: the caller-settings rule, models that refuse settings, output caps, thinking."""

from __future__ import annotations

import pytest

from optillm_core import AnswerDelta, GenerationSettings, ModelProfile, OptimizerEvent, Prompt
from optillm_core.testing import (
    CLAUDE_OPUS,
    CLAUDE_SONNET,
    DEEPSEEK_R1,
    DEEPSEEK_REASONER,
    GPT_4O_MINI,
    O3_MINI,
    FunctionClient,
    RecordedRequest,
    Reply,
    ScriptedClient,
)
from optillm_core.toolkit import APPROACHES
from optillm_moa import MoaConfig, MoaOptimizer

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
JSON = {"type": "json_object"}

# Variants of core's test profiles (optillm_core.testing) for what these tests need.
O3_NO_SEED = O3_MINI.model_copy(update={"seed": False})
SMALL_CAP = GPT_4O_MINI.model_copy(update={"name": "small-cap"})


def phase_of(request: RecordedRequest) -> str:
    text = request.user_text
    if "Review every candidate" in text:
        return "critique"
    if "Write the single best response" in text:
        return "synthesis"
    return "candidate"


def by_phase(client: FunctionClient | ScriptedClient) -> dict[str, list[GenerationSettings]]:
    phases: dict[str, list[GenerationSettings]] = {"candidate": [], "critique": [], "synthesis": []}
    for request in client.requests:
        phases[phase_of(request)].append(request.settings)
    return phases


def answering(prompt: Prompt, settings: GenerationSettings) -> str | Reply:
    """A model that answers each MoA phase in its own words; candidates say which approach preceded the question."""
    text = prompt.messages[-1].content
    if "Review every candidate" in text:
        return "Candidate 1 is right."
    if "Write the single best response" in text:
        return "12 + 7 = 19."
    approach = text.removesuffix(QUERY).strip()
    return f"19 (approach {APPROACHES.index(approach)})" if approach in APPROACHES else f"19 ({approach or 'as asked'})"


CALLER = GenerationSettings(
    temperature=0.3, top_p=0.9, max_tokens=300, stop=("\n\n",), seed=7, extra={"response_format": JSON}
)


async def test_the_caller_settings_reach_the_phases_the_rule_names() -> None:
    client = FunctionClient(answering, native_n=True)
    await MoaOptimizer().optimize(QUERY, client, settings=CALLER)
    phases = by_phase(client)
    (candidates,), (critique,), (synthesis,) = phases["candidate"], phases["critique"], phases["synthesis"]
    # Candidates (answer): the caller's sampling settings and seed, no stop, no response_format.
    assert (candidates.n, candidates.temperature, candidates.top_p, candidates.seed) == (3, 0.3, 0.9, 7)
    assert (candidates.max_tokens, candidates.stop, candidates.extra) == (300, None, {})
    # Critique (judge): its own temperature; only the caller's max_tokens reaches it.
    assert (critique.temperature, critique.top_p, critique.seed, critique.stop) == (0.1, None, None, None)
    assert (critique.max_tokens, critique.extra) == (300, {})
    # Synthesis (final): everything the caller set.
    assert (synthesis.temperature, synthesis.top_p, synthesis.seed, synthesis.max_tokens) == (0.3, 0.9, 7, 300)
    assert (synthesis.stop, synthesis.extra) == (("\n\n",), {"response_format": JSON})


async def test_fanned_out_candidates_get_a_seed_each() -> None:
    client = FunctionClient(answering)
    await MoaOptimizer().optimize(QUERY, client, settings=CALLER)
    candidates = by_phase(client)["candidate"]
    assert sorted(s.seed or 0 for s in candidates) == [7, 8, 9]
    assert {(s.n, s.temperature) for s in candidates} == {(1, 0.3)}


async def test_temperatures_the_config_sets_are_kept_against_the_callers() -> None:
    client = FunctionClient(answering, native_n=True)
    config = MoaConfig(candidate_temperature=0.9, synthesis_temperature=0.2)
    await MoaOptimizer(config).optimize(QUERY, client, settings=GenerationSettings(temperature=0.3))
    phases = by_phase(client)
    assert [s.temperature for s in phases["candidate"] + phases["critique"] + phases["synthesis"]] == [0.9, 0.1, 0.2]

    client = FunctionClient(answering, native_n=True)
    config = MoaConfig(candidate_temperatures=(0.2, 0.7, 1.3))
    await MoaOptimizer(config).optimize(QUERY, client, settings=GenerationSettings(temperature=0.3))
    phases = by_phase(client)
    assert sorted(s.temperature or 0 for s in phases["candidate"]) == [0.2, 0.7, 1.3]
    assert phases["synthesis"][0].temperature == 0.3


@pytest.mark.parametrize(
    ("profile", "native_n"),
    [(O3_MINI, True), (CLAUDE_OPUS, False), (O3_NO_SEED, False)],
    ids=["o3-native-n", "opus-4.7", "no-seed-no-n"],
)
async def test_on_a_model_that_refuses_temperature_the_candidates_prompts_differ(
    profile: ModelProfile, native_n: bool
) -> None:
    client = FunctionClient(answering, native_n=native_n, profile=profile)
    events: list[OptimizerEvent] = []
    solution = await MoaOptimizer().optimize(QUERY, client, events=events.append)

    assert client.refused == []
    candidates = [r for r in client.requests if phase_of(r) == "candidate"]
    # One request per candidate, even with native n: n copies of one prompt would differ too little.
    assert [r.settings.n for r in candidates] == [1, 1, 1]
    assert len({r.user_text for r in candidates}) == 3
    # Candidate 1 is asked the question as it is, the others an approach before it (the question comes last).
    varied = sorted(r.user_text for r in candidates if r.user_text != QUERY)
    assert len(varied) == 2
    assert all(text.endswith(f"\n\n{QUERY}") for text in varied)
    assert all(r.settings.temperature is None and r.settings.top_p is None for r in client.requests)
    assert len(set(solution.metadata.extras["candidates"])) == 3
    assert solution.metadata.extras["varied_prompts"] is True
    # The critique and synthesis see the caller's question, not the candidates' approaches.
    synthesis = next(r.user_text for r in client.requests if phase_of(r) == "synthesis")
    assert not any(approach in synthesis for approach in APPROACHES if approach)
    assert solution.answer == "12 + 7 = 19."


async def test_a_callers_temperature_the_model_refuses_is_dropped_and_noted() -> None:
    client = FunctionClient(answering, native_n=True, profile=O3_MINI)
    solution = await MoaOptimizer().optimize(QUERY, client, settings=GenerationSettings(temperature=0.3, seed=11))
    assert client.refused == []
    assert solution.metadata.dropped_settings == ("temperature",)
    candidates = by_phase(client)["candidate"]
    assert sorted(s.seed or 0 for s in candidates) == [11, 12, 13]


async def test_on_claude_candidates_vary_by_temperature_within_its_range() -> None:
    client = FunctionClient(answering, profile=CLAUDE_SONNET)
    caller = GenerationSettings(temperature=1.5, top_p=0.9, seed=3)
    solution = await MoaOptimizer().optimize(QUERY, client, settings=caller)
    assert client.refused == []
    assert set(solution.metadata.dropped_settings) == {"temperature", "top_p", "seed"}
    phases = by_phase(client)
    # Temperature lowered to Claude's top, top_p left out (not both), no seed.
    assert {(s.temperature, s.top_p, s.seed) for s in phases["candidate"]} == {(1.0, None, None)}
    assert len({r.user_text for r in client.requests if phase_of(r) == "candidate"}) == 1
    assert solution.metadata.extras["varied_prompts"] is False
    # With no caller max_tokens, each phase sends its own limit (required on Claude), under the cap.
    assert [s.max_tokens for s in phases["candidate"] + phases["critique"] + phases["synthesis"]] == [
        4096,
        4096,
        4096,
        512,
        8192,
    ]


async def test_a_callers_temperature_of_zero_makes_the_candidates_differ_by_prompt() -> None:
    client = FunctionClient(answering, native_n=True)
    solution = await MoaOptimizer().optimize(QUERY, client, settings=GenerationSettings(temperature=0.0))
    candidates = [r for r in client.requests if phase_of(r) == "candidate"]
    assert len({r.user_text for r in candidates}) == 3
    assert {r.settings.temperature for r in candidates} == {0.0}
    assert solution.metadata.extras["varied_prompts"] is True


@pytest.mark.parametrize("cap", [2000, 300])
async def test_no_request_asks_for_more_than_the_models_cap(cap: int) -> None:
    profile = SMALL_CAP.model_copy(update={"max_output_tokens": cap})
    client = FunctionClient(answering, native_n=True, profile=profile)
    await MoaOptimizer().optimize(QUERY, client)
    assert client.refused == []
    assert [r.settings.max_tokens for r in client.requests] == [min(4096, cap), min(512, cap), min(8192, cap)]


async def test_gpt_4o_mini_gets_phase_limits_under_its_cap() -> None:
    client = FunctionClient(answering, native_n=True, profile=GPT_4O_MINI)
    await MoaOptimizer().optimize(QUERY, client)
    assert client.refused == []
    assert [r.settings.max_tokens for r in client.requests] == [4096, 512, 8192]


async def test_every_candidate_prompt_differs_up_to_the_largest_config() -> None:
    client = FunctionClient(answering, native_n=True, profile=O3_MINI)
    solution = await MoaOptimizer(MoaConfig(num_completions=32)).optimize(QUERY, client)
    candidates = [r.user_text for r in client.requests if phase_of(r) == "candidate"]
    assert len(candidates) == len(set(candidates)) == 32
    assert QUERY in candidates
    assert all(text.endswith(QUERY) for text in candidates)
    assert len(solution.metadata.extras["candidates"]) == 32


def thinking_script() -> list[str | Reply]:
    return [
        Reply("It is 19.", thinking="12 + 7... carry the one: 19. SECRET-1"),
        Reply("19", thinking="Counting on from 12: SECRET-2"),
        Reply("20", thinking="I guess SECRET-3"),
        Reply("Candidate 3 is wrong.", thinking="Checking each one SECRET-4"),
        Reply("The answer is 19.", thinking="Candidates 1 and 2 agree SECRET-5"),
    ]


@pytest.mark.parametrize("profile", [DEEPSEEK_R1, DEEPSEEK_REASONER], ids=["think-tags", "reasoning-content"])
@pytest.mark.parametrize("native_n", [True, False])
async def test_thinking_never_reaches_a_prompt_or_the_answer(profile: ModelProfile, native_n: bool) -> None:
    client = ScriptedClient(thinking_script(), native_n=native_n, profile=profile)
    deltas: list[str] = []

    def collect(event: OptimizerEvent) -> None:
        if isinstance(event, AnswerDelta):
            deltas.append(event.delta)

    solution = await MoaOptimizer().optimize(QUERY, client, events=collect)
    assert client.refused == []
    assert not any("SECRET" in m.content for r in client.requests for m in r.messages)
    assert solution.answer == "The answer is 19."
    assert "".join(deltas) == "The answer is 19."
    assert solution.thinking == "Candidates 1 and 2 agree SECRET-5"
    assert solution.metadata.extras["candidates"] == ["It is 19.", "19", "20"]
    assert "SECRET" not in solution.metadata.extras["critique"]
    assert "SECRET" not in solution.reasoning


@pytest.mark.parametrize("profile", [DEEPSEEK_R1, DEEPSEEK_REASONER], ids=["think-tags", "reasoning-content"])
async def test_replies_with_only_thinking_count_as_empty(profile: ModelProfile) -> None:
    cut = Reply("", thinking="Let me think about 12 + 7 at length SECRET", finish_reason="length")
    client = ScriptedClient(
        [cut, Reply("19", thinking="easy"), "It is 19.", cut, Reply("", thinking="Hmm SECRET"), cut],
        native_n=True,
        profile=profile,
    )
    solution = await MoaOptimizer().optimize(QUERY, client)
    # Candidate 1 thought until its limit and was refilled, without success; the critique and the
    # synthesis held only thinking: the answer is the first complete candidate, with its thinking.
    assert [r.settings.n for r in client.requests] == [3, 1, 1, 1]
    assert solution.metadata.extras["candidates"] == ["19", "It is 19."]
    assert "no review is available" in client.requests[-1].user_text
    assert solution.answer == "19"
    assert solution.thinking == "easy"
    assert solution.metadata.extras["final_source"] == "candidate"
    assert not any("SECRET" in m.content for r in client.requests for m in r.messages)
