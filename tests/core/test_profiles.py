"""Model profiles: what a model refuses, fitting settings to it, merging profiles."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from optillm_core import GenerationSettings, ModelProfile, testing
from optillm_core.testing import CLAUDE_SONNET, O3_MINI

O3 = O3_MINI
CLAUDE = CLAUDE_SONNET
GPT_4O_MINI = testing.GPT_4O_MINI.model_copy(update={"max_stop": 4})


def test_the_default_profile_accepts_everything_and_changes_nothing() -> None:
    settings = GenerationSettings(temperature=1.5, top_p=0.9, max_tokens=100_000, seed=1, stop=("a", "b"))
    fitted = ModelProfile().fit(settings)
    assert fitted.settings is settings
    assert fitted.dropped == ()


def test_a_reasoning_model_gets_no_temperature_or_top_p_and_says_so() -> None:
    fitted = O3.fit(GenerationSettings(temperature=0.3, top_p=0.5, max_tokens=500, seed=7))
    assert fitted.settings.temperature is None
    assert fitted.settings.top_p is None
    assert fitted.settings.seed == 7
    assert fitted.settings.max_tokens == 500
    assert fitted.dropped == ("temperature", "top_p")


def test_claude_keeps_temperature_alone_clipped_to_its_range_and_needs_an_output_limit() -> None:
    fitted = CLAUDE.fit(GenerationSettings(temperature=1.4, top_p=0.5, seed=3))
    assert fitted.settings.temperature == 1.0
    assert fitted.settings.top_p is None
    assert fitted.settings.seed is None
    assert fitted.settings.max_tokens == 4096
    assert set(fitted.dropped) == {"temperature", "top_p", "seed"}


def test_output_limits_are_clipped_to_the_cap_and_never_invented_where_not_required() -> None:
    assert GPT_4O_MINI.fit(GenerationSettings(max_tokens=64_000)).settings.max_tokens == 16_384
    assert GPT_4O_MINI.fit(GenerationSettings()).settings.max_tokens is None
    assert CLAUDE.output_limit(None) == 4096
    assert CLAUDE.output_limit(100_000) == 64_000


def test_too_many_stop_sequences_keep_the_first_and_logprobs_leave_extra() -> None:
    settings = GenerationSettings(stop=("a", "b", "c", "d", "e"), extra={"logprobs": True, "top_logprobs": 3, "k": 1})
    fitted = GPT_4O_MINI.fit(settings)
    assert fitted.settings.stop == ("a", "b", "c", "d")
    assert fitted.dropped == ("stop",)
    assert O3.fit(settings).settings.extra == {"k": 1}


def test_the_strictest_profile_is_accepted_by_every_model_it_merges() -> None:
    merged = GPT_4O_MINI.strictest([CLAUDE, O3])
    assert not merged.temperature
    assert not merged.seed
    assert merged.max_output_tokens == 16_384
    assert merged.requires_max_tokens
    assert not merged.native_n
    assert merged.max_stop == 4


settings_strategy = st.builds(
    GenerationSettings,
    temperature=st.none() | st.floats(0, 3),
    top_p=st.none() | st.floats(0.01, 1),
    max_tokens=st.none() | st.integers(1, 200_000),
    seed=st.none() | st.integers(0, 100),
    stop=st.none() | st.lists(st.text(min_size=1, max_size=3), max_size=6).map(tuple),
)
profiles = st.sampled_from([ModelProfile(), O3, CLAUDE, GPT_4O_MINI])


@given(profiles, settings_strategy)
def test_fitted_settings_are_accepted_and_fitting_twice_changes_nothing(
    profile: ModelProfile, settings: GenerationSettings
) -> None:
    fitted = profile.fit(settings).settings
    assert profile.unsupported(fitted) == ()
    cap = profile.max_output_tokens
    assert fitted.max_tokens is None or cap is None or fitted.max_tokens <= cap
    again = profile.fit(fitted)
    assert again.settings == fitted
    assert again.dropped == ()
