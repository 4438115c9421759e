"""``optillm serve``'s limit flags become the app's ``ServerLimits``, and the app enforces them."""

from __future__ import annotations

import argparse

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import optillm_server
from optillm_cli import ExitCode
from optillm_cli._app import build_parser
from optillm_router.testing import FakeOpenAIServer
from optillm_server import DEFAULT_CONFIG_CEILINGS, ServerLimits
from tests.cli.conftest import CliRunner, clean_environ


class LimitsProbe:
    """Stands in for ``optillm_server.serve``: keeps the app's limits and what two requests got."""

    def __init__(self) -> None:
        self.limits: ServerLimits | None = None
        self.statuses: dict[str, int] = {}

    def __call__(self, app: Starlette, *, host: str, port: int) -> None:
        self.limits = app.state.optillm.limits
        chat = {"messages": [{"role": "user", "content": "What is 12 + 7?"}], "max_tokens": 32}
        with TestClient(app) as client:
            self.statuses["n=3"] = client.post(
                "/v1/chat/completions", json={**chat, "model": "fanout-m", "n": 3}
            ).status_code
            self.statuses["n=2"] = client.post(
                "/v1/chat/completions", json={**chat, "model": "fanout-m", "n": 2}
            ).status_code


def serve(cli: CliRunner, monkeypatch: pytest.MonkeyPatch, *flags: str) -> tuple[LimitsProbe, int, str]:
    probe = LimitsProbe()
    monkeypatch.setattr(optillm_server, "serve", probe)
    with FakeOpenAIServer().running_in_thread() as server:
        result = cli("serve", "--base-url", server.base_url, "--model", "m", *flags, env=clean_environ())
    return probe, result.code, result.err


def test_without_flags_the_server_defaults_apply(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    probe, code, err = serve(cli, monkeypatch)
    assert code == ExitCode.OK, err
    assert probe.limits == ServerLimits()


def test_the_flags_set_the_limits_and_the_app_enforces_them(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    probe, code, err = serve(
        cli,
        monkeypatch,
        *("--max-request-calls", "50", "--max-request-tokens", "none", "--max-request-seconds", "30.5"),
        *("--max-body-bytes", "1048576", "--max-n", "2", "--max-pipeline-length", "3", "--max-messages", "20"),
        *("--config-ceiling", "moa.num_completions=4", "--config-ceiling", "*.max_concurrency=8"),
    )
    assert code == ExitCode.OK, err
    limits = probe.limits
    assert limits is not None
    assert (limits.max_request_calls, limits.max_request_tokens, limits.max_request_seconds) == (50, None, 30.5)
    assert (limits.max_body_bytes, limits.max_n, limits.max_pipeline_length, limits.max_messages) == (1048576, 2, 3, 20)
    assert limits.config_ceilings["moa"] == {"num_completions": 4}
    assert limits.config_ceilings["*"] == {"max_concurrency": 8}
    assert limits.config_ceilings["mcts"] == DEFAULT_CONFIG_CEILINGS["mcts"]
    assert probe.statuses == {"n=3": 400, "n=2": 200}


@pytest.mark.parametrize(
    "flags",
    [
        ("--max-request-calls", "0"),
        ("--max-n", "many"),
        ("--config-ceiling", "num_completions=4"),
        ("--config-ceiling", "moa.num_completions"),
        ("--config-ceiling", "moa.num_completions=-1"),
    ],
)
def test_bad_limit_values_are_usage_errors(
    flags: tuple[str, str], cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe, code, err = serve(cli, monkeypatch, *flags)
    assert code == ExitCode.USAGE
    assert flags[0] in err
    assert probe.limits is None


def test_the_help_states_the_servers_defaults() -> None:
    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    text = commands.choices["serve"].format_help()
    defaults = ServerLimits()
    for value in (
        defaults.max_request_calls,
        defaults.max_request_tokens,
        int(defaults.max_request_seconds or 0),
        defaults.max_body_bytes,
        defaults.max_n,
        defaults.max_pipeline_length,
        defaults.max_messages,
    ):
        assert f"default: {value}" in " ".join(text.split())
