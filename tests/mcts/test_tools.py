"""MCTS serves an agent's turn: the replies to the query are asked with the caller's tools, on real tool turns.

A reply that calls a tool is a root child whose dialogue is over (there is no tool result to
simulate): it gets no predicted user turn and no rollout, and is evaluated as it is, the call
written out for the evaluator. Every other call gets no tools and the conversation flattened.
"""

from __future__ import annotations

import pytest

from optillm_core import Budget, Conversation, GenerationSettings, Message, Prompt, ToolCall
from optillm_core.testing import FunctionClient, RecordedRequest, Reply
from optillm_mcts import MctsConfig, MctsOptimizer
from optillm_mcts._prompts import EVALUATE, PREDICT_USER

from ..tools_support import CALL, WEATHER, WITH_TOOLS

pytestmark = pytest.mark.anyio

QUESTION = "What should I wear in Paris today?"
RESULT = "18°C, light rain"
CONVERSATION = Conversation(
    system=("You are a helpful assistant.",),
    turns=(
        Message.user(QUESTION),
        Message.assistant("", tool_calls=(CALL,)),
        Message.tool_result(RESULT, tool_call_id=CALL.id),
    ),
)
FORECAST = ToolCall(id="call_forecast_2", name="get_weather", arguments='{"city": "Paris", "hours": 6}')
TEXT = "A light raincoat over a sweater: it is 18°C with light rain."


def kind(request: RecordedRequest) -> str:
    last = request.messages[-1].content
    if last == EVALUATE:
        return "evaluate"
    if last == PREDICT_USER:
        return "predict"
    return "root" if request.settings.tools else "generate"


class AgentModel:
    """Root replies alternate between a tool call and a text answer; the evaluator prefers one of them."""

    def __init__(self, *, prefer_tool: bool) -> None:
        self.prefer_tool = prefer_tool
        self.roots = 0

    def __call__(self, prompt: Prompt, settings: GenerationSettings) -> str | Reply:
        last = prompt.messages[-1].content
        if last == EVALUATE:
            called = "[calls the tool `get_weather`" in prompt.messages[-2].content
            return "Rating: 9/10" if called == self.prefer_tool else "Rating: 2/10"
        if last == PREDICT_USER:
            return "And tomorrow?"
        if settings.tools:
            self.roots += 1
            return Reply("", tool_calls=(FORECAST,)) if self.roots % 2 == 1 else TEXT
        return "Tomorrow looks dry."


def has_tool_turns(request: RecordedRequest) -> bool:
    return any(m.role == "tool" or m.tool_calls for m in request.messages)


@pytest.mark.parametrize("native_n", [True, False])
async def test_the_replies_to_the_query_get_real_tool_turns_and_nothing_else_gets_tools(native_n: bool) -> None:
    client = FunctionClient(AgentModel(prefer_tool=False), native_n=native_n)
    solution = await MctsOptimizer().optimize(CONVERSATION, client, settings=WITH_TOOLS)

    roots = [r for r in client.requests if kind(r) == "root"]
    assert len(roots) == (1 if native_n else 2)
    for request in roots:
        assert request.settings.tools == (WEATHER,)
        assert request.settings.tool_choice == WITH_TOOLS.tool_choice
        assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
        assert request.messages[2].tool_calls == (CALL,)
        assert request.messages[3].content == RESULT
    others = [r for r in client.requests if kind(r) != "root"]
    assert others
    for request in others:
        assert request.settings.tools is None and request.settings.tool_choice is None
        assert not has_tool_turns(request)
        # The tool's result reaches them as text, after the user's question.
        assert RESULT in request.messages[1].content
    assert solution.answer == TEXT
    assert solution.tool_calls == ()


async def test_a_reply_that_calls_a_tool_is_evaluated_as_it_is_and_can_be_the_answer() -> None:
    client = FunctionClient(AgentModel(prefer_tool=True), native_n=True)
    solution = await MctsOptimizer().optimize(CONVERSATION, client, settings=WITH_TOOLS)

    assert solution.tool_calls == (FORECAST,)
    assert solution.answer == ""
    children = solution.metadata.extras["root_children"]
    assert [c["tool_calls"] for c in children] == [[FORECAST.model_dump()], []]
    # Only the text reply gets a predicted user turn and a rollout; both children are evaluated.
    assert sorted(kind(r) for r in client.requests) == ["evaluate", "evaluate", "generate", "predict", "root"]
    called = next(r for r in client.requests if kind(r) == "evaluate" and "calls the tool" in r.messages[-2].content)
    assert called.messages[-2].role == "assistant"
    assert called.messages[-2].content == '[calls the tool `get_weather` with arguments {"city": "Paris", "hours": 6}]'
    assert "<- chosen" in next(line for line in solution.reasoning.splitlines() if "calls the tool" in line)


async def test_a_tool_call_node_is_never_expanded() -> None:
    config = MctsConfig(num_simulations=5, num_actions=2, exploration_weight=0.0)
    client = FunctionClient(AgentModel(prefer_tool=True), native_n=True)
    solution = await MctsOptimizer(config).optimize(CONVERSATION, client, settings=WITH_TOOLS)
    assert solution.tool_calls == (FORECAST,)
    assert [kind(r) for r in client.requests].count("root") == 1
    assert [c["visits"] for c in solution.metadata.extras["root_children"]] == [4, 1]
    # Revisiting the tool call only evaluates it again: nothing is asked to go on from it.
    assert [kind(r) for r in client.requests].count("evaluate") == 5


async def test_a_budget_cut_after_the_replies_returns_the_first_one_with_its_tool_calls() -> None:
    client = FunctionClient(AgentModel(prefer_tool=False), native_n=True)
    solution = await MctsOptimizer().optimize(CONVERSATION, client, settings=WITH_TOOLS, budget=Budget(max_calls=1))
    assert solution.metadata.budget_exhausted is True
    assert solution.tool_calls == (FORECAST,)


def test_tools_reach_the_replies_to_the_query_only() -> None:
    assert MctsOptimizer.answers_with_tools is True
    roles = MctsOptimizer.phases
    assert {"tools", "tool_choice", "response_format"} <= set(
        MctsOptimizer.caller_settings_for(roles["replies to the query"])
    )
    for phase in ("user turns", "rollouts", "deeper replies", "evaluations"):
        assert "tools" not in MctsOptimizer.caller_settings_for(roles[phase])
