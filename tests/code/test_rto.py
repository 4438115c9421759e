"""Round-trip optimization: the call graph, settings on the wire, malformed replies, failures and tools."""

from __future__ import annotations

from typing import Any

import pytest

from optillm_code import RtoConfig, RtoOptimizer
from optillm_core import (
    AnswerDelta,
    AuthenticationError,
    GenerationSettings,
    NoSolutions,
    OptimizerEvent,
    PhaseStarted,
    Prompt,
    ProviderUnavailable,
    default_registry,
)
from optillm_core.testing import (
    CLAUDE_OPUS,
    DEEPSEEK_R1,
    O3_MINI,
    FaultyClient,
    FunctionClient,
    Reply,
    ScriptedClient,
    sequential_depth,
)

from ..tools_support import CALL, WEATHER, WITH_TOOLS

pytestmark = pytest.mark.anyio

QUERY = "Write a Python function that returns the sum of a list of numbers."
SYSTEM = "You are a careful Python programmer."
C1 = "Here it is:\n\n```python\ndef total(xs):\n    return sum(xs)\n```"
DESCRIPTION = "Write a function total(xs) that returns the sum of the numbers in the list xs."
C2_SAME = "```python\ndef total(xs):\n\n    return sum( xs )\n```\nDone."
C2_OTHER = "```python\ndef total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n```"
C3 = "```python\ndef total(xs):\n    return sum(xs, 0)\n```"
CODE1 = "def total(xs):\n    return sum(xs)"


async def test_when_the_versions_differ_four_calls_in_a_row_and_the_merge_is_the_answer() -> None:
    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, C3], latency=0.01)
    events: list[OptimizerEvent] = []
    solution = await RtoOptimizer().optimize(QUERY, client, system_prompt=SYSTEM, events=events.append)

    assert solution.answer == C3
    assert len(client.requests) == solution.metadata.llm_calls == 4
    assert sequential_depth(client.requests) == 4
    assert [r.settings.temperature for r in client.requests] == [0.1] * 4
    assert [r.settings.max_tokens for r in client.requests] == [4096, 1024, 4096, 4096]
    assert all(r.system_text == SYSTEM for r in client.requests)
    code, describe, rewrite, merge = client.requests
    assert [(m.role, m.content) for m in code.messages[1:]] == [("user", QUERY)]
    # The description is asked in the same conversation, after C1 as the assistant's turn.
    assert [m.role for m in describe.messages[1:]] == ["user", "assistant", "user"]
    assert describe.messages[2].content == C1
    assert "instruction" in describe.user_text
    # C2 is written from the description alone: the query is not in its prompt.
    assert rewrite.user_text == DESCRIPTION
    assert QUERY not in "".join(m.content for m in rewrite.messages)
    # The merge shows the task and both versions' code, not their prose.
    assert QUERY in merge.user_text and CODE1 in merge.user_text and "s += x" in merge.user_text
    assert "Here it is" not in merge.user_text
    assert [e.phase for e in events if isinstance(e, PhaseStarted)] == ["code", "describe", "rewrite", "merge"]
    extras = solution.metadata.extras
    assert (extras["source"], extras["same_code"]) == ("merge", False)
    assert (extras["c1"], extras["description"], extras["c2"]) == (C1, DESCRIPTION, C2_OTHER)
    assert "Description of C1" in solution.reasoning


async def test_when_the_round_trip_gives_the_same_code_back_the_answer_is_c1s_code_after_three_calls() -> None:
    client = ScriptedClient([C1, DESCRIPTION, C2_SAME])
    solution = await RtoOptimizer().optimize(QUERY, client)
    assert solution.answer == CODE1  # extracted, as upstream returns it
    assert len(client.requests) == 3
    assert solution.metadata.extras["same_code"] is True
    assert solution.metadata.extras["source"] == "c1"


async def test_replies_without_code_blocks_are_compared_whole() -> None:
    client = ScriptedClient(["def f(): return 1", DESCRIPTION, "def f():\n    return 1"])
    assert (await RtoOptimizer().optimize(QUERY, client)).answer == "def f(): return 1"
    client = ScriptedClient(["def f(): return 1", DESCRIPTION, "def f(): return 2", "def f(): return 1"])
    await RtoOptimizer().optimize(QUERY, client)
    assert len(client.requests) == 4
    assert "def f(): return 1" in client.requests[3].user_text and "def f(): return 2" in client.requests[3].user_text


async def test_the_callers_temperature_and_max_tokens_apply_unless_the_config_sets_them() -> None:
    caller = GenerationSettings(temperature=0.7, max_tokens=800, seed=5)
    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, C3])
    await RtoOptimizer().optimize(QUERY, client, settings=caller)
    assert [r.settings.temperature for r in client.requests] == [0.7] * 4
    assert [r.settings.max_tokens for r in client.requests] == [800, 800, 800, 800]
    assert {r.settings.seed for r in client.requests} == {5}

    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, C3])
    await RtoOptimizer(RtoConfig(temperature=0.3)).optimize(QUERY, client, settings=caller)
    assert [r.settings.temperature for r in client.requests] == [0.3] * 4


async def test_the_callers_stop_reaches_the_merge_and_cuts_c1s_code() -> None:
    caller = GenerationSettings(stop=("# end",))
    client = ScriptedClient(["```python\nx = 1\n# end\ny = 2\n```", DESCRIPTION, "```\nx=1\n# end\ny=2\n```"])
    solution = await RtoOptimizer().optimize(QUERY, client, settings=caller)
    assert solution.answer == "x = 1"
    assert [r.settings.stop for r in client.requests] == [None, None, None]

    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, C3])
    await RtoOptimizer().optimize(QUERY, client, settings=caller)
    assert [r.settings.stop for r in client.requests] == [None, None, None, ("# end",)]


@pytest.mark.parametrize("profile", [O3_MINI, CLAUDE_OPUS], ids=["o3-mini", "claude-opus"])
async def test_a_model_that_refuses_temperature_gets_none_and_the_run_completes(profile: Any) -> None:
    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, C3], profile=profile)
    solution = await RtoOptimizer().optimize(QUERY, client, settings=GenerationSettings(temperature=0.5))
    assert solution.answer == C3
    assert client.refused == []
    assert [r.settings.temperature for r in client.requests] == [None] * 4
    assert "temperature" in solution.metadata.dropped_settings


async def test_thinking_stays_out_of_the_prompts_and_the_answer() -> None:
    replies: list[str | Reply] = [
        Reply(C1, thinking="secret one"),
        DESCRIPTION,
        Reply(C2_OTHER, thinking="secret two"),
        C3,
    ]
    client = ScriptedClient(replies, profile=DEEPSEEK_R1)
    solution = await RtoOptimizer().optimize(QUERY, client)
    assert solution.answer == C3
    assert not any("secret" in m.content for r in client.requests for m in r.messages)


async def test_an_empty_description_ends_the_round_trip_with_c1s_code() -> None:
    client = ScriptedClient([C1, "   "])
    solution = await RtoOptimizer().optimize(QUERY, client)
    assert solution.answer == CODE1
    assert len(client.requests) == 2
    assert solution.metadata.extras["same_code"] is None
    assert "the description came back empty" in solution.reasoning


async def test_an_empty_second_version_or_merge_leaves_c1s_code() -> None:
    client = ScriptedClient([C1, DESCRIPTION, ""])
    assert (await RtoOptimizer().optimize(QUERY, client)).answer == CODE1
    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, ""])
    solution = await RtoOptimizer().optimize(QUERY, client)
    assert solution.answer == CODE1
    assert solution.metadata.extras["source"] == "c1"
    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, Reply("```python\ndef total(", finish_reason="length")])
    assert (await RtoOptimizer().optimize(QUERY, client)).answer == CODE1


async def test_an_empty_first_version_is_no_solution() -> None:
    with pytest.raises(NoSolutions, match="first version of the code came back empty"):
        await RtoOptimizer().optimize(QUERY, ScriptedClient([Reply("", thinking="hmm")], profile=DEEPSEEK_R1))


@pytest.mark.parametrize("failing", [1, 2, 3], ids=["description", "rewrite", "merge"])
async def test_a_retryable_failure_after_c1_is_absorbed_and_c1s_code_answers(failing: int) -> None:
    inner = ScriptedClient([C1, DESCRIPTION, C2_OTHER, C3][:failing] + [C2_OTHER, C3][failing - 1 :])
    client = FaultyClient(inner, {failing: ProviderUnavailable("overloaded", status_code=503)})
    solution = await RtoOptimizer().optimize(QUERY, client)
    assert solution.answer == CODE1
    assert solution.metadata.extras["source"] == "c1"


@pytest.mark.parametrize("failing", [0, 1, 2, 3])
async def test_an_authentication_error_anywhere_ends_the_run(failing: int) -> None:
    client = FaultyClient(ScriptedClient([C1, DESCRIPTION, C2_OTHER, C3]), {failing: AuthenticationError("bad key")})
    with pytest.raises(AuthenticationError, match="bad key"):
        await RtoOptimizer().optimize(QUERY, client)


async def test_the_merge_streams_as_answer_deltas() -> None:
    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, C3])
    events: list[OptimizerEvent] = []
    solution = await RtoOptimizer().optimize(QUERY, client, events=events.append)
    assert "".join(e.delta for e in events if isinstance(e, AnswerDelta)) == solution.answer == C3


# -- tools ------------------------------------------------------------------------------------------


async def test_with_tools_c1_and_the_merge_get_them_and_the_middle_calls_do_not() -> None:
    client = ScriptedClient([C1, DESCRIPTION, C2_OTHER, Reply("", tool_calls=(CALL,))])
    solution = await RtoOptimizer().optimize(QUERY, client, system_prompt=SYSTEM, settings=WITH_TOOLS)
    assert [r.settings.tools for r in client.requests] == [(WEATHER,), None, None, (WEATHER,)]
    assert solution.tool_calls == (CALL,)
    assert solution.answer == ""
    merge = client.requests[3]
    # The merge answers the caller's conversation, with both versions after the system prompt.
    assert merge.user_text == QUERY
    assert merge.system_text is not None and merge.system_text.startswith(SYSTEM)
    assert CODE1 in merge.system_text and "s += x" in merge.system_text


async def test_with_tools_a_c1_that_calls_a_tool_is_the_answer_at_once() -> None:
    client = ScriptedClient([Reply("Let me check.", tool_calls=(CALL,))])
    solution = await RtoOptimizer().optimize(QUERY, client, settings=WITH_TOOLS)
    assert solution.tool_calls == (CALL,)
    assert solution.answer == "Let me check."
    assert len(client.requests) == 1


async def test_with_tools_a_confirmed_c1_is_the_answer_in_text() -> None:
    client = ScriptedClient([C1, DESCRIPTION, C2_SAME])
    solution = await RtoOptimizer().optimize(QUERY, client, settings=WITH_TOOLS)
    assert (solution.answer, solution.tool_calls) == (CODE1, ())
    assert client.requests[0].settings.tools == (WEATHER,)


# -- planning and registration ----------------------------------------------------------------------


def same_code_every_time(prompt: Prompt, settings: GenerationSettings) -> str:
    return C1


@pytest.mark.parametrize("settings", [GenerationSettings(), WITH_TOOLS], ids=["plain", "tools"])
async def test_planned_calls_are_the_calls_of_a_run_whose_round_trip_holds(settings: GenerationSettings) -> None:
    client = FunctionClient(same_code_every_time)
    optimizer = RtoOptimizer()
    planned = optimizer.planned_calls(client, settings)
    solution = await optimizer.optimize(QUERY, client, settings=settings)
    assert planned == solution.metadata.llm_calls == len(client.requests) == 3


def test_rto_is_registered_and_configurable_from_strings() -> None:
    optimizer = default_registry().create("rto", {"temperature": "0.4", "description_max_tokens": "256"})
    assert isinstance(optimizer, RtoOptimizer)
    assert (optimizer.config.temperature, optimizer.config.description_max_tokens) == (0.4, 256)
    assert RtoOptimizer.answers_with_tools
