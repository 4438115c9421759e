"""What ``optillm`` prints on stdout: a run's answer or JSON object, and the list of strategies."""

from __future__ import annotations as _annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from optillm_core import OptimizerInfo, PluginFailure, Solution

from ._overrides import type_name

__all__ = ("solution_json", "strategies_json", "to_json")


def to_json(value: Any) -> str:
    return json.dumps(to_jsonable_python(value, fallback=str), ensure_ascii=False, indent=2)


def solution_json(solution: Solution, *, strategy: str, model: str) -> dict[str, Any]:
    """The ``--json`` object of a run; ``selection`` holds the strategy's own details of how it chose."""
    meta = solution.metadata
    return {
        "answer": solution.answer,
        "reasoning": solution.reasoning,
        "thinking": solution.thinking,
        "strategy": strategy,
        "model": model,
        "usage": {
            "prompt_tokens": solution.usage.input_tokens,
            "completion_tokens": solution.usage.output_tokens,
            "total_tokens": solution.usage.total_tokens,
        },
        "llm_calls": meta.llm_calls,
        "duration_ms": meta.duration_ms,
        "iterations": meta.iterations,
        "budget_exhausted": meta.budget_exhausted,
        "finish_reason": solution.finish_reason,
        "dropped_settings": list(meta.dropped_settings),
        "selection": meta.extras,
    }


def _fields(info: OptimizerInfo) -> list[dict[str, Any]]:
    defaults = info.config_fields()
    return [
        {
            "name": name,
            "type": type_name(field.annotation),
            "default": defaults[name],
            "required": field.is_required(),
            "description": field.description or "",
        }
        for name, field in info.optimizer.config_type.model_fields.items()
    ]


def _phases(info: OptimizerInfo) -> list[dict[str, Any]]:
    """Each phase, its role, and the caller's settings that reach its calls."""
    return [
        {"phase": phase, "role": role, "caller_settings": list(info.optimizer.caller_settings_for(role))}
        for phase, role in info.phases.items()
    ]


def _tools(info: OptimizerInfo) -> str:
    """Whether the strategy answers a request that offers tools, and if not, why."""
    optimizer = info.optimizer
    if optimizer.answers_with_tools:
        return "answers with text or with tool calls when tools are offered"
    return f"refuses requests with tools: {optimizer.without_tools_because}"


def strategies_json(infos: Sequence[OptimizerInfo], failures: Sequence[PluginFailure]) -> dict[str, Any]:
    return {
        "strategies": [
            {
                "name": i.name,
                "package": i.package,
                "description": i.description,
                "phases": _phases(i),
                "tools": _tools(i),
                "config": _fields(i),
            }
            for i in infos
        ],
        "failures": [{"name": f.name, "package": f.package, "error": f.error} for f in failures],
    }
