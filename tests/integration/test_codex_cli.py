"""OpenAI's Codex CLI itself against the proxy: ``codex exec`` through a custom ``model_providers`` entry.

Codex speaks only the Responses API (``wire_api = "responses"``, streamed). Behind the proxy is
the router and a fake OpenAI-compatible provider whose model, offered Codex's ``exec_command``
tool, asks for a shell command whose output it cannot know (``$((6*7))``), then answers from the
command's output. The final answer holds ``42`` only when Codex really ran the command and sent its
output back. Runs through pass-through and through MoA.

Codex is the npm package ``@openai/codex`` at :data:`CODEX_VERSION`, installed by ``.ci/run``
into ``.ci/codex`` (or found through ``OPTILLM_CODEX`` or on ``PATH`` at that version). Where it
is missing the test installs it there with npm; it is skipped, saying why, only where npm cannot
be had.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from optillm_core import ToolCall, default_registry
from optillm_core.testing import JumpClock
from optillm_router import ModelClientRouter, ProviderRoutingConfig
from optillm_router.testing import FakeProviderServer, FakeReply
from optillm_server import create_app
from tests.server.support import serving

pytestmark = pytest.mark.anyio

CODEX_VERSION = "0.169.0"
"""The pinned Codex CLI (``.ci/run`` installs the same version)."""
ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = ROOT / ".ci" / "codex"
LIMIT = 120
MARKER = re.compile(r"optillm-codex-marker-(\d+)")
COMMAND = "echo optillm-codex-marker-$((6*7))"
PROMPT = "Run the marker command and tell me what it printed."
PROXY_KEY = "proxy-key-for-codex"
"""The proxy demands it; Codex sends it as ``Authorization: Bearer`` from the provider's ``env_key``."""


def _version_of(binary: str) -> str | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return out.stdout.strip().removeprefix("codex-cli ") or None


def _codex_binary() -> str:
    """The pinned Codex CLI: given, installed by .ci/run, on PATH, or installed now with npm (else a skip)."""
    candidates = [os.environ.get("OPTILLM_CODEX"), str(INSTALL_DIR / "node_modules" / ".bin" / "codex")]
    candidates.append(shutil.which("codex"))
    for candidate in candidates:
        if candidate and Path(candidate).exists() and _version_of(candidate) == CODEX_VERSION:
            return candidate
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"the Codex CLI test needs @openai/codex@{CODEX_VERSION} and npm is not installed to get it")
    install = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--prefix", str(INSTALL_DIR), f"@openai/codex@{CODEX_VERSION}"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    binary = str(INSTALL_DIR / "node_modules" / ".bin" / "codex")
    if install.returncode != 0 or _version_of(binary) != CODEX_VERSION:
        pytest.skip(f"npm could not install @openai/codex@{CODEX_VERSION}: {install.stderr.strip()[-500:]}")
    return binary


@pytest.fixture(scope="module")
def codex() -> str:
    return _codex_binary()


def shell_model(chat: dict[str, Any], choice: int) -> str | FakeReply:
    """A model that asks Codex's shell tool for a command, and once its output is before it, says what it printed.

    It reads the output wherever the conversation shows it: a tool message on pass-through, the
    rendered transcript in a strategy's prompt.
    """
    shown = " ".join(str(m.get("content") or "") for m in chat.get("messages") or ())
    printed = MARKER.search(shown)
    if printed:
        return FakeReply(f"The command printed {printed.group(0)}.")
    tools = [(t.get("function") or {}).get("name") for t in chat.get("tools") or ()]
    if "exec_command" in tools:
        call = ToolCall(id=f"call_{len(chat['messages'])}", name="exec_command", arguments=json.dumps({"cmd": COMMAND}))
        return FakeReply("", tool_calls=(call,))
    return FakeReply("The marker command should be run in the shell.")


@asynccontextmanager
async def proxy_stack() -> AsyncIterator[tuple[str, FakeProviderServer]]:
    server = FakeProviderServer("openai", reply=shell_model)
    async with server:
        router = ModelClientRouter(ProviderRoutingConfig(primary=server.spec()), clock=JumpClock())
        async with router:
            app = create_app(client=router, model="fake-model", registry=default_registry(), require_key=PROXY_KEY)
            async with serving(app) as url:
                yield url, server


def codex_home(path: Path, base_url: str, model: str) -> Path:
    """A CODEX_HOME whose config points Codex at the proxy as a custom provider (no retries: a failure shows)."""
    path.mkdir()
    (path / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "optillm"\n'
        "[model_providers.optillm]\n"
        'name = "optillm"\n'
        f'base_url = "{base_url}"\n'
        'wire_api = "responses"\n'
        'env_key = "OPTILLM_KEY"\n'
        "request_max_retries = 0\n"
        "stream_max_retries = 0\n"
    )
    return path


@pytest.mark.parametrize("model", ["fake-model", "moa-fake-model"], ids=["pass-through", "moa"])
async def test_codex_exec_runs_the_models_shell_command_and_answers_from_its_output(
    codex: str, tmp_path: Path, model: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    last = tmp_path / "last-message.txt"
    with anyio.fail_after(LIMIT):
        async with proxy_stack() as (url, server):
            home = codex_home(tmp_path / "codex-home", url, model)
            env = {
                "PATH": os.environ.get("PATH", ""),
                "CODEX_HOME": str(home),
                "HOME": str(home),
                "OPTILLM_KEY": PROXY_KEY,
            }
            command = [codex, "exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"]
            command += ["-C", str(work), "--output-last-message", str(last), PROMPT]
            done = await anyio.run_process(command, env=env, check=False, stdin=subprocess.DEVNULL)
    log = done.stderr.decode(errors="replace")
    assert done.returncode == 0, log[-3000:]
    assert last.read_text().strip() == "The command printed optillm-codex-marker-42."
    assert "optillm-codex-marker-42" in log  # Codex ran the command and showed its output
    turns = [r.chat for r in server.requests]
    assert any(MARKER.search(json.dumps(turn["messages"])) for turn in turns), "no model call saw the output"
    offered = {(tool.get("function") or {}).get("name") for turn in turns for tool in turn.get("tools") or ()}
    assert "exec_command" in offered
    assert "web_search" not in offered  # a hosted tool the proxy cannot run is left out
