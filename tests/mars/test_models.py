"""MARS on models as they really are (../shared/reference/models.md): what they refuse, their caps, their thinking.

Each fake refuses, with a 400 as the provider would, any request its profile's model refuses, so a
run that completes with ``client.refused`` empty sent nothing a real provider would have rejected.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from optillm_core import BadRequestError, GenerationSettings, ModelProfile, Prompt
from optillm_core.testing import (
    CLAUDE_OPUS,
    CLAUDE_SONNET,
    DEEPSEEK_R1,
    DEEPSEEK_REASONER,
    GPT_4O_MINI,
    MODEL_PROFILES,
    O3_MINI,
    Reply,
)
from optillm_mars import MarsConfig, MarsOptimizer, SelectionMethod

from .fakes import INCORRECT, FakeMars, agent_of, boxed, phase_of, without_agent_numbers

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"

# What a user would pass: sampling settings, a seed, and upstream MARS's own 64,000 output limit.
EAGER_CALLER = GenerationSettings(temperature=0.5, top_p=0.9, seed=11, max_tokens=64_000)


def thinking_model() -> dict[str, object]:
    """Handlers whose every reply thinks first (the thought names the phase, so a leak is easy to spot).

    No two solutions agree and none passes review, so the run goes through every phase to synthesis.
    """
    counter = itertools.count(100)

    def reply(phase: str, text: Callable[[Prompt], str]) -> object:
        return lambda p, s: Reply(text(p), thinking=f"SECRET {phase} thought")

    return {
        "exploration": reply("exploration", lambda p: boxed(str(17 + agent_of(p)))),
        "aggregation": reply("aggregation", lambda p: boxed(str(next(counter)))),
        "strategy": reply("strategy", lambda p: "- Add the numbers\n- Check by subtraction"),
        "enhancement": reply("enhancement", lambda p: boxed(str(next(counter)))),
        "verification": reply("verification", lambda p: INCORRECT),
        "improvement": reply("improvement", lambda p: boxed(str(next(counter)))),
        "synthesis": reply("synthesis", lambda p: "Checking the candidates, 12 + 7 = 19. \\boxed{19}"),
    }


@pytest.mark.parametrize("profile", MODEL_PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("caller", [GenerationSettings(), EAGER_CALLER], ids=["no settings", "eager caller"])
async def test_every_model_runs_to_the_end_without_a_refused_request(
    profile: ModelProfile, caller: GenerationSettings
) -> None:
    client = FakeMars(profile=profile)
    solution = await MarsOptimizer().optimize(QUERY, client, settings=caller)

    assert client.refused == []
    assert solution.metadata.extras["final_answer"] == "19"
    assert client.calls()["exploration"] == 3
    for request in client.requests:
        limit = request.settings.max_tokens
        assert limit is None or limit <= (profile.max_output_tokens or limit)
        if profile.requires_max_tokens:
            assert limit is not None


@pytest.mark.parametrize("profile", [O3_MINI, CLAUDE_OPUS], ids=lambda p: p.name)
async def test_the_fakes_refuse_what_upstream_mars_sends(profile: ModelProfile) -> None:
    """Upstream's explorer request (temperature 0.3, 64,000 tokens) is a 400 here, as on the real model."""
    client = FakeMars(profile=profile)
    with pytest.raises(BadRequestError, match="temperature"):
        await client.complete(Prompt.from_query(QUERY), GenerationSettings(temperature=0.3, max_tokens=64_000))


async def test_on_a_model_without_temperature_all_agents_live_and_differ_by_approach() -> None:
    client = FakeMars(profile=O3_MINI, exploration=lambda p, s: boxed(str(17 + agent_of(p))))
    solution = await MarsOptimizer(MarsConfig(max_iterations=0)).optimize(QUERY, client)

    explorers = client.of("exploration")
    assert client.refused == []
    assert {r.settings.temperature for r in client.requests} == {None}
    assert {r.settings.top_p for r in client.requests} == {None}
    assert len({without_agent_numbers(r.user_text) for r in explorers}) == 3
    enhancers = client.of("enhancement")
    assert len({without_agent_numbers(r.user_text) for r in enhancers}) == len(enhancers) == 3
    ids = {s["id"] for s in solution.metadata.extras["solutions"]}
    assert {"agent1-initial", "agent2-initial", "agent3-initial"} <= ids


async def test_the_callers_seed_still_separates_the_agents_where_temperature_cannot() -> None:
    client = FakeMars(profile=O3_MINI)
    await MarsOptimizer().optimize(QUERY, client, settings=GenerationSettings(seed=5, temperature=0.2))
    explorers = sorted(client.of("exploration"), key=lambda r: agent_of(r.prompt))
    assert [r.settings.seed for r in explorers] == [5, 6, 7]
    assert client.refused == []


async def test_claude_gets_the_required_limit_and_one_sampling_setting() -> None:
    client = FakeMars(profile=CLAUDE_SONNET)
    solution = await MarsOptimizer().optimize(QUERY, client, settings=GenerationSettings(temperature=1.5, top_p=0.9))

    assert client.refused == []
    # Nobody gave a limit, so every call gets the one the profile sends where a limit is required.
    assert {r.settings.max_tokens for r in client.requests} == {CLAUDE_SONNET.default_max_tokens}
    assert {r.settings.top_p for r in client.requests} == {None}  # Claude 4 takes temperature or top_p
    explorers = client.of("exploration")
    assert {r.settings.temperature for r in explorers} == {1.0}  # the caller's 1.5, lowered to Claude's top
    assert solution.metadata.dropped_settings == ("temperature", "top_p")


@pytest.mark.parametrize("profile", [GPT_4O_MINI, DEEPSEEK_R1], ids=lambda p: p.name)
async def test_phase_limits_above_the_cap_are_clipped(profile: ModelProfile) -> None:
    client = FakeMars(profile=profile)
    config = MarsConfig(token_budget_reasoning=64_000, token_budget_review=1_000)
    await MarsOptimizer(config).optimize(QUERY, client)

    assert client.refused == []
    solvers = {r.settings.max_tokens for r in client.requests if phase_of(r.prompt) != "verification"} - {1_000}
    assert solvers == {profile.max_output_tokens}
    assert {r.settings.max_tokens for r in client.of("verification")} == {1_000}


@pytest.mark.parametrize("profile", [DEEPSEEK_R1, DEEPSEEK_REASONER, CLAUDE_SONNET], ids=lambda p: p.thinking)
async def test_thinking_never_reaches_another_call_or_the_answer(profile: ModelProfile) -> None:
    client = FakeMars(profile=profile, **thinking_model())  # type: ignore[arg-type]
    config = MarsConfig(max_iterations=1)
    solution = await MarsOptimizer(config).optimize(QUERY, client)

    assert client.refused == []
    assert set(client.calls()) >= {"exploration", "aggregation", "strategy", "verification", "improvement"}
    for request in client.requests:
        assert "SECRET" not in "".join(m.content for m in request.messages), phase_of(request.prompt)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.SYNTHESIZED
    assert "SECRET" not in solution.answer
    assert "<think>" not in solution.answer
    assert solution.answer == "Checking the candidates, 12 + 7 = 19. \\boxed{19}"
    assert solution.thinking == "SECRET synthesis thought"
    assert "SECRET" not in solution.reasoning
    for stored in solution.metadata.extras["solutions"]:
        assert "SECRET" not in stored["text"]
        assert stored["thinking"].startswith("SECRET")


async def test_models_that_think_on_their_own_are_not_asked_for_think_tags() -> None:
    thinking, plain = FakeMars(profile=DEEPSEEK_R1), FakeMars(profile=GPT_4O_MINI)
    for client in (thinking, plain):
        await MarsOptimizer(MarsConfig(enable_aggregation=False)).optimize(QUERY, client)
    assert all("<think>" not in (r.system_text or "") for r in thinking.of("exploration"))
    assert all("<think>" in (r.system_text or "") for r in plain.of("exploration"))


async def test_a_verifier_that_thinks_the_verdict_is_read_only_from_its_answer() -> None:
    """A verifier whose thinking says CORRECT but whose answer says INCORRECT fails the solution."""
    client = FakeMars(
        profile=DEEPSEEK_REASONER,
        verification=Reply(INCORRECT, thinking="VERDICT: CORRECT, surely"),
    )
    solution = await MarsOptimizer(MarsConfig(enable_aggregation=False, max_iterations=0)).optimize(QUERY, client)
    assert solution.metadata.extras["verified_solution_ids"] == []
