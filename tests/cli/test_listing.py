"""``optillm strategies`` read from its cache: current while nothing it was listed from changed, rebuilt when it did."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optillm_cli import ExitCode, run_cli
from optillm_cli._listing import CACHE_FORMAT, cache_path
from tests.cli.conftest import CliRunner, clean_environ

ROOT = Path(__file__).resolve().parents[2]

_PLUGIN = """from tests.cli.fanout import FanoutOptimizer


class Listed(FanoutOptimizer):
    name = "listed"
    description = "{description}"
"""


class Plugin:
    """A distribution on PYTHONPATH, in a temporary folder, whose entry point names a strategy module beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dist = root / "listing_plugin-0.1.dist-info"
        self.dist.mkdir()
        (self.dist / "METADATA").write_text("Metadata-Version: 2.1\nName: listing-plugin\nVersion: 0.1\n")
        self.entry_points("listed = listing_plugin:Listed")
        self.describe("Lists itself.")
        self.cache = root / "cache"

    def entry_points(self, *lines: str) -> None:
        (self.dist / "entry_points.txt").write_text("[optillm.optimizers]\n" + "\n".join(lines) + "\n")

    def describe(self, description: str) -> None:
        (self.root / "listing_plugin.py").write_text(_PLUGIN.format(description=description))

    def env(self, **extra: str) -> dict[str, str]:
        path = os.pathsep.join([str(self.root), str(ROOT), os.environ.get("PYTHONPATH", "")])
        settings = {"PYTHONPATH": path, "OPTILLM_CACHE_DIR": str(self.cache), "PYTHONDONTWRITEBYTECODE": "1"}
        return clean_environ(**{**settings, **extra})

    def cached_files(self) -> list[Path]:
        return sorted(self.cache.glob("strategies-*.json")) if self.cache.exists() else []


@pytest.fixture
def plugin(tmp_path: Path) -> Plugin:
    return Plugin(tmp_path)


def listing(env: dict[str, str], *argv: str) -> tuple[str, list[str]]:
    """What ``optillm strategies`` printed in a fresh interpreter, and which of optillm-core and structlog it loaded."""
    probe = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps([m for m in ('optillm_core', 'structlog', 'pydantic') "
        "if m in sys.modules]), file=sys.stderr))\n"
        "from optillm_cli import main\n"
        f"sys.exit(main(['strategies', *{list(argv)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False
    )
    assert done.returncode == ExitCode.OK, done.stderr
    loaded: list[str] = json.loads(done.stderr.strip().splitlines()[-1])
    return done.stdout, loaded


def names(text: str) -> list[str]:
    return [s["name"] for s in json.loads(text)["strategies"]]


def test_a_second_listing_comes_from_the_cache_and_reads_the_same(plugin: Plugin) -> None:
    built, loaded = listing(plugin.env(), "--json")
    assert loaded == ["optillm_core", "structlog", "pydantic"]
    assert "listed" in names(built)
    assert len(plugin.cached_files()) == 1

    cached, loaded = listing(plugin.env(), "--json")
    assert loaded == []
    assert cached == built

    text, loaded = listing(plugin.env())
    assert loaded == []
    assert "listed  (listing-plugin)\n    Lists itself.\n" in text
    assert "phase sampling (answer): gets the caller's max_tokens, temperature, top_p, seed" in text
    assert '--set style="short"' in text


def test_the_text_from_the_cache_is_the_text_built_fresh(plugin: Plugin) -> None:
    fresh, _ = listing(plugin.env(OPTILLM_CACHE_DIR=""))
    listing(plugin.env())
    cached, loaded = listing(plugin.env())
    assert loaded == []
    assert cached == fresh


def test_an_edited_strategy_module_is_listed_as_it_is_now(plugin: Plugin) -> None:
    listing(plugin.env())
    plugin.describe("Lists itself, described anew.")
    text, loaded = listing(plugin.env())
    assert "optillm_core" in loaded
    assert "Lists itself, described anew." in text


def test_a_new_or_removed_entry_point_is_listed_as_it_is_now(plugin: Plugin) -> None:
    listing(plugin.env())
    plugin.entry_points("listed = listing_plugin:Listed", "fanout = tests.cli.fanout:FanoutOptimizer")
    assert {"listed", "fanout"} <= set(names(listing(plugin.env(), "--json")[0]))
    plugin.entry_points("fanout = tests.cli.fanout:FanoutOptimizer")
    now = names(listing(plugin.env(), "--json")[0])
    assert "listed" not in now
    assert "fanout" in now


def test_an_uninstalled_distribution_is_no_longer_listed(plugin: Plugin) -> None:
    listing(plugin.env())
    for file in plugin.dist.iterdir():
        file.unlink()
    plugin.dist.rmdir()
    text, loaded = listing(plugin.env(), "--json")
    assert "optillm_core" in loaded
    assert "listed" not in names(text)


def test_a_listing_with_load_failures_is_not_kept(plugin: Plugin) -> None:
    plugin.entry_points("listed = listing_plugin:Listed", "broken = no_such_module:Nothing")
    for _ in range(2):
        text, loaded = listing(plugin.env(), "--json")
        assert "optillm_core" in loaded
        assert "broken" in [f["name"] for f in json.loads(text)["failures"]]
    assert plugin.cached_files() == []


@pytest.mark.parametrize("content", ["{not json", '{"fingerprint": 3, "document": {}}', "[]", ""])
def test_a_damaged_cache_is_rebuilt(plugin: Plugin, content: str) -> None:
    listing(plugin.env())
    (cached,) = plugin.cached_files()
    cached.write_text(content)
    text, loaded = listing(plugin.env(), "--json")
    assert "optillm_core" in loaded
    assert "listed" in names(text)
    assert json.loads(cached.read_text())["fingerprint"]["format"] == CACHE_FORMAT


def test_a_cache_folder_that_cannot_be_written_is_ignored(plugin: Plugin) -> None:
    plugin.cache.write_text("a file where the cache folder would be")
    text, _ = listing(plugin.env(), "--json")
    assert "listed" in names(text)
    assert list(plugin.root.glob("cache*")) == [plugin.cache]


def test_where_the_cache_lives() -> None:
    assert cache_path({"OPTILLM_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x", "HOME": "/h"}).parent == Path("/c")  # type: ignore[union-attr]
    assert cache_path({"XDG_CACHE_HOME": "/x", "HOME": "/h"}).parent == Path("/x/optillm")  # type: ignore[union-attr]
    assert cache_path({"HOME": "/h"}).parent == Path("/h/.cache/optillm")  # type: ignore[union-attr]
    assert cache_path({"OPTILLM_CACHE_DIR": "", "HOME": "/h"}) is None
    assert cache_path({}) is None


def test_a_process_that_loaded_core_asks_the_registry_not_the_cache(tmp_path: Path, cli: CliRunner) -> None:
    """In-process callers may have registered strategies by hand, which no cache could know of."""
    env = {"OPTILLM_CACHE_DIR": str(tmp_path)}
    path = cache_path(env)
    assert path is not None
    path.write_text(json.dumps({"fingerprint": {}, "document": {"strategies": [], "failures": []}}))
    assert "optillm_core" in sys.modules
    result = cli("strategies", "--json", env=env)
    assert "moa" in names(result.out)
    assert run_cli(["strategies"], env=env) == ExitCode.OK
