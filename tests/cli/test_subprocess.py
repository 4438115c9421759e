"""``optillm`` as a separate process: the console script, an entry-point plugin, stdin, Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from optillm_cli import ExitCode
from optillm_router.testing import FakeOpenAIServer
from tests.cli.conftest import clean_environ

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """An environment whose PYTHONPATH holds a dist-info directory declaring two test plugins."""
    dist = tmp_path / "cli_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cli-test-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[optillm.optimizers]\nfanout = tests.cli.fanout:FanoutOptimizer\nbroken = tests.cli.no_such_module:Nothing\n"
    )
    path = os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return clean_environ(PYTHONPATH=path, COLUMNS="200")


def optillm(*argv: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "optillm_cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_strategies_lists_an_entry_point_plugin_and_its_load_failure(plugin_env: dict[str, str]) -> None:
    done = optillm("strategies", "--json", env=plugin_env)
    assert done.returncode == ExitCode.OK, done.stderr
    data = json.loads(done.stdout)
    entries = {s["name"]: s for s in data["strategies"]}
    assert entries["fanout"]["package"] == "cli-test-plugin"
    assert {f["name"]: f["default"] for f in entries["fanout"]["config"]}["samples"] == 3
    failures = {f["name"]: f for f in data["failures"]}
    assert "ModuleNotFoundError" in failures["broken"]["error"]

    text = optillm("strategies", env=plugin_env)
    assert "fanout  (cli-test-plugin)" in text.stdout
    assert "broken  (cli-test-plugin): ModuleNotFoundError" in text.stdout


def test_run_reads_stdin_and_prints_json(plugin_env: dict[str, str]) -> None:
    with FakeOpenAIServer().running_in_thread() as server:
        done = optillm("run", "fanout", "-", "--base-url", server.base_url, "--json", env=plugin_env, stdin="2 + 2?")
        requests = server.chat_requests
    assert done.returncode == ExitCode.OK, done.stderr
    assert done.stderr == ""
    data = json.loads(done.stdout)
    assert data["llm_calls"] == len(requests) == 4
    assert requests[0].user_text == "2 + 2?"


def test_the_console_script_is_installed(plugin_env: dict[str, str]) -> None:
    script = shutil.which("optillm", path=str(Path(sys.executable).parent))
    assert script is not None
    done = subprocess.run([script, "run", "nosuch", "q?"], capture_output=True, text=True, env=plugin_env, check=False)
    assert done.returncode == ExitCode.CONFIG
    assert done.stderr.startswith("optillm: error: unknown strategy 'nosuch' (installed: ")
    assert "fanout" in done.stderr
    assert done.stderr.count("\n") == 1


def test_ctrl_c_cancels_the_run_and_reports_what_was_spent(plugin_env: dict[str, str]) -> None:
    all_arrived = threading.Event()
    release = threading.Event()
    arrivals: list[int] = []

    async def hang(body: dict[str, Any], choice: int) -> str:
        arrivals.append(choice)
        if len(arrivals) == 3:  # the three concurrent samples are all in flight
            all_arrived.set()
        await anyio.to_thread.run_sync(release.wait)
        return "too late"

    with FakeOpenAIServer(reply=hang).running_in_thread() as server:
        argv = [sys.executable, "-m", "optillm_cli", "run", "fanout", "q?", "--base-url", server.base_url]
        process = subprocess.Popen(argv, env=plugin_env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert all_arrived.wait(timeout=30)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=30)
        finally:
            process.kill()
            process.wait()
            release.set()
    assert process.returncode == ExitCode.INTERRUPTED
    assert out == b""
    assert err.decode().splitlines() == [
        "optillm: interrupted; spent 3 LLM calls and 0 tokens (0 prompt + 0 completion)"
    ]
