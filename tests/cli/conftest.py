"""Fixtures of the CLI tests: a registry holding the test strategy, a clean environment, an in-process runner."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

import optillm_core._registry as core_registry
from optillm_cli import run_cli
from optillm_cli._commands import ClientFactory
from optillm_core import OptimizerRegistry
from tests.cli.fanout import FanoutOptimizer

# Environment variables that would point a run at a real provider.
PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GROQ_API_KEY",
    "OPENROUTER_API_KEY",
    "OPTILLM_REQUIRE_KEY",
)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> OptimizerRegistry:
    """The process-wide registry, fresh for each test, with the ``fanout`` test strategy added."""
    fresh = OptimizerRegistry()
    fresh.register(FanoutOptimizer, package="cli-tests")
    monkeypatch.setattr(core_registry, "_default", fresh)
    return fresh


def clean_environ(**extra: str) -> dict[str, str]:
    """This process's environment without any provider key, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV}
    env.update(extra)
    return env


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    return CliRunner(capsys)


class CliRunner:
    """Runs ``optillm`` in this process and captures what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys

    def __call__(
        self, *argv: str, env: Mapping[str, str] | None = None, client_factory: ClientFactory | None = None
    ) -> Result:
        self._capsys.readouterr()
        environ = clean_environ() if env is None else env
        if client_factory is None:
            code = run_cli(list(argv), env=environ)
        else:
            code = run_cli(list(argv), env=environ, client_factory=client_factory)
        captured = self._capsys.readouterr()
        return Result(code=code, out=captured.out, err=captured.err)
