"""MarsConfig: the seed's defaults, builders, validation and lightweight resolution."""

from __future__ import annotations

import pytest

from optillm_core import InvalidConfiguration, default_registry
from optillm_mars import MarsConfig, MarsCoordinator, MarsOptimizer


def test_defaults_match_the_seed_and_upstream() -> None:
    config = MarsConfig()
    assert config.num_agents == 3
    assert config.temperatures == (0.3, 0.6, 1.0)
    assert config.consensus_threshold == 2
    assert config.max_iterations == 5
    assert config.verification_passes_required == 2
    assert config.use_thinking_tags is True
    # Upstream's 64,000 is gone: no output limit of MARS's own unless set (the caller's caps every call).
    assert (config.token_budget_reasoning, config.token_budget_review) == (None, None)
    assert config.token_budget_lightweight == 4_000
    assert config.auto_lightweight_mode is True
    assert (
        config.aggregation_population_size,
        config.aggregation_selection_size,
        config.aggregation_loops,
    ) == (6, 3, 3)
    assert config.timeout_seconds == 300
    assert config.enable_aggregation is True
    assert config.enable_strategy_network is True


def test_builders_return_validated_copies() -> None:
    base = MarsConfig()
    assert base.with_num_agents(5).temperatures == (0.3, 0.6, 1.0, 1.0, 1.0)
    assert base.with_num_agents(2).temperatures == (0.3, 0.6, 1.0)
    assert base.with_num_agents(5).with_num_agents(3).temperatures == (0.3, 0.6, 1.0)
    assert base.with_temperatures([0.1, 0.2, 0.3]).temperatures == (0.1, 0.2, 0.3)
    assert base.with_aggregation(False).enable_aggregation is False
    assert base.with_strategy_network(False).enable_strategy_network is False
    assert base.with_aggregation(False).with_strategy_network(False).with_advanced_features().enable_aggregation
    assert base.with_max_iterations(1).max_iterations == 1
    assert base.with_debug().debug is True
    assert base.max_iterations == 5  # the original is unchanged


def test_lightweight_is_upstreams_reduced_config() -> None:
    light = MarsConfig.lightweight()
    assert light.num_agents == 2
    assert light.max_iterations == 2
    assert light.verification_passes_required == 1
    assert light.enable_aggregation is False
    assert light.enable_strategy_network is False


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"num_agents": 4, "temperatures": (0.3, 0.6, 1.0)}, "temperatures"),
        ({"temperatures": (0.3,)}, "temperatures"),
        ({"token_budget_reasoning": 0}, "token_budget_reasoning"),
        ({"aggregation_selection_size": 7}, "aggregation_selection_size"),
        ({"num_agents": 0}, "num_agents"),
        ({"temperatures": (0.3, -0.1, 1.0)}, "temperatures"),
        ({"consensus_threshold": 0}, "consensus_threshold"),
        ({"verification_passes_required": 0}, "verification_passes_required"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"agents": 3}, "agents"),
    ],
)
def test_invalid_settings_name_the_field(options: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidConfiguration, match=field):
        MarsConfig(**options)


def test_too_few_temperatures_says_how_to_fix_it() -> None:
    with pytest.raises(InvalidConfiguration, match="with_num_agents pads"):
        MarsConfig(num_agents=4, temperatures=(0.3, 0.6))


def test_default_temperatures_grow_with_the_agents_without_pinning_them() -> None:
    for config in (MarsConfig(num_agents=5), MarsConfig().with_num_agents(5)):
        assert config.temperatures == (0.3, 0.6, 1.0, 1.0, 1.0)
        assert config.pinned(temperature="temperatures") == frozenset()
    chosen = MarsConfig(num_agents=2, temperatures=(0.2, 0.4)).with_num_agents(3)
    assert chosen.temperatures == (0.2, 0.4, 1.0)
    assert chosen.pinned(temperature="temperatures") == {"temperature"}


def test_from_mapping_converts_plain_values() -> None:
    config = MarsConfig.from_mapping({"num_agents": "2", "enable_aggregation": "false", "temperatures": [0.2, 0.4]})
    assert config.num_agents == 2
    assert config.enable_aggregation is False
    assert config.temperatures == (0.2, 0.4)


@pytest.mark.parametrize(
    ("max_tokens", "lightweight"), [(None, False), (8000, False), (4001, False), (4000, True), (512, True)]
)
def test_resolve_applies_lightweight_mode_for_small_max_tokens(max_tokens: int | None, lightweight: bool) -> None:
    config = MarsConfig().resolve(max_tokens)
    assert (config.num_agents == 2 and not config.enable_aggregation) is lightweight


def test_lightweight_mode_keeps_what_the_user_set() -> None:
    config = MarsConfig(verification_temperature=0.2).resolve(1000)
    assert config.num_agents == 2
    assert config.pinned(temperature="verification_temperature") == {"temperature"}
    assert config.pinned(temperature="temperatures") == frozenset()


def test_auto_lightweight_mode_can_be_turned_off() -> None:
    config = MarsConfig(auto_lightweight_mode=False).resolve(1000)
    assert config.num_agents == 3


def test_registered_under_the_mars_entry_point() -> None:
    info = default_registry().get("mars")
    optimizer = default_registry().create("mars", {"num_agents": 2})
    assert isinstance(optimizer, MarsOptimizer)
    assert optimizer.config.num_agents == 2
    assert info.name == "mars"
    assert MarsCoordinator is MarsOptimizer
