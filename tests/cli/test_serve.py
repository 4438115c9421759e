"""``optillm serve``: the flags reach optillm-server's app, and the real server starts and stops cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import optillm_server
from optillm_cli import ExitCode
from optillm_router.testing import FakeOpenAIServer, Fault
from tests.cli.conftest import CliRunner, clean_environ
from tests.cli.test_subprocess import ROOT, plugin_env  # noqa: F401 - a fixture

SAMPLE = "Twelve plus seven makes 19."


def reply(body: dict[str, Any], choice: int) -> str:
    return SAMPLE


class ServeProbe:
    """Stands in for ``optillm_server.serve``: sends a few requests to the app it is given."""

    def __init__(self) -> None:
        self.host: str | None = None
        self.port: int | None = None
        self.responses: dict[str, Any] = {}  # starlette's TestClient responses

    def __call__(self, app: Starlette, *, host: str, port: int) -> None:
        self.host, self.port = host, port
        with TestClient(app) as client:
            self.responses["health"] = client.get("/health")
            self.responses["models without key"] = client.get("/v1/models")
            auth = {"Authorization": "Bearer proxy-key-1"}
            self.responses["models"] = client.get("/v1/models", headers=auth)
            chat = {"messages": [{"role": "user", "content": "What is 12 + 7?"}], "max_tokens": 32}
            self.responses["strategy"] = client.post(
                "/v1/chat/completions", headers=auth, json={**chat, "model": "fanout-fake-model"}
            )
            self.responses["pass-through"] = client.post(
                "/v1/chat/completions", headers=auth, json={**chat, "model": "fake-model", "logprobs": True}
            )


def test_serve_wires_provider_key_and_upstream_into_the_app(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = ServeProbe()
    monkeypatch.setattr(optillm_server, "serve", probe)
    with FakeOpenAIServer(reply=reply).running_in_thread() as server:
        env = clean_environ(OPTILLM_REQUIRE_KEY="proxy-key-1")
        argv = ["serve", "--base-url", server.base_url, "--model", "fake-model", "--port", "8123", "--host", "0.0.0.0"]
        result = cli(*argv, env=env)
        requests = server.chat_requests
    assert result.code == ExitCode.OK, result.err
    assert (probe.host, probe.port) == ("0.0.0.0", 8123)
    responses = probe.responses
    assert responses["health"].status_code == 200
    assert responses["models without key"].status_code == 401
    assert "fanout-fake-model" in [m["id"] for m in responses["models"].json()["data"]]
    strategy = responses["strategy"].json()
    assert strategy["choices"][0]["message"]["content"] == SAMPLE
    assert strategy["usage"]["total_tokens"] > 0
    assert len(requests) == 5  # 4 calls of the strategy, then the pass-through
    assert requests[-1].body["logprobs"] is True  # passed through unchanged
    assert {r.body["max_tokens"] for r in requests} == {32}


def test_serve_retries_pass_through_calls_as_the_router_retries(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = ServeProbe()
    monkeypatch.setattr(optillm_server, "serve", probe)
    rate_limited = Fault(status=429, headers={"retry-after": "0"})
    # requests 0-3 are the strategy's calls; the pass-through (4) is refused once, then sent again (5)
    with FakeOpenAIServer(reply=reply, faults={4: rate_limited}).running_in_thread() as server:
        env = clean_environ(OPTILLM_REQUIRE_KEY="proxy-key-1")
        result = cli("serve", "--base-url", server.base_url, "--model", "fake-model", env=env)
        requests = server.chat_requests
    assert result.code == ExitCode.OK, result.err
    assert probe.responses["pass-through"].status_code == 200
    assert [r.status for r in requests[4:]] == [429, 200]
    assert requests[4].body == requests[5].body


def test_require_key_flag_wins_over_the_environment(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    probe = ServeProbe()
    monkeypatch.setattr(optillm_server, "serve", probe)
    with FakeOpenAIServer(reply=reply).running_in_thread() as server:
        env = clean_environ(OPTILLM_REQUIRE_KEY="other-key")
        result = cli("serve", "--base-url", server.base_url, "--require-key", "proxy-key-1", env=env)
    assert result.code == ExitCode.OK, result.err
    assert probe.responses["models"].status_code == 200


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _wait_for_start(process: subprocess.Popen[str]) -> list[str]:
    """stderr lines up to uvicorn's 'running on' line (or the end, if the server died)."""
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if "Uvicorn running on" in line:
            break
    return lines


def test_the_real_server_answers_and_stops_on_ctrl_c(plugin_env: dict[str, str]) -> None:  # noqa: F811
    port = _free_port()
    with FakeOpenAIServer(reply=reply).running_in_thread() as server:
        argv = [sys.executable, "-m", "optillm_cli", "serve", "--port", str(port), "--base-url", server.base_url]
        process = subprocess.Popen(argv, env=plugin_env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        try:
            started = _wait_for_start(process)
            assert any(f"http://127.0.0.1:{port}" in line for line in started), started
            body = {"model": "fanout-default", "messages": [{"role": "user", "content": "2 + 2?"}]}
            response = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=30)
            process.send_signal(signal.SIGINT)
            _, rest = process.communicate(timeout=30)
        finally:
            process.kill()
            process.wait()
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == SAMPLE
    assert process.returncode == ExitCode.OK
    assert rest.splitlines()[-1] == "optillm: server stopped"
    assert "Traceback" not in rest


def test_a_port_in_use_is_a_config_error(plugin_env: dict[str, str]) -> None:  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = [
            sys.executable,
            "-m",
            "optillm_cli",
            "serve",
            "--port",
            str(port),
            "--base-url",
            "http://127.0.0.1:9/v1",
        ]
        done = subprocess.run(argv, env=plugin_env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == ExitCode.CONFIG
    assert done.stderr.splitlines()[-1] == f"optillm: error: the server could not start on 127.0.0.1:{port} (see above)"
    assert "Traceback" not in done.stderr
