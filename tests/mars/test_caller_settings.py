"""The caller-settings rule on MARS's wire: which calls get the caller's temperature, top_p, seed, stop and max_tokens.

Explorers, aggregations, strategy-enhanced solutions and improvements are answer calls; verification
and strategy extraction are judge calls; synthesis is the final call.
"""

from __future__ import annotations

import itertools

import pytest

from optillm_core import GenerationSettings, ModelProfile, Prompt, UnsupportedSetting
from optillm_core.testing import RecordedRequest
from optillm_mars import MarsConfig, MarsOptimizer, SelectionMethod

from .fakes import INCORRECT, FakeMars, agent_of, boxed, without_agent_numbers

pytestmark = pytest.mark.anyio

QUERY = "What is 12 + 7?"
CALLER = GenerationSettings(
    temperature=0.9,
    top_p=0.8,
    max_tokens=8000,
    stop=("\n\n",),
    seed=42,
    extra={"response_format": {"type": "json_object"}, "top_k": 20},
)
ANSWER_PHASES = ("exploration", "aggregation", "enhancement", "improvement")
JUDGE_PHASES = ("verification", "strategy")


def every_phase() -> FakeMars:
    """A model whose solutions never agree and never pass review, so every phase runs, synthesis included."""
    counter = itertools.count(100)

    def distinct(prompt: Prompt, settings: GenerationSettings) -> str:
        return boxed(str(next(counter)))

    return FakeMars(
        exploration=lambda p, s: boxed(str(agent_of(p))),
        aggregation=distinct,
        enhancement=distinct,
        improvement=distinct,
        verification=INCORRECT,
    )


async def run_every_phase(config: MarsConfig, settings: GenerationSettings = CALLER) -> FakeMars:
    client = every_phase()
    solution = await MarsOptimizer(config.with_max_iterations(1)).optimize(QUERY, client, settings=settings)
    assert solution.metadata.extras["selection_method"] == SelectionMethod.SYNTHESIZED
    assert set(client.calls()) == {*ANSWER_PHASES, *JUDGE_PHASES, "synthesis"}
    return client


def seeds(requests: list[RecordedRequest]) -> list[int | None]:
    return [r.settings.seed for r in requests]


async def test_answer_calls_take_the_callers_sampling_judges_keep_their_own() -> None:
    client = await run_every_phase(MarsConfig())

    for phase in ANSWER_PHASES:
        for request in client.of(phase):
            settings = request.settings
            assert (settings.temperature, settings.top_p, settings.max_tokens) == (0.9, 0.8, 8000), phase
            assert settings.stop is None, phase  # the caller's stop would cut a solution short
            assert "response_format" not in settings.extra, phase
            assert settings.extra["top_k"] == 20
    for phase, temperature in (("verification", 0.1), ("strategy", 0.3)):
        for request in client.of(phase):
            settings = request.settings
            assert (settings.temperature, settings.top_p, settings.seed, settings.stop) == (
                temperature,
                None,
                None,
                None,
            )
            assert settings.max_tokens == 8000  # the caller's max_tokens caps every call
            assert "response_format" not in settings.extra
    [synthesis] = client.of("synthesis")
    assert synthesis.settings.temperature == 0.9
    assert synthesis.settings.top_p == 0.8
    assert synthesis.settings.stop == ("\n\n",)
    assert synthesis.settings.seed == 42
    assert synthesis.settings.extra["response_format"] == {"type": "json_object"}


async def test_each_agent_gets_its_own_seed() -> None:
    client = await run_every_phase(MarsConfig())

    explorers = sorted(client.of("exploration"), key=lambda r: agent_of(r.prompt))
    assert seeds(explorers) == [42, 43, 44]
    assert sorted(seed or 0 for seed in seeds(client.of("enhancement"))) == [42, 43, 44]
    # Aggregation authors rotate over the agents, so the groups of one loop never share a seed.
    aggregation_seeds = seeds(client.of("aggregation"))
    assert set(aggregation_seeds) <= {42, 43, 44}
    assert len(set(aggregation_seeds)) > 1
    assert set(seeds(client.of("improvement"))) <= {42, 43, 44}


async def test_temperatures_set_in_the_config_win_over_the_callers() -> None:
    config = MarsConfig(
        temperatures=(0.2, 0.4, 0.6),
        aggregation_temperature=0.65,
        synthesis_temperature=0.5,
        verification_temperature=0.05,
    )
    client = await run_every_phase(config)

    explorers = sorted(client.of("exploration"), key=lambda r: agent_of(r.prompt))
    assert [r.settings.temperature for r in explorers] == [0.2, 0.4, 0.6]
    assert sorted(r.settings.temperature or 0 for r in client.of("enhancement")) == [0.2, 0.4, 0.6]
    assert {r.settings.temperature for r in client.of("aggregation")} == {0.65}
    assert {r.settings.temperature for r in client.of("verification")} == {0.05}
    assert {r.settings.temperature for r in client.of("synthesis")} == {0.5}
    # The improvement's own setting is the factor, which was left at its default: the caller's wins.
    assert {r.settings.temperature for r in client.of("improvement")} == {0.9}
    # Pinning a temperature pins nothing else.
    assert {r.settings.top_p for r in client.of("exploration")} == {0.8}


async def test_a_pinned_improvement_factor_scales_the_authors_temperature() -> None:
    config = MarsConfig(temperatures=(0.2, 0.4, 0.6), improvement_temperature_factor=0.5)
    client = await run_every_phase(config)
    temperatures = {round(r.settings.temperature or 0, 6) for r in client.of("improvement")}
    # Half the temperature each solution was written at: the agents' pinned 0.2/0.4/0.6, and the
    # caller's 0.9 for aggregated solutions (aggregation_temperature was not set).
    assert temperatures <= {0.1, 0.2, 0.3, 0.45}
    assert 0.45 in temperatures


async def test_the_callers_temperature_does_not_make_the_explorers_identical() -> None:
    client = await run_every_phase(MarsConfig())
    explorers = client.of("exploration")
    assert {r.settings.temperature for r in explorers} == {0.9}
    assert len({without_agent_numbers(r.user_text) for r in explorers}) == 3  # each agent has its own approach


async def test_a_seed_the_model_refuses_is_dropped_or_refused() -> None:
    no_seed = ModelProfile(seed=False)
    client = FakeMars(profile=no_seed)
    solution = await MarsOptimizer().optimize(QUERY, client, settings=GenerationSettings(seed=7))
    assert solution.metadata.dropped_settings == ("seed",)
    assert {r.settings.seed for r in client.requests} == {None}
    assert client.refused == []

    refusing = FakeMars(profile=no_seed)
    with pytest.raises(UnsupportedSetting, match="seed"):
        await MarsOptimizer().optimize(QUERY, refusing, settings=GenerationSettings(seed=7), unsupported="error")
    assert refusing.requests == []


def test_every_phase_declares_its_role() -> None:
    assert MarsOptimizer.phases == {
        "exploration": "answer",
        "aggregation": "answer",
        "strategy extraction": "judge",
        "strategy enhancement": "answer",
        "verification": "judge",
        "improvement": "answer",
        "synthesis": "final",
    }
