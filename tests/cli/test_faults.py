"""``optillm run`` against a provider that fails like real ones: transient faults retried, the rest one clear line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from optillm_cli import ExitCode
from optillm_core import default_registry
from optillm_router.testing import FakeOpenAIServer, Fault
from tests.cli.conftest import CliRunner
from tests.cli.test_run_fake_server import PICK, reply

RouterFile = Callable[[FakeOpenAIServer], str]
RATE_LIMITED = Fault(status=429, headers={"retry-after": "0"}, body={"error": {"message": "Rate limit reached"}})


@pytest.fixture
def router_file(tmp_path: Path) -> RouterFile:
    """Writes a router config for a server: 2 retries without backoff waits (Retry-After is still honoured)."""

    def write(server: FakeOpenAIServer) -> str:
        config = tmp_path / "router.toml"
        config.write_text(
            "max_retries = 2\ninitial_retry_delay = 0.0\ncooldown_failures = 100\n\n"
            f'[[providers]]\nprovider = "custom"\nmodel = "fake-model"\nbase_url = "{server.base_url}"\n'
        )
        return str(config)

    return write


def assert_one_error_line(err: str) -> None:
    assert err.startswith("optillm: error: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_a_run_survives_transient_faults_with_the_default_flags(cli: CliRunner) -> None:
    faults = {0: RATE_LIMITED, 4: RATE_LIMITED}  # a sample call (0) and the pick call (4, after its retry) refused once
    with FakeOpenAIServer(reply=reply, faults=faults).running_in_thread() as server:
        result = cli("run", "fanout", "What is 12 + 7?", "--base-url", server.base_url, "--json")
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    assert data["answer"] == PICK
    assert data["llm_calls"] == 6  # 4 calls and the 2 retries, each a request sent and charged to the run
    assert len(server.chat_requests) == 6
    assert result.err == ""  # retried calls are logged at warning level, which a run shows only with -v


def test_a_run_survives_a_mix_of_transient_faults(cli: CliRunner, router_file: RouterFile) -> None:
    faults = {0: RATE_LIMITED, 1: Fault(status=503), 2: Fault(status=500), 4: Fault(status=529)}
    with FakeOpenAIServer(reply=reply, faults=faults).running_in_thread() as server:
        result = cli("run", "fanout", "What is 12 + 7?", "--config", router_file(server))
    assert result.code == ExitCode.OK, result.err
    assert result.out == PICK + "\n"


def test_a_permanent_fault_ends_the_run_at_once_with_the_rejected_code(cli: CliRunner, router_file: RouterFile) -> None:
    refused = Fault(status=400, body={"error": {"message": "max_tokens is too large for this model"}})
    with FakeOpenAIServer(reply=reply, faults=lambda index, body: refused).running_in_thread() as server:
        result = cli("run", "fanout", "q?", "--config", router_file(server))
    assert result.code == ExitCode.REJECTED
    assert_one_error_line(result.err)
    assert "max_tokens is too large" in result.err
    assert len(server.chat_requests) <= 3  # the concurrent samples, each sent once: nothing retried
    assert result.out == ""


@pytest.mark.parametrize(
    ("fault", "label"),
    [
        (RATE_LIMITED, "the provider is rate-limiting requests"),
        (Fault(status=503), "the provider is unavailable"),
    ],
)
def test_a_provider_that_keeps_failing_exits_with_the_unavailable_code(
    cli: CliRunner, router_file: RouterFile, fault: Fault, label: str
) -> None:
    with FakeOpenAIServer(reply=reply, faults=lambda index, body: fault).running_in_thread() as server:
        result = cli("run", "fanout", "q?", "--config", router_file(server))
    assert result.code == ExitCode.UNAVAILABLE
    assert_one_error_line(result.err)
    assert result.err.startswith(f"optillm: error: {label}")
    bodies = [json.dumps(r.body, sort_keys=True) for r in server.chat_requests]
    assert max(bodies.count(b) for b in bodies) >= 3  # a call was tried 1 + max_retries times before the run failed


def test_a_strategy_that_gives_up_because_its_calls_failed_exits_as_the_provider_failure(
    cli: CliRunner, router_file: RouterFile
) -> None:
    if "mars" not in default_registry().names():
        pytest.skip("optillm-mars is not installed")
    with FakeOpenAIServer(reply=reply, faults=lambda index, body: RATE_LIMITED).running_in_thread() as server:
        result = cli("run", "mars", "q?", "--config", router_file(server), "--set", "num_agents=2")
    assert result.code == ExitCode.UNAVAILABLE  # not 7, "the strategy failed": every call was refused upstream
    assert_one_error_line(result.err)
    assert result.err.startswith("optillm: error: the provider is rate-limiting requests")
    assert "MARS exploration calls failed" in result.err
