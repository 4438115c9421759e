"""Which profile each model gets, how a config or a caller overrides it, and the light provider catalogue."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from optillm_core import GenerationSettings, InvalidConfiguration, ModelProfile
from optillm_core.testing import FunctionClient
from optillm_router import (
    PROFILE_RULES,
    PROVIDERS,
    ModelClientRouter,
    ProviderRoutingConfig,
    ProviderSpec,
    load_routing_config,
    model_profile,
)
from optillm_router._profiles import matching_rules, model_key

from .router_support import factory, spec

REASONING = {"temperature": False, "top_p": False, "logprobs": False, "thinking": "hidden"}

# (provider, model) -> the fields its profile must have
TABLE: list[tuple[str, str, dict[str, Any]]] = [
    # OpenAI reasoning models
    ("openai", "o1", {**REASONING, "max_tokens_field": "max_completion_tokens", "max_output_tokens": 100_000}),
    ("openai", "o1-mini", {**REASONING, "system_messages": False, "max_output_tokens": 65_536}),
    ("openai", "o1-preview-2024-09-12", {**REASONING, "system_messages": False, "max_output_tokens": 32_768}),
    ("openai", "o3", {**REASONING, "max_tokens_field": "max_completion_tokens", "system_messages": True}),
    ("openai", "o3-mini", {**REASONING, "max_tokens_field": "max_completion_tokens", "max_output_tokens": 100_000}),
    ("openai", "o3-mini-2025-01-31", {**REASONING, "max_output_tokens": 100_000}),
    ("openai", "o4-mini", {**REASONING, "max_output_tokens": 100_000, "native_n": True}),
    ("openai", "gpt-5", {**REASONING, "max_output_tokens": 128_000}),
    ("openai", "gpt-5-mini", {**REASONING, "max_output_tokens": 128_000}),
    ("custom", "o3-mini", {**REASONING, "max_tokens_field": "max_completion_tokens"}),
    ("openrouter", "openai/o4-mini", {**REASONING, "max_tokens_field": "max_tokens"}),
    # OpenAI chat models
    ("openai", "gpt-4o", {"temperature": True, "max_output_tokens": 16_384, "native_n": True, "max_stop": 4}),
    ("openai", "gpt-4o-mini", {"temperature": True, "max_output_tokens": 16_384, "native_n": True, "logprobs": True}),
    ("openai", "gpt-5-chat-latest", {"temperature": True, "max_output_tokens": None, "thinking": "none"}),
    ("openai", "gpt-4.1", {"temperature": True, "max_output_tokens": None, "name": "openai"}),
    # Anthropic
    (
        "anthropic",
        "claude-3-5-haiku-latest",
        {"max_output_tokens": 8_192, "sampling_exclusive": False, "temperature": True, "temperature_max": 1.0},
    ),
    ("anthropic", "claude-3-7-sonnet-latest", {"max_output_tokens": 64_000, "sampling_exclusive": False}),
    ("anthropic", "claude-opus-4-20250514", {"max_output_tokens": 32_000, "sampling_exclusive": True, "top_p": True}),
    ("anthropic", "claude-opus-4-1", {"max_output_tokens": 32_000, "temperature": True}),
    ("anthropic", "claude-opus-4-7", {"max_output_tokens": 32_000, "temperature": False, "top_p": False}),
    ("anthropic", "claude-opus-5", {"temperature": False, "top_p": False}),
    ("anthropic", "claude-sonnet-4-20250514", {"max_output_tokens": 64_000, "sampling_exclusive": True}),
    ("anthropic", "claude-sonnet-4-5", {"max_output_tokens": 64_000, "temperature": True}),
    ("anthropic", "claude-haiku-4-5", {"max_output_tokens": 64_000, "sampling_exclusive": True}),
    (
        "anthropic",
        "claude-anything",
        {
            "native_n": False,
            "seed": False,
            "logprobs": False,
            "temperature_max": 1.0,
            "requires_max_tokens": True,
            "default_max_tokens": 4096,
            "thinking": "anthropic_blocks",
        },
    ),
    ("openrouter", "anthropic/claude-opus-4-7", {"temperature": False, "requires_max_tokens": False}),
    # Gemini
    (
        "gemini",
        "gemini-2.5-flash",
        {"max_output_tokens": 65_536, "max_stop": 5, "thinking": "gemini_thoughts", "native_n": True},
    ),
    ("gemini", "models/gemini-2.0-flash", {"max_output_tokens": 8_192, "max_tokens_field": "maxOutputTokens"}),
    # Thinking in tags or reasoning_content
    ("llamacpp", "DeepSeek-R1-Distill-Qwen-7B", {"thinking": "tags", "max_output_tokens": 32_768, "native_n": False}),
    ("ollama", "deepseek-r1:14b", {"thinking": "tags", "max_tokens_field": "num_predict"}),
    ("vllm", "deepseek-ai/DeepSeek-R1", {"thinking": "tags", "native_n": True, "temperature_max": None}),
    (
        "custom",
        "deepseek-reasoner",
        {"thinking": "reasoning_content", "max_output_tokens": 32_768, "temperature": False, "logprobs": False},
    ),
    ("ollama", "qwen3:8b", {"thinking": "tags"}),
    ("vllm", "Qwen/QwQ-32B", {"thinking": "tags"}),
    ("vllm", "Qwen/Qwen3-30B-A3B-Instruct-2507", {"thinking": "none"}),
    ("llamacpp", "SmolLM3-3B", {"thinking": "tags"}),
    # Provider quirks
    ("groq", "llama-3.1-8b-instant", {"native_n": False, "logprobs": False, "temperature_min": 1e-8, "max_stop": 4}),
    ("llamacpp", "any-model", {"native_n": False, "name": "llamacpp"}),
    ("ollama-openai", "llama3.2", {"native_n": False, "logprobs": False}),
    ("local", "smollm2", {"native_n": False, "thinking": "none"}),
]


@pytest.mark.parametrize(("provider", "model", "expected"), TABLE, ids=[f"{p}/{m}" for p, m, _ in TABLE])
def test_each_model_gets_its_familys_profile(provider: str, model: str, expected: dict[str, Any]) -> None:
    profile = model_profile(provider, model)
    assert {name: getattr(profile, name) for name in expected} == expected


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_an_unknown_model_gets_its_providers_defaults(provider: str) -> None:
    profile = model_profile(provider, "some-model-nobody-knows")
    assert profile == PROVIDERS[provider].profile
    assert profile.name == provider


def test_names_are_matched_without_vendor_path_case_or_tag() -> None:
    assert model_key("  OpenAI/O3-Mini ") == "o3-mini"
    assert model_key("models/gemini-2.5-pro") == "gemini-2.5-pro"
    assert [rule.family for rule in matching_rules("openai", "O3-MINI")][:1] == ["openai-reasoning"]
    assert matching_rules("openai", "my-o3-mini-finetune") == ()  # matched from the start only


def test_the_profile_names_the_family_that_decided_it() -> None:
    assert model_profile("anthropic", "claude-opus-4-7").name == "anthropic/claude-opus-4.7+"
    assert model_profile("openai", "o3-mini").name == "openai/openai-reasoning"


def test_every_rule_changes_only_profile_fields() -> None:
    fields = set(ModelProfile.model_fields)
    for rule in PROFILE_RULES:
        assert set(rule.changes) <= fields, rule.family
        ModelProfile.model_validate(dict(rule.changes))  # every value is valid on its own


# -- overrides --------------------------------------------------------------------------------------------


def test_a_caller_overrides_any_field() -> None:
    profile = model_profile("custom", "my-reasoner", {"thinking": "tags", "temperature": False, "max_output_tokens": 9})
    assert (profile.thinking, profile.temperature, profile.max_output_tokens) == ("tags", False, 9)


def test_a_bad_override_names_the_field() -> None:
    with pytest.raises(InvalidConfiguration, match="temprature"):
        model_profile("custom", "m", {"temprature": False})
    with pytest.raises(InvalidConfiguration, match="thinking"):
        model_profile("custom", "m", {"thinking": "loudly"})
    with pytest.raises(InvalidConfiguration, match="unknown provider"):
        model_profile("nowhere", "m")


def test_a_spec_overrides_the_profile_in_python_and_in_a_config_file(tmp_path: Any) -> None:
    in_code = ProviderSpec("custom", "my-reasoner", base_url="http://127.0.0.1:9/v1").with_profile(thinking="tags")
    assert in_code.model_profile().thinking == "tags"
    assert in_code.with_profile(temperature=False).model_profile().temperature is False
    config = tmp_path / "router.toml"
    config.write_text(
        '[[providers]]\nprovider = "vllm"\nmodel = "my-model"\nnative_n = false\n'
        '[providers.profile]\nmax_output_tokens = 2048\nthinking = "reasoning_content"\n'
    )
    loaded = load_routing_config(config).primary.model_profile()
    assert (loaded.max_output_tokens, loaded.thinking, loaded.native_n) == (2048, "reasoning_content", False)


def test_a_bad_profile_in_a_config_is_an_invalid_configuration() -> None:
    with pytest.raises(InvalidConfiguration, match=r"profile.*max_output_tokens"):
        load_routing_config({"providers": [{"provider": "vllm", "model": "m", "profile": {"max_output_tokens": 0}}]})
    with pytest.raises(InvalidConfiguration, match="colour"):
        ProviderSpec("vllm", "m", profile={"colour": "blue"})


@pytest.mark.anyio
async def test_the_router_builds_each_client_with_its_specs_profile() -> None:
    config = ProviderRoutingConfig.single(
        ProviderSpec("custom", "o3-mini", base_url="http://127.0.0.1:9/v1", profile={"max_output_tokens": 50})
    )
    async with ModelClientRouter(config) as router:
        assert router.profile.max_output_tokens == 50
        assert router.profile.temperature is False


@pytest.mark.anyio
async def test_the_router_profile_is_the_strictest_of_its_enabled_routes() -> None:
    roomy = FunctionClient(lambda p, s: "a", profile=ModelProfile(max_output_tokens=16_384, native_n=True))
    strict = FunctionClient(
        lambda p, s: "b", profile=ModelProfile(temperature=False, max_output_tokens=8_192, seed=False)
    )
    disabled = FunctionClient(lambda p, s: "c", profile=ModelProfile(max_output_tokens=10))
    clients = {"vllm/roomy": roomy, "vllm/strict": strict, "vllm/off": disabled}
    config = ProviderRoutingConfig(primary=spec("roomy"), alternatives=(spec("strict"), spec("off", enabled=False)))
    async with ModelClientRouter(config, client_factory=factory(clients)) as router:
        profile = router.profile
        assert (profile.temperature, profile.max_output_tokens, profile.seed, profile.native_n) == (
            False,
            8_192,
            False,
            False,
        )
        fitted = profile.fit(GenerationSettings(temperature=0.7, max_tokens=64_000, seed=1))
        assert fitted.settings.temperature is None and fitted.settings.max_tokens == 8_192
    async with ModelClientRouter(ProviderRoutingConfig.single(spec("roomy")), client_factory=factory(clients)) as one:
        assert one.profile == roomy.profile


# -- the core field the Groq quirk needed ---------------------------------------------------------------------


def test_a_temperature_below_the_minimum_is_raised_to_it_without_counting_as_dropped() -> None:
    groq = model_profile("groq", "llama-3.1-8b-instant")
    fitted = groq.fit(GenerationSettings(temperature=0.0))
    assert fitted.settings.temperature == 1e-8
    assert fitted.dropped == ()
    assert groq.fit(GenerationSettings(temperature=0.5)).settings.temperature == 0.5
    merged = ModelProfile().strictest([groq, ModelProfile(temperature_min=1e-6)])
    assert merged.temperature_min == 1e-6


# -- the catalogue --------------------------------------------------------------------------------------------


def test_every_provider_has_one_wire_format_and_the_cli_reads_the_same_catalogue() -> None:
    from optillm_cli._providers import DEFAULT_MODELS, OPENAI_COMPATIBLE, PROVIDER_NAMES

    assert {info.wire for info in PROVIDERS.values()} == {"openai", "anthropic", "gemini", "ollama", "local"}
    assert tuple(sorted(PROVIDERS)) == PROVIDER_NAMES  # written out in the CLI, so that --help stays light
    assert {"openai", "groq", "openrouter", "vllm", "llamacpp", "ollama-openai", "custom"} == OPENAI_COMPATIBLE
    assert PROVIDERS["anthropic"].default_model == DEFAULT_MODELS["anthropic"] == "claude-3-5-haiku-latest"
    assert "vllm" not in DEFAULT_MODELS  # a server you run yourself: only you know its model
    for name, info in PROVIDERS.items():
        assert info.name == name
        assert info.profile.name == name


def test_every_catalogue_profile_is_valid() -> None:
    """The catalogue builds its profiles without validation (at import); each must validate to itself."""
    for info in PROVIDERS.values():
        checked = ModelProfile.model_validate(info.profile.model_dump(exclude_unset=True))
        assert checked == info.profile, info.name
        assert checked.model_fields_set == info.profile.model_fields_set


HEAVY = ("aiohttp", "httpx", "yaml", "llama_cpp", "httpx_aiohttp")


@pytest.mark.parametrize(
    "statement",
    [
        "from optillm_router import PROVIDERS, model_profile; model_profile('openai', 'o3-mini')",
        "import optillm_cli._providers",
    ],
)
def test_reading_the_catalogue_imports_no_http_stack_or_yaml(statement: str) -> None:
    check = f"import sys\n{statement}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stderr


def test_heavy_names_are_still_there_when_asked_for() -> None:
    check = (
        "import sys, optillm_router\n"
        "assert 'aiohttp' not in sys.modules\n"
        "optillm_router.ModelClientRouter\n"
        "print('aiohttp' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "True"
