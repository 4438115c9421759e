"""``optillm serve`` serves every model of its provider (or of its router config), on all three endpoints.

The CLI builds the real app over a fake OpenAI-compatible provider; a probe stands in for uvicorn
and sends requests to the app, and the fake records which model each call asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import optillm_server
from optillm_cli import ExitCode
from optillm_router.testing import FakeOpenAIServer
from tests.cli.conftest import CliRunner, clean_environ

CHAT = {"messages": [{"role": "user", "content": "What is 12 + 7?"}], "max_tokens": 32}

Probe = Callable[[TestClient], dict[str, Any]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    return CliRunner(capsys)


def reply(body: dict[str, Any], choice: int) -> str:
    return f"answer from {body['model']}"


def serve_with(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, probe: Probe, *argv: str, env: Mapping[str, str]
) -> Any:
    """Run ``optillm serve ARGV`` with ``probe`` in uvicorn's place: the CLI's result and what the probe saw."""
    seen: dict[str, Any] = {}

    def fake_serve(app: Starlette, *, host: str, port: int) -> None:
        seen["address"] = (host, port)
        with TestClient(app) as client:
            seen.update(probe(client))

    monkeypatch.setattr(optillm_server, "serve", fake_serve)
    return cli("serve", *argv, env=dict(env)), seen


def every_endpoint(client: TestClient) -> dict[str, Any]:
    return {
        "strategy": client.post("/v1/chat/completions", json={**CHAT, "model": "moa-gpt-4o-mini"}),
        "forwarded": client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-4o-mini"}),
        "messages": client.post("/v1/messages", json={**CHAT, "model": "claude-like", "max_tokens": 32}),
        "responses": client.post("/v1/responses", json={"model": "moa-other-model", "input": "What is 12 + 7?"}),
    }


def test_serve_with_a_base_url_serves_every_model_of_the_upstream(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(reply=reply).running_in_thread() as server:
        result, seen = serve_with(
            cli,
            monkeypatch,
            every_endpoint,
            "--base-url",
            server.base_url,
            "--model",
            "fake-model",
            env=clean_environ(),
        )
        models = [r.body["model"] for r in server.chat_requests]
    assert result.code == ExitCode.OK, result.err
    assert "optillm: serving every model of" in result.err
    assert seen["strategy"].status_code == 200, seen["strategy"].text
    assert seen["strategy"].json()["model"] == "moa-gpt-4o-mini"
    assert seen["forwarded"].json()["choices"][0]["message"]["content"] == "answer from gpt-4o-mini"
    assert seen["messages"].json()["content"][0]["text"] == "answer from claude-like"
    assert seen["responses"].json()["output"][-1]["content"][0]["text"] == "answer from other-model"
    # MoA's calls on gpt-4o-mini, the forwarded request, the Messages pass-through, MoA's calls on other-model
    assert set(models) == {"gpt-4o-mini", "claude-like", "other-model"}
    assert "fake-model" not in models


def test_the_environment_sets_the_upstream_port_and_default_strategy(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    def probe(client: TestClient) -> dict[str, Any]:
        return {
            "plain": client.post("/v1/responses", json={"model": "fake-model", "input": "Q"}),
            "none": client.post(
                "/v1/responses", json={"model": "fake-model", "input": "Q", "optillm_approach": "none"}
            ),
        }

    with FakeOpenAIServer(reply=reply).running_in_thread() as server:
        env = clean_environ(
            OPTILLM_BASE_URL=server.base_url, OPTILLM_MODEL="fake-model", OPTILLM_APPROACH="moa", OPTILLM_PORT="8765"
        )
        result, seen = serve_with(cli, monkeypatch, probe, env=env)
        calls = len(server.chat_requests)
    assert result.code == ExitCode.OK, result.err
    assert seen["address"] == ("127.0.0.1", 8765)
    assert "requests naming no strategy run moa" in result.err
    assert seen["plain"].json()["optillm"]["llm_calls"] > 1  # MoA ran: its report is in the response
    assert "optillm" not in seen["none"].json()  # optillm_approach 'none' passes through
    assert calls > 2


def test_an_unknown_default_strategy_is_a_config_error(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(reply=reply).running_in_thread() as server:
        result, _ = serve_with(
            cli,
            monkeypatch,
            lambda client: {},
            "--base-url",
            server.base_url,
            "--approach",
            "nope",
            env=clean_environ(),
        )
    assert result.code == ExitCode.CONFIG
    assert "unknown strategy 'nope'" in result.err


def test_a_router_config_serves_each_configured_model_and_its_alias(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def probe(client: TestClient) -> dict[str, Any]:
        return {
            "models": client.get("/v1/models"),
            "alias": client.post("/v1/chat/completions", json={**CHAT, "model": "moa-small"}),
            "second": client.post("/v1/responses", json={"model": "second-model", "input": "Q"}),
            "unknown": client.post("/v1/responses", json={"model": "not-configured", "input": "Q"}),
        }

    with FakeOpenAIServer(reply=reply).running_in_thread() as server:
        config = tmp_path / "router.toml"
        config.write_text(
            f'[[providers]]\nprovider = "custom"\nmodel = "first-model"\nbase_url = "{server.base_url}"\n\n'
            f'[[providers]]\nprovider = "custom"\nmodel = "second-model"\nname = "small"\n'
            f'base_url = "{server.base_url}"\n'
        )
        result, seen = serve_with(cli, monkeypatch, probe, "--config", str(config), env=clean_environ())
        models = [r.body["model"] for r in server.chat_requests]
    assert result.code == ExitCode.OK, result.err
    listed = [m["id"] for m in seen["models"].json()["data"]]
    assert {"first-model", "second-model", "small", "moa-first-model", "moa-small"} <= set(listed)
    assert seen["alias"].status_code == 200
    assert seen["second"].json()["output"][0]["content"][0]["text"] == "answer from second-model"
    assert seen["unknown"].status_code == 400
    assert "first-model, second-model, small" in seen["unknown"].json()["error"]["message"]
    assert set(models) == {"second-model"}  # the alias and the second model both run on the second provider
