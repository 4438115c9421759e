"""The benchmark oracle reads both prompts as what they are: a question to solve, so each run gets a fresh draw."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from benchmarks._oracle import Oracle, classify, generate_questions, instruction_of
from benchmarks.quality import SUBMIT_TOOL, OracleClient
from optillm_core import GenerationSettings, Optimizer, Prompt
from optillm_core.testing import FunctionClient
from optillm_prompting import CotReflectionOptimizer, Re2Optimizer

pytestmark = pytest.mark.anyio

OPTIMIZERS: list[Optimizer[Any]] = [CotReflectionOptimizer(), Re2Optimizer()]


def _kind(prompt: Prompt) -> str:
    messages = [(m.role, m.content) for m in prompt.effective_messages()]
    return classify(instruction_of(messages), "\n".join(content for _, content in messages))


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o.name)
async def test_each_prompt_is_a_solve_prompt(optimizer: Optimizer[Any]) -> None:
    question = generate_questions(1, seed=4)[0]
    client = FunctionClient(lambda prompt, settings: "19")
    await optimizer.optimize(question.text, client, system_prompt="Answer briefly.")
    assert [_kind(r.prompt) for r in client.requests] == ["solve"]


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: o.name)
@pytest.mark.parametrize("tools", [False, True], ids=["text", "tools"])
async def test_under_the_oracle_each_run_is_one_fresh_draw(optimizer: Optimizer[Any], tools: bool) -> None:
    oracle = Oracle(p=0.6, seed=2)
    settings = GenerationSettings(tools=(SUBMIT_TOOL,)) if tools else None
    for question in generate_questions(5, seed=2):
        solution = await optimizer.optimize(question.text, OracleClient(oracle), settings=settings)
        if tools:
            value = int(json.loads(solution.tool_calls[0].arguments)["value"])
        else:
            match = re.search(r"\\boxed\{(-?\d+)\}", solution.answer)
            assert match is not None, solution.answer
            value = int(match.group(1))
        assert value in (question.answer, *question.distractors())
    assert set(oracle.kinds) == ({"solve (tool call)"} if tools else {"solve"})
    assert sum(oracle.kinds.values()) == 5
