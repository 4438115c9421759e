"""ProviderSpec, ProviderRoutingConfig and config files: validation, builders, keys, loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from optillm_core import InvalidConfiguration, Prompt
from optillm_core.testing import ScriptedClient
from optillm_router import (
    MAX_RETRIES,
    PROVIDERS,
    ModelClientRouter,
    ProviderRoutingConfig,
    ProviderSpec,
    RoutingStrategy,
    load_routing_config,
)

from .router_support import factory, spec

pytestmark = pytest.mark.anyio

SECRET = "sk-test-0123456789abcdef"


def test_unknown_provider_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidConfiguration) as info:
        ProviderSpec("openaii", "gpt-4o-mini")
    message = str(info.value)
    assert "unknown provider 'openaii'" in message
    for name in PROVIDERS:
        assert name in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rpm", -1),
        ("tpm", 0),
        ("max_concurrency", 0),
        ("weight", -0.5),
        ("input_price_per_million", -1.0),
        ("timeout_seconds", 0),
    ],
)
def test_invalid_numbers_name_the_field(field: str, value: float) -> None:
    with pytest.raises(InvalidConfiguration) as info:
        ProviderSpec("openai", "gpt-4o-mini", **{field: value})
    assert field in str(info.value)
    assert isinstance(info.value, ValueError)


def test_empty_model_and_bad_url_and_unknown_field_are_rejected() -> None:
    with pytest.raises(InvalidConfiguration, match="model"):
        ProviderSpec("openai", "")
    with pytest.raises(InvalidConfiguration, match="base_url must start with http"):
        ProviderSpec("openai", "m", base_url="localhost:8080/v1")
    with pytest.raises(InvalidConfiguration, match="rpmm"):
        ProviderSpec("openai", "m", rpmm=3)


def test_provider_name_is_normalised_and_label_defaults() -> None:
    assert ProviderSpec(" OpenAI ", "gpt-4o").provider == "openai"
    assert ProviderSpec("openai", "gpt-4o").label == "openai/gpt-4o"
    assert ProviderSpec("openai", "gpt-4o", name="main").label == "main"


def test_builders_return_validated_copies() -> None:
    base = ProviderSpec("openai", "gpt-4o-mini")
    built = (
        base.with_api_key(SECRET)
        .with_base_url("http://127.0.0.1:9/v1")
        .with_enabled(False)
        .with_priority(5)
        .with_weight(2.5)
        .with_limits(max_concurrency=4, rpm=60, tpm=10_000)
        .with_prices(input_per_million=0.15, output_per_million=0.6)
    )
    assert base.priority == 0
    assert base.api_key is None
    assert built.api_key is not None
    assert built.api_key.get_secret_value() == SECRET
    assert (built.base_url, built.enabled, built.priority, built.weight) == ("http://127.0.0.1:9/v1", False, 5, 2.5)
    assert (built.max_concurrency, built.rpm, built.tpm) == (4, 60, 10_000)
    assert built.with_env_key("MY_KEY").api_key_env == "MY_KEY"
    with pytest.raises(InvalidConfiguration, match="rpm"):
        base.with_limits(rpm=-5)


def test_repr_and_str_never_show_the_key() -> None:
    secret_spec = ProviderSpec("openai", "gpt-4o", api_key=SECRET)
    config = ProviderRoutingConfig.single(secret_spec)
    for text in (repr(secret_spec), str(secret_spec), repr(config), str(config), repr(config.model_dump())):
        assert SECRET not in text


def test_invalid_key_type_error_does_not_echo_it() -> None:
    with pytest.raises(InvalidConfiguration) as info:
        ProviderSpec("openai", "gpt-4o", api_key="   ")
    assert "api_key" in str(info.value)


# -- keys --------------------------------------------------------------------------------------------


def test_key_resolution_order() -> None:
    env = {"OPENAI_API_KEY": "from-provider-var", "MINE": "from-own-var"}
    assert ProviderSpec("openai", "m", api_key="direct").resolve_api_key(env) == "direct"
    assert ProviderSpec("openai", "m", api_key="env:MINE").resolve_api_key(env) == "from-own-var"
    assert ProviderSpec("openai", "m", api_key_env="MINE").resolve_api_key(env) == "from-own-var"
    assert ProviderSpec("openai", "m").resolve_api_key(env) == "from-provider-var"
    assert ProviderSpec("gemini", "m").resolve_api_key({"GOOGLE_API_KEY": "g"}) == "g"


def test_missing_key_says_which_variable_to_set() -> None:
    with pytest.raises(InvalidConfiguration, match="set ANTHROPIC_API_KEY"):
        ProviderSpec("anthropic", "claude").resolve_api_key({})
    with pytest.raises(InvalidConfiguration, match="set GEMINI_API_KEY or GOOGLE_API_KEY"):
        ProviderSpec("gemini", "g").resolve_api_key({})
    with pytest.raises(InvalidConfiguration, match="environment variable NOPE, which is not set; set NOPE"):
        ProviderSpec("openai", "m", api_key="env:NOPE").resolve_api_key({})
    with pytest.raises(InvalidConfiguration, match="set ALSO_NOPE"):
        ProviderSpec("openai", "m", api_key_env="ALSO_NOPE").resolve_api_key({})


def test_keyless_providers_and_own_servers_need_no_key() -> None:
    assert ProviderSpec("ollama", "llama3").resolve_api_key({}) is None
    assert ProviderSpec("vllm", "m").resolve_api_key({}) is None
    assert ProviderSpec("openai", "m", base_url="http://127.0.0.1:8000/v1").resolve_api_key({}) is None


def test_router_checks_keys_at_construction() -> None:
    config = ProviderRoutingConfig.single(ProviderSpec("anthropic", "claude"))
    with pytest.raises(InvalidConfiguration, match="ANTHROPIC_API_KEY"):
        ModelClientRouter(config, client_factory=factory({}), environ={})


def test_router_needs_an_enabled_provider() -> None:
    config = ProviderRoutingConfig.single(spec("a").with_enabled(False))
    with pytest.raises(InvalidConfiguration, match="no enabled provider"):
        ModelClientRouter(config, client_factory=factory({"vllm/a": ScriptedClient()}))


# -- routing config ---------------------------------------------------------------------------------


def test_single_and_multi_follow_the_seed() -> None:
    single = ProviderRoutingConfig.single(spec("a"))
    assert (single.strategy, single.enable_fallback, single.max_retries, single.timeout_seconds) == (
        RoutingStrategy.PRIMARY,
        True,
        MAX_RETRIES,
        300.0,
    )
    multi = ProviderRoutingConfig.multi(spec("a"), [spec("b"), spec("c")])
    assert multi.strategy is RoutingStrategy.ROUND_ROBIN
    assert multi.max_retries == MAX_RETRIES
    assert [s.model for s in multi.providers] == ["a", "b", "c"]
    changed = multi.with_strategy("highest-priority").with_fallback(False).with_max_retries(0)
    assert (changed.strategy, changed.enable_fallback, changed.max_retries) == (
        RoutingStrategy.HIGHEST_PRIORITY,
        False,
        0,
    )
    with pytest.raises(InvalidConfiguration, match="max_retries"):
        multi.with_max_retries(-1)
    with pytest.raises(InvalidConfiguration, match="strategy"):
        multi.with_strategy("fastest-ever")


def test_more_config_builders() -> None:
    config = (
        ProviderRoutingConfig.single(spec("a"))
        .with_alternative(spec("b"))
        .with_timeout(30.0, connect=2.0)
        .with_cooldown(failures=5, seconds=12.0)
        .with_retry_delays(initial=0.1, maximum=1.0, max_retry_after=9.0)
    )
    assert [s.model for s in config.providers] == ["a", "b"]
    assert (config.timeout_seconds, config.connect_timeout_seconds) == (30.0, 2.0)
    assert (config.cooldown_failures, config.cooldown_seconds) == (5, 12.0)
    assert (config.initial_retry_delay, config.max_retry_delay, config.max_retry_after) == (0.1, 1.0, 9.0)
    with pytest.raises(InvalidConfiguration, match="timeout_seconds"):
        config.with_timeout(0)


def _mapping() -> dict[str, object]:
    return {
        "strategy": "cheapest",
        "max_retries": 3,
        "providers": [
            {"provider": "openai", "model": "gpt-4o-mini", "api_key": "env:TEST_ROUTER_KEY", "rpm": 500},
            {"provider": "ollama", "model": "llama3.2", "priority": 2},
        ],
    }


def _check_loaded(config: ProviderRoutingConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.strategy is RoutingStrategy.CHEAPEST
    assert config.max_retries == 3
    assert config.primary.model == "gpt-4o-mini"
    assert config.primary.rpm == 500
    assert [s.provider for s in config.alternatives] == ["ollama"]
    monkeypatch.setenv("TEST_ROUTER_KEY", SECRET)
    assert config.primary.resolve_api_key() == SECRET


def test_load_from_mapping(monkeypatch: pytest.MonkeyPatch) -> None:
    _check_loaded(load_routing_config(_mapping()), monkeypatch)
    _check_loaded(load_routing_config({"router": _mapping()}), monkeypatch)


def test_load_from_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "router.toml"
    path.write_text(
        """
strategy = "cheapest"
max_retries = 3

[primary]
provider = "openai"
model = "gpt-4o-mini"
api_key = "env:TEST_ROUTER_KEY"
rpm = 500

[[alternatives]]
provider = "ollama"
model = "llama3.2"
priority = 2
"""
    )
    _check_loaded(load_routing_config(path), monkeypatch)


def test_load_from_yaml_and_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    yaml_path = tmp_path / "router.yaml"
    yaml_path.write_text(
        """
router:
  strategy: cheapest
  max_retries: 3
  providers:
    - provider: openai
      model: gpt-4o-mini
      api_key: env:TEST_ROUTER_KEY
      rpm: 500
    - provider: ollama
      model: llama3.2
      priority: 2
"""
    )
    _check_loaded(load_routing_config(str(yaml_path)), monkeypatch)
    json_path = tmp_path / "router.json"
    json_path.write_text(json.dumps(_mapping()))
    _check_loaded(load_routing_config(json_path), monkeypatch)


async def test_router_from_file_resolves_env_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "router.toml"
    path.write_text('[primary]\nprovider = "openai"\nmodel = "m"\napi_key = "env:TEST_ROUTER_KEY"\n')
    seen: list[str | None] = []

    def make(s: ProviderSpec, key: str | None) -> ScriptedClient:
        seen.append(key)
        return ScriptedClient(["ok"])

    monkeypatch.setenv("TEST_ROUTER_KEY", SECRET)
    async with ModelClientRouter.from_file(path, client_factory=make) as router:
        assert (await router.complete(_prompt())).text == "ok"
    assert seen == [SECRET]
    monkeypatch.delenv("TEST_ROUTER_KEY")
    with pytest.raises(InvalidConfiguration, match="TEST_ROUTER_KEY"):
        ModelClientRouter.from_config(path, client_factory=make)


def _prompt() -> Prompt:
    return Prompt.from_query("hi")


@pytest.mark.parametrize(
    ("text", "suffix", "match"),
    [
        ("strategy = 1\n[primary]\nprovider='openai'\nmodel='m'\nrpm=-4\n", ".toml", "primary.rpm"),
        ("[primary\n", ".toml", "not valid TOML"),
        ("primary: [unclosed\n", ".yaml", "not valid YAML"),
        ("- 1\n- 2\n", ".yml", "expected a table"),
        ("primary = 1", ".ini", "unsupported file type"),
        ("providers = []\n", ".toml", "non-empty list"),
        ("[primary]\nprovider='nope'\nmodel='m'\n", ".toml", "valid providers"),
    ],
)
def test_bad_files_raise_invalid_configuration(tmp_path: Path, text: str, suffix: str, match: str) -> None:
    path = tmp_path / f"router{suffix}"
    path.write_text(text)
    with pytest.raises(InvalidConfiguration, match=match):
        load_routing_config(path)


def test_missing_file() -> None:
    with pytest.raises(InvalidConfiguration, match="not found"):
        load_routing_config("/nonexistent/router.toml")


def test_secret_never_echoed_by_validation_errors() -> None:
    with pytest.raises(InvalidConfiguration) as info:
        load_routing_config({"primary": {"provider": "openai", "model": "m", "api_key": 12345678}})
    assert "12345678" not in str(info.value)
