from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from optillm_core import InvalidConfiguration, OptimizerError, OptimizerRegistry

PLUGIN = """
from optillm_core import Optimizer, OptimizerConfig, Outcome


class ShoutConfig(OptimizerConfig):
    volume: int = 3


class ShoutOptimizer(Optimizer[ShoutConfig]):
    name = "shout"
    description = "Answers loudly."
    config_type = ShoutConfig

    async def run(self, ctx):
        completion = await ctx.generate(ctx.query)
        return Outcome(answer=completion.text.upper() + "!" * ctx.config.volume)


NotAnOptimizer = object
"""


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "shout_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "shout_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[optillm.optimizers]\n"
        "shout = shout_plugin:ShoutOptimizer\n"
        "broken = shout_plugin_missing:Nothing\n"
        "wrongtype = shout_plugin:NotAnOptimizer\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("shout_plugin", None)


def test_a_plugin_registered_through_an_entry_point_is_found(plugin_path: Path) -> None:
    registry = OptimizerRegistry()
    assert "shout" in registry.names()
    info = registry.get("shout")
    assert info.package == "shout-plugin"
    assert info.description == "Answers loudly."
    assert info.config_fields()["volume"] == 3
    optimizer = registry.create("shout", {"volume": "5"})
    assert optimizer.config.model_dump()["volume"] == 5


def test_broken_plugins_are_reported_not_fatal(plugin_path: Path) -> None:
    registry = OptimizerRegistry()
    failures = {f.name: f for f in registry.failures}
    assert set(failures) >= {"broken", "wrongtype"}
    assert "ModuleNotFoundError" in failures["broken"].error
    assert "not an Optimizer subclass" in failures["wrongtype"].error
    assert "shout" in registry.names()
    with pytest.raises(OptimizerError, match="failed to load"):
        registry.get("broken")


def test_unknown_name_lists_installed_strategies(plugin_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match=r"unknown strategy 'nope' \(installed: .*shout"):
        OptimizerRegistry().get("nope")


def test_bad_options_name_the_field(plugin_path: Path) -> None:
    with pytest.raises(InvalidConfiguration, match="volume"):
        OptimizerRegistry().create("shout", {"volume": "loud"})


def test_manual_registration_and_empty_source() -> None:
    from tests.core.test_optimizer import Sampler

    registry = OptimizerRegistry(source=[])
    assert registry.names() == []
    registry.register(Sampler)
    assert registry.get("sampler").package == "local"
