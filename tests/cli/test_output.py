"""The ``--json`` object of a run and the listing of strategies."""

from __future__ import annotations

import json

from optillm_cli._listing import strategies_text
from optillm_cli._output import solution_json, strategies_json
from optillm_core import OptimizerMetadata, OptimizerRegistry, PluginFailure, Solution, TokenUsage
from tests.cli.fanout import FanoutOptimizer


def _solution() -> Solution:
    return Solution(
        answer="19",
        reasoning="12 + 7 = 19",
        usage=TokenUsage(input_tokens=30, output_tokens=12),
        metadata=OptimizerMetadata(
            optimizer_name="fanout",
            iterations=1,
            llm_calls=4,
            duration_ms=15,
            budget_exhausted=False,
            extras={"candidates": 3, "method": "model pick"},
        ),
    )


def test_solution_json_has_every_documented_field() -> None:
    data = solution_json(_solution(), strategy="fanout", model="fake-model")
    assert data == {
        "answer": "19",
        "reasoning": "12 + 7 = 19",
        "thinking": "",
        "strategy": "fanout",
        "model": "fake-model",
        "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42},
        "llm_calls": 4,
        "duration_ms": 15,
        "iterations": 1,
        "budget_exhausted": False,
        "finish_reason": "stop",
        "dropped_settings": [],
        "selection": {"candidates": 3, "method": "model pick"},
    }


def _registry() -> OptimizerRegistry:
    registry = OptimizerRegistry(source=[])
    registry.register(FanoutOptimizer, package="cli-tests")
    return registry


def test_strategies_json_lists_fields_with_types_and_defaults() -> None:
    failures = [PluginFailure(name="broken", package="x", error="ModuleNotFoundError: nope")]
    data = strategies_json(_registry().infos(), failures)
    json.dumps(data)  # JSON-ready as it is
    (entry,) = data["strategies"]
    assert entry["name"] == "fanout"
    assert entry["package"] == "cli-tests"
    assert entry["description"] == FanoutOptimizer.description
    fields = {f["name"]: f for f in entry["config"]}
    assert fields["samples"] == {
        "name": "samples",
        "type": "int",
        "default": 3,
        "required": False,
        "description": "answers drawn concurrently",
    }
    assert fields["weights"]["default"] == [1.0, 0.5]
    assert fields["max_concurrency"]["default"] == 16
    assert entry["phases"] == [
        {"phase": "sampling", "role": "answer", "caller_settings": ["max_tokens", "temperature", "top_p", "seed"]},
        {
            "phase": "selection",
            "role": "final",
            "caller_settings": ["max_tokens", "temperature", "top_p", "seed", "stop", "response_format"],
        },
    ]
    assert entry["tools"] == "refuses requests with tools: its answer is not a model call that could return tool calls"
    assert data["failures"] == [{"name": "broken", "package": "x", "error": "ModuleNotFoundError: nope"}]


def test_strategies_text_shows_names_fields_and_failures() -> None:
    failures = [PluginFailure(name="broken", package="x", error="ModuleNotFoundError: nope")]
    text = strategies_text(strategies_json(_registry().infos(), failures))
    assert "fanout  (cli-tests)" in text
    assert "phase sampling (answer): gets the caller's max_tokens, temperature, top_p, seed" in text
    assert "--set samples=3  (int)  - answers drawn concurrently" in text
    assert "    tools: refuses requests with tools: its answer is not a model call" in text
    assert "--set style=\"short\"  ('short' | 'long')" in text
    assert "Failed to load:" in text
    assert "broken  (x): ModuleNotFoundError: nope" in text


def test_strategies_text_says_when_none_are_installed() -> None:
    assert "No strategies are installed" in strategies_text({"strategies": [], "failures": []})
