"""``optillm run`` in this process through the real router against the fake OpenAI server."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optillm_cli import ExitCode
from optillm_router.testing import FakeOpenAIServer, FakeRequest, count_words
from tests.cli.conftest import CliRunner

SAMPLE = "Twelve plus seven makes 19."
PICK = "Candidate 0 is right: 19."


def reply(body: dict[str, Any], choice: int) -> str:
    last = str(body["messages"][-1]["content"])
    return PICK if last.startswith("Pick the best") else SAMPLE


def reported_usage(requests: list[FakeRequest]) -> dict[str, int]:
    """What the fake server reported for these requests, summed (it counts words)."""
    prompt = sum(count_words(str(m.get("content", ""))) for r in requests for m in r.messages)
    completion = sum(count_words(reply(r.body, 0)) for r in requests)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(reply=reply).running_in_thread() as running:
        yield running


def test_json_usage_equals_what_the_server_reported(cli: CliRunner, server: FakeOpenAIServer) -> None:
    argv = ["run", "fanout", "What is 12 + 7?", "--base-url", server.base_url, "--model", "fake-model"]
    result = cli(*argv, "--json", "--max-tokens", "64", "--temperature", "0.2")
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    requests = server.chat_requests
    assert len(requests) == 4
    assert data["usage"] == reported_usage(requests)
    assert data["llm_calls"] == 4
    assert data["answer"] == PICK
    assert data["model"] == "fake-model"
    assert data["strategy"] == "fanout"
    assert data["selection"]["candidates"] == 3
    assert {r.body["max_tokens"] for r in requests} == {64}  # --base-url alone: any OpenAI-compatible server
    assert [r.body["temperature"] for r in requests] == [0.2, 0.2, 0.2, 0.2]  # the caller's, in every phase here
    assert {r.body["model"] for r in requests} == {"fake-model"}


def test_the_api_key_is_sent_as_a_bearer_token(cli: CliRunner) -> None:
    with FakeOpenAIServer(reply=reply, api_key="right-key-123").running_in_thread() as server:
        result = cli("run", "fanout", "q?", "--base-url", server.base_url, "--api-key", "right-key-123")
    assert result.code == ExitCode.OK, result.err
    assert result.out == PICK + "\n"


def test_a_rejected_key_exits_with_the_auth_code(cli: CliRunner) -> None:
    with FakeOpenAIServer(reply=reply, api_key="right-key-123").running_in_thread() as server:
        result = cli("run", "fanout", "q?", "--base-url", server.base_url, "--api-key", "wrong-key-456")
    assert result.code == ExitCode.AUTH
    assert result.err.startswith("optillm: error: the provider rejected the API key")
    assert result.err.count("\n") == 1
    assert "wrong-key-456" not in result.err
    assert result.out == ""


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_an_unreachable_base_url_exits_with_the_unavailable_code(cli: CliRunner) -> None:
    result = cli("run", "fanout", "q?", "--base-url", f"http://127.0.0.1:{_closed_port()}/v1")
    assert result.code == ExitCode.UNAVAILABLE
    assert result.err.startswith("optillm: error: the provider is unavailable")
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err


def test_an_unknown_model_exits_with_the_rejected_code(cli: CliRunner) -> None:
    def not_found(index: int, body: dict[str, Any]) -> Any:
        from optillm_router.testing import Fault

        return Fault(status=404, body={"error": {"message": "The model 'nope' does not exist"}})

    with FakeOpenAIServer(reply=reply, faults=not_found).running_in_thread() as server:
        result = cli("run", "fanout", "q?", "--base-url", server.base_url, "--model", "nope")
    assert result.code == ExitCode.REJECTED
    assert "does not exist" in result.err


def test_the_call_budget_limits_what_reaches_the_server(cli: CliRunner, server: FakeOpenAIServer) -> None:
    result = cli("run", "fanout", "q?", "--base-url", server.base_url, "--budget-calls", "3", "--json")
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    assert data["budget_exhausted"] is True
    assert len(server.chat_requests) == 3
    assert data["usage"] == reported_usage(server.chat_requests)


def test_the_cli_offers_exactly_the_routers_providers() -> None:
    from optillm_cli._providers import PROVIDER_NAMES
    from optillm_router import PROVIDERS

    assert set(PROVIDER_NAMES) == set(PROVIDERS)


def test_a_router_config_file_describes_the_providers(cli: CliRunner, server: FakeOpenAIServer, tmp_path: Path) -> None:
    config = tmp_path / "router.toml"
    provider = f'provider = "custom"\nmodel = "from-config"\nbase_url = "{server.base_url}"\n'
    config.write_text(f"max_retries = 0\n\n[[providers]]\n{provider}")
    result = cli("run", "fanout", "q?", "--config", str(config), "--json")
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    assert data["model"] == "from-config"
    assert {r.body["model"] for r in server.chat_requests} == {"from-config"}
    assert data["usage"] == reported_usage(server.chat_requests)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("router.toml", "max_retries = [", "is not valid TOML"),
        ("router.yaml", "primary: {provider: custom}\n", "model"),
        ("router.ini", "x", "unsupported file type"),
    ],
)
def test_a_bad_config_file_is_a_config_error(
    cli: CliRunner, tmp_path: Path, name: str, text: str, expected: str
) -> None:
    config = tmp_path / name
    config.write_text(text)
    result = cli("run", "fanout", "q?", "--config", str(config))
    assert result.code == ExitCode.CONFIG
    assert expected in result.err
    assert result.err.count("\n") == 1


def test_a_missing_config_file_is_a_config_error(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("run", "fanout", "q?", "--config", str(tmp_path / "nope.toml"))
    assert result.code == ExitCode.CONFIG
    assert "not found" in result.err
