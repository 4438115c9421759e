"""The README's "adding a strategy" example runs as it is written: toolkit, phases, stop, best-so-far, tools."""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from optillm_core import (
    Budget,
    CallRole,
    Conversation,
    GenerationSettings,
    Message,
    Optimizer,
    PhaseStarted,
    Prompt,
    ToolCall,
    ToolDefinition,
)
from optillm_core.testing import O3_MINI, FunctionClient, Reply

pytestmark = pytest.mark.anyio

README = Path(__file__).parents[2] / "README.md"


def example_module() -> types.ModuleType:
    section = README.read_text().split("## Adding a strategy package", 1)[1]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    module = types.ModuleType("optillm_echo")
    exec(compile(re.sub(r"^   ", "", code, flags=re.MULTILINE), str(README), "exec"), module.__dict__)
    return module


def echo() -> Optimizer[Any]:
    optimizer = example_module().EchoOptimizer()
    assert isinstance(optimizer, Optimizer)
    return optimizer


def replies(prompt: Prompt, settings: GenerationSettings) -> str:
    text = f"{prompt.system}\n{prompt.messages[-1].content}"
    if "Most drafts agree" in text:
        return "The answer is 19.\nEND of answer"
    return "19" if settings.seed != 2 else "20"


async def test_the_example_drafts_votes_and_answers_with_the_callers_settings() -> None:
    client = FunctionClient(replies)
    events: list[Any] = []
    solution = await echo().optimize(
        "What is 12 + 7?", client, settings=GenerationSettings(seed=0, stop=("END",)), events=events.append
    )
    assert solution.answer == "The answer is 19.\nEND of answer"  # the double ignores stop; it reached the wire
    *drafts, final = client.requests
    assert len(drafts) == 3 and {r.settings.stop for r in drafts} == {None}
    assert final.settings.stop == ("END",)
    assert "Most drafts agree with this one:\n\n19" in final.user_text
    assert [e.phase for e in events if isinstance(e, PhaseStarted)] == ["drafts", "answer"]
    assert solution.reasoning.startswith("drafts: 19 ×2, 20 ×1")


async def test_a_budget_that_ends_the_run_before_the_final_call_returns_the_recorded_best() -> None:
    client = FunctionClient(lambda p, s: "19\nEND")
    solution = await echo().optimize(
        "What is 12 + 7?", client, settings=GenerationSettings(stop=("END",)), budget=Budget(max_calls=3)
    )
    assert solution.metadata.budget_exhausted
    assert solution.answer == "19"  # the caller's stop applied to the draft


async def test_on_a_model_without_temperature_the_drafts_vary_their_prompts() -> None:
    client = FunctionClient(replies, profile=O3_MINI)
    await echo().optimize("What is 12 + 7?", client)
    drafts = client.requests[:3]
    assert len({r.user_text for r in drafts}) == 3
    assert client.refused == []


async def test_with_tools_the_final_call_sees_real_tool_turns_and_may_call_a_tool() -> None:
    weather = ToolDefinition(name="get_weather", parameters={"type": "object", "properties": {}})
    asked = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    conversation = Conversation(
        turns=(
            Message.user("Umbrella in Paris?"),
            Message.assistant("", tool_calls=(asked,)),
            Message.tool_result("rain", tool_call_id="call_1"),
        )
    )
    again = ToolCall(id="call_2", name="get_weather", arguments='{"city": "Lyon"}')

    def reply(prompt: Prompt, settings: GenerationSettings) -> Reply | str:
        return Reply("", tool_calls=(again,)) if settings.tools else "Yes"

    client = FunctionClient(reply)
    solution = await echo().optimize(conversation, client, settings=GenerationSettings(tools=(weather,)))
    *drafts, final = client.requests
    assert all(r.settings.tools is None and [m.role for m in r.prompt.messages] == ["user"] for r in drafts)
    assert [m.role for m in final.prompt.messages] == ["user", "assistant", "tool"]
    assert final.prompt.system is not None and "Most drafts agree with this one" in final.prompt.system
    assert solution.tool_calls == (again,)


async def test_a_phase_the_strategy_does_not_declare_is_refused() -> None:
    module = example_module()

    class Undeclared(module.EchoOptimizer):  # type: ignore[name-defined,misc]
        name = "undeclared"
        phases: ClassVar[Mapping[str, CallRole]] = {"drafts": "answer"}

    with pytest.raises(ValueError, match="entered phase 'answer', which it does not declare"):
        await Undeclared().optimize("What is 12 + 7?", FunctionClient(replies))
