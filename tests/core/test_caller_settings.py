"""The one rule for the caller's settings, the drop/error policy, per-choice seeds, and doubles that refuse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest
from pydantic import Field

from optillm_core import (
    BadRequestError,
    CallRole,
    GenerationSettings,
    ModelProfile,
    Optimizer,
    OptimizerConfig,
    Outcome,
    Prompt,
    RunContext,
    UnsupportedSetting,
)
from optillm_core.testing import ScriptedClient

pytestmark = pytest.mark.anyio

O3 = ModelProfile(name="o3-mini", temperature=False, top_p=False, max_output_tokens=100_000, logprobs=False)


class PhasesConfig(OptimizerConfig):
    sample_temperature: float = Field(default=0.9)
    judge_temperature: float = Field(default=0.1)


class Phases(Optimizer[PhasesConfig]):
    """Two answers, a judgement and a final answer: one call of each role, recorded in this order."""

    name = "phases"
    description = "test strategy with one call per role"
    config_type = PhasesConfig
    phases: ClassVar[Mapping[str, CallRole]] = {"sample": "answer", "judge": "judge", "final": "final"}

    async def run(self, ctx: RunContext[PhasesConfig]) -> Outcome:
        pinned = ctx.config.pinned(temperature="sample_temperature")
        for index in range(2):
            settings = ctx.call_settings(
                "answer", temperature=ctx.config.sample_temperature, max_tokens=300, seed_offset=index, pinned=pinned
            )
            await ctx.generate("sample", settings)
        await ctx.generate("judge", ctx.call_settings("judge", temperature=ctx.config.judge_temperature, max_tokens=20))
        final = await ctx.generate_final("final")
        return Outcome(answer=final.text, thinking=final.reasoning)


CALLER = GenerationSettings(
    temperature=0.3, top_p=0.8, max_tokens=100, seed=5, stop=("\n\n",), extra={"response_format": {"type": "text"}}
)


async def run(config: PhasesConfig | None = None, settings: GenerationSettings = CALLER) -> list[GenerationSettings]:
    client = ScriptedClient(["a", "b", "judged", "final"])
    await Phases(config).optimize("q", client, settings=settings)
    return client.settings_seen


async def test_answer_calls_take_the_callers_sampling_and_judges_keep_their_own() -> None:
    sample_a, sample_b, judge, final = await run()
    assert (sample_a.temperature, sample_b.temperature, judge.temperature, final.temperature) == (0.3, 0.3, 0.1, 0.3)
    assert (sample_a.top_p, judge.top_p, final.top_p) == (0.8, None, 0.8)
    assert (sample_a.seed, sample_b.seed, judge.seed, final.seed) == (5, 6, None, 5)


async def test_the_callers_max_tokens_caps_every_call_and_phase_limits_stay_below_it() -> None:
    assert [s.max_tokens for s in await run()] == [100, 100, 20, 100]
    assert [s.max_tokens for s in await run(settings=GenerationSettings())] == [300, 300, 20, None]


async def test_stop_and_response_format_reach_only_the_final_answer() -> None:
    sample_a, sample_b, judge, final = await run()
    assert [s.stop for s in (sample_a, sample_b, judge)] == [None, None, None]
    assert final.stop == ("\n\n",)
    assert "response_format" not in sample_a.extra
    assert final.extra["response_format"] == {"type": "text"}


async def test_a_phase_value_the_user_set_in_the_config_wins_over_the_callers() -> None:
    sample_a, _, _, final = await run(PhasesConfig(sample_temperature=1.2))
    assert sample_a.temperature == 1.2
    assert final.temperature == 0.3


async def test_with_no_caller_settings_every_phase_uses_its_own() -> None:
    sample_a, _, judge, final = await run(settings=GenerationSettings())
    assert (sample_a.temperature, judge.temperature, final.temperature) == (0.9, 0.1, None)
    assert sample_a.seed is None


async def test_a_model_that_refuses_temperature_gets_none_and_the_caller_is_told_what_was_dropped() -> None:
    client = ScriptedClient(["a", "b", "judged", "final"], profile=O3)
    solution = await Phases().optimize("q", client, settings=GenerationSettings(temperature=0.3, max_tokens=50))
    assert client.refused == []
    assert all(s.temperature is None for s in client.settings_seen)
    assert solution.metadata.dropped_settings == ("temperature",)


async def test_the_error_policy_refuses_the_run_before_any_call() -> None:
    client = ScriptedClient(["a"], profile=O3, model_name="o3-mini")
    with pytest.raises(UnsupportedSetting, match="'o3-mini' does not accept temperature") as caught:
        await Phases().optimize("q", client, settings=GenerationSettings(temperature=0.3), unsupported="error")
    assert caught.value.settings == ("temperature",)
    assert client.requests == []


async def test_phase_limits_are_clipped_to_the_models_cap() -> None:
    client = ScriptedClient(["a", "b", "judged", "final"], profile=ModelProfile(max_output_tokens=200))
    await Phases().optimize("q", client)
    assert [s.max_tokens for s in client.settings_seen] == [200, 200, 20, None]


async def test_a_double_with_a_profile_refuses_what_the_model_refuses() -> None:
    client = ScriptedClient(["never"], profile=O3)
    with pytest.raises(BadRequestError, match="temperature"):
        await client.complete(Prompt.from_query("q"), GenerationSettings(temperature=0.2))
    assert len(client.refused) == 1
    capped = ScriptedClient(["never"], profile=ModelProfile(max_output_tokens=16_384))
    with pytest.raises(BadRequestError, match="max_tokens is too large"):
        await capped.complete(Prompt.from_query("q"), GenerationSettings(max_tokens=64_000))


async def test_a_fanned_out_request_gives_each_choice_its_own_seed() -> None:
    client = ScriptedClient(["a", "b", "c"])
    await client.complete(Prompt.from_query("q"), GenerationSettings(n=3, seed=10))
    assert sorted(s.seed for s in client.settings_seen if s.seed is not None) == [10, 11, 12]
    unseeded = ScriptedClient(["a", "b"])
    await unseeded.complete(Prompt.from_query("q"), GenerationSettings(n=2))
    assert [s.seed for s in unseeded.settings_seen] == [None, None]


def test_pinned_names_only_fields_the_user_set() -> None:
    assert PhasesConfig().pinned(temperature="sample_temperature") == frozenset()
    assert PhasesConfig(sample_temperature=0.5).pinned(temperature="sample_temperature") == {"temperature"}
    overridden = PhasesConfig().with_overrides({"judge_temperature": 0.0})
    assert overridden.pinned(temperature="sample_temperature") == frozenset()


async def test_seed_offsets_give_seeded_calls_their_own_seed_and_share_one_build_without_a_seed() -> None:
    contexts: list[RunContext[PhasesConfig]] = []

    class Capture(Phases):
        async def run(self, ctx: RunContext[PhasesConfig]) -> Outcome:
            contexts.append(ctx)
            return Outcome(answer="done")

    await Capture().optimize("q", ScriptedClient([]), settings=GenerationSettings(seed=7))
    await Capture().optimize("q", ScriptedClient([]), settings=GenerationSettings(temperature=0.3))
    seeded, unseeded = contexts
    assert [seeded.call_settings("answer", seed_offset=i).seed for i in range(3)] == [7, 8, 9]
    first, *others = (unseeded.call_settings("answer", seed_offset=i) for i in range(3))
    assert first.seed is None and first.temperature == 0.3
    assert all(other is first for other in others)  # nothing to offset: built once, not once per answer
