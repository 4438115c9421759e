"""``optillm run`` in this process, on the core test doubles (no network): flow, flags and exit codes."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from importlib.metadata import EntryPoint

import pytest

import optillm_core._registry as core_registry
from optillm_cli import ExitCode
from optillm_cli._commands import CUT_ANSWER_NOTICE, LOCAL_MAX_TOKENS
from optillm_cli._providers import LOCAL_NOTICE, ProviderChoice
from optillm_core import (
    ENTRY_POINT_GROUP,
    AuthenticationError,
    BadRequestError,
    GenerationSettings,
    ModelClient,
    OptimizerRegistry,
    Prompt,
    ProviderUnavailable,
)
from optillm_core.testing import O3_MINI, FunctionClient, Reply, count_tokens
from tests.cli.conftest import CliRunner, clean_environ


class Factory:
    """Builds a FunctionClient and remembers the provider choice it was asked for."""

    def __init__(self, reply: object = None) -> None:
        self.choices: list[ProviderChoice] = []
        self.client = FunctionClient(self._reply, model_name="double-model")
        self._error = reply if isinstance(reply, BaseException) else None

    def _reply(self, prompt: Prompt, settings: GenerationSettings) -> str:
        if self._error is not None:
            raise self._error
        if prompt.messages[-1].content.startswith("Pick the best"):
            return "Candidate 1 is best: 19"
        return "12 plus 7 is 19"

    def __call__(self, choice: ProviderChoice, env: Mapping[str, str]) -> ModelClient:
        self.choices.append(choice)
        return self.client


def test_json_output_reports_the_run(cli: CliRunner) -> None:
    factory = Factory()
    result = cli("run", "fanout", "What is 12 + 7?", "--json", "--set", "style=long", client_factory=factory)
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    requests = factory.client.requests
    prompt_tokens = sum(count_tokens(m.content) for r in requests for m in r.messages)
    completion_tokens = 3 * count_tokens("12 plus 7 is 19") + count_tokens("Candidate 1 is best: 19")
    assert data["answer"] == "Candidate 1 is best: 19"
    assert data["strategy"] == "fanout"
    assert data["model"] == "double-model"
    assert data["usage"] == {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    assert data["llm_calls"] == len(requests) == 4
    assert data["selection"] == {"candidates": 3, "method": "model pick", "style": "long"}
    assert data["budget_exhausted"] is False
    assert isinstance(data["duration_ms"], int)
    assert data["reasoning"].startswith("Candidate 0:")


@pytest.mark.parametrize("as_json", [False, True], ids=["plain", "json"])
def test_an_answer_cut_at_its_token_limit_is_printed_and_flagged_on_stderr(cli: CliRunner, as_json: bool) -> None:
    pytest.importorskip("optillm_moa")
    client = FunctionClient(lambda prompt, settings: Reply("12 plus 7 is", finish_reason="length"))
    flags = ["--base-url", "http://127.0.0.1:9/v1", *(["--json"] if as_json else [])]
    result = cli(
        "run",
        "moa",
        "What is 12 + 7?",
        "--set",
        "truncated_candidates=keep",
        *flags,
        client_factory=lambda c, e: client,
    )
    assert result.code == ExitCode.OK, result.err
    answer = json.loads(result.out) if as_json else {"answer": result.out.rstrip("\n"), "finish_reason": "length"}
    assert (answer["answer"], answer["finish_reason"]) == ("12 plus 7 is", "length")
    assert result.err == CUT_ANSWER_NOTICE + "\n"


def test_plain_output_is_the_answer_alone(cli: CliRunner) -> None:
    result = cli("run", "fanout", "What is 12 + 7?", "--base-url", "http://127.0.0.1:9/v1", client_factory=Factory())
    assert result.code == ExitCode.OK
    assert result.out == "Candidate 1 is best: 19\n"
    assert result.err == ""  # not a terminal: no progress line


def test_generation_flags_reach_every_call(cli: CliRunner) -> None:
    factory = Factory()
    argv = ["run", "fanout", "q?", "--base-url", "http://127.0.0.1:9/v1", "--max-tokens", "50"]
    result = cli(*argv, "--temperature", "0.3", "--system", "Be brief.", client_factory=factory)
    assert result.code == ExitCode.OK, result.err
    settings = factory.client.settings_seen
    assert [s.max_tokens for s in settings] == [50, 50, 50, 50]
    assert [s.temperature for s in settings] == [0.3, 0.3, 0.3, 0.3]  # answer and final phases take the caller's
    assert {r.system_text for r in factory.client.requests} == {"Be brief."}


def test_set_overrides_reach_the_strategy(cli: CliRunner) -> None:
    factory = Factory()
    result = cli("run", "fanout", "q?", "--set", "samples=5", "--set", "temperature=0.1", client_factory=factory)
    assert result.code == ExitCode.OK, result.err
    assert len(factory.client.requests) == 6
    assert [s.temperature for s in factory.client.settings_seen] == [0.1] * 5 + [None]


def test_query_from_stdin(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("What is 2 + 2?\n"))
    factory = Factory()
    assert cli("run", "fanout", "-", client_factory=factory).code == ExitCode.OK
    assert factory.client.requests[0].user_text == "What is 2 + 2?\n"


@pytest.mark.parametrize("query", ["", "   "])
def test_empty_query_is_a_usage_error(cli: CliRunner, query: str) -> None:
    factory = Factory()
    result = cli("run", "fanout", query, client_factory=factory)
    assert result.code == ExitCode.USAGE
    assert result.err == "optillm: error: the query is empty (QUERY is empty): pass the question or task to optimize\n"
    assert factory.choices == []


def test_empty_stdin_is_a_usage_error(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    result = cli("run", "fanout", "-", client_factory=Factory())
    assert result.code == ExitCode.USAGE
    assert "stdin was empty" in result.err


def test_unknown_strategy_lists_the_installed_ones(cli: CliRunner) -> None:
    result = cli("run", "nosuch", "q?", client_factory=Factory())
    assert result.code == ExitCode.CONFIG
    assert result.err.startswith("optillm: error: unknown strategy 'nosuch' (installed: ")
    assert "fanout" in result.err
    assert result.err.count("\n") == 1


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("sample=3", "strategy 'fanout' has no config field 'sample'"),
        ("samples=three", "--set samples: expected int, got 'three'"),
        ("style=medium", "--set style: expected 'short' | 'long'"),
    ],
)
def test_bad_set_values_name_the_field(cli: CliRunner, assignment: str, expected: str) -> None:
    factory = Factory()
    result = cli("run", "fanout", "q?", "--set", assignment, client_factory=factory)
    assert result.code == ExitCode.CONFIG
    assert expected in result.err
    assert result.err.count("\n") == 1
    assert factory.choices == []


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "fanout", "q?", "--max-tokens", "0"],
        ["run", "fanout", "q?", "--max-tokens", "many"],
        ["run", "fanout", "q?", "--temperature", "-1"],
        ["run", "fanout", "q?", "--temperature", "nan"],
        ["run", "fanout", "q?", "--budget-calls", "x"],
        ["run", "fanout", "q?", "--budget-tokens", "0"],
        ["run", "fanout", "q?", "--timeout", "0"],
        ["run", "fanout", "q?", "--provider", "nosuch"],
        ["run", "fanout", "q?", "--set", "noequals"],
        ["run", "fanout"],
        ["run"],
        [],
        ["frobnicate"],
        ["serve", "--port", "70000"],
    ],
)
def test_bad_command_lines_are_usage_errors(cli: CliRunner, argv: list[str]) -> None:
    result = cli(*argv, client_factory=Factory())
    assert result.code == ExitCode.USAGE
    assert result.err.startswith("optillm: error: ")
    assert result.err.count("\n") == 1
    assert result.out == ""


def test_help_exits_zero(cli: CliRunner) -> None:
    result = cli("run", "--help")
    assert result.code == ExitCode.OK
    assert "--budget-calls" in result.out


def test_version_is_read_when_asked_for(cli: CliRunner) -> None:
    result = cli("--version")
    assert result.code == ExitCode.OK
    assert result.out == "optillm 0.1.0\n"
    assert result.err == ""


def test_events_are_json_lines_on_stderr(cli: CliRunner) -> None:
    result = cli("run", "fanout", "q?", "--events", "--base-url", "http://127.0.0.1:9/v1", client_factory=Factory())
    assert result.code == ExitCode.OK
    events = [json.loads(line) for line in result.err.splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "RunStarted"
    assert kinds[-1] == "RunCompleted"
    assert [e["phase"] for e in events if e["kind"] == "PhaseStarted"] == ["sampling", "selection"]
    calls = [e for e in events if e["kind"] == "CallFinished"]
    assert [c["llm_calls"] for c in calls][-1] == 4
    assert all(e["optimizer"] == "fanout" for e in events)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AuthenticationError("Incorrect API key provided", status_code=401), ExitCode.AUTH),
        (ProviderUnavailable("could not reach openai"), ExitCode.UNAVAILABLE),
        (BadRequestError("The model 'x' does not exist", status_code=404), ExitCode.REJECTED),
    ],
)
def test_client_failures_map_to_their_exit_codes(cli: CliRunner, error: Exception, code: ExitCode) -> None:
    result = cli("run", "fanout", "q?", "--base-url", "http://127.0.0.1:9/v1", client_factory=Factory(error))
    assert result.code == code
    assert result.err.startswith("optillm: error: ")
    assert str(error) in result.err
    assert result.err.count("\n") == 1
    assert "Traceback" not in result.err


def test_an_api_key_is_never_printed(cli: CliRunner) -> None:
    key = "sk-test-secret-0123456789"
    error = AuthenticationError(f"key {key} was rejected", status_code=401)
    result = cli("run", "fanout", "q?", "--api-key", key, client_factory=Factory(error))
    assert result.code == ExitCode.AUTH
    assert key not in result.err
    assert "***" in result.err


def test_env_key_is_never_printed(cli: CliRunner) -> None:
    key = "sk-env-secret-0123456789"
    error = AuthenticationError(f"key {key} was rejected", status_code=401)
    result = cli("run", "fanout", "q?", env=clean_environ(OPENAI_API_KEY=key), client_factory=Factory(error))
    assert result.code == ExitCode.AUTH
    assert key not in result.err


def test_call_budget_too_small_for_any_answer_fails_with_budget_code(cli: CliRunner) -> None:
    result = cli("run", "fanout", "q?", "--budget-calls", "2", client_factory=Factory())
    assert result.code == ExitCode.BUDGET
    assert result.err.splitlines()[-1] == (
        "optillm: error: budget exhausted: 2 of 2 LLM calls used (raise --budget-calls, --budget-tokens or --timeout)"
    )


def test_call_budget_returns_the_best_answer_so_far(cli: CliRunner) -> None:
    factory = Factory()
    result = cli("run", "fanout", "q?", "--budget-calls", "3", "--json", client_factory=factory)
    assert result.code == ExitCode.OK, result.err
    data = json.loads(result.out)
    assert data["budget_exhausted"] is True
    assert data["answer"] == "12 plus 7 is 19"
    assert data["llm_calls"] == 3
    assert len(factory.client.requests) == 3


def test_no_provider_runs_on_the_local_model_and_says_so(cli: CliRunner) -> None:
    factory = Factory()
    result = cli("run", "fanout", "q?", client_factory=factory)
    assert result.code == ExitCode.OK
    assert result.err == LOCAL_NOTICE + "\n"
    (choice,) = factory.choices
    assert (choice.provider, choice.model, choice.implicit_local) == ("local", "smollm2", True)
    assert {s.max_tokens for s in factory.client.settings_seen} == {LOCAL_MAX_TOKENS}


def test_help_states_the_local_max_tokens_the_run_uses(cli: CliRunner) -> None:
    result = cli("run", "--help")
    assert result.code == ExitCode.OK
    assert f"{LOCAL_MAX_TOKENS} on the local model" in " ".join(result.out.split())


def test_openai_key_in_the_environment_selects_openai(cli: CliRunner) -> None:
    factory = Factory()
    result = cli("run", "fanout", "q?", env=clean_environ(OPENAI_API_KEY="sk-abc123"), client_factory=factory)
    assert result.code == ExitCode.OK
    assert result.err == ""
    (choice,) = factory.choices
    assert (choice.provider, choice.model, choice.api_key) == ("openai", "gpt-4o-mini", "sk-abc123")
    assert "sk-abc123" not in repr(choice)
    assert {s.max_tokens for s in factory.client.settings_seen} == {None}


def test_base_url_selects_any_openai_compatible_server(cli: CliRunner) -> None:
    factory = Factory()
    argv = ["run", "fanout", "q?", "--base-url", "http://127.0.0.1:9/v1", "--model", "m1"]
    assert cli(*argv, client_factory=factory).code == ExitCode.OK
    (choice,) = factory.choices
    assert (choice.provider, choice.model, choice.base_url, choice.api_key) == (
        "custom",
        "m1",
        "http://127.0.0.1:9/v1",
        None,
    )


def test_api_key_alone_selects_openai(cli: CliRunner) -> None:
    factory = Factory()
    assert cli("run", "fanout", "q?", "--api-key", "sk-x1234", client_factory=factory).code == ExitCode.OK
    (choice,) = factory.choices
    assert (choice.provider, choice.model, choice.api_key) == ("openai", "gpt-4o-mini", "sk-x1234")


def test_another_providers_key_in_the_environment_selects_it(cli: CliRunner) -> None:
    factory = Factory()
    env = clean_environ(ANTHROPIC_API_KEY="sk-ant-1234")
    assert cli("run", "fanout", "q?", env=env, client_factory=factory).code == ExitCode.OK
    (choice,) = factory.choices
    assert (choice.provider, choice.model, choice.api_key) == ("anthropic", "claude-3-5-haiku-latest", "sk-ant-1234")


def test_a_provider_needing_a_key_without_one_is_a_config_error(cli: CliRunner) -> None:
    factory = Factory()
    result = cli("run", "fanout", "q?", "--provider", "groq", client_factory=factory)
    assert result.code == ExitCode.CONFIG
    assert "provider 'groq' needs an API key: pass --api-key or set GROQ_API_KEY" in result.err
    assert factory.choices == []


def test_self_hosted_providers_need_a_model(cli: CliRunner) -> None:
    result = cli("run", "fanout", "q?", "--provider", "vllm", client_factory=Factory())
    assert result.code == ExitCode.USAGE
    assert "--model is required with --provider vllm" in result.err


def test_config_file_excludes_the_provider_flags(cli: CliRunner) -> None:
    result = cli("run", "fanout", "q?", "--config", "router.toml", "--model", "m", client_factory=Factory())
    assert result.code == ExitCode.USAGE
    assert "--config describes the providers; drop --model" in result.err


def test_strategies_lists_the_installed_strategies(cli: CliRunner) -> None:
    text = cli("strategies")
    assert text.code == ExitCode.OK
    assert "fanout  (cli-tests)" in text.out
    data = json.loads(cli("strategies", "--json").out)
    assert "fanout" in [s["name"] for s in data["strategies"]]


def test_a_strategy_that_fails_to_load_is_a_config_error(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = EntryPoint(name="broken", value="no_such_module_here:Nothing", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(core_registry, "_default", OptimizerRegistry(source=[broken]))
    result = cli("run", "broken", "q?", client_factory=Factory())
    assert result.code == ExitCode.CONFIG
    assert "strategy 'broken' from unknown failed to load: ModuleNotFoundError" in result.err


class ReasoningModelFactory(Factory):
    """A double that refuses temperature and seed the way OpenAI's reasoning models do."""

    def __init__(self) -> None:
        super().__init__()
        profile = O3_MINI.model_copy(update={"seed": False})
        self.client = FunctionClient(self._reply, model_name="o3-mini", profile=profile)


def test_seed_reaches_the_answers_each_with_its_own(cli: CliRunner) -> None:
    factory = Factory()
    result = cli("run", "fanout", "q?", "--seed", "7", client_factory=factory)
    assert result.code == ExitCode.OK, result.err
    assert [s.seed for s in factory.client.settings_seen] == [7, 8, 9, 7]


def test_settings_the_model_refuses_are_dropped_and_reported(cli: CliRunner) -> None:
    factory = ReasoningModelFactory()
    result = cli("run", "fanout", "q?", "--temperature", "0.3", "--seed", "1", "--json", client_factory=factory)
    assert result.code == ExitCode.OK, result.err
    assert factory.client.refused == []
    assert all(s.temperature is None and s.seed is None for s in factory.client.settings_seen)
    assert json.loads(result.out)["dropped_settings"] == ["temperature", "seed"]


def test_drop_unsupported_error_stops_before_any_call(cli: CliRunner) -> None:
    factory = ReasoningModelFactory()
    argv = ["run", "fanout", "q?", "--temperature", "0.3", "--drop-unsupported", "error"]
    result = cli(*argv, client_factory=factory)
    assert result.code == ExitCode.CONFIG
    (line,) = [line for line in result.err.splitlines() if "does not accept" in line]
    assert "'o3-mini' does not accept temperature" in line
    assert "Traceback" not in result.err
    assert factory.client.requests == []
