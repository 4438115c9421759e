"""The config examples in the router README load as they are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from optillm_router import RoutingStrategy, load_routing_config

README = Path(__file__).parents[2] / "packages" / "optillm-router" / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize(("language", "suffix"), [("toml", ".toml"), ("yaml", ".yaml")])
def test_readme_config_examples_load(tmp_path: Path, language: str, suffix: str) -> None:
    blocks = _blocks(language)
    assert blocks
    for number, text in enumerate(blocks):
        path = tmp_path / f"example{number}{suffix}"
        path.write_text(text)
        config = load_routing_config(path)
        assert isinstance(config.strategy, RoutingStrategy)
        assert len(config.providers) >= 2
