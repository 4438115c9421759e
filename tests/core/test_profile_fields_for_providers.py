"""Two ModelProfile details the providers need: a temperature floor (Groq) and top_p beside a refused temperature."""

from __future__ import annotations

from optillm_core import GenerationSettings, ModelProfile


def test_a_temperature_below_the_floor_is_raised_to_it_and_not_reported_as_dropped() -> None:
    groq = ModelProfile(temperature_min=1e-8)
    fitted = groq.fit(GenerationSettings(temperature=0.0, max_tokens=10))
    assert (fitted.settings.temperature, fitted.settings.max_tokens, fitted.dropped) == (1e-8, 10, ())
    assert groq.fit(GenerationSettings(temperature=0.7)).settings.temperature == 0.7
    assert groq.fit(GenerationSettings()).settings.temperature is None


def test_the_strictest_floor_is_the_highest() -> None:
    merged = ModelProfile(temperature_min=1e-8).strictest([ModelProfile(), ModelProfile(temperature_min=0.01)])
    assert merged.temperature_min == 0.01
    assert ModelProfile().strictest([ModelProfile()]).temperature_min is None


def test_top_p_stays_beside_a_temperature_the_model_refuses_anyway() -> None:
    # Claude Opus 4.7 drops temperature; an exclusive top_p must not be dropped for a temperature never sent.
    only_top_p = ModelProfile(temperature=False, sampling_exclusive=True)
    fitted = only_top_p.fit(GenerationSettings(temperature=0.5, top_p=0.9))
    assert (fitted.settings.temperature, fitted.settings.top_p, fitted.dropped) == (None, 0.9, ("temperature",))
    exclusive = ModelProfile(sampling_exclusive=True)
    assert exclusive.unsupported(GenerationSettings(temperature=0.5, top_p=0.9)) == ("top_p",)
