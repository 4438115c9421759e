"""Strategy requests through the proxy, with the official OpenAI SDK as the client."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest

from optillm_core import GenerationSettings, Prompt
from optillm_core.testing import FunctionClient, count_tokens

from .support import last_user, proxy, replying

pytestmark = pytest.mark.anyio


async def test_strategy_answer_is_a_complete_chat_completion_with_real_usage() -> None:
    client = FunctionClient(replying)
    async with proxy(client) as sdk:
        response = await sdk.chat.completions.create(
            model="echo-m", messages=[{"role": "user", "content": "What is 2+2?"}]
        )
    assert response.id.startswith("chatcmpl-")
    assert response.object == "chat.completion"
    assert response.created > 0
    assert response.model == "echo-m"
    assert len(response.choices) == 1
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.content == "reply to final: reply to draft: What is 2+2?"
    assert response.choices[0].finish_reason == "stop"
    expected_prompt = sum(count_tokens(last_user(r.prompt)) for r in client.requests)
    expected_completion = count_tokens("reply to draft: What is 2+2?") + count_tokens(
        "reply to final: reply to draft: What is 2+2?"
    )
    assert response.usage is not None
    assert response.usage.prompt_tokens == expected_prompt
    assert response.usage.completion_tokens == expected_completion
    assert response.usage.total_tokens == expected_prompt + expected_completion


async def test_request_settings_and_config_reach_the_model_calls() -> None:
    client = FunctionClient(replying)
    async with proxy(client) as sdk:
        await sdk.chat.completions.create(
            model="echo-m",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q"}],
            temperature=0.9,
            max_tokens=77,
            top_p=0.5,
            seed=3,
            stop=["END"],
            extra_body={"optillm_config": {"drafts": 3, "temperature": 0.1}},
        )
    drafts = [r for r in client.requests if last_user(r.prompt).startswith("draft:")]
    finals = [r for r in client.requests if last_user(r.prompt).startswith("final:")]
    assert len(drafts) == 3
    assert len(finals) == 1
    # a phase temperature set in optillm_config wins over the request's; each draft gets its own seed;
    # stop reaches the final answer only
    assert all(r.settings.temperature == 0.1 for r in drafts)
    assert finals[0].settings.temperature == 0.9
    assert sorted(r.settings.seed for r in drafts if r.settings.seed is not None) == [3, 4, 5]
    assert finals[0].settings.seed == 3
    assert [r.settings.stop for r in drafts] == [None, None, None]
    assert finals[0].settings.stop == ("END",)
    for record in client.requests:
        assert record.settings.max_tokens == 77
        assert record.settings.top_p == 0.5
        assert record.system_text == "Be brief."


async def test_strategy_in_optillm_approach_and_a_model_name_with_dashes() -> None:
    client = FunctionClient(replying)
    async with proxy(client, model="llama-3-8b") as sdk:
        response = await sdk.chat.completions.create(
            model="llama-3-8b", messages=[{"role": "user", "content": "hi"}], extra_body={"optillm_approach": "shout"}
        )
    assert response.choices[0].message.content == "REPLY TO SHOUT: HI"


async def test_n_runs_concurrent_optimizations_one_choice_each() -> None:
    arrived = 0
    all_in = anyio.Event()

    async def wait_for_all(prompt: Prompt, settings: GenerationSettings) -> str:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            all_in.set()
        with anyio.fail_after(10):
            await all_in.wait()  # deadlocks (and fails) unless the three runs are in flight together
        return f"answer {arrived}"

    client = FunctionClient(wait_for_all)
    async with proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="shout-m", messages=[{"role": "user", "content": "Q"}], n=3)
    assert [c.index for c in response.choices] == [0, 1, 2]
    assert sorted(c.message.content or "" for c in response.choices) == ["ANSWER 3"] * 3
    assert client.max_in_flight == 3
    assert response.usage is not None
    assert response.usage.completion_tokens == 3 * count_tokens("answer 3")


async def test_pipeline_gives_the_next_stage_the_original_question_and_the_draft() -> None:
    client = FunctionClient(replying)
    async with proxy(client) as sdk:
        response = await sdk.chat.completions.create(
            model="shout&echo-m", messages=[{"role": "user", "content": "What is the capital of France?"}]
        )
    shout_answer = "REPLY TO SHOUT: WHAT IS THE CAPITAL OF FRANCE?"
    second_stage = [last_user(r.prompt) for r in client.requests if last_user(r.prompt).startswith("draft:")]
    assert len(second_stage) == 1
    assert "What is the capital of France?" in second_stage[0]
    assert shout_answer in second_stage[0]
    assert response.choices[0].message.content == f"reply to final: reply to {second_stage[0]}"
    assert response.usage is not None
    assert response.usage.completion_tokens == sum(
        count_tokens(replying(r.prompt, r.settings)) for r in client.requests
    )


async def test_parallel_runs_each_strategy_as_one_choice() -> None:
    client = FunctionClient(replying)
    async with proxy(client) as sdk:
        response = await sdk.chat.completions.create(model="shout|echo-m", messages=[{"role": "user", "content": "Q"}])
    assert [c.message.content for c in response.choices] == ["REPLY TO SHOUT: Q", "reply to final: reply to draft: Q"]


async def test_several_strategies_take_their_config_by_name() -> None:
    client = FunctionClient(replying)
    async with proxy(client) as sdk:
        await sdk.chat.completions.create(
            model="shout|echo-m",
            messages=[{"role": "user", "content": "Q"}],
            extra_body={"optillm_config": {"echo": {"drafts": 2}}},
        )
    assert sum(last_user(r.prompt).startswith("draft:") for r in client.requests) == 2


async def test_earlier_turns_reach_the_strategy_as_context_and_the_last_user_message_is_the_query() -> None:
    client = FunctionClient(replying)
    messages: list[Any] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."},
        {"role": "user", "content": "What is my name?"},
    ]
    async with proxy(client) as sdk:
        await sdk.chat.completions.create(model="shout-m", messages=messages)
    (record,) = client.requests
    assert [m.role for m in record.messages] == ["system", "user"]
    assert record.messages[1].content == "shout: What is my name?"
    system = record.system_text or ""
    assert system.startswith("You are terse.")
    assert "<user>\nMy name is Ada.\n</user>" in system
    assert "<assistant>\nHello Ada.\n</assistant>" in system


async def test_many_requests_are_in_flight_at_once() -> None:
    total = 12
    arrived = 0
    all_in = anyio.Event()

    async def wait_for_all(prompt: Prompt, settings: GenerationSettings) -> str:
        nonlocal arrived
        arrived += 1
        if arrived == total:
            all_in.set()
        with anyio.fail_after(10):
            await all_in.wait()
        return last_user(prompt)

    client = FunctionClient(wait_for_all)
    answers: dict[int, str] = {}
    async with proxy(client) as sdk:

        async def ask(i: int) -> None:
            response = await sdk.chat.completions.create(
                model="shout-m", messages=[{"role": "user", "content": f"q{i}"}]
            )
            answers[i] = response.choices[0].message.content or ""

        async with anyio.create_task_group() as tg:
            for i in range(total):
                tg.start_soon(ask, i)
    assert answers == {i: f"SHOUT: Q{i}" for i in range(total)}
    assert client.max_in_flight == total


async def test_models_and_health_without_upstream() -> None:
    async with proxy(FunctionClient(replying)) as sdk:
        models = await sdk.models.list()
        async with httpx.AsyncClient() as http:
            health = await http.get(str(sdk.base_url).replace("/v1/", "/health"))
    assert [m.id for m in models.data] == ["m", "broken-m", "echo-m", "shout-m"]
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
